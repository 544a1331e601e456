"""``etm inspect``: what is inside a bundle, a .pte or a .ptd."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from etm_lint.errors import EtmError, FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import ALIGNMENT, Bundle
from etm_lint.format.ptd import DataFileInfo, read_data_file
from etm_lint.format.pte import ProgramInfo, format_program, read_program, sniff
from etm_lint.format.source import ByteSource, FileSource


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show what is inside a bundle, .pte or .ptd",
        description="Show a bundle's members (sizes, offsets, alignment), its "
        "metadata, the program's methods, constants and backends, and the "
        "weights' keys; or the same for a bare .pte or .ptd. Reads headers "
        "and flatbuffers only, never the weights.",
    )
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with FileSource(args.path) as source:
        kind = sniff(source)
        if kind == "pte":
            report = {"program": _program(read_program(source))}
        elif kind == "ptd":
            report = {"weights": _weights(read_data_file(source))}
        elif kind == "bpte":
            raise EtmError(
                f"{args.path}: a bundled program (BP..), not a plain program; "
                "etm reads .pte, .ptd and .etm files"
            )
        elif source.read(0, min(source.size, 4)) == b"PK\x03\x04":
            report = _bundle(args.path)
        else:
            raise EtmError(f"{args.path}: not an .etm bundle, .pte or .ptd file")
    if args.json:
        from etm_lint.cli.etm import print_json

        print_json(report)
    else:
        from etm_lint.cli.etm import write_out

        write_out(_text(report))
    return 0


def _bundle(path: str) -> dict[str, Any]:
    report: dict[str, Any] = {"bundle": path}
    with Bundle(path) as bundle:
        report["members"] = [
            {
                "name": m.name,
                "size": m.size,
                "compressed_size": m.compressed_size,
                "stored": m.stored,
                "data_offset": m.data_offset,
                "aligned": m.aligned,
            }
            for m in bundle.members
        ]
        raw = bundle.metadata_bytes()
        document = None
        if raw is not None:
            try:
                document = meta.parse(raw)
            except ValueError as err:
                report["metadata_error"] = str(err)
        report["metadata"] = document
        if isinstance(document, dict) and not meta.validate(document):
            report.update(_bundle_members(bundle, document))
    return report


def _bundle_members(bundle: Bundle, document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    name = document["program"]["member"]
    if bundle.get(name) is not None:
        found["program"] = _guarded(lambda s: _program(read_program(s)), bundle, name)
    weights = {}
    for entry in document.get("weights", []):
        if bundle.get(entry["member"]) is not None:
            weights[entry["member"]] = _guarded(
                lambda s: _weights(read_data_file(s)), bundle, entry["member"]
            )
    if weights:
        found["weights"] = weights
    return found


def _guarded(read: Any, bundle: Bundle, name: str) -> Any:
    try:
        source: ByteSource = bundle.source(name)
        return read(source)
    except FormatError as err:
        return {"error": str(err)}


def _program(info: ProgramInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["constants"] = info.constants
    data["text"] = format_program(info)
    return data


def _weights(info: DataFileInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


def _text(report: dict[str, Any]) -> str:
    lines: list[str] = []
    if "bundle" in report:
        lines.append(f"bundle {report['bundle']}")
        lines.append("members:")
        for m in report["members"]:
            how = "stored" if m["stored"] else f"deflated to {m['compressed_size']}"
            where = m["data_offset"]
            align = ""
            if m["stored"] and where is not None:
                align = ", aligned" if where % ALIGNMENT == 0 else ", NOT aligned"
            size = f"{m['size']:>12} bytes"
            lines.append(f"  {m['name']:<28} {size}  {how}, data at {where}{align}")
        if report.get("metadata_error"):
            lines.append(f"metadata.json: {report['metadata_error']}")
        elif report.get("metadata") is not None:
            lines.extend(_metadata_lines(report["metadata"]))
    program = report.get("program")
    if isinstance(program, dict):
        lines.append("program:")
        text = program.get("text") or program.get("error", "")
        lines.extend(f"  {line}" for line in str(text).splitlines())
    weights = report.get("weights")
    if isinstance(weights, dict) and "keys" in weights:
        weights = {weights["source_name"]: weights}
    for name, info in (weights or {}).items():
        lines.append(f"weights {name}:")
        if "error" in info:
            lines.append(f"  {info['error']}")
            continue
        lines.append(
            f"  {len(info['keys'])} named tensors, "
            f"{info['segment_data_size']} bytes of data"
        )
        lines.extend(f"  {key}" for key in info["keys"][:50])
        if len(info["keys"]) > 50:
            lines.append(f"  … and {len(info['keys']) - 50} more")
    return "\n".join(lines) + "\n"


def _metadata_lines(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return ["metadata.json: not a JSON object"]
    lines = ["metadata:"]
    for key in ("format_version", "kind", "name", "num_bos", "num_eos"):
        if key in document:
            lines.append(f"  {key}: {document[key]}")
    tokenizer = document.get("tokenizer")
    if isinstance(tokenizer, dict):
        lines.append(
            f"  tokenizer: {tokenizer.get('member')} ({tokenizer.get('kind')})"
        )
    if "special_tokens" in document:
        lines.append(f"  special_tokens: {document['special_tokens']}")
    template = document.get("chat_template")
    if isinstance(template, str):
        lines.append(f"  chat_template: {len(template)} characters")
    elif isinstance(template, dict):
        lines.append(f"  chat_template: named {', '.join(template)}")
    else:
        lines.append("  chat_template: none (a base model)")
    if "generation" in document:
        lines.append(f"  generation: {document['generation']}")
    return lines
