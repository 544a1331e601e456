"""Read the table of contents of an ExecuTorch external data file (.ptd).

A data file is a flatbuffer (schema
``executorch/extension/flat_tensor/serialize/flat_tensor.fbs``, identifier
``FT01`` at byte 4) with a header inserted at byte 8: magic ``FH01``, ``u32``
header length, then ``u64`` flatbuffer offset, flatbuffer size, segment base
offset and segment data size. The header sits inside the flatbuffer, so the
flatbuffer's offsets count from byte 0 and its bytes are
``[0, flatbuffer_offset + flatbuffer_size)``. Named data (the weights) follows
in segments, which this reader never reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from etm_lint.errors import FormatError
from etm_lint.format.flatbuffer import MAX_FLATBUFFER, Buffer, Table
from etm_lint.format.pte import SCALAR_TYPES, sniff
from etm_lint.format.source import ByteSource

HEADER_MAGIC = b"FH01"
_HEADER_LENGTH = 40

_FT_VERSION, _FT_SEGMENTS, _FT_NAMED_DATA = 0, 1, 2
_ND_KEY, _ND_SEGMENT, _ND_LAYOUT = 0, 1, 2
_LAYOUT_SCALAR_TYPE, _LAYOUT_SIZES, _LAYOUT_DIM_ORDER = 0, 1, 2


@dataclass(frozen=True)
class TensorLayout:
    """How the bytes of a tensor entry are to be read."""

    scalar_type: str
    sizes: tuple[int, ...]
    dim_order: tuple[int, ...]


@dataclass(frozen=True)
class NamedEntry:
    """One named blob: its key, its segment and, for tensors, its layout."""

    key: str
    segment_index: int
    layout: TensorLayout | None


@dataclass(frozen=True)
class DataFileInfo:
    """What a data file's header and flatbuffer say."""

    source_name: str
    file_size: int
    flatbuffer_offset: int
    flatbuffer_size: int
    segment_base_offset: int
    segment_data_size: int
    version: int
    segments: tuple[tuple[int, int], ...]
    keys: tuple[str, ...]
    entries: tuple[NamedEntry, ...]

    def layout(self, key: str) -> TensorLayout | None:
        for entry in self.entries:
            if entry.key == key:
                return entry.layout
        return None


@dataclass(frozen=True)
class _Header:
    flatbuffer_offset: int
    flatbuffer_size: int
    segment_base_offset: int
    segment_data_size: int


def _check_identifier(source: ByteSource) -> None:
    if source.size < 8:
        raise FormatError(
            source.name, f"file has {source.size} bytes, too short for a .ptd", 0
        )
    kind = sniff(source)
    if kind == "ptd":
        return
    ident = source.read(4, 4)
    if kind == "pte":
        message = "a program (.pte, ET12), not an external weights file"
    elif kind == "bpte":
        message = f"a bundled program ({ident.decode()}), not a weights file"
    else:
        message = f"not an ExecuTorch data file: identifier {ident!r}, not FT01"
    raise FormatError(source.name, message, 4)


def _read_header(source: ByteSource) -> _Header:
    name = source.name
    if source.size < 16 or source.read(8, 4) != HEADER_MAGIC:
        raise FormatError(name, "data file has no FH01 header", 8)
    (length,) = struct.unpack("<I", source.read(12, 4))
    if length < _HEADER_LENGTH:
        raise FormatError(name, f"data file header length {length} is below 40", 12)
    if 8 + length > source.size:
        raise FormatError(
            name, f"header claims {length} bytes, past the end of the file", 12
        )
    head = _Header(*struct.unpack("<4Q", source.read(16, 32)))
    _check_header(source, head, 8 + length)
    return head


def _check_header(source: ByteSource, head: _Header, header_end: int) -> None:
    name, size = source.name, source.size
    fb_end = head.flatbuffer_offset + head.flatbuffer_size
    if head.flatbuffer_offset < header_end or fb_end > size:
        raise FormatError(
            name,
            f"header puts the flatbuffer at bytes {head.flatbuffer_offset}..{fb_end},"
            f" outside {header_end}..{size}",
            16,
        )
    seg_end = head.segment_base_offset + head.segment_data_size
    if head.segment_data_size and (head.segment_base_offset < fb_end or seg_end > size):
        raise FormatError(
            name,
            f"header puts segment data at bytes {head.segment_base_offset}..{seg_end},"
            f" outside {fb_end}..{size}",
            32,
        )


def _layout(entry: Table) -> TensorLayout | None:
    table = entry.table(_ND_LAYOUT, "tensor layout")
    if table is None:
        return None
    stype = table.number(_LAYOUT_SCALAR_TYPE, "i8")
    return TensorLayout(
        scalar_type=SCALAR_TYPES.get(stype, f"UNKNOWN_{stype}"),
        sizes=tuple(table.ints(_LAYOUT_SIZES, "i32", "tensor sizes")),
        dim_order=tuple(table.ints(_LAYOUT_DIM_ORDER, "u8", "dim order")),
    )


def _entry(table: Table) -> NamedEntry:
    return NamedEntry(
        key=table.string(_ND_KEY, "key") or "",
        segment_index=table.number(_ND_SEGMENT, "u32"),
        layout=_layout(table),
    )


def _segments(source: ByteSource, head: _Header, root: Table) -> list[tuple[int, int]]:
    pos = root.vector(_FT_SEGMENTS, 4, "segments")[0]
    segments = root.map_tables(
        _FT_SEGMENTS, "segments", lambda t: (t.number(0, "u64"), t.number(1, "u64"))
    )
    for i, (offset, size) in enumerate(segments):
        end = head.segment_base_offset + offset + size
        if size and end > source.size:
            raise FormatError(
                source.name,
                f"segment {i} ends at byte {end}, the file has {source.size} bytes",
                pos + 4 * i,
            )
    return segments


def read_data_file(source: ByteSource) -> DataFileInfo:
    """Read a .ptd file's header and flatbuffer; raise FormatError if corrupt."""
    _check_identifier(source)
    head = _read_header(source)
    fb_end = head.flatbuffer_offset + head.flatbuffer_size
    if fb_end > MAX_FLATBUFFER:
        raise FormatError(
            source.name,
            f"flatbuffer of {fb_end} bytes is over the "
            f"{MAX_FLATBUFFER >> 20} MiB this reader loads",
            24,
        )
    buf = Buffer(source.name, source.read(0, fb_end))
    root = buf.root()

    segments = _segments(source, head, root)
    named_pos = root.vector(_FT_NAMED_DATA, 4, "named data")[0]
    entries = root.map_tables(_FT_NAMED_DATA, "named data", _entry)
    for i, entry in enumerate(entries):
        if entry.segment_index >= len(segments):
            raise buf.error(
                f"named data {entry.key!r} names segment {entry.segment_index}, "
                f"there are {len(segments)}",
                named_pos + 4 * i,
            )
    return DataFileInfo(
        source_name=source.name,
        file_size=source.size,
        flatbuffer_offset=head.flatbuffer_offset,
        flatbuffer_size=head.flatbuffer_size,
        segment_base_offset=head.segment_base_offset,
        segment_data_size=head.segment_data_size,
        version=root.number(_FT_VERSION, "u32"),
        segments=tuple(segments),
        keys=tuple(e.key for e in entries),
        entries=tuple(entries),
    )
