"""Where a rule predicts a runtime failure, the real runner fails that way.

Each case unpacks a broken fixture and drives ExecuTorch's own
``TextLLMRunner`` directly, in a subprocess (a native abort must not take the
test session down), with the tokenizer folder the bundle implies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from etm_lint.format.bundle import Bundle
from etm_lint.tokenizer import runtime_config
from tests.conftest import FIXTURES

pytest.importorskip("executorch.extension.llm.runner")
pytestmark = pytest.mark.runtime

SCRIPT = textwrap.dedent(
    """
    import sys
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
    program, tokenizer, data, prompt = sys.argv[1:5]
    try:
        runner = TextLLMRunner(program, tokenizer, data or None)
        config = GenerationConfig(
            temperature=0.0, max_new_tokens=4, echo=False, num_bos=1
        )
        runner.generate(prompt, config)
    except Exception as err:
        print("RUNNER-FAILED", type(err).__name__, err, flush=True)
        sys.exit(3)
    print("RUNNER-OK", flush=True)
    """
)


def unpack(bundle_path: Path, folder: Path) -> tuple[Path, Path, Path | None]:
    """The program, a tokenizer folder and the first .ptd of a bundle."""
    with Bundle(bundle_path) as bundle:
        document = json.loads(bundle.read("metadata.json"))
        program = folder / "model.pte"
        program.write_bytes(bundle.read(document["program"]["member"]))
        tokenizer = folder / "tokenizer"
        tokenizer.mkdir()
        (tokenizer / "tokenizer.json").write_bytes(
            bundle.read(document["tokenizer"]["member"])
        )
        config = runtime_config(document.get("special_tokens", {}))
        (tokenizer / "tokenizer_config.json").write_text(json.dumps(config))
        data = None
        for entry in document.get("weights", []):
            data = folder / "weights.ptd"
            data.write_bytes(bundle.read(entry["member"]))
    return program, tokenizer, data


def run_runner(
    bundle_path: Path, tmp_path: Path, prompt: str, *, drop_weights: bool = False
) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    program, tokenizer, data = unpack(bundle_path, tmp_path)
    data_arg = "" if drop_weights or data is None else str(data)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(program), str(tokenizer), data_arg, prompt],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_good_bundle_runs(tmp_path: Path) -> None:
    result = run_runner(FIXTURES / "good.etm", tmp_path, "The cat sees")
    assert "RUNNER-OK" in result.stdout, result.stderr[-2000:]


def test_etm302_vocab_past_the_program_crashes_the_runner(tmp_path: Path) -> None:
    # "sees" tokenizes to an id at or past 256, the program's logits width.
    result = run_runner(
        FIXTURES / "broken" / "small_vocab.etm", tmp_path, "The cat sees"
    )
    assert result.returncode != 0
    assert "RUNNER-OK" not in result.stdout


def test_etm203_no_max_seq_len_is_refused_by_the_runner(tmp_path: Path) -> None:
    bundle = FIXTURES / "broken" / "no_max_seq_len.etm"
    result = run_runner(bundle, tmp_path, "The cat sees")
    assert result.returncode != 0
    assert "get_max_seq_len" in result.stderr


def test_etm401_the_runner_stops_only_on_get_eos_ids(tmp_path: Path) -> None:
    # The runner logs the EOS ids it will stop on; <|im_end|> (id 3) is not
    # among them for this program, so a chat turn never ends.
    bundle = FIXTURES / "broken" / "eos_missing_eot.etm"
    result = run_runner(bundle, tmp_path, "The cat sees")
    assert "RUNNER-OK" in result.stdout, result.stderr[-2000:]
    logged = {
        line.rsplit("=", 1)[1].strip()
        for line in result.stderr.splitlines()
        if "eos_id = " in line
    }
    assert logged == {"0"}
    good = run_runner(FIXTURES / "good.etm", tmp_path / "good", "The cat sees")
    logged_good = {
        line.rsplit("=", 1)[1].strip()
        for line in good.stderr.splitlines()
        if "eos_id = " in line
    }
    assert logged_good == {"0", "3"}


def test_etm205_short_context_refuses_a_prompt_the_seq_len_allows(
    tmp_path: Path,
) -> None:
    prompt = " ".join(["the cat sees a dog"] * 16)  # past 64 tokens, under 128
    short = run_runner(FIXTURES / "broken" / "short_context.etm", tmp_path, prompt)
    assert short.returncode != 0
    good = run_runner(FIXTURES / "good.etm", tmp_path / "good", prompt)
    assert "RUNNER-OK" in good.stdout, good.stderr[-2000:]


def test_etm207_missing_weights_fail_at_generate(tmp_path: Path) -> None:
    result = run_runner(
        FIXTURES / "good_ext.etm", tmp_path, "The cat sees", drop_weights=True
    )
    assert result.returncode != 0
    assert "RUNNER-OK" not in result.stdout
