"""Building a bundle from loose files: a program, weights, a tokenizer and
either a Hugging Face model folder or explicit settings.

Everything is checked before a byte is written, the way Hugging Face refuses
to save an invalid generation config: a pack that cannot produce a valid
bundle fails with a one-line reason and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format import metadata as meta
from etm_lint.format.source import open_regular, read_text_file
from etm_lint.format.writer import MemberSource, file_digest, write_bundle

PROGRAM_MEMBER = "model.pte"
TOKENIZER_MEMBERS = {
    "huggingface": "tokenizer.json",
    "tekken": "tekken.json",
    "tiktoken": "tokenizer.model",
    "sentencepiece": "tokenizer.model",
    "llama2c": "tokenizer.bin",
}
GENERATION_KEYS = ("temperature", "top_p", "top_k", "max_new_tokens")
HF_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
)
# tokenizer_config.json can list every added token (a few MB for a large
# vocabulary); past this, a config file is not a config file.
MAX_CONFIG_BYTES = 64 * 1024 * 1024


@dataclass
class HFSettings:
    """What a Hugging Face model folder says about tokens, template, sampling."""

    chat_template: str | dict[str, str] | None = None
    bos: str | None = None
    eos: list[str] = field(default_factory=list)
    pad: str | None = None
    unk: str | None = None
    add_bos_token: bool | None = None
    add_eos_token: bool | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    # Ids generation_config.json names that no config spells out: the
    # tokenizer itself turns them into token texts when the bundle is built.
    bos_id: int | None = None
    eos_ids: list[int] = field(default_factory=list)


def tokenizer_kind(path: Path) -> str:
    """The tokenizer format of a file, from its name and first bytes."""
    name = path.name
    if name.endswith("tekken.json"):
        return "tekken"
    if name.endswith(".json"):
        return "huggingface"
    try:
        with open(open_regular(str(path)), "rb") as handle:
            head = handle.read(64)
    except OSError as err:
        raise EtmError(f"{path}: {err.strerror}") from None
    if name.endswith(".bin"):
        return "llama2c"
    # A SentencePiece ModelProto starts with field 1 (pieces), a length-
    # delimited protobuf field: tag byte 0x0A. tiktoken files are base64 text.
    if head[:1] == b"\x0a":
        return "sentencepiece"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "tiktoken"
    raise EtmError(f"{path}: not a tokenizer format etm knows")


def read_hf_folder(folder: Path) -> HFSettings:
    """Read tokenizer_config.json, chat_template.jinja/.json,
    special_tokens_map.json and generation_config.json where present."""
    settings = HFSettings()
    config = _json_file(folder / "tokenizer_config.json") or {}
    tokens_map = _json_file(folder / "special_tokens_map.json") or {}
    generation = _json_file(folder / "generation_config.json") or {}
    decoder = _added_tokens(config)

    settings.chat_template = _template(folder, config)
    settings.bos = _token_text(config.get("bos_token", tokens_map.get("bos_token")))
    settings.pad = _token_text(config.get("pad_token", tokens_map.get("pad_token")))
    settings.unk = _token_text(config.get("unk_token", tokens_map.get("unk_token")))
    eos = _token_text(config.get("eos_token", tokens_map.get("eos_token")))
    settings.eos = [eos] if eos else []
    for token_id in _as_list(generation.get("eos_token_id")):
        text = decoder.get(token_id)
        if text is not None and text not in settings.eos:
            settings.eos.append(text)
    if not config and not tokens_map:
        # Only generation_config.json names the tokens, by id: the tokenizer
        # spells them when the bundle is built (see build_metadata).
        bos_id = generation.get("bos_token_id")
        settings.bos_id = bos_id if isinstance(bos_id, int) else None
        ids = _as_list(generation.get("eos_token_id"))
        settings.eos_ids = [i for i in ids if isinstance(i, int)]
    if isinstance(config.get("add_bos_token"), bool):
        settings.add_bos_token = config["add_bos_token"]
    if isinstance(config.get("add_eos_token"), bool):
        settings.add_eos_token = config["add_eos_token"]
    settings.generation = _generation(generation)
    return settings


def build_metadata(
    *,
    program: Path,
    tokenizer: Path,
    weights: Sequence[Path] = (),
    hf: HFSettings | None = None,
    chat_template: str | dict[str, str] | None = None,
    special_tokens: dict[str, Any] | None = None,
    num_bos: int | None = None,
    num_eos: int | None = None,
    generation: dict[str, Any] | None = None,
    name: str | None = None,
    hash_mapped: bool = True,
) -> tuple[dict[str, Any], list[MemberSource]]:
    """The metadata document and member list; explicit values beat ``hf``.

    With ``hash_mapped`` false the program and weights are not read: their
    entries carry the size and ``UNHASHED`` (for a lint of loose files, which
    never compares those hashes; never for a bundle that is written).
    """
    hf = hf or HFSettings()
    kind = tokenizer_kind(tokenizer)
    members = [MemberSource(PROGRAM_MEMBER, program, aligned=True)]
    members += [
        MemberSource(f"weights/{path.name}", path, aligned=True) for path in weights
    ]
    members.append(MemberSource(TOKENIZER_MEMBERS[kind], tokenizer, aligned=False))
    _check_unique(members)

    document: dict[str, Any] = {
        "format_version": meta.FORMAT_VERSION,
        "kind": "llm",
        "program": _entry(members[0], hash_mapped),
        "tokenizer": {**_entry(members[-1]), "kind": kind},
    }
    if weights:
        document["weights"] = [_entry(m, hash_mapped) for m in members[1:-1]]
    if name:
        document["name"] = name
    template = chat_template if chat_template is not None else hf.chat_template
    if template is not None:
        document["chat_template"] = template
    bos, eos = hf.bos, list(hf.eos)
    if hf.bos_id is not None or hf.eos_ids:
        bos, eos = _spell_ids(tokenizer, hf, bos, eos)
    tokens = {"bos": bos, "eos": eos, "pad": hf.pad, "unk": hf.unk}
    tokens.update(special_tokens or {})
    document["special_tokens"] = {
        k: v for k, v in tokens.items() if v is not None and v != []
    }
    bos_count = num_bos if num_bos is not None else int(bool(hf.add_bos_token))
    eos_count = num_eos if num_eos is not None else int(bool(hf.add_eos_token))
    document["num_bos"] = bos_count
    document["num_eos"] = eos_count
    settings = {**hf.generation, **(generation or {})}
    if settings:
        document["generation"] = settings

    problems = meta.validate(document)
    if problems:
        raise EtmError(f"the bundle's metadata would be invalid: {problems[0]}")
    try:
        # What the reader would refuse (NaN, 1e400, 2**64, too large) is
        # refused here, before a bundle nobody can read is written.
        meta.parse(meta.dumps(document))
    except ValueError as err:
        raise EtmError(f"the bundle's metadata.json {err}") from None
    return document, members


def pack_bundle(
    out: str | Path,
    *,
    program: str | Path,
    tokenizer: str | Path,
    weights: Sequence[str | Path] = (),
    hf_dir: str | Path | None = None,
    chat_template: str | dict[str, str] | None = None,
    special_tokens: dict[str, Any] | None = None,
    num_bos: int | None = None,
    num_eos: int | None = None,
    generation: dict[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Validate the inputs, then write the bundle; returns its metadata."""
    program, tokenizer = Path(program), Path(tokenizer)
    weight_paths = [Path(w) for w in weights]
    for path in (program, tokenizer, *weight_paths):
        if not path.is_file():
            raise EtmError(f"{path}: no such file")
    _check_program(program)
    hf = read_hf_folder(Path(hf_dir)) if hf_dir is not None else None
    document, members = build_metadata(
        program=program,
        tokenizer=tokenizer,
        weights=weight_paths,
        hf=hf,
        chat_template=chat_template,
        special_tokens=special_tokens,
        num_bos=num_bos,
        num_eos=num_eos,
        generation=generation,
        name=name,
    )
    if hf_dir is not None:
        _refuse_overwriting(Path(out), Path(hf_dir))
    write_bundle(Path(out), document, members)
    return document


