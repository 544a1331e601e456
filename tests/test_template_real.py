"""The chat-template renderer on real files, against real references.

- Every chat template in ``shared/real/chat_templates`` (``.jinja`` files and
  JSON files with a ``chat_template``), rendered for the standard probe
  conversations, equals transformers' ``apply_chat_template`` on a tokenizer
  built in memory with the same special tokens, or fails the same way.
- Every ``simple`` golden of llama.cpp's ``tests/chat`` is reproduced
  exactly; every ``system`` and ``tool_use`` golden is reproduced either
  directly or after the input rewrites llama.cpp applies for templates that
  lack a feature, and the test names which.
- The end-of-turn marker found for a template is one of the stop tokens its
  publisher lists for it.

``python -m tests.test_template_real --write-doc docs/template-parity.md``
regenerates the parity report from the same functions.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etm_lint.template import (
    STANDARD_CONVERSATIONS,
    UNSET,
    ProbeCase,
    TemplateError,
    TemplateErrorKind,
    end_of_turn_marker,
    probe_cases,
    render,
    special_tokens_from_config,
    template_takes_tools,
)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
TEMPLATES_DIR = REAL / "chat_templates"
GOLDENS_DIR = REAL / "peer_tests" / "llama.cpp__tests_chat"
NOW = dt.datetime(2024, 7, 26, 9, 30)
GOLDEN_DAY = dt.datetime(2024, 7, 26)  # the date llama.cpp pinned
FALLBACK_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real test files not found at {REAL}"
)


# -- the real templates -------------------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: each is made once
class RealTemplate:
    id: str
    source: str
    special_tokens: dict[str, str]


def _sibling_config(path: Path) -> dict[str, Any] | None:
    prefix = path.name.split("__")[0]
    sibling = path.with_name(f"{prefix}__tokenizer_config.json")
    if sibling.is_file():
        config: dict[str, Any] = json.loads(sibling.read_text(encoding="utf-8"))
        return config
    return None


def _tokens_for(path: Path, config: dict[str, Any] | None) -> dict[str, str]:
    tokens = special_tokens_from_config(config) if config else {}
    if not tokens:
        sibling = _sibling_config(path)
        tokens = special_tokens_from_config(sibling) if sibling else {}
    return tokens or dict(FALLBACK_TOKENS)


def _from_json(path: Path) -> Iterator[RealTemplate]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return
    if not isinstance(config, dict) or not config.get("chat_template"):
        return
    tokens = _tokens_for(path, config)
    chat_template = config["chat_template"]
    if isinstance(chat_template, str):
        yield RealTemplate(path.name, chat_template, tokens)
        return
    items = (
        chat_template.items()
        if isinstance(chat_template, dict)
        else ((t["name"], t["template"]) for t in chat_template)
    )
    for name, text in items:
        yield RealTemplate(f"{path.name}::{name}", text, tokens)


@functools.cache
def real_templates() -> tuple[RealTemplate, ...]:
    if not TEMPLATES_DIR.is_dir():
        return ()
    found: list[RealTemplate] = []
    for path in sorted(TEMPLATES_DIR.iterdir()):
        if path.suffix == ".jinja":
            source = path.read_text(encoding="utf-8")
            tokens = _tokens_for(path, None)
            found.append(RealTemplate(path.name, source, tokens))
        elif path.suffix == ".json":
            found.extend(_from_json(path))
    return tuple(found)


def cases_for(template: RealTemplate) -> tuple[ProbeCase, ...]:
    try:
        return probe_cases(template.source)
    except TemplateError:
        # It does not compile; transformers must fail the same way.
        return tuple(c for c in STANDARD_CONVERSATIONS if not c.needs_tools)


def real_cases() -> list[tuple[RealTemplate, ProbeCase]]:
    return [(t, c) for t in real_templates() for c in cases_for(t)]


# -- transformers as the reference --------------------------------------------


class _FixedNow(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _FixedNow:
        return cls.fromtimestamp(NOW.timestamp())


@pytest.fixture(autouse=True)
def _pin_transformers_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' strftime_now reads ``datetime.now()`` from its module."""
    from transformers.utils import chat_template_utils

    monkeypatch.setattr(chat_template_utils, "datetime", _FixedNow)


@functools.cache
def hf_tokenizer(template: RealTemplate) -> Any:
    import tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    model = WordLevel({"<unk>": 0}, unk_token="<unk>")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(model),
        chat_template=template.source,
        **template.special_tokens,
    )


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


