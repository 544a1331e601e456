"""Tokenizer agreement: the ExecuTorch runtime against reference tokenizers.

Every real tokenizer that pytorch-tokenizers (the runtime's code) or a
reference library can load is run on llama.cpp's vocabulary test texts
(``ggml-vocab-common.gguf.inp``: texts separated by a line
``__ggml_vocab_test__``; each ``.out`` file holds one line of space-separated
ids per text, made without BOS/EOS). Where a ``.out`` belongs to a vocabulary
of the same family as a real tokenizer, both are checked against those ids too.
Differences are facts, not failures: the counts below are the ones measured,
asserted so that drift shows. The test writes ``docs/tokenizer-agreement.md``
from the same measurements.

The ``runtime`` tests check this module's predictions against the ExecuTorch
runner itself: which loader it picks for each file, and the pieces it streams.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from etm_lint.tokenizer import (
    SAMPLE_TEXTS,
    Mismatch,
    ReferenceTokenizer,
    RuntimeTokenizer,
    TokenizerError,
    compare,
    load,
    probe_runner,
    quiet_native,
    reference,
)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
TOKS = REAL / "tokenizers"
STORIES = REAL / "models" / "stories260K"
DOC = REPO / "docs" / "tokenizer-agreement.md"
SEPARATOR = "\n__ggml_vocab_test__\n"

# llama.cpp vocabulary -> real tokenizers of the same family, and why.
FAMILIES = {
    "llama-spm": {
        "llama2.c__tokenizer.model": "Llama 2's SentencePiece model",
        "swift-transformers-llama__llama_tokenizer.json": "Llama 2 as tokenizer.json",
        "ortx-llama2__tokenizer.json": "Llama 2 as tokenizer.json",
        "llama2c:llama2.c__tokenizer.model": "Llama 2 in llama2.c layout",
    },
    "phi-3": {"ortx-phi-3-mini__tokenizer.json": "Phi-3 mini's tokenizer.json"},
    "gpt-2": {"swift-transformers-gpt2__gpt2_tokenizer.json": "GPT-2"},
    "mpt": {
        "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json": (
            "MPT uses EleutherAI's gpt-neox-20b tokenizer"
        )
    },
    "falcon": {"ortx-falcon__tokenizer.json": "Falcon's tokenizer.json"},
}

# Measured: name -> (runtime loads, encode agreements, decode agreements) on the
# 46 llama.cpp texts, and on the SAMPLE_TEXTS (8), against the reference.
MEASURED_INP: dict[str, tuple[int, int]] = {
    "EdgeAIApp-Llama3.2-1B__tokenizer.model": (42, 46),
    "executorch__test_tiktoken_tokenizer.model": (42, 46),
    "litert-lm-smollm__tokenizer.json": (46, 46),
    "litert-lm__sentencepiece.model": (46, 36),
    "llama2.c__tokenizer.model": (46, 38),
    "olmo__allenai_dolma2.json": (46, 46),
    "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json": (44, 46),
    "ortx-phi-2__tokenizer.json": (46, 46),
    "ortx-phi-3-mini__tokenizer.json": (46, 27),
    "ortx-phi-3-small__cl100k_base.tiktoken": (42, 46),
    "swift-transformers-gpt2__gpt2_tokenizer.json": (46, 46),
    "swift-transformers-llama__llama_tokenizer.json": (46, 27),
    "torchtune__m.model": (46, 26),
    "torchtune__tiktoken_small.model": (42, 46),
    "torchtune__tiktoken_small_llama4.model": (42, 46),
    "torchtune__tiny_bpe_tokenizer.json": (38, 46),
    "torchtune__tokenizer.json": (46, 46),
    "stories260K/tokenizer.model": (46, 34),
    "stories260K/tokenizer.json": (46, 46),
    "stories260K/ (folder)": (46, 46),
    "llama2c:stories260K/tokenizer.model": (29, 45),
    "llama2c:llama2.c__tokenizer.model": (45, 45),
}
MEASURED_SAMPLES: dict[str, tuple[int, int]] = {
    "EdgeAIApp-Llama3.2-1B__tokenizer.model": (6, 8),
    "executorch__test_tiktoken_tokenizer.model": (6, 8),
    "litert-lm-smollm__tokenizer.json": (8, 8),
    "litert-lm__sentencepiece.model": (8, 5),
    "llama2.c__tokenizer.model": (8, 6),
    "olmo__allenai_dolma2.json": (8, 8),
    "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json": (7, 8),
    "ortx-phi-2__tokenizer.json": (8, 8),
    "ortx-phi-3-mini__tokenizer.json": (8, 1),
    "ortx-phi-3-small__cl100k_base.tiktoken": (6, 8),
    "swift-transformers-gpt2__gpt2_tokenizer.json": (8, 8),
    "swift-transformers-llama__llama_tokenizer.json": (8, 1),
    "torchtune__m.model": (8, 3),
    "torchtune__tiktoken_small.model": (6, 8),
    "torchtune__tiktoken_small_llama4.model": (6, 8),
    "torchtune__tiny_bpe_tokenizer.json": (5, 8),
    "torchtune__tokenizer.json": (8, 8),
    "stories260K/tokenizer.model": (8, 3),
    "stories260K/tokenizer.json": (8, 8),
    "stories260K/ (folder)": (8, 8),
    "llama2c:stories260K/tokenizer.model": (6, 8),
    "llama2c:llama2.c__tokenizer.model": (8, 8),
}
# Measured: (vocab, tokenizer) -> (runtime agreements, reference agreements)
# with the .out ids; None where that side cannot load the file.
MEASURED_OUT: dict[tuple[str, str], tuple[int | None, int | None]] = {
    ("llama-spm", "llama2.c__tokenizer.model"): (46, 46),
    ("llama-spm", "swift-transformers-llama__llama_tokenizer.json"): (46, 46),
    ("llama-spm", "ortx-llama2__tokenizer.json"): (46, None),
    ("llama-spm", "llama2c:llama2.c__tokenizer.model"): (45, 46),
    ("phi-3", "ortx-phi-3-mini__tokenizer.json"): (46, 46),
    ("gpt-2", "swift-transformers-gpt2__gpt2_tokenizer.json"): (46, 46),
    ("mpt", "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json"): (44, 46),
    ("falcon", "ortx-falcon__tokenizer.json"): (None, None),
}
# Measured: name -> (reference special tokens the runtime encodes to the same
# single id, reference special tokens).
MEASURED_SPECIALS: dict[str, tuple[int, int]] = {
    "EdgeAIApp-Llama3.2-1B__tokenizer.model": (11, 256),
    "executorch__test_tiktoken_tokenizer.model": (11, 256),
    "litert-lm-smollm__tokenizer.json": (17, 17),
    "olmo__allenai_dolma2.json": (22, 22),
    "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json": (28, 28),
    "ortx-phi-2__tokenizer.json": (39, 39),
    "ortx-phi-3-mini__tokenizer.json": (14, 14),
    "ortx-phi-3-small__cl100k_base.tiktoken": (11, 256),
    "swift-transformers-gpt2__gpt2_tokenizer.json": (1, 1),
    "swift-transformers-llama__llama_tokenizer.json": (3, 3),
    "torchtune__tiktoken_small.model": (11, 256),
    "torchtune__tiktoken_small_llama4.model": (11, 256),
    "torchtune__tiny_bpe_tokenizer.json": (3, 3),
    "stories260K/tokenizer.json": (3, 3),
    "stories260K/ (folder)": (3, 3),
}


def vocab_texts() -> list[str]:
    raw = (TOKS / "llama.cpp__ggml-vocab-common.gguf.inp").read_text(encoding="utf-8")
    texts = raw.split(SEPARATOR)
    assert texts[-1] == ""  # the file ends with a separator
    return texts[:-1]


def expected_ids(vocab: str) -> list[list[int]]:
    path = TOKS / f"llama.cpp__ggml-vocab-{vocab}.gguf.out"
    lines = path.read_text().split("\n")
    assert lines[-1] == ""
    return [[int(x) for x in line.split()] for line in lines[:-1]]


@dataclass
class Subject:
    """One real tokenizer file and what each side made of it."""

    name: str
    path: str
    runtime: RuntimeTokenizer | None = None
    runtime_error: str = ""
    ref: ReferenceTokenizer | None = None
    ref_error: str = ""
    inp: list[Mismatch] = field(default_factory=list)
    samples: list[Mismatch] = field(default_factory=list)


def subject_paths(tmp: Path) -> dict[str, str]:
    names = sorted(p.name for p in TOKS.iterdir() if p.suffix not in (".inp", ".out"))
    paths = {name: str(TOKS / name) for name in names}
    paths["stories260K/tokenizer.model"] = str(STORIES / "tokenizer.model")
    paths["stories260K/tokenizer.json"] = str(STORIES / "tokenizer.json")
    paths["stories260K/ (folder)"] = str(STORIES)
    with quiet_native():
        from pytorch_tokenizers.llama2c import Llama2cTokenizer

        for source in (STORIES / "tokenizer.model", TOKS / "llama2.c__tokenizer.model"):
            out = tmp / f"{source.parent.name}-{source.stem}.bin"
            Llama2cTokenizer(str(source)).export(str(out))
            label = (
                "stories260K/tokenizer.model"
                if source.parent == STORIES
                else (source.name)
            )
            paths[f"llama2c:{label}"] = str(out)
    return paths


def llama2c_reference(name: str, paths: dict[str, str]) -> ReferenceTokenizer | None:
    # A converted llama2.c file is checked against SentencePiece on its source.
    source = name.removeprefix("llama2c:")
    return reference(paths[source]) if source != name else None


def measure_subject(name: str, path: str, paths: dict[str, str]) -> Subject:
    subject = Subject(name, path)
    try:
        subject.runtime = load(path)
    except TokenizerError as err:
        subject.runtime_error = str(err).removeprefix(path + ": ")
    try:
        subject.ref = llama2c_reference(name, paths) or reference(
            path, kind=subject.runtime.kind if subject.runtime else None
        )
    except TokenizerError as err:
        subject.ref_error = str(err).removeprefix(path + ": ")
    if subject.runtime is not None and subject.ref is not None:
        subject.inp = compare(subject.runtime, subject.ref, vocab_texts())
        subject.samples = compare(subject.runtime, subject.ref, SAMPLE_TEXTS)
    return subject


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Subject]:
    if not TOKS.is_dir():
        pytest.skip("../shared/real is not beside this checkout")
    paths = subject_paths(tmp_path_factory.mktemp("llama2c"))
    return {name: measure_subject(name, path, paths) for name, path in paths.items()}


def agreements(found: list[Mismatch], total: int, aspect: str) -> int:
    return total - len({m.text for m in found if m.aspect in (aspect, "error")})


def counts(subject: Subject) -> tuple[tuple[int, int], tuple[int, int]] | None:
    if subject.runtime is None or subject.ref is None:
        return None
    n, s = len(vocab_texts()), len(SAMPLE_TEXTS)
    return (
        (agreements(subject.inp, n, "encode"), agreements(subject.inp, n, "decode")),
        (
            agreements(subject.samples, s, "encode"),
            agreements(subject.samples, s, "decode"),
        ),
    )


def out_agreement(
    tok: RuntimeTokenizer | ReferenceTokenizer | None, expected: list[list[int]]
) -> int | None:
    if tok is None:
        return None
    agree = 0
    for text, ids in zip(vocab_texts(), expected, strict=True):
        with contextlib.suppress(TokenizerError):
            agree += tok.encode(text) == ids
    return agree


def special_agreement(subject: Subject) -> tuple[int, int] | None:
    if subject.runtime is None or subject.ref is None:
        return None
    specials = subject.ref.special_tokens
    agree = 0
    for text, token_id in specials.items():
        with contextlib.suppress(TokenizerError):
            agree += subject.runtime.encode(text) == [token_id]
    return agree, len(specials)


def test_agreement_counts(subjects: dict[str, Subject]) -> None:
    inp = {}
    samples = {}
    for name, subject in subjects.items():
        got = counts(subject)
        if got is not None:
            inp[name], samples[name] = got
    report_counts(subjects, inp, samples)
    assert inp == MEASURED_INP
    assert samples == MEASURED_SAMPLES


def test_vocab_out_files(subjects: dict[str, Subject]) -> None:
    found = {}
    for vocab, members in FAMILIES.items():
        expected = expected_ids(vocab)
        for name in members:
            subject = subjects[name]
            found[(vocab, name)] = (
                out_agreement(subject.runtime, expected),
                out_agreement(subject.ref, expected),
            )
    print("\n.out agreement (runtime, reference):")
    for key, value in found.items():
        print(f"  {key}: {value}")
    assert found == MEASURED_OUT


def test_special_tokens(subjects: dict[str, Subject]) -> None:
    found = {}
    for name, subject in subjects.items():
        got = special_agreement(subject)
        if got is not None and got[1]:
            found[name] = got
    print("\nspecial tokens (same single id, of):", found)
    assert found == MEASURED_SPECIALS


def report_counts(
    subjects: dict[str, Subject],
    inp: dict[str, tuple[int, int]],
    samples: dict[str, tuple[int, int]],
) -> None:
    print(f"\n{'tokenizer':58} inp enc/dec  samples enc/dec")
    for name, subject in subjects.items():
        if name in inp:
            print(f"{name:58} {inp[name]!s:12} {samples[name]}")
        else:
            why = subject.runtime_error or subject.ref_error or "no reference"
            print(f"{name:58} -- {why[:70]}")


# ------------------------------------------------------------------ the report


def test_write_report(subjects: dict[str, Subject], tmp_path: Path) -> None:
    text = render(subjects, tmp_path)
    assert render(subjects, tmp_path) == text  # deterministic
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text, encoding="utf-8")


def versions() -> str:
    from importlib.metadata import version

    names = ("pytorch-tokenizers", "tokenizers", "sentencepiece", "tiktoken")
    return ", ".join(f"{n} {version(n)}" for n in names)


def show(value: object, limit: int = 60) -> str:
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def render(subjects: dict[str, Subject], tmp: Path) -> str:
    lines = [
        "# Tokenizer agreement: the ExecuTorch runtime against references",
        "",
        "Generated by `tests/test_tokenizer_real.py` from its measurements; "
        "change the test, not this file.",
        "",
        f"Versions: {versions()}. The runtime side is pytorch-tokenizers' C++ "
        "code (the code ExecuTorch's LLM runner links) driven through "
        "`etm_lint.tokenizer`; the references are Hugging Face `tokenizers`, "
        "`sentencepiece`, and `tiktoken` with the pattern and special tokens "
        "of pytorch-tokenizers' own Python tiktoken tokenizer (Llama 3's). A "
        "llama2.c file converted by pytorch-tokenizers' converter is checked "
        "against SentencePiece on its source model.",
        "",
        f"Texts: the {len(vocab_texts())} texts of llama.cpp's "
        f"`ggml-vocab-common.gguf.inp` and the {len(SAMPLE_TEXTS)} "
        "`SAMPLE_TEXTS`. *encode*: the same ids (no BOS/EOS added). *decode*: "
        "the pieces the runner streams for the reference's ids, joined, spell "
        "what the reference decodes (a single space at the start of either "
        "side ignored).",
        "",
    ]
    lines += glance(subjects)
    lines += summary_table(subjects)
    lines += refused(subjects)
    lines += out_table(subjects)
    lines += encode_section(subjects)
    lines += decode_section(subjects)
    lines += specials_section(subjects)
    lines += bos_eos_section(subjects, tmp)
    return "\n".join(lines).rstrip() + "\n"


def summary_table(subjects: dict[str, Subject]) -> list[str]:
    n, s = len(vocab_texts()), len(SAMPLE_TEXTS)
    out = [
        "## Summary",
        "",
        "| tokenizer | runner loads it as | vocab | BOS / EOS | "
        f"encode /{n} | decode /{n} | samples encode /{s} | samples decode /{s} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, sub in subjects.items():
        rt, got = sub.runtime, counts(sub)
        if rt is None:
            continue
        cells = [str(c) for pair in got for c in pair] if got else ["-"] * 4
        out.append(
            f"| {name} | {rt.kind.value} | {rt.vocab_size} | "
            f"{rt.bos_id} / {rt.eos_id} | " + " | ".join(cells) + " |"
        )
    return [*out, ""]


def refused(subjects: dict[str, Subject]) -> list[str]:
    out = ["## Files the runtime does not load", ""]
    out += [
        f"- {name}: {sub.runtime_error}"
        for name, sub in subjects.items()
        if sub.runtime is None
    ]
    out += ["", "## Files the runtime loads and the reference refuses", ""]
    out += [
        f"- {name}: {sub.ref_error}"
        for name, sub in subjects.items()
        if sub.runtime is not None and sub.ref_error
    ]
    return [*out, ""]


def out_table(subjects: dict[str, Subject]) -> list[str]:
    n = len(vocab_texts())
    out = [
        "## Against llama.cpp's expected ids",
        "",
        f"Agreements out of {n} with `ggml-vocab-<vocabulary>.gguf.out` "
        '("-": that side does not load the file).',
        "",
        "| vocabulary | tokenizer | same family because | runtime | reference |",
        "|---|---|---|---|---|",
    ]
    for vocab, members in FAMILIES.items():
        expected = expected_ids(vocab)
        for name, why in members.items():
            sub = subjects[name]
            rt = out_agreement(sub.runtime, expected)
            ref = out_agreement(sub.ref, expected)
            out.append(
                f"| {vocab} | {name} | {why} | {'-' if rt is None else rt} | "
                f"{'-' if ref is None else ref} |"
            )
    return [*out, ""]


def encode_section(subjects: dict[str, Subject]) -> list[str]:
    out = ["## Where the runtime tokenizes differently", ""]
    for name, sub in subjects.items():
        wrong = [m for m in sub.inp + sub.samples if m.aspect in ("encode", "error")]
        if not wrong:
            continue
        out.append(f"### {name}: {len(wrong)} texts")
        out.append("")
        for m in wrong[:4]:
            out.append(
                f"- {show(m.text, 40)}: runtime {show(m.runtime)}, "
                f"reference {show(m.reference)}"
            )
        out.append("")
    return out


def decode_section(subjects: dict[str, Subject]) -> list[str]:
    out = [
        "## Where the runner's streamed pieces spell other text",
        "",
    ]
    for name, sub in subjects.items():
        wrong = [m for m in sub.inp + sub.samples if m.aspect == "decode"]
        if not wrong:
            continue
        out.append(f"### {name}: {len(wrong)} texts")
        out.append("")
        for m in wrong[:3]:
            out.append(
                f"- {show(m.text, 40)}: streamed {show(m.runtime)}, "
                f"reference {show(m.reference)}"
            )
        out.append("")
    return out


def specials_section(subjects: dict[str, Subject]) -> list[str]:
    out = [
        "## Special tokens",
        "",
        "Reference special (added) tokens that the runtime encodes, as text in "
        "a prompt, to the reference's single id (for tiktoken files the "
        "reference's names are those of pytorch-tokenizers' Python tokenizer):",
        "",
    ]
    for name, sub in subjects.items():
        got = special_agreement(sub)
        if got is not None and got[1]:
            out.append(f"- {name}: {got[0]} of {got[1]}{special_examples(sub)}")
    out += ["", "The Llama 3 tiktoken files against Meta's configs:", ""]
    for config, (agree, total, extra) in llama3_specials(subjects).items():
        out.append(
            f"- {config}: {agree} of {total} added tokens get the config's id; "
            f"the runtime's names that config lacks: {', '.join(extra) or 'none'}"
        )
    return [*out, ""]


def special_examples(sub: Subject) -> str:
    assert sub.runtime is not None and sub.ref is not None
    wrong = []
    for text, token_id in sub.ref.special_tokens.items():
        got = sub.runtime.encode(text)
        if got != [token_id]:
            wrong.append(f"{show(text)} runtime {got[:3]}, reference {token_id}")
    return f"; e.g. {'; '.join(wrong[:2])}" if wrong else ""


def glance(subjects: dict[str, Subject]) -> list[str]:
    out = ["## At a glance", ""]
    for name, sub in subjects.items():
        if sub.runtime is None:
            continue
        enc = len({m.text for m in sub.inp + sub.samples if m.aspect != "decode"})
        dec = len({m.text for m in sub.inp + sub.samples if m.aspect == "decode"})
        if sub.ref is None:
            out.append(f"- {name}: loads as {sub.runtime.kind.value}; no reference")
        elif enc or dec:
            total = len(vocab_texts()) + len(SAMPLE_TEXTS)
            out.append(
                f"- {name}: of {total} texts, {enc} get other ids (or fail) and "
                f"{dec} stream other text than the reference's"
            )
    unloadable = [name for name, sub in subjects.items() if sub.runtime is None]
    out.append(f"- the runtime loads none of these: {', '.join(unloadable)}")
    return [*out, ""]


def bos_eos_section(subjects: dict[str, Subject], tmp: Path) -> list[str]:
    out = [
        "## BOS / EOS of a tokenizer.json",
        "",
        "Given a tokenizer.json file, the runtime guesses BOS and EOS from the "
        "names of its added tokens; given a folder with the model's "
        "tokenizer_config.json beside it, it reads them from there.",
        "",
        "| tokenizer | file alone | with its tokenizer_config.json |",
        "|---|---|---|",
    ]
    for name, sub in subjects.items():
        rt = sub.runtime
        if rt is None or rt.kind.value != "huggingface" or rt.path == str(STORIES):
            continue
        configured = with_real_config(name, tmp)
        out.append(
            f"| {name} | {ids_text(rt, rt.bos_id, rt.eos_id)} | "
            f"{'-' if configured is None else configured} |"
        )
    return [*out, ""]


CONFIGS = REAL / "chat_templates"
# A tokenizer.json and the config files published beside it.
REAL_CONFIGS = {
    "ortx-llama2__tokenizer.json": ("ortx-llama2__", ""),
    "ortx-phi-2__tokenizer.json": ("ortx-phi-2__", ""),
    "ortx-phi-3-mini__tokenizer.json": ("ortx-phi-3-mini__", ""),
    "swift-transformers-gpt2__gpt2_tokenizer.json": (
        "swift-transformers-gpt2__",
        "gpt2_",
    ),
    "swift-transformers-llama__llama_tokenizer.json": (
        "swift-transformers-llama__",
        "llama_",
    ),
}


def ids_text(tok: RuntimeTokenizer, bos: int, eos: int) -> str:
    return f"{bos} {show(tok.token_text(bos))} / {eos} {show(tok.token_text(eos))}"


def with_real_config(name: str, tmp: Path) -> str | None:
    if name == "stories260K/tokenizer.json":
        folder = STORIES
    elif name in REAL_CONFIGS:
        prefix, stem = REAL_CONFIGS[name]
        folder = tmp / name
        folder.mkdir(exist_ok=True)
        for member in ("tokenizer_config.json", "special_tokens_map.json"):
            source = CONFIGS / f"{prefix}{stem}{member}"
            if source.exists():
                (folder / member).write_bytes(source.read_bytes())
    else:
        return None
    tok = load(
        str(TOKS / name) if name in REAL_CONFIGS else str(STORIES / "tokenizer.json"),
        config_dir=str(folder),
    )
    return ids_text(tok, tok.bos_id, tok.eos_id)


LLAMA3_CONFIGS = (
    "Llama-3.2-1B-Instruct__tokenizer_config.json",
    "llama3-8B-instruct__tokenizer_config.json",
)


def llama3_specials(
    subjects: dict[str, Subject],
) -> dict[str, tuple[int, int, list[str]]]:
    tok = subjects["EdgeAIApp-Llama3.2-1B__tokenizer.model"].runtime
    assert tok is not None
    found = {}
    for config in LLAMA3_CONFIGS:
        decoder = json.loads((CONFIGS / config).read_text())["added_tokens_decoder"]
        named = {v["content"]: int(k) for k, v in decoder.items()}
        agree = sum(tok.encode(text) == [i] for text, i in named.items())
        extra = sorted(t for t in tok.special_tokens if t not in named)
        found[config] = (agree, len(named), extra)
    return found


def test_llama3_specials_against_meta_configs(subjects: dict[str, Subject]) -> None:
    found = llama3_specials(subjects)
    print("\nLlama 3 specials:", found)
    assert found == MEASURED_LLAMA3


MEASURED_LLAMA3: dict[str, tuple[int, int, list[str]]] = {
    "Llama-3.2-1B-Instruct__tokenizer_config.json": (10, 256, ["<|step_id|>"]),
    "llama3-8B-instruct__tokenizer_config.json": (
        7,
        256,
        ["<|eom_id|>", "<|finetune_right_pad_id|>", "<|python_tag|>", "<|step_id|>"],
    ),
}


# ------------------------------------------------------- the runner as judge


def runner_available() -> None:
    if importlib.util.find_spec("executorch.extension.llm.runner") is None:
        pytest.skip("executorch's LLM runner is not installed (runtime extra)")
    if not (STORIES / "model.pte").exists():
        pytest.skip("stories260K model.pte is not present")


# Runs in a child process: the runner logs to fds 1 and 2 and imports torch.
PICK_SCRIPT = """
import json, os, re, sys, tempfile
from executorch.extension.llm.runner import TextLLMRunner
pte, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
found = {}
for path in paths:
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            TextLLMRunner(pte, path)
            outcome = ""
        except Exception as err:
            outcome = str(err)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        said = log.read().decode("utf-8", "replace")
    loaded = re.findall(r"Loaded (\\w+) tokenizer", said)
    found[path] = [loaded[-1] if loaded else None, outcome]