def _refuse_overwriting(out: Path, hf_dir: Path) -> None:
    # write_bundle guards the members; the folder's config files are inputs
    # too, and renaming the bundle over one would destroy it.
    for name in HF_FILES:
        path = hf_dir / name
        if out.exists() and path.exists() and os.path.samefile(out, path):
            raise EtmError(f"{out}: refusing to overwrite an input ({path})")


def _check_program(program: Path) -> None:
    from etm_lint.format.source import FileSource

    with FileSource(program) as source:
        head = source.read(0, min(source.size, 8))
    if head[4:8] != b"ET12":
        raise EtmError(f"{program}: not an ExecuTorch program (no ET12 identifier)")


def _spell_ids(
    tokenizer: Path, hf: HFSettings, bos: str | None, eos: list[str]
) -> tuple[str | None, list[str]]:
    """BOS and EOS texts for the ids only generation_config.json names, as the
    runtime's tokenizer spells them; ids it cannot spell stay undeclared (the
    lint then says what is missing)."""
    from etm_lint.tokenizer import load

    try:
        spell = load(str(tokenizer)).token_text
        if hf.bos_id is not None:
            bos = spell(hf.bos_id)
        for token_id in hf.eos_ids:
            text = spell(token_id)
            if text not in eos:
                eos.append(text)
    except EtmError:
        pass
    return bos, eos


