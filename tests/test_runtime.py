"""The runtime layer on ExecuTorch's real LLM runner and the real stories260K.

Expected values come from ``samples.json`` (Hugging Face eager greedy ids,
checked against llama2.c's reference text), from Hugging Face ``tokenizers``
decoding the same ids, and from the runner itself: ``runner_text`` is what
its callback streamed, and the wrapper checks its Stats against the ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from etm_lint.errors import EtmError

REPO = Path(__file__).resolve().parents[1]
STORIES = REPO.parent / "shared" / "real" / "models" / "stories260K"
WRONG_PTD = (
    REPO.parent
    / "shared"
    / "real"
    / "pte"
    / "executorch-rs__data_map__default_external_constant.ptd"
)

pytestmark = pytest.mark.runtime


def _stories() -> Path:
    if not (STORIES / "samples.json").is_file():
        pytest.skip("../shared/real/models/stories260K is not present")
    pytest.importorskip("executorch.extension.llm.runner")
    return STORIES


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_stories() / "samples.json").read_text())
    return data["hf_eager"]


@pytest.fixture(scope="module")
def hf() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(_stories() / "tokenizer.json"))


def _load(pte: str = "model.pte", tok: str = "tokenizer.model", **kw: Any) -> Any:
    from etm_lint.runtime import LoadedModel

    root = _stories()
    data = [str(root / "model_weights.ptd")] if pte == "model_ext.pte" else []
    return LoadedModel.load(str(root / pte), str(root / tok), data, **kw)


@pytest.fixture(scope="module", params=["model.pte", "model_ext.pte"])
def model(request: pytest.FixtureRequest) -> Any:
    return _load(request.param)


@pytest.fixture(scope="module")
def plain() -> Any:
    return _load()


def _body(gen: Any) -> list[int]:
    ids = list(gen.token_ids)
    return ids[:-1] if gen.stop_reason == "eos" else ids


def test_importing_the_package_loads_no_torch() -> None:
    code = (
        "import sys, etm_lint.runtime, etm_lint.runtime.forward;"
        "bad = [m for m in sys.modules"
        " if m.split('.')[0] in ('torch', 'executorch')];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_sample_token_for_token(
    model: Any, samples: dict[str, Any], hf: Any
) -> None:
    for prompt, want in samples.items():
        gen = model.generate(prompt, max_new_tokens=256, num_bos=1)
        assert list(gen.prompt_ids) == want["prompt_ids"]
        assert list(gen.token_ids) == want["new_ids"], prompt
        reference = hf.decode(_body(gen), skip_special_tokens=False)
        # The proof that the runner made these ids: what it streamed is
        # their decoding (and its Stats agreed, or generate would raise).
        assert gen.runner_text == reference == gen.text
        # samples.json keeps SentencePiece's convention: no leading space.
        assert gen.text.removeprefix(" ") == want["text"]
        assert gen.timing.num_generated == want["n_new"]


def test_the_forward_loop_function(samples: dict[str, Any]) -> None:
    from etm_lint.runtime.forward import greedy

    root = _stories()
    want = samples["The little dog"]
    ids = greedy(
        str(root / "model_ext.pte"),
        want["prompt_ids"],
        256,
        [1, 2],
        data_files=[str(root / "model_weights.ptd")],
    )
    assert ids == want["new_ids"]


def test_stop_reason_eos_on_the_story_end(plain: Any, samples: dict[str, Any]) -> None:
    gen = plain.generate("The little dog", max_new_tokens=256, num_bos=1)
    # The model ends a story with BOS (id 1); the program's EOS ids are [1, 2].
    assert samples["The little dog"]["stopped_on"] == 1
    assert (gen.stop_reason, gen.stop_token, gen.token_ids[-1]) == ("eos", 1, 1)
    assert plain.eos_ids == (1, 2)


def test_stop_reason_length(plain: Any, samples: dict[str, Any], hf: Any) -> None:
    gen = plain.generate("Once upon a time", max_new_tokens=5, num_bos=1)
    assert gen.stop_reason == "length"
    assert gen.stop_token is None
    assert list(gen.token_ids) == samples["Once upon a time"]["new_ids"][:5]
    assert gen.text == gen.runner_text == hf.decode(list(gen.token_ids))


def test_the_runner_is_reset_between_calls(plain: Any) -> None:
    # Without a reset the runner's second call continues the first context.
    first = plain.generate("The little dog", max_new_tokens=12, num_bos=1)
    again = plain.generate("The little dog", max_new_tokens=12, num_bos=1)
    assert first.runner_text == again.runner_text == first.text


@pytest.mark.parametrize("stop", ["Lily", "l named"])
def test_a_stop_string_stops_generation(
    plain: Any, samples: dict[str, Any], hf: Any, stop: str
) -> None:
    gen = plain.generate("Once upon a time", max_new_tokens=100, num_bos=1, stop=[stop])
    assert gen.stop_reason == "stop_string"
    assert gen.text.endswith(stop)
    # Generation ends at the token that completes the stop string.
    ids = list(gen.token_ids)
    assert ids == samples["Once upon a time"]["new_ids"][: len(ids)]
    assert stop not in hf.decode(ids[:-1])
    assert gen.runner_text == gen.text == hf.decode(ids)


def test_a_stop_string_in_the_first_token(plain: Any) -> None:
    gen = plain.generate("Once upon a time", max_new_tokens=50, num_bos=1, stop=[","])
    assert (gen.stop_reason, gen.text, gen.runner_text) == ("stop_string", ",", ",")
    assert len(gen.token_ids) == 1


def test_the_first_token_is_never_checked_for_eos(
    plain: Any, samples: dict[str, Any]
) -> None:
    # After a whole story the model's next token is BOS, an EOS id here. The
    # runner only checks tokens from its decode loop, so it goes on, and the
    # ids must go on with it (its Stats are checked against them).
    story = "The little dog" + samples["The little dog"]["text"]
    gen = plain.generate(story, max_new_tokens=8, num_bos=1)
    assert gen.token_ids[0] == 1
    assert len(gen.token_ids) == 8
    assert gen.stop_reason == "length"
    # SentencePiece spells BOS as nothing, the runner's piece for it is " ".
    assert gen.text == gen.runner_text == " Once upon a time, there was"


def test_sampling_uses_the_runner(plain: Any) -> None:
    gen = plain.generate(
        "Once upon a time", max_new_tokens=40, num_bos=1, temperature=0.8, stop=["."]
    )
    assert gen.token_ids == ()
    assert gen.text == gen.runner_text
    assert gen.stop_reason in ("eos", "stop_string", "length")
    if gen.stop_reason == "stop_string":
        assert gen.text.endswith(".")
    assert 1 <= gen.timing.num_generated <= 40


def test_timing_is_measured(plain: Any) -> None:
    gen = plain.generate("Once upon a time", max_new_tokens=64, num_bos=1)
    t = gen.timing
    assert t.num_generated == len(gen.token_ids) == 64
    assert 0 < t.time_to_first_token_s < t.total_s
    assert t.decode_tokens_per_s > 0
    # 63 decode steps cannot take longer than the whole call.
    assert 63 / t.decode_tokens_per_s <= t.total_s
    assert plain.load_s > 0 and t.load_s == plain.load_s


def test_stdout_and_stderr_stay_clean(capfd: pytest.CaptureFixture[str]) -> None:
    from etm_lint.runtime import LoadedModel, RunnerError

    model = _load("model_ext.pte")
    model.generate("Once upon a time", max_new_tokens=20, num_bos=1)
    model.generate("Once upon a time", max_new_tokens=20, temperature=0.5)
    if WRONG_PTD.is_file():  # a native failure, with its logs
        root = _stories()
        with pytest.raises(RunnerError):
            LoadedModel.load(
                str(root / "model_ext.pte"),
                str(root / "tokenizer.model"),
                [str(WRONG_PTD)],
            )
    assert capfd.readouterr() == ("", "")
    assert "PyTorchObserver" in model.last_log.out  # the runner did print


def test_a_non_ascii_prompt(plain: Any, hf: Any) -> None:
    prompt = "Café olé, señor 日本語 😀"
    gen = plain.generate(prompt, max_new_tokens=30, num_bos=1)
    want_prompt = hf.encode(prompt).ids
    assert list(gen.prompt_ids) == want_prompt
    assert any(3 + 0x80 <= i <= 3 + 0xFF for i in want_prompt)  # byte fallback
    assert gen.text == hf.decode(_body(gen), skip_special_tokens=False)
    assert gen.text.encode("utf-8").decode("utf-8") == gen.text
    assert gen.runner_text == gen.text


def _spelled_apart(tmp_path: Path) -> Path:
    """The real tokenizer.json with ',' and '▁there' spelled as bytes C3, A9.

    The model still picks the same ids; the runner now streams the pieces
    b'\\xc3' and b'\\xa9', halves of 'é', which its Python callback cannot
    carry. A real vocabulary, moved; nothing about the runner is faked.
    """
    root = _stories()
    doc = json.loads((root / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = doc["model"]["vocab"]
    for a, b in ((",", "<0xC3>"), ("▁there", "<0xA9>")):
        vocab[a], vocab[b] = vocab[b], vocab[a]
    folder = tmp_path / "spelled"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    shutil.copy(root / "tokenizer_config.json", folder)
    return folder


def test_pieces_that_split_a_character(
    tmp_path: Path, samples: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    from etm_lint.runtime import LoadedModel
    from etm_lint.runtime.runner import captured

    tokenizers = pytest.importorskip("tokenizers")
    folder = _spelled_apart(tmp_path)
    root = _stories()
    # The trap is real: the runner's own callback path raises.
    runner_mod = pytest.importorskip("executorch.extension.llm.runner")
    with captured():
        runner = runner_mod.TextLLMRunner(str(root / "model.pte"), str(folder))
        config = runner_mod.GenerationConfig(
            temperature=0.0, echo=False, num_bos=1, max_new_tokens=5
        )
        with pytest.raises(UnicodeDecodeError):
            runner.generate("Once upon a time", config, lambda piece: None)

    model = LoadedModel.load(str(root / "model.pte"), str(folder))
    gen = model.generate("Once upon a time", max_new_tokens=20, num_bos=1)
    assert list(gen.token_ids) == samples["Once upon a time"]["new_ids"][:20]
    spelled = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert gen.text == spelled.decode(list(gen.token_ids), skip_special_tokens=False)
    assert gen.text.startswith("é was a little")
    assert gen.runner_text is None
    assert gen.timing.num_generated == 20 and gen.timing.total_s > 0
    assert capfd.readouterr() == ("", "")


def test_partial_pieces_while_sampling_are_a_clean_error(tmp_path: Path) -> None:
    from etm_lint.runtime import LoadedModel, RunnerError

    root = _stories()
    model = LoadedModel.load(str(root / "model.pte"), str(_spelled_apart(tmp_path)))
    # A tiny temperature samples the greedy token, ',' spelled b'\xc3'.
    with pytest.raises(RunnerError, match="not whole UTF-8") as err:
        model.generate(
            "Once upon a time", max_new_tokens=5, temperature=1e-6, num_bos=1
        )
    assert "\n" not in str(err.value)


@pytest.mark.xfail(
    strict=True,
    raises=EtmError,
    reason="at temperature > 0 the runner's ids are not observable, so pieces "
    "that split a character cannot be decoded",
)
def test_sampling_with_pieces_that_split_a_character(tmp_path: Path) -> None:
    from etm_lint.runtime import LoadedModel

    root = _stories()
    model = LoadedModel.load(str(root / "model.pte"), str(_spelled_apart(tmp_path)))
    gen = model.generate(
        "Once upon a time", max_new_tokens=5, temperature=1e-6, num_bos=1
    )
    assert gen.text.startswith("é")


def test_tokenizer_file_and_folder(samples: dict[str, Any]) -> None:
    want = samples["Lily and Tom went to the park."]
    folder = _load(tok=".")
    lone = _load(tok="tokenizer.json")
    # The C++ loader reads BOS from a folder's config, and guesses it from
    # token names for a lone tokenizer.json (0 here); nothing patches that.
    assert (folder.bos_id, lone.bos_id) == (1, 0)
    for model in (folder, lone):
        gen = model.generate(
            "Lily and Tom went to the park.", max_new_tokens=256, num_bos=1
        )
        assert list(gen.prompt_ids) == want["prompt_ids"]
        assert list(gen.token_ids) == want["new_ids"]
        assert model.eos_ids == (1, 2)  # the program's get_eos_ids, not the file's


def test_eos_ids_must_match_the_runners() -> None:
    assert _load(eos_ids=[2, 1]).eos_ids == (1, 2)
    with pytest.raises(EtmError, match=r"stops on eos ids \[1, 2\]"):
        _load(eos_ids=[2])


def test_a_missing_ptd_is_one_line() -> None:
    from etm_lint.runtime import LoadedModel, RunnerError

    root = _stories()
    pte, tok = str(root / "model_ext.pte"), str(root / "tokenizer.model")
    with pytest.raises(EtmError) as missing:
        LoadedModel.load(pte, tok)
    assert "model_ext.pte" in str(missing.value) and ".ptd" in str(missing.value)
    with pytest.raises(EtmError, match="no such file"):
        LoadedModel.load(pte, tok, [str(root / "absent.ptd")])
    if not WRONG_PTD.is_file():
        pytest.skip("the unrelated .ptd of the corpus is not present")
    with pytest.raises(RunnerError) as wrong:
        LoadedModel.load(pte, tok, [str(WRONG_PTD)])
    message = str(wrong.value)
    assert "\n" not in message
    assert "model.model.embed_tokens.weight" in message  # the runner's log line
    assert "Failed to get metadata" in wrong.value.log


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_bos": -1}, "num_bos"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_arguments(plain: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plain.generate("Once upon a time", **kwargs)


def test_a_prompt_longer_than_the_context(plain: Any) -> None:
    with pytest.raises(EtmError, match="the context holds 512"):
        plain.generate("Once upon a time " * 200, num_bos=1)


_TOY_EXPORT = """
import sys, warnings
warnings.simplefilter("ignore")
import torch
import executorch.extension.llm.custom_ops.custom_ops  # torch.ops.llama
from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

