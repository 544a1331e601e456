"""Rules by family; importing a family's module registers its rules."""

from __future__ import annotations

import importlib

FAMILY_MODULES = (
    "container",
    "program",
    "tokenizer",
    "special_tokens",
    "template",
    "generation",
)


def load_all() -> None:
    for name in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{name}")
