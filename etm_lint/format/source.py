"""Byte sources: a file on disk or a stored member of a bundle, read by range.

Readers of .pte and .ptd files take a source rather than a path so that a
program stored in a bundle is read in place, a few ranges at a time, without
extracting it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from etm_lint.errors import EtmError, FormatError


class ByteSource(Protocol):
    """Random access to the bytes of one file."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``, or FormatError."""
        ...


class FileSource:
    """A plain file, opened once and read with ``pread``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.name = os.fspath(path)
        self._fd = open_regular(self.name)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return _checked_read(self, self._fd, 0, offset, length)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SliceSource:
    """A window ``[start, start + size)`` of an open file: a STORED member."""

    def __init__(self, name: str, fd: int, start: int, size: int):
        self.name = name
        self.size = size
        self._fd = fd
        self._start = start

    def read(self, offset: int, length: int) -> bytes:
        return _checked_read(self, self._fd, self._start, offset, length)


class BytesSource:
    """Bytes already in memory (a deflated member, a test's input)."""

    def __init__(self, name: str, data: bytes):
        self.name = name
        self.size = len(data)
        self._data = data

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(
                self.name,
                f"needs {length} bytes but the file has {self.size}",
                offset,
            )
        return self._data[offset : offset + length]


def _checked_read(
    source: ByteSource, fd: int, base: int, offset: int, length: int
) -> bytes:
    if offset < 0 or length < 0 or offset + length > source.size:
        raise FormatError(
            source.name, f"needs {length} bytes but the file has {source.size}", offset
        )
    try:
        data = os.pread(fd, length, base + offset)
    except OSError as err:
        raise EtmError(f"{source.name}: {err.strerror}") from None
    if len(data) != length:
        raise FormatError(source.name, "file ended early", offset + len(data))
    return data


def open_regular(path: str) -> int:
    """A read-only descriptor of a regular file, or a one-line EtmError.

    A FIFO would block the open itself (hence O_NONBLOCK, which a regular
    file ignores) and a device never ends; neither is a bundle.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise EtmError(f"{path}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise EtmError(f"{path}: {what}")
    return fd


def read_text_file(path: Path, limit: int) -> str:
    """A small UTF-8 regular file (a config, a template), or a one-line
    EtmError; more than ``limit`` bytes is refused without reading on."""
    try:
        with open(open_regular(str(path)), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise EtmError(f"{path}: cannot read ({err.strerror})") from None
    if len(data) > limit:
        raise EtmError(f"{path}: larger than the {limit} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EtmError(f"{path}: not UTF-8 (byte {err.start})") from None
