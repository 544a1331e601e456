"""Every real ExecuTorch file of the corpus through ``etm inspect`` and
``etm-lint``.

Each ``.pte`` and ``.ptd`` in ``../shared/real/pte`` is read by the real
command, as text and as JSON; what it lists is checked against ExecuTorch
itself (its runtime's method names, its flat_tensor deserializer's keys). The
one LLM program (stories260K for Qualcomm's runner) is packed with its own
model's tokenizer and linted as a bundle; the others are not LLM programs, so
only the container and program rules (``ETM1``, ``ETM2``) judge them, packed
beside stories260K's tokenizer because a bundle needs one (no tokenizer rule
runs). The corrupt file, and the bundled program etm does not read, each
give one line naming the file. ``docs/real-world.md`` lists the results.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etm_lint.cli.etm import main as etm_main
from etm_lint.errors import EtmError
from etm_lint.format.pack import pack_bundle
from etm_lint.lint.engine import Selection, lint_paths
from etm_lint.lint.model import Finding
from etm_lint.lint.target import LintOptions
from tests import real_export
from tests.conftest import REAL, REPO

PTE = REAL / "pte"
STORIES = REAL / "models" / "stories260K"
DOC = REPO / "docs" / "real-world.md"
BLOCK = "real-programs"
CORRUPT = "djl-executorch__corrupt.pte"
BUNDLED = "executorch__bundled_program.bpte"
QNN = "executorch__stories260k_hybrid_llama_qnn.pte"
DATA_MAP = "executorch-rs__data_map_model.pte"
DATA_FILE = "executorch-rs__data_map__default_external_constant.ptd"
# Programs ExecuTorch 1.5.1 refuses to load: they keep constants in the
# flatbuffer's deprecated constant_buffer, which its runtime is built without.
CONSTANT_BUFFER = (
    "executorch-rs__hello_world_add_no_std_model.pte",
    "executorch__ModuleLinear-no-constant-segment.pte",
    "node-executorch__mul.pte",
)
ALL = sorted(p.name for p in PTE.iterdir()) if PTE.is_dir() else []
READABLE = [n for n in ALL if n not in (CORRUPT, BUNDLED)]
PROGRAMS = [n for n in READABLE if n.endswith(".pte")]
NOT_LLM = [n for n in PROGRAMS if n != QNN]
PROGRAM_RULES = Selection(select=("ETM1", "ETM2"))
# executorch.runtime announces itself as experimental on import.
pytestmark = pytest.mark.filterwarnings("ignore:This API is experimental")

# What the linter says of each bundle, as (code, fragment of the message).
QNN_EXPECT = (
    ("ETM202", "no forward (or prefill and decode) method"),
    ("ETM206", "get_eos_id is not read by the LLM runner"),
    ("ETM206", "get_use_kv_cache is not read by the LLM runner"),
    ("ETM209", "delegated to QnnBackend"),
    ("ETM305", "the decode of 'Führer, café"),
    ("ETM401", "EOS '<s>' is id 1, but the runner stops only on [2]"),
    ("ETM505", "no chat_template"),
)
NOT_LLM_PROGRAM = ("ETM203", "no get_max_seq_len method")


def real_file(name: str) -> Path:
    path = PTE / name
    if not path.is_file():
        pytest.skip(f"../shared/real/pte/{name} is not present")
    return path


def inspect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = etm_main(["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_etm(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it (a fresh process)."""
    script = "from etm_lint.cli.etm import entry; entry()"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


# -- etm inspect -------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_inspect_reads_every_file(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(real_file(name))
    code, text, err = inspect(capsys, path)
    assert (code, err) == (0, "")
    assert path in text
    code, out, err = inspect(capsys, "--json", path)
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert set(report) == ({"program"} if name.endswith(".pte") else {"weights"})


def runtime_methods(path: Path) -> set[str] | None:
    """Method names as ExecuTorch's runtime lists them, or None if it refuses
    the program."""
    runtime = pytest.importorskip("executorch.runtime")
    try:
        program = runtime.Runtime.get().load_program(str(path))
    except RuntimeError:
        return None
    return set(program.method_names)


