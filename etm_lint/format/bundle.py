"""Reading an .etm bundle without extracting it.

The zip directory is parsed by the standard library's ``zipfile``; this module
adds what a bundle reader needs on top: where each member's data starts (so a
STORED program can be read in place, by byte range), bounded reads of
compressed members, streaming hashes, and one error type for a bad archive.
"""

from __future__ import annotations

import hashlib
import itertools
import lzma
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from etm_lint.errors import FormatError
from etm_lint.format.metadata import MAX_METADATA_BYTES, METADATA_NAME
from etm_lint.format.source import ByteSource, BytesSource, SliceSource, open_regular

ALIGNMENT = 16 * 1024
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
LOCAL_MAGIC = b"PK\x03\x04"
# A deflated member is read into memory only up to this size; larger ones are
# refused rather than inflated (a zip bomb asks for exactly that).
MAX_INFLATE = 256 * 1024 * 1024
# Text members deflate about 4x; past this ratio a member is a zip bomb, and
# nothing here inflates it to disk.
BOMB_RATIO = 200
CHUNK = 1024 * 1024
# What zipfile lets escape while inflating a hostile member: its own errors,
# the codecs' (zlib.error and LZMAError are no ValueError), RuntimeError for
# an encrypted member, NotImplementedError for an unknown method, and an
# IndexError from formatting that message for an entry with an empty name.
INFLATE_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
    IndexError,
)


@dataclass(frozen=True)
class Member:
    """One entry of the zip directory, as the archive states it."""

    name: str
    raw_name: str  # as stored, before zipfile cuts it at a NUL byte
    size: int
    compressed_size: int
    compression: int
    header_offset: int
    data_offset: int | None
    crc: int
    flag_bits: int
    external_attr: int
    create_system: int

    @property
    def stored(self) -> bool:
        return self.compression == zipfile.ZIP_STORED

    @property
    def aligned(self) -> bool:
        return self.data_offset is not None and self.data_offset % ALIGNMENT == 0

    @property
    def encrypted(self) -> bool:
        return bool(self.flag_bits & 0x1)

    @property
    def looks_like_bomb(self) -> bool:
        return not self.stored and self.size > BOMB_RATIO * max(self.compressed_size, 1)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and stat.S_ISLNK(self.external_attr >> 16)


