"""The program reader against real .pte files, and against ExecuTorch itself.

Expected values come from the files' provenance notes and, in the tests marked
``runtime``, from executorch's own Python deserializer, the flatc compiler it
ships, and its runtime executing the constant methods.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest

from etm_lint.errors import FormatError
from etm_lint.format.pte import (
    ConstantValue,
    ProgramInfo,
    ValueInfo,
    format_program,
    read_program,
    sniff,
)
from etm_lint.format.source import BytesSource, FileSource

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
PTE_DIR = REAL / "pte"
STORIES = REAL / "models" / "stories260K"
CORRUPT = "djl-executorch__corrupt.pte"
QNN = "executorch__stories260k_hybrid_llama_qnn.pte"

PTE_FILES = sorted(p.name for p in PTE_DIR.glob("*.pte")) if PTE_DIR.is_dir() else []
GOOD_FILES = [n for n in PTE_FILES if n != CORRUPT]


def real(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real input {path} is not present")
    return path


class CountingSource:
    """A real file source that records every range read through it."""

    def __init__(self, path: Path):
        self._inner = FileSource(path)
        self.name = self._inner.name
        self.size = self._inner.size
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return self._inner.read(offset, length)

    @property
    def bytes_read(self) -> int:
        return sum(length for _, length in self.reads)

    def close(self) -> None:
        self._inner.close()


def read_path(path: Path) -> ProgramInfo:
    with FileSource(path) as source:
        return read_program(source)


def provenance_metadata() -> dict[str, Any]:
    """The constant methods PROVENANCE.md says the stories260K export wrote."""
    text = real(STORIES / "PROVENANCE.md").read_text(encoding="utf-8")
    line = re.search(r"Metadata: `([^`]*)`", text)
    assert line, "PROVENANCE.md no longer states the metadata"
    pairs = re.findall(r"(\w+)=(\[[^\]]*\]|[^,]+)", line.group(1))
    return {k: ast.literal_eval(v.strip()) for k, v in pairs}


# -- every real file ------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_FILES)
def test_every_real_program_reads(name: str) -> None:
    path = real(PTE_DIR / name)
    with FileSource(path) as source:
        assert sniff(source) == "pte"
        info = read_program(source)
    assert info.methods
    assert all(m.name for m in info.methods)
    assert info.file_size == path.stat().st_size
    assert 0 < info.program_size <= info.file_size
    for offset, size in info.segments:
        assert info.segment_base_offset + offset + size <= info.file_size
    summary = format_program(info)
    for method in info.methods:
        assert method.name in summary


def test_corrupt_program_raises_one_format_error() -> None:
    path = real(PTE_DIR / CORRUPT)
    with FileSource(path) as source, pytest.raises(FormatError) as caught:
        read_program(source)
    assert caught.value.source == str(path)
    assert caught.value.offset is not None
    assert str(path) in str(caught.value)


def test_bundled_program_is_named_as_such() -> None:
    path = real(PTE_DIR / "executorch__bundled_program.bpte")
    with FileSource(path) as source:
        assert sniff(source) == "bpte"
        with pytest.raises(FormatError, match="bundled program"):
            read_program(source)


def test_data_file_given_as_program_is_named_as_such() -> None:
    path = real(PTE_DIR / "executorch-rs__data_map__default_external_constant.ptd")
    with FileSource(path) as source:
        assert sniff(source) == "ptd"
        with pytest.raises(FormatError, match=r"\.ptd"):
            read_program(source)


def test_sniff_short_and_foreign_files() -> None:
    assert sniff(BytesSource("empty", b"")) == "unknown"
    assert sniff(BytesSource("zip", b"PK\x03\x04" + bytes(60))) == "unknown"
    with pytest.raises(FormatError, match="too short"):
        read_program(BytesSource("tiny", b"\x00\x00\x00\x00ET"))


# -- the stories260K program ----------------------------------------------------


def test_stories_constants_match_provenance() -> None:
    expected = provenance_metadata()
    assert expected["get_max_seq_len"] == 512
    for name in ("model.pte", "model_ext.pte"):
        info = read_path(real(STORIES / name))
        assert info.constants == expected, name
        assert info.method("get_eos_ids") is not None
        eos = info.method("get_eos_ids")
        assert eos is not None and [v.kind for v in eos.outputs] == ["Int", "Int"]


def test_stories_forward_signature_matches_provenance() -> None:
    # PROVENANCE.md: forward(input_ids[1,S] int64, cache_position[S] int64)
    # -> logits[1,S,512], with S dynamic up to 511.
    info = read_path(real(STORIES / "model.pte"))
    forward = info.method("forward")
    assert forward is not None and not forward.is_constant
    dynamic = "DYNAMIC_BOUND"
    assert forward.inputs == (
        ValueInfo("Tensor", scalar_type="LONG", sizes=(1, 511), dynamism=dynamic),
        ValueInfo("Tensor", scalar_type="LONG", sizes=(511,), dynamism=dynamic),
    )
    (logits,) = forward.outputs
    assert (logits.scalar_type, logits.sizes) == ("FLOAT", (1, 511, 512))
    # PROVENANCE.md: 58 XNNPACK delegate calls.
    assert forward.delegates == ("XnnpackBackend",) * 58
    assert info.backends == ("XnnpackBackend",)


def test_stories_embedded_program_needs_no_external_data() -> None:
    info = read_path(real(STORIES / "model.pte"))
    assert info.external_tensor_keys == ()
    assert info.required_data_keys == ()
    assert info.named_data_keys


def test_external_program_delegates_want_what_the_embedded_one_carries() -> None:
    # The same export with weights moved out: the XNNPACK weights that
    # model.pte carries as named data are exactly the ones model_ext.pte's
    # delegates ask for by key.
    embedded = read_path(real(STORIES / "model.pte"))
    external = read_path(real(STORIES / "model_ext.pte"))
    assert external.named_data_keys == ()
    delegate_keys = set(external.required_data_keys) - set(
        external.external_tensor_keys
    )
    assert delegate_keys == set(embedded.named_data_keys)
    assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in delegate_keys)
    assert "model.model.embed_tokens.weight" in external.external_tensor_keys


def test_format_program_summarises_the_stories_program() -> None:
    text = format_program(read_path(real(STORIES / "model.pte")))
    assert "forward(Tensor[LONG, 1x511, dynamic_bound]" in text
    assert "get_eos_ids = [1, 2]" in text
    assert "use_kv_cache = True" in text
    assert "XnnpackBackend x58" in text
    assert "segments (95" in text


# -- the Qualcomm-delegated program -------------------------------------------


def test_qnn_program_reports_its_own_constant_names() -> None:
    # Method names as executorch.runtime lists them for this file: its export
    # script uses get_eos_id (singular) and get_use_kv_cache.
    info = read_path(real(PTE_DIR / QNN))
    assert info.backends == ("QnnBackend",)
    assert {"get_eos_id", "get_use_kv_cache", "get_max_seq_len"} <= set(info.constants)
    assert "get_eos_ids" not in info.constants
    assert {m.name for m in info.methods if not m.is_constant} == {
        "kv_forward",
        "prefill_forward",
    }


# -- bytes read -----------------------------------------------------------------


def test_reading_reads_the_flatbuffer_not_the_weights() -> None:
    source = CountingSource(real(PTE_DIR / QNN))
    try:
        info = read_program(source)
    finally:
        source.close()
    # 1.35 MB file, 18.7 KB flatbuffer; QNN payloads are never opened.
    assert all(off + n <= info.program_size for off, n in source.reads)
    assert source.bytes_read <= info.program_size + 64
    assert len(source.reads) <= 8


def test_xnnpack_payloads_are_read_only_up_to_their_graph() -> None:
    source = CountingSource(real(STORIES / "model.pte"))
    try:
        info = read_program(source)
    finally:
        source.close()
    weights_start = info.segment_base_offset + info.segments[0][0]
    weights_end = weights_start + info.segments[0][1]
    beyond = [(o, n) for o, n in source.reads if o >= info.program_size]
    # Segment 0 is the constant segment: 134 KB of plain weights.
    assert not [r for r in beyond if weights_start <= r[0] < weights_end]
    assert all(n <= 4096 for _, n in beyond)
    assert source.bytes_read < info.file_size // 8


# -- claimed sizes and broken headers -----------------------------------------


def _stories_bytes() -> bytearray:
    return bytearray(real(STORIES / "model_ext.pte").read_bytes())


def test_program_size_past_the_file_is_refused_before_reading() -> None:
    data = _stories_bytes()
    struct.pack_into("<Q", data, 16, 1 << 40)
    reads: list[int] = []

    class Watch(BytesSource):
        def read(self, offset: int, length: int) -> bytes:
            reads.append(length)
            return super().read(offset, length)

    with pytest.raises(FormatError, match="program") as caught:
        read_program(Watch("big.pte", bytes(data)))
    assert caught.value.offset == 16
    assert max(reads) <= 32


def test_segment_data_past_the_file_is_refused() -> None:
    data = _stories_bytes()
    struct.pack_into("<Q", data, 32, 1 << 33)
    with pytest.raises(FormatError, match="segment data"):
        read_program(BytesSource("seg.pte", bytes(data)))


def test_truncated_program_is_refused() -> None:
    data = bytes(_stories_bytes())
    with pytest.raises(FormatError):
        read_program(BytesSource("cut.pte", data[: len(data) - 1]))
    with pytest.raises(FormatError):
        read_program(BytesSource("cut.pte", data[:4000]))


def test_segment_past_the_file_is_refused() -> None:
    data = _stories_bytes()
    # Keep the header's totals honest, but claim less segment data: the last
    # segment then ends past the bytes the file keeps.
    info = read_program(BytesSource("ok.pte", bytes(data)))
    struct.pack_into("<Q", data, 32, 0)
    cut = bytes(data[: info.segment_base_offset + 64])
    with pytest.raises(FormatError, match="segment 1 ends"):
        read_program(BytesSource("seg.pte", cut))


def test_huge_flatbuffer_is_refused_without_reading_it(tmp_path: Path) -> None:
    # A sparse 300 MB file that starts like a program without a header: all of
    # it would be flatbuffer, more than the reader will load.
    path = tmp_path / "huge.pte"
    with path.open("wb") as out:
        out.write(struct.pack("<I4s", 8, b"ET12"))
        out.truncate(300 << 20)
    source = CountingSource(path)
    try:
        with pytest.raises(FormatError, match="MiB"):
            read_program(source)
    finally:
        source.close()
    assert source.bytes_read <= 16


def test_program_without_extended_header() -> None:
    info = read_path(real(PTE_DIR / "node-executorch__mul.pte"))
    assert not info.has_extended_header
    assert info.program_size == info.file_size
    assert info.segment_base_offset == 0


def test_bad_extended_header_length() -> None:
    data = _stories_bytes()
    struct.pack_into("<I", data, 12, 8)
    with pytest.raises(FormatError, match="header length"):
        read_program(BytesSource("len.pte", bytes(data)))


# -- ExecuTorch as the reference (runtime extra) ------------------------------


def _kind_and_value(evalue: Any) -> tuple[str, Any]:
    val = evalue.val
    kind = type(val).__name__
    if kind == "Int":
        return kind, val.int_val
    if kind == "Bool":
        return kind, val.bool_val
    if kind == "Double":
        return kind, float(val.double_val)
    if kind == "String":
        return kind, val.string_val
    if kind == "Tensor":
        sizes = tuple(val.sizes)
        return kind, (val.scalar_type.name, sizes, val.shape_dynamism.name)
    if kind in ("IntList", "DoubleList", "BoolList"):
        return kind, list(val.items)
    return kind, None


def _ours(value: ValueInfo) -> tuple[str, Any]:
    if value.kind == "Tensor":
        return value.kind, (value.scalar_type, value.sizes, value.dynamism)
    return value.kind, value.value


@pytest.fixture(scope="module")
def exir() -> Any:
    try:
        from executorch.exir._serialize import _program
        from executorch.exir.schema import TensorDataLocation

        assert _program._flatbuffer_to_program and _program._get_extended_header
    except (ImportError, AttributeError):
        pytest.skip("executorch's exir serializer is not importable")
    return _program, TensorDataLocation


@pytest.mark.runtime
@pytest.mark.parametrize("name", GOOD_FILES)
def test_matches_exir_deserializer(exir: Any, name: str) -> None:
    program_mod, location = exir
    data = real(PTE_DIR / name).read_bytes()
    header = program_mod._get_extended_header(data)
    size = header.program_size if header else len(data)
    program = program_mod._flatbuffer_to_program(data[:size])
    info = read_program(BytesSource(name, data))

    assert info.version == program.version
    segments = program.segments or []
    assert info.segments == tuple((s.offset, s.size) for s in segments)
    assert info.named_data_keys == tuple(n.key for n in program.named_data or [])
    assert [m.name for m in info.methods] == [p.name for p in program.execution_plan]
    external = set()
    for method, plan in zip(info.methods, program.execution_plan, strict=True):
        values = plan.values
        assert [_ours(v) for v in method.inputs] == [
            _kind_and_value(values[i]) for i in plan.inputs
        ]
        assert [_ours(v) for v in method.outputs] == [
            _kind_and_value(values[i]) for i in plan.outputs
        ]
        assert method.num_instructions == sum(len(c.instructions) for c in plan.chains)
        assert method.operators == tuple(
            f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators
        )
        assert method.delegates == tuple(d.id for d in plan.delegates)
        for v in values:
            extra = getattr(v.val, "extra_tensor_info", None)
            if extra is not None and extra.location == location.EXTERNAL:
                external.add(extra.fully_qualified_name)
    assert info.external_tensor_keys == tuple(sorted(external))


def _xnnpack_keys_by_flatc(payload: bytes) -> set[str]:
    """Named keys in one XNNPACK payload, decoded by executorch's flatc."""
    from importlib import resources

    import executorch.backends.xnnpack.serialization as xnn_serialization
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import (
        XNNHeader,
    )
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = XNNHeader.from_bytes(payload[: XNNHeader.EXPECTED_LENGTH])
    start = header.flatbuffer_offset
    graph = payload[start : start + header.flatbuffer_size]
    schema = resources.files(xnn_serialization).joinpath("schema.fbs")
    with tempfile.TemporaryDirectory() as tmp, resources.as_file(schema) as fbs:
        path = Path(tmp) / "graph.bin"
        path.write_bytes(graph)
        _flatc_decompile(tmp, str(fbs), str(path))
        decoded = json.loads((Path(tmp) / "graph.json").read_text())
    return {c["named_key"] for c in decoded.get("constant_data", []) if c["named_key"]}


