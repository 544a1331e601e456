"""``etm inspect`` against ExecuTorch's own ways of reading a program.

Each reader runs as a whole process on the same ``.pte``, as a user would
run it, so import time counts:

- ``etm inspect PROGRAM``: header, flatbuffer and constant values;
- ``executorch.runtime``: ``Runtime.get().load_program(path)``, then every
  constant method (no inputs) loaded and executed;
- the exir Python deserializer: the file read into memory and given to
  ``deserialize_pte_binary``.

The runtime child prints the constants it computed, which must equal the
values ``etm inspect --json`` read from the flatbuffer; the report says so.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import measure
from benchmarks.bench_lint import Workspace, console

RUNTIME_CHILD = """\
import json, sys, time
start = time.perf_counter()
from executorch.runtime import Runtime
imported = time.perf_counter()
program = Runtime.get().load_program(sys.argv[1])
constants = {}
for name in sorted(program.method_names):
    if program.metadata(name).num_inputs() == 0:
        outputs = list(program.load_method(name).execute([]))
        constants[name] = outputs[0] if len(outputs) == 1 else outputs
done = time.perf_counter()
print(json.dumps({"import": imported - start, "work": done - imported,
                  "constants": constants}))
"""

EXIR_CHILD = """\
import json, sys, time
start = time.perf_counter()
from executorch.exir._serialize._program import deserialize_pte_binary
imported = time.perf_counter()
with open(sys.argv[1], "rb") as handle:
    pte = deserialize_pte_binary(handle.read())
plans = [plan.name for plan in pte.program.execution_plan]
done = time.perf_counter()
print(json.dumps({"import": imported - start, "work": done - imported,
                  "methods": len(plans)}))
"""


@dataclass(frozen=True)
class ToolRow:
    name: str
    wall: float
    max_rss: int
    returncode: int
    import_seconds: float | None  # from the child, where it reports
    work_seconds: float | None


@dataclass(frozen=True)
class ToolsResult:
    program: Path
    size: int  # bytes of the program
    rows: tuple[ToolRow, ...]
    constants_agree: bool | None  # None when the runtime did not run


def compare(
    program: Path, repeat: int, space: Workspace, runtime: bool = True
) -> ToolsResult:
    inspect = space.repeat([*console("etm"), "inspect", str(program)], repeat)
    rows = [_row("etm inspect", inspect)]
    agree = None
    if runtime:
        python = [sys.executable, "-c"]
        ran = space.run([*python, RUNTIME_CHILD, str(program)])
        rows.append(_row("executorch.runtime load + constant methods", [ran]))
        read = space.run([*python, EXIR_CHILD, str(program)])
        rows.append(_row("exir deserialize_pte_binary", [read]))
        agree = _constants_agree(program, ran, space)
    return ToolsResult(
        program=program,
        size=program.stat().st_size,
        rows=tuple(rows),
        constants_agree=agree,
    )


def _row(name: str, samples: list[measure.Sample]) -> ToolRow:
    report = _child_report(samples[-1])
    return ToolRow(
        name=name,
        wall=measure.median_wall(samples),
        max_rss=measure.peak_rss(samples),
        returncode=max(s.returncode for s in samples),
        import_seconds=report.get("import"),
        work_seconds=report.get("work"),
    )


def _child_report(sample: measure.Sample) -> dict[str, Any]:
    lines = sample.stdout.strip().splitlines()
    if sample.returncode != 0 or not lines or not lines[-1].startswith("{"):
        return {}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _constants_agree(program: Path, ran: measure.Sample, space: Workspace) -> bool:
    executed = _child_report(ran).get("constants")
    shown = space.run([*console("etm"), "inspect", "--json", str(program)])
    if executed is None or shown.returncode != 0:
        return False
    read = json.loads(shown.stdout)["program"]["constants"]
    return bool(read == executed)
