"""The generation harness against ExecuTorch's LLM runner called directly.

    python -m benchmarks.bench_harness            # examples/stories260K.etm
    python -m benchmarks.bench_harness --bundle BUNDLE --runs 9 --json

``BUNDLE`` may be a bigger model, such as the 100 MB one that
``python -m benchmarks.models`` builds under ~/.cache/etm-lint-bench
(``100mb-inside/bundle.etm``).

Two comparisons, each in one process, the two sides alternating run by run
so that drift in the machine's speed hits both alike:

1. Generation. The model the pytest fixture hands a test (``etm_model``: a
   ``BundleModel`` from the plugin's pool) against ``TextLLMRunner`` built
   directly on the same program, weights and tokenizer files, both greedy,
   both making the same tokens from the same prompt. Each side is timed the
   same way: ``time.perf_counter_ns`` at the call and at every streamed
   piece; time to first token is call to first piece, decode tokens/s counts
   the pieces after the first over the time from the first to the last. Both
   run with the runner's native output going to a file, as the harness runs
   it (a terminal would slow the direct side). Medians of ``--runs`` runs
   after one warm-up each, the side that goes first alternating; beside the
   ratio of the medians, the median and range of each pair's own ratio
   show how much of a gap is the machine's noise. Target: fixture / direct
   >= 0.97 for decode tokens/s; time to first token is reported beside it.
2. Opening. ``BundleModel.load`` on a bundle whose members are already in the
   cache (zip directory, metadata, cache look-ups, then the runner's load)
   against ``LoadedModel.load`` on the same files unpacked loose in a temp
   folder. Medians of ``--open-runs`` loads each, the side that goes first
   alternating. Target: bundle / loose <= 1.05.

The exit status is 1 when a target is missed and ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "examples" / "stories260K.etm"
DEFAULT_PROMPT = "Once upon a time"
DECODE_TARGET = 0.97
OPEN_TARGET = 1.05


@dataclass(frozen=True)
class Run:
    """One generation: time to first token, decode speed, tokens made, and
    the process's CPU time for the whole call (what the harness adds around
    the runner included)."""

    ttft_s: float
    decode_tokens_per_s: float
    tokens: int
    cpu_s: float


@dataclass(frozen=True)
class Side:
    name: str
    ttft_s: float
    decode_tokens_per_s: float
    tokens: int
    runs: int
    cpu_s: float
    # Each timed run's decode tokens/s and CPU time, in the order they ran.
    decode_samples: tuple[float, ...]
    cpu_samples: tuple[float, ...]


@dataclass(frozen=True)
class Result:
    bundle: str
    prompt: str
    fixture: Side
    direct: Side
    # Ratio of the medians, and the median of each pair's own ratio (the two
    # sides of a pair ran back to back, so drift in the machine cancels).
    decode_ratio: float
    decode_ratio_paired: float
    decode_ratio_range: tuple[float, float]
    ttft_ratio: float
    # CPU time of a whole call, fixture / direct, median over the pairs: the
    # figure other processes on a shared machine disturb least.
    cpu_ratio_paired: float
    open_bundle_s: float
    open_loose_s: float
    open_ratio: float

    @property
    def passed(self) -> bool:
        return self.decode_ratio >= DECODE_TARGET and self.open_ratio <= OPEN_TARGET


# ------------------------------------------------------------ generation


class Direct:
    """``TextLLMRunner`` as an application would call it, on the same files."""

    def __init__(self, model: Any):
        from etm_lint.runtime.runner import _import_runner, captured

        loaded = model.model
        data = loaded.data_files[0] if loaded.data_files else None
        with captured():
            module = _import_runner()
            self.runner = module.TextLLMRunner(loaded.program, loaded.tokenizer, data)
        self.module = module
        self.num_bos = model.bundle.defaults.num_bos

    def run(self, prompt: str, tokens: int) -> Run:
        from etm_lint.runtime.runner import captured

        stamps: list[int] = []
        config = self.module.GenerationConfig(
            echo=False, max_new_tokens=tokens, temperature=0.0, num_bos=self.num_bos
        )
        cpu = time.process_time_ns()
        with captured():
            self.runner.reset()
            start = time.perf_counter_ns()
            self.runner.generate(
                prompt, config, lambda _: stamps.append(time.perf_counter_ns())
            )
        return _run_of(start, stamps, (time.process_time_ns() - cpu) / 1e9)


def _run_of(start: int, stamps: list[int], cpu_s: float) -> Run:
    span = (stamps[-1] - stamps[0]) / 1e9 if stamps else 0.0
    rate = (len(stamps) - 1) / span if len(stamps) > 1 and span > 0 else 0.0
    ttft = (stamps[0] - start) / 1e9 if stamps else 0.0
    return Run(ttft, rate, len(stamps), cpu_s)


def fixture_run(model: Any, prompt: str, tokens: int) -> Run:
    cpu = time.process_time_ns()
    timing = model.generate(prompt, max_new_tokens=tokens, temperature=0.0).timing
    return Run(
        timing.time_to_first_token_s,
        timing.decode_tokens_per_s,
        timing.num_generated,
        (time.process_time_ns() - cpu) / 1e9,
    )


def side(name: str, runs: list[Run]) -> Side:
    return Side(
        name=name,
        ttft_s=statistics.median(r.ttft_s for r in runs),
        decode_tokens_per_s=statistics.median(r.decode_tokens_per_s for r in runs),
        tokens=runs[0].tokens,
        runs=len(runs),
        cpu_s=statistics.median(r.cpu_s for r in runs),
        decode_samples=tuple(r.decode_tokens_per_s for r in runs),
        cpu_samples=tuple(r.cpu_s for r in runs),
    )


def generation(model: Any, prompt: str, tokens: int, runs: int) -> tuple[Side, Side]:
    direct = Direct(model)
    # Warm-ups: the fixture's first call also makes the exact ids once.
    fixture_run(model, prompt, tokens)
    direct.run(prompt, tokens)
    ours: list[Run] = []
    theirs: list[Run] = []
    for index in range(runs):
        # Each side goes first every other time: no order effect.
        if index % 2:
            theirs.append(direct.run(prompt, tokens))
            ours.append(fixture_run(model, prompt, tokens))
        else:
            ours.append(fixture_run(model, prompt, tokens))
            theirs.append(direct.run(prompt, tokens))
    return side("fixture (etm_model)", ours), side("TextLLMRunner direct", theirs)


def paired(fixture: Side, direct: Side) -> tuple[float, ...]:
    """fixture / direct decode tokens/s of each pair of neighbouring runs."""
    return tuple(
        a / b
        for a, b in zip(fixture.decode_samples, direct.decode_samples, strict=True)
        if b > 0
    )


# ------------------------------------------------------------ opening


def loose_copy(model: Any, folder: Path) -> tuple[str, str, list[str]]:
    """The bundle's members as loose files, as ``etm unpack`` leaves them."""
    bundle = model.bundle
    program = shutil.copy(bundle.program, folder / bundle.program.name)
    data = [str(shutil.copy(p, folder / p.name)) for p in bundle.data_files]
    if bundle.tokenizer.is_dir():
        tokenizer = folder / "tokenizer"
        shutil.copytree(bundle.tokenizer, tokenizer)
    else:
        tokenizer = Path(shutil.copy(bundle.tokenizer, folder / bundle.tokenizer.name))
    return str(program), str(tokenizer), data


