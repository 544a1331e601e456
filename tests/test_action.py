"""The GitHub Action: its metadata, and its steps run here as a runner would.

The steps of ``action.yml`` are executed exactly as declared, each with the
shell GitHub uses for it, with the environment a runner gives a composite
step (``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``RUNNER_TEMP``,
``GITHUB_ACTION_PATH`` and the step's own ``env`` with its expressions
evaluated). ``uses:`` steps (setup-python, the SARIF upload) are not run;
the install step runs with ``install: false``, so the tools come from the
environment running this test and pip never reaches the network; the pip
command lines are checked as text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema
import pytest
import yaml

from etm_lint import __version__
from tests.conftest import EXAMPLES, REAL, REPO

ACTION_FILE = REPO / "action.yml"
WORKFLOW_FILE = EXAMPLES / "release-gate.yml"
GOLDEN = EXAMPLES / "stories260K.golden.yaml"
SARIF_SCHEMA = REAL.parent / "schemas" / "sarif-schema-2.1.0.json"
# The command GitHub runs for each ``shell:`` value.
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"],
    "python": ["python", "{0}"],
}
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
INPUT_REF = re.compile(r"\binputs\.([A-Za-z0-9_-]+)")
STEP_REF = re.compile(r"\bsteps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")
ALLOWED_USES = {"actions/setup-python", "github/codeql-action/upload-sarif"}


def load_action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION_FILE.read_text(encoding="utf-8"))
    return loaded


def load_workflow() -> dict[str, Any]:
    # PyYAML reads the key ``on`` as a boolean (YAML 1.1); GitHub reads a
    # string. Keep the text and re-key it.
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return {str(key): value for key, value in loaded.items()}


def steps() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load_action()["runs"]["steps"]
    return found


def step(step_id: str) -> dict[str, Any]:
    return next(s for s in steps() if s.get("id") == step_id)


def vendored_schema(name: str) -> dict[str, Any]:
    """A schema that check-jsonschema vendors from SchemaStore."""
    try:
        folder = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema (its vendored GitHub schemas) is not installed")
    loaded: dict[str, Any] = json.loads(folder.joinpath(name).read_text("utf-8"))
    return loaded


# The runner, as far as a composite action's run steps see it.


@dataclass
class StepRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@dataclass
class ActionRun:
    steps: dict[str, StepRun] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    failed: str | None = None  # the step that failed, if one did

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps.values())

    def annotations(self, level: str = "error") -> list[str]:
        return [
            line for line in self.stdout.splitlines() if line.startswith(f"::{level} ")
        ]


def evaluate(value: str, inputs: dict[str, str], done: dict[str, StepRun]) -> str:
    """Substitute the only expressions the action may use in env and with."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if m := re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", expression):
            return inputs[m.group(1)]
        if m := re.fullmatch(STEP_REF.pattern, expression):
            ran = done.get(m.group(1))
            return ran.outputs.get(m.group(2), "") if ran else ""
        raise AssertionError(f"expression the test runner does not know: {expression}")

    return EXPRESSION.sub(one, str(value))


def read_outputs(path: Path) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            body = []
            for part in lines:
                if part == delimiter:
                    break
                body.append(part)
            outputs[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            outputs[key] = value
    return outputs


def runner_env(runner_temp: Path, workspace: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_", "PYTEST_"))
    }
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_ACTION_PATH=str(REPO),
        GITHUB_WORKSPACE=str(workspace),
        RUNNER_TEMP=str(runner_temp),
        RUNNER_OS="Linux",
        # Belt and braces: whatever a step does, pip here stays offline.
        PIP_NO_INDEX="1",
    )
    return env


