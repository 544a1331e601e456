"""Measuring one whole process: wall time, peak memory and bytes read.

Every figure comes from the kernel, for the child process alone:

- wall time from just before ``fork`` to the child's exit, and its CPU time
  (user plus system), which other load on the machine disturbs far less;
- peak resident memory from ``wait4``'s rusage of that child (``ru_maxrss``);
- ``rchar`` and ``read_bytes`` from ``/proc/<pid>/io``, read after the child
  exited but before it is reaped (``waitid`` with ``WNOWAIT``), so they are
  its final totals. ``rchar`` counts every byte returned by read-like system
  calls, from the page cache or not; ``read_bytes`` counts bytes fetched from
  the block device, which is 0 for a file already in the page cache.

``evict`` drops one file's pages from the page cache (``posix_fadvise``
DONTNEED on that file only), so a following run shows in ``read_bytes`` what
it really had to fetch from disk. Nothing system-wide is dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

UNKNOWN = -1


@dataclass(frozen=True)
class Sample:
    """One finished process."""

    argv: tuple[str, ...]
    returncode: int
    wall: float  # seconds
    cpu: float  # seconds of user plus system time
    max_rss: int  # bytes
    rchar: int  # bytes, or UNKNOWN without /proc
    read_bytes: int  # bytes, or UNKNOWN without /proc
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Sample:
    """Run ``argv`` to completion and measure it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        # Wait without reaping: /proc/<pid>/io stays readable until wait4.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - start
        rchar, read_bytes = _io_counters(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return Sample(
            argv=tuple(argv),
            returncode=proc.returncode,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            max_rss=usage.ru_maxrss * 1024,  # Linux reports KiB
            rchar=rchar,
            read_bytes=read_bytes,
            stdout=_text(out),
            stderr=_text(err),
        )


def _io_counters(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return UNKNOWN, UNKNOWN
    fields = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    return int(fields.get("rchar", UNKNOWN)), int(fields.get("read_bytes", UNKNOWN))


def _text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def evict(path: Path) -> None:
    """Drop this one file's clean pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def repeat(
    argv: Sequence[str],
    times: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    warmup: int = 1,
) -> list[Sample]:
    """``warmup`` unrecorded runs, then ``times`` recorded ones."""
    for _ in range(warmup):
        run(argv, env=env, cwd=cwd)
    return [run(argv, env=env, cwd=cwd) for _ in range(times)]


def median_wall(samples: Sequence[Sample]) -> float:
    return statistics.median(s.wall for s in samples)


def median_cpu(samples: Sequence[Sample]) -> float:
    return statistics.median(s.cpu for s in samples)


def peak_rss(samples: Sequence[Sample]) -> int:
    return max(s.max_rss for s in samples)


# -- which files a process read, by strace (optional) ---------------------------

_CALL = re.compile(r"^(\d+) +\w+\((\d+)<([^>]*)>,")
_RESUMED = re.compile(r"^(\d+) +<\.\.\. \w+ resumed>")
_RESULT = re.compile(r"\) += (-?\d+)")
READ_CALLS = "read,pread64,readv,preadv,preadv2"


def strace_available() -> bool:
    return shutil.which("strace") is not None


def bytes_by_file(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, int]:
    """Bytes each file gave the process through read calls (strace -y).

    Memory-mapped reads do not appear; the lint reads bundles with pread.
    """
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "strace.log"
        traced = [
            "strace", "-f", "-qq", "-y", "-s", "0", "-e", f"trace={READ_CALLS}",
            "-e", "signal=none", "-o", str(log), *argv,
        ]  # fmt: skip
        subprocess.run(
            traced,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return _sum_reads(log.read_text(errors="replace").splitlines())


def _sum_reads(lines: Sequence[str]) -> dict[str, int]:
    totals: dict[str, int] = {}
    pending: dict[str, str] = {}  # pid -> path of its unfinished call
    for line in lines:
        call, resumed = _CALL.match(line), _RESUMED.match(line)
        if call:
            pid, path = call.group(1), call.group(3)
            if line.endswith("<unfinished ...>"):
                pending[pid] = path
                continue
        elif resumed and resumed.group(1) in pending:
            path = pending.pop(resumed.group(1))
        else:
            continue
        result = _RESULT.search(line)
        if result and int(result.group(1)) > 0:
            totals[path] = totals.get(path, 0) + int(result.group(1))
    return totals


# -- formatting -----------------------------------------------------------------


def size_text(count: int) -> str:
    """Bytes in decimal units, as file managers show them."""
    if count < 0:
        return "n/a"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} B"


def ratio_text(value: float) -> str:
    return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"
