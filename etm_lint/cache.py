"""The one folder etm writes to on its own: a content-addressed member cache.

Native loaders (the tokenizer libraries, the ExecuTorch LLM runner) take file
paths, so a member they need is copied out once, under a name derived from
its sha256, and reused by every later run. Writes go to a temporary name and
are renamed into place, so concurrent workers (pytest-xdist) never see a half
written file and never corrupt each other's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from etm_lint.errors import CacheError, EtmError

ENV_VAR = "ETM_CACHE_DIR"


def cache_root() -> Path:
    """``$ETM_CACHE_DIR``, else ``$XDG_CACHE_HOME/etm-lint``, else ~/.cache."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "etm-lint"


def blob_path(sha256: str, name: str) -> Path:
    """Where the member with this hash lives: ``blobs/<sha256>/<name>``."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise EtmError(f"not a sha256 digest: {sha256!r}")
    return cache_root() / "blobs" / sha256 / _safe_name(name)


def store(
    sha256: str, name: str, chunks: Iterable[bytes], max_bytes: int | None = None
) -> Path:
    """Write ``chunks`` under their hash unless already there; verify the hash.

    With ``max_bytes``, a member that grows past it is refused, and its
    partial copy removed, before it can fill the disk (a zip bomb).
    """
    try:
        return _store(sha256, name, chunks, max_bytes)
    except OSError as err:
        raise _unwritable(err) from None


def _unwritable(err: OSError) -> CacheError:
    return CacheError(
        f"cannot write the cache {cache_root()} ({err.strerror or err}); "
        f"set {ENV_VAR} to a writable folder"
    )


def _store(
    sha256: str, name: str, chunks: Iterable[bytes], max_bytes: int | None
) -> Path:
    """The work of ``store``.

    A file already in the cache is trusted by name only after it was written
    here through this function, which checks the digest before renaming.
    """
    target = blob_path(sha256, name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, temp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise EtmError(f"{name}: larger than the {max_bytes} bytes allowed")
                digest.update(chunk)
                handle.write(chunk)
        if digest.hexdigest() != sha256:
            raise EtmError(
                f"{name}: content hashes to {digest.hexdigest()}, expected {sha256}"
            )
        os.chmod(temp, 0o444)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return target


def folder(key_parts: dict[str, object], files: dict[str, Path | bytes]) -> Path:
    """A cached folder of small files (a tokenizer beside its config)."""
    try:
        return _folder(key_parts, files)
    except OSError as err:
        raise _unwritable(err) from None


def _folder(key_parts: dict[str, object], files: dict[str, Path | bytes]) -> Path:
    """The work of ``folder``.

    The folder's name hashes its description, so the same inputs find the
    same folder; it is built under a temporary name and renamed whole.
    """
    key = hashlib.sha256(
        json.dumps(key_parts, sort_keys=True, default=str).encode()
    ).hexdigest()
    target = cache_root() / "folders" / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".", suffix=".partial", dir=target.parent))
    try:
        for name, content in files.items():
            destination = temp / _safe_name(name)
            if isinstance(content, bytes):
                destination.write_bytes(content)
            else:
                # Link rather than copy: the blob is immutable in the cache.
                try:
                    os.link(content, destination)
                except OSError:
                    destination.write_bytes(Path(content).read_bytes())
        try:
            os.rename(temp, target)
        except OSError:
            # Another worker finished the same folder first; theirs is equal.
            if not target.is_dir():
                raise
            _remove_tree(temp)
    except BaseException:
        _remove_tree(temp)
        raise
    return target


def _safe_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        return "member"
    return base


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
