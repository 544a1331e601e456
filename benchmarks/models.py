"""Benchmark bundles of about 1 MB, 100 MB and 1 GB, built once and cached.

    python -m benchmarks.models                      # every size and layout
    python -m benchmarks.models --sizes 1mb,100mb    # some of them
    python -m benchmarks.models --cache DIR          # or ETM_BENCH_CACHE=DIR

Each size is a 3-layer Llama (transformers ``LlamaForCausalLM``) with random
weights under a fixed seed, the 32000-token tokenizer of
``benchmarks/tokenizer.py`` and its chat template. Only the hidden and
feed-forward widths change between sizes, so the graph, and with it the
program's flatbuffer, stays the same size while the weights grow a
thousandfold. Each size is exported with the real ExecuTorch export
(torch.export, XNNPACK lowering, the LLM runner's constant methods) twice:
with the weights inside the program, and with them in a ``.ptd`` data file.

Files go to a folder outside the repository (default
``~/.cache/etm-lint-bench``): the tokenizer folder, one folder per bundle
with ``bundle.etm`` and ``build.json`` (the build's key and its export time
and memory). Loose ``.pte``/``.ptd`` files are deleted after packing, except
the 1 GB program with its weights inside, which the comparison with
ExecuTorch's own readers needs. Everything takes about 3.7 GB; the 1 GB
export takes a few minutes and about 4 GB of memory. A build whose key (the
recipe, the model shape, the tokenizer's hash, the torch, executorch and
transformers versions) differs from the cached one is redone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import measure
from benchmarks import tokenizer as bench_tokenizer

if TYPE_CHECKING:
    from torch.export import ExportedProgram
    from transformers import PreTrainedModel

CACHE_ENV = "ETM_BENCH_CACHE"
DEFAULT_CACHE = Path("~/.cache/etm-lint-bench")
RECIPE = 1  # bump when the export recipe changes what a build produces
SEED = 20251203
LAYERS = 3
LAYOUTS = ("inside", "external")
DATA_TAG = "model"  # external weights land in model.ptd
KEEP_PROGRAM = ("1gb", "inside")  # the loose program bench_tools reads
VERSIONED = ("torch", "executorch", "transformers", "tokenizers")


@dataclass(frozen=True)
class Size:
    """A model shape: only the widths differ between sizes."""

    name: str
    hidden: int
    intermediate: int
    heads: int

    def parameters(self) -> int:
        """Weights counted as the export stores them (untied embeddings)."""
        vocab, h = bench_tokenizer.VOCAB_SIZE, self.hidden
        per_layer = 4 * h * h + 3 * h * self.intermediate + 2 * h
        return 2 * vocab * h + LAYERS * per_layer + h

    def program_bytes(self) -> int:
        return 4 * self.parameters()  # float32


SIZES = {
    size.name: size
    for size in (
        Size("1mb", hidden=4, intermediate=8, heads=1),
        Size("100mb", hidden=384, intermediate=1024, heads=6),
        Size("1gb", hidden=2048, intermediate=5632, heads=16),
    )
}


@dataclass(frozen=True)
class Built:
    """A cached benchmark bundle and how it was made."""

    size: str
    layout: str
    bundle: Path
    program: Path | None  # the loose .pte, when kept
    export_seconds: float
    export_peak_rss: int


def cache_root(override: Path | None = None) -> Path:
    chosen = override or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    return chosen.expanduser().resolve()


def tokenizer_folder(root: Path) -> Path:
    """The trained tokenizer's Hugging Face folder, trained on first use."""
    folder = root / "tokenizer"
    stamp = folder / "stamp.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == _tokenizer_key():
        return folder
    _log("training the 32000-token BPE tokenizer (about 10 s)")
    bench_tokenizer.write_folder(folder)
    stamp.write_text(json.dumps(_tokenizer_key()))
    return folder


