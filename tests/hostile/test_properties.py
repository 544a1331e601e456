"""Properties of the zip reader, the program reader and metadata parsing, in
process: whatever the bytes, each answers or raises its one error type,
quickly, and what it answers is self-consistent.

Hypothesis runs derandomized with fixed example counts, so CI sees the same
inputs every time; ``benchmarks/fuzz_readers.py`` runs the long campaign.
``ETM_HOSTILE_SCALE=N`` (off by default) multiplies every example count by
N for a longer run of these same properties.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etm_lint import cache
from etm_lint.cli.unpack import unsafe_name
from etm_lint.errors import EtmError, FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle
from etm_lint.format.pack import build_metadata
from etm_lint.format.ptd import read_data_file
from etm_lint.format.pte import read_program
from etm_lint.format.source import SliceSource
from tests.hostile import rawzip
from tests.hostile.corpus import GOOD, GOOD_EXT, REPO, bundle_bytes, members_of

SLOW_S = 5.0
SCALE = max(1, int(os.environ.get("ETM_HOSTILE_SCALE", "1") or "1"))
PROPERTY = settings(
    max_examples=150 * SCALE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SRC = REPO / "fixtures" / "src"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # One file rewritten per example: hypothesis forbids function-scoped
    # fixtures inside @given, and a file per example would be slow.
    with tempfile.TemporaryDirectory(prefix="etm-props-") as folder:
        yield Path(folder) / "input.etm"


def exercise(path: Path) -> int:
    """Open ``path`` as a bundle and read every member every way; returns
    how many members answered. Only FormatError (or EtmError) may escape,
    and everything must finish in time."""
    start = time.perf_counter()
    answered = 0
    try:
        with Bundle(path) as bundle:
            # By name: a duplicate name reads as its first entry.
            for name in dict.fromkeys(bundle.names()):
                answered += _read_member(bundle, name, bundle.member(name).size)
    except EtmError:
        pass
    assert time.perf_counter() - start < SLOW_S
    return answered


def _read_member(bundle: Bundle, name: str, size: int) -> int:
    try:
        data = bundle.read(name, limit=1 << 20)
        assert len(data) == size
        assert bundle.sha256(name) == _sha256(data)
        head = bundle.source(name).read(0, min(size, 64))
        assert head == data[:64]
        return 1
    except FormatError:
        return 0


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- the zip reader -------------------------------------------------------------


@PROPERTY
@given(data=st.binary(max_size=4096))
def test_bundle_reader_on_any_bytes(scratch: Path, data: bytes) -> None:
    exercise(write(scratch, data))


def _entries() -> st.SearchStrategy[rawzip.Entry]:
    names = st.binary(min_size=0, max_size=24)
    payloads = st.binary(max_size=256)
    return st.builds(
        lambda name, payload, deflate, flags, method, size, attr, offset: (
            rawzip.deflated if deflate else rawzip.stored
        )(name, payload).but(
            flags=flags,
            **({"method": method} if method is not None else {}),
            **({"size": size} if size is not None else {}),
            attr=attr,
            header_offset=offset,
        ),
        names,
        payloads,
        st.booleans(),
        st.sampled_from([0, 0, 1, 0x8, 0x800, 0x809]),
        st.none() | st.sampled_from([0, 8, 12, 14, 93, 99, 0xFFFF]),
        st.none() | st.integers(0, 0xFFFFFFFF),
        st.sampled_from([rawzip.REGULAR, rawzip.SYMLINK, 0, 0xFFFFFFFF]),
        st.none() | st.integers(0, 0xFFFFFFFF),
    )


@PROPERTY
@given(
    entries=st.lists(_entries(), max_size=6),
    cd_offset=st.none() | st.integers(0, 0xFFFFFFFF),
    count=st.none() | st.integers(0, 0xFFFF),
    comment=st.binary(max_size=64),
)
def test_bundle_reader_on_lying_archives(
    scratch: Path,
    entries: list[rawzip.Entry],
    cd_offset: int | None,
    count: int | None,
    comment: bytes,
) -> None:
    """Archives whose headers say anything: names with NUL bytes and
    backslashes, the encrypted flag, unknown methods, sizes and offsets that
    point anywhere."""
    data = rawzip.build(entries, cd_offset=cd_offset, count=count, comment=comment)
    exercise(write(scratch, data))


@PROPERTY
@given(start=st.integers(0, 256_000), length=st.integers(1, 1 << 18))
def test_bundle_with_a_slice_cut_out(scratch: Path, start: int, length: int) -> None:
    # The directory survives but every offset before it is now wrong.
    good = GOOD.read_bytes()
    exercise(write(scratch, good[:start] + good[start + length :]))


@PROPERTY
@given(
    flips=st.lists(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8
    ),
    region=st.sampled_from(["local headers", "directory", "anywhere"]),
)
def test_bundle_with_flipped_header_bytes(
    scratch: Path, flips: list[tuple[int, int]], region: str
) -> None:
    good = bytearray(GOOD.read_bytes())
    spots = _header_spots(bytes(good), region)
    for at, value in flips:
        good[spots[at % len(spots)]] = value
    exercise(write(scratch, bytes(good)))


def _header_spots(data: bytes, region: str) -> list[int]:
    if region == "anywhere":
        return list(range(len(data)))
    directory = data.index(b"PK\x01\x02")
    if region == "directory":
        return list(range(directory, len(data)))
    spots: list[int] = []
    at = 0
    while (at := data.find(b"PK\x03\x04", at, directory)) != -1:
        spots.extend(range(at, at + 30 + 64))
        at += 4
    return spots


def test_bundle_truncated_at_every_offset_of_its_tail(scratch: Path) -> None:
    """Every cut of the last 66 KiB (where zipfile looks for the end record,
    and where a fake one inside the program could be found), then every 7th
    byte of the rest; each is refused with FormatError."""
    good = GOOD.read_bytes()
    scratch.write_bytes(good)
    tail = len(good) - (66 << 10)
    cuts = [*range(len(good) - 1, tail, -1), *range(tail, -1, -7)]
    start = time.perf_counter()
    for cut in cuts:
        os.truncate(scratch, cut)
        with pytest.raises(FormatError):
            Bundle(scratch).close()
    assert time.perf_counter() - start < 60


# -- the program reader, through a bundle ---------------------------------------


@PROPERTY
@given(
    flips=st.lists(
        st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8
    ),
    stored=st.booleans(),
)
def test_program_read_in_place_or_inflated(
    scratch: Path, flips: list[tuple[int, int]], stored: bool
) -> None:
    """A damaged model.pte, STORED (read by range from the archive) or
    deflated (inflated to memory): read_program answers or raises
    FormatError."""
    members = members_of(GOOD)
    program = bytearray(members["model.pte"])
    (size,) = struct.unpack_from("<Q", program, 16)
    for at, value in flips:
        program[at % size] = value
    members["model.pte"] = bytes(program)
    data = bundle_bytes(members)
    if not stored:
        entries = [rawzip.deflated(n, d) for n, d in members.items()]
        data = rawzip.build(entries)
    write(scratch, data)
    start = time.perf_counter()
    with Bundle(scratch) as bundle, contextlib.suppress(FormatError):
        read_program(bundle.source("model.pte"))
    assert time.perf_counter() - start < SLOW_S


def _truncations(size: int, every_to: int, stride: int) -> list[int]:
    return [*range(min(every_to, size)), *range(every_to, size, stride)]


@pytest.mark.parametrize(
    ("bundle", "member", "read"),
    [
        (GOOD, "model.pte", read_program),
        (GOOD_EXT, "weights/good_ext.ptd", read_data_file),
    ],
    ids=["pte", "ptd"],
)
def test_member_truncated_in_place(
    tmp_path: Path, bundle: Path, member: str, read: Any
) -> None:
    """A STORED program or weights member read in place (SliceSource, by
    range from the archive) as if it ended early: at every offset of its
    first 256 bytes (headers, root table, vtables), then every 7th byte to
    the end of the flatbuffer. A .pte's extended header is blanked first so
    that the flatbuffer walk, not the header's size check, meets the end."""
    members = members_of(bundle)
    data = bytearray(members[member])
    if data[8:12] == b"eh00":
        end = struct.unpack_from("<Q", data, 16)[0]
        data[8:12] = bytes(4)
    else:
        end = sum(struct.unpack_from("<2Q", data, 16))
    members[member] = bytes(data)
    path = write(tmp_path / "x.etm", bundle_bytes(members))
    with Bundle(path) as opened:
        start = opened.member(member).data_offset
    assert start is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        for cut in _truncations(end, 256, 7):
            with pytest.raises(FormatError):
                read(SliceSource(member, fd, start, cut))
    finally:
        os.close(fd)