class Toy(torch.nn.Module):
    # Embedding, one attention through the llama kernels, a vocabulary head.
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(512, 16)
        self.qkv = torch.nn.Linear(16, 48, bias=False)
        self.out = torch.nn.Linear(16, 512, bias=False)
        self.register_buffer("k", torch.zeros(1, 64, 2, 8))
        self.register_buffer("v", torch.zeros(1, 64, 2, 8))

    def forward(self, tokens, input_pos):
        b, s = tokens.shape
        q, k, v = self.qkv(self.emb(tokens)).view(b, s, 3, 2, 8).unbind(2)
        start = input_pos[0].item()
        torch._check_is_size(start)
        torch._check(start < 64)
        torch.ops.llama.update_cache(k, self.k, start)
        torch.ops.llama.update_cache(v, self.v, start)
        y = torch.ops.llama.custom_sdpa(q, self.k, self.v, start, None, 0, True)
        return self.out(y.view(b, s, -1))

seq = torch.export.Dim("seq", min=1, max=63)
ep = torch.export.export(
    Toy().eval(), (torch.tensor([[1, 2, 3]]), torch.tensor([0])),
    dynamic_shapes=({1: seq}, {0: None}), strict=False,
)
consts = {"get_max_seq_len": 64, "get_max_context_len": 64,
          "use_kv_cache": True, "enable_dynamic_shape": True, "get_eos_ids": [2]}