UNHASHED = "0" * 64


def _entry(member: MemberSource, hashed: bool = True) -> dict[str, Any]:
    if not hashed:
        fd = open_regular(str(member.path))
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return {"member": member.name, "size": size, "sha256": UNHASHED}
    size, digest = file_digest(member.path)
    return {"member": member.name, "size": size, "sha256": digest}


def _check_unique(members: list[MemberSource]) -> None:
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise EtmError(f"two inputs would both be stored as {member.name}")
        seen.add(member.name)


def _json_file(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    text = read_text_file(path, MAX_CONFIG_BYTES)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as err:
        raise EtmError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    except RecursionError:
        raise EtmError(f"{path}: JSON nested too deeply to read") from None
    except ValueError:  # Python refuses integers of over 4300 digits
        raise EtmError(f"{path}: holds a number too long to read") from None
    if not isinstance(loaded, dict):
        raise EtmError(f"{path}: expected a JSON object")
    return loaded


def _template(folder: Path, config: dict[str, Any]) -> str | dict[str, str] | None:
    # Newer Hugging Face folders keep the template beside the config; a
    # standalone file wins over the config's copy, as transformers reads it.
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return read_text_file(jinja, MAX_CONFIG_BYTES)
    standalone = _json_file(folder / "chat_template.json")
    if standalone and "chat_template" in standalone:
        return _named_templates(standalone["chat_template"])
    if "chat_template" in config:
        return _named_templates(config["chat_template"])
    return None


def _named_templates(value: Any) -> str | dict[str, str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise EtmError("chat_template list entries need a name and template")
            named[item["name"]] = str(item.get("template", ""))
        return named
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise EtmError(f"chat_template has an unexpected type: {type(value).__name__}")


def _token_text(value: Any) -> str | None:
    # Tokens appear as plain strings or as serialized AddedToken objects.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _added_tokens(config: dict[str, Any]) -> dict[int, str]:
    decoder = config.get("added_tokens_decoder") or {}
    found: dict[int, str] = {}
    if isinstance(decoder, dict):
        for key, value in decoder.items():
            text = _token_text(value)
            if text is not None and str(key).isdigit():
                found[int(key)] = text
    return found


def _as_list(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _generation(config: dict[str, Any]) -> dict[str, Any]:
    found = {
        key: config[key]
        for key in GENERATION_KEYS
        if isinstance(config.get(key), int | float)
        and not isinstance(config.get(key), bool)
    }
    if config.get("do_sample") is False:
        # Hugging Face decodes greedily whatever the temperature says.
        found["temperature"] = 0.0
    return found