# -- metadata.json --------------------------------------------------------------


@PROPERTY
@given(data=st.binary(max_size=2048))
def test_metadata_parse_on_any_bytes(data: bytes) -> None:
    try:
        document = meta.parse(data)
    except ValueError:
        return
    assert isinstance(document, dict)
    meta.validate(document)


# Lone surrogates included: JSON can spell them, hypothesis rarely draws them.
any_character = st.characters(exclude_categories=()) | st.sampled_from(
    ["\ud800", "\udcff", "\x00", "\u2028"]
)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(1 << 70), 1 << 70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(alphabet=any_character, max_size=12)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=30,
    )


def _literal(value: Any) -> str:
    """JSON text for ``value`` the way a hostile writer would spell it:
    NaN and Infinity as bare words, lone surrogates as escapes."""
    return json.dumps(value, allow_nan=True)


def _fits(value: Any, depth: int = 1) -> bool:
    """True if every number is a finite float or a 64-bit integer, every
    string is real Unicode and nothing nests too deep: what parse accepts."""
    if depth > meta.MAX_JSON_DEPTH:
        return False
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) <= meta.MAX_JSON_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, list):
        return all(_fits(v, depth + 1) for v in value)
    return all(_unicode(k) and _fits(v, depth + 1) for k, v in value.items())


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@PROPERTY
@given(
    document=st.dictionaries(
        st.text(alphabet=any_character, max_size=8), _json_values(), max_size=6
    )
)
def test_metadata_parse_accepts_exactly_what_fits(document: dict[str, Any]) -> None:
    """An object is read back equal if its numbers fit 64 bits and its
    strings are Unicode, refused with ValueError otherwise; what is read
    back survives dumps and parse again, and validation never raises."""
    text = _literal(document).encode("utf-8", "surrogatepass")
    if _fits(document):
        parsed = meta.parse(text)
        assert parsed == json.loads(text)
        assert meta.parse(meta.dumps(parsed)) == parsed
        meta.validate(parsed)
    else:
        with pytest.raises(ValueError):
            meta.parse(text)


