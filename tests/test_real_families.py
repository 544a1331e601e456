"""Real model families end to end: their own files, a real tiny program, the linter.

For each family the corpus (``../shared/real``) has files of, a bundle (or a
loose folder) is built from that family's own tokenizer, tokenizer_config,
template and generation config, with a tiny Llama exported for real at the
family's vocabulary size (``tests/real_export.py``), and linted. No family
borrows another's tokenizer: where the corpus has a family's
``tokenizer_config.json`` but no tokenizer file (Qwen, Gemma, SmolLM3,
Phi-4 mini reasoning), a loose folder gets a ``tokenizer.json`` holding only
the special tokens that config declares, at the ids it declares, and the
rules that would read the missing regular vocabulary are not run
(``SPECIAL_ONLY_SKIPS``).

Expected values do not come from the linter. The program's constants are
checked against the file named as their source and against the runtime's
own tokenizer code; which EOS and end-of-turn problems are true is decided
here from the files, the template rendered by transformers, and the ids the
program holds; the findings asserted per case are the ones
``docs/real-world.md`` lists, and its generated block is checked against
them (``ETM_WRITE_DOCS=1`` rewrites it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etm_lint.lint.engine import Selection, lint_paths
from etm_lint.lint.model import Finding
from etm_lint.lint.target import LintOptions
from tests import real_export
from tests.conftest import REAL, REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.runtime,
    # executorch.runtime announces itself as experimental on import.
    pytest.mark.filterwarnings("ignore:This API is experimental"),
]

DOC = REPO / "docs" / "real-world.md"
BLOCK = "real-families"
DOC_TEST = "test_doc_lists_these_findings"
TOKS = "tokenizers"
CHAT = "chat_templates"
GEN = "generation_configs"
# Rules that read the regular vocabulary, its pre-tokenizer or post-processor,
# or count text tokens: a special-tokens-only tokenizer says nothing true
# about them.
SPECIAL_ONLY_SKIPS = ("ETM305", "ETM306", "ETM408", "ETM410", "ETM507")
# The Llama 3 EOS ids ExecuTorch's own export config documents for --metadata.
EXECUTORCH_LLM_CONFIG = ("extension", "llm", "export", "config", "llm_config.py")
EXECUTORCH_LLAMA3_EOS = (128009, 128001)


@dataclass(frozen=True)
class Case:
    """One bundle (or loose folder) of one family and what the linter says.

    ``tokenizer`` is a file of the corpus, or None for a special-tokens-only
    folder built from ``hf["tokenizer_config.json"]``. ``hf`` maps the names
    of a Hugging Face model folder to corpus files; ``config`` is the model's
    ``config.json`` where the corpus has it (never packed; a source of EOS
    ids and of the vocabulary). ``eos_from`` and ``bos_from`` name where
    each constant comes from (``derived_eos``, ``runtime_ids``); None means
    the program has no such method. ``expect`` is one (code, fragment of the
    message) per finding, in the linter's order.
    """

    name: str
    family: str
    vocab: int
    tokenizer: str | None
    hf: Mapping[str, str]
    bos: int | None
    eos: tuple[int, ...] | None
    eos_from: str
    expect: tuple[tuple[str, str], ...]
    bos_from: str = "the tokenizer"
    config: str | None = None
    # "the tokenizer", or a corpus JSON file whose vocab_size it is.
    vocab_from: str = "the tokenizer"
    skips: tuple[str, ...] = ()

    @property
    def folder_mode(self) -> bool:
        return self.tokenizer is None

    def constants(self) -> dict[str, Any]:
        eos = list(self.eos) if self.eos is not None else None
        return real_export.llm_constants(self.vocab, self.bos, eos)


LLAMA2_HF = {
    "tokenizer_config.json": f"{CHAT}/ortx-llama2__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/ortx-llama2__special_tokens_map.json",
    "generation_config.json": f"{GEN}/Llama-2-7b-hf__generation_config.json",
}
LLAMA2_SWIFT_HF = {
    "tokenizer_config.json": (
        f"{CHAT}/swift-transformers-llama__llama_tokenizer_config.json"
    ),
    "generation_config.json": f"{GEN}/Llama-2-7b-hf__generation_config.json",
}
LLAMA32_HF = {
    "tokenizer_config.json": f"{CHAT}/Llama-3.2-1B-Instruct__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/Llama-3.2-1B-Instruct__special_tokens_map.json",
}
LLAMA32_CONFIG = f"{CHAT}/Llama-3.2-1B-Instruct__config.json"
LLAMA3_8B_HF = {
    "tokenizer_config.json": f"{CHAT}/llama3-8B-instruct__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/llama3-8B-instruct__special_tokens_map.json",
}
LLAMA3_8B_CONFIG = f"{CHAT}/llama3-8B-instruct__config.json"
LLAMA3_TIKTOKEN = f"{TOKS}/EdgeAIApp-Llama3.2-1B__tokenizer.model"
PHI3_HF = {
    "tokenizer_config.json": f"{CHAT}/ortx-phi-3-mini__tokenizer_config.json",
    "generation_config.json": f"{GEN}/phi-3-mini-keyformer__generation_config.json",
}
PHI35_HF = {
    "tokenizer_config.json": f"{CHAT}/phi3.5-mini-instruct__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/phi3.5-mini-instruct__special_tokens_map.json",
}
PHI3_TOKENIZER = f"{TOKS}/ortx-phi-3-mini__tokenizer.json"
# Phi-4 mini reasoning as ExecuTorch's MediaTek example vendors it.
PHI4_HF = {
    "tokenizer_config.json": f"{CHAT}/phi-4-mini-reasoning__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/phi-4-mini-reasoning__special_tokens_map.json",
}
PHI4_CONFIG = f"{CHAT}/phi-4-mini-reasoning__config.json"
GEMMA2_HF = {
    "tokenizer_config.json": f"{CHAT}/gemma2_2b_it__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/gemma2_2b_it__special_tokens_map.json",
    "generation_config.json": f"{GEN}/torchtune-gemma2__generation_config_gemma.json",
}
GEMMA2_CONFIG = f"{CHAT}/gemma2_2b_it__config.json"
GEMMA3_HF = {
    "tokenizer_config.json": f"{CHAT}/gemma3_1b_it__tokenizer_config.json",
    "special_tokens_map.json": f"{CHAT}/gemma3_1b_it__special_tokens_map.json",
}
GEMMA3_CONFIG = f"{CHAT}/gemma3_1b_it__config.json"

# Findings every bundle of a tokenizer brings, whatever its program.
SP_DECODE = ("ETM305", "the decode of '  two  spaces")
TIKTOKEN_ENCODE = ("ETM305", "the encode of '  two  spaces")
SPACES_LOST = ("ETM305", "runtime 'Helloworld', reference 'Hello world'")
LOOSE_BOS = ("ETM408", "alone, the tokenizer file gives BOS 0 ('<unk>')")
LOOSE_EOS = ("ETM408", "alone, the tokenizer file gives EOS 0 ('<unk>')")
BASE_MODEL = ("ETM505", "no chat_template")
DOUBLE_BOS = ("ETM404", "starts the prompt with '<bos>' and num_bos is 1")
NO_SYSTEM = ("ETM508", "System role not supported")


def qwen(
    model: str,
    eos: int,
    bos: int,
    expect: tuple[tuple[str, str], ...],
    kind: str = "",
) -> Case:
    return Case(
        name=f"{model.lower()}{kind}",
        family="Qwen",
        vocab=151936,
        tokenizer=None,
        hf={"tokenizer_config.json": f"{CHAT}/{model}__tokenizer_config.json"},
        config=f"{CHAT}/{model}__config.json",
        bos=bos,
        eos=(eos,),
        eos_from="tokenizer_config.json",
        vocab_from=f"{CHAT}/{model}__config.json",
        expect=expect,
    )


def tokenizer_only(
    name: str,
    family: str,
    vocab: int,
    tokenizer: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> Case:
    """A tokenizer with no config in the corpus: nothing names an EOS, so the
    program has neither get_bos_id nor get_eos_ids, as export_llama leaves
    them without --metadata, and the runner falls back on the tokenizer's."""
    return Case(
        name=name,
        family=family,
        vocab=vocab,
        tokenizer=f"{TOKS}/{tokenizer}",
        hf={},
        bos=None,
        eos=None,
        eos_from="none",
        bos_from="none",
        expect=(("ETM211", "no get_eos_ids method"), *extra, BASE_MODEL),
    )


