"""Hostile input: truncated and bit-flipped real files, and hand-built bombs.

Whatever the bytes, the readers either answer or raise FormatError, quickly:
never IndexError, struct.error, RecursionError, MemoryError or a hang.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etm_lint.errors import FormatError
from etm_lint.format.flatbuffer import Buffer
from etm_lint.format.ptd import read_data_file
from etm_lint.format.pte import read_program
from etm_lint.format.source import BytesSource

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
PTE_DIR = REAL / "pte"
STORIES = REAL / "models" / "stories260K"
SMALL_PROGRAMS = [
    "executorch-rs__data_map_model.pte",
    "djl-executorch__lstm.pte",
    "djl-executorch__prim_input.pte",
    "djl-executorch__openvino_tiny.pte",
]
# Slow enough to notice a hang, generous for a loaded 2-core CI machine.
SLOW = 5.0

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def real_bytes(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"real input {path} is not present")
    return path.read_bytes()


def survives(read: Callable[[BytesSource], Any], data: bytes) -> bool:
    """True if ``read`` answered, False if it raised FormatError; fast either way."""
    start = time.perf_counter()
    try:
        read(BytesSource("fuzz", data))
        ok = True
    except FormatError as err:
        assert err.offset is None or 0 <= err.offset <= max(len(data), 1 << 64)
        ok = False
    assert time.perf_counter() - start < SLOW
    return ok


def without_extended_header(data: bytes) -> bytes:
    """The same program with its header magic blanked: all of it is flatbuffer.

    Truncating such a file cuts the flatbuffer itself, so the walk, not the
    header check, meets the missing bytes.
    """
    out = bytearray(data)
    if out[8:12] == b"eh00":
        out[8:12] = b"\0\0\0\0"
    return bytes(out)


def apply_flips(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        out[pos % len(out)] = value
    return bytes(out)


# -- truncation -----------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL_PROGRAMS)
def test_small_program_truncated_at_every_offset(name: str) -> None:
    data = without_extended_header(real_bytes(PTE_DIR / name))
    for cut in range(len(data)):
        survives(read_program, data[:cut])


def test_stories_header_and_flatbuffer_truncated_at_every_offset() -> None:
    data = real_bytes(STORIES / "model_ext.pte")
    (program_size,) = struct.unpack_from("<Q", data, 16)
    for cut in range(program_size + 1):
        # The header's claims reach past every cut: refused before walking.
        assert not survives(read_program, data[:cut])


@FUZZ
@given(cut=st.integers(0, 75_480))
def test_stories_flatbuffer_walk_meets_truncation(cut: int) -> None:
    data = without_extended_header(real_bytes(STORIES / "model_ext.pte"))
    survives(read_program, data[:cut])


def test_data_files_truncated_at_every_offset() -> None:
    small = real_bytes(
        PTE_DIR / "executorch-rs__data_map__default_external_constant.ptd"
    )
    for cut in range(len(small)):
        assert not survives(read_data_file, small[:cut])
    stories = real_bytes(STORIES / "model_weights.ptd")
    for cut in range(0, 6100):
        assert not survives(read_data_file, stories[:cut])


# -- byte flips -----------------------------------------------------------------

flips = st.lists(
    st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6
)


@FUZZ
@given(name=st.sampled_from(SMALL_PROGRAMS), changes=flips)
def test_small_programs_with_flipped_bytes(
    name: str, changes: list[tuple[int, int]]
) -> None:
    data = real_bytes(PTE_DIR / name)
    survives(read_program, apply_flips(data, changes))


@FUZZ
@given(changes=flips, region=st.sampled_from(["flatbuffer", "payloads"]))
def test_stories_program_with_flipped_bytes(
    changes: list[tuple[int, int]], region: str
) -> None:
    data = real_bytes(STORIES / "model_ext.pte")
    (program_size, base) = struct.unpack_from("<QQ", data, 16)
    # Flatbuffer bytes, or the XNNPACK headers and graphs in the segments.
    start, length = (0, program_size) if region == "flatbuffer" else (base, 8192)
    moved = [(start + pos % length, value) for pos, value in changes]
    survives(read_program, apply_flips(data, moved))


@FUZZ
@given(changes=flips)
def test_data_files_with_flipped_bytes(changes: list[tuple[int, int]]) -> None:
    small = real_bytes(
        PTE_DIR / "executorch-rs__data_map__default_external_constant.ptd"
    )
    survives(read_data_file, apply_flips(small, changes))
    stories = real_bytes(STORIES / "model_weights.ptd")
    moved = [(pos % 5968, value) for pos, value in changes]
    survives(read_data_file, apply_flips(stories, moved))


# -- hand-built hostile flatbuffers ---------------------------------------------


class _Writer:
    """Appends objects in order, so every offset points forward, as it must."""

    def __init__(self) -> None:
        self.out = bytearray(struct.pack("<I4s", 0, b"ET12"))

    def here(self) -> int:
        return len(self.out)

    def put(self, fmt: str, *values: Any) -> int:
        pos = self.here()
        self.out += struct.pack(fmt, *values)
        return pos

    def point(self, slot: int, target: int) -> None:
        struct.pack_into("<I", self.out, slot, target - slot)

    def table(self, vtable: tuple[int, ...], body: str, *values: Any) -> int:
        """A vtable then its table; returns the table's position."""
        vt = self.put(f"<{len(vtable)}H", *vtable)
        pos = self.put("<i", self.here() - vt)
        self.put(body, *values)
        return pos