class Bundle:
    """An open .etm archive. Use as a context manager or call ``close``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._fd = open_regular(self.path)
        self.size = os.fstat(self._fd).st_size
        # zipfile reads through the same descriptor (it seeks, the readers
        # here use pread): the file checked above, even if the path changes.
        self._file = open(self._fd, "rb", closefd=False)  # noqa: SIM115
        try:
            self._zip = _open_zip(self.path, self._file)
            self.members = tuple(self._member(info) for info in self._zip.infolist())
            _refuse_overlaps(self.path, self.members)
        except BaseException:
            self._file.close()
            os.close(self._fd)
            raise
        self._by_name = {m.name: m for m in reversed(self.members)}

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()
        os.close(self._fd)

    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def get(self, name: str) -> Member | None:
        """The first entry of that name (the one a careful reader trusts)."""
        return self._by_name.get(name)

    def member(self, name: str) -> Member:
        found = self.get(name)
        if found is None:
            raise FormatError(self.path, f"no member named {name!r}")
        return found

    def read(self, name: str, limit: int = MAX_INFLATE) -> bytes:
        """A whole member, decompressed, refusing more than ``limit`` bytes."""
        member = self.member(name)
        where = f"{self.path}:{name}"
        if member.size > limit:
            raise FormatError(where, f"is {member.size} bytes, over {limit}")
        if member.stored:
            return self.source(name).read(0, member.size)
        try:
            with self._zip.open(self._info(member)) as handle:
                # Ask for the stated size only: zipfile inflates as much as
                # it is asked for before cutting to the size it was told.
                data = handle.read(member.size)
        except INFLATE_ERRORS as err:
            raise FormatError(where, f"cannot be read: {err}") from None
        if len(data) != member.size:
            raise FormatError(
                where, f"inflates to {len(data)} bytes, directory says {member.size}"
            )
        return data

    def source(self, name: str) -> ByteSource:
        """Random access to a member: in place when STORED, else inflated."""
        member = self.member(name)
        where = f"{self.path}:{name}"
        if member.data_offset is None:
            raise FormatError(where, f"no local header at byte {member.header_offset}")
        if member.stored:
            end = member.data_offset + member.size
            if end > self.size:
                raise FormatError(
                    where, f"data runs to byte {end}, past the end of the file"
                )
            return SliceSource(where, self._fd, member.data_offset, member.size)
        return BytesSource(where, self.read(name))

    def chunks(self, name: str) -> Iterator[bytes]:
        """A member's bytes in order, a chunk at a time (for hashing)."""
        member = self.member(name)
        if member.stored:
            source = self.source(name)
            for offset in range(0, member.size, CHUNK):
                yield source.read(offset, min(CHUNK, member.size - offset))
            return
        where = f"{self.path}:{name}"
        try:
            with self._zip.open(self._info(member)) as handle:
                seen = 0
                while chunk := handle.read(CHUNK):
                    seen += len(chunk)
                    if seen > member.size:
                        raise FormatError(where, "inflates past its stated size")
                    yield chunk
        except INFLATE_ERRORS as err:
            raise FormatError(where, f"cannot be read: {err}") from None

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(name):
            digest.update(chunk)
        return digest.hexdigest()

    def metadata_bytes(self) -> bytes | None:
        if self.get(METADATA_NAME) is None:
            return None
        return self.read(METADATA_NAME, MAX_METADATA_BYTES)

    def _info(self, member: Member) -> zipfile.ZipInfo:
        for info in self._zip.infolist():
            if info.filename == member.name and info.header_offset == (
                member.header_offset
            ):
                return info
        raise FormatError(self.path, f"no member named {member.name!r}")

    def _member(self, info: zipfile.ZipInfo) -> Member:
        return Member(
            name=info.filename,
            raw_name=info.orig_filename,
            size=info.file_size,
            compressed_size=info.compress_size,
            compression=info.compress_type,
            header_offset=info.header_offset,
            data_offset=self._data_offset(info),
            crc=info.CRC,
            flag_bits=info.flag_bits,
            external_attr=info.external_attr,
            create_system=info.create_system,
        )

    def _data_offset(self, info: zipfile.ZipInfo) -> int | None:
        # The local header repeats the name and carries its own extra field
        # (where alignment padding lives), so only it tells where data starts.
        if info.header_offset < 0 or info.header_offset + LOCAL_HEADER.size > (
            self.size
        ):
            return None
        raw = os.pread(self._fd, LOCAL_HEADER.size, info.header_offset)
        fields = LOCAL_HEADER.unpack(raw)
        if fields[0] != LOCAL_MAGIC:
            return None
        name_length, extra_length = fields[-2], fields[-1]
        start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
        return start if start <= self.size else None


def _refuse_overlaps(path: str, members: tuple[Member, ...]) -> None:
    # Two entries sharing bytes is how a zip bomb multiplies one deflate
    # stream; no writer makes it, and newer CPython refuses it as well.
    spans = sorted(
        (m.header_offset, m.data_offset + m.compressed_size, m.name)
        for m in members
        if m.data_offset is not None
    )
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            raise FormatError(
                path,
                f"entries {first!r} and {second!r} overlap (a zip bomb's trick)",
                start,
            )


def _open_zip(path: str, file: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except zipfile.BadZipFile as err:
        raise FormatError(path, f"not a zip archive ({err})") from None
    except (OSError, ValueError, EOFError, OverflowError, struct.error) as err:
        raise FormatError(path, f"not a readable zip archive ({err})") from None
    except (NotImplementedError, RuntimeError, UnicodeDecodeError) as err:
        raise FormatError(path, f"not a readable zip archive ({err})") from None