CASES = (
    # -- Llama 2 ---------------------------------------------------------------
    Case(
        name="llama-2/sentencepiece",
        family="Llama 2",
        vocab=32000,
        tokenizer=f"{TOKS}/llama2.c__tokenizer.model",
        hf=LLAMA2_HF,
        bos=1,
        eos=(2,),
        eos_from="generation_config.json",
        expect=(SP_DECODE, BASE_MODEL),
    ),
    Case(
        name="llama-2/tokenizer.json",
        family="Llama 2",
        vocab=32000,
        tokenizer=f"{TOKS}/swift-transformers-llama__llama_tokenizer.json",
        hf=LLAMA2_SWIFT_HF,
        bos=1,
        eos=(2,),
        eos_from="generation_config.json",
        expect=(SPACES_LOST, LOOSE_BOS, LOOSE_EOS, BASE_MODEL),
    ),
    Case(
        name="llama-2/tokenizer.json (onnxruntime-extensions copy)",
        family="Llama 2",
        vocab=32000,
        tokenizer=f"{TOKS}/ortx-llama2__tokenizer.json",
        hf=LLAMA2_HF,
        bos=1,
        eos=(2,),
        eos_from="generation_config.json",
        expect=(
            ("ETM305", "Hugging Face tokenizers refuses it: Merges text file invalid"),
            LOOSE_BOS,
            LOOSE_EOS,
            BASE_MODEL,
        ),
    ),
    # -- Llama 3.x -------------------------------------------------------------
    Case(
        name="llama-3.2-1b-instruct/eos-from-config.json",
        family="Llama 3.x",
        vocab=128256,
        tokenizer=LLAMA3_TIKTOKEN,
        hf=LLAMA32_HF,
        config=LLAMA32_CONFIG,
        bos=128000,
        eos=(128001,),
        eos_from="config.json",
        expect=(
            TIKTOKEN_ENCODE,
            ("ETM401", "EOS '<|eot_id|>' is id 128009, but the runner stops only on"),
            ("ETM402", "ends a turn with '<|eot_id|>' (id 128009)"),
            ("ETM403", "get_eos_ids holds 128001 ('<|end_of_text|>')"),
        ),
    ),
    Case(
        name="llama-3.2-1b-instruct/eos-from-tokenizer_config",
        family="Llama 3.x",
        vocab=128256,
        tokenizer=LLAMA3_TIKTOKEN,
        hf=LLAMA32_HF,
        config=LLAMA32_CONFIG,
        bos=128000,
        eos=(128009,),
        eos_from="tokenizer_config.json",
        expect=(TIKTOKEN_ENCODE,),
    ),
    Case(
        name="llama-3.2-1b-instruct/no-get_eos_ids",
        family="Llama 3.x",
        vocab=128256,
        tokenizer=LLAMA3_TIKTOKEN,
        hf=LLAMA32_HF,
        config=LLAMA32_CONFIG,
        bos=128000,
        eos=None,
        eos_from="none",
        expect=(
            ("ETM211", "no get_eos_ids method"),
            TIKTOKEN_ENCODE,
            ("ETM401", "EOS '<|eot_id|>' is id 128009, but the runner stops only on"),
            ("ETM402", "ends a turn with '<|eot_id|>' (id 128009)"),
        ),
    ),
    Case(
        name="llama-3-8b-instruct/eos-from-tokenizer_config",
        family="Llama 3.x",
        vocab=128256,
        tokenizer=LLAMA3_TIKTOKEN,
        hf=LLAMA3_8B_HF,
        config=LLAMA3_8B_CONFIG,
        bos=128000,
        eos=(128001,),
        eos_from="tokenizer_config.json",
        expect=(
            TIKTOKEN_ENCODE,
            ("ETM402", "ends a turn with '<|eot_id|>' (id 128009)"),
            ("ETM506", "same with and without add_generation_prompt"),
        ),
    ),
    Case(
        name="llama-3-8b-instruct/executorch-metadata",
        family="Llama 3.x",
        vocab=128256,
        tokenizer=LLAMA3_TIKTOKEN,
        hf=LLAMA3_8B_HF,
        config=LLAMA3_8B_CONFIG,
        bos=128000,
        eos=EXECUTORCH_LLAMA3_EOS,
        eos_from="executorch",
        expect=(
            TIKTOKEN_ENCODE,
            ("ETM403", "get_eos_ids holds 128009 ('<|eot_id|>')"),
            ("ETM506", "same with and without add_generation_prompt"),
        ),
    ),
    # -- Phi-3 -----------------------------------------------------------------
    Case(
        name="phi-3-mini/eos-from-tokenizer_config",
        family="Phi-3 and Phi-4",
        vocab=32011,
        tokenizer=PHI3_TOKENIZER,
        hf=PHI3_HF,
        bos=1,
        eos=(32000,),
        eos_from="tokenizer_config.json",
        expect=(
            SPACES_LOST,
            ("ETM401", "EOS '<|assistant|>' is id 32001"),
            ("ETM401", "EOS '<|end|>' is id 32007"),
            ("ETM402", "ends a turn with '<|end|>' (id 32007)"),
            LOOSE_BOS,
            LOOSE_EOS,
        ),
    ),
    Case(
        name="phi-3-mini/eos-from-generation_config",
        family="Phi-3 and Phi-4",
        vocab=32011,
        tokenizer=PHI3_TOKENIZER,
        hf=PHI3_HF,
        bos=1,
        eos=(32000, 32001, 32007),
        eos_from="generation_config.json",
        expect=(SPACES_LOST, LOOSE_BOS, LOOSE_EOS),
    ),
    Case(
        name="phi-3.5-mini-instruct/eos-from-config.json",
        family="Phi-3 and Phi-4",
        vocab=32011,
        tokenizer=PHI3_TOKENIZER,
        hf=PHI35_HF,
        config=f"{CHAT}/phi3.5-mini-instruct__config.json",
        bos=1,
        eos=(32000,),
        eos_from="config.json",
        expect=(
            SPACES_LOST,
            ("ETM402", "ends a turn with '<|end|>' (id 32007)"),
            LOOSE_BOS,
            LOOSE_EOS,
        ),
    ),
    Case(
        name="phi-4-mini-reasoning (special tokens only)",
        family="Phi-3 and Phi-4",
        vocab=200064,
        tokenizer=None,
        hf=PHI4_HF,
        config=PHI4_CONFIG,
        bos=199999,
        eos=(199999,),
        eos_from="tokenizer_config.json",
        vocab_from=PHI4_CONFIG,
        expect=(
            ("ETM303", "the tokenizer uses 200029; 35 padding rows"),
            ("ETM402", "ends a turn with '<|end|>' (id 200020)"),
        ),
    ),
    # -- Qwen 2, 2.5 and 3 (special tokens only) --------------------------------
    qwen(
        "Qwen2-1.5B-Instruct",
        eos=151645,
        bos=151645,
        expect=(("ETM303", "the tokenizer uses 151646; 290 padding rows"),),
    ),
    qwen(
        "Qwen2.5-0.5B-Instruct",
        eos=151645,
        bos=151645,
        expect=(("ETM303", "the tokenizer uses 151665; 271 padding rows"),),
    ),
    qwen(
        "Qwen2.5-3B",
        eos=151643,
        bos=151643,
        expect=(
            ("ETM303", "the tokenizer uses 151665; 271 padding rows"),
            ("ETM402", "ends a turn with '<|im_end|>' (id 151645)"),
        ),
        kind=" (base)",
    ),
    qwen(
        "Qwen3-1.7B",
        eos=151645,
        bos=151645,
        expect=(("ETM303", "the tokenizer uses 151669; 267 padding rows"),),
    ),
    # -- Gemma (special tokens only) ---------------------------------------------
    Case(
        name="gemma-2b-it (Gemma 1)",
        family="Gemma",
        vocab=256000,
        tokenizer=None,
        hf={
            "tokenizer_config.json": f"{CHAT}/ortx-gemma__tokenizer_config.json",
            "special_tokens_map.json": f"{CHAT}/ortx-gemma__special_tokens_map.json",
        },
        bos=2,
        eos=(1,),
        eos_from="tokenizer_config.json",
        vocab_from=GEMMA2_CONFIG,
        # Its config declares added tokens up to id 107 only: where its
        # vocabulary ends is not in the corpus.
        skips=("ETM302", "ETM303"),
        expect=(
            ("ETM402", "ends a turn with '<end_of_turn>' (id 107)"),
            DOUBLE_BOS,
            NO_SYSTEM,
        ),
    ),
    Case(
        name="gemma-2-2b-it/eos-from-tokenizer_config",
        family="Gemma",
        vocab=256000,
        tokenizer=None,
        hf=GEMMA2_HF,
        config=GEMMA2_CONFIG,
        bos=2,
        eos=(1,),
        eos_from="tokenizer_config.json",
        vocab_from=GEMMA2_CONFIG,
        expect=(
            ("ETM401", "EOS '<end_of_turn>' is id 107"),
            ("ETM402", "ends a turn with '<end_of_turn>' (id 107)"),
            DOUBLE_BOS,
            NO_SYSTEM,
        ),
    ),
    Case(
        name="gemma-2-2b-it/eos-from-generation_config",
        family="Gemma",
        vocab=256000,
        tokenizer=None,
        hf=GEMMA2_HF,
        config=GEMMA2_CONFIG,
        bos=2,
        eos=(1, 107),
        eos_from="generation_config.json",
        vocab_from=GEMMA2_CONFIG,
        expect=(DOUBLE_BOS, NO_SYSTEM),
    ),
    Case(
        name="gemma-3-1b-it/eos-from-tokenizer_config",
        family="Gemma",
        vocab=262144,
        tokenizer=None,
        hf=GEMMA3_HF,
        config=GEMMA3_CONFIG,
        bos=2,
        eos=(1,),
        eos_from="tokenizer_config.json",
        vocab_from=GEMMA3_CONFIG,
        expect=(
            ("ETM302", "tokenizer has 262145 token ids, program scores 262144"),
            ("ETM402", "ends a turn with '<end_of_turn>' (id 106)"),
            DOUBLE_BOS,
        ),
    ),
    Case(
        name="gemma-3-1b-it/eos-from-config.json",
        family="Gemma",
        vocab=262144,
        tokenizer=None,
        hf=GEMMA3_HF,
        config=GEMMA3_CONFIG,
        bos=2,
        eos=(1, 106),
        eos_from="config.json",
        vocab_from=GEMMA3_CONFIG,
        expect=(
            ("ETM302", "tokenizer has 262145 token ids, program scores 262144"),
            ("ETM403", "get_eos_ids holds 106 ('<end_of_turn>')"),
            DOUBLE_BOS,
        ),
    ),
    # -- SmolLM ----------------------------------------------------------------
    tokenizer_only(
        "smollm2 (tokenizer only)", "SmolLM", 49152, "litert-lm-smollm__tokenizer.json"
    ),
    Case(
        name="smollm3-3b (special tokens only)",
        family="SmolLM",
        vocab=128256,
        tokenizer=None,
        hf={
            "tokenizer_config.json": f"{CHAT}/ortx-smollm3__tokenizer_config.json",
            "chat_template.jinja": f"{CHAT}/ortx-smollm3__chat_template.jinja",
        },
        bos=128000,
        eos=(128012,),
        eos_from="tokenizer_config.json",
        vocab_from=f"{GEN}/executorch_params/executorch__smollm3_3b_config.json",
        expect=(("ETM503", "reads undefined 'system_message'"),),
    ),
    # -- Falcon ----------------------------------------------------------------
    Case(
        name="falcon",
        family="Falcon",
        vocab=65024,
        tokenizer=f"{TOKS}/ortx-falcon__tokenizer.json",
        hf={
            "tokenizer_config.json": f"{CHAT}/falcon-40b__tokenizer_config.json",
            "generation_config.json": f"{GEN}/falcon-180B-chat__generation_config.json",
        },
        bos=11,
        eos=(11,),
        eos_from="generation_config.json",
        bos_from="generation_config.json",
        expect=(
            ("ETM301", "loads it as tiktoken with no regular tokens"),
            BASE_MODEL,
        ),
    ),
    # -- OLMo ------------------------------------------------------------------
    tokenizer_only(
        "olmo-1 (tokenizer only)",
        "OLMo",
        50280,
        "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
        # One of the vocabularies the runtime and Hugging Face tokenize apart
        # (docs/tokenizer-agreement.md).
        extra=(("ETM305", "the encode of 'Führer, café, naïve"),),
    ),
    tokenizer_only(
        "olmo-2 (tokenizer only)", "OLMo", 100278, "olmo__allenai_dolma2.json"
    ),
)
FAMILIES = tuple(dict.fromkeys(c.family for c in CASES))


