"""Opening a bundle for running, and generating from it with its own settings.

The LLM runner takes file paths, so ``open_bundle`` copies the program, the
weights and the tokenizer out of the archive once, into the content-addressed
cache (``etm_lint.cache``, keyed by each member's sha256), and reuses them in
every later session. It hands the tokenizer over as a runtime opening a
bundle must: a Hugging Face ``tokenizer.json`` goes in a cached folder beside
a ``tokenizer_config.json`` made from ``metadata.json``'s special tokens, so
the runner's loader reads BOS and EOS from the bundle instead of guessing
them from token names; the other formats carry their own and go alone.

A member found in the cache is trusted for a bundle file only after its bytes
in that file were hashed once: the cache proves that a blob hashes to its
name, not that this bundle's member does. The proof is remembered by a stamp
named after the bundle file's identity (path, inode, size, modification
time), so a second session on the same file reads nothing but the zip
directory and ``metadata.json``.

``BundleModel`` is what the pytest fixture and ``etm run`` share: a raw
prompt, or messages rendered by the bundle's chat template, generated with
the bundle's ``num_bos``, ``num_eos``, stop strings and defaults.

Nothing here imports torch or executorch until ``BundleModel.load``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etm_lint import cache
from etm_lint.errors import EtmError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle

if TYPE_CHECKING:
    from etm_lint.runtime.runner import Generation, LoadedModel
    from etm_lint.tokenizer import RuntimeTokenizer

__all__ = [
    "BundleModel",
    "Defaults",
    "RunnableBundle",
    "open_bundle",
    "runtime_tokenizer_path",
]

HF_KIND = "huggingface"


@dataclass(frozen=True)
class Defaults:
    """What a runtime applies when the caller does not say otherwise."""

    num_bos: int = 0
    num_eos: int = 0
    # None: the bundle names none; callers then decode greedily.
    temperature: float | None = None
    # None: fill the context, as the runner does.
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunnableBundle:
    """A bundle's members as files the runner can open, and its metadata."""

    path: str
    name: str
    metadata: dict[str, Any]
    program: Path
    data_files: tuple[Path, ...]
    # What the runner's tokenizer loader is given: a file, or a folder.
    tokenizer: Path
    tokenizer_file: Path
    tokenizer_kind: str
    special_tokens: dict[str, Any]
    chat_template: str | dict[str, str] | None
    defaults: Defaults


def open_bundle(path: str | os.PathLike[str]) -> RunnableBundle:
    """Validate ``metadata.json`` and put the members the runner needs in the cache.

    Raises EtmError (one line naming the bundle) for a bundle that cannot run:
    unreadable, invalid metadata, a member missing or not matching its hash.
    """
    path = os.fspath(path)
    with Bundle(path) as bundle:
        raw = bundle.metadata_bytes()
        if raw is None:
            raise EtmError(f"{path}: no {meta.METADATA_NAME}; not an .etm bundle")
        stamp = _stamp_path(path, raw)
        trusted = stamp is not None and stamp.is_file()
        # A stamp means these very bytes passed every check before.
        document = read_metadata(path, raw, validate=not trusted)
        program = _materialize(bundle, document["program"], trusted)
        data = tuple(
            _materialize(bundle, entry, trusted)
            for entry in document.get("weights", [])
        )
        tokenizer_entry = document["tokenizer"]
        tokenizer_file = _materialize(bundle, tokenizer_entry, trusted)
    if stamp is not None and not trusted:
        _touch(stamp)
    special = dict(document.get("special_tokens", {}))
    kind = tokenizer_entry["kind"]
    return RunnableBundle(
        path=path,
        name=str(document.get("name") or Path(path).stem),
        metadata=document,
        program=program,
        data_files=data,
        tokenizer=runtime_tokenizer_path(
            tokenizer_file, kind, tokenizer_entry["sha256"], special
        ),
        tokenizer_file=tokenizer_file,
        tokenizer_kind=kind,
        special_tokens=special,
        chat_template=document.get("chat_template"),
        defaults=_defaults(document),
    )


def _in_bundle_terms(text: str, bundle: RunnableBundle) -> str:
    """``text`` with the cached copies' paths named as the bundle's members
    (the reader knows the bundle, not where this tool keeps copies)."""
    document = bundle.metadata
    named = [
        (bundle.tokenizer, document["tokenizer"]["member"]),
        (bundle.tokenizer_file, document["tokenizer"]["member"]),
        (bundle.program, document["program"]["member"]),
    ]
    named += [
        (path, entry["member"])
        for path, entry in zip(
            bundle.data_files, document.get("weights", []), strict=True
        )
    ]
    for local, member in named:
        text = text.replace(str(local), f"{bundle.path}:{member}")
    return text


