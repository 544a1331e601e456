"""Read what an ExecuTorch program (.pte) says about itself, without its weights.

A program file is a flatbuffer (schema ``executorch/schema/program.fbs``,
identifier ``ET12`` at byte 4) that usually carries an extended header at byte
8 (magic ``eh00``, ``u32`` header length, then ``u64`` program size, segment
base offset and, when the header is long enough, segment data size). Segment
data (weights, delegate payloads) follows the flatbuffer. This reader reads the
header and the first ``program_size`` bytes, plus, for XNNPACK delegates, the
small header and graph flatbuffer at the start of each payload, to learn which
named weights the delegate wants; it never reads weights.

Steps: identify the file, read the extended header, check every claimed size
against the file, walk the flatbuffer, then collect the named data keys that
the program needs and does not carry itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from etm_lint.errors import FormatError
from etm_lint.format.flatbuffer import MAX_FLATBUFFER, Budget, Buffer, Table
from etm_lint.format.source import ByteSource

PROGRAM_IDENTIFIER = b"ET12"
DATA_IDENTIFIER = b"FT01"
EXTENDED_HEADER_MAGIC = b"eh00"
# magic, length, program size, segment base offset; segment data size is
# present only when the stated length leaves room for it.
_EH_MIN_LENGTH = 24
_EH_FULL_LENGTH = 32

XNNPACK_BACKEND_ID = "XnnpackBackend"
_XNN_HEADER_MAGIC = b"XH00"
_XNN_HEADER_LENGTH = 30
_XNN_GRAPH_IDENTIFIERS = (b"XN00", b"XN01")
# An XNNPACK graph flatbuffer describes nodes and values, not weights: a large
# LLM's is well under a megabyte. Past these limits the payload is refused.
_XNN_GRAPH_LIMIT = 16 << 20
_XNN_TOTAL_LIMIT = 64 << 20

Scalar: TypeAlias = int | bool | float | str
ConstantValue: TypeAlias = Scalar | list[Scalar]

# Union tags of KernelTypes in program.fbs, in declaration order from 1.
KERNEL_TYPES: dict[int, str] = {
    1: "Null",
    2: "Int",
    3: "Bool",
    4: "Double",
    5: "Tensor",
    6: "String",
    7: "IntList",
    8: "DoubleList",
    9: "BoolList",
    10: "TensorList",
    11: "OptionalTensorList",
}
SCALAR_KINDS = frozenset({"Int", "Bool", "Double", "String"})

# executorch_flatbuffer.ScalarType (scalar_type.fbs).
SCALAR_TYPES: dict[int, str] = {
    0: "BYTE",
    1: "CHAR",
    2: "SHORT",
    3: "INT",
    4: "LONG",
    5: "HALF",
    6: "FLOAT",
    7: "DOUBLE",
    11: "BOOL",
    12: "QINT8",
    13: "QUINT8",
    14: "QINT32",
    15: "BFLOAT16",
    16: "QUINT4X2",
    17: "QUINT2X4",
    22: "BITS16",
    23: "FLOAT8E5M2",
    24: "FLOAT8E4M3FN",
    25: "FLOAT8E5M2FNUZ",
    26: "FLOAT8E4M3FNUZ",
    27: "UINT16",
    28: "UINT32",
    29: "UINT64",
}
SHAPE_DYNAMISM: dict[int, str] = {
    0: "STATIC",
    1: "DYNAMIC_BOUND",
    2: "DYNAMIC_UNBOUND",
}

# Field numbers (declaration order) of the tables this reader visits.
_PROGRAM_VERSION, _PROGRAM_PLANS, _PROGRAM_CONSTANT_BUFFER = 0, 1, 2
_PROGRAM_INLINE_DATA = 3
_PROGRAM_SEGMENTS, _PROGRAM_CONSTANT_SEGMENT = 4, 5
_PROGRAM_MUTABLE_SEGMENTS, _PROGRAM_NAMED_DATA = 6, 7
_PLAN_NAME, _PLAN_VALUES, _PLAN_INPUTS, _PLAN_OUTPUTS = 0, 2, 3, 4
_PLAN_CHAINS, _PLAN_OPERATORS, _PLAN_DELEGATES = 5, 6, 7
_CHAIN_INSTRUCTIONS = 2
_TENSOR_SCALAR_TYPE, _TENSOR_SIZES, _TENSOR_DYNAMISM, _TENSOR_EXTRA = 0, 2, 8, 9
_EXTRA_NAME, _EXTRA_LOCATION = 1, 2
_LOCATION_EXTERNAL = 1
_DELEGATE_ID, _DELEGATE_PROCESSED = 0, 1
_DATA_INLINE, _DATA_SEGMENT = 0, 1
_XNN_GRAPH_CONSTANT_DATA, _XNN_CONSTANT_NAMED_KEY = 8, 2


@dataclass(frozen=True)
class ValueInfo:
    """One input or output of a method."""

    kind: str
    # The constant for scalars (Int, Bool, Double, String) and scalar lists.
    value: ConstantValue | None = None
    scalar_type: str | None = None
    sizes: tuple[int, ...] | None = None
    dynamism: str | None = None
    # Fully qualified name, for a tensor that has one.
    name: str | None = None

    @property
    def is_constant_scalar(self) -> bool:
        return self.kind in SCALAR_KINDS and self.value is not None

    def describe(self) -> str:
        """Short text: ``Int = 512`` or ``Tensor[FLOAT, 1x511x512]``."""
        if self.kind == "Tensor":
            dims = "x".join(str(s) for s in self.sizes or ()) or "scalar"
            parts = [self.scalar_type or "?", dims]
            if self.dynamism and self.dynamism != "STATIC":
                parts.append(self.dynamism.lower())
            return f"Tensor[{', '.join(parts)}]"
        if self.value is not None:
            return f"{self.kind} = {_show(self.value)}"
        return self.kind


@dataclass(frozen=True)
class Method:
    """One execution plan: a method of the exported module."""

    name: str
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    num_instructions: int
    operators: tuple[str, ...]
    # One backend id per delegate, in the plan's order.
    delegates: tuple[str, ...]
    num_values: int = 0

    @property
    def is_constant(self) -> bool:
        """No inputs, no instructions, and only constant scalar outputs."""
        return (
            not self.inputs
            and self.num_instructions == 0
            and bool(self.outputs)
            and all(v.is_constant_scalar for v in self.outputs)
        )

    @property
    def constant_value(self) -> ConstantValue | None:
        """The scalar a constant method returns, or the list of several."""
        if not self.is_constant:
            return None
        values: list[Scalar] = [
            v.value
            for v in self.outputs
            if v.value is not None and not isinstance(v.value, list)
        ]
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class ProgramInfo:
    """What a program's header and flatbuffer say."""

    source_name: str
    file_size: int
    program_size: int
    segment_base_offset: int
    segment_data_size: int
    version: int
    methods: tuple[Method, ...]
    segments: tuple[tuple[int, int], ...]
    named_data_keys: tuple[str, ...]
    external_tensor_keys: tuple[str, ...]
    backends: tuple[str, ...]
    required_data_keys: tuple[str, ...]
    has_extended_header: bool = True
    # Constants live only in the deprecated constant_buffer (no offsets in
    # constant_segment); ExecuTorch 1.5.1 is built without that path.
    uses_constant_buffer: bool = False

    @property
    def constants(self) -> dict[str, ConstantValue]:
        """Constant methods by name, with the value each returns."""
        found: dict[str, ConstantValue] = {}
        for method in self.methods:
            value = method.constant_value
            if value is not None:
                found[method.name] = value
        return found

    def method(self, name: str) -> Method | None:
        for method in self.methods:
            if method.name == name:
                return method
        return None