edge = to_edge_transform_and_lower(
    ep, constant_methods=consts,
    compile_config=EdgeCompileConfig(_check_ir_validity=False),
)
with open(sys.argv[1], "wb") as fh:
    fh.write(edge.to_executorch().buffer)
"""

_TOY_RUN = """
import sys
from etm_lint.runtime import LoadedModel, RunnerError
flag = {"auto": None, "off": False}[sys.argv[3]]
try:
    model = LoadedModel.load(sys.argv[1], sys.argv[2], custom_ops=flag)
    gen = model.generate("Once upon a time", max_new_tokens=6, num_bos=1)
    print("ok", model.custom_ops, len(gen.token_ids), gen.timing.num_generated)
except RunnerError as err:
    print("error", err)
"""


def _python(code: str, *args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.slow
def test_llama_custom_kernels(tmp_path: Path) -> None:
    # Fresh processes: once loaded, the kernels stay registered process-wide.
    from etm_lint.format.pte import read_program
    from etm_lint.format.source import FileSource
    from etm_lint.runtime.runner import custom_ops_library, needs_custom_ops

    root = _stories()
    assert custom_ops_library().is_file()
    pte = tmp_path / "toy_llama_ops.pte"
    _python(_TOY_EXPORT, str(pte))
    with FileSource(pte) as source:
        operators = [op for m in read_program(source).methods for op in m.operators]
    assert needs_custom_ops(operators)
    tok = str(root / "tokenizer.model")
    off = _python(_TOY_RUN, str(pte), tok, "off")
    assert off.startswith("error ") and "llama::" in off and "custom_ops=True" in off
    assert _python(_TOY_RUN, str(pte), tok, "auto") == "ok True 6 6"
