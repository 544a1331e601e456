"""A small flatbuffer reader that trusts nothing in the buffer.

Only what the program and data-file readers need: tables, scalar fields,
strings, vectors of scalars, strings or tables, and unions. Every offset is
checked against the buffer and every vtable against its table before a byte is
unpacked, so a corrupt or hostile buffer raises ``FormatError`` (with the byte
offset in the file) instead of ``IndexError`` or ``struct.error``.

The readers built on this are schema-driven and the schemas they follow have no
recursive types, so walks cannot recurse without end. What a hostile buffer can
still do is point many offsets at the same large vector or string and make a
small file expand into a huge walk; a work budget, charged per table, per
string byte and per vector element, stops that.

Layout, as in the flatbuffers binary format: a buffer starts with a ``u32``
offset to the root table and an optional 4-byte file identifier. A table starts
with an ``i32`` distance back to its vtable; a vtable is ``u16`` vtable size,
``u16`` table size, then one ``u16`` field offset per field (0 means absent).
Offsets to tables, vectors and strings are ``u32``, relative to where they are
stored. Vectors and strings start with a ``u32`` element count.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

from etm_lint.errors import FormatError

T = TypeVar("T")

# Work units granted per byte of buffer, on top of a floor for tiny buffers,
# up to a cap. Reading the real 79 KB flatbuffer of a delegated LLM costs about
# 4,200 units, one twentieth of a unit per byte; an aliasing bomb runs out.
_BUDGET_PER_BYTE = 2
_BUDGET_FLOOR = 100_000
_BUDGET_CAP = 5_000_000

# The largest flatbuffer a reader loads into memory. Modern programs keep
# weights in segments (a 107 MB program has a 111 KB flatbuffer); only old
# programs without segments come near this, and reading more is refused rather
# than risking memory on a file that merely claims to be a program.
MAX_FLATBUFFER = 256 << 20

# struct format and width of each scalar kind a schema field can have.
_SCALARS: dict[str, tuple[str, int]] = {
    "bool": ("<?", 1),
    "i8": ("<b", 1),
    "u8": ("<B", 1),
    "i16": ("<h", 2),
    "u16": ("<H", 2),
    "i32": ("<i", 4),
    "u32": ("<I", 4),
    "i64": ("<q", 8),
    "u64": ("<Q", 8),
    "f32": ("<f", 4),
    "f64": ("<d", 8),
}


class Budget:
    """Work units left for reading one or more buffers of one file.

    Buffers that share a budget (the many graphs of a program's delegates)
    share one floor, so a file cannot multiply its allowance by splitting
    itself into many small buffers.
    """

    def __init__(self, floor: int = _BUDGET_FLOOR):
        self.left = floor
        self._granted = floor

    def grant(self, size: int) -> None:
        """Add the allowance for a buffer of ``size`` bytes, up to the cap."""
        extra = min(_BUDGET_PER_BYTE * size, _BUDGET_CAP - self._granted)
        if extra > 0:
            self._granted += extra
            self.left += extra


class Buffer:
    """One flatbuffer held in memory, located at ``file_offset`` in its file."""

    def __init__(
        self,
        name: str,
        data: bytes,
        file_offset: int = 0,
        budget: Budget | None = None,
    ):
        self.name = name
        self.data = data
        self.file_offset = file_offset
        self.budget = budget if budget is not None else Budget()
        self.budget.grant(len(data))

    # -- errors and accounting ------------------------------------------------

    def error(self, message: str, pos: int) -> FormatError:
        """A FormatError for ``pos`` (a position in this buffer)."""
        return FormatError(self.name, message, self.file_offset + pos)

    def charge(self, units: int, pos: int) -> None:
        """Spend work units; a buffer that asks for too much is refused."""
        self.budget.left -= units
        if self.budget.left < 0:
            raise self.error(
                "flatbuffer needs too much work to read (offsets alias or loop)",
                pos,
            )

    # -- raw reads ------------------------------------------------------------

    def need(self, pos: int, length: int, what: str) -> None:
        """Fail unless ``[pos, pos + length)`` lies inside the buffer."""
        if pos < 0 or length < 0 or pos + length > len(self.data):
            raise self.error(
                f"{what} needs {length} bytes at {pos}, "
                f"outside the {len(self.data)}-byte flatbuffer",
                max(pos, 0),
            )

    def scalar(self, kind: str, pos: int, what: str = "value") -> int | float:
        fmt, width = _SCALARS[kind]
        self.need(pos, width, what)
        value: int | float = struct.unpack_from(fmt, self.data, pos)[0]
        return value

    def u32(self, pos: int, what: str = "offset") -> int:
        self.need(pos, 4, what)
        value: int = struct.unpack_from("<I", self.data, pos)[0]
        return value

    def follow(self, pos: int, what: str) -> int:
        """The position a ``u32`` offset stored at ``pos`` points to."""
        target = pos + self.u32(pos, what)
        if target >= len(self.data):
            raise self.error(f"{what} points past the end of the flatbuffer", pos)
        return target

    # -- entry points ---------------------------------------------------------

    def identifier(self) -> bytes:
        """The 4-byte file identifier (bytes 4..8)."""
        self.need(4, 4, "file identifier")
        return self.data[4:8]

    def root(self) -> Table:
        """The root table."""
        return Table(self, self.follow(0, "root table offset"), "root table")

    def table_at(self, pos: int, what: str) -> Table:
        """The table whose offset is stored at ``pos``."""
        return Table(self, self.follow(pos, what), what)

    def vector_at(self, pos: int, elem_size: int, what: str) -> tuple[int, int]:
        """``(start, count)`` of the vector whose offset is stored at ``pos``."""
        start = self.follow(pos, what)
        count = self.u32(start, f"{what} length")
        body = start + 4
        self.need(body, count * elem_size, what)
        return body, count

    def string_at(self, pos: int, what: str) -> str:
        start, length = self.vector_at(pos, 1, what)
        self.charge(1 + length // 16, pos)
        raw = self.data[start : start + length]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Names are for display and matching; keep them, mark bad bytes.
            return raw.decode("utf-8", errors="replace")


class Table:
    """A table inside a ``Buffer`` whose vtable has already been checked."""

    __slots__ = ("_size", "_vt", "_vt_size", "buf", "pos", "what")

    def __init__(self, buf: Buffer, pos: int, what: str):
        buf.charge(1, pos)
        vt = pos - int(buf.scalar("i32", pos, f"{what} vtable offset"))
        buf.need(vt, 4, f"{what} vtable")
        vt_size = int(buf.scalar("u16", vt))
        size = int(buf.scalar("u16", vt + 2))
        if vt_size < 4 or vt_size % 2:
            raise buf.error(f"{what} vtable has a bad size {vt_size}", vt)
        buf.need(vt, vt_size, f"{what} vtable")
        if size < 4:
            raise buf.error(f"{what} has a bad inline size {size}", vt)
        buf.need(pos, size, what)
        self.buf = buf
        self.pos = pos
        self.what = what
        self._vt = vt
        self._vt_size = vt_size
        self._size = size

    def _field(self, index: int, width: int) -> int | None:
        """The position of field ``index``, or None when absent."""
        slot = 4 + 2 * index
        if slot + 2 > self._vt_size:
            return None
        rel = int(self.buf.scalar("u16", self._vt + slot))
        if rel == 0:
            return None
        # Like the flatbuffers verifier, bound a field by the buffer, not by
        # the table's inline size: real writers emit tables whose last field
        # reaches past the size their vtable states.
        self.buf.need(self.pos + rel, width, f"{self.what} field {index}")
        return self.pos + rel

    def has(self, index: int) -> bool:
        return self._field(index, 0) is not None

    # -- scalars --------------------------------------------------------------

    def number(self, index: int, kind: str, default: int = 0) -> int:
        pos = self._field(index, _SCALARS[kind][1])
        if pos is None:
            return default
        return int(self.buf.scalar(kind, pos, f"{self.what} field {index}"))

    def flag(self, index: int, default: bool = False) -> bool:
        pos = self._field(index, 1)
        if pos is None:
            return default
        return self.buf.data[pos] != 0

    def real(self, index: int, kind: str = "f64", default: float = 0.0) -> float:
        pos = self._field(index, _SCALARS[kind][1])
        if pos is None:
            return default
        return float(self.buf.scalar(kind, pos, f"{self.what} field {index}"))

    # -- references -----------------------------------------------------------

    def string(self, index: int, what: str = "string") -> str | None:
        pos = self._field(index, 4)
        if pos is None:
            return None
        return self.buf.string_at(pos, f"{self.what} {what}")

    def table(self, index: int, what: str) -> Table | None:
        pos = self._field(index, 4)
        if pos is None:
            return None
        return self.buf.table_at(pos, what)

    def vector(self, index: int, elem_size: int, what: str) -> tuple[int, int]:
        """``(start, count)`` of a vector field; ``(0, 0)`` when absent."""
        pos = self._field(index, 4)
        if pos is None:
            return 0, 0
        return self.buf.vector_at(pos, elem_size, what)

    def scalars(self, index: int, kind: str, what: str) -> list[int | float]:
        fmt, width = _SCALARS[kind]
        start, count = self.vector(index, width, what)
        self.buf.charge(count, start)
        return list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf.data, start))

    def ints(self, index: int, kind: str, what: str) -> list[int]:
        return [int(v) for v in self.scalars(index, kind, what)]

    def tables(self, index: int, what: str) -> list[Table]:
        return self.map_tables(index, what, lambda t: t)

    def map_tables(self, index: int, what: str, read: Callable[[Table], T]) -> list[T]:
        """Apply ``read`` to each table of a vector-of-tables field."""
        start, count = self.vector(index, 4, what)
        self.buf.charge(count, start)
        return [
            read(self.buf.table_at(start + 4 * i, f"{what}[{i}]")) for i in range(count)
        ]

    def strings(self, index: int, what: str) -> list[str]:
        start, count = self.vector(index, 4, what)
        self.buf.charge(count, start)
        return [self.buf.string_at(start + 4 * i, f"{what}[{i}]") for i in range(count)]

    def union(self, type_index: int, what: str) -> tuple[int, Table | None]:
        """``(tag, table)`` of a union stored as fields type_index, +1.

        Tag 0 is NONE; a tag without a value is reported with table None.
        """
        tag = self.number(type_index, "u8")
        if tag == 0:
            return 0, None
        return tag, self.table(type_index + 1, what)
