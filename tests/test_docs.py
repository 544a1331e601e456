"""The generated docs match the code, and the format page is enough to read a
bundle: a reader written here from that page alone reads the shipped ones."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from etm_lint.docs import FORMAT_PAGE, RULES_PAGE, expected_pages, fill_blocks, main
from etm_lint.errors import EtmError
from etm_lint.format import metadata as meta
from etm_lint.lint import formatters
from etm_lint.lint.engine import load_rules
from tests.conftest import EXAMPLES, REPO

BUNDLES = [EXAMPLES / "stories260K.etm", EXAMPLES / "stories260K_ext.etm"]
STALE = "is stale: run `python -m etm_lint.docs` and commit the result"


@pytest.mark.parametrize("page", [RULES_PAGE, FORMAT_PAGE], ids=str)
def test_generated_pages_are_up_to_date(page: Path) -> None:
    expected = expected_pages(REPO)[REPO / page]
    assert (REPO / page).read_text(encoding="utf-8") == expected, f"{page} {STALE}"


def test_every_rule_says_why_how_to_fix_and_shows_examples() -> None:
    for code, found in load_rules().items():
        paragraphs = found.explanation.split("\n\n")
        assert not paragraphs[0].startswith(("Why:", "Fix:")), f"{code}: no summary"
        for label in ("Why:", "Fix:"):
            assert any(p.startswith(label) for p in paragraphs), f"{code}: {label}"
        text = found.explanation
        # An info rule "reports" rather than fails.
        bad = r"^(Failing( \([^)]*\))?|Reported):"
        assert re.search(bad, text, re.M), f"{code}: Failing or Reported"
        assert re.search(r"^Passing:", text, re.M), f"{code}: Passing"


def test_sarif_help_links_land_on_a_rule_heading() -> None:
    rules = load_rules()
    log = json.loads(formatters.sarif([], rules, False))
    headings = set(re.findall(r"^### (ETM\d+)$", (REPO / RULES_PAGE).read_text(), re.M))
    for descriptor in log["runs"][0]["tool"]["driver"]["rules"]:
        page, _, anchor = descriptor["helpUri"].partition("#")
        assert page.endswith("/" + RULES_PAGE.as_posix())
        # GitHub's anchor for the heading "### ETM101" is "etm101".
        assert anchor.upper() in headings
    assert headings == set(rules)


def test_the_docs_command_rewrites_and_checks(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / FORMAT_PAGE, tmp_path / FORMAT_PAGE)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (tmp_path / RULES_PAGE).write_text("# stale\n")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert (tmp_path / RULES_PAGE).read_text() == "# stale\n"
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    assert (tmp_path / RULES_PAGE).read_text() == (REPO / RULES_PAGE).read_text()


def test_a_format_page_without_its_blocks_is_refused(tmp_path: Path) -> None:
    text = (
        "<!-- BEGIN GENERATED: constants -->\nold\n<!-- END GENERATED: constants -->\n"
    )
    assert fill_blocks(text, {"constants": "new"}).splitlines()[1] == "new"
    with pytest.raises(EtmError, match="exactly one block named 'schema'"):
        fill_blocks(text, {"constants": "x", "schema": "y"})
    with pytest.raises(EtmError, match="no generator for block 'constants'"):
        fill_blocks(text, {})
    (tmp_path / "docs").mkdir()
    (tmp_path / FORMAT_PAGE).write_text("no blocks at all\n")
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    assert main(["--root", str(tmp_path), "--check"]) == 2


# A reader written from docs/format.md alone: struct and zlib, no zipfile and
# nothing from etm_lint.


@dataclass(frozen=True)
class Entry:
    name: str
    method: int
    flags: int
    time: int
    date: int
    crc: int
    compressed_size: int
    size: int
    made_by: int
    external: int
    extra: bytes  # the local header's
    data_offset: int


def read_entries(data: bytes) -> list[Entry]:
    """Steps 1-4 of "Finding a member's data"."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    assert end >= 0, "no end of central directory record"
    fields = struct.unpack("<4H2LH", data[end + 4 : end + 22])
    count, directory_size, directory_offset = fields[3], fields[4], fields[5]
    assert 0xFFFFFFFF not in (directory_size, directory_offset)  # no ZIP64 here
    entries, pos = [], directory_offset
    for _ in range(count):
        central = struct.unpack("<4s6H3L5H2L", data[pos : pos + 46])
        assert central[0] == b"PK\x01\x02"
        made_by, flags, method, time, date = central[1], *central[3:7]
        crc, compressed, size, n, m, k = central[7:13]
        external, local = central[15], central[16]
        name = data[pos + 46 : pos + 46 + n].decode("utf-8")
        pos += 46 + n + m + k

        header = struct.unpack("<4s5H3L2H", data[local : local + 30])
        assert header[0] == b"PK\x03\x04"
        local_n, local_m = header[9], header[10]
        assert data[local + 30 : local + 30 + local_n].decode("utf-8") == name
        assert header[6:9] == (crc, compressed, size)  # no data descriptor
        extra = data[local + 30 + local_n : local + 30 + local_n + local_m]
        entries.append(
            Entry(
                name, method, flags, time, date, crc, compressed, size,
                made_by, external, extra, local + 30 + local_n + local_m,
            )
        )  # fmt: skip
    return entries


def member_bytes(data: bytes, entry: Entry) -> bytes:
    start = entry.data_offset
    if entry.method == 0:
        return data[start : start + entry.size]
    assert entry.method == 8
    raw = data[start : start + entry.compressed_size]
    return zlib.decompressobj(-15).decompress(raw, entry.size + 1)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_a_reader_written_from_the_format_page_reads_the_shipped_bundles(
    path: Path,
) -> None:
    data = path.read_bytes()
    entries = read_entries(data)
    by_name = {e.name: e for e in entries}
    assert entries[0].name == "metadata.json"

    raw = member_bytes(data, entries[0])
    document = json.loads(raw)
    canonical = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    assert raw == (canonical + "\n").encode("utf-8")
    assert document["format_version"].split(".")[0] == "1"

    aligned = [document["program"], *document.get("weights", [])]
    named = [*aligned, document["tokenizer"]]
    assert [e.name for e in entries] == ["metadata.json", *(m["member"] for m in named)]
    for spec in named:
        entry = by_name[spec["member"]]
        content = member_bytes(data, entry)
        assert len(content) == spec["size"] == entry.size
        assert hashlib.sha256(content).hexdigest() == spec["sha256"]
        assert zlib.crc32(content) == entry.crc
    for spec in aligned:
        entry = by_name[spec["member"]]
        assert entry.method == 0
        assert entry.data_offset % 16384 == 0
        # The alignment record: id, data size, alignment, zero padding.
        ident, size, alignment = struct.unpack("<3H", entry.extra[:6])
        assert (ident, size, alignment) == (0xD935, len(entry.extra) - 4, 16384)
        assert entry.extra[6:] == bytes(len(entry.extra) - 6)
    for entry in entries:
        assert (entry.date, entry.time) == (33, 0)  # 1980-01-01 00:00:00
        assert entry.flags & 0x8 == 0 and entry.flags & 0x1 == 0
        assert entry.made_by >> 8 == 3 and entry.external >> 16 == 0o100644


def test_a_later_minor_version_with_a_new_optional_field_is_read() -> None:
    data = BUNDLES[0].read_bytes()
    document = json.loads(member_bytes(data, read_entries(data)[0]))
    document.update(format_version="1.1", license="MIT")
    assert meta.validate(document) == []
