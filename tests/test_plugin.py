"""pytest-etm on the real runner: golden files, fixtures, reports, lint items.

Each behaviour runs through a real inner pytest session (``pytester``) on the
shipped bundles. Expected outputs come from references: ``samples.json``
(Hugging Face transformers' eager greedy ids for stories260K), Hugging Face
``tokenizers`` decoding those ids, and the real ChatML text the bundle's
template stands for. Speed thresholds are set where no machine can meet them
or every machine does, never in between.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, FIXTURES, REPO, STORIES

pytest_plugins = ("pytester",)

STORIES_ETM = EXAMPLES / "stories260K.etm"
STORIES_EXT = EXAMPLES / "stories260K_ext.etm"
GOOD = FIXTURES / "good.etm"
GOLDEN = EXAMPLES / "stories260K.golden.yaml"
CHAT = EXAMPLES / "chat.golden.yaml"


# What the inner sessions load, imported once here: pytester removes the
# modules a test imported when it ends, and torch cannot be imported twice in
# one process. Module-scoped, so it runs before pytester's snapshot.
HEAVY = (
    "torch",
    "executorch.runtime",
    "executorch.extension.llm.runner",
    "etm_lint.runtime.runner",
    "etm_lint.runtime.forward",
    "etm_lint.runtime.bundle",
    "etm_lint.tokenizer",
    "tokenizers",
)


@pytest.fixture(scope="module")
def runtime() -> None:
    for name in HEAVY:
        pytest.importorskip(name)


def _samples() -> dict[str, Any]:
    if not (STORIES / "samples.json").is_file():
        pytest.skip("../shared/real/models/stories260K is not present")
    samples: dict[str, Any] = json.loads((STORIES / "samples.json").read_text())
    return samples["hf_eager"]


def _args(pytester: pytest.Pytester, args: tuple[str | Path, ...]) -> list[str]:
    """The inner session's own ini and rootdir: pytest would otherwise find
    this repository's pyproject.toml from the bundle paths given."""
    ini = pytester.path / "pytest.ini"
    if not ini.exists():
        ini.write_text("[pytest]\n")
    return [
        "-c",
        str(ini),
        f"--rootdir={pytester.path}",
        "-p",
        "no:cacheprovider",
        *[str(a) for a in args],
    ]


def _run(pytester: pytest.Pytester, *args: str | Path) -> pytest.RunResult:
    return pytester.runpytest(*_args(pytester, args))


# ------------------------------------------------------------ issue 9


def test_the_golden_file_holds_the_reference_outputs() -> None:
    """Every samples.json reference is in the golden file, token for token."""
    samples = _samples()
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(STORIES / "tokenizer.json"))
    document = yaml.safe_load(GOLDEN.read_text())
    cases = {case["prompt"]: case for case in document["cases"]}
    assert set(cases) == set(samples)
    for prompt, want in samples.items():
        expect = cases[prompt]["expect"]
        assert expect["token_ids"] == want["new_ids"], prompt
        stopped = want["stopped_on"] is not None
        body = want["new_ids"][:-1] if stopped else want["new_ids"]
        head = hf.decode(want["prompt_ids"], skip_special_tokens=False)
        full = hf.decode(want["prompt_ids"] + body, skip_special_tokens=False)
        assert expect["text"] == full[len(head) :]
        assert expect["text"].removeprefix(" ") == want["text"]
    assert cases["The little dog"]["expect"]["eos_within"] <= 256


