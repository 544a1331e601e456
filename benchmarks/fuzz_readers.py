"""A long fuzzing campaign over the readers of hostile input; not run in CI.

    python -m benchmarks.fuzz_readers --budget 600          # ten minutes
    python -m benchmarks.fuzz_readers --inputs 2000 --seed 1
    python -m benchmarks.fuzz_readers --targets zip,program --json out.json

Targets: ``program`` (``read_program`` on mutated .pte files), ``weights``
(``read_data_file`` on .ptd files), ``zip`` (``Bundle`` opened on mutated
.etm archives and every member read every way) and ``metadata``
(``metadata.parse`` then ``validate``) and ``template`` (a chat template
compiled and rendered for one standard conversation, 0.5 s time limit).
Seeds are the repository's fixtures and, when present beside the checkout,
the real programs and chat templates in ``../shared/real``.

Mutations are blind (bit flips, interesting integers, cuts, splices,
duplicated and deleted blocks), biased towards the bytes each reader
interprets: the flatbuffer of a program, the headers and directory of a
zip. A light feedback loop stands in for coverage: an input whose outcome
(the shape of its error message, digits erased, or how much it read) was
not seen before joins the seed pool.

An input is a *crash* when anything but the reader's own error escapes
(FormatError/EtmError; ValueError for metadata), a *hang* when it runs past
``--hang`` seconds (stopped by SIGALRM, which breaks out of Python code; a
reader stuck in native code would stop the campaign instead, and say so by
not finishing). Crashing inputs are written to ``--save`` for replay.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle
from etm_lint.format.ptd import read_data_file
from etm_lint.format.pte import read_program
from etm_lint.format.source import BytesSource

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "real"
INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000)
INTERESTING_64 = (0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)


class Hang(Exception):
    """Raised by the alarm when one input runs too long."""


@dataclass
class Stats:
    tried: int = 0
    answered: int = 0
    refused: int = 0
    crashes: dict[str, str] = field(default_factory=dict)  # signature: file
    hangs: int = 0
    slow: int = 0  # over a tenth of the hang limit
    slowest_s: float = 0.0
    slowest_input: bytes = b""
    outcomes: set[str] = field(default_factory=set)
    seconds: float = 0.0


@dataclass(frozen=True)
class Seed:
    data: bytes
    hot: tuple[int, int]  # the byte range the reader interprets most


# -- seeds ------------------------------------------------------------------------


def _files(*patterns: str) -> list[Path]:
    """Files matching ``patterns`` in the repository, or in ../shared/real
    for a pattern written ``real:...``; at most 2 MiB each."""
    found: list[Path] = []
    for pattern in patterns:
        root = REAL if pattern.startswith("real:") else REPO
        if root.is_dir():
            found.extend(sorted(root.glob(pattern.removeprefix("real:"))))
    return [p for p in found if p.stat().st_size <= 2 << 20]


def program_seeds() -> list[Seed]:
    seeds = []
    for path in _files("fixtures/src/*.pte", "real:pte/*.pte", "real:models/*/*.pte"):
        data = path.read_bytes()
        size = len(data)
        if data[8:12] == b"eh00":
            size = min(size, struct.unpack_from("<Q", data, 16)[0])
        seeds.append(Seed(data, (0, size)))
    return seeds


def weights_seeds() -> list[Seed]:
    seeds = []
    for path in _files("fixtures/src/*.ptd", "real:pte/*.ptd", "real:models/*/*.ptd"):
        data = path.read_bytes()
        end = sum(struct.unpack_from("<2Q", data, 16)) if len(data) >= 32 else 0
        seeds.append(Seed(data, (0, min(max(end, 64), len(data)))))
    return seeds


def zip_seeds() -> list[Seed]:
    seeds = []
    for path in _files("fixtures/*.etm", "fixtures/broken/*.etm", "examples/*.etm"):
        data = path.read_bytes()
        start = data.find(b"PK\x01\x02")
        seeds.append(Seed(data, (max(start, 0), len(data))))
    return seeds


def metadata_seeds() -> list[Seed]:
    seeds = []
    for seed in zip_seeds():
        with tempfile.NamedTemporaryFile(suffix=".etm") as handle:
            handle.write(seed.data)
            handle.flush()
            with Bundle(handle.name) as bundle:
                raw = bundle.metadata_bytes() or b"{}"
        seeds.append(Seed(raw, (0, len(raw))))
    return seeds


# -- mutation ---------------------------------------------------------------------


def mutate(rng: random.Random, seed: Seed, pool: Sequence[Seed]) -> bytes:
    data = bytearray(seed.data)
    for _ in range(rng.choice((1, 1, 2, 3, 5, 8))):
        data = _one_mutation(rng, data, seed.hot, pool)
    return bytes(data)


def _where(rng: random.Random, data: bytearray, hot: tuple[int, int]) -> int:
    if not data:
        return 0
    low, high = hot
    if rng.random() < 0.8 and low < min(high, len(data)):
        return rng.randrange(low, min(high, len(data)))
    return rng.randrange(len(data))


def _one_mutation(
    rng: random.Random, data: bytearray, hot: tuple[int, int], pool: Sequence[Seed]
) -> bytearray:
    at = _where(rng, data, hot)
    kind = rng.randrange(9)
    if kind == 0 and data:
        data[at] ^= 1 << rng.randrange(8)
    elif kind == 1 and data:
        data[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif kind == 2 and len(data) >= at + 4:
        value = rng.choice((*INTERESTING_32, len(data), len(data) + 1, at))
        struct.pack_into("<I", data, at, value & 0xFFFFFFFF)
    elif kind == 3 and len(data) >= at + 8:
        struct.pack_into("<Q", data, at, rng.choice(INTERESTING_64))
    elif kind == 4:
        del data[at:]
    elif kind == 5:
        length = rng.randrange(1, 256)
        del data[at : at + length]
    elif kind == 6 and data:
        start = rng.randrange(len(data))
        block = data[start : start + rng.randrange(1, 512)]
        data[at:at] = block
    elif kind == 7:
        data[at:at] = rng.randbytes(rng.randrange(1, 64))
    elif kind == 8 and pool:
        other = rng.choice(pool).data
        start = rng.randrange(max(len(other), 1))
        data[at : at + 64] = other[start : start + 64]
    return data


# -- targets ----------------------------------------------------------------------


def run_program(data: bytes, _: Path) -> str:
    info = read_program(BytesSource("fuzz.pte", data))
    return f"ok:{len(info.methods)}:{len(info.segments)}"


def run_weights(data: bytes, _: Path) -> str:
    info = read_data_file(BytesSource("fuzz.ptd", data))
    return f"ok:{len(info.keys)}"


def run_zip(data: bytes, scratch: Path) -> str:
    scratch.write_bytes(data)
    read = 0
    with Bundle(scratch) as bundle:
        for name in dict.fromkeys(bundle.names()):
            try:
                body = bundle.read(name, limit=8 << 20)
                bundle.sha256(name)
                bundle.source(name).read(0, min(len(body), 64))
            except EtmError:
                continue
            read += 1
    return f"ok:{len(bundle.members)}:{read}"


def run_metadata(data: bytes, _: Path) -> str:
    try:
        document = meta.parse(data)
    except ValueError as err:
        raise EtmError(str(err)) from None
    return f"ok:{len(meta.validate(document))}"


def template_seeds() -> list[Seed]:
    config = json.loads((REPO / "fixtures/src/tokenizer_config.json").read_text())
    texts = [config["chat_template"].encode()]
    texts += [p.read_bytes() for p in _files("real:chat_templates/*.jinja")]
    return [Seed(text, (0, len(text))) for text in texts]


def run_template(data: bytes, _: Path) -> str:
    # Every exception a template can raise on purpose is a TemplateError (an
    # EtmError): syntax, limits, sandbox, raise_exception.
    from etm_lint.template import STANDARD_CONVERSATIONS, render

    case = STANDARD_CONVERSATIONS[len(data) % len(STANDARD_CONVERSATIONS)]
    text = render(
        data.decode("utf-8", "replace"),
        case.messages,
        add_generation_prompt=case.add_generation_prompt,
        tools=case.tools,
        time_limit_s=0.5,
    )
    return f"ok:{len(text)}"


TARGETS: dict[str, tuple[Callable[[bytes, Path], str], Callable[[], list[Seed]]]] = {
    "program": (run_program, program_seeds),
    "weights": (run_weights, weights_seeds),
    "zip": (run_zip, zip_seeds),
    "metadata": (run_metadata, metadata_seeds),
    "template": (run_template, template_seeds),
}


# -- the campaign -----------------------------------------------------------------


def _outcome(text: str) -> str:
    return re.sub(r"\d+", "N", text)[:100]


def _signature(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "etm_lint" in f.filename or "zipfile" in f.filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(err).__name__} at {place}"


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def fuzz_target(
    name: str,
    rng: random.Random,
    *,
    seconds: float,
    inputs: int | None,
    hang_s: float,
    save: Path | None,
    scratch: Path,
) -> Stats:
    run, seeds_of = TARGETS[name]
    pool = seeds_of()
    stats = Stats()
    if not pool:
        return stats
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and (
        inputs is None or stats.tried < inputs
    ):
        data = mutate(rng, rng.choice(pool), pool)
        stats.tried += 1
        outcome = _one_input(run, data, scratch, hang_s, stats, save, name)
        if outcome is not None and outcome not in stats.outcomes:
            stats.outcomes.add(outcome)
            if len(pool) < 800:
                pool.append(Seed(data, (0, len(data))))
    stats.seconds = time.perf_counter() - start
    return stats


def _one_input(
    run: Callable[[bytes, Path], str],
    data: bytes,
    scratch: Path,
    hang_s: float,
    stats: Stats,
    save: Path | None,
    target: str,
) -> str | None:
    began = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, hang_s)
    try:
        outcome = _outcome(run(data, scratch))
        stats.answered += 1
    except EtmError as err:
        outcome = _outcome(str(err).split(": ", 1)[-1])
        stats.refused += 1
    except Hang:
        stats.hangs += 1
        outcome = None
        _keep(save, target, "hang", data)
    except Exception as err:
        outcome = None
        signature = _signature(err)
        if signature not in stats.crashes:
            stats.crashes[signature] = _keep(save, target, "crash", data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    took = time.perf_counter() - began
    if took > stats.slowest_s:
        stats.slowest_s = took
        stats.slowest_input = data
    stats.slow += took > hang_s / 10
    return outcome


def _keep(save: Path | None, target: str, kind: str, data: bytes) -> str:
    if save is None:
        return ""
    save.mkdir(parents=True, exist_ok=True)
    path = save / f"{target}-{kind}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return str(path)


def campaign(
    targets: Sequence[str],
    *,
    budget_s: float,
    inputs: int | None = None,
    seed: int = 0,
    hang_s: float = 5.0,
    save: Path | None = None,
) -> dict[str, Stats]:
    """Fuzz each target for an equal share of ``budget_s`` (or ``inputs``
    inputs each); returns the figures per target."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    results: dict[str, Stats] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="etm-fuzz-") as folder:
            scratch = Path(folder) / "input.etm"
            for name in targets:
                rng = random.Random(f"{seed}:{name}")
                results[name] = fuzz_target(
                    name,
                    rng,
                    seconds=budget_s / len(targets),
                    inputs=inputs,
                    hang_s=hang_s,
                    save=save,
                    scratch=scratch,
                )
    finally:
        signal.signal(signal.SIGALRM, previous)
    return results