def run_action(inputs: dict[str, str], workspace: Path, tmp: Path) -> ActionRun:
    """Run every ``run:`` step in order; stop at the first that fails."""
    action = load_action()
    given = {
        name: str(inputs.get(name, spec.get("default", "")))
        for name, spec in action["inputs"].items()
    }
    unknown = set(inputs) - set(given)
    assert not unknown, f"inputs the action does not declare: {unknown}"
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(parents=True, exist_ok=True)
    result = ActionRun()
    for index, spec in enumerate(action["runs"]["steps"]):
        if "uses" in spec:
            continue
        name = spec.get("id", f"step{index}")
        env = runner_env(runner_temp, workspace)
        for key, value in spec.get("env", {}).items():
            env[key] = evaluate(value, given, result.steps)
        output_file = tmp / f"{name}.out"
        summary_file = tmp / f"{name}.summary"
        output_file.write_text("")
        summary_file.write_text("")
        env["GITHUB_OUTPUT"] = str(output_file)
        env["GITHUB_STEP_SUMMARY"] = str(summary_file)
        suffix = ".py" if spec["shell"] == "python" else ".sh"
        script = tmp / f"{name}{suffix}"
        script.write_text(spec["run"], encoding="utf-8")
        command = [part.replace("{0}", str(script)) for part in SHELLS[spec["shell"]]]
        done = subprocess.run(
            command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600
        )
        result.steps[name] = StepRun(
            done.returncode, done.stdout, done.stderr, read_outputs(output_file)
        )
        result.summary += summary_file.read_text(encoding="utf-8")
        if done.returncode != 0:
            result.failed = name
            break
    for key, spec in action["outputs"].items():
        result.outputs[key] = evaluate(spec["value"], given, result.steps)
    return result


# Bundles laid out in a workspace, as a user's repository would hold them.


def workspace_with(tmp_path: Path, *bundles: Path) -> Path:
    workspace = tmp_path / "repo"
    (workspace / "models").mkdir(parents=True)
    for bundle in bundles:
        shutil.copy(bundle, workspace / "models" / bundle.name)
    return workspace


def data_offset(path: Path, member: str) -> tuple[int, int]:
    """Where a member's data starts, from its local header, and its size."""
    info = zipfile.ZipFile(path).getinfo(member)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def corrupt_program(source: Path, out: Path) -> None:
    """Flip the program's last byte: only a full hash of the program sees it."""
    shutil.copy(source, out)
    start, size = data_offset(out, "model.pte")
    with open(out, "r+b") as handle:
        handle.seek(start + size - 1)
        byte = handle.read(1)[0]
        handle.seek(start + size - 1)
        handle.write(bytes([byte ^ 0xFF]))


def add_stray_member(source: Path, out: Path) -> None:
    shutil.copy(source, out)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("notes.txt", "nobody reviewed this\n")


def cli_findings(workspace: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """The reference: etm-lint's own JSON report for the same files."""
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "etm-lint"),
            "--output-format",
            "json",
            *args,
        ],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, json.loads(done.stdout)


def check_sarif(path: Path) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if SARIF_SCHEMA.is_file():
        jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    assert log["version"] == "2.1.0"
    return log


# The metadata.


def test_action_is_valid_against_the_action_metadata_schema() -> None:
    schema = vendored_schema("github-actions.json")
    jsonschema.validate(load_action(), schema)


def test_action_is_a_composite_with_shells_github_knows() -> None:
    action = load_action()
    text = ACTION_FILE.read_text(encoding="utf-8")
    assert {"name", "description", "inputs", "outputs", "runs"} <= set(action)
    assert action["runs"]["using"] == "composite"
    ids = [s["id"] for s in steps() if "id" in s]
    assert len(ids) == len(set(ids))
    for spec in steps():
        assert ("run" in spec) != ("uses" in spec), spec.get("name")
        assert spec.get("name"), "every step has a name for the job log"
        if "run" in spec:
            assert spec.get("shell") in SHELLS, spec["name"]
            # A condition on a run step would be invisible to this test's
            # runner; the scripts decide for themselves.
            assert "if" not in spec, spec["name"]
        else:
            action_name, _, ref = spec["uses"].partition("@")
            assert action_name in ALLOWED_USES
            # Nested actions are pinned by commit, the tag named beside it:
            # a user pinning this action by tag then gets fixed bytes.
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"pin {action_name} by SHA"
            assert re.search(
                rf"uses: {re.escape(spec['uses'])} # v\d+\.\d+\.\d+\n", text
            ), f"name the tag of {action_name}'s pinned commit"


