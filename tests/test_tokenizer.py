"""The runtime tokenizer layer against real tokenizer files.

Expected values come from real runs, not from the code under test: the
stories260K provenance notes and ``samples.json`` (ids Hugging Face eager and
the ExecuTorch runner produced), the ExecuTorch runner's own log of which
loader it used for each file (``TextLLMRunner`` prints ``Loaded ... tokenizer``;
``test_tokenizer_real.py`` re-checks that table against the runner), Llama 3.2's
``tokenizer_config.json``, and the reference libraries (sentencepiece,
tokenizers, tiktoken).
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etm_lint.errors import EtmError
from etm_lint.tokenizer import (
    DEFAULT_MAX_BYTES,
    LLAMA2C_MAX_VOCAB,
    SAMPLE_TEXTS,
    TokenizerError,
    TokenizerKind,
    describe_format,
    load,
    probe_runner,
    quiet_native,
    reference,
    resolve_special_ids,
    runner_pick,
    sniff_kind,
)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
TOKS = REAL / "tokenizers"
STORIES = REAL / "models" / "stories260K"
CONFIGS = REAL / "chat_templates"
LLAMA32_CONFIG = CONFIGS / "Llama-3.2-1B-Instruct__tokenizer_config.json"

HF = TokenizerKind.HUGGINGFACE
SP = TokenizerKind.SENTENCEPIECE
TIKTOKEN = TokenizerKind.TIKTOKEN

# What TextLLMRunner (executorch 1.5.1) logged for each real file: "Loaded json
# tokenizer", "Loaded TikToken tokenizer", "Loaded Sentencepiece tokenizer", or
# "Failed to load tokenizer from: ..." (None here).
RUNNER_LOADED = {
    "EdgeAIApp-Llama3.2-1B__tokenizer.model": TIKTOKEN,
    "executorch__test_tiktoken_tokenizer.model": TIKTOKEN,
    "litert-lm-smollm__tokenizer.json": HF,
    "litert-lm__sentencepiece.model": SP,
    "llama2.c-fork__tok1024.bin": None,
    "llama2.c__tokenizer.bin": None,
    "llama2.c__tokenizer.model": SP,
    "meta-pytorch-tokenizers__test_hf_tokenizer.json": HF,
    "meta-pytorch-tokenizers__test_llama2c_tokenizer.bin": None,
    "meta-pytorch-tokenizers__test_tiktoken_invalid_base64.model": None,
    "meta-pytorch-tokenizers__test_tiktoken_invalid_rank.model": None,
    "meta-pytorch-tokenizers__test_tiktoken_no_space.model": None,
    "olmo__allenai_dolma2.json": HF,
    "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json": HF,
    "ortx-chatglm__tokenizer.json": None,
    "ortx-falcon__tokenizer.json": None,
    "ortx-llama2__tokenizer.json": HF,
    "ortx-phi-2__tokenizer.json": HF,
    "ortx-phi-3-mini__tokenizer.json": HF,
    "ortx-phi-3-small__cl100k_base.tiktoken": TIKTOKEN,
    "swift-transformers-gpt2__gpt2_tokenizer.json": HF,
    "swift-transformers-llama__llama_tokenizer.json": HF,
    "torchtune__m.model": SP,
    "torchtune__tiktoken_small.model": TIKTOKEN,
    "torchtune__tiktoken_small_llama4.model": TIKTOKEN,
    "torchtune__tiny_bpe_tokenizer.json": HF,
    "torchtune__tokenizer.json": HF,
    **{
        f"llama.cpp__ggml-vocab-{name}.gguf": None
        for name in [
            *("baichuan", "bert-bge", "deepseek-coder", "deepseek-llm", "falcon"),
            *("gpt-2", "gpt-neox", "llama-spm", "mpt", "phi-3", "refact", "starcoder"),
        ]
    },
}
NEGATIVES = [
    "meta-pytorch-tokenizers__test_tiktoken_invalid_base64.model",
    "meta-pytorch-tokenizers__test_tiktoken_invalid_rank.model",
    "meta-pytorch-tokenizers__test_tiktoken_no_space.model",
    "meta-pytorch-tokenizers__test_llama2c_tokenizer.bin",
]


def need(path: Path) -> str:
    if not path.exists():
        pytest.skip(f"real input {path} is not present")
    return str(path)


def prompt_ids() -> dict[str, list[int]]:
    samples = json.loads(Path(need(STORIES / "samples.json")).read_text())
    return {p: s["prompt_ids"] for p, s in samples["hf_eager"].items()}


def one_line_naming(err: pytest.ExceptionInfo[TokenizerError], path: str) -> None:
    text = str(err.value)
    assert isinstance(err.value, EtmError)
    assert text.startswith(path + ":") and "\n" not in text
    assert text.isprintable()


# ------------------------------------------------------------------ stories260K


def test_stories_sentencepiece_model() -> None:
    tok = load(need(STORIES / "tokenizer.model"))
    assert (tok.kind, tok.vocab_size, tok.bos_id, tok.eos_id) == (SP, 512, 1, 2)
    for prompt, ids in prompt_ids().items():
        assert tok.encode(prompt, bos=1) == ids


def test_stories_tokenizer_json_alone_guesses_bos_eos_zero() -> None:
    # PROVENANCE.md: "If tokenizer.json is given alone as a file, the C++ loader
    # reports bos=eos=0"; its post-processor still puts <s> (1) first.
    tok = load(need(STORIES / "tokenizer.json"))
    assert (tok.kind, tok.vocab_size, tok.bos_id, tok.eos_id) == (HF, 512, 0, 0)
    assert dict(tok.special_tokens) == {"<unk>": 0, "<s>": 1, "</s>": 2}
    for prompt, ids in prompt_ids().items():
        assert tok.encode(prompt, bos=1) == ids
        assert tok.encode(prompt) == ids[1:]


def test_stories_folder_reads_bos_eos_from_its_config() -> None:
    tok = load(need(STORIES))
    assert (tok.kind, tok.vocab_size, tok.bos_id, tok.eos_id) == (HF, 512, 1, 2)
    assert tok.encode("Once upon a time", bos=1) == prompt_ids()["Once upon a time"]


def test_config_dir_pairs_a_loose_tokenizer_json_with_its_config() -> None:
    tok = load(need(STORIES / "tokenizer.json"), config_dir=str(STORIES))
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert tok.path == str(STORIES / "tokenizer.json")


def test_post_processor_adds_one_bos_whatever_num_bos_says() -> None:
    # The HF loader adds specials through the post-processor, once, when either
    # count is non-zero; SentencePiece repeats them as asked.
    hf = load(need(STORIES / "tokenizer.json"))
    sp = load(need(STORIES / "tokenizer.model"))
    body = sp.encode("Once upon a time")
    assert hf.encode("Once upon a time", bos=2, eos=1) == [1, *body]
    assert sp.encode("Once upon a time", bos=2, eos=1) == [1, 1, *body, 2]


def test_special_text_in_a_prompt() -> None:
    # Added tokens are matched in the text by the HF loader; SentencePiece
    # spells them out (PROVENANCE.md: the one difference in its parity check).
    hf = load(need(STORIES / "tokenizer.json"))
    sp = load(need(STORIES / "tokenizer.model"))
    assert 1 in hf.encode("a <s> b")
    assert 1 not in sp.encode("a <s> b")


# ------------------------------------------------------------- runner's choice


@pytest.mark.parametrize("name", sorted(RUNNER_LOADED))
def test_runner_pick_matches_the_runner(name: str) -> None:
    assert runner_pick(need(TOKS / name)) is RUNNER_LOADED[name]


def test_runner_pick_on_stories_files() -> None:
    assert runner_pick(need(STORIES / "tokenizer.model")) is SP
    assert runner_pick(need(STORIES / "tokenizer.json")) is HF
    assert runner_pick(need(STORIES)) is HF


def test_attempts_follow_the_runner_order() -> None:
    pick = probe_runner(need(TOKS / "torchtune__m.model"))
    tried = [(a.kind.value, a.loaded) for a in pick.attempts]
    assert tried == [
        ("tekken", False),
        ("huggingface", False),
        ("tiktoken", False),
        ("sentencepiece", True),
    ]
    assert pick.attempts[0].message.startswith("skipped")
    assert "invalid tiktoken line" in pick.attempts[2].message


def test_tekken_is_tried_only_by_name(tmp_path: Path) -> None:
    named = tmp_path / "tekken.json"
    named.write_bytes(Path(need(STORIES / "tokenizer.json")).read_bytes())
    pick = probe_runner(str(named))
    assert pick.kind is HF
    assert not pick.attempts[0].loaded
    assert not pick.attempts[0].message.startswith("skipped")


def test_an_exception_escaping_the_tekken_loader_ends_the_search(
    tmp_path: Path,
) -> None:
    # The runner raises here rather than trying the next loader.
    path = tmp_path / "model_tekken.json"
    path.write_text("[1]")
    pick = probe_runner(str(path))
    assert pick.kind is None
    assert pick.aborted is not None and "type_error" in pick.aborted
    assert len(pick.attempts) == 1
    with pytest.raises(TokenizerError, match="aborts") as err:
        load(str(path))
    one_line_naming(err, str(path))


def test_empty_file_and_folder_load_as_empty_tiktoken(tmp_path: Path) -> None:
    empty = tmp_path / "tokenizer.model"
    empty.write_bytes(b"")
    folder = tmp_path / "no_json"
    folder.mkdir()
    for path in (str(empty), str(folder)):
        assert runner_pick(path) is TIKTOKEN
        with pytest.raises(TokenizerError, match="no regular tokens") as err:
            load(path)
        one_line_naming(err, path)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", NEGATIVES)
def test_negative_files(name: str) -> None:
    path = need(TOKS / name)
    with pytest.raises(TokenizerError, match="no loader of the runner") as err:
        load(path)
    one_line_naming(err, path)


@pytest.mark.parametrize(
    "name", ["llama.cpp__ggml-vocab-gpt-2.gguf", "llama2.c__tokenizer.bin"]
)
def test_files_from_other_runtimes_are_named_in_the_message(name: str) -> None:
    path = need(TOKS / name)
    with pytest.raises(TokenizerError) as err:
        load(path)
    one_line_naming(err, path)
    assert ("GGUF" in str(err.value)) or ("Karpathy" in str(err.value))


@pytest.mark.parametrize(
    ("source", "keep"),
    [
        (STORIES / "tokenizer.model", 0.5),
        (STORIES / "tokenizer.json", 0.3),
        (TOKS / "ortx-llama2__tokenizer.json", 0.9),
    ],
)
def test_truncated_files(tmp_path: Path, source: Path, keep: float) -> None:
    data = Path(need(source)).read_bytes()
    path = tmp_path / source.name
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(TokenizerError) as err:
        load(str(path))
    one_line_naming(err, str(path))


def test_tiktoken_cut_inside_a_line_fails_and_at_a_line_end_loads_smaller(
    tmp_path: Path,
) -> None:
    data = Path(need(TOKS / "torchtune__tiktoken_small.model")).read_bytes()
    end = data.index(b"\n", 10000) + 1
    path = tmp_path / "cut.model"
    path.write_bytes(data[: end - 5])
    with pytest.raises(TokenizerError, match="invalid tiktoken line"):
        load(str(path))
    path.write_bytes(data[:end])
    full = load(need(TOKS / "torchtune__tiktoken_small.model"))
    cut = load(str(path))
    assert cut.kind is TIKTOKEN and cut.vocab_size < full.vocab_size


@pytest.mark.parametrize("seed", [0, 1, 2, 1234])
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(TokenizerError) as err:
        load(str(path))
    one_line_naming(err, str(path))


def test_missing_path(tmp_path: Path) -> None:
    path = str(tmp_path / "nothing.json")
    with pytest.raises(TokenizerError, match="no such file") as err:
        load(path)
    one_line_naming(err, path)


# ------------------------------------------------------------------ bounds


def test_size_cap_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    with open(path, "wb") as fh:
        fh.truncate(DEFAULT_MAX_BYTES + 1)  # sparse: nothing to read quickly
    start = time.monotonic()
    with pytest.raises(TokenizerError, match="limit") as err:
        load(str(path))
    assert time.monotonic() - start < 1
    one_line_naming(err, str(path))
    with pytest.raises(TokenizerError, match="limit"):
        load(need(STORIES / "tokenizer.json"), max_bytes=1000)


def test_deep_json_is_refused_before_native_parsing(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(TokenizerError, match="nested too deeply") as err:
        load(str(path))
    one_line_naming(err, str(path))


def test_llama2c_header_claiming_millions_of_tokens(tmp_path: Path) -> None:
    # The runtime would allocate (and pad) them all; a 10M claim costs it
    # about 700 MB and 2 s.
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(struct.pack("<4i", LLAMA2C_MAX_VOCAB + 1, 1, 2, 16))
    with pytest.raises(TokenizerError, match="claims") as err:
        load(str(path))
    one_line_naming(err, str(path))


def hostile_json(tmp_path: Path, pattern: str) -> str:
    doc = json.loads(Path(need(STORIES / "tokenizer.json")).read_text())
    doc["pre_tokenizer"] = {
        "type": "Split",
        "pattern": {"Regex": pattern},
        "behavior": "Isolated",
        "invert": False,
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_regex_that_pcre2_gives_up_on(tmp_path: Path) -> None:
    # RE2 refuses the look-ahead, PCRE2 runs it into its match limit (about
    # 0.1 s), and the runtime then drops the rest of the text.
    tok = load(hostile_json(tmp_path, "(a+)+(?=b)"))
    assert any("PCRE2" in h for h in tok.hazards)
    start = time.monotonic()
    with pytest.raises(TokenizerError, match="match limit"):
        tok.encode("a" * 40 + "!")
    assert time.monotonic() - start < 5


def test_regex_left_to_std_regex_is_never_run(tmp_path: Path) -> None:
    # \u is refused by RE2 and PCRE2; std::regex takes it and backtracks
    # without limit (26 characters took 3.4 s here).
    tok = load(hostile_json(tmp_path, "(\\u0061+)+b"))
    assert any("std::regex" in h for h in tok.hazards)
    start = time.monotonic()
    with pytest.raises(TokenizerError, match="std::regex"):
        tok.encode("a" * 40 + "!")
    assert time.monotonic() - start < 1


def test_nested_quantifier_re2_accepts_is_safe(tmp_path: Path) -> None:
    tok = load(hostile_json(tmp_path, "(a+)+$"))
    assert tok.hazards == ()
    start = time.monotonic()
    tok.encode("a" * 5000 + "!")
    assert time.monotonic() - start < 1


# ------------------------------------------------------------------ llama2.c


def llama2c_from(model: Path, out: Path) -> str:
    # pytorch-tokenizers' own converter writes the layout ExecuTorch reads.
    with quiet_native():
        from pytorch_tokenizers.llama2c import Llama2cTokenizer

        Llama2cTokenizer(need(model)).export(str(out))
    return str(out)


def test_llama2c_converted_from_stories(tmp_path: Path) -> None:
    path = llama2c_from(STORIES / "tokenizer.model", tmp_path / "tok512.bin")
    assert runner_pick(path) is TokenizerKind.LLAMA2C
    tok = load(path)
    assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (512, 1, 2)
    assert tok.encode("Once upon a time", bos=1) == prompt_ids()["Once upon a time"]
    assert reference(path) is None


# ------------------------------------------------------------------ decoding


def test_decode_piece_follows_the_runner() -> None:
    # The runner's first piece keeps its space (SAMPLES.md: " was"); after BOS
    # the piece loses it, as SentencePiece itself decodes [BOS, Once].
    path = need(STORIES / "tokenizer.model")
    sp, ref = load(path), reference(path)
    assert ref is not None
    once = sp.encode("Once")[0]
    assert sp.decode_piece(once, once) == " Once"
    assert sp.decode_piece(sp.bos_id, once) == ref.decode([sp.bos_id, once])
    assert sp.decode_piece(once, sp.bos_id) == " "  # control tokens
    assert sp.token_text(once) == "▁Once"


def test_decode_piece_returns_bytes_for_partial_utf8() -> None:
    gpt2 = load(need(TOKS / "swift-transformers-gpt2__gpt2_tokenizer.json"))
    ids = gpt2.encode("世")
    pieces = [gpt2.decode_piece(t, t) for t in ids]
    assert all(isinstance(p, bytes) for p in pieces)
    assert b"".join(p for p in pieces if isinstance(p, bytes)).decode() == "世"


def test_out_of_range_ids_never_reach_native_decode() -> None:
    # SPTokenizer.decode(512) on this 512-token model kills the process.
    sp = load(need(STORIES / "tokenizer.model"))
    for bad in (sp.vocab_size, 10**12, -1):
        with pytest.raises(TokenizerError, match="outside the vocabulary"):
            sp.decode_piece(0, bad)
        with pytest.raises(TokenizerError, match="outside the vocabulary"):
            sp.token_text(bad)


def test_strip_decoder_loses_spaces_piece_by_piece() -> None:
    # A Llama-2-style tokenizer.json (its decoder ends in Strip) streams
    # "Onceuponatime", as PROVENANCE.md saw before dropping Strip.
    tok = load(need(TOKS / "swift-transformers-llama__llama_tokenizer.json"))
    ids = tok.encode("Once upon a time")
    prevs = [ids[0], *ids[:-1]]
    pieces = [tok.decode_piece(p, t) for p, t in zip(prevs, ids, strict=True)]
    assert "".join(str(p) for p in pieces) == "Onceuponatime"


# ------------------------------------------------------------------ specials


def test_tiktoken_specials_come_from_the_runtime() -> None:
    tok = load(need(TOKS / "EdgeAIApp-Llama3.2-1B__tokenizer.model"))
    config = json.loads(Path(need(LLAMA32_CONFIG)).read_text())
    real = {v["content"]: int(k) for k, v in config["added_tokens_decoder"].items()}
    markers = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|python_tag|>",
    ]
    for name in markers:
        assert tok.special_tokens[name] == real[name]
        assert tok.encode(name) == [real[name]]
        assert tok.token_text(real[name]) == name
    assert (tok.bos_id, tok.eos_id) == (real["<|begin_of_text|>"], 128001)


def test_token_text_matches_the_reference_vocabulary() -> None:
    path = need(TOKS / "torchtune__tiktoken_small.model")
    tok, ref = load(path), reference(path)
    assert ref is not None
    for token_id in (0, 65, 300, 1999):
        assert tok.token_text(token_id) == ref.decode([token_id])
    gpt2 = need(TOKS / "swift-transformers-gpt2__gpt2_tokenizer.json")
    vocab = json.loads(Path(gpt2).read_text())["model"]["vocab"]
    tok = load(gpt2)
    for text in ("Hello", "Ġworld", "<|endoftext|>"):
        assert tok.token_text(vocab[text]) == text


# ------------------------------------------------------------ special ids


def test_resolve_special_ids_stories(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path))
    got = resolve_special_ids(
        need(STORIES / "tokenizer.json"),
        {"bos": "<s>", "eos": ["</s>", "<s>"]},
        str(tmp_path),
    )
    assert got.kind is HF
    assert (got.file_alone.bos_id, got.file_alone.eos_id) == (0, 0)
    assert got.with_config is not None
    assert (got.with_config.bos_id, got.with_config.eos_id) == (1, 2)
    assert got.differs
    assert dict(got.declared) == {"<s>": 1, "</s>": 2}
    new = set(os.listdir(tmp_path)) - before
    assert len(new) == 1 and got.folder == str(tmp_path / new.pop())
    assert sorted(os.listdir(got.folder)) == ["tokenizer.json", "tokenizer_config.json"]


def test_null_bos_makes_the_runtime_use_eos_as_bos(tmp_path: Path) -> None:
    # A config with "bos_token": null (Qwen's) falls back to the name guess,
    # which copies EOS into BOS.
    got = resolve_special_ids(
        need(STORIES / "tokenizer.json"), {"bos": None, "eos": ["</s>"]}, str(tmp_path)
    )
    assert got.with_config is not None
    assert (got.with_config.bos_id, got.with_config.eos_id) == (2, 2)


def test_eos_that_is_no_added_token_falls_back_to_the_guess(tmp_path: Path) -> None:
    got = resolve_special_ids(
        need(STORIES / "tokenizer.json"), {"bos": "<s>", "eos": ["the"]}, str(tmp_path)
    )
    assert got.with_config is not None
    assert (got.with_config.bos_id, got.with_config.eos_id) == (1, 1)
    # An ordinary word, which the normalizer turns into "▁the": one token still.
    vocab = json.loads((STORIES / "tokenizer.json").read_text())["model"]["vocab"]
    assert got.declared["the"] == vocab["▁the"]


def test_resolve_special_ids_sentencepiece_reads_no_config(tmp_path: Path) -> None:
    got = resolve_special_ids(
        need(STORIES / "tokenizer.model"),
        {"bos": "<s>", "eos": ["</s>"]},
        str(tmp_path),
    )
    assert got.with_config is None and not got.differs
    assert (got.file_alone.bos_id, got.file_alone.eos_id) == (1, 2)
    assert dict(got.declared) == {"<s>": None, "</s>": None}
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ sniffing


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ortx-llama2__tokenizer.json", HF),
        ("ortx-falcon__tokenizer.json", HF),
        ("EdgeAIApp-Llama3.2-1B__tokenizer.model", TIKTOKEN),
        ("ortx-phi-3-small__cl100k_base.tiktoken", TIKTOKEN),
        ("llama2.c__tokenizer.model", SP),
        ("torchtune__m.model", SP),
        ("llama2.c__tokenizer.bin", None),
        ("llama.cpp__ggml-vocab-phi-3.gguf", None),
        ("meta-pytorch-tokenizers__test_llama2c_tokenizer.bin", None),
    ],
)
def test_sniff_kind(name: str, kind: TokenizerKind | None) -> None:
    data = Path(need(TOKS / name)).read_bytes()
    assert sniff_kind(data[:65536], name) is kind


def test_sniff_and_describe_llama2c_layouts(tmp_path: Path) -> None:
    converted = Path(llama2c_from(STORIES / "tokenizer.model", tmp_path / "t.bin"))
    assert sniff_kind(converted.read_bytes(), "t.bin") is TokenizerKind.LLAMA2C
    karpathy = Path(need(TOKS / "llama2.c__tokenizer.bin")).read_bytes()
    assert "Karpathy" in describe_format(karpathy, "tokenizer.bin")
    assert "empty" in describe_format(b"", "x")


def test_sample_texts_cover_the_cases() -> None:
    joined = "".join(SAMPLE_TEXTS)
    assert all(isinstance(t, str) and t for t in SAMPLE_TEXTS)
    assert "  " in joined and "\t" in joined and "\n\n" in joined
    assert any(c.isdigit() for c in joined)
    assert "é" in joined and "語" in joined and "🦙" in joined and "def " in joined


# ------------------------------------------------------------------ plumbing


def test_quiet_native_captures_native_logs(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_native(capture=True) as out:
        with pytest.raises(TokenizerError):
            load(need(TOKS / "meta-pytorch-tokenizers__test_tiktoken_no_space.model"))
        os.write(2, b"raw fd write\n")
    assert "raw fd write" in out.text
    assert capfd.readouterr() == ("", "")


def test_import_is_silent_and_needs_no_torch() -> None:
    code = (
        "import sys\n"
        "from etm_lint.tokenizer import load\n"
        f"t = load({need(STORIES / 'tokenizer.model')!r})\n"
        "print(sorted(m for m in ('torch', 'executorch') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("[]\n", "")


def test_devices_are_never_read(tmp_path: Path) -> None:
    # /dev/zero as a file, or as the tokenizer.json of a folder, would feed the
    # native reader without end.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "tokenizer.json").symlink_to("/dev/zero")
    for path in (str(folder), str(folder / "tokenizer.json"), "/dev/zero"):
        with pytest.raises(TokenizerError, match="not a regular file"):
            load(path)


def test_config_dir_refuses_devices_and_names_the_callers_path(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "tokenizer_config.json").symlink_to("/dev/zero")
    path = need(STORIES / "tokenizer.json")
    with pytest.raises(TokenizerError, match="not a regular file"):
        load(path, config_dir=str(configs))
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(TokenizerError) as err:
        load(str(bad), config_dir=str(STORIES))
    one_line_naming(err, str(bad))


SMOLLM = TOKS / "litert-lm-smollm__tokenizer.json"
# The runtime's own encoder, unguarded, on one word of the given length.
_RAW_ENCODE = """
import sys
from pytorch_tokenizers import pytorch_tokenizers_cpp as native
tok = native.HFTokenizer()
tok.load(sys.argv[1])
print(len(tok.encode("=" * int(sys.argv[2]), 0, 0)))
"""


def test_a_word_that_crashes_the_runtime_encoder_is_refused_in_one_line() -> None:
    if not SMOLLM.is_file():
        pytest.skip("../shared/real is not beside this checkout")
    raw = [sys.executable, "-c", _RAW_ENCODE, str(SMOLLM)]
    # The real encoder: a 40,000-character word kills the process; 15,000 pass.
    crashed = subprocess.run([*raw, "40000"], capture_output=True, check=False)
    assert crashed.returncode < 0
    passed = subprocess.run([*raw, "15000"], capture_output=True, check=False)
    assert passed.returncode == 0
    tok = load(str(SMOLLM))
    with pytest.raises(TokenizerError) as refused:
        tok.encode("x " + "=" * 40000)
    assert "40000 characters without a break" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert len(tok.encode("=" * 15000)) == int(passed.stdout)