# -- identification -----------------------------------------------------------


def sniff(source: ByteSource) -> str:
    """``pte``, ``ptd``, ``bpte`` or ``unknown``, from the identifier bytes."""
    if source.size < 8:
        return "unknown"
    ident = source.read(4, 4)
    if ident == PROGRAM_IDENTIFIER:
        return "pte"
    if ident == DATA_IDENTIFIER:
        return "ptd"
    if ident[:2] == b"BP" and ident[2:].isdigit():
        return "bpte"
    return "unknown"


def _check_identifier(source: ByteSource) -> None:
    if source.size < 8:
        raise FormatError(
            source.name, f"file has {source.size} bytes, too short for a program", 0
        )
    ident = source.read(4, 4)
    if ident == PROGRAM_IDENTIFIER:
        return
    kind = sniff(source)
    if kind == "ptd":
        message = "an external weights file (.ptd, FT01), not a program"
    elif kind == "bpte":
        message = (
            f"a bundled program ({ident.decode()}, a program wrapped with test "
            "inputs), not a plain program; bundle the program itself"
        )
    elif ident[:2] == b"ET" and ident[2:].isdigit():
        message = f"program format {ident.decode()}, this reader knows ET12"
    else:
        message = f"not an ExecuTorch program: identifier {ident!r}, not ET12"
    raise FormatError(source.name, message, 4)