def test_inputs_are_described_and_required_ones_have_no_default() -> None:
    for name, spec in load_action()["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), name
        assert spec["description"].strip()
        if spec.get("required"):
            assert "default" not in spec, name
        else:
            assert isinstance(spec.get("default"), str), name


def test_no_expression_inside_a_script() -> None:
    """Inputs reach scripts only through env: a value can never become code."""
    for spec in steps():
        if "run" in spec:
            assert "${{" not in spec["run"], spec["name"]


def test_every_expression_names_a_declared_input_or_an_earlier_step() -> None:
    action = load_action()
    inputs = set(action["inputs"])
    seen: set[str] = set()
    later = {s["id"] for s in steps() if "id" in s}

    def check(text: str, known_steps: set[str]) -> None:
        for name in INPUT_REF.findall(text):
            assert name in inputs, f"inputs.{name} is not declared"
        for step_id, _ in STEP_REF.findall(text):
            assert step_id in known_steps, f"steps.{step_id} is not an earlier step"

    for spec in steps():
        for text in [
            spec.get("if", ""),
            *map(str, spec.get("env", {}).values()),
            *map(str, spec.get("with", {}).values()),
        ]:
            check(text, seen)
        for value in spec.get("env", {}).values():
            for expression in EXPRESSION.findall(str(value)):
                assert re.fullmatch(
                    rf"\s*(?:{INPUT_REF.pattern}|{STEP_REF.pattern})\s*", expression
                ), f"only inputs and step outputs go into env: {expression}"
        if "id" in spec:
            seen.add(spec["id"])
    for spec in action["outputs"].values():
        check(spec["value"], later)


def test_scripts_parse_and_pass_the_linters(tmp_path: Path) -> None:
    ruff = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    for index, spec in enumerate(steps()):
        if "run" not in spec:
            continue
        if spec["shell"] == "python":
            script = tmp_path / f"step{index}.py"
            script.write_text(spec["run"])
            compile(spec["run"], str(script), "exec")
            if os.path.exists(ruff):
                checked = subprocess.run(
                    [
                        ruff,
                        "check",
                        "--no-cache",
                        "--config",
                        str(REPO / "pyproject.toml"),
                        str(script),
                    ],
                    capture_output=True,
                    text=True,
                )
                assert checked.returncode == 0, checked.stdout
        else:
            script = tmp_path / f"step{index}.sh"
            script.write_text(spec["run"])
            parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True)
            assert parsed.returncode == 0, parsed.stderr
            if shutil.which("shellcheck"):
                checked = subprocess.run(
                    ["shellcheck", "--shell=bash", str(script)],
                    capture_output=True,
                    text=True,
                )
                assert checked.returncode == 0, checked.stdout


def test_the_install_commands_install_from_the_actions_own_checkout() -> None:
    """The pip lines cannot run here (no network): check what they say."""
    base = step("install")["run"]
    pip = [line for line in _joined(base) if " -m pip install " in line]
    assert len(pip) == 1
    assert '-c "$GITHUB_ACTION_PATH/constraints.txt" "$GITHUB_ACTION_PATH"' in pip[0]
    assert "[runtime]" not in base and "torch" not in base

    runtime = next(s for s in steps() if "[runtime]" in s.get("run", ""))["run"]
    pip = [line for line in _joined(runtime) if " -m pip install " in line]
    assert len(pip) == 1
    assert '"${index[@]}"' in pip[0]
    assert '-c "$GITHUB_ACTION_PATH/constraints.txt"' in pip[0]
    assert pip[0].endswith('"${GITHUB_ACTION_PATH}[runtime]"')
    assert 'index=(--extra-index-url "$INPUT_TORCH_INDEX_URL")' in runtime
    default = load_action()["inputs"]["torch-index-url"]["default"]
    assert default.endswith("/whl/cpu")

    # The runtime extra and the constraints pin the same torch and executorch.
    constraints = (REPO / "constraints.txt").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in ("torch==2.13.0", "executorch==1.5.1"):
        assert re.search(rf"^{re.escape(pin)}$", constraints, re.M)
        assert f'"{pin}"' in pyproject


