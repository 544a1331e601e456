"""A zip writer that writes whatever it is told, for building hostile archives.

``zipfile`` refuses most of what an attacker writes (NUL bytes in names, an
encrypted flag without encryption, a directory entry pointing elsewhere), so
the corpus lays out local headers, central directory and end record itself.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from etm_lint.format.writer import alignment_extra

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")
REGULAR = 0o100644 << 16
SYMLINK = 0o120777 << 16
UNIX = 3
DEFLATED = 8
STORED = 0
ENCRYPTED = 0x1


@dataclass(frozen=True)
class Entry:
    """One member as both headers will claim it."""

    name: bytes
    payload: bytes  # the bytes written after the local header
    size: int  # the uncompressed size the headers claim
    crc: int
    method: int = STORED
    flags: int = 0
    attr: int = REGULAR
    align: bool = False  # pad the local header so the data starts on 16 KiB
    local_name: bytes | None = None  # a different name in the local header
    header_offset: int | None = None  # what the directory says, if not the truth

    def but(self, **changes: object) -> Entry:
        return replace(self, **changes)  # type: ignore[arg-type]


def stored(name: str | bytes, data: bytes, *, align: bool = False) -> Entry:
    raw = name.encode() if isinstance(name, str) else name
    return Entry(raw, data, len(data), zlib.crc32(data), align=align)


def deflated(name: str | bytes, data: bytes) -> Entry:
    raw = name.encode() if isinstance(name, str) else name
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = packer.compress(data) + packer.flush()
    return Entry(raw, payload, len(data), zlib.crc32(data), method=DEFLATED)


def zero_bomb(name: str, gib: int = 1) -> Entry:
    """A member of ``gib`` GiB of zeros in about a megabyte of deflate.

    A sync-flushed block of zeros that follows zeros depends on nothing but
    the zeros behind it, so one such block repeated makes the whole stream
    without compressing a gigabyte here.
    """
    mib = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = packer.compress(mib) + packer.flush(zlib.Z_SYNC_FLUSH)
    again = packer.compress(mib) + packer.flush(zlib.Z_SYNC_FLUSH)
    count = gib * 1024
    payload = first + again * (count - 1) + packer.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(mib, crc)
    return Entry(name.encode(), payload, count << 20, crc, method=DEFLATED)


def local_offsets(entries: Sequence[Entry]) -> list[int]:
    """Where ``build`` puts each entry's local header."""
    return _locals(entries)[1]


def _locals(entries: Sequence[Entry]) -> tuple[bytearray, list[int]]:
    out = bytearray()
    offsets = []
    for entry in entries:
        offsets.append(len(out))
        local_name = entry.name if entry.local_name is None else entry.local_name
        extra = alignment_extra(len(out), LOCAL.size + len(local_name))
        extra = extra if entry.align else b""
        out += LOCAL.pack(
            b"PK\x03\x04",
            20,
            entry.flags,
            entry.method,
            0,
            0x21,
            entry.crc,
            len(entry.payload),
            entry.size,
            len(local_name),
            len(extra),
        )
        out += local_name + extra + entry.payload
    return out, offsets


def build(
    entries: Sequence[Entry],
    *,
    cd_offset: int | None = None,
    count: int | None = None,
    comment: bytes = b"",
) -> bytes:
    """The archive: local headers and data, the directory, the end record."""
    out, offsets = _locals(entries)
    directory = bytearray()
    for entry, offset in zip(entries, offsets, strict=True):
        where = offset if entry.header_offset is None else entry.header_offset
        directory += CENTRAL.pack(
            b"PK\x01\x02",
            (UNIX << 8) | 20,
            20,
            entry.flags,
            entry.method,
            0,
            0x21,
            entry.crc,
            len(entry.payload),
            entry.size,
            len(entry.name),
            0,
            0,
            0,
            0,
            entry.attr,
            where,
        )
        directory += entry.name
    start = len(out) if cd_offset is None else cd_offset
    total = len(entries) if count is None else count
    out += directory
    out += END.pack(
        b"PK\x05\x06", 0, 0, total, total, len(directory), start, len(comment)
    )
    return bytes(out + comment)