with open(out, "w") as fh:
    json.dump(found, fh)
"""

RUNNER_NAMES = {
    "json": "huggingface",
    "TikToken": "tiktoken",
    "Sentencepiece": "sentencepiece",
    "BPE": "llama2c",
    "tekken": "tekken",
}


def run_child(script: str, args: list[str], tmp: Path) -> object:
    out = tmp / "result.json"
    done = subprocess.run(
        [sys.executable, "-c", script, *args[:1], str(out), *args[1:]],
        capture_output=True,
        timeout=600,
        cwd=tmp,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    return json.loads(out.read_text())


def pick_cases(tmp: Path, subjects: dict[str, Subject]) -> list[str]:
    empty = tmp / "empty.model"
    empty.write_bytes(b"")
    no_json = tmp / "no_json"
    no_json.mkdir()
    named = tmp / "tekken.json"
    named.write_bytes((STORIES / "tokenizer.json").read_bytes())
    array = tmp / "array_tekken.json"
    array.write_text("[1]")
    return [s.path for s in subjects.values()] + [
        str(p) for p in (empty, no_json, named, array)
    ]


@pytest.mark.runtime
def test_runner_picks_what_probe_runner_predicts(
    subjects: dict[str, Subject], tmp_path: Path
) -> None:
    runner_available()
    paths = pick_cases(tmp_path, subjects)
    found = run_child(PICK_SCRIPT, [str(STORIES / "model.pte"), *paths], tmp_path)
    assert isinstance(found, dict)
    for path in paths:
        loaded, outcome = found[path]
        pick = probe_runner(path)
        if loaded is not None:
            assert not outcome, path
            assert pick.kind is not None and pick.kind.value == RUNNER_NAMES[loaded]
        elif outcome.startswith("Failed to load tokenizer from"):
            assert (pick.kind, pick.aborted) == (None, None), path
        else:
            assert pick.kind is None and pick.aborted == outcome, path


GENERATE_SCRIPT = """
import json, sys
from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
pte, out, prompt, tokenizers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
found = {}
for tok in tokenizers:
    pieces = []
    config = GenerationConfig(
        temperature=0.0, max_new_tokens=256, echo=False, num_bos=1
    )
    TextLLMRunner(pte, tok).generate(prompt, config, pieces.append)
    found[tok] = pieces
with open(out, "w") as fh:
    json.dump(found, fh)
"""


@pytest.mark.runtime
def test_runner_streams_the_pieces_decode_piece_predicts(tmp_path: Path) -> None:
    runner_available()
    prompt = "The little dog"  # a story that ends on BOS (id 1) after 218 ids
    samples = json.loads((STORIES / "samples.json").read_text())
    ids = samples["hf_eager"][prompt]["new_ids"]
    sources = [str(STORIES / "tokenizer.model"), str(STORIES)]
    found = run_child(
        GENERATE_SCRIPT, [str(STORIES / "model.pte"), prompt, *sources], tmp_path
    )
    assert isinstance(found, dict)
    for source in sources:
        tok = load(source)
        prevs = [ids[0], *ids[:-1]]
        want = [tok.decode_piece(p, t) for p, t in zip(prevs, ids, strict=True)]
        assert found[source] == want, source
