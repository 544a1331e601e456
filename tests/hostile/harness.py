"""What the hostile-input tests share: the corpus, CLI runs, file snapshots."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.hostile.corpus import Case, build

# Rendering is bounded at 2 s per conversation and a lint renders a handful;
# past this a check has no budget worth the name.
CASE_BUDGET_S = 10.0


@functools.cache
def corpus() -> tuple[Case, ...]:
    """The corpus, built once per process in a folder removed at exit.

    Built at collection time too (tests are parametrized by case), so it
    lives outside pytest's per-test folders.
    """
    root = Path(tempfile.mkdtemp(prefix="etm-hostile-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return tuple(build(root / "corpus"))


def corpus_root() -> Path:
    return corpus()[0].path.parent


def case_named(name: str) -> Case:
    return next(c for c in corpus() if c.name == name)


def names(where: Callable[[Case], bool] = lambda c: True) -> list[str]:
    return [c.name for c in corpus() if where(c)]


@dataclass(frozen=True)
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    crash: str | None  # the traceback of an exception that escaped main

    def one_line_error(self, prefix: str) -> bool:
        lines = self.stderr.splitlines()
        return len(lines) == 1 and lines[0].startswith(prefix)


def run_main(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> Outcome:
    """``main(argv)`` in process, with a stdout as strict as a UTF-8 terminal.

    A text stream over bytes with ``errors="strict"`` raises where a real
    terminal in a UTF-8 locale would; ``StringIO`` would accept anything.
    """
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    err = io.StringIO()
    crash = None
    code: int | None = None
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
            out.flush()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 2
    except BaseException:
        crash = traceback.format_exc()
    seconds = time.perf_counter() - start
    text = raw.getvalue().decode("utf-8", "backslashreplace")
    return Outcome(code, text, err.getvalue(), seconds, crash)


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's names and contents (not following
    links, never opening FIFOs or devices)."""
    if path.is_symlink() or not path.exists():
        return f"link:{os.readlink(path)}" if path.is_symlink() else "absent"
    if path.is_dir():
        parts = [f"{name}={digest(path / name)}" for name in sorted(os.listdir(path))]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    if not path.is_file():
        return f"special:{path.stat().st_mode:o}"
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (relative) with its kind, size and mtime."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            found[str(path.relative_to(root))] = (
                f"{info.st_mode:o}:{info.st_size}:{info.st_mtime_ns}"
            )
    return found


def tree_size(root: Path) -> int:
    """Bytes of the files under ``root``, each hard-linked file once."""
    seen: dict[tuple[int, int], int] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                info = (Path(folder) / name).lstat()
                seen[(info.st_dev, info.st_ino)] = info.st_size
    return sum(seen.values())