# -- header -------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    present: bool
    program_size: int
    segment_base_offset: int
    segment_data_size: int


def _read_header(source: ByteSource) -> _Header:
    if source.size < 16 or source.read(8, 4) != EXTENDED_HEADER_MAGIC:
        return _Header(False, source.size, 0, 0)
    (length,) = struct.unpack("<I", source.read(12, 4))
    if length < _EH_MIN_LENGTH:
        raise FormatError(
            source.name, f"extended header length {length} is below 24", 12
        )
    if 8 + length > source.size:
        raise FormatError(
            source.name,
            f"extended header claims {length} bytes, past the end of the file",
            12,
        )
    raw = source.read(16, min(length, _EH_FULL_LENGTH) - 8)
    program_size, base = struct.unpack_from("<QQ", raw)
    data_size = struct.unpack_from("<Q", raw, 16)[0] if len(raw) >= 24 else 0
    return _Header(True, program_size, base, data_size)


def _check_header(source: ByteSource, head: _Header) -> None:
    name, size = source.name, source.size
    if head.program_size > size:
        raise FormatError(
            name,
            f"header claims a {head.program_size}-byte program, "
            f"the file has {size} bytes",
            16,
        )
    if head.program_size < 8 + _EH_MIN_LENGTH:
        raise FormatError(
            name, f"header claims a {head.program_size}-byte program, too small", 16
        )
    has_segment_data = head.segment_base_offset or head.segment_data_size
    if has_segment_data and head.segment_base_offset < head.program_size:
        raise FormatError(
            name,
            f"segment data starts at {head.segment_base_offset}, inside the "
            f"{head.program_size}-byte program",
            24,
        )
    if head.segment_base_offset + head.segment_data_size > size:
        raise FormatError(
            name,
            f"segment data claims bytes {head.segment_base_offset}.."
            f"{head.segment_base_offset + head.segment_data_size}, "
            f"the file has {size} bytes",
            24,
        )


# -- the flatbuffer -----------------------------------------------------------


# How to read the value of each constant kind from its union table.
_CONSTANT_READERS: dict[str, Callable[[Table], ConstantValue]] = {
    "Int": lambda t: t.number(0, "i64"),
    "Bool": lambda t: t.flag(0),
    "Double": lambda t: t.real(0),
    "String": lambda t: t.string(0) or "",
    "IntList": lambda t: list(t.ints(0, "i64", "int list")),
    "DoubleList": lambda t: [float(v) for v in t.scalars(0, "f64", "double list")],
    "BoolList": lambda t: [bool(v) for v in t.scalars(0, "u8", "bool list")],
}


def _constant_value(kind: str, table: Table | None) -> ConstantValue | None:
    reader = _CONSTANT_READERS.get(kind)
    if table is None or reader is None:
        return None
    return reader(table)