def offline_pip_env(tmp_path: Path) -> dict[str, str]:
    """pip resolving for real against what this environment has, offline,
    changing nothing: a dry run with no index and no build isolation."""
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip("setuptools >= 77 (PEP 639 licence fields) is not installed here")
    env = runner_env(tmp_path, tmp_path)
    # PIP_NO_BUILD_ISOLATION=0 turns isolation off (pip's inverted switch).
    env.update(PIP_DRY_RUN="1", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    return env


def test_the_base_install_command_resolves_offline(tmp_path: Path) -> None:
    """The base pip line itself, run by bash with this environment's python
    in place of the new virtual environment's."""
    line = next(ln for ln in _joined(step("install")["run"]) if " -m pip " in ln)
    script = tmp_path / "pip.sh"
    script.write_text(f'bin="{os.path.dirname(sys.executable)}"\n{line}\n')
    command = [part.replace("{0}", str(script)) for part in SHELLS["bash"]]
    env = offline_pip_env(tmp_path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Would install etm-lint-" in done.stdout
    assert "torch" not in done.stdout.split("Would install")[-1]


def test_the_runtime_install_step_resolves_offline(tmp_path: Path) -> None:
    """The whole runtime step, against this environment: the extra and the
    constraints resolve to the torch and executorch installed here."""
    try:
        import executorch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("the runtime extra (torch, executorch) is not installed")
    spec = next(s for s in steps() if s.get("id") == "runtime")
    script = tmp_path / "runtime.sh"
    script.write_text(spec["run"])
    env = offline_pip_env(tmp_path)
    env.update(
        ETM_GOLDEN_COUNT="1",
        ETM_BIN=os.path.dirname(sys.executable),
        INPUT_TORCH_INDEX_URL=load_action()["inputs"]["torch-index-url"]["default"],
    )
    command = [part.replace("{0}", str(script)) for part in SHELLS["bash"]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Requirement already satisfied: torch==2\.13\.0", done.stdout)
    assert "executorch==1.5.1" in done.stdout
    assert "Would install etm-lint-" in done.stdout


def _joined(script: str) -> list[str]:
    """Script lines with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


# The steps, run.


def test_the_gate_passes_on_the_shipped_bundles(tmp_path: Path) -> None:
    workspace = workspace_with(
        tmp_path, EXAMPLES / "stories260K.etm", EXAMPLES / "stories260K_ext.etm"
    )
    ran = run_action(
        {"bundles": "models/*.etm\n", "install": "false"}, workspace, tmp_path
    )
    assert ran.failed is None, ran.steps[ran.failed or ""].stdout
    code, expected = cli_findings(
        workspace,
        "--verify-hashes",
        "models/stories260K.etm",
        "models/stories260K_ext.etm",
    )
    assert code == 0
    assert ran.outputs["findings"] == str(len(expected))
    assert ran.outputs["errors"] == "0"
    assert ran.outputs["golden-result"] == "skipped"
    assert ran.annotations("error") == []
    reports = Path(ran.outputs["reports"])
    assert reports.is_dir() and reports.is_relative_to(tmp_path / "runner-temp")
    sarif = Path(ran.outputs["sarif"])
    assert sarif.parent == reports
    log = check_sarif(sarif)
    assert len(log["runs"][0]["results"]) == len(expected)
    assert "### etm-lint" in ran.summary
    # Every step output the action reads is one its step wrote.
    for step_id, key in STEP_REF.findall(ACTION_FILE.read_text()):
        assert key in ran.steps[step_id].outputs, f"steps.{step_id}.outputs.{key}"
    # What the upload step would be given is the report that was written.
    upload = next(s for s in steps() if "upload-sarif" in s.get("uses", ""))
    assert evaluate(upload["with"]["sarif_file"], {}, ran.steps) == str(sarif)


def test_the_gate_fails_on_a_broken_bundle_with_annotations_and_sarif(
    tmp_path: Path,
) -> None:
    workspace = workspace_with(tmp_path)
    corrupt_program(EXAMPLES / "stories260K.etm", workspace / "models" / "bad.etm")
    # Reference: without hash verification the flipped byte goes unseen.
    _, unverified = cli_findings(workspace, "models/bad.etm")
    assert "ETM109" not in {f["code"] for f in unverified}
    _, verified = cli_findings(workspace, "--verify-hashes", "models/bad.etm")

    ran = run_action(
        {"bundles": "models/bad.etm", "install": "false"}, workspace, tmp_path
    )
    assert ran.steps["lint"].returncode == 0  # findings do not stop the steps
    assert ran.steps["golden"].outputs["result"] == "skipped"
    errors = ran.annotations("error")
    assert any(
        line.startswith(
            "::error file=models/bad.etm,title=ETM109 member-hash-mismatch::"
        )
        for line in errors
    )
    assert any(
        line.startswith("::error title=etm-lint::the release gate") for line in errors
    )
    log = check_sarif(Path(ran.outputs["sarif"]))
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {f["code"] for f in verified}
    assert any(r["ruleId"] == "ETM109" and r["level"] == "error" for r in results)
    assert ran.outputs["findings"] == str(len(verified))
    assert ran.outputs["errors"] == str(sum(f["severity"] == "error" for f in verified))
    assert "ETM109" in ran.summary
    assert ran.failed == "decide" and ran.steps["decide"].returncode == 1


def test_fail_on_and_args_reach_etm_lint(tmp_path: Path) -> None:
    workspace = workspace_with(tmp_path)
    add_stray_member(EXAMPLES / "stories260K.etm", workspace / "models" / "stray.etm")
    container_only = {"bundles": "models/stray.etm", "install": "false"}
    container_only["args"] = "--select ETM1"

    ran = run_action(container_only, workspace, tmp_path / "default")
    assert ran.failed is None
    assert (ran.outputs["findings"], ran.outputs["errors"]) == ("1", "0")
    assert any("title=ETM107" in line for line in ran.annotations("warning"))

    ran = run_action(
        {**container_only, "fail-on": "warning"}, workspace, tmp_path / "w"
    )
    assert ran.failed == "decide"

    ignored = {**container_only, "args": "--select ETM1 --ignore 'ETM107'"}
    ran = run_action({**ignored, "fail-on": "warning"}, workspace, tmp_path / "i")
    assert ran.failed is None
    assert ran.outputs["findings"] == "0"


def test_reports_dir_input_is_where_the_reports_go(tmp_path: Path) -> None:
    workspace = workspace_with(tmp_path, EXAMPLES / "stories260K.etm")
    ran = run_action(
        {
            "bundles": "models/stories260K.etm",
            "install": "false",
            "reports-dir": "out/reports",
            "args": "--select ETM1",
        },
        workspace,
        tmp_path,
    )
    assert ran.failed is None
    reports = workspace / "out" / "reports"
    assert ran.outputs["reports"] == str(reports)
    assert (reports / "etm-lint.sarif").is_file()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"bundles": "models/*.etm"}, "bundles: models/*.etm matches no file"),
        ({"bundles": "models/absent.etm"}, "models/absent.etm: no such file"),
        ({"bundles": "\n# only a comment\n"}, "give at least one bundle"),
        ({"bundles": "models", "args": "--select 'ETM1"}, "args: No closing quotation"),
    ],
)
def test_bad_inputs_stop_the_action_with_an_annotation(
    inputs: dict[str, str], message: str, tmp_path: Path
) -> None:
    workspace = workspace_with(tmp_path)
    ran = run_action({**inputs, "install": "false"}, workspace, tmp_path)
    assert ran.failed == "prepare"
    errors = ran.annotations("error")
    assert errors and message in errors[0]


def test_install_false_needs_etm_lint_on_path(tmp_path: Path) -> None:
    """The install step's own branch for install: false, with PATH emptied."""
    spec = step("install")
    script = tmp_path / "install.sh"
    script.write_text(spec["run"])
    output = tmp_path / "out"
    output.write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "INPUT_INSTALL": "false",
        "GITHUB_OUTPUT": str(output),
        "ETM_WORK": str(tmp_path),
    }
    command = [part.replace("{0}", str(script)) for part in SHELLS["bash"]]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if shutil.which("etm-lint", path=env["PATH"]):
        pytest.skip("etm-lint is installed system-wide here")
    assert done.returncode == 1
    assert "etm-lint is not on PATH" in done.stdout


# Golden tests through pytest --etm.


def golden_support() -> str | None:
    """Why the golden step cannot run yet, or None when it can."""
    if not GOLDEN.is_file():
        return f"{GOLDEN.name} is not in examples/ yet"
    try:
        import executorch  # noqa: F401
    except ImportError:
        return "the runtime extra (torch, executorch) is not installed"
    return None


def test_golden_files_that_hold_no_case_fail_the_gate(tmp_path: Path) -> None:
    workspace = workspace_with(tmp_path, EXAMPLES / "stories260K.etm")
    (workspace / "models" / "empty.golden.yaml").write_text("# no cases yet\n")
    ran = run_action(
        {
            "bundles": "models/*.etm",
            "golden": "models/*.golden.yaml",
            "install": "false",
            "args": "--select ETM1",
        },
        workspace,
        tmp_path,
    )
    assert ran.steps["golden"].returncode == 0
    assert ran.outputs["golden-result"] == "failed"
    assert any(a.startswith("::error title=golden tests::") for a in ran.annotations())
    assert ran.failed == "decide"
    assert "### golden tests" in ran.summary


@pytest.mark.runtime
def test_golden_step_runs_pytest_etm_on_the_golden_file(tmp_path: Path) -> None:
    reason = golden_support()
    if reason:
        pytest.skip(reason)
    workspace = workspace_with(tmp_path, EXAMPLES / "stories260K.etm", GOLDEN)
    ran = run_action(
        {
            "bundles": "models/stories260K.etm",
            "golden": "models/*.golden.yaml",
            "install": "false",
            "args": "--select ETM1",
            "pytest-args": "--etm-timed-runs=1",
        },
        workspace,
        tmp_path,
    )
    golden = ran.steps["golden"]
    assert ran.failed is None, golden.stdout + golden.stderr
    assert ran.outputs["golden-result"] == "passed"
    reports = Path(ran.outputs["reports"])
    suite = ElementTree.parse(reports / "golden.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", 0)) >= 1
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    json.loads((reports / "golden-speed.json").read_text())
    assert "### golden tests" in ran.summary
    assert ran.annotations("error") == []


# A case that holds, and one that cannot: the reference output (Hugging Face
# greedy generation, examples/stories260K.golden.yaml) names Lily at once and
# no dragon.
FAILING_GOLDEN = """\
cases:
  - name: names-lily
    prompt: "Once upon a time"
    max_new_tokens: 16
    expect:
      contains: [Lily]
  - name: wrong-on-purpose
    prompt: "Once upon a time"
    max_new_tokens: 16
    expect:
      contains: [dragon]
"""


@pytest.mark.runtime
def test_a_failing_golden_case_fails_the_gate_with_an_annotation(
    tmp_path: Path,
) -> None:
    reason = golden_support()
    if reason:
        pytest.skip(reason)
    workspace = workspace_with(tmp_path, EXAMPLES / "stories260K.etm")
    (workspace / "models" / "story.golden.yaml").write_text(FAILING_GOLDEN)
    ran = run_action(
        {
            "bundles": "models/stories260K.etm",
            "golden": "models/story.golden.yaml",
            "install": "false",
            "args": "--select ETM1",
        },
        workspace,
        tmp_path,
    )
    assert ran.outputs["golden-result"] == "failed"
    assert ran.failed == "decide"
    errors = ran.annotations("error")
    cases = [a for a in errors if a.startswith("::error title=golden ")]
    cases = [a for a in cases if not a.startswith("::error title=golden tests::")]
    assert len(cases) == 1
    assert cases[0].startswith("::error title=golden wrong-on-purpose[")
    assert "dragon" in cases[0]
    assert "1 failed" in ran.summary


# The example workflow.


def test_example_workflow_is_valid_against_the_workflow_schema() -> None:
    schema = vendored_schema("github-workflows.json")
    jsonschema.validate(load_workflow(), schema)


def test_example_workflow_gates_pull_requests_and_tags() -> None:
    workflow = load_workflow()
    assert "pull_request" in workflow["on"]
    assert any(t.startswith("v") for t in workflow["on"]["push"]["tags"])
    gate = _gate_step(workflow)
    _, _, ref = gate["uses"].partition("@")
    major = __version__.split(".")[0]
    assert ref in (f"v{__version__}", f"v{major}"), "pin the released tag"
    inputs = load_action()["inputs"]
    assert set(gate["with"]) <= set(inputs)
    required = {name for name, spec in inputs.items() if spec.get("required")}
    assert required <= set(gate["with"])
    permissions = _gate_job(workflow)["permissions"]
    assert permissions.get("security-events") == "write"


def test_example_workflow_inputs_run_on_a_repository_laid_out_like_it(
    tmp_path: Path,
) -> None:
    """The example's own with: values, against the shipped bundle."""
    gate = _gate_step(load_workflow())
    plain = {
        key: str(value)
        for key, value in gate["with"].items()
        if "${{" not in str(value) and key != "golden"  # golden: its own tests
    }
    workspace = workspace_with(tmp_path, EXAMPLES / "stories260K.etm")
    ran = run_action({**plain, "install": "false"}, workspace, tmp_path)
    assert ran.failed is None, ran.stdout
    assert ran.outputs["errors"] == "0"


def _gate_job(workflow: dict[str, Any]) -> dict[str, Any]:
    for job in workflow["jobs"].values():
        if any(_is_gate(s) for s in job.get("steps", [])):
            found: dict[str, Any] = job
            return found
    raise AssertionError("no job uses the action")


def _gate_step(workflow: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in _gate_job(workflow)["steps"] if _is_gate(s))
    return found


def _is_gate(spec: dict[str, Any]) -> bool:
    return str(spec.get("uses", "")).startswith("etm-lint/etm-lint@")


def test_zizmor_finds_nothing_in_the_action_or_the_example(tmp_path: Path) -> None:
    zizmor = shutil.which("zizmor") or os.path.join(
        os.path.dirname(sys.executable), "zizmor"
    )
    if not os.path.exists(zizmor):
        pytest.skip("zizmor is not installed")
    # The action pins by commit (zizmor's default policy); the example pins
    # by release tag, as its header tells users to.
    by_tag = tmp_path / "zizmor.yml"
    by_tag.write_text(
        'rules:\n  unpinned-uses:\n    config:\n      policies:\n        "*": ref-pin\n'
    )
    for path, extra in ((ACTION_FILE, []), (WORKFLOW_FILE, ["--config", str(by_tag)])):
        done = subprocess.run(
            [zizmor, "--offline", "--no-progress", *extra, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