@pytest.mark.runtime
def test_the_stories_golden_file_passes_on_both_programs(
    runtime: None, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    _samples()
    junit, report = tmp_path / "golden.xml", tmp_path / "speed.json"
    result = _run(
        pytester,
        *("--etm", STORIES_ETM, "--etm", STORIES_EXT, GOLDEN),
        *(f"--junitxml={junit}", f"--etm-report={report}"),
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*= etm speed =*",
            "case*runs*ttft ms*max ms*decode tok/s*min tok/s*",
            "once-upon-a-time?stories260K.etm? * 3 * 500 * 20  ok",
        ]
    )
    cases = json.loads(report.read_text())["cases"]
    assert len(cases) == 6
    little = [c for c in cases if c["case"] == "the-little-dog"]
    assert {(c["stop_reason"], c["num_generated"]) for c in little} == {("eos", 218)}
    timed = [c for c in cases if c["case"] == "once-upon-a-time"]
    assert all(c["runs"] == 3 and c["decode_tokens_per_s"] > 20 for c in timed)
    properties = {
        p.get("name") for p in ElementTree.parse(junit).getroot().iter("property")
    }
    assert {
        "etm_decode_tokens_per_s",
        "etm_time_to_first_token_s",
        "etm_timed_runs",
        "etm_load_s",
        "etm_min_decode_tokens_per_s",
    } <= properties