def _tensor_info(table: Table) -> ValueInfo:
    stype = table.number(_TENSOR_SCALAR_TYPE, "i8")
    dynamism = table.number(_TENSOR_DYNAMISM, "i8")
    extra = table.table(_TENSOR_EXTRA, "extra tensor info")
    return ValueInfo(
        kind="Tensor",
        scalar_type=SCALAR_TYPES.get(stype, f"UNKNOWN_{stype}"),
        sizes=tuple(table.ints(_TENSOR_SIZES, "i32", "tensor sizes")),
        dynamism=SHAPE_DYNAMISM.get(dynamism, f"UNKNOWN_{dynamism}"),
        name=extra.string(_EXTRA_NAME) if extra is not None else None,
    )


def _value_info(value: Table) -> ValueInfo:
    tag, body = value.union(0, "value")
    kind = KERNEL_TYPES.get(tag)
    if kind is None:
        raise value.buf.error(f"value has unknown type tag {tag}", value.pos)
    if kind == "Tensor" and body is not None:
        return _tensor_info(body)
    return ValueInfo(kind=kind, value=_constant_value(kind, body))


def _external_key(value: Table) -> str | None:
    """The key of a tensor whose data lives outside the program, if it is one."""
    tag, body = value.union(0, "value")
    if KERNEL_TYPES.get(tag) != "Tensor" or body is None:
        return None
    extra = body.table(_TENSOR_EXTRA, "extra tensor info")
    if extra is None or extra.number(_EXTRA_LOCATION, "i8") != _LOCATION_EXTERNAL:
        return None
    key = extra.string(_EXTRA_NAME)
    if not key:
        raise body.buf.error("external tensor has no fully qualified name", body.pos)
    return key


def _pick(plan: Table, values: list[Table], field: int, what: str) -> list[Table]:
    """Values named by an index vector (inputs or outputs)."""
    start, _ = plan.vector(field, 4, what)
    picked = []
    for i, index in enumerate(plan.ints(field, "i32", what)):
        if not 0 <= index < len(values):
            raise plan.buf.error(
                f"{what}[{i}] names value {index}, the plan has {len(values)}",
                start + 4 * i,
            )
        picked.append(values[index])
    return picked


def _operator_name(op: Table) -> str:
    name = op.string(0) or ""
    overload = op.string(1) or ""
    return f"{name}.{overload}" if overload else name


@dataclass(frozen=True)
class _DelegateRef:
    backend: str
    location: int
    index: int
    pos: int


def _delegate_ref(delegate: Table) -> _DelegateRef:
    processed = delegate.table(_DELEGATE_PROCESSED, "delegate data reference")
    if processed is None:
        raise delegate.buf.error("delegate has no data reference", delegate.pos)
    return _DelegateRef(
        backend=delegate.string(_DELEGATE_ID) or "",
        location=processed.number(0, "i8"),
        index=processed.number(1, "u32"),
        pos=processed.pos,
    )


@dataclass(frozen=True)
class _Plan:
    method: Method
    external_keys: tuple[str, ...]
    delegates: tuple[_DelegateRef, ...]


def _read_plan(plan: Table) -> _Plan:
    values = plan.tables(_PLAN_VALUES, "values")
    inputs = _pick(plan, values, _PLAN_INPUTS, "inputs")
    outputs = _pick(plan, values, _PLAN_OUTPUTS, "outputs")
    chains = plan.tables(_PLAN_CHAINS, "chains")
    refs = tuple(plan.map_tables(_PLAN_DELEGATES, "delegates", _delegate_ref))
    method = Method(
        name=plan.string(_PLAN_NAME) or "",
        inputs=tuple(_value_info(v) for v in inputs),
        outputs=tuple(_value_info(v) for v in outputs),
        num_instructions=sum(
            c.vector(_CHAIN_INSTRUCTIONS, 4, "instructions")[1] for c in chains
        ),
        operators=tuple(plan.map_tables(_PLAN_OPERATORS, "operators", _operator_name)),
        delegates=tuple(r.backend for r in refs),
        num_values=len(values),
    )
    keys = (_external_key(v) for v in values)
    return _Plan(method, tuple(k for k in keys if k), refs)


