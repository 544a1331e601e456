"""ETM1xx: the zip container and metadata.json."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from etm_lint.errors import FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import ALIGNMENT, Member
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.target import Target

ERROR, WARNING = Severity.ERROR, Severity.WARNING
# Text members compress well (tokenizer.json about 4x); a ratio past this is
# what a zip bomb looks like, not what a tokenizer looks like.
MAX_RATIO = 200
MAX_TOTAL_SIZE = 64 * 1024**3
SMALL_HASHED = 64 * 1024 * 1024
DRIVE = re.compile(r"^[A-Za-z]:")


def referenced(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every member entry the metadata names: program, weights, tokenizer."""
    entries = [document["program"], *document.get("weights", [])]
    entries.append(document["tokenizer"])
    return entries


def _members(target: Target) -> tuple[Member, ...]:
    return target.bundle.members if target.bundle is not None else ()


@rule("ETM101", "container-unreadable", ERROR, "the bundle cannot be opened")
def container_unreadable(target: Target) -> Iterator[Issue]:
    """The file is not a readable zip archive (or a folder holds no loose files).

    Why: a runtime opens the bundle as a zip; nothing else can be checked or
    run when that fails.

    Fix: rebuild the bundle with `etm pack`; for a folder, put one `.pte`
    and a tokenizer file in it.

    Failing: a `.pte` renamed to `model.etm`.
    Passing: `etm pack --program model.pte --tokenizer tokenizer.json -o model.etm`.
    """
    if target.open_error is not None:
        yield Issue(target.open_error)


@rule("ETM102", "metadata-missing", ERROR, "metadata.json is absent")
def metadata_missing(target: Target) -> Iterator[Issue]:
    """The archive has no `metadata.json` member.

    Why: without it a runtime does not know which member is the program,
    which is the tokenizer, or what the special tokens are.

    Fix: pack with `etm pack`, which writes `metadata.json` first.

    Failing: a zip holding only `model.pte` and `tokenizer.json`.
    Passing: the same with a valid `metadata.json` as its first member.
    """
    if target.bundle is None or target.metadata_error is not None:
        return
    if target.bundle.get(meta.METADATA_NAME) is None:
        yield Issue("the archive has no metadata.json", member=meta.METADATA_NAME)


@rule("ETM103", "metadata-invalid", ERROR, "metadata.json breaks the schema")
def metadata_invalid(target: Target) -> Iterator[Issue]:
    """`metadata.json` is not JSON, or not valid against the format's schema.

    Why: a reader that trusts an invalid file misreads member names, token
    settings or sampling defaults.

    Fix: correct the field named in the message; `etm pack` only writes
    valid files. The schema ships in the package
    (`etm_lint/format/schema/metadata-v1.schema.json`).

    Failing: `{"format_version": "1.0", "kind": "llm"}` (no program).
    Passing: a file naming `program`, `tokenizer` with sizes and hashes.
    """
    if target.metadata_error is not None:
        yield Issue(f"metadata.json {target.metadata_error}", member=_meta(target))
        return
    for problem in target.schema_problems[:5]:
        yield Issue(
            f"metadata.json: {problem.message}",
            member=_meta(target),
            location=problem.pointer or None,
        )


@rule("ETM104", "format-unknown", ERROR, "unknown format_version or kind")
def format_unknown(target: Target) -> Iterator[Issue]:
    """The bundle declares a major `format_version` or a `kind` this tool
    does not know.

    Why: a new major version may change what members mean; guessing would
    give wrong answers. Only `kind: "llm"` is defined in version 1.

    Fix: upgrade etm-lint, or pack the bundle with a matching version.

    Failing: `"format_version": "2.0"`.
    Passing: `"format_version": "1.0", "kind": "llm"`.
    """
    document = target.metadata
    if not isinstance(document, dict):
        return
    version = document.get("format_version")
    major = meta.major_version(document)
    if version is not None and major is not None and major != meta.KNOWN_MAJOR:
        yield Issue(
            f"format_version {version!r} is not known; this tool reads "
            f"{meta.KNOWN_MAJOR}.x",
            member=_meta(target),
            location="/format_version",
        )
    kind = document.get("kind")
    if isinstance(kind, str) and kind not in meta.KINDS:
        known = ", ".join(meta.KINDS)
        yield Issue(
            f"kind {kind!r} is not known; this tool reads {known}",
            member=_meta(target),
            location="/kind",
        )


