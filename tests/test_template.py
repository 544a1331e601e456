"""The chat-template renderer against transformers, feature by feature, and
against hostile templates.

Expected renderings come from transformers' own ``apply_chat_template`` on a
tokenizer built in memory; the hostile catalogue runs in a child process with
a memory cap, so a guard that fails cannot take the test run down with it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest

from etm_lint.template import (
    STANDARD_CONVERSATIONS,
    UNSET,
    TemplateError,
    TemplateErrorKind,
    compile_template,
    end_of_turn_marker,
    probe_cases,
    render,
    select_template,
    template_takes_tools,
)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2024, 7, 26, 13, 45)
TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief. Ünïcode: 東京"},
    {"role": "user", "content": "Hello there, how are you?", "name": None},
    {"role": "assistant", "content": "Fine <b>thanks</b>", "reasoning": "think"},
    {"role": "user", "content": "Bye"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in °C",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


class _FixedNow(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _FixedNow:
        return cls.fromtimestamp(NOW.timestamp())


@pytest.fixture(autouse=True)
def _pin_transformers_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' strftime_now reads ``datetime.now()`` from its module."""
    from transformers.utils import chat_template_utils

    monkeypatch.setattr(chat_template_utils, "datetime", _FixedNow)


def hf_tokenizer(chat_template: Any, **special: str) -> Any:
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    model = WordLevel({"<unk>": 0}, unk_token="<unk>")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(model),
        chat_template=chat_template,
        **special,
    )


