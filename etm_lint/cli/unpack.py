"""``etm unpack``: a bundle's loose files, into a new folder."""

from __future__ import annotations

import argparse
import contextlib
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
        try:
            document = meta.parse(raw)
        except ValueError as err:
            raise EtmError(f"{args.bundle}: metadata.json {err}") from None
        problems = meta.validate(document)
        if problems:
            raise EtmError(f"{args.bundle}: metadata.json: {problems[0]}")
        names = [document["program"]["member"], document["tokenizer"]["member"]]
        names += [w["member"] for w in document.get("weights", [])]
        for name in names:
            _check_name(bundle, name)
        try:
            _unpack(bundle, raw, names, destination)
        except OSError as err:
            reason = err.strerror or str(err)
            raise EtmError(f"{destination}: not unpacked ({reason})") from None
    from etm_lint.cli.etm import write_out

    write_out(f"unpacked {len(names) + 1} files into {destination}\n")
    return 0


def _unpack(bundle: Bundle, raw: bytes, names: list[str], destination: Path) -> None:
    # Built under a fresh hidden name beside the destination, renamed whole:
    # a failure (or Ctrl-C) leaves no half-filled folder.
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    temp = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=parent)
    )
    try:
        (temp / meta.METADATA_NAME).write_bytes(raw)
        for name in names:
            _extract(bundle, name, temp)
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


def _extract(bundle: Bundle, name: str, folder: Path) -> None:
    target = folder.joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as handle:
        for chunk in bundle.chunks(name):
            handle.write(chunk)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o644)