@pytest.mark.runtime
def test_under_xdist_only_the_controller_reports_and_rewrites(
    runtime: None, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Two workers share one cache; records and updates reach the controller."""
    text = CHAT.read_text()
    copy = pytester.path / "chat.golden.yaml"
    # One recorded text emptied: the update must write it back as it was.
    copy.write_text(re.sub(r"(stop_reason: length\n      text:).*", r"\1", text))
    report = tmp_path / "speed.json"
    args = ("-n", "2", "--etm", GOOD, copy, "--etm-update-goldens")
    result = pytester.runpytest_subprocess(
        *_args(pytester, (*args, f"--etm-report={report}")), timeout=300
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*chat.golden.yaml: recorded 1 case(s): system-and-user"]
    )
    assert copy.read_text() == text
    cases = json.loads(report.read_text())["cases"]
    assert sorted(c["case"] for c in cases) == ["one-user-turn", "system-and-user"]
    cache = Path(os.environ["ETM_CACHE_DIR"])
    assert not [p for p in cache.rglob("*") if "partial" in p.name]


@pytest.mark.runtime
def test_the_chat_golden_file_passes(runtime: None, pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--etm", GOOD, CHAT)
    result.assert_outcomes(passed=2)


@pytest.mark.runtime
def test_golden_files_for_other_bundles_are_skipped(
    runtime: None, pytester: pytest.Pytester
) -> None:
    result = _run(pytester, "--etm", STORIES_ETM, CHAT, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*no --etm bundle matches this file's bundles: good*"])


# ------------------------------------------------------------ failure modes

FAILING = """\
cases:
  - name: wrong-text
    prompt: Once upon a time
    max_new_tokens: 12
    expect:
      text: ", there was a little boy named Tom."
  - name: no-eos
    prompt: Once upon a time
    max_new_tokens: 10
    expect:
      eos_within: 10
  - name: impossible-speed
    prompt: Once upon a time
    max_new_tokens: 16
    expect: {stop_reason: length}
    speed:
      min_decode_tokens_per_s: 1000000000
      max_time_to_first_token_s: 0.000000001
  - name: wrong-ids
    prompt: Once upon a time
    max_new_tokens: 4
    expect: {token_ids: [432, 383, 1, 261]}
  - name: nothing-expected
    prompt: Once upon a time
    max_new_tokens: 4
"""


@pytest.mark.runtime
def test_each_failure_leads_with_the_fact(
    runtime: None, pytester: pytest.Pytester
) -> None:
    _samples()
    golden = pytester.makefile(".golden.yaml", cases=FAILING)
    result = _run(pytester, "--etm", STORIES_ETM, golden, "--etm-timed-runs", "2")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ golden case wrong-text?stories260K.etm? _*",
            "text differs from the expected text at character 21 "
            "(expected 35 characters, got *)",
            "  expected: ', there was a little boy named Tom.'",
            "  got:      ', there was a little girl named Lily*",
            "*_ golden case no-eos?stories260K.etm? _*",
            "did not stop on EOS within 10 tokens: stopped by length after 10 "
            "tokens (EOS ids [[]1, 2[]])",
            "*_ golden case impossible-speed?stories260K.etm? _*",
            "decode speed * tokens/s is below the minimum 1000000000 tokens/s "
            "(median of 2 runs: *, *)",
            "time to first token * ms is above the maximum 1e-06 ms (median of 2 *",
            "*_ golden case wrong-ids?stories260K.etm? _*",
            "token ids differ at position 2: expected 1, got 286 (expected 4 ids, "
            "got 4)",
            "*_ golden case nothing-expected?stories260K.etm? _*",
            "no expectation recorded for this case; run pytest with "
            "--etm-update-goldens *",
        ]
    )
    result.stdout.fnmatch_lines(
        ["impossible-speed?stories260K.etm? * 2 * 1e-06 * 1000000000  TOO SLOW"]
    )
    # The ids the message names are the reference's.
    assert _samples()["Once upon a time"]["new_ids"][2] == 286


@pytest.mark.runtime
def test_a_broken_bundle_fails_its_items_in_one_line(
    runtime: None, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.etm"
    truncated.write_bytes(STORIES_ETM.read_bytes()[:100_000])
    tampered = tmp_path / "tampered.etm"
    data = bytearray(STORIES_ETM.read_bytes())
    data[16384 + 5000] ^= 0xFF  # inside model.pte, which is STORED at 16 KiB
    tampered.write_bytes(bytes(data))
    golden = pytester.makefile(
        ".golden.yaml",
        one="cases:\n  - name: a\n    prompt: Hi\n    expect: {contains: x}\n",
    )
    pytester.makepyfile(
        test_model="def test_model(etm_model):\n    etm_model.generate('Hi')\n"
    )
    result = _run(pytester, "--etm", truncated, "--etm", tampered, golden, ".")
    result.assert_outcomes(failed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*_ golden case a?truncated.etm? _*",
            f"{truncated}: not a zip archive (*)",
            "*_ golden case a?tampered.etm? _*",
            f"{tampered}: model.pte*hashes to *",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_model?truncated.etm?*", f"{truncated}: not a zip*"]
    )
    assert "Traceback" not in result.stdout.str()


# Nine lines that stand for 10**9 message values once the aliases are copied.
BOMB = "\n".join(
    [
        "cases:",
        "  - name: bomb",
        "    messages:",
        "      - role: user",
        "        content:",
        "          a0: &a0 [x, x, x, x, x, x, x, x, x, x]",
        *(
            f"          a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]"
            for i in range(1, 9)
        ),
    ]
)


def test_a_broken_golden_file_is_one_line(pytester: pytest.Pytester) -> None:
    bad = pytester.makefile(
        ".golden.yaml",
        typo="cases:\n  - name: a\n    prompt: Hi\n    expcet: {text: x}\n",
        syntax="cases:\n  - name: a\n    prompt: [Hi\n",
        twice="cases:\n  - name: a\n    prompt: Hi\n    expect:\n"
        "      text: x\n      text: y\n",
        bomb=BOMB,
        loop="cases:\n  - &c {name: a, prompt: [*c]}\n",
    )
    assert bad.is_file()
    result = _run(pytester, "--etm", STORIES_ETM, ".")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines_random(
        [
            "*syntax.golden.yaml:3: not valid YAML (expected ',' or ']', *)",
            "*typo.golden.yaml:2: case 'a': unknown key 'expcet' (known: name, *)",
            "*twice.golden.yaml:6: duplicate key 'text'",
            "*bomb.golden.yaml: more than 1000000 values once its aliases are expanded",
            "*loop.golden.yaml:2: an alias refers to itself",
        ]
    )
    assert "Traceback" not in result.stdout.str()


# ------------------------------------------------------------ the update flag

UPDATABLE = """\
# Comments and layout survive a rewrite.
bundles: [stories*]
cases:
  - name: recorded-wrong
    prompt: Once upon a time   # raw text
    max_new_tokens: 12
    expect:
      # The author's own expectation stays as written.
      stop_reason: length
      text: ", there was a little boy"
      token_ids: [1, 2, 3]
  - name: never-recorded
    prompt: The little dog
    max_new_tokens: 6
  - name: asked-for
    prompt: Lily and Tom went to the park.
    max_new_tokens: 5
    expect:
      contains: They
      text:
"""


@pytest.mark.runtime
def test_the_update_flag_turns_a_failing_file_into_a_passing_one(
    runtime: None,
    pytester: pytest.Pytester,
) -> None:
    samples = _samples()
    golden = pytester.makefile(".golden.yaml", cases=UPDATABLE)
    _run(pytester, "--etm", STORIES_ETM, golden).assert_outcomes(failed=3)

    updated = _run(pytester, "--etm", STORIES_ETM, golden, "--etm-update-goldens")
    updated.assert_outcomes(passed=3)
    updated.stdout.fnmatch_lines(
        [
            "*= etm golden files =*",
            "*cases.golden.yaml: recorded 3 case(s): asked-for, never-recorded, "
            "recorded-wrong",
        ]
    )
    text = golden.read_text()
    assert text.startswith("# Comments and layout survive a rewrite.\n")
    assert "    prompt: Once upon a time   # raw text\n" in text
    assert "      # The author's own expectation stays as written.\n" in text
    cases = {c["name"]: c for c in yaml.safe_load(text)["cases"]}
    once = samples["Once upon a time"]["new_ids"]
    dog = samples["The little dog"]["new_ids"]
    assert cases["recorded-wrong"]["expect"]["token_ids"] == once[:12]
    assert cases["recorded-wrong"]["expect"]["stop_reason"] == "length"
    assert cases["never-recorded"]["expect"]["token_ids"] == dog[:6]
    assert cases["never-recorded"]["expect"]["text"].startswith(" was a little")
    # Only the asked-for snapshot is written next to the author's contains.
    assert set(cases["asked-for"]["expect"]) == {"contains", "text"}
    assert cases["asked-for"]["expect"]["text"].startswith(" They saw")

    _run(pytester, "--etm", STORIES_ETM, golden).assert_outcomes(passed=3)
    again = _run(pytester, "--etm", STORIES_ETM, golden, "--etm-update-goldens")
    again.assert_outcomes(passed=3)
    assert golden.read_text() == text
    assert "etm golden files" not in again.stdout.str()


@pytest.mark.runtime
def test_the_update_flag_leaves_authors_expectations_failing(
    runtime: None,
    pytester: pytest.Pytester,
) -> None:
    golden = pytester.makefile(
        ".golden.yaml",
        cases="cases:\n  - name: a\n    prompt: Once upon a time\n"
        "    max_new_tokens: 4\n    expect: {eos_within: 4, text: x}\n",
    )
    before = golden.read_text()
    result = _run(pytester, "--etm", STORIES_ETM, golden, "--etm-update-goldens")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["did not stop on EOS within 4 tokens*"])
    # The failing case's snapshot is still recorded: it was the model's output.
    assert golden.read_text() != before


# ------------------------------------------------------------ fixtures

FIXTURE_TESTS = """\
import pytest

SEEN = []


def test_a_prompt(etm_model, etm_bundle):
    gen = etm_model.generate(
        prompt="Once upon a time", max_new_tokens=8, temperature=0
    )
    assert gen.stop_reason == "length" and len(gen.token_ids) == 8
    assert gen.timing.time_to_first_token_s > 0
    assert gen.timing.decode_tokens_per_s > 0
    assert etm_bundle.archive.get("metadata.json") is not None
    SEEN.append(id(etm_model))
    print("IDS", list(gen.token_ids))


def test_loaded_once_per_bundle(etm_model):
    assert id(etm_model) in SEEN


def test_messages_go_through_the_template(etm_model):
    if etm_model.bundle.chat_template is None:
        with pytest.raises(Exception, match="no chat template"):
            etm_model.generate(messages=[{"role": "user", "content": "Hi"}])
        return
    gen = etm_model.generate(
        messages=[{"role": "user", "content": "Hi"}], max_new_tokens=4, temperature=0
    )
    print("PROMPT", repr(gen.prompt), list(gen.prompt_ids))
"""


@pytest.mark.runtime
def test_the_fixtures_over_every_bundle(
    runtime: None, pytester: pytest.Pytester
) -> None:
    samples = _samples()
    tokenizers = pytest.importorskip("tokenizers")
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS)
    result = _run(pytester, "--etm", STORIES_ETM, "--etm", GOOD, "-s", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*test_a_prompt?stories260K.etm? IDS "
            + str(samples["Once upon a time"]["new_ids"][:8]).replace("[", "[[]"),
        ]
    )
    # The ChatML turn, BOS first (num_bos 1), encoded by Hugging Face tokenizers.
    chatml = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    hf = tokenizers.Tokenizer.from_file(str(FIXTURES / "src" / "tokenizer.json"))
    ids = hf.encode(chatml).ids
    assert ids[0] == hf.token_to_id("<|begin_of_text|>")
    result.stdout.fnmatch_lines([f"*PROMPT {chatml!r} {ids}".replace("[", "[[]")])


BUNDLE_TESTS = """\
import json
import os


def test_the_bundle(etm_bundle):
    expected = json.loads(REFERENCE)[os.path.basename(etm_bundle.path)]
    ids = etm_bundle.tokenizer.encode(
        expected["prompt"], bos=etm_bundle.metadata.get("num_bos", 0)
    )
    assert ids == expected["ids"]
    if etm_bundle.chat_template is not None:
        chat = [{"role": "user", "content": "Hi"}]
        assert etm_bundle.render(chat) == expected["rendered"]
"""


def test_the_bundle_fixture_needs_no_runtime(pytester: pytest.Pytester) -> None:
    # References from outside our code: the ids Hugging Face eager generation
    # was given for stories260K, and transformers' own rendering and encoding
    # of the fixture tokenizer's ChatML template.
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(FIXTURES / "src")
    chat = [{"role": "user", "content": "Hi"}]
    rendered = hf.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    reference = {
        STORIES_ETM.name: {
            "prompt": "Once upon a time",
            "ids": _samples()["Once upon a time"]["prompt_ids"],
        },
        GOOD.name: {
            "prompt": rendered,
            "ids": hf(rendered, add_special_tokens=True)["input_ids"],
            "rendered": rendered,
        },
    }
    pytester.makepyfile(
        test_bundle="REFERENCE = " + repr(json.dumps(reference)) + "\n" + BUNDLE_TESTS
    )
    result = _run(
        pytester, "--etm", STORIES_ETM, "--etm", GOOD, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)


def test_bundles_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\netm_bundles =\n    {STORIES_ETM}\n    {GOOD}\n")
    pytester.makepyfile(
        test_ini="def test_path(etm_path):\n    assert etm_path.suffix == '.etm'\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_path?stories260K.etm? PASSED*", "*test_path?good.etm? PASSED*"]
    )


def test_the_plugin_imports_no_runtime(tmp_path: Path) -> None:
    """Loading the plugin and collecting golden files imports no torch."""
    code = textwrap.dedent(
        f"""
        import sys, pytest
        code = pytest.main(["-p", "no:cacheprovider", "--collect-only", "-q",
                            "--etm", {str(STORIES_ETM)!r}, {str(GOLDEN)!r},
                            "--etm-lint"])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}}
                       & {{"torch", "executorch"}})
        print("HEAVY", heavy, code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr


# ------------------------------------------------------------ lint items


@pytest.fixture(scope="module")
def rules() -> None:
    """Every rule module imported before pytester's snapshot of sys.modules.

    pytester drops the modules an inner session imported; a rule module
    imported again would register its codes a second time in the registry
    that outlived it (``etm_lint.lint.model.RULES``).
    """
    from etm_lint.lint.engine import load_rules

    load_rules()


def test_lint_findings_are_test_items(rules: None, pytester: pytest.Pytester) -> None:
    broken = FIXTURES / "broken" / "eos_missing_eot.etm"
    result = _run(pytester, "--etm", STORIES_ETM, "--etm", broken, "--etm-lint", "-v")
    result.assert_outcomes(passed=11, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*collected 12 items",
            "*etm-lint-container?stories260K.etm? PASSED*",
            "*etm-lint-bos-eos?eos_missing_eot.etm? FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*etm-lint-bos-eos?eos_missing_eot.etm?*",
            "ETM401 error model.pte: EOS '<|im_end|>' is id 3, but the runner "
            "stops only on [[]0[]]",
        ]
    )