def _seconds(load: Callable[[], Any]) -> list[float]:
    start = time.perf_counter()
    loaded = load()
    took = time.perf_counter() - start
    del loaded
    gc.collect()  # the runner's memory goes back before the next load
    return [took]


def opening(path: Path, model: Any, runs: int) -> tuple[float, float]:
    from etm_lint.runtime.bundle import BundleModel
    from etm_lint.runtime.runner import LoadedModel

    with tempfile.TemporaryDirectory(prefix="etm-bench-loose-") as scratch:
        program, tokenizer, data = loose_copy(model, Path(scratch))

        def bundled() -> Any:
            return BundleModel.load(path)

        def loose() -> Any:
            return LoadedModel.load(program, tokenizer, data)

        bundled(), loose()  # warm: page cache, imports, the cache's stamp
        ours: list[float] = []
        theirs: list[float] = []
        for index in range(runs):
            # Each side goes first every other time: no order effect.
            if index % 2:
                theirs += _seconds(loose)
                ours += _seconds(bundled)
            else:
                ours += _seconds(bundled)
                theirs += _seconds(loose)
    return statistics.median(ours), statistics.median(theirs)


# ------------------------------------------------------------ the report


def measure(path: Path, prompt: str, tokens: int, runs: int, open_runs: int) -> Result:
    from pytest_etm.fixtures import ModelPool

    model = ModelPool().get(path)  # what the etm_model fixture returns
    fixture, direct = generation(model, prompt, tokens, runs)
    bundle_s, loose_s = opening(path, model, open_runs)
    pairs = paired(fixture, direct)
    return Result(
        bundle=str(path),
        prompt=prompt,
        fixture=fixture,
        direct=direct,
        decode_ratio=fixture.decode_tokens_per_s / direct.decode_tokens_per_s,
        decode_ratio_paired=statistics.median(pairs),
        decode_ratio_range=(min(pairs), max(pairs)),
        ttft_ratio=fixture.ttft_s / direct.ttft_s,
        cpu_ratio_paired=statistics.median(
            a / b
            for a, b in zip(fixture.cpu_samples, direct.cpu_samples, strict=True)
            if b > 0
        ),
        open_bundle_s=bundle_s,
        open_loose_s=loose_s,
        open_ratio=bundle_s / loose_s,
    )


