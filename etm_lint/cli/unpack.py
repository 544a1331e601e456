"""``etm unpack``: a bundle's loose files, into a new folder."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "unpack",
        help="write a bundle's files into a new folder",
        description="Write the members metadata.json names (and metadata.json) "
        "into a folder that must not exist yet. Names are taken from the "
        "metadata and checked; nothing is written outside the folder.",
    )
    parser.add_argument("bundle", metavar="BUNDLE")
    parser.add_argument("folder", metavar="FOLDER")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    destination = Path(args.folder)
    if destination.exists():
        raise EtmError(f"{destination}: already exists; unpack wants a new folder")
    with Bundle(args.bundle) as bundle:
        raw = bundle.metadata_bytes()
        if raw is None:
            raise EtmError(f"{args.bundle}: no metadata.json")
        from etm_lint.runtime.bundle import read_metadata

        document = read_metadata(args.bundle, raw)
        entries = [document["program"], document["tokenizer"]]
        entries += document.get("weights", [])
        names = [entry["member"] for entry in entries]
        for name in names:
            _check_name(bundle, name)
        try:
            _unpack(bundle, raw, entries, destination)
        except OSError as err:
            reason = err.strerror or str(err)
            raise EtmError(f"{destination}: not unpacked ({reason})") from None
    from etm_lint.cli.etm import write_out

    write_out(f"unpacked {len(names) + 1} files into {destination}\n")
    return 0


def _unpack(
    bundle: Bundle, raw: bytes, entries: list[dict[str, Any]], destination: Path
) -> None:
    # Built under a fresh hidden name beside the destination, renamed whole:
    # a failure (or Ctrl-C) leaves no half-filled folder.
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    temp = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=parent)
    )
    try:
        (temp / meta.METADATA_NAME).write_bytes(raw)
        for entry in entries:
            _extract(bundle, entry, temp)
        os.rename(temp, destination)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def unsafe_name(name: str) -> bool:
    """True unless ``name`` joined under a folder stays inside it."""
    parts = name.split("/")
    odd = name.startswith("/") or "\\" in name or "\x00" in name
    return odd or any(p in ("", ".", "..") for p in parts)


def _check_name(bundle: Bundle, name: str) -> None:
    if unsafe_name(name):
        raise EtmError(f"{bundle.path}: refusing unsafe member name {name!r}")
    member = bundle.get(name)
    if member is not None and member.looks_like_bomb:
        raise EtmError(
            f"{bundle.path}: refusing to inflate {name}, {member.compressed_size} "
            f"bytes to {member.size} (a zip bomb; see etm-lint ETM116)"
        )


def _extract(bundle: Bundle, entry: dict[str, Any], folder: Path) -> None:
    """Write one member, checking it against ``metadata.json`` as it goes:
    what is unpacked is what the bundle vouches for, or nothing is."""
    name = entry["member"]
    target = folder.joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as handle:
        for chunk in bundle.chunks(name):
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    if (size, digest.hexdigest()) != (entry["size"], entry["sha256"]):
        raise EtmError(
            f"{bundle.path}: {name} is {size} bytes hashing to "
            f"{digest.hexdigest()[:12]}…, metadata.json says {entry['size']} and "
            f"{entry['sha256'][:12]}…; not unpacked (see etm-lint ETM108, ETM109)"
        )
    with contextlib.suppress(OSError):
        os.chmod(target, 0o644)