def _segment(table: Table) -> tuple[int, int]:
    return table.number(0, "u64"), table.number(1, "u64")


def _named_data(table: Table) -> tuple[str, int]:
    return table.string(0) or "", table.number(1, "u32")


def _check_segments(
    source: ByteSource, head: _Header, segments: list[tuple[int, int]], pos: int
) -> None:
    for i, (offset, size) in enumerate(segments):
        if size == 0:
            continue
        if not head.present:
            raise FormatError(
                source.name,
                f"segment {i} holds {size} bytes but the file has no extended "
                "header to locate segment data",
                pos,
            )
        end = head.segment_base_offset + offset + size
        if end > source.size:
            raise FormatError(
                source.name,
                f"segment {i} ends at byte {end}, the file has {source.size} bytes",
                pos,
            )


def _check_segment_index(
    buf: Buffer, index: int, count: int, what: str, pos: int
) -> None:
    if index >= count:
        raise buf.error(f"{what} names segment {index}, there are {count}", pos)


def _check_references(
    buf: Buffer, root: Table, segments: int, named: list[Table]
) -> None:
    for entry in named:
        key, index = _named_data(entry)
        _check_segment_index(buf, index, segments, f"named data {key!r}", entry.pos)
    constant = root.table(_PROGRAM_CONSTANT_SEGMENT, "constant segment")
    if constant is not None and constant.vector(1, 8, "constant offsets")[1]:
        index = constant.number(0, "u32")
        _check_segment_index(buf, index, segments, "constant data", constant.pos)
    for mutable in root.tables(_PROGRAM_MUTABLE_SEGMENTS, "mutable data segments"):
        index = mutable.number(0, "u32")
        _check_segment_index(buf, index, segments, "mutable data", mutable.pos)


# -- XNNPACK delegate payloads --------------------------------------------------


class _Payloads:
    """Reads delegate payload ranges by file offset, within a byte budget."""

    def __init__(self, source: ByteSource, program: bytes):
        self.source = source
        self.program = program
        self.spent = 0
        # One work budget for all graphs: see flatbuffer.Budget.
        self.budget = Budget()

    def read(self, offset: int, length: int) -> bytes:
        # Inline payloads sit inside the flatbuffer, already in memory.
        if offset + length <= len(self.program):
            return self.program[offset : offset + length]
        self.spent += length
        if self.spent > _XNN_TOTAL_LIMIT:
            raise FormatError(
                self.source.name,
                f"xnnpack graphs exceed {_XNN_TOTAL_LIMIT >> 20} MiB in total",
                offset,
            )
        return self.source.read(offset, length)


def _payload_range(
    buf: Buffer,
    ref: _DelegateRef,
    inline: list[tuple[int, int]],
    segments: list[tuple[int, int]],
    base: int,
) -> tuple[int, int]:
    """``(file offset, size)`` of a delegate's payload."""
    if ref.location == _DATA_INLINE:
        if ref.index >= len(inline):
            raise buf.error(
                f"delegate names inline data {ref.index}, there are {len(inline)}",
                ref.pos,
            )
        return inline[ref.index]
    if ref.location == _DATA_SEGMENT:
        _check_segment_index(buf, ref.index, len(segments), "delegate", ref.pos)
        offset, size = segments[ref.index]
        return base + offset, size
    raise buf.error(f"delegate data has unknown location {ref.location}", ref.pos)