def case_id(case: Case) -> str:
    return case.name


# -- what the files say, read without the linter -----------------------------


def corpus_json(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REAL / path).read_text(encoding="utf-8"))
    return loaded


def tokenizer_config(case: Case) -> dict[str, Any]:
    path = case.hf.get("tokenizer_config.json")
    return corpus_json(path) if path else {}


def token_text(value: Any) -> str | None:
    """A token as configs write it: a string, or a serialized AddedToken."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def added_tokens(case: Case) -> dict[str, int]:
    """Special tokens by id: the config's ``added_tokens_decoder``; a legacy
    config without one (Llama 2's) leaves them to the tokenizer file."""
    decoder = tokenizer_config(case).get("added_tokens_decoder") or {}
    if decoder or case.tokenizer is None:
        return {token["content"]: int(key) for key, token in decoder.items()}
    path = REAL / case.tokenizer
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        return {t["content"]: int(t["id"]) for t in document["added_tokens"]}
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    ids = (processor.bos_id(), processor.eos_id(), processor.unk_id())
    return {processor.id_to_piece(i): i for i in ids if i >= 0}


def eos_ids_in(path: str) -> tuple[int, ...]:
    value: Any = corpus_json(path)["eos_token_id"]
    return tuple(value) if isinstance(value, list) else (int(value),)


def config_eos(case: Case) -> str | None:
    return token_text(tokenizer_config(case).get("eos_token"))


def executorch_llama3_eos() -> tuple[int, ...]:
    """The get_eos_ids of the --metadata example in ExecuTorch's own export
    config (the installed package's source)."""
    import importlib.util

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("executorch is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    source = package.joinpath(*EXECUTORCH_LLM_CONFIG)
    found = re.search(r'get_eos_ids\\\\?":\s*\[([\d, ]+)\]', source.read_text())
    assert found, f"{source}: no get_eos_ids example"
    return tuple(int(v) for v in found.group(1).split(","))


def derived_eos(case: Case) -> tuple[int, ...] | None:
    """The EOS ids the named source gives, read from the corpus file."""
    if case.eos_from == "none":
        return None
    if case.eos_from == "generation_config.json":
        return eos_ids_in(case.hf["generation_config.json"])
    if case.eos_from == "config.json":
        assert case.config is not None
        return eos_ids_in(case.config)
    if case.eos_from == "executorch":
        return executorch_llama3_eos()
    assert case.eos_from == "tokenizer_config.json", case.eos_from
    text = config_eos(case)
    assert text is not None
    return (added_tokens(case)[text],)


def chat_template(case: Case) -> str | None:
    if "chat_template.jinja" in case.hf:
        return (REAL / case.hf["chat_template.jinja"]).read_text(encoding="utf-8")
    template = tokenizer_config(case).get("chat_template")
    return template if isinstance(template, str) else None


ANSWER = "ANSWER-TEXT"
ANSWERED = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": ANSWER},
]
USER = [{"role": "user", "content": "Hi"}]
SYSTEM_USER = [{"role": "system", "content": "Be brief."}, *USER]


def special_tokens(case: Case) -> dict[str, Any]:
    """The template variables transformers fills from the config's tokens."""
    config = tokenizer_config(case)
    return {
        f"{key}_token": token_text(config.get(f"{key}_token"))
        for key in ("bos", "eos", "pad", "unk")
    }


def transformers_render(case: Case, messages: list[dict[str, str]], **kw: Any) -> str:
    """The prompt transformers renders with the family's template and tokens."""
    from transformers.utils.chat_template_utils import render_jinja_template

    variables: dict[str, Any] = {**special_tokens(case), **kw}
    result: Any = render_jinja_template(
        conversations=[messages], chat_template=chat_template(case), **variables
    )
    return str(result[0][0])


def turn_marker(case: Case) -> str | None:
    """The first declared special token after an assistant's answer, as
    transformers renders the family's template."""
    if chat_template(case) is None:
        return None
    tail = transformers_render(case, ANSWERED).split(ANSWER, 1)[1]
    found = [(tail.find(t), -len(t), t) for t in added_tokens(case) if t in tail]
    return min(found)[2] if found else None


def native_ids(path: Path) -> tuple[int, int]:
    """BOS and EOS as pytorch-tokenizers' C++ loaders (the runner's) give them,
    trying them in the runner's order."""
    from pytorch_tokenizers import pytorch_tokenizers_cpp as native

    loaders = (native.HFTokenizer, native.Tiktoken, native.SPTokenizer)
    for loader in loaders:
        tokenizer = loader()
        try:
            tokenizer.load(str(path))
        except Exception:
            continue
        return int(tokenizer.bos_tok()), int(tokenizer.eos_tok())
    raise AssertionError(f"{path}: no loader of the runner takes it")


def loose_files(case: Case, work: Path) -> Path:
    """The family's tokenizer as an app loading its loose files sees it: a
    tokenizer.json in a folder with its configs, or the file alone."""
    folder = hf_folder(case, work / "loose")
    if case.folder_mode:
        special_only_tokenizer(
            folder / "tokenizer_config.json", folder / "tokenizer.json"
        )
        return folder
    source = REAL / str(case.tokenizer)
    if source.suffix == ".json" and case.hf:
        shutil.copyfile(source, folder / "tokenizer.json")
        return folder
    return source


def derived_bos(case: Case, work: Path) -> int | None:
    if case.bos_from == "none":
        return None
    if case.bos_from == "generation_config.json":
        return int(corpus_json(case.hf["generation_config.json"])["bos_token_id"])
    assert case.bos_from == "the tokenizer", case.bos_from
    return native_ids(loose_files(case, work))[0]


def runner_stops(case: Case, work: Path) -> set[int]:
    """The ids the runner stops on: get_eos_ids, else the tokenizer's EOS."""
    if case.eos is not None:
        return set(case.eos)
    return {native_ids(loose_files(case, work))[1]}


def declared_eos(case: Case) -> list[str]:
    """The EOS tokens a bundle packed from these files declares: the config's
    eos_token, then generation_config's ids by their config names."""
    names = {v: k for k, v in added_tokens(case).items()}
    texts = [t for t in [config_eos(case)] if t]
    if "generation_config.json" in case.hf:
        for token in eos_ids_in(case.hf["generation_config.json"]):
            if token in names and names[token] not in texts:
                texts.append(names[token])
    return texts


# -- building what is linted ---------------------------------------------------


def special_only_tokenizer(config: Path, out: Path) -> None:
    """A tokenizer.json holding only ``config``'s declared added tokens.

    Each added token keeps its declared id and flags. The runtime refuses a
    tokenizer that cannot encode text, so the 256 byte-level symbols stand in
    for the regular vocabulary at the lowest ids the config leaves free: they
    borrow nothing, and the rules that would read them are not run.
    """
    from tokenizers import pre_tokenizers

    declared = json.loads(config.read_text(encoding="utf-8"))["added_tokens_decoder"]
    added = [
        {
            "id": int(key),
            "content": token["content"],
            "single_word": token.get("single_word", False),
            "lstrip": token.get("lstrip", False),
            "rstrip": token.get("rstrip", False),
            "normalized": token.get("normalized", False),
            "special": token.get("special", True),
        }
        for key, token in declared.items()
    ]
    taken = {token["id"] for token in added}
    free = (index for index in range(len(taken) + 256) if index not in taken)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: next(free) for symbol in alphabet}
    level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    }
    model: dict[str, Any] = {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [],
    }
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": sorted(added, key=lambda token: token["id"]),
        "normalizer": None,
        "pre_tokenizer": level,
        "post_processor": None,
        "decoder": level,
        "model": model,
    }
    out.write_text(json.dumps(document, indent=1), encoding="utf-8")


