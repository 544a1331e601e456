"""Tiny Llama programs for the real-corpus tests, exported for real and cached;
and the generated blocks of ``docs/real-world.md`` those tests check.

A family's bundle needs a program whose logits are as wide as that family's
vocabulary and whose constant methods say what an exporter would derive from
the family's files. The program's weights are random (a fixed seed): the
linter reads shapes and constants, never what the model would say.

Exporting uses ``fixtures/build.py``'s own ``export_forward`` up to the edge dialect:
transformers' ``TorchExportableModuleForDecoderOnlyLM`` (static cache,
dynamic sequence length, strict), then ``to_edge`` and one ``to_executorch``
per set of constant methods, so each vocabulary costs one ``torch.export``
however many variants it has. The programs run on ExecuTorch's portable
kernels: XNNPACK lowering made each vocabulary cost 30 s or more on a loaded
two-core machine against about 10 s without it, and no finding these tests
assert depends on the delegate (ETM209 names only vendor backends).

Programs are cached in a folder named by a key over everything that decides
their bytes (the model's shape, the constants, the versions of torch,
executorch and transformers, and this file). A lock per key lets parallel
test workers share one export instead of repeating it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.export import ExportedProgram

SEED = 20240611
# One layer, hidden 16 (4 heads of 4), 2 KV heads: the graph, not the
# vocabulary, decides export time, so the smallest graph that still is a
# Llama keeps every family cheap.
HIDDEN = 16
LAYERS = 1
HEADS = 4
KV_HEADS = 2
FFN = 32
# Long enough that no standard probe conversation overflows it: a finding
# about the context would be about this tiny program, not about the family.
CONTEXT = 2048
VERSIONED = ("torch", "executorch", "transformers")
BUILDER = Path(__file__).resolve().parents[1] / "fixtures" / "build.py"


def llm_constants(
    vocab: int, bos_id: int | None, eos_ids: list[int] | None
) -> dict[str, Any]:
    """The constant methods of ExecuTorch's LLM exports for this program.

    ``None`` for BOS or EOS leaves that method out, as ExecuTorch's
    ``export_llama`` does when no ``--metadata`` names them.
    """
    constants: dict[str, Any] = {
        "get_max_seq_len": CONTEXT,
        "get_max_context_len": CONTEXT,
        "get_vocab_size": vocab,
        "get_n_layers": LAYERS,
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": False,
        "enable_dynamic_shape": True,
    }
    if bos_id is not None:
        constants["get_bos_id"] = bos_id
    if eos_ids is not None:
        constants["get_eos_ids"] = list(eos_ids)
    return constants


def programs(
    root: Path, vocab: int, variants: Mapping[str, Mapping[str, Any]]
) -> dict[str, Path]:
    """``<name>.pte`` for each variant's constants, exported once and cached."""
    if len({file_name(name) for name in variants}) != len(variants):
        raise ValueError("two variants would share a program file name")
    folder = root / f"vocab{vocab}-{cache_key(vocab, variants)}"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{folder.name}.lock"):
        if not folder.is_dir():
            scratch = root / f"{folder.name}.partial"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            export(vocab, variants, scratch)
            scratch.rename(folder)
    return {name: folder / file_name(name) for name in variants}


def file_name(variant: str) -> str:
    """A variant's program file: its name with anything but [A-Za-z0-9.-]
    replaced, so a name may say what it likes ("llama-3/eos from config")."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", variant).strip("_") + ".pte"


def cache_key(vocab: int, variants: Mapping[str, Mapping[str, Any]]) -> str:
    shape = (SEED, HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, CONTEXT)
    facts = {
        "vocab": vocab,
        "shape": shape,
        "variants": {name: dict(c) for name, c in sorted(variants.items())},
        "versions": {name: _version(name) for name in VERSIONED},
        "exporter": hashlib.sha256(
            Path(__file__).read_bytes() + BUILDER.read_bytes()
        ).hexdigest(),
    }
    text = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export(
    vocab: int, variants: Mapping[str, Mapping[str, Any]], out: Path
) -> list[Path]:
    """One torch.export and edge lowering; one .pte per variant in ``out``."""
    with warnings.catch_warnings():
        # Dynamo and the emitter warn about the static cache's buffers on
        # every export; they say nothing about these programs.
        warnings.simplefilter("ignore")
        lowered = _lower(_export(_model(vocab)))
        return [
            _emit(lowered, dict(constants), out / file_name(name))
            for name, constants in variants.items()
        ]


def _model(vocab: int) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=False,
        dtype=torch.float16,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).half().eval().requires_grad_(False)
    model.generation_config = GenerationConfig(
        use_cache=True,
        cache_implementation="static",
        cache_config={"batch_size": 1, "max_cache_len": CONTEXT},
    )
    return model


def _export(model: Any) -> ExportedProgram:
    # The fixtures' own export recipe, at this module's context length.
    exported: ExportedProgram = _fixture_builder().export_forward(model, CONTEXT)
    return exported


def _fixture_builder() -> Any:
    """fixtures/build.py as a module (a script folder, not a package)."""
    name = "etm_fixture_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BUILDER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _lower(program: ExportedProgram) -> ExportedProgram:
    import torch
    from executorch.exir import EdgeCompileConfig, to_edge

    with torch.no_grad():
        edge = to_edge(program, compile_config=EdgeCompileConfig())
    forward: ExportedProgram = edge.exported_program("forward")
    return forward


def _emit(lowered: ExportedProgram, constants: dict[str, Any], path: Path) -> Path:
    from executorch.exir import (
        EdgeCompileConfig,
        EdgeProgramManager,
        ExecutorchBackendConfig,
    )

    # A copy per variant: emitting consumes the lowered program.
    manager = EdgeProgramManager(
        {"forward": copy.deepcopy(lowered)},
        constant_methods=constants,
        compile_config=EdgeCompileConfig(_check_ir_validity=False),
    )
    path.write_bytes(manager.to_executorch(ExecutorchBackendConfig()).buffer)
    return path


def cache_root(base: Path) -> Path:
    """Where programs are cached: ``ETM_REAL_EXPORT_CACHE`` if set (a folder
    outside the checkout, kept between runs), else under ``base``."""
    chosen = os.environ.get("ETM_REAL_EXPORT_CACHE")
    return Path(chosen) if chosen else base / "real-export"


# -- the generated blocks of docs/real-world.md --------------------------------

WRITE_DOCS = "ETM_WRITE_DOCS"


def check_doc_block(doc: Path, name: str, body: str) -> None:
    """Assert that ``doc``'s block ``name`` holds ``body``; with
    ``ETM_WRITE_DOCS=1`` in the environment, write it there instead."""
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED: {name} -->\n)(.*?)(<!-- END GENERATED: {name} -->)",
        re.S,
    )
    # The lock lives outside the checkout: parallel workers write one file.
    with _locked(Path(tempfile.gettempdir()) / "etm-real-world-doc.lock"):
        text = doc.read_text(encoding="utf-8")
        found = pattern.search(text)
        assert found, f"{doc}: no generated block {name!r}"
        if os.environ.get(WRITE_DOCS) == "1":
            start, end = found.span(2)
            doc.write_text(text[:start] + body + text[end:], encoding="utf-8")
            return
    assert found.group(2) == body, (
        f"{doc.name}: block {name!r} is stale; rerun the test with {WRITE_DOCS}=1"
    )
