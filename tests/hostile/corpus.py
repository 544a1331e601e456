"""A corpus of malicious inputs, written into a folder by ``build(root)``.

Every case is derived from the repository's good bundles (``fixtures/good.etm``
with a Hugging Face tokenizer and a chat template, ``fixtures/good_ext.etm``
with external weights, ``examples/stories260K.etm`` with a SentencePiece
tokenizer), changed in one hostile way: the zip container, metadata.json,
the program, the weights, the tokenizer, the chat template, a folder of
loose files, or the path itself. Bundles keep their metadata's sizes and
hashes true to the hostile bytes, so the attack reaches the reader it aims
at instead of stopping at a hash check.

``expect`` names rule codes of which a lint must report at least one; they
come from each rule's documented meaning (``etm-lint --explain``), not from
running the code. A case with ``error=True`` may instead end in a one-line
error (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.hostile import rawzip
from tests.hostile.rawzip import Entry

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "fixtures" / "good.etm"
GOOD_EXT = REPO / "fixtures" / "good_ext.etm"
STORIES = REPO / "examples" / "stories260K.etm"
MAPPED = ("model.pte", "weights/good_ext.ptd")


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    part: str  # zip, metadata, program, weights, tokenizer, template, folder, path
    expect: tuple[str, ...] = ()
    bundle: bool = True  # a zip archive (etm unpack applies)

    def __str__(self) -> str:
        return self.name


Members = dict[str, bytes]


def members_of(bundle: Path) -> Members:
    with zipfile.ZipFile(bundle) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _entry(name: str, data: bytes) -> Entry:
    if name in MAPPED:
        return rawzip.stored(name, data, align=True)
    return rawzip.deflated(name, data)


def true_metadata(document: dict[str, Any], members: Members) -> dict[str, Any]:
    """``document`` with each named member's size and sha256 made true."""
    out = json.loads(json.dumps(document))
    entries = [out.get("program"), out.get("tokenizer"), *out.get("weights", [])]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("member") in members:
            data = members[entry["member"]]
            entry["size"] = len(data)
            entry["sha256"] = hashlib.sha256(data).hexdigest()
    return out


def bundle_bytes(
    members: Members,
    *,
    metadata: dict[str, Any] | bytes | None = None,
    extra: tuple[Entry, ...] = (),
) -> bytes:
    """An archive of ``members`` (metadata.json first) plus ``extra`` entries.

    ``metadata`` replaces metadata.json: a document gets true sizes and
    hashes, bytes go in as they are.
    """
    files = dict(members)
    if isinstance(metadata, bytes):
        files["metadata.json"] = metadata
    else:
        document = metadata or json.loads(files["metadata.json"])
        files["metadata.json"] = json.dumps(true_metadata(document, files)).encode()
    order = ["metadata.json", *(n for n in files if n != "metadata.json")]
    return rawzip.build([*(_entry(n, files[n]) for n in order), *extra])


class Corpus:
    """Writes cases under ``root``; each maker below adds a few."""

    def __init__(self, root: Path):
        self.root = root
        self.cases: list[Case] = []
        self.good = members_of(GOOD)
        self.ext = members_of(GOOD_EXT)
        self.stories = members_of(STORIES)

    def meta(self, members: Members | None = None) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((members or self.good)["metadata.json"])
        return document

    def add(
        self, name: str, part: str, data: bytes, *expect: str, suffix: str = ".etm"
    ) -> Path:
        path = self.root / f"{name}{suffix}"
        path.write_bytes(data)
        self.cases.append(Case(name, path, part, expect, suffix == ".etm"))
        return path

    def add_bundle(
        self,
        name: str,
        part: str,
        *expect: str,
        members: Members | None = None,
        metadata: dict[str, Any] | bytes | None = None,
        extra: tuple[Entry, ...] = (),
    ) -> Path:
        data = bundle_bytes(members or self.good, metadata=metadata, extra=extra)
        return self.add(name, part, data, *expect)

    def with_member(
        self, name: str, data: bytes, base: Members | None = None
    ) -> Members:
        return {**(base or self.good), name: data}


# -- the zip container ----------------------------------------------------------

UNSAFE_NAMES = {
    "name_dotdot": b"../../escaped.txt",
    "name_absolute": b"/tmp/etm-escaped.txt",
    "name_drive": b"C:/escaped.txt",
    "name_drive_backslash": b"C:\\Windows\\escaped.txt",
    "name_backslash": b"..\\..\\escaped.txt",
    "name_nul": b"tokenizer.json\x00/../../escaped.txt",
}


