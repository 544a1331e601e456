"""The benchmark bundles' tokenizer: a 32000-token byte-level BPE, trained here.

Every benchmark bundle, from 1 MB to 1 GB, carries this one tokenizer and
chat template, so the lint does the same tokenizer and template work on
each and only the weights differ. The corpus is generated from a seeded
random stream of pseudo-words with a Zipf-like frequency, so training is
offline and gives the same ``tokenizer.json`` on every machine (about 10 s).

The folder it writes is a Hugging Face model folder as ``etm pack --hf-dir``
reads it: ``tokenizer.json``, ``tokenizer_config.json`` (special tokens and
the ChatML-style template) and ``generation_config.json``.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

VOCAB_SIZE = 32000
CONTEXT = 256
SEED = 1729

BOS = "<s>"
EOS = "</s>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Trained first, so they take ids 0..3 in this order.
SPECIAL_TOKENS = (BOS, EOS, IM_START, IM_END)
# End of turn first: a chat reply ends with it; EOS ends a plain completion.
EOS_IDS = [SPECIAL_TOKENS.index(IM_END), SPECIAL_TOKENS.index(EOS)]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
GENERATION = {
    "do_sample": True,
    "temperature": 0.7,
    "top_p": 0.9,
    "top_k": 40,
    "max_new_tokens": 128,
}

# The sounds pseudo-words are made of: onset, vowel, optional coda.
ONSETS = [
    *("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s"),
    *("t", "v", "w", "z", "br", "cr", "dr", "fr", "gr", "pr", "tr", "bl", "cl"),
    *("fl", "gl", "pl", "sl", "ch", "sh", "th", "st", "sp", "sk", "sm", "sn", "sw"),
]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oa", "oo", "ou", "ie"]
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "rt", "ck"]
LEXICON_SIZE = 60000
CORPUS_LINES = 300000
FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def lexicon(rng: random.Random) -> list[str]:
    """Distinct pseudo-words of one to four syllables, most frequent first."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < LEXICON_SIZE:
        syllables = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
        word = "".join(
            rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def corpus() -> Iterator[str]:
    """ASCII sentences whose word frequencies fall off like natural text's."""
    rng = random.Random(SEED)
    words = lexicon(rng)
    ranks = range(len(words))
    weights = list(itertools.accumulate(1.0 / (rank + 2.7) for rank in ranks))
    for _ in range(CORPUS_LINES):
        chosen = rng.choices(words, cum_weights=weights, k=rng.randint(6, 18))
        yield " ".join(chosen).capitalize() + rng.choice("....!?,;")


def train() -> Tokenizer:
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=True
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 bytes, as GPT-2-style vocabularies have them: any text
        # encodes, the same way in the runtime's loader and the reference.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    # num_bos reaches the runner's prompt only through this post-processor.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A $B:1",
        special_tokens=[(BOS, SPECIAL_TOKENS.index(BOS))],
    )
    _check(tokenizer)
    return tokenizer


def _check(tokenizer: Tokenizer) -> None:
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        size = tokenizer.get_vocab_size()
        raise RuntimeError(f"trained {size} tokens, wanted {VOCAB_SIZE}")
    for index, text in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(text) != index:
            raise RuntimeError(f"{text} did not get id {index}")


def tokenizer_config() -> dict[str, Any]:
    added = {
        str(index): {
            "content": text,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for index, text in enumerate(SPECIAL_TOKENS)
    }
    return {
        "added_tokens_decoder": added,
        "add_bos_token": True,
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "model_max_length": CONTEXT,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def generation_config() -> dict[str, Any]:
    return {
        "bos_token_id": SPECIAL_TOKENS.index(BOS),
        "eos_token_id": EOS_IDS,
        **GENERATION,
    }


def write_folder(folder: Path) -> Path:
    """Train and write the Hugging Face folder; return ``tokenizer.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "tokenizer.json": train().to_str(),
        "tokenizer_config.json": _json(tokenizer_config()),
        "generation_config.json": _json(generation_config()),
    }
    for name, text in texts.items():
        (folder / name).write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return folder / "tokenizer.json"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=True)
