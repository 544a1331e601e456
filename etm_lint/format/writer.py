"""Writing .etm bundles: deterministic, atomic, with aligned STORED members.

Same inputs give the same bytes: fixed timestamps, fixed attributes, a fixed
member order (``metadata.json`` first). Program and weights members are
STORED and their data starts on a 16 KiB boundary, padded through the local
header's extra field as Android's zipalign does, so a runtime can map them
straight out of the archive. The archive is written to a hidden temporary
file beside the output and renamed into place, so a failure leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from etm_lint.errors import EtmError
from etm_lint.format.bundle import ALIGNMENT
from etm_lint.format.metadata import METADATA_NAME, dumps
from etm_lint.format.source import open_regular

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Android's zipalign extra field id: 2 bytes of alignment, then zero padding.
ALIGN_EXTRA_ID = 0xD935
COPY_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class MemberSource:
    """A file to place in the bundle under ``name``."""

    name: str
    path: Path
    aligned: bool  # STORED and 16 KiB aligned (program, weights) or deflated


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a regular file, streamed; EtmError if unreadable."""
    digest = hashlib.sha256()
    size = 0
    # Through open_regular: a FIFO or /dev/zero named model.pte never ends.
    with open(open_regular(os.fspath(path)), "rb") as handle:
        try:
            while chunk := handle.read(COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        except OSError as err:
            raise EtmError(f"{path}: {err.strerror}") from None
    return size, digest.hexdigest()


def write_bundle(
    out: Path, metadata: dict[str, Any], members: Sequence[MemberSource]
) -> None:
    """Write ``metadata.json`` then ``members`` to ``out``, atomically."""
    out = Path(out)
    for member in members:
        if _same_file(member.path, out):
            raise EtmError(f"{out}: refusing to overwrite an input ({member.name})")
    try:
        with (
            _atomic_output(out) as handle,
            zipfile.ZipFile(handle, "w", allowZip64=True) as archive,
        ):
            _write_small(archive, METADATA_NAME, dumps(metadata))
            for member in members:
                if member.aligned:
                    _write_aligned(archive, handle, member)
                else:
                    _write_small(archive, member.name, member.path.read_bytes())
    except OSError as err:
        # A full disk, a file size limit, an input that vanished: one line.
        reason = err.strerror or str(err)
        if err.filename and not str(err.filename).endswith(".partial"):
            reason = f"{err.filename}: {reason}"
        raise EtmError(f"{out}: not written ({reason})") from None


def _zipinfo(name: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compression
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def _write_small(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = _zipinfo(name, zipfile.ZIP_DEFLATED)
    archive.writestr(info, data, compresslevel=9)


def _write_aligned(
    archive: zipfile.ZipFile, handle: BinaryIO, member: MemberSource
) -> None:
    size = member.path.stat().st_size
    info = _zipinfo(member.name, zipfile.ZIP_STORED)
    info.file_size = size
    info.CRC = info.compress_size = 0
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    # The local header is written where the previous member ended; pad its
    # extra field so that the data after it lands on the boundary.
    info.extra = alignment_extra(handle.tell(), len(info.FileHeader(zip64)))
    with (
        open(member.path, "rb") as source,
        archive.open(info, "w", force_zip64=zip64) as target,
    ):
        shutil.copyfileobj(source, target, COPY_CHUNK)
    # The central directory need not repeat the padding.
    info.extra = b""


def alignment_extra(offset: int, bare_header: int) -> bytes:
    """The extra field that puts data after a local header on the boundary.

    ``offset`` is where the local header starts and ``bare_header`` its
    length without this field.
    """
    padding = -(offset + bare_header + 6) % ALIGNMENT
    return struct.pack("<HHH", ALIGN_EXTRA_ID, 2 + padding, ALIGNMENT) + bytes(padding)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def _atomic_output(out: Path) -> Iterator[BinaryIO]:
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise EtmError(f"{out}: folder {directory} does not exist")
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as err:
        raise EtmError(f"{out}: {err.strerror}") from None
    # The rename would put the bundle in place of a device or a FIFO
    # (``-o /dev/null`` as root replaces /dev/null): only files are replaced.
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise EtmError(f"{out}: not a regular file; refusing to replace it")
    fd, temp = tempfile.mkstemp(
        prefix=f".{out.name}.", suffix=".partial", dir=directory
    )
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
