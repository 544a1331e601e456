"""What the rules look at: one bundle, or one folder of loose files.

Everything is loaded lazily and at most once, so a rule pays only for what
it reads and a bundle whose program is never asked about is never parsed.
Each stage keeps either its value or the one-line reason it failed; rules
of later families skip quietly when an earlier stage failed, because the
rule that owns that stage already reported it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from etm_lint import cache
from etm_lint.errors import CacheError, EtmError, FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle
from etm_lint.format.pack import build_metadata, read_hf_folder, tokenizer_kind
from etm_lint.format.source import ByteSource, FileSource

if TYPE_CHECKING:
    from etm_lint.format.ptd import DataFileInfo
    from etm_lint.format.pte import ProgramInfo
    from etm_lint.tokenizer import RuntimeTokenizer

# The lint path reads tokenizers and metadata whole; program and weights
# only by range.
SMALL_MEMBER = 64 * 1024 * 1024
TOKENIZER_NAMES = (
    "tekken.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer.bin",
)


@dataclass(frozen=True)
class LintOptions:
    verify_hashes: bool = False


class Container(Protocol):
    label: str

    def names(self) -> list[str]: ...

    def read(self, name: str, limit: int = SMALL_MEMBER) -> bytes: ...

    def source(self, name: str) -> ByteSource: ...

    def local_path(self, name: str, sha256: str | None) -> Path: ...

    def sha256(self, name: str) -> str: ...

    def size(self, name: str) -> int: ...


class BundleContainer:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.label = bundle.path
        self._digests: dict[str, str] = {}

    def names(self) -> list[str]:
        return bundle_names(self.bundle)

    def read(self, name: str, limit: int = SMALL_MEMBER) -> bytes:
        return self.bundle.read(name, limit)

    def source(self, name: str) -> ByteSource:
        return self.bundle.source(name)

    def local_path(self, name: str, sha256: str | None) -> Path:
        # The cache is keyed by what the member really holds, never by what
        # metadata.json claims (a wrong claim is ETM109's to report).
        return cache.store(self.sha256(name), name, self.bundle.chunks(name))

    def sha256(self, name: str) -> str:
        if name not in self._digests:
            self._digests[name] = self.bundle.sha256(name)
        return self._digests[name]

    def size(self, name: str) -> int:
        # The directory's size bounds what is inflated: reading past it fails.
        return self.bundle.member(name).size


def bundle_names(bundle: Bundle) -> list[str]:
    return [m.name for m in bundle.members]


class FolderContainer:
    """Loose files, addressed by the member names a bundle would give them."""

    def __init__(self, folder: Path, files: dict[str, Path]):
        self.label = str(folder)
        self.files = files

    def names(self) -> list[str]:
        return list(self.files)

    def read(self, name: str, limit: int = SMALL_MEMBER) -> bytes:
        path = self.files[name]
        if path.stat().st_size > limit:
            raise FormatError(str(path), f"is larger than {limit} bytes")
        return path.read_bytes()

    def source(self, name: str) -> ByteSource:
        return FileSource(self.files[name])

    def local_path(self, name: str, sha256: str | None) -> Path:
        return self.files[name]

    def sha256(self, name: str) -> str:
        from etm_lint.format.writer import file_digest

        return file_digest(self.files[name])[1]

    def size(self, name: str) -> int:
        return self.files[name].stat().st_size


class Target:
    def __init__(self, path: str, options: LintOptions | None = None):
        self.path = path
        self.options = options or LintOptions()
        self.bundle: Bundle | None = None
        self.container: Container | None = None
        self.open_error: str | None = None
        self.metadata_raw: bytes | None = None
        self.metadata: Any = None
        self.metadata_error: str | None = None
        self._open()

    @property
    def is_bundle(self) -> bool:
        return not os.path.isdir(self.path)

    def close(self) -> None:
        if self.bundle is not None:
            self.bundle.close()

    def _open(self) -> None:
        if os.path.isdir(self.path):
            self._open_folder(Path(self.path))
            return
        try:
            self.bundle = Bundle(self.path)
        except FormatError as err:
            self.open_error = err.message
            return
        self.container = BundleContainer(self.bundle)
        try:
            raw = self.bundle.metadata_bytes()
        except FormatError as err:
            self.metadata_error = f"cannot be read: {err.message}"
            return
        if raw is None:
            return
        self.metadata_raw = raw
        try:
            self.metadata = meta.parse(raw)
        except ValueError as err:
            self.metadata_error = str(err)

    def _open_folder(self, folder: Path) -> None:
        try:
            self.metadata, files = loose_metadata(
                folder, hash_mapped=self.options.verify_hashes
            )
        except EtmError as err:
            self.open_error = str(err)
            return
        self.container = FolderContainer(folder, files)

    # Metadata that passed the schema and names a version we read: the
    # basis for every family after the container.

    @functools.cached_property
    def schema_problems(self) -> list[meta.SchemaProblem]:
        if self.metadata is None:
            return []
        return meta.validate(self.metadata)

    @functools.cached_property
    def valid_metadata(self) -> dict[str, Any] | None:
        if self.metadata is None or self.schema_problems:
            return None
        if meta.major_version(self.metadata) != meta.KNOWN_MAJOR:
            return None
        if self.metadata.get("kind") not in meta.KINDS:
            return None
        document: dict[str, Any] = self.metadata
        return document

    def member_present(self, name: str) -> bool:
        return self.container is not None and name in self.container.names()

    @functools.cached_property
    def program_member(self) -> str | None:
        document = self.valid_metadata
        if document is None or not self.member_present(document["program"]["member"]):
            return None
        name: str = document["program"]["member"]
        return name

    @functools.cached_property
    def _program(self) -> tuple[ProgramInfo | None, str | None]:
        from etm_lint.format.pte import read_program

        if self.program_member is None or self.container is None:
            return None, None
        try:
            return read_program(self.container.source(self.program_member)), None
        except FormatError as err:
            return None, str(err)

    @property
    def program(self) -> ProgramInfo | None:
        return self._program[0]

    @property
    def program_error(self) -> str | None:
        return self._program[1]

    @functools.cached_property
    def weights(self) -> dict[str, DataFileInfo | str]:
        """Each present weights member: its header, or why it is unreadable."""
        from etm_lint.format.ptd import read_data_file

        found: dict[str, DataFileInfo | str] = {}
        document = self.valid_metadata
        if document is None or self.container is None:
            return found
        for entry in document.get("weights", []):
            name = entry["member"]
            if not self.member_present(name):
                continue
            try:
                found[name] = read_data_file(self.container.source(name))
            except FormatError as err:
                found[name] = str(err)
        return found

    @functools.cached_property
    def tokenizer_entry(self) -> dict[str, Any] | None:
        document = self.valid_metadata
        if document is None or not self.member_present(document["tokenizer"]["member"]):
            return None
        entry: dict[str, Any] = document["tokenizer"]
        return entry

    @functools.cached_property
    def _tokenizer_file(self) -> tuple[Path | None, str | None]:
        entry = self.tokenizer_entry
        if entry is None or self.container is None:
            return None, None
        from etm_lint.tokenizer import DEFAULT_MAX_BYTES

        # Refused before a byte is extracted or hashed: the size metadata.json
        # declares, and the size the member really inflates to (a bomb may
        # declare a small one).
        try:
            sizes = [entry.get("size"), self.container.size(entry["member"])]
        except (EtmError, OSError) as err:
            return None, f"{self.path}: {entry['member']}: {err}"
        size = max(s for s in sizes if isinstance(s, int))
        if size > DEFAULT_MAX_BYTES:
            return None, (
                f"{self.path}: {entry['member']}: {size} bytes is more than a "
                f"tokenizer may be ({DEFAULT_MAX_BYTES} bytes); not extracted"
            )
        try:
            return self.container.local_path(entry["member"], None), None
        except CacheError:
            raise
        except EtmError as err:
            return None, str(err)

    @property
    def tokenizer_file(self) -> Path | None:
        """The tokenizer member as a file (in the cache, for a bundle)."""
        return self._tokenizer_file[0]

    @functools.cached_property
    def runtime_tokenizer_path(self) -> Path | None:
        """What a runtime hands the tokenizer loader for this bundle.

        A Hugging Face tokenizer goes with a ``tokenizer_config.json`` built
        from the bundle's special tokens, in a folder (the loader then reads
        BOS/EOS from it); the other formats carry their own and load alone.
        """
        entry = self.tokenizer_entry
        if entry is None or self.tokenizer_file is None or self.container is None:
            return None
        from etm_lint.runtime.bundle import runtime_tokenizer_path

        # Keyed by what the member holds, never by what metadata.json claims:
        # a wrong claim must not find another tokenizer's folder in the cache.
        return runtime_tokenizer_path(
            self.tokenizer_file,
            entry["kind"],
            self.container.sha256(entry["member"]),
            self.special_tokens,
        )

    @functools.cached_property
    def _tokenizer(self) -> tuple[RuntimeTokenizer | None, str | None]:
        from etm_lint.tokenizer import load

        if self._tokenizer_file[1] is not None:
            return None, self._tokenizer_file[1]
        try:
            path = self.runtime_tokenizer_path
            if path is None:
                return None, None
            tokenizer = load(str(path))
        except CacheError:
            raise
        except EtmError as err:
            return None, self.member_terms(str(err))
        if self.is_bundle and self.tokenizer_entry is not None:
            # Its messages then name the member, not the copy in the cache.
            tokenizer.path = self.tokenizer_entry["member"]
        return tokenizer, None

    def member_terms(self, text: str) -> str:
        """``text`` with the tokenizer's cache paths named as the member.

        The loaders see a copy in the cache; a reader of the report knows
        the member, not where this tool keeps its copies.
        """
        entry = self.tokenizer_entry
        if entry is None or not self.is_bundle:
            return text
        for local in (self.runtime_tokenizer_path, self.tokenizer_file):
            if local is not None:
                text = text.replace(str(local), entry["member"])
        return text

    @property
    def tokenizer(self) -> RuntimeTokenizer | None:
        """The tokenizer as the runtime loads it from this bundle."""
        return self._tokenizer[0]

    @property
    def tokenizer_error(self) -> str | None:
        return self._tokenizer[1]

    @functools.cached_property
    def tokenizer_alone(self) -> RuntimeTokenizer | None:
        """The tokenizer file loaded by itself, as apps load loose files."""
        from etm_lint.tokenizer import load

        if self.tokenizer is None or self.tokenizer_file is None:
            return None
        if self.runtime_tokenizer_path == self.tokenizer_file:
            return self.tokenizer
        try:
            return load(str(self.tokenizer_file))
        except EtmError:
            return None

    @property
    def special_tokens(self) -> dict[str, Any]:
        document = self.valid_metadata or {}
        tokens: dict[str, Any] = document.get("special_tokens", {})
        return tokens

    @property
    def chat_template(self) -> str | dict[str, str] | None:
        document = self.valid_metadata or {}
        template: str | dict[str, str] | None = document.get("chat_template")
        return template


def loose_metadata(
    folder: Path, *, hash_mapped: bool = True
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The metadata a bundle packed from ``folder`` would carry, and its files.

    Without ``hash_mapped`` the program and weights are only sized: nothing
    compares the hashes of loose files, and reading them whole would make a
    lint's cost grow with the weights.
    """
    programs = sorted(folder.glob("*.pte"))
    if not programs:
        raise EtmError(f"{folder}: no .pte program in the folder")
    if len(programs) > 1:
        names = ", ".join(p.name for p in programs)
        raise EtmError(f"{folder}: several programs ({names}); keep one per folder")
    tokenizer = next(
        (folder / n for n in TOKENIZER_NAMES if (folder / n).is_file()), None
    )
    if tokenizer is None:
        found = sorted(folder.glob("*tekken.json")) + sorted(folder.glob("*.model"))
        tokenizer = found[0] if found else None
    if tokenizer is None:
        raise EtmError(f"{folder}: no tokenizer file (tokenizer.json, .model, .bin)")
    tokenizer_kind(tokenizer)
    weights = sorted(folder.glob("*.ptd"))
    document, members = build_metadata(
        program=programs[0],
        tokenizer=tokenizer,
        weights=weights,
        hf=read_hf_folder(folder),
        hash_mapped=hash_mapped,
    )
    return document, {m.name: m.path for m in members}


def iter_targets(paths: list[str], options: LintOptions) -> Iterator[Target]:
    for path in paths:
        target = Target(path, options)
        try:
            yield target
        finally:
            target.close()
