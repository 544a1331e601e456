"""Reading an .etm bundle without extracting it.

The zip directory is parsed by the standard library's ``zipfile``; this module
adds what a bundle reader needs on top: where each member's data starts (so a
STORED program can be read in place, by byte range), bounded reads of
compressed members, streaming hashes, and one error type for a bad archive.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from etm_lint.errors import EtmError, FormatError
from etm_lint.format.metadata import METADATA_NAME
from etm_lint.format.source import ByteSource, BytesSource, SliceSource

ALIGNMENT = 16 * 1024
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
LOCAL_MAGIC = b"PK\x03\x04"
# A deflated member is read into memory only up to this size; larger ones are
# refused rather than inflated (a zip bomb asks for exactly that).
MAX_INFLATE = 256 * 1024 * 1024
CHUNK = 1024 * 1024


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
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and stat.S_ISLNK(self.external_attr >> 16)


class Bundle:
    """An open .etm archive. Use as a context manager or call ``close``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            self.size = os.fstat(self._fd).st_size
        except OSError as err:
            raise EtmError(f"{self.path}: {err.strerror}") from None
        try:
            self._zip = _open_zip(self.path)
        except FormatError:
            os.close(self._fd)
            raise
        self.members = tuple(self._member(info) for info in self._zip.infolist())
        self._by_name = {m.name: m for m in reversed(self.members)}

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
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
                data = handle.read(limit + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise FormatError(where, f"cannot be read: {err}") from None
        except (NotImplementedError, RuntimeError) as err:
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
        if member.stored and member.data_offset is not None:
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
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise FormatError(where, f"cannot be read: {err}") from None
        except (NotImplementedError, RuntimeError) as err:
            raise FormatError(where, f"cannot be read: {err}") from None

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(name):
            digest.update(chunk)
        return digest.hexdigest()

    def metadata_bytes(self) -> bytes | None:
        if self.get(METADATA_NAME) is None:
            return None
        return self.read(METADATA_NAME)

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


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise FormatError(path, f"not a zip archive ({err})") from None
    except (OSError, ValueError, EOFError, OverflowError, struct.error) as err:
        raise FormatError(path, f"not a readable zip archive ({err})") from None
    except (NotImplementedError, RuntimeError, UnicodeDecodeError) as err:
        raise FormatError(path, f"not a readable zip archive ({err})") from None