def aliasing_bomb(plans: int, values: int, sizes: int) -> bytes:
    """Every plan is the same plan; every value is the same big tensor."""
    w = _Writer()
    root = w.table((8, 8, 0, 4), "<I", 0)
    struct.pack_into("<I", w.out, 0, root)
    plan_vector = w.put("<I", plans)
    w.point(root + 4, plan_vector)
    plan_slots = [w.put("<I", 0) for _ in range(plans)]
    # ExecutionPlan: name, container_meta_type, values (field 2).
    plan = w.table((12, 8, 0, 0, 4, 0), "<I", 0)
    for slot in plan_slots:
        w.point(slot, plan)
    value_vector = w.put("<I", values)
    w.point(plan + 4, value_vector)
    value_slots = [w.put("<I", 0) for _ in range(values)]
    # EValue: val_type = 5 (Tensor) at +4, val at +8.
    evalue = w.table((8, 12, 4, 8), "<BxxxI", 5, 0)
    for slot in value_slots:
        w.point(slot, evalue)
    # Tensor: sizes (field 2).
    tensor = w.table((12, 8, 0, 0, 4, 0), "<I", 0)
    w.point(evalue + 8, tensor)
    size_vector = w.put(f"<I{sizes}i", sizes, *range(sizes))
    w.point(tensor + 4, size_vector)
    return bytes(w.out)


def test_aliasing_bomb_is_refused_quickly() -> None:
    # 3000 plans x 3000 values: nine million tensors from a 24 KB file.
    data = aliasing_bomb(3000, 3000, 64)
    assert len(data) < 30_000
    start = time.perf_counter()
    with pytest.raises(FormatError, match="too much work"):
        read_program(BytesSource("bomb.pte", data))
    assert time.perf_counter() - start < SLOW


def test_small_honest_build_reads() -> None:
    # The same builder with few aliases stays within budget: the refusal
    # above is the budget's doing, not a flaw in the hand-built bytes.
    info = read_program(BytesSource("small.pte", aliasing_bomb(2, 3, 4)))
    assert len(info.methods) == 2
    assert info.methods[0].num_values == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<I4s", 1000, b"ET12"), "past the end"),
        (struct.pack("<I4sI", 8, b"ET12", 0xFFFFFFFF), "outside"),
        (struct.pack("<I4sihh", 8, b"ET12", -4, 5, 4), "vtable has a bad size"),
        (struct.pack("<I4sihh", 8, b"ET12", -4, 4, 2), "bad inline size"),
        (struct.pack("<I4sihh", 8, b"ET12", -400, 4, 4), "outside"),
    ],
    ids=["root", "vtable-offset", "odd-vtable", "tiny-table", "vtable-after-end"],
)
def test_broken_tables(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Buffer("x", data).root()


def test_vector_longer_than_buffer() -> None:
    w = _Writer()
    root = w.table((8, 8, 0, 4), "<I", 0)
    struct.pack_into("<I", w.out, 0, root)
    vector = w.put("<I", 0x3FFFFFFF)
    w.point(root + 4, vector)
    with pytest.raises(FormatError, match="outside"):
        Buffer("x", bytes(w.out)).root().tables(1, "plans")
