"""The lint's base path imports neither torch nor executorch.

``import executorch.runtime`` alone takes 7-11 s, so a linter that pulled it
in could never start fast, and the base install has neither package. The
lint runs here in a fresh interpreter on the small fixture and the example
bundles; afterwards
that interpreter reports which top-level packages ``sys.modules`` holds.
No timing is asserted: ``python -m benchmarks.run`` measures start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, FIXTURES

HEAVY = ("torch", "executorch")
CHILD = """\
import json, sys
from etm_lint.cli.lint import main
code = main(sys.argv[1:])
loaded = sorted({name.partition(".")[0] for name in sys.modules})
print(json.dumps({"exit": code, "packages": loaded}))
"""


def lint_in_fresh_interpreter(args: list[str], cwd: Path) -> dict[str, object]:
    env = {**os.environ, "NO_COLOR": "1", "ETM_CACHE_DIR": str(cwd / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, result.stderr
    report: dict[str, object] = json.loads(lines[-1])
    return report


BUNDLES = {
    # The small fixture whose clean lint the start-up benchmark times.
    "good.etm": FIXTURES / "good.etm",
    "stories260K.etm": EXAMPLES / "stories260K.etm",
    "stories260K_ext.etm": EXAMPLES / "stories260K_ext.etm",
}


@pytest.mark.parametrize("name", sorted(BUNDLES))
@pytest.mark.parametrize("extra", [[], ["--verify-hashes"]], ids=["default", "hashes"])
def test_lint_imports_neither_torch_nor_executorch(
    tmp_path: Path, name: str, extra: list[str]
) -> None:
    report = lint_in_fresh_interpreter(
        ["--no-config", *extra, str(BUNDLES[name])], tmp_path
    )
    # A crash would end the lint before the rules that load tokenizers and
    # templates, and prove nothing about them.
    assert report["exit"] in (0, 1)
    packages = report["packages"]
    assert isinstance(packages, list)
    assert [p for p in packages if p in HEAVY] == []


def test_the_child_sees_heavy_imports_when_they_happen(tmp_path: Path) -> None:
    """The check above can fail: a run that imports torch shows it."""
    child = CHILD.replace("import json, sys", "import json, sys, torch")
    env = {**os.environ, "ETM_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", child, "--list-rules"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 and "No module named 'torch'" in result.stderr:
        pytest.skip("torch is not installed (base install)")
    assert "torch" in json.loads(result.stdout.strip().splitlines()[-1])["packages"]