@dataclass
class Outcome:
    template: RealTemplate
    case: ProbeCase
    expected: str | Exception
    got: str | TemplateError

    @property
    def equal(self) -> bool:
        expected, got = self.expected, self.got
        if isinstance(expected, str) or isinstance(got, str):
            return expected == got
        if got.kind != hf_kind(expected):
            return False
        if got.kind in (TemplateErrorKind.RAISED, TemplateErrorKind.UNDEFINED):
            return got.detail == getattr(expected, "message", None)
        return True

    def explain(self) -> str:
        def show(value: object) -> str:
            return repr(value)[:600]

        return (
            f"{self.template.id} / {self.case.name}\n"
            f"transformers: {show(self.expected)}\nours:         {show(self.got)}"
        )


def compare(template: RealTemplate, case: ProbeCase) -> Outcome:
    tok = hf_tokenizer(template)
    try:
        expected: str | Exception = tok.apply_chat_template(
            case.messages,
            tools=case.tools,
            add_generation_prompt=case.add_generation_prompt,
            tokenize=False,
        )
    except Exception as exc:  # whatever the template does inside transformers
        expected = exc
    try:
        got: str | TemplateError = render(
            template.source,
            case.messages,
            tools=case.tools,
            add_generation_prompt=case.add_generation_prompt,
            special_tokens=tok.special_tokens_map,
            now=NOW,
        )
    except TemplateError as exc:
        got = exc
    return Outcome(template, case, expected, got)


@pytest.mark.parametrize(
    ("template", "case"),
    real_cases(),
    ids=[f"{t.id}-{c.name}" for t, c in real_cases()],
)
def test_real_template_renders_as_transformers(
    template: RealTemplate, case: ProbeCase
) -> None:
    outcome = compare(template, case)
    assert outcome.equal, outcome.explain()


