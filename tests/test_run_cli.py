"""``etm run`` on the real runner, and the streaming hook it stands on.

Expected text comes from references: ``samples.json`` (Hugging Face eager
greedy ids for stories260K) decoded by Hugging Face ``tokenizers``, and the
ChatML prompt the good bundle's template stands for, encoded by ``tokenizers``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, FIXTURES, STORIES

STORIES_ETM = EXAMPLES / "stories260K.etm"
STORIES_EXT = EXAMPLES / "stories260K_ext.etm"
GOOD = FIXTURES / "good.etm"
CHAT = EXAMPLES / "chat.golden.yaml"
SPEED = re.compile(
    r"^(?P<name>\S+\.etm): (?P<count>\d+) tokens, stopped by (?P<stop>\S+)"
    r"(?: \(id \d+\))?; load \d+\.\d\d s, first token \d+\.\d ms, "
    r"decode \d+\.\d tokens/s$"
)

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    if not (STORIES / "samples.json").is_file():
        pytest.skip("../shared/real/models/stories260K is not present")
    pytest.importorskip("executorch.extension.llm.runner")
    data: dict[str, Any] = json.loads((STORIES / "samples.json").read_text())
    return data["hf_eager"]


@pytest.fixture(scope="module")
def hf() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(STORIES / "tokenizer.json"))


def reference_story(samples: dict[str, Any], hf: Any, prompt: str) -> str:
    """The prompt and what the reference ids add to it, stop token left out."""
    want = samples[prompt]
    ids = want["new_ids"][:-1] if want["stopped_on"] is not None else want["new_ids"]
    head = hf.decode(want["prompt_ids"], skip_special_tokens=False)
    full = hf.decode(want["prompt_ids"] + ids, skip_special_tokens=False)
    return prompt + full[len(head) :]


# The console script's own entry: main() returns the exit status.
MAIN = "import sys; from etm_lint.cli.etm import main; sys.exit(main())"


def etm(
    *args: str | Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *[str(a) for a in args]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.mark.parametrize(
    ("bundle", "prompt"),
    [(STORIES_ETM, "Once upon a time"), (STORIES_EXT, "The little dog")],
    ids=["weights-inside", "weights-in-ptd"],
)
def test_a_story_streams_then_the_speed_line(
    samples: dict[str, Any], hf: Any, bundle: Path, prompt: str
) -> None:
    done = etm("run", bundle, "--prompt", prompt)
    assert done.returncode == 0, done.stderr
    assert done.stdout == reference_story(samples, hf, prompt) + "\n"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    speed = SPEED.match(lines[0])
    assert speed is not None, lines[0]
    want = samples[prompt]
    assert speed["name"] == bundle.name
    assert int(speed["count"]) == want["n_new"]
    assert speed["stop"] == ("eos" if want["stopped_on"] is not None else "length")


def test_json_output_has_the_exact_ids(samples: dict[str, Any], hf: Any) -> None:
    done = etm("run", STORIES_ETM, "--prompt", "The little dog", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    want = samples["The little dog"]
    assert report["token_ids"] == want["new_ids"]
    assert report["prompt_ids"] == want["prompt_ids"]
    assert (report["stop_reason"], report["stop_token"]) == ("eos", 1)
    story = reference_story(samples, hf, "The little dog")
    assert "The little dog" + report["text"] == story
    assert report["timing"]["num_generated"] == 218


def _chatml(*turns: tuple[str, str]) -> str:
    body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    return body + "<|im_start|>assistant\n"


def test_messages_go_through_the_chat_template(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("executorch.extension.llm.runner")
    turns = [("system", "You are terse."), ("user", "What is a bundle?")]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"role": r, "content": c} for r, c in turns]))
    done = etm(
        "run", GOOD, "--messages", path, "--temperature", "0", "--max-new-tokens", "12"
    )
    assert done.returncode == 0, done.stderr
    as_json = etm(
        "run", GOOD, "--messages", "-", "--temperature", "0", "--max-new-tokens", "12",
        "--json", stdin=path.read_text(),
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    hf = tokenizers.Tokenizer.from_file(str(FIXTURES / "src" / "tokenizer.json"))
    # ChatML with BOS first (the bundle's num_bos is 1), as Hugging Face encodes it.
    assert report["prompt"] == _chatml(*turns)
    assert report["prompt_ids"] == hf.encode(_chatml(*turns)).ids
    assert report["prompt_ids"][0] == hf.token_to_id("<|begin_of_text|>")
    assert report["text"] == hf.decode(report["token_ids"], skip_special_tokens=False)
    # Streamed by the runner, decoded from the exact ids: the same text.
    assert done.stdout == report["text"] + ("\n" if report["text"][-1:] != "\n" else "")


def test_control_characters_reach_a_terminal_escaped(tmp_path: Path) -> None:
    """The good bundle's random model answers with control characters.

    Its greedy answer to this chat starts with the bytes 0x10 and 0x1D (the
    text recorded in examples/chat.golden.yaml); a terminal gets escapes.
    """
    import pty

    pytest.importorskip("executorch.extension.llm.runner")
    chat = yaml.safe_load(CHAT.read_text())["cases"][1]
    recorded = chat["expect"]["text"]
    assert recorded.startswith("\x10vindsa\x1d")
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(chat["messages"]))
    leader, follower = pty.openpty()
    args = [GOOD, "--messages", path, "--temperature", "0", "--max-new-tokens", "6"]
    with subprocess.Popen(
        [sys.executable, "-c", MAIN, "run", *[str(a) for a in args]],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    ) as child:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert child.wait(timeout=300) == 0
    os.close(leader)
    text = shown.decode()
    assert text.startswith("\\x10vindsa\\x1d"), text
    assert not [c for c in text if ord(c) < 0x20 and c not in "\r\n"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.etm", "--prompt", "x"], "missing.etm: no such file"),
        (
            ["run", STORIES_ETM, "--messages", "-"],
            "the bundle has no chat template; give a prompt instead of messages",
        ),
        (["run", GOOD, "--messages", "-"], "stdin: not JSON"),
        (
            ["run", STORIES_ETM, "--prompt", "x", "--temperature", "2"],
            "temperature must be in [0, 1]",
        ),
        (
            ["run", STORIES_ETM, "--prompt", "x", "--max-new-tokens", "0"],
            "max_new_tokens must be at least 1",
        ),
    ],
)
def test_errors_are_one_line(args: list[Any], message: str) -> None:
    pytest.importorskip("executorch.extension.llm.runner")
    stdin = '[{"role": "user", "content": "Hi"}]' if "--messages" in args else None
    if args[1] == GOOD:
        stdin = "{not json"
    done = etm(*args, stdin=stdin)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("etm run: ")
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_broken_bundle_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("executorch.extension.llm.runner")
    broken = tmp_path / "broken.etm"
    broken.write_bytes(STORIES_ETM.read_bytes()[:50_000])
    done = etm("run", broken, "--prompt", "x")
    assert done.returncode == 2
    assert (
        done.stderr
        == f"etm run: {broken}: not a zip archive (File is not a zip file)\n"
    )


# ------------------------------------------------------------ the hook


def test_the_hook_gets_the_text_piece_by_piece(
    samples: dict[str, Any], hf: Any
) -> None:
    from etm_lint.runtime.bundle import BundleModel

    model = BundleModel.load(STORIES_EXT)
    pieces: list[str] = []
    gen = model.generate("The little dog", on_text=pieces.append)
    story = reference_story(samples, hf, "The little dog")
    assert "The little dog" + "".join(pieces) == story
    # One call per token, the stop token's piece held back and dropped.
    assert len(pieces) == samples["The little dog"]["n_new"] - 1
    assert (gen.stop_reason, gen.text) == ("eos", "".join(pieces))
    assert gen.token_ids == ()  # a streamed run is the runner's alone


def test_sentencepiece_byte_pieces_become_text() -> None:
    from etm_lint.runtime.runner import _Stream

    shown: list[str] = []
    stream = _Stream(shown.append, byte_names=True)
    for piece in ["Caf", "<0xC3>", "<0xA9>", " ol", "<0xC3>", "<0xA9>", "</s>"]:
        stream.feed(piece)
    stream.finish(drop_last=True)
    assert "".join(shown) == "Café olé"
    assert "<0x" not in "".join(shown)


def _spelled_apart(tmp_path: Path) -> Path:
    """The real stories tokenizer.json with ',' spelled as the byte 0xC3.

    The model's greedy first token is ','; the runner then streams b'\\xc3',
    half a character, which its Python callback cannot carry.
    """
    doc = json.loads((STORIES / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = doc["model"]["vocab"]
    vocab[","], vocab["<0xC3>"] = vocab["<0xC3>"], vocab[","]
    folder = tmp_path / "spelled"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    shutil.copy(STORIES / "tokenizer_config.json", folder)
    return folder


def test_a_split_character_falls_back_to_the_exact_ids(
    tmp_path: Path, samples: dict[str, Any]
) -> None:
    from etm_lint.runtime.runner import LoadedModel

    tokenizers = pytest.importorskip("tokenizers")
    folder = _spelled_apart(tmp_path)
    model = LoadedModel.load(str(STORIES / "model.pte"), str(folder))
    pieces: list[str] = []
    gen = model.generate(
        "Once upon a time", max_new_tokens=12, num_bos=1, on_text=pieces.append
    )
    assert list(gen.token_ids) == samples["Once upon a time"]["new_ids"][:12]
    spelled = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert gen.text == spelled.decode(list(gen.token_ids), skip_special_tokens=False)
    assert "".join(pieces) == gen.text


def test_a_bad_program_is_named_by_its_bundle_member(tmp_path: Path) -> None:
    """The error named the tool's cached copy of the program."""
    import hashlib
    import zipfile

    program = b"\x00" * 4 + b"XXXX" + b"\x00" * 200
    bad = tmp_path / "garbage.etm"
    with zipfile.ZipFile(GOOD) as good:
        document = json.loads(good.read("metadata.json"))
        document["program"].update(
            size=len(program), sha256=hashlib.sha256(program).hexdigest()
        )
        with zipfile.ZipFile(bad, "w") as out:
            out.writestr("metadata.json", json.dumps(document))
            out.writestr("model.pte", program)
            out.writestr("tokenizer.json", good.read("tokenizer.json"))
    done = etm("run", bad, "--prompt", "hi")
    assert done.returncode == 2
    assert done.stderr.startswith(f"etm run: {bad}:model.pte at byte 4: ")
    assert os.environ["ETM_CACHE_DIR"] not in done.stderr
