"""fixtures/build.py rebuilds the committed fixtures byte for byte.

Each test runs the script's real steps in a temporary folder and compares
the result with the files in fixtures/. The tokenizer and packing steps take
about a second; re-exporting a program needs torch and executorch and about
half a minute, so that one is marked slow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

BUILD = FIXTURES / "build.py"
SRC = FIXTURES / "src"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")
BUNDLES = (
    "good.etm",
    "good_ext.etm",
    "broken/small_vocab.etm",
    "broken/no_max_seq_len.etm",
    "broken/eos_missing_eot.etm",
    "broken/short_context.etm",
    "broken/eos_singular.etm",
    "broken/eos_wrong_type.etm",
)


def run_build(out: Path, *args: str, timeout: float = 120) -> None:
    done = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def assert_same_bytes(built: Path, committed: Path) -> None:
    assert built.read_bytes() == committed.read_bytes(), (
        f"{committed.relative_to(FIXTURES)} differs from a rebuild; "
        "rerun fixtures/build.py and commit the result"
    )


def test_tokenizer_step_rebuilds_identically(tmp_path: Path) -> None:
    run_build(tmp_path, "--steps", "tokenizer")
    for name in TOKENIZER_FILES:
        assert_same_bytes(tmp_path / "src" / name, SRC / name)


def test_bundles_step_repacks_identically(tmp_path: Path) -> None:
    shutil.copytree(SRC, tmp_path / "src")
    run_build(tmp_path, "--steps", "bundles")
    for name in BUNDLES:
        assert_same_bytes(tmp_path / name, FIXTURES / name)


def test_tokenizer_is_ascii_with_special_tokens() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(SRC / "tokenizer.json"))
    specials = ["<|endoftext|>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>"]
    assert [tokenizer.token_to_id(text) for text in specials] == [0, 1, 2, 3]
    size = tokenizer.get_vocab_size()
    assert 300 <= size <= 400
    assert all(tokenizer.decode([i]).isascii() for i in range(4, size))
    # The post-processor adds BOS; special-token text maps to single ids.
    assert tokenizer.encode("<|im_start|>user").ids[:2] == [1, 2]


def test_chat_template_ends_turns_with_an_eos_id() -> None:
    transformers = pytest.importorskip("transformers")

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(SRC))
    messages = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|im_start|>user\nHi<|im_end|>\n"
    generation = json.loads((SRC / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]


@pytest.mark.slow
@pytest.mark.runtime
def test_export_rebuilds_one_program_identically(tmp_path: Path) -> None:
    pytest.importorskip("executorch")
    (tmp_path / "src").mkdir()
    shutil.copy(SRC / "tokenizer.json", tmp_path / "src")
    run_build(tmp_path, "--steps", "programs", "--program", "good", timeout=600)
    assert_same_bytes(tmp_path / "src" / "good.pte", SRC / "good.pte")