def test_lint_items_follow_the_pyproject_configuration(
    rules: None, pytester: pytest.Pytester
) -> None:
    broken = FIXTURES / "broken" / "eos_missing_eot.etm"
    pytester.makepyprojecttoml('[tool.etm-lint]\nignore = ["ETM401", "ETM402"]\n')
    result = _run(pytester, "--etm", broken, "--etm-lint")
    result.assert_outcomes(passed=6)


# ------------------------------------------------------------ opening bundles


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    pytest.skip("/proc/self/io is not readable here")


def test_a_second_open_copies_and_reads_nothing_more() -> None:
    from etm_lint.runtime.bundle import open_bundle

    first = open_bundle(STORIES_EXT)
    stamps = {p: p.stat().st_mtime_ns for p in (first.program, *first.data_files)}
    before = _rchar()
    second = open_bundle(STORIES_EXT)
    read = _rchar() - before
    assert (second.program, second.data_files) == (first.program, first.data_files)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # The zip directory and metadata.json, not the 1.2 MB of program and weights.
    assert read < 100_000, read
    assert first.program.read_bytes() == _member(STORIES_EXT, "model.pte")


def _member(bundle: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        return archive.read(name)


def test_a_cached_member_is_not_trusted_for_another_file(tmp_path: Path) -> None:
    from etm_lint.errors import EtmError
    from etm_lint.runtime.bundle import open_bundle

    open_bundle(STORIES_ETM)  # the genuine program is now in the cache
    data = bytearray(STORIES_ETM.read_bytes())
    data[16384 + 100] ^= 0xFF
    tampered = tmp_path / "tampered.etm"
    tampered.write_bytes(bytes(data))
    with pytest.raises(EtmError, match=r"model.pte hashes to .*, metadata.json says"):
        open_bundle(tampered)


def test_the_hugging_face_tokenizer_gets_the_bundles_special_tokens() -> None:
    from etm_lint.lint.target import Target
    from etm_lint.runtime.bundle import open_bundle

    opened = open_bundle(GOOD)
    assert opened.tokenizer.is_dir()
    assert sorted(p.name for p in opened.tokenizer.iterdir()) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((opened.tokenizer / "tokenizer_config.json").read_text())
    assert config["bos_token"] == "<|begin_of_text|>"
    assert config["eos_token"] == "<|endoftext|>"
    # The linter predicts exactly what the runtime is handed.
    target = Target(str(GOOD))
    try:
        assert target.runtime_tokenizer_path == opened.tokenizer
    finally:
        target.close()


OPEN_IN_CHILD = """\
import sys
from etm_lint.runtime.bundle import open_bundle
opened = open_bundle(sys.argv[1])
print(opened.program, *opened.data_files)
"""


def test_workers_filling_one_cache_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "ETM_CACHE_DIR": str(tmp_path / "cache")}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_IN_CHILD, str(STORIES_EXT)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    assert len({out for out, _ in outputs}) == 1
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert [f for f in files if "partial" in f] == []
    assert files.count("model.pte") == files.count("model_weights.ptd") == 1