def render_chat(
    path: str,
    chat_template: str | Mapping[str, str] | None,
    special_tokens: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    name: str | None = None,
    now: datetime | None = None,
) -> str:
    """The prompt a bundle's chat template (``name``d, or the default one)
    makes of ``messages``, with the bundle's special tokens as the
    template's token variables; ``now`` is what ``strftime_now`` reads."""
    from etm_lint.template import render, select_template
    from etm_lint.tokenizer import token_variables

    if chat_template is None:
        raise EtmError(
            f"{path}: the bundle has no chat template; give a prompt instead of "
            "messages"
        )
    template = select_template(chat_template, name)
    return render(
        template,
        messages,
        add_generation_prompt=add_generation_prompt,
        special_tokens=token_variables(special_tokens),
        now=now,
    )


class OpenedBundle:
    """A bundle read in place, for what needs no runtime: its zip members
    (``archive``), validated ``metadata``, ``chat_template``,
    ``special_tokens``, the ``tokenizer`` as the runtime loads it, and
    ``render(messages)``. Only the tokenizer member is ever copied out, into
    the cache, when ``tokenizer`` is first read.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.archive = Bundle(self.path)
        try:
            raw = self.archive.metadata_bytes()
            if raw is None:
                raise EtmError(
                    f"{self.path}: no {meta.METADATA_NAME}; not an .etm bundle"
                )
            self.metadata = read_metadata(self.path, raw, validate=True)
        except BaseException:
            self.archive.close()
            raise

    def __enter__(self) -> OpenedBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.archive.close()

    @property
    def chat_template(self) -> str | dict[str, str] | None:
        template: str | dict[str, str] | None = self.metadata.get("chat_template")
        return template

    @property
    def special_tokens(self) -> dict[str, Any]:
        return dict(self.metadata.get("special_tokens", {}))

    @functools.cached_property
    def tokenizer(self) -> RuntimeTokenizer:
        """The tokenizer loaded by the runtime's own loader, as the runner
        would load it from this bundle (raises EtmError if it cannot)."""
        from etm_lint.tokenizer import load

        entry = self.metadata["tokenizer"]
        file = _materialize(self.archive, entry, trusted=False)
        given = runtime_tokenizer_path(
            file, entry["kind"], entry["sha256"], self.special_tokens
        )
        return load(str(given))

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt the bundle's chat template makes of ``messages``."""
        return render_chat(
            self.path,
            self.chat_template,
            self.special_tokens,
            messages,
            add_generation_prompt=add_generation_prompt,
        )


def runtime_tokenizer_path(
    tokenizer_file: Path,
    kind: str,
    sha256: str | None,
    special_tokens: Mapping[str, Any],
) -> Path:
    """What a runtime hands the tokenizer loader for a bundle's tokenizer.

    A Hugging Face tokenizer goes in a cached folder with a
    ``tokenizer_config.json`` built from the bundle's special tokens (the
    loader then reads BOS/EOS from it); the other formats load alone.
    """
    if kind != HF_KIND:
        return tokenizer_file
    from etm_lint.tokenizer import runtime_config

    config = runtime_config(special_tokens)
    return cache.folder(
        {"tokenizer": sha256, "config": config},
        {
            "tokenizer.json": tokenizer_file,
            "tokenizer_config.json": json.dumps(config, indent=1).encode(),
        },
    )


# ------------------------------------------------------------ metadata


def read_metadata(path: str, raw: bytes, validate: bool = True) -> dict[str, Any]:
    where = f"{path}: {meta.METADATA_NAME}"
    try:
        document: dict[str, Any] = meta.parse(raw)
    except ValueError as err:
        raise EtmError(f"{where} {err}") from None
    if not validate:
        return document
    problems = meta.validate(document)
    if problems:
        raise EtmError(f"{where}: {problems[0]}")
    if meta.major_version(document) != meta.KNOWN_MAJOR:
        raise EtmError(
            f"{where}: format_version {document['format_version']} is not "
            f"{meta.KNOWN_MAJOR}.x"
        )
    if document["kind"] not in meta.KINDS:
        raise EtmError(f"{where}: kind {document['kind']!r} is not one of {meta.KINDS}")
    return document


def _defaults(document: Mapping[str, Any]) -> Defaults:
    generation = document.get("generation", {})
    temperature = generation.get("temperature")
    return Defaults(
        num_bos=int(document.get("num_bos", 0)),
        num_eos=int(document.get("num_eos", 0)),
        temperature=None if temperature is None else float(temperature),
        max_new_tokens=generation.get("max_new_tokens"),
        stop=tuple(generation.get("stop", ())),
    )


