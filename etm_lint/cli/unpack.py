"""``etm unpack``: a bundle's loose files, into a new folder."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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
        temp = destination.with_name(f".{destination.name}.partial")
        temp.mkdir(parents=True)
        try:
            (temp / meta.METADATA_NAME).write_bytes(raw)
            for name in names:
                _extract(bundle, name, temp)
            os.rename(temp, destination)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    print(f"unpacked {len(names) + 1} files into {destination}")
    return 0


def _extract(bundle: Bundle, name: str, folder: Path) -> None:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise EtmError(f"{bundle.path}: refusing unsafe member name {name!r}")
    target = folder.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as handle:
        for chunk in bundle.chunks(name):
            handle.write(chunk)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o644)