@rule(
    "ETM105", "metadata-not-first", WARNING, "metadata.json is not first", fixable=True
)
def metadata_not_first(target: Target) -> Iterator[Issue]:
    """`metadata.json` is not the first member of the archive.

    Why: a streaming reader (or one that reads only the first kilobytes of
    a download) finds the metadata first only when it comes first.

    Fix: repack with `etm pack`, or `etm-lint --fix --fixed-copy OUT`.

    Failing: members ordered `model.pte`, `metadata.json`.
    Passing: members ordered `metadata.json`, `model.pte`.
    """
    members = _members(target)
    names = [m.name for m in members]
    if meta.METADATA_NAME in names and names[0] != meta.METADATA_NAME:
        yield Issue(
            f"metadata.json is member {names.index(meta.METADATA_NAME) + 1}, "
            "not the first",
            member=meta.METADATA_NAME,
        )


@rule("ETM106", "member-missing", ERROR, "a referenced member is absent")
def member_missing(target: Target) -> Iterator[Issue]:
    """`metadata.json` names a member the archive does not hold.

    Why: the runtime fails to load the program, its weights or its
    tokenizer. A missing `.ptd` is worse: the runner constructs fine and
    fails at the first `generate()`.

    Fix: pack the file into the bundle, or remove the entry.

    Failing: `"weights": [{"member": "weights/foundation.ptd", ...}]` with no
    such member.
    Passing: the member present under that exact name.
    """
    document = target.valid_metadata
    if document is None or target.container is None:
        return
    present = set(target.container.names())
    for entry in referenced(document):
        if entry["member"] not in present:
            yield Issue(f"{entry['member']} is named but not in the archive")


@rule(
    "ETM107",
    "member-unreferenced",
    WARNING,
    "an archive member nobody uses",
    fixable=True,
)
def member_unreferenced(target: Target) -> Iterator[Issue]:
    """The archive holds a member that `metadata.json` does not name.

    Why: dead weight on every device that downloads the bundle, and a place
    for content nobody reviewed.

    Fix: remove the member, or name it in the metadata.

    Failing: a stray `notes.txt` member.
    Passing: only `metadata.json` and the members it names.
    """
    document = target.valid_metadata
    if document is None:
        return
    named = {entry["member"] for entry in referenced(document)}
    named.add(meta.METADATA_NAME)
    for member in _members(target):
        if member.name not in named and not member.is_dir:
            yield Issue(f"{member.name} is not named in metadata.json", member.name)


@rule("ETM108", "member-size-mismatch", ERROR, "a member's size differs", fixable=True)
def member_size_mismatch(target: Target) -> Iterator[Issue]:
    """A member's size in the archive differs from `metadata.json`.

    Why: the member was replaced or truncated after packing; the program or
    tokenizer is not the one the metadata describes.

    Fix: repack from the intended files (`etm pack`), or rehash with
    `etm-lint --fix --fixed-copy OUT` if the new file is the right one.

    Failing: metadata says 1313792 bytes, the member has 1313000.
    Passing: the sizes agree.
    """
    document = target.valid_metadata
    if document is None or target.bundle is None:
        return
    for entry in referenced(document):
        member = target.bundle.get(entry["member"])
        if member is not None and member.size != entry["size"]:
            yield Issue(
                f"{member.name} is {member.size} bytes, metadata.json says "
                f"{entry['size']}",
                member.name,
            )