def zip_names(c: Corpus) -> None:
    for case, raw in UNSAFE_NAMES.items():
        c.add_bundle(case, "zip", "ETM112", extra=(rawzip.deflated(raw, b"pwned\n"),))
    # The metadata itself names an unsafe member, so unpack would write it.
    document = c.meta()
    document["tokenizer"]["member"] = "../../tokenizer.json"
    members = {n: d for n, d in c.good.items() if n != "tokenizer.json"}
    members["../../tokenizer.json"] = c.good["tokenizer.json"]
    c.add_bundle(
        "referenced_dotdot", "zip", "ETM112", members=members, metadata=document
    )
    document = c.meta()
    document["program"]["member"] = "/tmp/etm-escaped.pte"
    members = {n: d for n, d in c.good.items() if n != "model.pte"}
    members["/tmp/etm-escaped.pte"] = c.good["model.pte"]
    c.add_bundle(
        "referenced_absolute", "zip", "ETM112", members=members, metadata=document
    )
    # A UTF-8 flagged name that is not UTF-8.
    bad = rawzip.deflated(b"\xff\xfe.txt", b"x").but(flags=0x800)
    c.add_bundle("name_bad_utf8", "zip", "ETM101", extra=(bad,))


def zip_links_and_duplicates(c: Corpus) -> None:
    link = rawzip.stored("tokenizer.json", b"/etc/passwd").but(attr=rawzip.SYMLINK)
    entries = [
        _entry("metadata.json", json.dumps(true_metadata(c.meta(), c.good)).encode()),
        _entry("model.pte", c.good["model.pte"]),
        link,
    ]
    c.add("symlink_tokenizer", "zip", rawzip.build(entries), "ETM114")
    root_link = rawzip.stored("extra/root", b"/").but(attr=rawzip.SYMLINK)
    c.add_bundle("symlink_extra", "zip", "ETM114", extra=(root_link,))
    other = c.meta()
    other["name"] = "the second metadata.json"
    second = rawzip.deflated("metadata.json", json.dumps(other).encode())
    c.add_bundle("duplicate_metadata", "zip", "ETM113", extra=(second,))
    program = rawzip.stored("model.pte", b"\0\0\0\0ET12" + bytes(64))
    c.add_bundle("duplicate_program", "zip", "ETM113", extra=(program,))


def zip_overlap(c: Corpus) -> None:
    # A member whose stored data holds a whole local header and the data
    # of a second member; the directory lists both (a zip bomb's trick).
    inner = rawzip.build([rawzip.stored("inner.txt", b"inside the outer member")])
    local_end = inner.index(b"PK\x01\x02")
    outer = rawzip.stored("outer.bin", inner[:local_end])
    data = bundle_bytes(c.good, extra=(outer,))
    at = data.index(inner[:local_end])
    cd = rawzip.stored("inner.txt", b"inside the outer member").but(header_offset=at)
    c.add_bundle("overlapping_entries", "zip", "ETM101", extra=(outer, cd))
    # The same local header named twice in the directory.
    twice = _entry("tokenizer.json", c.good["tokenizer.json"])
    entries = [
        _entry("metadata.json", json.dumps(true_metadata(c.meta(), c.good)).encode()),
        _entry("model.pte", c.good["model.pte"]),
        twice,
    ]
    offset = rawzip.local_offsets(entries)[-1]
    c.add(
        "directory_names_one_header_twice",
        "zip",
        rawzip.build([*entries, twice.but(header_offset=offset)]),
        "ETM101",
        "ETM113",
    )