def slug(case: Case) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", case.name).strip("-")


def hf_folder(case: Case, folder: Path) -> Path:
    """The family's Hugging Face files under the names a model folder uses."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in case.hf.items():
        shutil.copyfile(REAL / source, folder / name)
    return folder


def build_target(case: Case, program: Path, work: Path) -> Path:
    """The bundle (or loose folder) that is linted for ``case``."""
    from etm_lint.format.pack import pack_bundle

    hf = hf_folder(case, work / slug(case))
    if case.folder_mode:
        special_only_tokenizer(hf / "tokenizer_config.json", hf / "tokenizer.json")
        shutil.copyfile(program, hf / "model.pte")
        return hf
    bundle = work / f"{slug(case)}.etm"
    pack_bundle(
        bundle,
        program=program,
        tokenizer=REAL / str(case.tokenizer),
        hf_dir=hf,
        name=case.name,
    )
    return bundle


def skipped(case: Case) -> tuple[str, ...]:
    return (SPECIAL_ONLY_SKIPS if case.folder_mode else ()) + case.skips


def programs_for(root: Path, vocab: int) -> dict[str, Path]:
    """Every case's program of one vocabulary, from one export."""
    variants = {c.name: c.constants() for c in CASES if c.vocab == vocab}
    return real_export.programs(root, vocab, variants)