@pytest.mark.runtime
@pytest.mark.parametrize("name", ["model.pte", "model_ext.pte"])
def test_required_keys_match_exir_and_flatc(exir: Any, name: str) -> None:
    program_mod, location = exir
    data = real(STORIES / name).read_bytes()
    # deserialize_pte_binary moves every delegate payload inline and keeps the
    # program's own named data aside.
    pte = program_mod.deserialize_pte_binary(data)
    program = pte.program
    wanted: set[str] = set()
    for plan in program.execution_plan:
        for delegate in plan.delegates:
            if delegate.id == "XnnpackBackend":
                blob = program.backend_delegate_data[delegate.processed.index].data
                wanted |= _xnnpack_keys_by_flatc(bytes(blob))
        for v in plan.values:
            extra = getattr(v.val, "extra_tensor_info", None)
            if extra is not None and extra.location == location.EXTERNAL:
                wanted.add(extra.fully_qualified_name)
    carried = set(pte.named_data.pte_data) if pte.named_data else set()
    info = read_program(BytesSource(name, data))
    assert set(info.named_data_keys) == carried
    assert info.required_data_keys == tuple(sorted(wanted - carried))


def _as_runtime_list(value: ConstantValue) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.runtime
@pytest.mark.parametrize(
    "path",
    [STORIES / "model.pte", STORIES / "model_ext.pte", PTE_DIR / QNN],
    ids=["model.pte", "model_ext.pte", "qnn"],
)
def test_constants_match_runtime_execution(path: Path) -> None:
    runtime = pytest.importorskip("executorch.runtime")
    info = read_path(real(path))
    program = runtime.Runtime.get().load_program(str(path))
    assert set(program.method_names) == {m.name for m in info.methods}
    for name, value in info.constants.items():
        outputs = program.load_method(name).execute([])
        assert list(outputs) == _as_runtime_list(value), name