@rule(
    "ETM109", "member-hash-mismatch", ERROR, "a member's sha256 differs", fixable=True
)
def member_hash_mismatch(target: Target) -> Iterator[Issue]:
    """A member's sha256 differs from `metadata.json`.

    Small members (metadata, tokenizer) are always hashed; the program and
    weights only with `--verify-hashes`, which reads them at disk speed.

    Why: the bytes are not the ones the release was made from.

    Fix: repack from the intended files, or rehash with `--fix` if the
    member is the right one.

    Failing: a tokenizer edited after packing.
    Passing: the hashes agree.
    """
    document = target.valid_metadata
    if document is None or target.bundle is None:
        return
    for entry in referenced(document):
        member = target.bundle.get(entry["member"])
        if member is None or member.size != entry["size"]:
            continue
        if member.encrypted or member.data_offset is None:
            continue  # ETM115 and ETM117 say why it cannot be read
        mapped = entry is document["program"] or entry in document.get("weights", [])
        large = mapped or member.size > SMALL_HASHED
        if large and not target.options.verify_hashes:
            continue
        try:
            digest = target.container.sha256(member.name)  # type: ignore[union-attr]
        except FormatError as err:
            yield Issue(f"{member.name} cannot be read: {err.message}", member.name)
            continue
        if digest != entry["sha256"]:
            yield Issue(
                f"{member.name} hashes to {digest[:12]}…, metadata.json says "
                f"{entry['sha256'][:12]}…",
                member.name,
            )


@rule(
    "ETM110", "member-compressed", ERROR, "program or weights compressed", fixable=True
)
def member_compressed(target: Target) -> Iterator[Issue]:
    """The program or a weights file is compressed in the archive.

    Why: a runtime maps the program and weights straight out of the bundle;
    a compressed member must be inflated into memory first, doubling the
    peak memory of loading on a phone.

    Fix: repack with `etm pack` (STORED members), or `--fix`.

    Failing: `model.pte` stored with DEFLATE.
    Passing: `model.pte` STORED.
    """
    for member in _mapped_members(target):
        if not member.stored:
            yield Issue(
                f"{member.name} is compressed (method {member.compression}); "
                "program and weights must be STORED",
                member.name,
            )


@rule(
    "ETM111", "member-misaligned", ERROR, "program or weights not aligned", fixable=True
)
def member_misaligned(target: Target) -> Iterator[Issue]:
    """The data of the program or a weights file does not start on a 16 KiB
    boundary in the archive.

    Why: mapping a member in place needs its data page-aligned (16 KiB
    covers 4 KiB and 16 KiB pages, as Android's zipalign requires).

    Fix: `etm-lint --fix --fixed-copy OUT`, or repack with `etm pack`.

    Failing: `model.pte` data at byte 43.
    Passing: `model.pte` data at byte 16384.
    """
    for member in _mapped_members(target):
        if member.stored and member.data_offset is not None and not member.aligned:
            yield Issue(
                f"{member.name} data starts at byte {member.data_offset}, not a "
                f"multiple of {ALIGNMENT}",
                member.name,
            )


@rule("ETM112", "unsafe-member-name", ERROR, "a member name escapes the folder")
def unsafe_member_name(target: Target) -> Iterator[Issue]:
    """A member name is absolute, climbs with `..`, uses backslashes or a
    drive letter, or holds a NUL byte.

    Why: an extractor that trusts the name writes outside its folder (the
    "zip slip" attack).

    Fix: rebuild the archive with plain relative names.

    Failing: `../../.bashrc`, `/etc/passwd`, `C:\\x`, `a\\b`.
    Passing: `weights/foundation.ptd`.
    """
    for member in _members(target):
        reason = _name_problem(member.raw_name)
        if reason:
            yield Issue(f"{member.raw_name!r} {reason}", member.name)