def text(result: Result) -> str:
    rows = [("", "decode tokens/s", "first token", "CPU per call", "tokens", "runs")]
    for s in (result.fixture, result.direct):
        rows.append(
            (
                s.name,
                f"{s.decode_tokens_per_s:.1f}",
                f"{s.ttft_s * 1e3:.2f} ms",
                f"{s.cpu_s * 1e3:.1f} ms",
                str(s.tokens),
                str(s.runs),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"generation harness on {result.bundle} (prompt {result.prompt!r})"]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    ok = result.decode_ratio >= DECODE_TARGET
    low, high = result.decode_ratio_range
    lines += [
        f"decode tokens/s, fixture / direct: {result.decode_ratio:.3f} "
        f"(target >= {DECODE_TARGET}: {'ok' if ok else 'MISSED'})",
        f"  each pair's own ratio: median {result.decode_ratio_paired:.3f}, "
        f"from {low:.3f} to {high:.3f}",
        f"time to first token, fixture / direct: {result.ttft_ratio:.3f} (reported)",
        f"CPU time of a whole call, fixture / direct: {result.cpu_ratio_paired:.3f} "
        "(median over the pairs; reported)",
        f"open + load, bundle in the cache: {result.open_bundle_s * 1e3:.1f} ms; "
        f"loose files: {result.open_loose_s * 1e3:.1f} ms; ratio "
        f"{result.open_ratio:.3f} (target <= {OPEN_TARGET}: "
        f"{'ok' if result.open_ratio <= OPEN_TARGET else 'MISSED'})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_harness", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--tokens", type=int, default=256, help="max new tokens")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side")
    parser.add_argument(
        "--open-runs", type=int, default=41, help="timed loads per side"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a miss")
    args = parser.parse_args(argv)
    result = measure(
        args.bundle.expanduser(), args.prompt, args.tokens, args.runs, args.open_runs
    )
    if args.json:
        print(json.dumps({**asdict(result), "passed": result.passed}, indent=2))
    else:
        print(text(result))
    return 1 if args.strict and not result.passed else 0


if __name__ == "__main__":
    sys.exit(main())