def hf_render(template: str, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    special = kwargs.pop("special", TOKENS)
    tok = hf_tokenizer(template, **special)
    text: str = tok.apply_chat_template(messages, tokenize=False, **kwargs)
    return text


def hf_kind(exc: BaseException) -> TemplateErrorKind:
    """How our renderer names the failure transformers raised."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateErrorKind.SYNTAX
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateErrorKind.UNDEFINED
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return TemplateErrorKind.SANDBOX
    if type(exc) is jinja2.TemplateError:
        return TemplateErrorKind.RAISED
    return TemplateErrorKind.RUNTIME


def assert_same_as_transformers(
    template: str, messages: list[dict[str, Any]], **kwargs: Any
) -> None:
    ours_kwargs = dict(kwargs)
    special = ours_kwargs.pop("special", TOKENS)
    try:
        expected: str | BaseException = hf_render(template, messages, **kwargs)
    except Exception as exc:
        expected = exc
    try:
        got: str | TemplateError = render(
            template, messages, special_tokens=special, now=NOW, **ours_kwargs
        )
    except TemplateError as exc:
        got = exc
    if isinstance(expected, BaseException):
        assert isinstance(got, TemplateError), f"transformers raised {expected!r}"
        assert got.kind == hf_kind(expected), (got, expected)
        if isinstance(expected, jinja2.TemplateSyntaxError):
            assert got.line == expected.lineno
        elif got.kind in (TemplateErrorKind.RAISED, TemplateErrorKind.UNDEFINED):
            assert got.detail == getattr(expected, "message", None)
        elif got.kind is TemplateErrorKind.RUNTIME:
            assert str(expected) in got.detail
    else:
        assert got == expected


# -- the environment, feature by feature --------------------------------------

FEATURES = {
    "tojson": "{{ messages|tojson }}",
    "tojson-indent": "{{ tools|tojson(indent=2) }}",
    "tojson-positional-is-ensure-ascii": "{{ messages|tojson(4) }}",
    "tojson-separators": "{{ tools|tojson(separators=(',', ':')) }}",
    "tojson-sort-keys": "{{ tools|tojson(sort_keys=true) }}",
    "tojson-no-html-escape": "{{ '<b>&'|tojson }}",
    "raise-exception": "{{ raise_exception('bad role ' ~ messages[0].role) }}",
    "strftime-now": "{{ strftime_now('%d %b %Y %H:%M') }}",
    "loopcontrols": (
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{{ m.role }}{% continue %}never{% endfor %}"
    ),
    "generation-tag": (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}"
        "{% endfor %}"
    ),
    "dict-global": "{{ dict(a=1, b=messages|length) }}{{ dict.fromkeys('xy', 0) }}",
    "namespace": (
        "{% set ns = namespace(n=0) %}{% for m in messages %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}{{ ns }}"
    ),
    "trim-and-lstrip-blocks": (
        "  {% for m in messages %}\n    {{ m.role }}\n  {% endfor %}\n"
    ),
    "trailing-newline-dropped": "{{ messages|length }}\n",
    "safe-markup-escapes-concat": "{{ '<a>'|safe + messages[2].content }}",
    "none-values-dropped": "{{ messages[1].keys()|list }}",
    "reasoning-aliases": "{{ messages[2]|tojson }}",
    "tools-and-documents": (
        "{{ tools is none }}|{{ documents is none }}|{{ tools is defined }}"
    ),
    "special-tokens": (
        "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ unk_token }}"
    ),
    "undefined-printed-empty": "[{{ nothing }}][{{ messages[0].missing }}]",
    "undefined-attribute-of-undefined": "{{ messages[0].nope.deeper }}",
    "syntax-error": "line one\n{% if %}",
    "syntax-error-line": "a\nb\n{% endfor %}",
    "unknown-filter": "{{ messages|nope }}",
    "range-limit": "{{ range(10 ** 6)|length }}",
    "immutable-list": "{% set x = [] %}{{ x.append(1) }}",
    "namespace-underscore": "{% set ns = namespace(_x=1) %}",
    "type-error": "{{ messages[0].content + 1 }}",
    "loop-variables": (
        "{% for m in messages %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
        "{{ loop.length }}{{ loop.revindex }}{{ loop.cycle('a', 'b') }}"
        "{{ loop.previtem is defined }}{% endfor %}"
    ),
    "recursive-loop": (
        "{% for x in [[1, [2]], 3] recursive %}"
        "{% if x is iterable %}({{ loop(x) }}){% else %}{{ x }}{% endif %}"
        "{% endfor %}"
    ),
    "macro-and-caller": (
        "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
        "{% call wrap('u') %}{{ messages[1].content }}{% endcall %}"
    ),
    "string-methods": (
        "{{ messages[1].content.split(' ')|join('_')|upper }}"
        "{{ '%s-%d' % ('a', 3) }}{{ '{}:{}'.format('x', 2) }}"
        "{{ messages[1].content.startswith('Hello') }}{{ 'ab'.center(6, '*') }}"
        "{{ 'a\\tb'.expandtabs(4) }}{{ 'x'.zfill(3) }}{{ 'aa'.replace('a', 'bc') }}"
    ),
    "filters": (
        "{{ messages|map(attribute='role')|unique|list }}"
        "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
        "{{ 'x'|center(9) }}{{ 'a b'|replace(' ', '-') }}"
        "{{ messages[1].content|truncate(12) }}{{ messages[1].content|wordwrap(6) }}"
        "{{ 'l1\\nl2'|indent(2) }}{{ [3, 1, 2]|sort|join(',') }}"
        "{{ [[1], [2]]|sum(start=[]) }}{{ range(5)|batch(2)|list }}"
        "{{ range(5)|slice(2)|list }}{{ '%5s|'|format('ab') }}{{ 'a'|string }}"
        "{{ tools[0].function.parameters|dictsort }}{{ [1, 2]|pprint }}"
        "{{ messages[0]|xmlattr }}{{ messages[2].content|striptags|title }}"
    ),
    "concat-and-operators": (
        "{{ messages[0].role ~ ':' ~ messages|length }} {{ 2 ** 10 }} {{ 7 * 6 }}"
        " {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 10 % 3 }} {{ 'a' + 'b' }} {{ [1] + [2] }}"
        " {{ 7 // 2 }} {{ 7 / 2 }} {{ -(3) }}"
    ),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_renders_as_transformers(name: str) -> None:
    assert_same_as_transformers(FEATURES[name], CONVERSATION, tools=TOOLS)


@pytest.mark.parametrize("gen", [False, True])
def test_probe_conversations_render_as_transformers(gen: bool) -> None:
    template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
        "{{ m.tool_calls|tojson if m.tool_calls }}<|end|>\n{% endfor %}"
        "{{ tools|tojson }}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    for case in STANDARD_CONVERSATIONS:
        assert_same_as_transformers(
            template, case.messages, tools=case.tools, add_generation_prompt=gen
        )


@pytest.mark.parametrize(
    ("field", "messages"),
    [
        ("content", [{"role": "user", "content": "Hi"}]),
        (
            "content",
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello, wor  "},
            ],
        ),
        (
            "content",
            [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Sure: "}],
                },
            ],
        ),
        (
            "reasoning_content",
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "x", "reasoning": "Let me"},
            ],
        ),
    ],
)
def test_continue_final_message_as_transformers(
    field: str, messages: list[dict[str, Any]]
) -> None:
    template = (
        "{% for m in messages %}<|{{ m.role }}|>"
        "{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>"
        "{% endif %}{% if m.content is string %}{{ m.content|trim }}"
        "{% else %}{{ m.content[0].text }}{% endif %}<|end|>{% endfor %}"
    )
    flag: bool | str = True if field == "content" else field
    assert_same_as_transformers(template, messages, continue_final_message=flag)


def test_continue_final_message_refuses_a_generation_prompt_too() -> None:
    with pytest.raises(TemplateError) as info:
        render(
            "{{ messages }}",
            [{"role": "user", "content": "x"}],
            add_generation_prompt=True,
            continue_final_message=True,
        )
    assert info.value.kind is TemplateErrorKind.INPUT


def test_unset_leaves_tools_undefined_where_transformers_passes_none() -> None:
    template = "{{ tools is defined }}|{{ documents is defined }}"
    messages = [{"role": "user", "content": "x"}]
    assert hf_render(template, messages) == "True|True"
    assert render(template, messages) == "True|True"
    assert render(template, messages, tools=UNSET, documents=UNSET) == "False|False"


def test_unsafe_attribute_is_an_error_where_transformers_prints_nothing() -> None:
    # A deliberate difference: transformers returns an Undefined that
    # renders as "", we stop at the first forbidden attribute.
    template = "[{{ messages.__class__ }}]"
    messages = [{"role": "user", "content": "x"}]
    assert hf_render(template, messages) == "[]"
    with pytest.raises(TemplateError) as info:
        render(template, messages)
    assert info.value.kind is TemplateErrorKind.SANDBOX
    assert "__class__" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": []},
        {"messages": ["just text"]},
        {"messages": "text"},
        {"tools": [lambda: None]},
        {"documents": ["text"]},
        {"special_tokens": {"bos_token": 1}},
        {"extra": {"messages": []}},
        {"continue_final_message": "missing_field"},
    ],
)
def test_bad_input_is_a_one_line_input_error(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}]}
    kwargs.update(bad)
    messages = kwargs.pop("messages")
    with pytest.raises(TemplateError) as info:
        render("{{ messages[0].content }}", messages, **kwargs)
    assert info.value.kind is TemplateErrorKind.INPUT
    assert "\n" not in str(info.value)


# -- choosing among named templates -------------------------------------------

NAMED = {"default": "D{{ tools }}", "tool_use": "T{{ tools }}", "rag": "R"}


@pytest.mark.parametrize("form", ["dict", "list"])
@pytest.mark.parametrize(
    ("name", "tools"), [(None, None), (None, TOOLS), ("rag", None), ("rag", TOOLS)]
)
def test_select_template_as_transformers(
    form: str, name: str | None, tools: list[dict[str, Any]] | None
) -> None:
    chat_template: Any = NAMED
    if form == "list":
        chat_template = [{"name": k, "template": v} for k, v in NAMED.items()]
    tok = hf_tokenizer(chat_template)
    expected = tok.get_chat_template(name, tools)
    assert select_template(chat_template, name, tools is not None) == expected


def test_select_template_without_default_fails_as_transformers() -> None:
    only = {"rag": "R", "other": "O"}
    with pytest.raises(ValueError):
        hf_tokenizer(only).get_chat_template(None, None)
    with pytest.raises(TemplateError) as info:
        select_template(only, None, False)
    assert info.value.kind is TemplateErrorKind.INPUT
    assert "other, rag" in str(info.value)


def test_select_template_single_and_unknown_names() -> None:
    assert select_template("S", None, True) == "S"
    assert select_template("S", "default", False) == "S"
    for chat_template in ("S", NAMED):
        with pytest.raises(TemplateError):
            select_template(chat_template, "nope", False)
    for broken in ([{"name": "x"}], ["text"], [], 42):
        with pytest.raises(TemplateError):
            select_template(broken, None, False)  # type: ignore[arg-type]


# -- compiling, variables, probes ---------------------------------------------


def test_compile_is_cached_and_tools_are_found() -> None:
    template = "{% for t in tools %}{{ t }}{% endfor %}"
    assert compile_template(template) is compile_template(template)
    assert template_takes_tools(template)
    assert not template_takes_tools("{% set tools = 1 %}{{ tools }}")
    assert not template_takes_tools("{{ messages }}")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateError) as info:
        compile_template("ok\nok\n{% for x in %}")
    assert info.value.kind is TemplateErrorKind.SYNTAX
    assert info.value.line == 3
    assert str(info.value).startswith("chat template, line 3: syntax error:")
    assert info.value.with_source("b.etm:metadata.json").source == (
        "b.etm:metadata.json"
    )


def test_standard_conversations_cover_the_brief() -> None:
    names = [case.name for case in STANDARD_CONVERSATIONS]
    assert len(set(names)) == len(names)
    for base in ("user", "system-user", "multi-turn", "tool-call"):
        assert base in names and f"{base}+gen" in names
    for case in STANDARD_CONVERSATIONS:
        assert case.add_generation_prompt == case.name.endswith("+gen")
        assert (case.tools is not None) == case.needs_tools
        first = case.messages
        first[0]["content"] = "changed"
        assert case.messages[0]["content"] != "changed"
    plain = probe_cases("{{ messages }}")
    assert all(not c.needs_tools for c in plain) and len(plain) == 6
    assert len(probe_cases("{{ tools }}")) == len(STANDARD_CONVERSATIONS)


# -- undefined variables ------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{% for t in builtin_tools %}{% endfor %}",
        "{{ builtin_tools|length }}",
        "{% if '/x' in system_message %}{% endif %}",
        "{% if mode == 'fast' %}{% endif %}",
        "{{ date_string ~ '!' }}",
    ],
)
def test_strict_undefined_refuses_other_uses(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, [{"role": "user", "content": "x"}], strict_undefined=True)
    assert info.value.kind is TemplateErrorKind.UNDEFINED
    assert info.value.variable is not None
    assert info.value.variable in template


def test_strict_undefined_names_the_variable() -> None:
    messages = [{"role": "user", "content": "x"}]
    assert hf_render("[{{ bos_token }}]", messages, special={}) == "[]"
    assert render("[{{ bos_token }}]", messages) == "[]"
    with pytest.raises(TemplateError) as info:
        render("a\n[{{ bos_token }}]", messages, strict_undefined=True)
    assert info.value.kind is TemplateErrorKind.UNDEFINED
    assert info.value.variable == "bos_token"
    assert info.value.line == 2


@pytest.mark.parametrize(
    "template",
    [
        "{% if date_string is defined %}{{ date_string }}{% endif %}",
        "{{ date_string|default('none') }}",
        "{{ messages[0].tool_calls }}{% if messages[0].tool_calls %}x{% endif %}",
        "{{ tools }}{{ documents }}{{ add_generation_prompt }}",
        "{% if foo is not defined %}ok{% endif %}",
        "{% if builtin_tools %}tools{% endif %}{% if not xml_tools %}none{% endif %}",
    ],
)
def test_strict_undefined_allows_tests_defaults_and_missing_keys(
    template: str,
) -> None:
    messages = [{"role": "user", "content": "x"}]
    expected = hf_render(template, messages)
    assert render(template, messages, strict_undefined=True) == expected


# -- end-of-turn marker -------------------------------------------------------


def test_end_of_turn_marker_takes_the_first_marker_and_prefers_known_ones() -> None:
    template = (
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}"
        "{% if m.role == 'assistant' %} <end>|tail<x>{% endif %}\n{% endfor %}"
    )
    assert end_of_turn_marker(template) == " <end>"
    assert end_of_turn_marker(template, known_markers=["<end>|tail"]) == (" <end>|tail")
    assert end_of_turn_marker("{{ messages[0].content }}") is None
    no_marker = "{% for m in messages %}{{ m.content }}\n\n{% endfor %}"
    assert end_of_turn_marker(no_marker) is None


# -- limits -------------------------------------------------------------------


def test_output_limit_is_exact() -> None:
    template = "{% for i in range(10) %}abcd{% endfor %}"
    messages = [{"role": "user", "content": "x"}]
    assert render(template, messages, max_output_chars=40) == "abcd" * 10
    with pytest.raises(TemplateError) as info:
        render(template, messages, max_output_chars=39)
    assert info.value.kind is TemplateErrorKind.OUTPUT_LIMIT


def test_time_limit_stops_a_long_legal_render_near_the_limit() -> None:
    template = (
        "{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% endfor %}{% endfor %}"
    )
    started = time.perf_counter()
    with pytest.raises(TemplateError) as info:
        render(template, [{"role": "user", "content": "x"}], time_limit_s=0.3)
    elapsed = time.perf_counter() - started
    assert info.value.kind is TemplateErrorKind.TIME_LIMIT
    assert 0.3 <= elapsed < 1.3


# -- hostile templates --------------------------------------------------------

TL = TemplateErrorKind.TIME_LIMIT.value
OL = TemplateErrorKind.OUTPUT_LIMIT.value
SB = TemplateErrorKind.SANDBOX.value
RT = TemplateErrorKind.RUNTIME.value
SY = TemplateErrorKind.SYNTAX.value
IN = TemplateErrorKind.INPUT.value
# Cases whose refusal takes real work may meet the time limit first on a
# loaded machine; either ending is right.
OL_OR_TL = f"{OL}|{TL}"
HUGE = "'x' * 999999"  # just under one value's limit, so the next step is refused

HOSTILE: dict[str, tuple[str, str]] = {
    "range-1e12": ("{% for i in range(10**12) %}x{% endfor %}", RT),
    "nested-empty-loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% endfor %}{% endfor %}",
        TL,
    ),
    "nested-loops-over-a-list": (
        "{% set r = range(100000)|list %}{% for a in r %}{% for b in r %}"
        "{% for c in r %}{% endfor %}{% endfor %}{% endfor %}",
        TL,
    ),
    "nested-loops-printing": (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx"
        "{% endfor %}{% endfor %}",
        OL,
    ),
    "loops-inside-a-macro-buffer": (
        "{% macro m() %}{% for i in range(100000) %}{% for j in range(100000) %}"
        "x{% endfor %}{% endfor %}{% endmacro %}{{ m()|length }}",
        TL,
    ),
    "exponential-macro-calls": (
        "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
        "{% endmacro %}{{ f(0) }}",
        TL,
    ),
    "string-times-1e9": ("{{ 'x' * 10**9 }}", OL),
    "list-times-1e9": ("{{ ([1] * 10**9)|length }}", OL),
    "power-tower": ("{{ 10 ** (10 ** 10) }}", OL),
    "repeated-squaring": (
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}",
        OL,
    ),
    "doubling-with-tilde": (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        OL,
    ),
    "doubling-with-plus": (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        OL,
    ),
    "recursive-macro": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", RT),
    "recursive-loop": (
        "{% for i in [[1]] recursive %}{{ loop([[1]]) }}{% endfor %}",
        RT,
    ),
    "center-filter": ("{{ 'x'|center(10**9) }}", OL),
    "center-method": ("{{ 'x'.center(10**9) }}", OL),
    "ljust-method": ("{{ 'x'.ljust(10**9) }}", OL),
    "zfill-method": ("{{ '1'.zfill(10**9) }}", OL),
    "expandtabs-method": ("{{ ('\t' * 1000).expandtabs(10**6) }}", OL),
    "replace-filter": (f"{{% set s = {HUGE} %}}{{{{ s|replace('x', s) }}}}", OL),
    "replace-method": (f"{{% set s = {HUGE} %}}{{{{ s.replace('x', s) }}}}", OL),
    "translate-method": (f"{{{{ ({HUGE}).translate({{120: {HUGE}}}) }}}}", OL),
    "join-separator": (f"{{{{ range(100000)|join({HUGE})|length }}}}", OL_OR_TL),
    "join-method": (f"{{{{ ({HUGE}).join(range(100000)|map('string')) }}}}", OL_OR_TL),
    "map-center-join": (
        "{{ range(100000)|map('center', 999999)|join|length }}",
        OL_OR_TL,
    ),
    "shared-value-printed": (f"{{{{ dict.fromkeys(range(100000), {HUGE}) }}}}", OL),
    "shared-value-tojson": (f"{{{{ dict.fromkeys(range(9999), {HUGE})|tojson }}}}", OL),
    "shared-value-string": (f"{{{{ ([{HUGE}] * 9999)|string|length }}}}", OL),
    "shared-value-concat": (f"{{{{ '' ~ ([{HUGE}] * 9999) }}}}", OL),
    "percent-width": ("{{ '%999999999d' % 1 }}", OL),
    "percent-star-width": ("{{ '%*d' % (999999999, 1) }}", OL),
    "format-width": ("{{ '{:>999999999}'.format(1) }}", OL),
    "format-nested-width": ("{{ '{:>{}}'.format(1, 999999999) }}", OL),
    "format-repeated-field": (f"{{{{ ('{{0}}' * 300000).format({HUGE}) }}}}", OL_OR_TL),
    "format-filter-width": ("{{ '%999999999s'|format('x') }}", OL),
    "indent-filter": ("{{ ('\n' * 999999)|indent(999999)|length }}", OL),
    "wordwrap-filter": (
        f"{{{{ ('a ' * 400000)|wordwrap(1, wrapstring={HUGE})|length }}}}",
        OL,
    ),
    "batch-filter-fill": ("{{ [1]|batch(10**9, 'x')|list|length }}", OL),
    "slice-filter": ("{{ [1]|slice(10**9)|list|length }}", OL),
    "sum-of-lists": ("{{ ([[1] * 999999] * 1000)|sum(start=[])|length }}", OL_OR_TL),
    "lipsum": ("{{ lipsum(10**6) }}", OL),
    "tojson-indent": ("{{ (range(100000)|list)|tojson(indent=999999)|length }}", OL),
    "tojson-separators": (
        f"{{{{ (range(100000)|list)|tojson(separators=({HUGE}, ':'))|length }}}}",
        OL,
    ),
    "dunder-class": ("{{ ''.__class__ }}", SB),
    "subclasses": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", SB),
    "cycler-globals": ("{{ cycler.__init__.__globals__ }}", SB),
    "joiner-globals": ("{{ joiner.__init__.__globals__['os'] }}", SB),
    "lipsum-globals": ("{{ lipsum.__globals__ }}", SB),
    "namespace-dunder": ("{% set ns = namespace(__class__=1) %}", SB),
    "namespace-set-private": ("{% set ns = namespace() %}{% set ns._x = 1 %}", SB),
    "format-attribute": ("{{ '{0.__class__}'.format(1) }}", SB),
    "format-map-attribute": ("{{ '{x.__class__.__mro__}'.format_map({'x': 1}) }}", SB),
    "attr-filter": ("{{ 1|attr('__class__') }}", SB),
    "map-attribute": ("{{ [1]|map(attribute='__class__')|list }}", SB),
    "getitem-dunder": ("{{ ''['__class__'] }}", SB),
    "list-append": ("{% set x = [] %}{{ x.append(1) }}", SB),
    "dict-update": ("{% set x = {} %}{{ x.update({'a': 1}) }}", SB),
    "template-reference-context": ("{{ self._TemplateReference__context }}", SB),
    "generator-frame": ("{{ (range(3)|map('string')).gi_frame }}", SB),
    "float-mro": ("{{ 1.0.__class__.mro() }}", SB),
    "loop-internals": ("{% for i in [1] %}{{ loop._iterator }}{% endfor %}", SB),
    "dict-global-call": ("{{ dict.__call__ }}", SB),
    "function-code": ("{{ raise_exception.__code__ }}", SB),
    "broken-syntax": ("{% for %}", SY),
    "nesting-too-deep": ("{% if true %}" * 200 + "x" + "{% endif %}" * 200, SY),
    "include": ("{% include 'x.jinja' %}", RT),
    "huge-template": ("x" * (2 << 20), IN),
}

HOSTILE_TIME_LIMIT_S = 0.5
# Any case may run up to the time limit plus this much (estimates of a
# refused operation's size, a slow CI machine).
HOSTILE_SLACK_S = 3.0
HOSTILE_MEMORY_CAP = 3 << 30

_HOSTILE_CHILD = """
import json, resource, sys, time
cap, limit = int(sys.argv[1]), float(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from etm_lint.template import TemplateError, render
cases = json.load(sys.stdin)
results = {}
for name, source in cases.items():
    started = time.perf_counter()
    try:
        render(source, [{"role": "user", "content": "hi"}], time_limit_s=limit)
        result = {"kind": None, "message": ""}
    except TemplateError as exc:
        result = {"kind": exc.kind.value, "message": str(exc)}
    except BaseException as exc:
        result = {"kind": "escaped " + type(exc).__name__, "message": repr(exc)}
    result["seconds"] = time.perf_counter() - started
    results[name] = result
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so it
# would report the pytest worker's own peak.
with open("/proc/self/status") as status:
    hwm = next(line for line in status if line.startswith("VmHWM:"))
peak = int(hwm.split()[1]) * 1024
print(json.dumps({"results": results, "peak_rss": peak}))
"""


def run_hostile_catalogue(cases: dict[str, str]) -> dict[str, Any]:
    """Render every case in a fresh interpreter with a memory cap."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _HOSTILE_CHILD,
            str(HOSTILE_MEMORY_CAP),
            str(HOSTILE_TIME_LIMIT_S),
        ],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def hostile_report() -> dict[str, Any]:
    return run_hostile_catalogue({k: v[0] for k, v in HOSTILE.items()})


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_template_ends_in_a_template_error(
    name: str, hostile_report: dict[str, Any]
) -> None:
    result = hostile_report["results"][name]
    assert result["kind"] in HOSTILE[name][1].split("|"), result
    assert result["seconds"] < HOSTILE_TIME_LIMIT_S + HOSTILE_SLACK_S, result
    message = result["message"]
    assert message.startswith("chat template") and "\n" not in message
    assert "Traceback" not in message


def test_hostile_catalogue_stays_small_in_memory(
    hostile_report: dict[str, Any],
) -> None:
    assert hostile_report["peak_rss"] < 1 << 30