@rule("ETM113", "duplicate-member", ERROR, "two members share a name")
def duplicate_member(target: Target) -> Iterator[Issue]:
    """Two archive entries have the same name.

    Why: readers disagree on which one wins; a reviewer can be shown one
    file and a device load the other.

    Fix: rebuild the archive with unique names.

    Failing: two `model.pte` entries.
    Passing: each name once.
    """
    counts = Counter(m.name for m in _members(target))
    for name, count in sorted(counts.items()):
        if count > 1:
            yield Issue(f"{name} appears {count} times", name)


@rule("ETM114", "symlink-member", ERROR, "a member is a symbolic link")
def symlink_member(target: Target) -> Iterator[Issue]:
    """A member is stored as a symbolic link.

    Why: extracting it creates a link that can point anywhere on the device.

    Fix: store the file itself.

    Failing: `tokenizer.json` as a link to `/etc/passwd`.
    Passing: a regular file.
    """
    for member in _members(target):
        if member.is_symlink:
            yield Issue(f"{member.name} is a symbolic link", member.name)


@rule("ETM115", "encrypted-member", ERROR, "a member is encrypted")
def encrypted_member(target: Target) -> Iterator[Issue]:
    """A member is encrypted.

    Why: no runtime can read it, and no checker can inspect it.

    Fix: pack without encryption.

    Failing: a zip made with `zip -e`.
    Passing: plain members.
    """
    for member in _members(target):
        if member.encrypted:
            yield Issue(f"{member.name} is encrypted", member.name)


@rule("ETM116", "compression-bomb", ERROR, "compression that looks like a bomb")
def compression_bomb(target: Target) -> Iterator[Issue]:
    """A member inflates to far more than its stored size, or the members
    together claim more than 64 GiB.

    Why: an extractor runs out of disk or memory (a zip bomb).

    Fix: pack real files; text members compress about 4x, not 200x.

    Failing: a 10 KB member that inflates to 1 GB.
    Passing: a tokenizer.json deflated 4x.
    """
    members = _members(target)
    for member in members:
        compressed = max(member.compressed_size, 1)
        if not member.stored and member.size / compressed > MAX_RATIO:
            yield Issue(
                f"{member.name} inflates {member.size // compressed}x "
                f"({member.compressed_size} to {member.size} bytes)",
                member.name,
            )
    total = sum(m.size for m in members)
    if total > MAX_TOTAL_SIZE:
        yield Issue(f"members claim {total} bytes in all, over {MAX_TOTAL_SIZE}")


@rule("ETM117", "entry-out-of-bounds", ERROR, "an entry points outside the file")
def entry_out_of_bounds(target: Target) -> Iterator[Issue]:
    """A directory entry points at a local header that is missing or lies
    outside the file, or a member's data runs past the end.

    Why: the archive was truncated or crafted; readers disagree about it.

    Fix: rebuild the archive.

    Failing: a bundle cut short by an interrupted download.
    Passing: a complete archive.
    """
    bundle = target.bundle
    if bundle is None:
        return
    for member in bundle.members:
        if member.data_offset is None:
            yield Issue(
                f"{member.name}: no local header at byte {member.header_offset}",
                member.name,
            )
        elif member.data_offset + member.compressed_size > bundle.size:
            yield Issue(
                f"{member.name}: data runs past the end of the file", member.name
            )


def _mapped_members(target: Target) -> Iterator[Member]:
    document = target.valid_metadata
    if document is None or target.bundle is None:
        return
    for entry in [document["program"], *document.get("weights", [])]:
        member = target.bundle.get(entry["member"])
        if member is not None:
            yield member


def _name_problem(name: str) -> str | None:
    if "\x00" in name:
        return "holds a NUL byte"
    if "\\" in name:
        return "uses a backslash"
    if name.startswith("/"):
        return "is absolute"
    if DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "climbs out with '..'"
    return None


def _meta(target: Target) -> str:
    return meta.METADATA_NAME