# -- session-wide results ------------------------------------------------------


@pytest.fixture(scope="session")
def export_root(
    real: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path:
    """Shared by parallel workers: the folder above each worker's own."""
    pytest.importorskip("executorch.exir")
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        base = base.parent
    root = real_export.cache_root(base)
    if worker and DOC_TEST in {item.name for item in request.session.items}:
        export_my_share(root, worker)
    return root


def export_my_share(root: Path, worker: str) -> None:
    """In a full parallel run every vocabulary is needed: each worker exports
    its share first, so that no worker waits on another's export."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw"))
    for vocab in sorted({c.vocab for c in CASES})[index::count]:
        programs_for(root, vocab)


@dataclass(frozen=True)
class Linted:
    target: Path
    program: Path
    findings: list[Finding]


@pytest.fixture(scope="session")
def linted(
    export_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Case], Linted]:
    """Each case built and linted once per session, on first use."""
    work = tmp_path_factory.mktemp("real-families")
    done: dict[str, Linted] = {}

    def lint(case: Case) -> Linted:
        if case.name not in done:
            program = programs_for(export_root, case.vocab)[case.name]
            target = build_target(case, program, work)
            selection = Selection(ignore=skipped(case))
            findings = lint_paths([str(target)], selection, LintOptions())
            done[case.name] = Linted(target, program, findings)
        return done[case.name]

    return lint


def pairs(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.message) for f in findings]


# -- the truth about each case, decided without the linter ---------------------


def strict_undefined(case: Case) -> str | None:
    """The first undefined name a lone user turn makes the template read:
    transformers' own environment, with strict undefined values, given the
    variables transformers passes."""
    import jinja2
    from transformers.utils.chat_template_utils import _compile_jinja_template

    source = str(chat_template(case))
    lenient = _compile_jinja_template(source).environment
    template = lenient.overlay(undefined=jinja2.StrictUndefined).from_string(source)
    tokens = special_tokens(case)
    for generation in (False, True):
        try:
            template.render(
                messages=USER,
                tools=None,
                documents=None,
                add_generation_prompt=generation,
                **tokens,
            )
        except jinja2.UndefinedError as err:
            return str(err)
    return None


def refuses_system(case: Case) -> bool:
    from jinja2 import TemplateError

    try:
        transformers_render(case, SYSTEM_USER, add_generation_prompt=True)
    except TemplateError:
        return True
    return False


def tokenizer_ids(case: Case) -> int:
    """How many ids the case's tokenizer has: the highest declared id plus one
    for a special-tokens-only folder, else the runtime's count for the file
    alone (or, where no loader of the runtime takes it, Hugging Face's)."""
    if case.folder_mode:
        return max(added_tokens(case).values()) + 1
    from pytorch_tokenizers import pytorch_tokenizers_cpp as native

    path = REAL / str(case.tokenizer)
    for loader in (native.HFTokenizer, native.Tiktoken, native.SPTokenizer):
        tokenizer = loader()
        try:
            tokenizer.load(str(path))
        except Exception:
            continue
        return int(tokenizer.vocab_size())
    from tokenizers import Tokenizer

    return int(Tokenizer.from_file(str(path)).get_vocab_size())


def runtime_refuses(case: Case) -> bool:
    """No loader of the runner takes the tokenizer file."""
    if case.folder_mode:
        return False
    try:
        native_ids(REAL / str(case.tokenizer))
    except AssertionError:
        return True
    return False


def truths(case: Case, work: Path) -> dict[str, bool]:
    """Per rule with a reference here: is its problem true of this case?"""
    ids = added_tokens(case)
    stops = runner_stops(case, work) if not runtime_refuses(case) else set()
    marker = turn_marker(case)
    config = tokenizer_config(case)
    template = chat_template(case)
    prompt = ""
    if template is not None:
        prompt = transformers_render(case, USER, add_generation_prompt=True)
    bos = token_text(config.get("bos_token"))
    declared = {ids[t] for t in declared_eos(case)}
    width = tokenizer_ids(case)
    found = {
        "ETM211": case.eos is None,
        "ETM301": runtime_refuses(case),
        "ETM302": width > case.vocab,
        "ETM303": width < case.vocab,
        "ETM401": bool(stops) and not declared <= stops,
        "ETM402": bool(stops) and marker is not None and ids[marker] not in stops,
        "ETM403": case.eos is not None and bool(set(case.eos) - declared),
        "ETM404": bool(config.get("add_bos_token") and bos and prompt.startswith(bos)),
        "ETM503": template is not None and strict_undefined(case) is not None,
        "ETM505": template is None,
        "ETM508": template is not None and refuses_system(case),
    }
    if template is not None:
        without = transformers_render(case, USER, add_generation_prompt=False)
        found["ETM506"] = without == prompt
    return {code: true for code, true in found.items() if code not in skipped(case)}


# -- the tests -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_constants_come_from_the_named_file(
    case: Case, real: Path, tmp_path: Path
) -> None:
    assert case.eos == derived_eos(case)
    assert case.bos == derived_bos(case, tmp_path)
    if case.vocab_from == "the tokenizer":
        assert case.vocab == tokenizer_ids(case)
    else:
        assert case.vocab == corpus_json(case.vocab_from)["vocab_size"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_findings(case: Case, linted: Callable[[Case], Linted]) -> None:
    found = pairs(linted(case).findings)
    assert [code for code, _ in found] == [code for code, _ in case.expect], found
    for (code, message), (_, fragment) in zip(found, case.expect, strict=True):
        assert fragment in message, (code, message)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_findings_are_exactly_the_true_problems(
    case: Case, linted: Callable[[Case], Linted], tmp_path: Path
) -> None:
    """For every rule decided here without the linter, it reports the problem
    when, and only when, the problem is true of the files and the program."""
    codes = {f.code for f in linted(case).findings}
    expected = truths(case, tmp_path)
    assert {code: code in codes for code in expected} == expected


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_eos_messages_name_the_true_ids(
    case: Case, linted: Callable[[Case], Linted], tmp_path: Path
) -> None:
    findings = linted(case).findings
    ids = added_tokens(case)
    stops = runner_stops(case, tmp_path) if not runtime_refuses(case) else set()
    missing = [t for t in declared_eos(case) if stops and ids[t] not in stops]
    said = [f.message for f in findings if f.code == "ETM401"]
    assert len(said) == len(missing)
    for text, message in zip(missing, said, strict=True):
        assert f"{text!r} is id {ids[text]}" in message
    marker = turn_marker(case)
    for finding in (f for f in findings if f.code == "ETM402"):
        assert marker is not None
        assert f"{marker!r} (id {ids[marker]})" in finding.message


def test_executorch_documents_the_llama3_eos_ids() -> None:
    assert executorch_llama3_eos() == EXECUTORCH_LLAMA3_EOS


def test_executorch_params_files_name_no_eos_ids(real: Path) -> None:
    """ExecuTorch's own model params carry no EOS list; granite's eos_idx is
    the only EOS field among them."""
    folder = real / GEN / "executorch_params"
    named = {
        path.name: sorted(key for key in json.loads(path.read_text()) if "eos" in key)
        for path in sorted(folder.glob("*.json"))
    }
    assert {name: keys for name, keys in named.items() if keys} == {
        "executorch__granite_2b_config.json": ["eos_idx"]
    }


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_constants_are_what_export_llama_writes(case: Case) -> None:
    """ExecuTorch's export_llama, given the same settings and --metadata,
    makes the same constant methods; without --metadata, no BOS or EOS."""
    lib = pytest.importorskip("executorch.examples.models.llama.export_llama_lib")
    settings = (True, False, True, real_export.CONTEXT, real_export.CONTEXT)
    extra: dict[str, Any] = {}
    if case.bos is not None:
        extra["get_bos_id"] = case.bos
    if case.eos is not None:
        extra["get_eos_ids"] = list(case.eos)
    made = lib._load_llama_model_metadata(
        *settings, real_export.LAYERS, case.vocab, json.dumps(extra)
    )
    assert made == case.constants()
    bare = lib._load_llama_model_metadata(*settings, real_export.LAYERS, case.vocab)
    assert bare == real_export.llm_constants(case.vocab, None, None)


@pytest.mark.parametrize("vocab", sorted({c.vocab for c in CASES}))
def test_programs_are_what_the_cases_say(vocab: int, export_root: Path) -> None:
    """ExecuTorch loads each program, runs its constant methods, and its
    forward scores ``vocab`` ids."""
    import torch
    from executorch.runtime import Runtime

    built = programs_for(export_root, vocab)
    runtime = Runtime.get()
    for case in (c for c in CASES if c.vocab == vocab):
        program = runtime.load_program(str(built[case.name]))
        constants = {
            name: list(program.load_method(name).execute([]))
            for name in program.method_names
            if name != "forward"
        }
        eos = list(case.eos) if case.eos is not None else None
        assert constants.get("get_eos_ids") == eos
        bos = [case.bos] if case.bos is not None else None
        assert constants.get("get_bos_id") == bos
        assert constants["get_vocab_size"] == [vocab]
    ids = torch.tensor([[1, 2, 3]], dtype=torch.long)
    logits = program.load_method("forward").execute([ids, torch.arange(3)])[0]
    assert tuple(logits.shape) == (1, 3, vocab)


def finding(case_name: str, code: str, linted: Callable[[Case], Linted]) -> Finding:
    case = next(c for c in CASES if c.name == case_name)
    return next(f for f in linted(case).findings if f.code == code)


def test_an_unloadable_tokenizer_is_reported_by_its_member_and_reason(
    linted: Callable[[Case], Linted],
) -> None:
    said = finding("falcon", "ETM301", linted).message
    assert "Punctuation" in said
    assert os.environ["ETM_CACHE_DIR"] not in said


def test_a_refused_reference_is_reported_without_cache_paths(
    linted: Callable[[Case], Linted],
) -> None:
    name = "llama-2/tokenizer.json (onnxruntime-extensions copy)"
    said = finding(name, "ETM305", linted).message
    assert os.environ["ETM_CACHE_DIR"] not in said


@pytest.mark.parametrize(
    ("name", "token", "special"),
    [
        ("litert-lm-smollm__tokenizer.json", "<|endoftext|>", True),
        (
            "olmo__allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
            "<|endoftext|>",
            True,
        ),
        ("olmo__allenai_dolma2.json", "!", False),
    ],
)
def test_a_tokenizer_alone_gives_the_runtime_this_eos(
    name: str, token: str, special: bool, real: Path
) -> None:
    """Where a program has no get_eos_ids, the runner stops on the EOS its
    tokenizer loader resolves: the text end for SmolLM2 and OLMo 1, a
    regular token for OLMo 2."""
    from tokenizers import Tokenizer

    path = REAL / TOKS / name
    bos, eos = native_ids(path)
    reference = Tokenizer.from_file(str(path))
    assert (reference.id_to_token(bos), reference.id_to_token(eos)) == (token, token)
    assert (eos in reference.get_added_tokens_decoder()) == special


@pytest.mark.runtime
def test_falcon_in_a_bundle_folder_loads_as_a_tiktoken_that_encodes_nothing(
    real: Path, tmp_path: Path
) -> None:
    """The runner's loaders, in its order, on Falcon's tokenizer.json in a
    folder (as a bundle hands it over): the Hugging Face loader refuses it,
    and the tiktoken loader takes the folder as an empty file, keeping only
    its 256 special tokens, so every character becomes id 0."""
    from pytorch_tokenizers import pytorch_tokenizers_cpp as native

    shutil.copyfile(
        REAL / TOKS / "ortx-falcon__tokenizer.json", tmp_path / "tokenizer.json"
    )
    with pytest.raises(RuntimeError):
        native.HFTokenizer().load(str(tmp_path))
    fallback = native.Tiktoken()
    fallback.load(str(tmp_path))
    assert fallback.vocab_size() == 256
    assert fallback.encode("hello", 0, 0) == [0, 0, 0, 0, 0]


@pytest.mark.runtime
def test_gemma3s_extra_token_is_past_the_programs_embedding(
    export_root: Path,
) -> None:
    """Gemma 3's tokenizer config declares id 262144; ExecuTorch refuses to
    run the family's program on it, and runs it on the last id it scores."""
    import torch
    from executorch.runtime import Runtime

    case = next(c for c in CASES if c.vocab == 262144)
    declared = added_tokens(case)
    assert declared["<image_soft_token>"] == case.vocab
    program = Runtime.get().load_program(
        str(programs_for(export_root, case.vocab)[case.name])
    )
    forward = program.load_method("forward")
    last = forward.execute([torch.tensor([[case.vocab - 1]]), torch.arange(1)])
    assert tuple(last[0].shape) == (1, 1, case.vocab)
    with pytest.raises(RuntimeError):
        forward.execute([torch.tensor([[case.vocab]]), torch.arange(1)])


@pytest.mark.xfail(
    strict=True,
    reason="no rule reports a runtime EOS that is a regular token: OLMo 2's "
    "tokenizer.json alone resolves BOS and EOS to id 0, '!'",
)
def test_a_regular_token_as_eos_is_reported(
    linted: Callable[[Case], Linted],
) -> None:
    olmo2 = next(c for c in CASES if c.name.startswith("olmo-2"))
    loud = [
        f
        for f in linted(olmo2).findings
        if f.code.startswith("ETM4") and f.severity.rank >= 1 and "'!'" in f.message
    ]
    assert loud


# -- docs/real-world.md ------------------------------------------------------------


def stable(message: str) -> str:
    """A message without this run's temporary paths."""
    cache = os.environ.get("ETM_CACHE_DIR")
    if cache:
        message = message.replace(cache, "<cache>")
    return re.sub(r"/\S*/real-families\d*/", "<folder>/", message)


def ids_text(ids: tuple[int, ...] | None) -> str:
    return "none" if ids is None else "[" + ", ".join(map(str, ids)) + "]"


def named(case: Case, token: str | None) -> str:
    if token is None:
        return "none"
    token_id = added_tokens(case).get(token)
    return f"`{token}` ({token_id})" if token_id is not None else f"`{token}`"


def file_facts(case: Case) -> list[str]:
    """What the family's own files say about ending, read without the linter."""
    facts = []
    if "tokenizer_config.json" in case.hf:
        facts.append(f"tokenizer_config.json EOS {named(case, config_eos(case))}")
    if "generation_config.json" in case.hf:
        ids = eos_ids_in(case.hf["generation_config.json"])
        facts.append(f"generation_config.json eos_token_id {ids_text(ids)}")
    if case.config is not None:
        facts.append(f"config.json eos_token_id {ids_text(eos_ids_in(case.config))}")
    if chat_template(case) is None:
        facts.append("no chat template")
    else:
        facts.append(f"the template ends a turn with {named(case, turn_marker(case))}")
    return facts


def made_of(case: Case) -> str:
    tokenizer = (
        f"tokenizer `{case.tokenizer}`"
        if case.tokenizer
        else "a special-tokens-only `tokenizer.json` (see above)"
    )
    files = [f"`{name}` = `{path}`" for name, path in case.hf.items()]
    return "; ".join([tokenizer, *files])


SOURCES = {
    "none": "nothing names it",
    "executorch": "the `--metadata` example in ExecuTorch's "
    "`extension/llm/export/config/llm_config.py`",
}


def program_text(case: Case) -> str:
    def source(name: str) -> str:
        return SOURCES.get(name, name)

    bos = "none" if case.bos is None else f"{case.bos} ({source(case.bos_from)})"
    eos = "none"
    if case.eos is not None:
        eos = f"{ids_text(case.eos)} ({source(case.eos_from)})"
    vocab = (
        case.vocab_from
        if case.vocab_from == "the tokenizer"
        else (f"`{case.vocab_from}`")
    )
    return f"vocabulary {case.vocab} ({vocab}); get_bos_id {bos}; get_eos_ids {eos}"


def case_section(case: Case, findings: list[Finding]) -> Iterator[str]:
    mode = "loose folder" if case.folder_mode else "bundle"
    yield f"#### `{case.name}` ({mode})"
    yield ""
    yield f"- made of: {made_of(case)}"
    yield f"- program: {program_text(case)}"
    if skipped(case):
        yield f"- rules not run: {', '.join(skipped(case))}"
    yield f"- the files say: {'; '.join(file_facts(case))}"
    if not findings:
        yield "- findings: none"
    else:
        yield "- findings:"
        for f in findings:
            yield f"  - {f.code} {f.severity.value}: {stable(f.message)}"
    yield ""


def render_block(results: Mapping[str, list[Finding]]) -> str:
    lines: list[str] = []
    for family in FAMILIES:
        lines += [f"### {family}", ""]
        for case in (c for c in CASES if c.family == family):
            lines += case_section(case, results[case.name])
    return "\n".join(lines).rstrip("\n") + "\n"


def test_doc_lists_these_findings(linted: Callable[[Case], Linted]) -> None:
    block = render_block({c.name: linted(c).findings for c in CASES})
    real_export.check_doc_block(DOC, BLOCK, block)
