"""The data-file reader against real .ptd files and the programs that use them.

Expected keys come from the exporter's real output pairs and, in the tests
marked ``runtime``, from executorch's own flat_tensor deserializer and its
runtime loading the pair.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from etm_lint.errors import FormatError
from etm_lint.format.ptd import TensorLayout, read_data_file
from etm_lint.format.pte import read_program, sniff
from etm_lint.format.source import BytesSource, FileSource

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
PTE_DIR = REAL / "pte"
STORIES = REAL / "models" / "stories260K"
RS_PTD = PTE_DIR / "executorch-rs__data_map__default_external_constant.ptd"
RS_PTE = PTE_DIR / "executorch-rs__data_map_model.pte"
STORIES_PTD = STORIES / "model_weights.ptd"
STORIES_PTE = STORIES / "model_ext.pte"


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

    def close(self) -> None:
        self._inner.close()


def read_ptd(path: Path) -> Any:
    with FileSource(real(path)) as source:
        assert sniff(source) == "ptd"
        return read_data_file(source)


def read_pte(path: Path) -> Any:
    with FileSource(real(path)) as source:
        return read_program(source)


# -- real files -----------------------------------------------------------------


def test_small_data_file() -> None:
    info = read_ptd(RS_PTD)
    assert info.keys == ("a", "b")
    assert info.file_size == 336
    assert info.flatbuffer_offset == 48
    assert info.segment_base_offset + info.segment_data_size == info.file_size
    assert info.layout("a") == TensorLayout("FLOAT", (2, 2), (0, 1))
    assert info.layout("missing") is None


def test_stories_data_file_layouts() -> None:
    info = read_ptd(STORIES_PTD)
    assert len(info.keys) == len(set(info.keys)) == 49
    # PROVENANCE.md: vocab 512, dim 64, fp32; the embedding is a 512x64 table.
    embed = info.layout("model.model.embed_tokens.weight")
    assert embed == TensorLayout("FLOAT", (512, 64), (0, 1))
    # XNNPACK-packed weights are stored as opaque blobs, without a layout.
    hashed = [e for e in info.entries if len(e.key) == 64]
    assert len(hashed) == 36 and all(e.layout is None for e in hashed)


@pytest.mark.parametrize(
    ("program", "data"),
    [(RS_PTE, RS_PTD), (STORIES_PTE, STORIES_PTD)],
    ids=["executorch-rs", "stories260K"],
)
def test_program_needs_are_provided_by_its_data_file(program: Path, data: Path) -> None:
    needs = read_pte(program).required_data_keys
    provides = read_ptd(data).keys
    assert needs
    assert set(needs) <= set(provides)
    # The exporter wrote these pairs together: nothing in them is dead weight.
    assert set(provides) == set(needs)


def test_stories_program_does_not_run_on_the_small_data_file() -> None:
    needs = set(read_pte(STORIES_PTE).required_data_keys)
    assert not needs <= set(read_ptd(RS_PTD).keys)


def test_reading_reads_only_header_and_flatbuffer() -> None:
    source = CountingSource(real(STORIES_PTD))
    try:
        info = read_data_file(source)
    finally:
        source.close()
    fb_end = info.flatbuffer_offset + info.flatbuffer_size
    assert all(off + n <= fb_end for off, n in source.reads)
    assert sum(n for _, n in source.reads) <= fb_end + 64
    # About 6 KB of a 1 MB file.
    assert fb_end < info.file_size // 100


# -- broken files ---------------------------------------------------------------


def _stories_ptd() -> bytearray:
    return bytearray(real(STORIES_PTD).read_bytes())


def test_program_given_as_data_file() -> None:
    with (
        FileSource(real(STORIES_PTE)) as source,
        pytest.raises(FormatError, match="a program"),
    ):
        read_data_file(source)


def test_missing_header_magic() -> None:
    data = _stories_ptd()
    data[8:12] = b"XXXX"
    with pytest.raises(FormatError, match="FH01") as caught:
        read_data_file(BytesSource("m.ptd", bytes(data)))
    assert caught.value.offset == 8


def test_flatbuffer_past_the_file_is_refused_before_reading() -> None:
    data = _stories_ptd()
    struct.pack_into("<Q", data, 24, 1 << 40)
    with pytest.raises(FormatError, match="flatbuffer") as caught:
        read_data_file(BytesSource("big.ptd", bytes(data)))
    assert caught.value.offset == 16


def test_segment_data_past_the_file_is_refused() -> None:
    data = _stories_ptd()
    with pytest.raises(FormatError, match="segment data"):
        read_data_file(BytesSource("cut.ptd", bytes(data[:-1])))
    struct.pack_into("<Q", data, 40, 0)
    with pytest.raises(FormatError, match="segment 0 ends"):
        read_data_file(BytesSource("cut.ptd", bytes(data[:7000])))


def test_short_files() -> None:
    for size in (0, 7, 12, 40):
        data = bytes(_stories_ptd()[:size])
        with pytest.raises(FormatError):
            read_data_file(BytesSource("short.ptd", data))


# -- ExecuTorch as the reference (runtime extra) ------------------------------


@pytest.mark.runtime
@pytest.mark.parametrize("path", [RS_PTD, STORIES_PTD], ids=["rs", "stories"])
def test_keys_match_flat_tensor_deserializer(path: Path) -> None:
    serialize = pytest.importorskip(
        "executorch.extension.flat_tensor.serialize.serialize"
    )
    cord = pytest.importorskip("executorch.exir._serialize._cord")
    data = real(path).read_bytes()
    payload = serialize.FlatTensorSerializer().deserialize(cord.Cord(data))
    info = read_data_file(BytesSource(path.name, data))
    assert info.keys == tuple(payload.named_data)
    for key, entry in payload.named_data.items():
        layout = entry.tensor_layout
        ours = info.layout(key)
        if layout is None:
            assert ours is None
            continue
        assert ours == TensorLayout(
            layout.scalar_type.name, tuple(layout.sizes), tuple(layout.dim_order)
        )


@pytest.mark.runtime
@pytest.mark.parametrize(
    "data", [STORIES_PTD, RS_PTD, None], ids=["own", "other", "none"]
)
def test_runtime_agrees_on_whether_the_data_fits(data: Path | None) -> None:
    runtime = pytest.importorskip("executorch.runtime")
    needs = set(read_pte(STORIES_PTE).required_data_keys)
    fits = data is not None and needs <= set(read_ptd(data).keys)
    program = runtime.Runtime.get().load_program(
        str(real(STORIES_PTE)), data_path=str(data) if data else None
    )
    # Loading forward resolves every external key, through XNNPACK too.
    if fits:
        assert program.load_method("forward") is not None
    else:
        with pytest.raises(RuntimeError, match="Failed to load method"):
            program.load_method("forward")