@pytest.mark.runtime
@pytest.mark.parametrize("name", PROGRAMS)
def test_inspect_lists_the_methods_executorch_loads(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_file(name)
    _, out, _ = inspect(capsys, "--json", str(path))
    listed = {m["name"] for m in json.loads(out)["program"]["methods"]}
    loaded = runtime_methods(path)
    if name in CONSTANT_BUFFER:
        assert loaded is None
        return
    assert listed == loaded


@pytest.mark.runtime
# executorch's deserializer reads its schema with a deprecated importlib call.
@pytest.mark.filterwarnings("ignore:read_binary is deprecated")
def test_inspect_lists_the_keys_executorch_reads_from_the_data_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    serialize = pytest.importorskip(
        "executorch.extension.flat_tensor.serialize.serialize"
    )
    from executorch.exir._serialize._cord import Cord

    path = real_file(DATA_FILE)
    _, out, _ = inspect(capsys, "--json", str(path))
    payload = serialize.FlatTensorSerializer().deserialize(Cord(path.read_bytes()))
    assert json.loads(out)["weights"]["keys"] == list(payload.named_data)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (CORRUPT, "not an .etm bundle, .pte or .ptd file"),
        (
            BUNDLED,
            "a bundled program (BP..), not a plain program; etm reads .pte, "
            ".ptd and .etm files",
        ),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_inspect_refuses_in_one_line(name: str, says: str, as_json: bool) -> None:
    path = str(real_file(name))
    done = run_etm("inspect", *(["--json"] if as_json else []), path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"etm inspect: {path}: {says}\n"


# -- etm-lint ----------------------------------------------------------------


def stories_hf(folder: Path) -> Path:
    """stories260K's own tokenizer config, token map and generation config."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(STORIES / name, folder / name)
    generation = STORIES / "hf" / "generation_config.json"
    shutil.copyfile(generation, folder / "generation_config.json")
    return folder


ALL_RULES = Selection()


def lint(path: Path, selection: Selection = ALL_RULES) -> list[Finding]:
    return lint_paths([str(path)], selection, LintOptions())


def assert_says(findings: list[Finding], expect: tuple[tuple[str, str], ...]) -> None:
    said = [(f.code, f.message) for f in findings]
    assert [code for code, _ in said] == [code for code, _ in expect], said
    for (_, message), (_, fragment) in zip(said, expect, strict=True):
        assert fragment in message, message


def pack_alone(name: str, out: Path, weights: tuple[Path, ...] = ()) -> Path:
    """A bundle of one non-LLM program (and its weights), with stories260K's
    tokenizer only because a bundle needs one."""
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"{Path(name).stem}.etm"
    pack_bundle(
        bundle,
        program=real_file(name),
        tokenizer=STORIES / "tokenizer.model",
        weights=weights,
    )
    return bundle


@pytest.fixture(scope="module")
def qnn_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("qnn")
    bundle = work / "stories260k_qnn.etm"
    pack_bundle(
        bundle,
        program=real_file(QNN),
        tokenizer=STORIES / "tokenizer.model",
        hf_dir=stories_hf(work / "hf"),
    )
    return bundle


def test_the_qnn_llm_program_linted_as_a_bundle(qnn_bundle: Path) -> None:
    assert_says(lint(qnn_bundle), QNN_EXPECT)


@pytest.mark.runtime
def test_the_qnn_findings_are_true_of_the_program() -> None:
    """ExecuTorch lists no forward, prefill or decode method, and the EOS the
    program names sits under the singular name the generic runner ignores."""
    runtime = pytest.importorskip("executorch.runtime")
    program = runtime.Runtime.get().load_program(str(real_file(QNN)))
    methods = set(program.method_names)
    assert not {"forward", "prefill", "decode"} & methods
    assert {"get_eos_id", "get_use_kv_cache"} <= methods
    assert "get_eos_ids" not in methods
    assert list(program.load_method("get_eos_id").execute([])) == [2]
    generation = json.loads((STORIES / "hf" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [1, 2]


@pytest.mark.parametrize("name", NOT_LLM)
def test_other_programs_are_judged_as_what_they_are(name: str, tmp_path: Path) -> None:
    findings = lint(pack_alone(name, tmp_path), PROGRAM_RULES)
    # The external-weights program, packed without its data, misses it too.
    errors = ["ETM203", "ETM207"] if name == DATA_MAP else ["ETM203"]
    # ExecuTorch refuses these to load at all (see the ETM214 test).
    errors += ["ETM214"] if name in CONSTANT_BUFFER else []
    assert [f.code for f in findings if f.severity.rank == 2] == errors
    backends = [f for f in findings if f.code == "ETM209"]
    assert bool(backends) == (name == "djl-executorch__openvino_tiny.pte")
    allowed = {"ETM203", "ETM207", "ETM209", "ETM211", "ETM214"}
    assert {f.code for f in findings} <= allowed


def test_the_external_weights_program_with_and_without_its_data(
    tmp_path: Path,
) -> None:
    with_data = pack_alone(DATA_MAP, tmp_path, (real_file(DATA_FILE),))
    assert_says(lint(with_data, PROGRAM_RULES), (NOT_LLM_PROGRAM,))
    alone = pack_alone(DATA_MAP, tmp_path / "alone")
    assert_says(
        lint(alone, PROGRAM_RULES),
        (NOT_LLM_PROGRAM, ("ETM207", "2 named tensors are in no bundled .ptd: a, b")),
    )


def test_the_corrupt_program_is_one_clean_error(tmp_path: Path) -> None:
    path = real_file(CORRUPT)
    with pytest.raises(EtmError) as refused:
        pack_bundle(
            tmp_path / "c.etm", program=path, tokenizer=STORIES / "tokenizer.model"
        )
    said = f"{path}: not an ExecuTorch program (no ET12 identifier)"
    assert str(refused.value) == said
    assert not (tmp_path / "c.etm").exists()

    folder = tmp_path / "loose"
    folder.mkdir()
    shutil.copyfile(path, folder / "model.pte")
    shutil.copyfile(STORIES / "tokenizer.model", folder / "tokenizer.model")
    findings = lint(folder, PROGRAM_RULES)
    assert [(f.code, f.member) for f in findings] == [("ETM201", "model.pte")]
    assert "identifier b'A_PT', not ET12" in findings[0].message


@pytest.mark.runtime
def test_executorch_refuses_the_corrupt_program_for_the_same_reason() -> None:
    runtime = pytest.importorskip("executorch.runtime")
    with pytest.raises(RuntimeError):
        runtime.Runtime.get().load_program(str(real_file(CORRUPT)))
    assert real_file(CORRUPT).read_bytes()[4:8] == b"A_PT"


@pytest.mark.runtime
@pytest.mark.runtime
@pytest.mark.parametrize("name", PROGRAMS)
def test_a_program_the_runtime_refuses_for_its_constant_buffer_is_an_error(
    name: str, tmp_path: Path
) -> None:
    """ETM214 fires exactly on the programs ExecuTorch refuses to load."""
    refused = runtime_methods(real_file(name)) is None
    assert refused == (name in CONSTANT_BUFFER)
    findings = lint(pack_alone(name, tmp_path), Selection(select=("ETM214",)))
    assert [f.severity.value for f in findings] == (["error"] if refused else [])


# -- docs/real-world.md ----------------------------------------------------------


def stable(message: str) -> str:
    """A message without this machine's paths."""
    return message.replace(str(REAL), "../shared/real")


def inspect_summary(report: dict[str, Any]) -> str:
    if "weights" in report:
        weights = report["weights"]
        keys = weights["keys"]
        return f"data file: {len(keys)} tensors ({', '.join(keys)})"
    program = report["program"]
    methods = [m["name"] for m in program["methods"]]
    shown = ", ".join(methods[:4])
    if len(methods) > 4:
        shown += f" and {len(methods) - 4} more"
    count = f"{len(methods)} method{'s' if len(methods) != 1 else ''}"
    backends = ", ".join(program["backends"]) or "portable kernels"
    needs = program["required_data_keys"]
    extra = f"; needs external data {', '.join(needs)}" if needs else ""
    return f"{count} ({shown}); {backends}{extra}"


def doc_rows(capsys: pytest.CaptureFixture[str], work: Path) -> Iterator[str]:
    yield "| file | `etm inspect` | ExecuTorch 1.5.1 loads it | `etm-lint` |"
    yield "|---|---|---|---|"
    for name in ALL:
        path = PTE / name
        code, out, err = inspect(capsys, "--json", str(path))
        said = f"exit {code}: {stable(err.strip())}"
        if code == 0:
            said = inspect_summary(json.loads(out))
        loads = "-"
        if name.endswith(".pte"):
            loads = "yes" if runtime_methods(path) is not None else "no"
        yield f"| `{name}` | {said} | {loads} | {lint_cell(name, work)} |"


def lint_cell(name: str, work: Path) -> str:
    if name == QNN:
        return "see below"
    if name in NOT_LLM:
        findings = lint(pack_alone(name, work / Path(name).stem), PROGRAM_RULES)
        return ", ".join(f"{f.code} {f.severity.value}" for f in findings)
    return "-"


def render_block(capsys: pytest.CaptureFixture[str], work: Path, qnn: Path) -> str:
    lines = list(doc_rows(capsys, work))
    lines += ["", f"`{QNN}` packed with stories260K's own tokenizer and configs:", ""]
    lines += [f"- {f.code} {f.severity.value}: {stable(f.message)}" for f in lint(qnn)]
    return "\n".join(lines) + "\n"


@pytest.mark.runtime
def test_doc_lists_these_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, qnn_bundle: Path
) -> None:
    if not ALL:
        pytest.skip("../shared/real/pte is not present")
    block = render_block(capsys, tmp_path, qnn_bundle)
    real_export.check_doc_block(DOC, BLOCK, block)