# ------------------------------------------------------------ members


def _materialize(bundle: Bundle, entry: Mapping[str, Any], trusted: bool) -> Path:
    name, claimed = entry["member"], entry["sha256"]
    member = bundle.get(name)
    if member is None:
        raise EtmError(f"{bundle.path}: metadata.json names {name!r}, not in the zip")
    if member.size != entry["size"]:
        raise EtmError(
            f"{bundle.path}: {name} is {member.size} bytes, metadata.json says "
            f"{entry['size']}"
        )
    blob = cache.blob_path(claimed, name)
    if blob.is_file():
        if not trusted:
            _check_digest(bundle, name, claimed)
        return blob
    try:
        return cache.store(claimed, name, bundle.chunks(name))
    except EtmError as err:
        raise EtmError(f"{bundle.path}: {err}") from None


def _check_digest(bundle: Bundle, name: str, claimed: str) -> None:
    digest = bundle.sha256(name)
    if digest != claimed:
        raise EtmError(
            f"{bundle.path}: {name} hashes to {digest}, metadata.json says {claimed}"
        )


def _stamp_path(path: str, metadata: bytes) -> Path | None:
    # The identity of this very file: a rewritten bundle (a new inode, size
    # or time, other metadata) is checked and hashed again.
    try:
        st = os.stat(path)
    except OSError:
        return None
    identity = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
    digest = hashlib.sha256(identity.encode() + metadata).hexdigest()
    return cache.cache_root() / "verified" / digest


def _touch(stamp: Path) -> None:
    # A missing stamp only costs one more hash next time, so a cache that
    # cannot take it is not an error.
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        return


# ------------------------------------------------------------ the model


class BundleModel:
    """A bundle loaded in ExecuTorch's LLM runner, generating with its settings."""

    def __init__(self, bundle: RunnableBundle, model: LoadedModel, open_s: float):
        self.bundle = bundle
        self.model = model
        # Opening (cache look-ups, or the first copy) plus the runner's load.
        self.load_s = open_s + model.load_s

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, custom_ops: bool | None = None
    ) -> BundleModel:
        from etm_lint.runtime.runner import LoadedModel

        start = time.perf_counter()
        bundle = open_bundle(path)
        open_s = time.perf_counter() - start
        try:
            model = LoadedModel.load(
                str(bundle.program),
                str(bundle.tokenizer),
                [str(p) for p in bundle.data_files],
                custom_ops=custom_ops,
            )
        except EtmError as err:
            raise EtmError(_in_bundle_terms(str(err), bundle)) from None
        return cls(bundle, model, open_s)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        return self.model.eos_ids

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt the bundle's chat template makes of ``messages``."""
        return render_chat(
            self.bundle.path,
            self.bundle.chat_template,
            self.bundle.special_tokens,
            messages,
            add_generation_prompt=add_generation_prompt,
        )

    def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        num_bos: int | None = None,
        num_eos: int | None = None,
        add_generation_prompt: bool = True,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Generate from a raw ``prompt`` or from ``messages``.

        Every setting left None takes the bundle's value (``metadata.json``:
        ``num_bos``, ``num_eos``, ``generation``); a temperature the bundle
        does not name is 0, greedy. ``on_text`` streams the text as the
        runner makes it (see ``LoadedModel.generate``).
        """
        if (prompt is None) == (messages is None):
            raise ValueError("give either a prompt or messages, not both")
        text = (
            prompt
            if prompt is not None
            else self.render(
                messages or [], add_generation_prompt=add_generation_prompt
            )
        )
        settings = self.settings(max_new_tokens, temperature, stop, num_bos, num_eos)
        generation = self.model.generate(
            text,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature or 0.0,
            num_bos=settings.num_bos,
            num_eos=settings.num_eos,
            stop=settings.stop,
            on_text=on_text,
        )
        return replace(generation, prompt=text)

    def settings(
        self,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        num_bos: int | None = None,
        num_eos: int | None = None,
    ) -> Defaults:
        """The bundle's defaults with the caller's choices laid over them."""
        base = self.bundle.defaults
        return Defaults(
            num_bos=base.num_bos if num_bos is None else num_bos,
            num_eos=base.num_eos if num_eos is None else num_eos,
            temperature=(
                (base.temperature or 0.0) if temperature is None else temperature
            ),
            max_new_tokens=(
                base.max_new_tokens if max_new_tokens is None else max_new_tokens
            ),
            stop=base.stop if stop is None else tuple(stop),
        )