def _xnn_graph_range(payloads: _Payloads, start: int, size: int) -> tuple[int, int]:
    """``(file offset, size)`` of the graph flatbuffer inside an XNNPACK payload."""
    name = payloads.source.name
    if size < 8:
        raise FormatError(name, f"xnnpack payload of {size} bytes is too short", start)
    head = payloads.read(start, min(size, _XNN_HEADER_LENGTH))
    magic = head[4:8]
    if magic in _XNN_GRAPH_IDENTIFIERS:
        # No payload header: the payload is the graph flatbuffer itself.
        return start, size
    if magic != _XNN_HEADER_MAGIC or size < _XNN_HEADER_LENGTH:
        raise FormatError(name, f"xnnpack payload has no header ({magic!r})", start)
    length, fb_offset, fb_size = struct.unpack_from("<HII", head, 8)
    if length < _XNN_HEADER_LENGTH:
        raise FormatError(name, f"xnnpack header length {length} is below 30", start)
    if fb_size == 0 or fb_offset + fb_size > size:
        raise FormatError(
            name,
            f"xnnpack header puts its {fb_size}-byte graph at {fb_offset}, "
            f"outside the {size}-byte payload",
            start + 8,
        )
    return start + fb_offset, fb_size


def _xnn_named_keys(payloads: _Payloads, start: int, size: int) -> list[str]:
    """Named data keys that one XNNPACK payload's constants refer to."""
    name = payloads.source.name
    fb_start, fb_size = _xnn_graph_range(payloads, start, size)
    if fb_size > _XNN_GRAPH_LIMIT:
        raise FormatError(
            name,
            f"xnnpack graph claims {fb_size} bytes, over the "
            f"{_XNN_GRAPH_LIMIT >> 20} MiB this reader accepts",
            fb_start,
        )
    graph = Buffer(name, payloads.read(fb_start, fb_size), fb_start, payloads.budget)
    if graph.identifier() not in _XNN_GRAPH_IDENTIFIERS:
        raise graph.error(f"xnnpack graph identifier is {graph.identifier()!r}", 4)
    root = graph.root()
    constants = root.tables(_XNN_GRAPH_CONSTANT_DATA, "xnnpack constant data")
    keys = (c.string(_XNN_CONSTANT_NAMED_KEY, "named key") for c in constants)
    return [k for k in keys if k]


def _delegate_keys(
    source: ByteSource,
    buf: Buffer,
    payloads: list[tuple[_DelegateRef, tuple[int, int]]],
) -> set[str]:
    """Named data keys that the program's XNNPACK delegates refer to."""
    reader = _Payloads(source, buf.data)
    keys: set[str] = set()
    seen: set[tuple[int, int]] = set()
    for ref, where in payloads:
        if ref.backend == XNNPACK_BACKEND_ID and where not in seen:
            seen.add(where)
            keys.update(_xnn_named_keys(reader, *where))
    return keys


def _locate_payloads(
    buf: Buffer,
    root: Table,
    refs: list[_DelegateRef],
    segments: list[tuple[int, int]],
    base: int,
) -> list[tuple[_DelegateRef, tuple[int, int]]]:
    """Each delegate with the file range of its payload, checked."""
    inline = root.map_tables(
        _PROGRAM_INLINE_DATA,
        "inline delegate data",
        lambda t: t.vector(0, 1, "inline delegate data"),
    )
    return [(r, _payload_range(buf, r, inline, segments, base)) for r in refs]


# -- entry point ----------------------------------------------------------------


def _uses_constant_buffer(root: Table) -> bool:
    buffers = root.vector(_PROGRAM_CONSTANT_BUFFER, 4, "constant buffer")[1]
    segment = root.table(_PROGRAM_CONSTANT_SEGMENT, "constant segment")
    offsets = segment.vector(1, 8, "constant offsets")[1] if segment else 0
    return buffers > 0 and offsets == 0