@pytest.mark.parametrize("depth", [1, meta.MAX_JSON_DEPTH, meta.MAX_JSON_DEPTH + 1])
def test_metadata_nesting_limit(depth: int) -> None:
    text = ('{"a":' * depth + "1" + "}" * depth).encode()
    if depth <= meta.MAX_JSON_DEPTH:
        assert meta.parse(text)
    else:
        with pytest.raises(ValueError, match="nests deeper"):
            meta.parse(text)


token_texts = st.sampled_from(
    ["<|begin_of_text|>", "<|endoftext|>", "<|im_end|>", "<s>", "</s>", "", " "]
) | st.text(alphabet=any_character, max_size=10)
templates = st.sampled_from(
    [
        "{{ bos_token }}{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}",
        "{{ raise_exception('no') }}",
        "{{ undefined_thing.x }}",
        "{% if add_generation_prompt %}<|im_start|>{% endif %}",
        "<|im_start|>" * 300,
    ]
) | st.dictionaries(st.sampled_from(["default", "tool_use"]), st.just("x"), max_size=2)
sampling = st.dictionaries(
    st.sampled_from(["temperature", "top_p"]),
    st.floats(allow_nan=False, allow_infinity=False),
    max_size=2,
) | st.dictionaries(
    st.sampled_from(["top_k", "max_new_tokens"]),
    st.integers(-(1 << 63) + 1, (1 << 63) - 1),
    max_size=2,
)


@settings(PROPERTY, max_examples=40 * SCALE)
@given(
    bos=st.none() | token_texts,
    eos=st.lists(token_texts, max_size=4),
    num_bos=st.integers(0, 8),
    template=st.none() | templates,
    generation=sampling,
    kind=st.sampled_from(["huggingface", "tiktoken", "sentencepiece", "llama2c"]),
)
def test_lint_on_valid_but_hostile_metadata(
    scratch: Path,
    bos: str | None,
    eos: list[str],
    num_bos: int,
    template: str | dict[str, str] | None,
    generation: dict[str, Any],
    kind: str,
) -> None:
    """Metadata the schema accepts, with values chosen to disagree with the
    tokenizer and the program: every rule family runs, and the whole lint
    answers with findings, never an exception."""
    from etm_lint.cli import lint
    from tests.hostile.harness import run_main

    members = members_of(GOOD)
    document = json.loads(members["metadata.json"])
    document["special_tokens"] = {"bos": bos, "eos": eos}
    document.update(num_bos=num_bos, generation=generation)
    document["tokenizer"]["kind"] = kind
    document.pop("chat_template")
    if template is not None:
        document["chat_template"] = template
    write(scratch, bundle_bytes(members, metadata=document))
    outcome = run_main(
        lint.main, ["--no-config", "--output-format", "json", str(scratch)]
    )
    assert outcome.crash is None, outcome.crash
    assert outcome.code in (0, 1)
    json.loads(outcome.stdout)