def report(results: dict[str, Stats]) -> str:
    rows = [
        "| target | inputs | per second | answered | refused | outcomes | crashes "
        "| hangs | slowest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in results.items():
        rate = s.tried / s.seconds if s.seconds else 0.0
        rows.append(
            f"| {name} | {s.tried} | {rate:.0f} | {s.answered} | {s.refused} "
            f"| {len(s.outcomes)} | {len(s.crashes)} | {s.hangs} "
            f"| {s.slowest_s * 1000:.0f} ms |"
        )
    for name, s in results.items():
        rows.extend(
            f"crash in {name}: {sig} ({path})" for sig, path in s.crashes.items()
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    rows.append(f"peak resident memory: {peak} MiB")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz_readers")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds in all")
    parser.add_argument("--inputs", type=int, help="stop each target after N inputs")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=5.0, help="seconds per input")
    parser.add_argument("--save", type=Path, help="folder for crashing inputs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    results = campaign(
        targets,
        budget_s=args.budget,
        inputs=args.inputs,
        seed=args.seed,
        hang_s=args.hang,
        save=args.save,
    )
    sys.stdout.write(report(results))
    for name, s in results.items():
        _keep(args.save, name, "slowest", s.slowest_input)
    if args.json:
        figures = {
            name: {
                "inputs": s.tried,
                "seconds": round(s.seconds, 1),
                "answered": s.answered,
                "refused": s.refused,
                "outcomes": len(s.outcomes),
                "crashes": s.crashes,
                "hangs": s.hangs,
                "slow": s.slow,
                "slowest_s": round(s.slowest_s, 3),
            }
            for name, s in results.items()
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    failed = any(s.crashes or s.hangs for s in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