def read_program(source: ByteSource) -> ProgramInfo:
    """Read a program's header and flatbuffer; raise FormatError if corrupt."""
    _check_identifier(source)
    head = _read_header(source)
    if head.present:
        _check_header(source, head)
    if head.program_size > MAX_FLATBUFFER:
        raise FormatError(
            source.name,
            f"program flatbuffer of {head.program_size} bytes is over the "
            f"{MAX_FLATBUFFER >> 20} MiB this reader loads",
            16 if head.present else 0,
        )
    buf = Buffer(source.name, source.read(0, head.program_size))
    root = buf.root()

    plans = root.map_tables(_PROGRAM_PLANS, "execution plans", _read_plan)
    seg_pos = root.vector(_PROGRAM_SEGMENTS, 4, "segments")[0]
    segments = root.map_tables(_PROGRAM_SEGMENTS, "segments", _segment)
    _check_segments(source, head, segments, seg_pos)
    named = root.tables(_PROGRAM_NAMED_DATA, "named data")
    _check_references(buf, root, len(segments), named)
    refs = [r for p in plans for r in p.delegates]
    payloads = _locate_payloads(buf, root, refs, segments, head.segment_base_offset)

    named_keys = tuple(_named_data(n)[0] for n in named)
    external = sorted({k for p in plans for k in p.external_keys})
    wanted = set(external) | _delegate_keys(source, buf, payloads)
    return ProgramInfo(
        source_name=source.name,
        file_size=source.size,
        program_size=head.program_size,
        segment_base_offset=head.segment_base_offset,
        segment_data_size=head.segment_data_size,
        version=root.number(_PROGRAM_VERSION, "u32"),
        uses_constant_buffer=_uses_constant_buffer(root),
        methods=tuple(p.method for p in plans),
        segments=tuple(segments),
        named_data_keys=named_keys,
        external_tensor_keys=tuple(external),
        backends=tuple(sorted({r.backend for r in refs})),
        required_data_keys=tuple(sorted(wanted - set(named_keys))),
        has_extended_header=head.present,
    )


# -- text summary ---------------------------------------------------------------

_MAX_SEGMENT_LINES = 16


def _show(value: ConstantValue) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _signature(method: Method) -> str:
    args = ", ".join(v.describe() for v in method.inputs)
    outs = ", ".join(v.describe() for v in method.outputs)
    return f"{method.name}({args}) -> ({outs})"


def _method_lines(method: Method) -> list[str]:
    lines = [f"  {_signature(method)}"]
    facts = [f"{method.num_instructions} instructions"]
    if method.operators:
        facts.append(f"{len(method.operators)} operators")
    if method.delegates:
        counts = {b: method.delegates.count(b) for b in sorted(set(method.delegates))}
        by_backend = ", ".join(f"{b} x{n}" for b, n in counts.items())
        facts.append(f"{len(method.delegates)} delegates ({by_backend})")
    lines.append("    " + ", ".join(facts))
    return lines


def _segment_lines(info: ProgramInfo) -> list[str]:
    lines = []
    for i, (offset, size) in enumerate(info.segments[:_MAX_SEGMENT_LINES]):
        start = info.segment_base_offset + offset
        lines.append(f"  {i}: {size} bytes at {start}")
    hidden = len(info.segments) - _MAX_SEGMENT_LINES
    if hidden > 0:
        lines.append(f"  ... {hidden} more")
    return lines


def format_program(info: ProgramInfo) -> str:
    """A human-readable summary: methods, constants, backends, segments."""
    lines = [
        f"program {info.source_name}: {info.file_size} bytes, "
        f"flatbuffer {info.program_size} bytes, version {info.version}",
        f"backends: {', '.join(info.backends) or 'none (portable kernels)'}",
    ]
    constants = info.constants
    running = [m for m in info.methods if m.name not in constants]
    lines.append(f"methods ({len(running)}):")
    for method in running:
        lines.extend(_method_lines(method))
    if constants:
        lines.append(f"constants ({len(constants)}):")
        lines.extend(f"  {k} = {_show(v)}" for k, v in constants.items())
    if info.named_data_keys:
        lines.append(f"named data in the program: {len(info.named_data_keys)} keys")
    if info.required_data_keys:
        lines.append(
            f"external data needed: {len(info.required_data_keys)} keys "
            f"({len(info.external_tensor_keys)} plain tensors)"
        )
    lines.append(
        f"segments ({len(info.segments)}, {info.segment_data_size} bytes "
        f"from byte {info.segment_base_offset}):"
    )
    lines.extend(_segment_lines(info))
    return "\n".join(lines)
