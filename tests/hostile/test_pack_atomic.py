"""``etm pack`` leaves no partial output when it fails or is stopped midway.

The program is a sparse 256 MiB file that passes what pack checks of a
program before writing (the ``ET12`` identifier at byte 4; the flatbuffer is
not parsed), so the write takes long enough to interrupt: each test waits
until the hidden temporary file in the destination folder holds 32 MiB,
then stops the process.

SIGINT and SIGTERM unwind (SIGTERM is turned into SystemExit by the entry
point) and the temporary file is removed. SIGKILL cannot be caught: the
temporary file stays, as ``.OUT.etm.<random>.partial`` beside where the
output would have gone, and the output itself never appears, because it
only ever comes into being by a rename of a complete file.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.corpus import REPO

SRC = REPO / "fixtures" / "src"
BIG = 256 << 20
STARTED = 32 << 20
ENTRY = "from etm_lint.cli.etm import entry; entry()"
PARTIAL = re.compile(r"^\.out\.etm\.[^/]+\.partial$")


@pytest.fixture(scope="module")
def big_program(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("big") / "model.pte"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<I4s", 0, b"ET12"))
        handle.truncate(BIG)  # sparse: no disk used until someone writes
    yield path
    path.unlink()


def pack_argv(program: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        ENTRY,
        "pack",
        "--program",
        str(program),
        "--tokenizer",
        str(SRC / "tokenizer.json"),
        "-o",
        str(out),
    ]


def start_pack(program: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pack_argv(program, out),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_until_writing(folder: Path, process: subprocess.Popen[bytes]) -> Path:
    """The temporary file, once it holds STARTED bytes."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for entry in os.scandir(folder):
            if PARTIAL.match(entry.name) and entry.stat().st_size >= STARTED:
                return Path(entry.path)
        time.sleep(0.01)
    process.kill()
    raise AssertionError("pack never started writing")


def stat_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 2)],
    ids=["SIGTERM", "SIGINT"],
)
def test_stopped_midway_leaves_nothing(
    big_program: Path, tmp_path: Path, signum: int, code: int
) -> None:
    before = stat_of(big_program)
    process = start_pack(big_program, tmp_path / "out.etm")
    wait_until_writing(tmp_path, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert b"Traceback" not in stderr
    assert os.listdir(tmp_path) == []
    assert stat_of(big_program) == before


def test_killed_midway_leaves_only_the_hidden_partial(
    big_program: Path, tmp_path: Path
) -> None:
    process = start_pack(big_program, tmp_path / "out.etm")
    partial = wait_until_writing(tmp_path, process)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert os.listdir(tmp_path) == [partial.name]
    # A later pack to the same place is not disturbed by the leftover.
    small = tmp_path / "small.pte"
    small.write_bytes((SRC / "good.pte").read_bytes())
    result = subprocess.run(pack_argv(small, tmp_path / "out.etm"), cwd=REPO)
    assert result.returncode == 0
    assert sorted(os.listdir(tmp_path)) == sorted(
        [partial.name, "out.etm", "small.pte"]
    )


def _file_size_limit() -> None:
    limit = 16 << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_write_failure_midway_leaves_nothing(big_program: Path, tmp_path: Path) -> None:
    """A file size limit stands in for a full disk: the write fails with
    EFBIG after 16 MiB (Python ignores SIGXFSZ, so write() raises)."""
    result = subprocess.run(
        pack_argv(big_program, tmp_path / "out.etm"),
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("not written (File too large)")
    assert len(result.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_failure_before_writing_leaves_nothing(tmp_path: Path) -> None:
    not_a_program = tmp_path / "model.pte"
    not_a_program.write_bytes(b"\0" * 64)
    result = subprocess.run(
        pack_argv(not_a_program, tmp_path / "out.etm"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no ET12 identifier" in result.stderr
    assert os.listdir(tmp_path) == ["model.pte"]


def test_output_naming_an_input_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "model.pte"
    program.write_bytes((SRC / "good.pte").read_bytes())
    before = hashlib.sha256(program.read_bytes()).hexdigest()
    result = subprocess.run(
        pack_argv(program, program),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to overwrite an input" in result.stderr
    assert hashlib.sha256(program.read_bytes()).hexdigest() == before
    assert os.listdir(tmp_path) == ["model.pte"]