def zip_directory(c: Corpus) -> None:
    good = GOOD.read_bytes()
    c.add("empty_file", "zip", b"", "ETM101")
    c.add("not_a_zip", "zip", random.Random(8).randbytes(4096), "ETM101")
    c.add("truncated_half", "zip", good[: len(good) // 2], "ETM101")
    c.add("truncated_end_record", "zip", good[:-10], "ETM101")
    entries = [_entry(n, d) for n, d in c.good.items()]
    size = len(rawzip.build(entries))
    # zipfile finds the directory before the end record whatever the offset
    # says, and shifts every entry by the difference.
    c.add(
        "directory_outside_file",
        "zip",
        rawzip.build(entries, cd_offset=size * 4),
        "ETM101",
        "ETM117",
    )
    past = entries[-1].but(header_offset=size + 1000)
    c.add("entry_outside_file", "zip", rawzip.build([*entries[:-1], past]), "ETM117")
    nowhere = entries[-1].but(header_offset=12345)
    c.add("entry_at_garbage", "zip", rawzip.build([*entries[:-1], nowhere]), "ETM117")
    c.add(
        "count_claims_65535",
        "zip",
        rawzip.build(entries, count=0xFFFF),
        "ETM101",
        "ETM109",
    )
    renamed = entries[-1].but(local_name=b"something.else")
    c.add("local_name_differs", "zip", rawzip.build([*entries[:-1], renamed]), "ETM109")
    data = rawzip.build(entries, comment=b"PK\x05\x06" * 16383)
    c.add("comment_of_end_records", "zip", data, "ETM101", "ETM117", "ETM109")


def zip_bombs(c: Corpus) -> None:
    c.add_bundle(
        "bomb_ratio", "zip", "ETM116", extra=(rawzip.zero_bomb("padding.bin"),)
    )
    bomb = rawzip.zero_bomb("metadata.json")
    members = [_entry(n, d) for n, d in c.good.items() if n != "metadata.json"]
    c.add("bomb_metadata", "zip", rawzip.build([bomb, *members]), "ETM103", "ETM116")
    # The directory claims 900 bytes; the stream inflates to a gigabyte.
    liar = bomb.but(size=900)
    c.add(
        "bomb_metadata_lying_size",
        "zip",
        rawzip.build([liar, *members]),
        "ETM103",
        "ETM116",
    )
    document = c.meta()
    tokenizer = rawzip.zero_bomb("tokenizer.json")
    document["tokenizer"].update(size=tokenizer.size, sha256=_zero_sha256(1 << 30))
    meta = rawzip.deflated("metadata.json", json.dumps(document).encode())
    program = _entry("model.pte", c.good["model.pte"])
    c.add(
        "bomb_tokenizer",
        "zip",
        rawzip.build([meta, program, tokenizer]),
        "ETM116",
    )
    # metadata.json claims a small tokenizer; the member inflates to 1 GiB.
    document["tokenizer"].update(size=1000)
    meta = rawzip.deflated("metadata.json", json.dumps(document).encode())
    c.add(
        "bomb_tokenizer_small_claim",
        "zip",
        rawzip.build([meta, program, tokenizer]),
        "ETM116",
    )
    inner = rawzip.build([rawzip.zero_bomb("inner.bin")])
    c.add_bundle(
        "bomb_nested", "zip", "ETM107", extra=(rawzip.stored("in.etm", inner),)
    )
    many = tuple(rawzip.stored(f"m/{i}", b"") for i in range(20_000))
    c.add_bundle("many_members", "zip", "ETM107", extra=many)


def _zero_sha256(size: int) -> str:
    digest = hashlib.sha256()
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        digest.update(chunk)
    return digest.hexdigest()


def zip_encryption_and_methods(c: Corpus) -> None:
    for member in ("tokenizer.json", "metadata.json", "model.pte"):
        entries = [_entry(n, d) for n, d in _ordered(c.good)]
        entries = [
            e.but(flags=rawzip.ENCRYPTED) if e.name == member.encode() else e
            for e in entries
        ]
        stem = member.split(".")[0]
        c.add(f"encrypted_{stem}", "zip", rawzip.build(entries), "ETM115")
    for method in (99, 12, 14, 93):
        entries = [_entry(n, d) for n, d in _ordered(c.good)]
        entries[-1] = entries[-1].but(method=method)
        c.add(f"tokenizer_method_{method}", "zip", rawzip.build(entries), "ETM109")


def _ordered(members: Members) -> Iterator[tuple[str, bytes]]:
    yield "metadata.json", members["metadata.json"]
    yield from ((n, d) for n, d in members.items() if n != "metadata.json")


# -- metadata.json --------------------------------------------------------------


def metadata_cases(c: Corpus) -> None:
    text = c.good["metadata.json"]
    raw: dict[str, bytes] = {
        "meta_huge": text[:-2] + b"," + b" " * (5 << 20) + b'"x": 1}',
        "meta_deep_arrays": b"[" * 100_000 + b"]" * 100_000,
        "meta_deep_objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "meta_deep_in_field": text[:-2] + b', "name": ' + b"[" * 40 + b"]" * 40 + b"}",
        "meta_not_utf8": text.replace(b'"good"', b'"g\xf6\xf6d"'),
        "meta_utf16": text.decode().encode("utf-16"),
        "meta_bom": b"\xef\xbb\xbf" + text,
        "meta_huge_int_digits": text.replace(
            b'"num_bos": 1', b'"num_bos": 1' + b"0" * 5000
        ),
        "meta_nan": text.replace(b'"temperature": 0.7', b'"temperature": NaN'),
        "meta_infinity": text.replace(
            b'"temperature": 0.7', b'"temperature": -Infinity'
        ),
        "meta_lone_surrogate": text.replace(b'"good"', b'"\\ud800"'),
        "meta_top_level_array": b"[]",
        "meta_top_level_string": b'"metadata"',
        "meta_null": b"null",
        "meta_empty": b"",
        "meta_binary": random.Random(1).randbytes(2048),
        "meta_many_keys": json.dumps({f"k{i}": i for i in range(150_000)}).encode(),
        "meta_duplicate_keys": text[:-2] + b', "program": {"member": "x"}}',
    }
    for name, data in raw.items():
        c.add_bundle(name, "metadata", "ETM103", metadata=data)
    numbers: dict[str, tuple[str, str]] = {
        "meta_size_4000_digits": ("program.size", "9" * 4000),
        "meta_float_overflow": ("generation.temperature", "1e400"),
        "meta_top_k_huge": ("generation.top_k", "9" * 4000),
        "meta_max_new_tokens_huge": ("generation.max_new_tokens", "9" * 4000),
        "meta_num_bos_negative": ("num_bos", "-9" + "9" * 300),
    }
    for name, (where, number) in numbers.items():
        c.add_bundle(name, "metadata", metadata=_with_number(c, where, number))
    document = c.meta()
    document["program"]["member"] = "model.pte\u0000.txt"
    c.add_bundle("meta_member_nul", "metadata", "ETM106", metadata=document)
    document = c.meta()
    document["weights"] = [dict(document["program"]) for _ in range(64)]
    c.add_bundle("meta_weights_all_program", "metadata", metadata=document)
    document = c.meta()
    document["chat_template"] = {f"t{i}": "x" * 100_000 for i in range(32)}
    c.add_bundle("meta_32_big_templates", "metadata", metadata=document)
    document = c.meta()
    document["special_tokens"]["eos"] = ["<|x|>" * 50] * 64
    c.add_bundle("meta_64_long_eos", "metadata", metadata=document)


def _with_number(c: Corpus, where: str, number: str) -> bytes:
    """The good metadata with one value replaced by a literal number."""
    document = true_metadata(c.meta(), c.good)
    *path, last = where.split(".")
    node = document
    for key in path:
        node = node[key]
    node[last] = "@@NUMBER@@"
    return json.dumps(document).replace('"@@NUMBER@@"', number).encode()


# -- the program and the weights ------------------------------------------------


def hostile_programs(good: bytes) -> dict[str, bytes]:
    """Broken variants of a .pte with an extended header at byte 8."""
    (root,) = struct.unpack_from("<I", good, 0)
    program_size, base = struct.unpack_from("<QQ", good, 16)
    (vtable_back,) = struct.unpack_from("<i", good, root)
    vtable = root - vtable_back
    out = {
        "pte_empty": b"",
        "pte_identifier_only": good[:8],
        "pte_header_only": good[:40],
        "pte_cut_in_flatbuffer": good[: program_size // 2],
        "pte_cut_in_segments": good[: (base + len(good)) // 2],
        "pte_root_outside": _patch(good, 0, "<I", 0xFFFFFFF0),
        "pte_root_zero": _patch(good, 0, "<I", 0),
        "pte_vtable_is_table": _patch(good, root, "<i", 0),
        "pte_vtable_outside": _patch(good, root, "<i", -0x7FFFFFFF),
        "pte_vtable_after_end": _patch(good, root, "<i", -(program_size * 4)),
        "pte_vtable_huge": _patch(good, vtable, "<H", 0xFFFE),
        "pte_vtable_odd": _patch(good, vtable, "<H", 7),
        "pte_table_size_huge": _patch(good, vtable + 2, "<H", 0xFFFF),
        "pte_program_size_huge": _patch(good, 16, "<Q", (1 << 64) - 1),
        "pte_segment_base_huge": _patch(good, 24, "<Q", (1 << 64) - 1),
        "pte_segment_size_huge": _patch(good, 32, "<Q", (1 << 63)),
        "pte_header_length_huge": _patch(good, 12, "<I", 0xFFFFFFFF),
        "pte_every_offset_self": _every_uoffset(good, program_size),
    }
    rng = random.Random(20240806)
    for i in range(6):
        flipped = bytearray(good)
        for _ in range(24):
            flipped[rng.randrange(8, program_size)] = rng.randrange(256)
        out[f"pte_flipped_{i}"] = bytes(flipped)
    return out


def _patch(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def _every_uoffset(data: bytes, end: int) -> bytes:
    # Every aligned word that looks like a small forward offset now points
    # at itself plus 4: vectors and tables read each other's bytes.
    out = bytearray(data)
    for at in range(40, end - 4, 4):
        (value,) = struct.unpack_from("<I", out, at)
        if 0 < value < 4096:
            struct.pack_into("<I", out, at, 4)
    return bytes(out)


def hostile_weights(good: bytes) -> dict[str, bytes]:
    (fb_offset, fb_size, base) = struct.unpack_from("<3Q", good, 16)
    return {
        "ptd_empty": b"",
        "ptd_identifier_only": good[:8],
        "ptd_header_cut": good[:30],
        "ptd_cut_in_flatbuffer": good[: fb_offset + fb_size // 2],
        "ptd_cut_in_data": good[: (base + len(good)) // 2],
        "ptd_flatbuffer_outside": _patch(good, 16, "<Q", (1 << 64) - 16),
        "ptd_flatbuffer_size_huge": _patch(good, 24, "<Q", (1 << 63)),
        "ptd_segment_base_huge": _patch(good, 32, "<Q", (1 << 64) - 1),
        "ptd_segment_size_huge": _patch(good, 40, "<Q", (1 << 64) - 1),
        "ptd_header_length_huge": _patch(good, 12, "<I", 0xFFFFFFFF),
        "ptd_root_outside": _patch(good, 0, "<I", 0xFFFFFFF0),
        "ptd_every_offset_self": _every_uoffset(good, fb_offset + fb_size),
        "ptd_is_a_program": b"\0\0\0\0ET12" + good[8:],
    }


def program_cases(c: Corpus) -> None:
    for name, data in hostile_programs(c.good["model.pte"]).items():
        members = c.with_member("model.pte", data)
        c.add_bundle(name, "program", "ETM201", members=members)
        c.add(f"{name}_file", "program", data, suffix=".pte")
    for name, data in hostile_weights(c.ext["weights/good_ext.ptd"]).items():
        members = c.with_member("weights/good_ext.ptd", data, c.ext)
        # A changed flatbuffer may still parse, naming other keys.
        c.add_bundle(name, "weights", "ETM210", "ETM207", members=members)
        c.add(f"{name}_file", "weights", data, suffix=".ptd")


# -- tokenizers -----------------------------------------------------------------


def _tokenizer_bundle(
    c: Corpus, name: str, member: str, kind: str, data: bytes, *expect: str
) -> None:
    document = c.meta()
    document["tokenizer"] = {"member": member, "kind": kind, "size": 0, "sha256": ""}
    members = {n: d for n, d in c.good.items() if n != "tokenizer.json"}
    members[member] = data
    c.add_bundle(name, "tokenizer", *expect, members=members, metadata=document)


def _hf_with_pattern(c: Corpus, pattern: str) -> bytes:
    document = json.loads(c.good["tokenizer.json"])
    document["pre_tokenizer"] = {
        "type": "Split",
        "pattern": {"Regex": pattern},
        "behavior": "Isolated",
        "invert": False,
    }
    return json.dumps(document).encode()


def _hf_big_vocab(c: Corpus, count: int) -> bytes:
    document = json.loads(c.good["tokenizer.json"])
    vocab = document["model"]["vocab"]
    start = max(vocab.values()) + 1
    vocab.update({f"tok{i}": start + i for i in range(count)})
    return json.dumps(document).encode()


def tokenizer_cases(c: Corpus) -> None:
    hf = c.good["tokenizer.json"]
    unloadable = ("ETM301", "ETM304")
    hf_cases = {
        "hf_truncated": hf[: len(hf) // 2],
        "hf_empty": b"",
        "hf_null": b"null",
        "hf_array": b"[]",
        "hf_deep": b"[" * 200_000 + b"]" * 200_000,
        "hf_not_utf8": hf.replace(b'"vocab"', b'"voc\xffab"', 1),
        "hf_huge": b'{"x": "' + b" " * (65 << 20) + b'"}',
    }
    for name, data in hf_cases.items():
        _tokenizer_bundle(c, name, "tokenizer.json", "huggingface", data, *unloadable)
    patterns = {
        "regex_pcre2_limit": "(a+)+(?=b)",
        "regex_std_regex": "(\\u0061+)+b",
        "regex_invalid": "(((",
        "regex_huge": "(" + "|".join(f"w{i}" for i in range(20_000)) + ")",
    }
    for name, pattern in patterns.items():
        data = _hf_with_pattern(c, pattern)
        _tokenizer_bundle(
            c, name, "tokenizer.json", "huggingface", data, "ETM306", *unloadable
        )
    _tokenizer_bundle(
        c,
        "hf_vocab_200k",
        "tokenizer.json",
        "huggingface",
        _hf_big_vocab(c, 200_000),
        "ETM302",
    )
    sp = c.stories["tokenizer.model"]
    llama2c = struct.Struct("<4i")
    tekken = ("tekken.json", "tekken")
    spm = ("tokenizer.model", "sentencepiece")
    tiktoken = ("tokenizer.model", "tiktoken")
    bin_ = ("tokenizer.bin", "llama2c")
    other = {
        "tekken_garbage": (*tekken, b'{"config": {"default_vocab_size": -1}'),
        "tekken_deep": (*tekken, b'{"vocab":' + b"[" * 100_000),
        "sp_truncated": (*spm, sp[: len(sp) // 2]),
        "sp_random": (*spm, b"\x0a" + random.Random(3).randbytes(4000)),
        "sp_length_huge": (*spm, b"\x0a\xff\xff\xff\xff\x0f" + sp[6:]),
        "tiktoken_garbage": (*tiktoken, b"!!!! 1\nYQ== 9999999999999999999999\n"),
        "llama2c_huge_vocab": (*bin_, llama2c.pack(5_000_000, 1, 2, 16)),
        "llama2c_huge_piece": (
            *bin_,
            llama2c.pack(4, 1, 2, 16) + struct.pack("<fi", 0.0, 0x7FFFFFFF),
        ),
        "llama2c_truncated": (*bin_, llama2c.pack(512, 1, 2, 16) + bytes(100)),
        "llama2c_negative": (*bin_, llama2c.pack(-1, -1, -1, -1)),
    }
    for name, (member, kind, data) in other.items():
        _tokenizer_bundle(c, name, member, kind, data, *unloadable)
    # The runtime's tiktoken loader takes any rank; what it makes of them
    # disagrees with everything else.
    _tokenizer_bundle(
        c,
        "tiktoken_huge_rank",
        *tiktoken,
        b"YQ== 4294967296000\nYg== -5\n",
        "ETM301",
        "ETM302",
        "ETM305",
    )


# -- chat templates -------------------------------------------------------------

TEMPLATES = {
    # Loops that never end, or end after the heat death of the universe.
    "tpl_loop_billion": "{% for i in range(10**9) %}{% endfor %}",
    "tpl_loop_nested": (
        "{% for a in range(100000) %}{% for b in range(100000) %}"
        "{% endfor %}{% endfor %}"
    ),
    "tpl_loop_messages_repeated": "{% for m in messages * 10**8 %}{{ m }}{% endfor %}",
    "tpl_loop_recursive": (
        "{% for m in [[0]] recursive %}{{ loop([[m]] * 2) }}{% endfor %}"
    ),
    # Recursion.
    "tpl_macro_recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "tpl_macro_fork": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}"
    ),
    "tpl_deep_parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "tpl_deep_ifs": "{% if 1 %}" * 2000 + "x" + "{% endif %}" * 2000,
    "tpl_deep_lists": "{{ " + "[" * 3000 + "]" * 3000 + " }}",
    # Jinja compiles these in time cubic in the nesting (13 s for 300) or
    # linear but slow in the size (10 s for 100,000 outputs).
    "tpl_deep_attributes": "{{ x" + ".a" * 300 + " }}",
    "tpl_deep_sums": "{{ " + " + ".join(["1"] * 60_000) + " }}",
    "tpl_many_tokens": "{{ x.a }}" * 100_000,
    "tpl_many_nodes": "{{ [" + "1," * 9_000 + "1] }}",
    # Gigabytes of output.
    "tpl_string_times": "{{ 'x' * 10**10 }}",
    "tpl_string_times_twice": "{{ 'x' * 100000 * 100000 }}",
    "tpl_list_times": "{{ [0] * 10**9 }}",
    "tpl_doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "tpl_join_range": "{{ range(10**9)|join(',') }}",
    "tpl_center": "{{ 'x'|center(10**10) }}",
    "tpl_method_ljust": "{{ 'x'.ljust(10**10) }}",
    "tpl_format_width": "{{ '{:>10000000000}'.format(1) }}",
    "tpl_percent_width": "{{ '%10000000000d' % 1 }}",
    "tpl_indent": "{{ ('x\\n' * 100)|indent(10**8) }}",
    "tpl_tojson_indent": "{{ messages|tojson(indent=10**9) }}",
    "tpl_replace_blowup": "{{ ('x' * 10000)|replace('x', 'y' * 100000) }}",
    "tpl_replace_empty": "{{ ('x' * 100000).replace('', 'y' * 100000) }}",
    "tpl_lipsum": "{{ lipsum(10**7) }}",
    "tpl_power": "{{ 9 ** (9 ** 9) }}",
    "tpl_power_big": "{{ 2 ** (10 ** 10) }}",
    "tpl_int_to_str": "{{ (10 ** 100000)|string }}",
    "tpl_batch": "{{ range(10**8)|batch(1)|list }}",
    "tpl_sort_huge": "{{ range(10**8)|list|sort }}",
    "tpl_expandtabs": "{{ '\\t'.expandtabs(10**10) }}",
    "tpl_zfill": "{{ '1'.zfill(10**10) }}",
    "tpl_raise_huge": "{{ raise_exception('x' * 10**7) }}",
    # Leaving the sandbox.
    "tpl_class_mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "tpl_cycler_globals": "{{ cycler.__init__.__globals__.os.system('id') }}",
    "tpl_joiner_globals": "{{ joiner.__init__.__globals__ }}",
    "tpl_namespace_globals": "{{ namespace.__init__.__globals__ }}",
    "tpl_lipsum_globals": "{{ lipsum.__globals__['os'] }}",
    "tpl_raise_globals": "{{ raise_exception.__globals__ }}",
    "tpl_strftime_globals": "{{ strftime_now.__globals__ }}",
    "tpl_attr_filter": "{{ (''|attr('__class__')|attr('__base__')).__subclasses__() }}",
    "tpl_format_escape": "{{ '{0.__class__.__base__.__subclasses__}'.format('') }}",
    "tpl_format_map": "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "tpl_self_context": "{{ self._TemplateReference__context }}",
    "tpl_loop_internals": "{% for m in messages %}{{ loop.__class__ }}{% endfor %}",
    "tpl_messages_mutate": "{{ messages.append(1) }}{{ messages.clear() }}",
    "tpl_dict_mutate": "{% set d = {} %}{{ d.update({'a': 1}) }}{{ d.__setitem__ }}",
    "tpl_range_self": "{{ range.__self__.__import__('os') }}",
    "tpl_func_code": "{{ raise_exception.__code__.co_consts }}",
    "tpl_gi_frame": "{{ (range(1)|map('string')).gi_frame.f_globals }}",
    "tpl_include": "{% include '/etc/passwd' %}",
    "tpl_import": "{% import 'os' as os %}{{ os }}",
    "tpl_extends": "{% extends '/etc/passwd' %}",
    # Not a template at all.
    "tpl_unbalanced": "{% for m in messages %}{{ m",
    "tpl_all_openers": "{{" * 200_000,
    "tpl_nul_bytes": "{{ messages }}\x00\x00{% if %}",
}


def template_cases(c: Corpus) -> None:
    for name, template in TEMPLATES.items():
        document = c.meta()
        document["chat_template"] = template
        c.add_bundle(name, "template", "ETM501", "ETM502", "ETM504", metadata=document)
    document = c.meta()
    document["chat_template"] = {"default": TEMPLATES["tpl_string_times"]}
    document["chat_template"]["tool_use"] = TEMPLATES["tpl_macro_recursion"]
    c.add_bundle("tpl_named_hostile", "template", "ETM502", "ETM504", metadata=document)


# -- loose-file folders and odd paths -------------------------------------------


def _folder(c: Corpus, name: str, files: dict[str, bytes], *expect: str) -> Path:
    folder = c.root / name
    folder.mkdir()
    for member, data in files.items():
        (folder / member).write_bytes(data)
    c.cases.append(Case(name, folder, "folder", expect, bundle=False))
    return folder


def folder_cases(c: Corpus) -> None:
    base = {
        "model.pte": c.good["model.pte"],
        "tokenizer.json": c.good["tokenizer.json"],
    }
    cfg = REPO / "fixtures" / "src" / "tokenizer_config.json"
    deep = b"[" * 100_000 + b"]" * 100_000
    json_cases = {
        "folder_config_deep": {"tokenizer_config.json": deep},
        "folder_config_not_utf8": {"tokenizer_config.json": b'{"bos_token": "\xff"}'},
        "folder_config_huge_numbers": {
            "generation_config.json": b'{"temperature": 1e400, "max_new_tokens": '
            + b"9" * 4000
            + b', "top_k": 1'
            + b"0" * 5000
            + b"}"
        },
        "folder_special_map_deep": {"special_tokens_map.json": deep},
        "folder_template_not_utf8": {"chat_template.jinja": b"{{ '\xff\xfe' }}"},
        "folder_template_json_types": {"chat_template.json": b'{"chat_template": 5}'},
        "folder_template_hostile": {
            "tokenizer_config.json": cfg.read_bytes(),
            "chat_template.jinja": TEMPLATES["tpl_string_times"].encode(),
        },
    }
    for name, files in json_cases.items():
        _folder(c, name, {**base, **files})
    folder = _folder(
        c, "folder_program_is_folder", {"tokenizer.json": base["tokenizer.json"]}
    )
    (folder / "model.pte").mkdir()
    folder = _folder(
        c, "folder_tokenizer_model_is_folder", {"model.pte": base["model.pte"]}
    )
    (folder / "x.model").mkdir()
    folder = _folder(
        c, "folder_program_fifo", {"tokenizer.json": base["tokenizer.json"]}
    )
    os.mkfifo(folder / "model.pte")
    folder = _folder(c, "folder_tokenizer_fifo", {"model.pte": base["model.pte"]})
    os.mkfifo(folder / "tokenizer.json")
    folder = _folder(c, "folder_tokenizer_model_fifo", {"model.pte": base["model.pte"]})
    os.mkfifo(folder / "x.model")
    folder = _folder(
        c, "folder_program_dev_zero", {"tokenizer.json": base["tokenizer.json"]}
    )
    os.symlink("/dev/zero", folder / "model.pte")
    folder = _folder(c, "folder_tokenizer_link_out", {"model.pte": base["model.pte"]})
    os.symlink("/etc/passwd", folder / "tokenizer.json")
    _folder(c, "folder_two_programs", {**base, "other.pte": base["model.pte"]})
    _folder(c, "folder_empty", {})


def path_cases(c: Corpus) -> None:
    fifo = c.root / "fifo.etm"
    os.mkfifo(fifo)
    c.cases.append(Case("path_fifo", fifo, "path", ("ETM101",), bundle=False))
    link = c.root / "dev_zero.etm"
    os.symlink("/dev/zero", link)
    c.cases.append(Case("path_dev_zero", link, "path", ("ETM101",), bundle=False))
    loop = c.root / "loop.etm"
    os.symlink(loop.name, loop)
    c.cases.append(Case("path_symlink_loop", loop, "path", bundle=False))
    odd = c.root / os.fsdecode(b"non-utf8-\xff\xfe.etm")
    odd.write_bytes(bundle_bytes(c.good, metadata=c.meta() | {"num_bos": 9}))
    c.cases.append(Case("path_not_utf8", odd, "path", ("ETM103",)))
    folder_named_etm = c.root / "folder.etm"
    folder_named_etm.mkdir()
    c.cases.append(
        Case("path_folder_named_etm", folder_named_etm, "path", bundle=False)
    )


MAKERS: tuple[Callable[[Corpus], None], ...] = (
    zip_names,
    zip_links_and_duplicates,
    zip_overlap,
    zip_directory,
    zip_bombs,
    zip_encryption_and_methods,
    metadata_cases,
    program_cases,
    tokenizer_cases,
    template_cases,
    folder_cases,
    path_cases,
)


def build(root: Path) -> list[Case]:
    """Write every case under ``root`` (new or empty); return them."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(root)
    for make in MAKERS:
        make(corpus)
    return corpus.cases