def test_real_templates_summary(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = [compare(t, c) for t, c in real_cases()]
    equal = sum(o.equal for o in outcomes)
    failing = [o for o in outcomes if not isinstance(o.expected, str)]
    lines = [
        f"chat templates: {equal} of {len(outcomes)} renderings equal to "
        f"transformers ({len(real_templates())} templates)",
        f"transformers itself fails {len(failing)} of them (so do we, same kind):",
        *(
            f"  {o.template.id} / {o.case.name}: {_failure(o.expected)}"
            for o in failing
        ),
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert equal == len(outcomes), lines[0]


def _failure(exc: str | Exception) -> str:
    if isinstance(exc, str):
        return "renders"
    message = getattr(exc, "message", None) or str(exc)
    return f"{hf_kind(exc).value}: {' '.join(message.split())[:100]}"


@pytest.mark.parametrize("template", real_templates(), ids=lambda t: t.id)
def test_tools_detection_as_transformers(template: RealTemplate) -> None:
    from transformers.utils.chat_template_utils import _get_template_variables

    expected = "tools" in _get_template_variables(template.source)
    assert template_takes_tools(template.source) == expected


def test_special_tokens_agree_with_special_tokens_map_files() -> None:
    checked = 0
    for path in sorted(TEMPLATES_DIR.glob("*__special_tokens_map.json")):
        prefix = path.name.split("__")[0]
        config_path = path.with_name(f"{prefix}__tokenizer_config.json")
        if not config_path.is_file():
            continue
        config = json.loads(config_path.read_text(encoding="utf-8"))
        listed = special_tokens_from_config(json.loads(path.read_text("utf-8")))
        ours = special_tokens_from_config(config)
        for name in listed.keys() & ours.keys():
            assert ours[name] == listed[name], (path.name, name)
            checked += 1
    assert checked >= 10


# -- many conversations, drawn at random --------------------------------------

FUZZED = (
    "Llama-3.2-1B-Instruct__tokenizer_config.json",
    "Qwen3-1.7B__tokenizer_config.json",
    "gemma3_1b_it__tokenizer_config.json",
    "phi3.5-mini-instruct__tokenizer_config.json",
    "mistral.rs__mistral.json",
    "ortx-smollm3__chat_template.jinja",
)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", " ", "{{ x }}", "<|eot_id|>", "</s>", "\n\n", "é東"]
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for turn in range(draw(st.integers(1, 5))):
        role = "user" if turn % 2 == 0 else "assistant"
        messages.append({"role": role, "content": draw(TEXT)})
    return messages


@pytest.mark.parametrize("name", FUZZED)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(messages=conversations(), gen=st.booleans())
def test_random_conversations_render_as_transformers(
    name: str, messages: list[dict[str, Any]], gen: bool
) -> None:
    template = next(t for t in real_templates() if t.id == name)
    case = ProbeCase("random", gen, False, json.dumps(messages))
    outcome = compare(template, case)
    assert outcome.equal, outcome.explain()


# -- llama.cpp's goldens ------------------------------------------------------


def golden_templates() -> list[str]:
    if not GOLDENS_DIR.is_dir():
        return []
    return sorted(p.stem for p in (GOLDENS_DIR / "templates").glob("*.jinja"))


def _arguments_as_objects(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        for call in message.get("tool_calls", []):
            arguments = call["function"]["arguments"]
            if isinstance(arguments, str):
                call["function"]["arguments"] = json.loads(arguments)


def _tool_calls_as_json_text(messages: list[dict[str, Any]]) -> None:
    _arguments_as_objects(messages)
    for message in messages:
        calls = message.pop("tool_calls", None)
        if calls:
            listed = [
                {
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                    "id": c["id"],
                }
                for c in calls
            ]
            message["content"] = json.dumps({"tool_calls": listed}, indent=2)


def _tool_results_as_user_json(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        if message["role"] == "tool":
            result = {
                "tool": message.pop("name"),
                "content": message["content"],
                "tool_call_id": message.pop("tool_call_id"),
            }
            message["role"] = "user"
            message["content"] = json.dumps({"tool_response": result}, indent=2)


def _system_folded_into_user(messages: list[dict[str, Any]]) -> None:
    if len(messages) > 1 and [m["role"] for m in messages[:2]] == ["system", "user"]:
        system = messages.pop(0)
        messages[0]["content"] = f"{system['content']}\n{messages[0]['content']}"


# The rewrites llama.cpp makes for a template that lacks a feature, named as
# the report shows them.  Message rewrites change the input; the last one
# changes how the template's ``safe`` filter behaves.
MESSAGE_REWRITES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "tool-call arguments passed as objects": _arguments_as_objects,
    "tool calls written as JSON text": _tool_calls_as_json_text,
    "tool results sent as user turns in JSON": _tool_results_as_user_json,
    "system turn folded into the first user turn": _system_folded_into_user,
}
PLAIN_SAFE = "`safe` filter returns plain text (transformers returns Markup)"
REWRITES = (*MESSAGE_REWRITES, PLAIN_SAFE)


def render_golden(name: str, context: str, rewrites: tuple[str, ...] = ()) -> str:
    source = (GOLDENS_DIR / "templates" / f"{name}.jinja").read_text("utf-8")
    ctx = json.loads((GOLDENS_DIR / "contexts" / f"{context}.json").read_text())
    messages = ctx.pop("messages")
    for rewrite in rewrites:
        if rewrite == PLAIN_SAFE:
            source = source.replace("|safe", "|string")
        else:
            MESSAGE_REWRITES[rewrite](messages)
    tokens = {"bos_token": ctx.pop("bos_token"), "eos_token": ctx.pop("eos_token")}
    try:
        return render(
            source,
            messages,
            add_generation_prompt=ctx.pop("add_generation_prompt"),
            tools=ctx.pop("tools", UNSET),
            documents=UNSET,
            special_tokens=tokens,
            extra=ctx,
            now=GOLDEN_DAY,
        )
    except TemplateError as exc:
        return f"ERROR: {exc.detail}"


def golden(name: str, context: str) -> str:
    return (GOLDENS_DIR / "goldens" / f"{name}-{context}.txt").read_text("utf-8")


def explain_golden(name: str, context: str) -> tuple[str, ...] | None:
    """The fewest llama.cpp rewrites after which we match the golden: ()
    when we match it directly, None when nothing explains the difference."""
    expected = golden(name, context)
    for size in range(len(REWRITES) + 1):
        for combo in itertools.combinations(REWRITES, size):
            if render_golden(name, context, combo) == expected:
                return combo
    return None


@pytest.mark.parametrize("name", golden_templates())
def test_llama_cpp_simple_golden_reproduced(name: str) -> None:
    assert render_golden(name, "simple") == golden(name, "simple")


@pytest.mark.parametrize("context", ["system", "tool_use"])
@pytest.mark.parametrize("name", golden_templates())
def test_llama_cpp_golden_differences_are_its_own_rewrites(
    name: str, context: str
) -> None:
    assert explain_golden(name, context) is not None


def test_llama_cpp_has_38_templates() -> None:
    assert len(golden_templates()) == 38


# -- the end-of-turn marker against published stop tokens ---------------------

# A generation config listing a template's stop-token ids, and the real
# tokenizer config of that model family that names those ids.
EOT_REFERENCES = {
    "llama-3-instruct": "Llama-3.2-1B-Instruct",
    "gemma-it": "gemma2_2b_it",
    "phi-3": "phi3.5-mini-instruct",
    "qwen2-instruct": "Qwen2.5-0.5B-Instruct",
    "vicuna": "ortx-llama2",
    "mistral-instruct": "ortx-llama2",
    "llama-2-chat": "ortx-llama2",
    "zephyr": "ortx-llama2",
}


def _vocabulary(config: dict[str, Any]) -> dict[int, str]:
    vocab = {
        int(k): v["content"] for k, v in config.get("added_tokens_decoder", {}).items()
    }
    # Llama 2's </s> is in its base vocabulary; its generation config says
    # which id it is.
    llama2 = REAL / "generation_configs" / "Llama-2-7b-hf__generation_config.json"
    eos = special_tokens_from_config(config).get("eos_token")
    if eos == "</s>" and not vocab:
        vocab[json.loads(llama2.read_text())["eos_token_id"]] = eos
    return vocab


@pytest.mark.parametrize("stops_name", sorted(EOT_REFERENCES))
def test_end_of_turn_marker_is_a_published_stop_token(stops_name: str) -> None:
    stops = json.loads(
        (REAL / "generation_configs" / f"chujiezheng__{stops_name}.json").read_text()
    )
    template_path = TEMPLATES_DIR / (
        "chujiezheng__" + stops["chat_template"].split("/")[-1]
    )
    config_name = f"{EOT_REFERENCES[stops_name]}__tokenizer_config.json"
    config = json.loads((TEMPLATES_DIR / config_name).read_text("utf-8"))
    vocab = _vocabulary(config)
    stop_texts = {vocab[i] for i in stops["stop_token_ids"] if i in vocab}
    assert stop_texts
    marker = end_of_turn_marker(
        template_path.read_text("utf-8"),
        special_tokens_from_config(config),
        known_markers=vocab.values(),
    )
    assert marker is not None
    assert marker.strip() in stop_texts, (marker, stop_texts)


# -- the parity report --------------------------------------------------------


def _load_unit_tests() -> Any:
    path = Path(__file__).with_name("test_template.py")
    spec = importlib.util.spec_from_file_location("etm_template_unit_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _report_real() -> list[str]:
    outcomes = [compare(t, c) for t, c in real_cases()]
    equal = sum(o.equal for o in outcomes)
    lines = [
        "## Real templates against transformers",
        "",
        f"{equal} of {len(outcomes)} renderings equal: "
        f"{len(real_templates())} templates from `shared/real/chat_templates`, "
        "each rendered for the standard probe conversations (the tool-call "
        "ones only where the template reads `tools`), compared with "
        "`apply_chat_template(..., tokenize=False)`.",
        "",
        "Where transformers itself fails, we fail the same way (same kind, "
        "same message for `raise_exception` and undefined values):",
        "",
        "| template | conversations | transformers fails with |",
        "| --- | --- | --- |",
    ]
    by_failure: dict[tuple[str, str], list[str]] = {}
    for o in outcomes:
        if not isinstance(o.expected, str):
            key = (o.template.id, _failure(o.expected))
            by_failure.setdefault(key, []).append(o.case.name)
    for (template_id, failure), names in by_failure.items():
        lines.append(f"| {template_id} | {', '.join(names)} | {failure} |")
    return lines


def _report_goldens() -> list[str]:
    names = golden_templates()
    lines = ["", "## llama.cpp goldens (`tests/chat`)", ""]
    for context in ("simple", "system", "tool_use"):
        reasons = {name: explain_golden(name, context) for name in names}
        direct = sum(r == () for r in reasons.values())
        unexplained = [n for n, r in reasons.items() if r is None]
        lines.append(
            f"- `{context}`: {direct} of {len(names)} reproduced exactly; "
            f"{len(names) - direct - len(unexplained)} more after llama.cpp's "
            f"rewrites; {len(unexplained)} unexplained."
        )
        for name, reason in reasons.items():
            if reason != ():
                told = "; ".join(reason) if reason is not None else "unexplained"
                lines.append(f"  - {name}: {told}")
    lines += [
        "",
        "llama.cpp leaves `tools` and `documents` undefined when absent; "
        "transformers passes None.  The goldens are rendered with `UNSET` "
        "for both, which is how all 38 `simple` goldens match.",
    ]
    return lines


def _report_hostile() -> list[str]:
    unit = _load_unit_tests()
    report = unit.run_hostile_catalogue({k: v[0] for k, v in unit.HOSTILE.items()})
    results = report["results"]
    slowest = max(r["seconds"] for r in results.values())
    kinds = {k.value for k in TemplateErrorKind}
    stopped = sum(r["kind"] in kinds for r in results.values())
    lines = [
        "",
        "## Hostile templates",
        "",
        f"{len(results)} templates, rendered with a "
        f"{unit.HOSTILE_TIME_LIMIT_S} s time limit and the default 1,000,000 "
        f"character output limit, in one process capped at "
        f"{unit.HOSTILE_MEMORY_CAP >> 30} GiB: {stopped} of them ended in a "
        f"TemplateError; the slowest took {slowest:.2f} s; peak resident "
        f"memory {report['peak_rss'] / (1 << 20):.0f} MiB.",
        "",
        "| case | error kind | seconds |",
        "| --- | --- | --- |",
    ]
    for name, result in results.items():
        lines.append(f"| {name} | {result['kind']} | {result['seconds']:.3f} |")
    return lines


def _report_cost() -> list[str]:
    from transformers.utils import chat_template_utils as hf

    work = []
    for template, case in real_cases():
        if isinstance(compare(template, case).got, str):
            tokens = hf_tokenizer(template).special_tokens_map
            work.append((template.source, case, tokens))

    def ours() -> None:
        for source, case, tokens in work:
            render(
                source,
                case.messages,
                tools=case.tools,
                add_generation_prompt=case.add_generation_prompt,
                special_tokens=tokens,
            )

    def hf_full() -> None:
        for source, case, tokens in work:
            tools: Any = case.tools
            hf.render_jinja_template(
                [case.messages],
                tools=tools,
                chat_template=source,
                add_generation_prompt=case.add_generation_prompt,
                **tokens,
            )

    def hf_bare() -> None:
        for source, case, tokens in work:
            hf._compile_jinja_template(source).render(
                messages=case.messages,
                tools=case.tools,
                documents=None,
                add_generation_prompt=case.add_generation_prompt,
                **tokens,
            )

    def best(run: Callable[[], None]) -> float:
        run()
        times = []
        for _ in range(7):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times) / len(work) * 1e6

    bare, full, guarded = best(hf_bare), best(hf_full), best(ours)
    loop_bare, loop_guarded = _loop_cost()
    return [
        "",
        "## Cost of the guards",
        "",
        f"Mean time per render over the {len(work)} renderings above that "
        "succeed, templates already compiled, best of 7 runs:",
        "",
        "| renderer | microseconds per render |",
        "| --- | --- |",
        f"| transformers, compiled template's `render()` alone | {bare:.1f} |",
        f"| transformers, `render_jinja_template` | {full:.1f} |",
        f"| ours, `render()` with input preparation and guards | {guarded:.1f} |",
        "",
        f"A loop-heavy template (`{LOOP_TEMPLATE}`), best of 7 runs: "
        f"transformers {loop_bare:.1f} ms, ours {loop_guarded:.1f} ms "
        f"({loop_guarded / loop_bare:.2f}x).",
    ]


LOOP_TEMPLATE = "{% for i in range(100000) %}{{ i % 7 }},{% endfor %}"


def _loop_cost() -> tuple[float, float]:
    from transformers.utils import chat_template_utils as hf

    messages = [{"role": "user", "content": "x"}]
    compiled = hf._compile_jinja_template(LOOP_TEMPLATE)

    def best(run: Callable[[], object]) -> float:
        run()
        times = []
        for _ in range(7):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times) * 1e3

    bare = best(lambda: compiled.render(messages=messages))
    guarded = best(lambda: render(LOOP_TEMPLATE, messages, time_limit_s=60))
    return bare, guarded


def parity_report() -> str:
    import transformers

    lines = [
        "# Chat-template rendering: parity report",
        "",
        "Generated by `python -m tests.test_template_real --write-doc "
        "docs/template-parity.md` on "
        f"{dt.date.today().isoformat()} with transformers "
        f"{transformers.__version__}, jinja2 {jinja2.__version__}, Python "
        f"{platform.python_version()}.",
        "",
        *_report_real(),
        *_report_goldens(),
        *_report_hostile(),
        *_report_cost(),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--write-doc":
        print("usage: python -m tests.test_template_real --write-doc PATH")
        return 2
    from transformers.utils import chat_template_utils

    chat_template_utils.datetime = _FixedNow  # type: ignore[misc]
    Path(argv[1]).write_text(parity_report(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