def _tokenizer_key() -> dict[str, Any]:
    # Retrained when its recipe's source changes; programs are rebuilt only
    # if the trained file then differs (build_key hashes tokenizer.json).
    source = Path(bench_tokenizer.__file__).read_bytes()
    return {
        "recipe": hashlib.sha256(source).hexdigest(),
        "tokenizers": _version("tokenizers"),
    }


def build_key(size: Size, layout: str, tokenizer_json: Path) -> str:
    parts = {
        "recipe": RECIPE,
        "seed": SEED,
        "layers": LAYERS,
        "context": bench_tokenizer.CONTEXT,
        "size": asdict(size),
        "layout": layout,
        "tokenizer": hashlib.sha256(tokenizer_json.read_bytes()).hexdigest(),
        "versions": {name: _version(name) for name in VERSIONED},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _version(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "absent"


def ensure(root: Path, size_name: str, layout: str) -> Built:
    """The cached bundle for this size and layout, built if missing or stale."""
    size = SIZES[size_name]
    folder = root / f"{size_name}-{layout}"
    tokenizer = tokenizer_folder(root)
    key = build_key(size, layout, tokenizer / "tokenizer.json")
    record = folder / "build.json"
    if record.is_file():
        built = _read_record(record, key)
        if built is not None:
            return built
    return _build(folder, size, layout, tokenizer, key)


def _read_record(record: Path, key: str) -> Built | None:
    data = json.loads(record.read_text())
    if data.get("key") != key or not Path(data["bundle"]).is_file():
        return None
    program = Path(data["program"]) if data.get("program") else None
    if program is not None and not program.is_file():
        return None
    return Built(
        size=data["size"],
        layout=data["layout"],
        bundle=Path(data["bundle"]),
        program=program,
        export_seconds=data["export_seconds"],
        export_peak_rss=data["export_peak_rss"],
    )


def _build(folder: Path, size: Size, layout: str, tokenizer: Path, key: str) -> Built:
    from etm_lint.format.pack import pack_bundle

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _check_disk(folder, size)
    _log(f"exporting {size.name}-{layout} ({size.program_bytes() / 1e6:.0f} MB)")
    sample = measure.run(
        [sys.executable, "-m", "benchmarks.models", "export",
         "--size", size.name, "--layout", layout, "--out", str(folder)],
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if sample.returncode != 0:
        tail = "\n".join(sample.stderr.splitlines()[-20:])
        raise RuntimeError(f"export of {size.name}-{layout} failed:\n{tail}")
    _log(f"  {sample.wall:.0f} s, peak {sample.max_rss / 1e9:.1f} GB")

    program = folder / "model.pte"
    weights = [folder / f"{DATA_TAG}.ptd"] if layout == "external" else []
    bundle = folder / "bundle.etm"
    pack_bundle(
        bundle,
        program=program,
        tokenizer=tokenizer / "tokenizer.json",
        weights=weights,
        hf_dir=tokenizer,
        num_bos=1,
        name=f"bench-{size.name}",
    )
    kept = (size.name, layout) == KEEP_PROGRAM
    for loose in [program, *weights]:
        if not (kept and loose == program):
            loose.unlink()
    built = Built(
        size=size.name,
        layout=layout,
        bundle=bundle,
        program=program if kept else None,
        export_seconds=sample.wall,
        export_peak_rss=sample.max_rss,
    )
    record = {**asdict(built), "key": key, "bundle": str(bundle)}
    record["program"] = str(program) if kept else None
    (folder / "build.json").write_text(json.dumps(record, indent=2))
    return built


def _check_disk(folder: Path, size: Size) -> None:
    # Program (kept or not), bundle and, for external weights, the .ptd.
    needed = 3 * size.program_bytes() + 200 * 10**6
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise RuntimeError(
            f"{folder}: {free / 1e9:.1f} GB free, building {size.name} needs "
            f"{needed / 1e9:.1f} GB"
        )


def _log(message: str) -> None:
    print(f"[models] {message}", file=sys.stderr, flush=True)


# -- export (runs in its own process: torch, transformers, executorch) ----------


def constant_methods(size: Size) -> dict[str, Any]:
    """What the ExecuTorch LLM runner reads from a program."""
    special = bench_tokenizer.SPECIAL_TOKENS
    return {
        "get_max_seq_len": bench_tokenizer.CONTEXT,
        "get_max_context_len": bench_tokenizer.CONTEXT,
        "get_vocab_size": bench_tokenizer.VOCAB_SIZE,
        "get_n_layers": LAYERS,
        "get_bos_id": special.index(bench_tokenizer.BOS),
        "get_eos_ids": list(bench_tokenizer.EOS_IDS),
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": False,
        "enable_dynamic_shape": True,
    }


def build_model(size: Size) -> PreTrainedModel:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=bench_tokenizer.VOCAB_SIZE,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=LAYERS,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=bench_tokenizer.CONTEXT,
        tie_word_embeddings=False,
        bos_token_id=constant_methods(size)["get_bos_id"],
        eos_token_id=list(bench_tokenizer.EOS_IDS),
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval().requires_grad_(False)
    model.generation_config = GenerationConfig(
        use_cache=True,
        cache_implementation="static",
        cache_config={"batch_size": 1, "max_cache_len": bench_tokenizer.CONTEXT},
    )
    return model


def export_forward(model: PreTrainedModel) -> ExportedProgram:
    import torch
    from transformers.integrations.executorch import (
        TorchExportableModuleForDecoderOnlyLM,
    )

    context = bench_tokenizer.CONTEXT
    wrapper = TorchExportableModuleForDecoderOnlyLM(
        model, batch_size=1, max_cache_len=context
    )
    length = torch.export.Dim("seq_len", min=1, max=context - 1)
    with torch.no_grad():
        # Strict export: the non-strict graph fails later, in lowering.
        return wrapper.export(
            input_ids=torch.zeros((1, 2), dtype=torch.long),
            cache_position=torch.arange(2, dtype=torch.long),
            dynamic_shapes={"input_ids": {1: length}, "cache_position": {0: length}},
            strict=True,
        )


def tag_weights(program: ExportedProgram) -> None:
    """Send every parameter, XNNPACK-packed or not, to the data file."""
    parameters = program.graph_signature.inputs_to_parameters
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in parameters:
            node.meta.setdefault("custom", {})["delegate_constant_tag"] = DATA_TAG


def export(size: Size, layout: str, out: Path) -> None:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackPartitioner,
    )
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    exported = export_forward(build_model(size))
    external = layout == "external"
    if external:
        tag_weights(exported)
    with torch.no_grad():
        edge = to_edge_transform_and_lower(
            exported,
            partitioner=[XnnpackPartitioner()],
            constant_methods=constant_methods(size),
        )
    config = ExecutorchBackendConfig(
        external_constants=(lambda _node: DATA_TAG) if external else False
    )
    program = edge.to_executorch(config)
    with open(out / "model.pte", "wb") as handle:
        program.write_to_file(handle)
    if external:
        program.write_tensor_data_to_file(str(out))


# -- command line -----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help=f"default ${CACHE_ENV} or ~/.cache")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("export", help="export one program (internal)")
    child.add_argument("--size", choices=sorted(SIZES), required=True)
    child.add_argument("--layout", choices=LAYOUTS, required=True)
    child.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def split(value: str, allowed: Sequence[str]) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {unknown[0]!r}; choose from {', '.join(allowed)}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "export":
        export(SIZES[args.size], args.layout, args.out)
        return 0
    root = cache_root(args.cache)
    for size in split(args.sizes, list(SIZES)):
        for layout in split(args.layouts, LAYOUTS):
            built = ensure(root, size, layout)
            mb = built.bundle.stat().st_size / 1e6
            print(f"{size}-{layout}: {built.bundle} ({mb:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