# -- what pack writes, the reader reads -----------------------------------------

settings_values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(
    -(1 << 80), 1 << 80
)


@PROPERTY
@given(
    temperature=settings_values,
    top_k=st.integers(-(1 << 80), 1 << 80),
    bos=st.text(alphabet=any_character, max_size=20),
    name=st.text(alphabet=any_character, max_size=40),
)
def test_pack_never_writes_what_the_reader_refuses(
    temperature: float, top_k: int, bos: str, name: str
) -> None:
    try:
        document, _ = build_metadata(
            program=SRC / "good.pte",
            tokenizer=SRC / "tokenizer.json",
            special_tokens={"bos": bos},
            generation={"temperature": temperature, "top_k": top_k},
            name=name or None,
        )
    except EtmError:
        return
    reread = meta.parse(meta.dumps(document))
    assert meta.validate(reread) == []


# -- names never leave their folder ---------------------------------------------

hostile_names = st.text(
    alphabet=st.sampled_from(["a", ".", "/", "\\", ":", "\x00", "C", "é"]), max_size=16
)


@PROPERTY
@given(name=hostile_names)
def test_cache_paths_stay_in_the_cache(name: str) -> None:
    root = cache.cache_root().resolve()
    path = cache.blob_path("0" * 64, name)
    assert path.resolve().is_relative_to(root)
    assert path.parent.name == "0" * 64


@PROPERTY
@given(name=hostile_names)
def test_unpack_names_stay_in_the_folder(name: str) -> None:
    if unsafe_name(name):
        return
    folder = Path("/nonexistent/unpacked")
    target = folder.joinpath(*name.split("/"))
    assert os.path.normpath(target).startswith(str(folder) + os.sep)


# -- templates that nest or sprawl ----------------------------------------------

# One level of nesting of each kind of Jinja syntax, as (opening, middle,
# closing), the expressions inside {{ }}: a sweep over these found compiles
# of 3 to 13 s.
NESTINGS = {
    "parentheses": ("(", "1", ")"),
    "lists": ("[", "1", "]"),
    "dicts": ("{'a': ", "1", "}"),
    "calls": ("range(", "1", ")"),
    "attributes": ("", "x", ".a"),
    "filters": ("", "1", "|string"),
    "negations": ("-", "1", ""),
    "sums": ("", "1", " + 1"),
    "ifs": ("{% if 1 %}", "x", "{% endif %}"),
    "fors": ("{% for a in [1] %}", "x", "{% endfor %}"),
    "sets": ("{% set x %}", "x", "{% endset %}"),
    "withs": ("{% with %}", "x", "{% endwith %}"),
}


def _nested(kind: str, depth: int) -> str:
    opening, middle, closing = NESTINGS[kind]
    text = opening * depth + middle + closing * depth
    return text if opening.startswith("{%") else "{{ " + text + " }}"


@PROPERTY
@given(kind=st.sampled_from(sorted(NESTINGS)), depth=st.integers(1, 3000))
def test_template_nesting_compiles_or_is_refused_quickly(kind: str, depth: int) -> None:
    from etm_lint.template import TemplateError, compile_template

    start = time.perf_counter()
    with contextlib.suppress(TemplateError):
        compile_template(_nested(kind, depth))
    assert time.perf_counter() - start < SLOW_S


# -- the long campaign's script, briefly ---------------------------------------


def test_fuzz_script_runs_clean_on_a_fixed_count() -> None:
    """benchmarks/fuzz_readers.py with a fixed seed and input count (not a
    time budget, so every machine tries the same inputs): no crash, no
    hang. Keeps the script from rotting between long runs."""
    from benchmarks.fuzz_readers import TARGETS, campaign

    results = campaign(list(TARGETS), budget_s=120, inputs=400, seed=8)
    assert {name: s.tried for name, s in results.items()} == dict.fromkeys(TARGETS, 400)
    assert {name: (s.crashes, s.hangs) for name, s in results.items()} == dict.fromkeys(
        TARGETS, ({}, 0)
    )
