"""ETM5xx: the chat template, rendered as Hugging Face renders it.

Every probe runs in the bounded sandbox of ``etm_lint.template``; results are
cached on the target so the template, BOS/EOS and generation families share
one rendering of each conversation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from etm_lint.errors import EtmError
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.target import Target
from etm_lint.template import (
    ProbeCase,
    TemplateError,
    TemplateErrorKind,
    compile_template,
    end_of_turn_marker,
    probe_cases,
    render,
    select_template,
)

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
METADATA = "metadata.json"
WHERE = "/chat_template"
ORDINARY = ("user", "user+gen", "multi-turn", "multi-turn+gen")
LIMITS = (TemplateErrorKind.TIME_LIMIT, TemplateErrorKind.OUTPUT_LIMIT)


@functools.cache
def _probe(target: Target) -> _Probe:
    return _Probe(target)


class _Probe:
    """The template of one target and its renderings, each made once."""

    def __init__(self, target: Target):
        self.template: str | None = None
        self.selection_error: str | None = None
        self.rendered: dict[str, str | TemplateError] = {}
        self.strict: dict[str, str | TemplateError] = {}
        self.variables: dict[str, str] = {}
        self.cases: dict[str, ProbeCase] = {}
        self.limit_hit: TemplateError | None = None
        chat_template = target.chat_template
        if chat_template is None:
            return
        try:
            template = select_template(chat_template)
            compile_template(template)
        except TemplateError as err:
            self.selection_error = str(err.with_source("chat_template"))
            return
        self.template = template
        from etm_lint.tokenizer import token_variables

        self.variables = token_variables(target.special_tokens)
        self.cases = {c.name: c for c in probe_cases(template)}
        for name, case in self.cases.items():
            result = self._render(case, strict=False)
            self.rendered[name] = result
            if isinstance(result, TemplateError) and result.kind in LIMITS:
                # One conversation that runs out of time or room is enough to
                # report; rendering the others would spend the limit again
                # for each of them.
                self.limit_hit = result
                break

    def _render(self, case: ProbeCase, strict: bool) -> str | TemplateError:
        assert self.template is not None
        try:
            return render(
                self.template,
                case.messages,
                add_generation_prompt=case.add_generation_prompt,
                tools=case.tools,
                special_tokens=self.variables,
                strict_undefined=strict,
            ).__str__()
        except TemplateError as err:
            return err.with_source("chat_template")

    def strict_render(self, name: str) -> str | TemplateError:
        if name not in self.strict:
            self.strict[name] = self._render(self.cases[name], strict=True)
        return self.strict[name]


def probe_prompt(target: Target, case: str = "user+gen") -> str | None:
    """The rendered prompt of one standard conversation, if it renders."""
    result = _probe(target).rendered.get(case)
    return result if isinstance(result, str) else None


def turn_marker(target: Target) -> str | None:
    """The token that ends an assistant turn in this bundle's template."""
    probe = _probe(target)
    if probe.template is None or probe.limit_hit or target.tokenizer is None:
        return None
    try:
        text = end_of_turn_marker(
            probe.template, probe.variables, target.tokenizer.special_tokens
        )
    except EtmError:
        return None
    if not text or not text.strip():
        return None
    return text.split()[-1]


@rule("ETM501", "template-syntax", ERROR, "the chat template does not parse")
def template_syntax(target: Target) -> Iterator[Issue]:
    """The chat template is not valid Jinja2, or named templates lack a
    `default`.

    Why: no conversation can be rendered; every chat request fails.

    Fix: correct the template at the line named; check it with
    `etm render --template FILE --context FILE.json` before packing.

    Failing: `{% for m in messages %}{{ m.content }}` (no `endfor`).
    Passing: `{% for m in messages %}{{ m.content }}{% endfor %}`.
    """
    probe = _probe(target)
    if probe.selection_error:
        yield Issue(probe.selection_error, METADATA, WHERE)


@rule("ETM502", "template-fails", ERROR, "the template fails on an ordinary chat")
def template_fails(target: Target) -> Iterator[Issue]:
    """The template raises (its own `raise_exception`, or a render error) on
    an ordinary conversation: one user turn, or user/assistant/user, with or
    without `add_generation_prompt`.

    Why: the app cannot build a prompt for the most common request.

    Fix: make the template accept plain alternating user and assistant turns.

    Failing: a template that raises unless the first message is a system one.
    Passing: one that renders a lone user turn.
    """
    for name, result in _probe(target).rendered.items():
        if name not in ORDINARY or not isinstance(result, TemplateError):
            continue
        if result.kind in (TemplateErrorKind.SYNTAX, *LIMITS):
            continue
        yield Issue(f"conversation '{name}': {result}", METADATA, WHERE)


@rule("ETM503", "template-undefined", WARNING, "the template reads an undefined value")
def template_undefined(target: Target) -> Iterator[Issue]:
    """The template uses a variable or attribute the conversation does not
    define, which Hugging Face renders as empty text.

    Why: usually a typo or a variable the app was expected to pass (a date,
    a flag); the prompt silently loses that part.

    Fix: pass the value, guard it with `is defined`, or remove it.

    Failing: `{{ sytem_message }}`.
    Passing: `{% if system_message is defined %}{{ system_message }}{% endif %}`.
    """
    probe = _probe(target)
    for name in ORDINARY:
        if not isinstance(probe.rendered.get(name), str):
            continue
        result = probe.strict_render(name)
        if (
            isinstance(result, TemplateError)
            and result.kind is TemplateErrorKind.UNDEFINED
        ):
            what = result.variable or result.detail
            yield Issue(
                f"conversation '{name}' reads undefined {what!r}", METADATA, WHERE
            )
            return


@rule(
    "ETM504",
    "template-limits",
    ERROR,
    "the template hits a time, size or sandbox limit",
)
def template_limits(target: Target) -> Iterator[Issue]:
    """Rendering a standard conversation runs past the time limit, builds
    more text than the output limit, or reaches outside the sandbox.

    Why: a template is a program; one that loops, balloons or pokes at Python
    internals is broken or hostile, and would hang or compromise the app.

    Fix: remove the loop or the attribute access named in the message.

    Failing: `{% for i in range(10**9) %}x{% endfor %}`, `{{ ''.__class__ }}`.
    Passing: a template that loops over `messages` only.
    """
    for name, result in _probe(target).rendered.items():
        if isinstance(result, TemplateError) and (
            result.kind in LIMITS or result.kind is TemplateErrorKind.SANDBOX
        ):
            yield Issue(f"conversation '{name}': {result}", METADATA, WHERE)
            return


@rule("ETM505", "no-chat-template", INFO, "no chat template: a base model")
def no_chat_template(target: Target) -> Iterator[Issue]:
    """The bundle has no chat template.

    Why: valid for a base model, which takes raw text; an app cannot send it
    chat messages, and the template checks have nothing to check.

    Fix: nothing for a base model; an instruct model needs its template
    (`etm pack --hf-dir` reads it from `tokenizer_config.json` or
    `chat_template.jinja`).

    Reported: a TinyStories model.
    Passing: a bundle with `chat_template`.
    """
    if target.valid_metadata is not None and target.chat_template is None:
        yield Issue("no chat_template: prompts are raw text (a base model)", METADATA)


@rule(
    "ETM506",
    "generation-prompt-ignored",
    WARNING,
    "add_generation_prompt changes nothing",
)
def generation_prompt_ignored(target: Target) -> Iterator[Issue]:
    """Rendering with `add_generation_prompt` gives the same text as without.

    Why: the prompt ends after the user's turn, so the model may continue the
    user's text instead of answering as the assistant.

    Fix: end the template with
    `{% if add_generation_prompt %}<assistant header>{% endif %}`.

    Failing: a template that never reads `add_generation_prompt`.
    Passing: ChatML's `<|im_start|>assistant\\n` after the last turn.
    """
    probe = _probe(target)
    plain, with_prompt = probe.rendered.get("user"), probe.rendered.get("user+gen")
    if isinstance(plain, str) and plain == with_prompt:
        yield Issue(
            "the prompt is the same with and without add_generation_prompt",
            METADATA,
            WHERE,
        )


@rule("ETM507", "probe-exceeds-context", ERROR, "a short chat does not fit the context")
def probe_exceeds_context(target: Target) -> Iterator[Issue]:
    """The prompt for a short three-turn conversation, tokenized by the
    runtime's tokenizer, does not fit the program's context.

    Why: every real conversation is longer; the runner refuses prompts past
    `get_max_seq_len`.

    Fix: shorten the template's fixed text (long default system prompts), or
    export with a longer context.

    Failing: a 2,000-token default system prompt with a 1,024-token context.
    Passing: a probe of 40 tokens in 2,048.
    """
    from etm_lint.lint.rules.generation import context_length

    prompt = probe_prompt(target, "multi-turn+gen")
    tokenizer, context = target.tokenizer, context_length(target)
    if prompt is None or tokenizer is None or context is None:
        return
    try:
        count = len(tokenizer.encode(prompt))
    except EtmError as err:
        yield Issue(f"the runtime cannot encode a three-turn probe: {err}", METADATA)
        return
    if count >= context:
        yield Issue(
            f"a three-turn probe is {count} tokens; the context holds {context}",
            METADATA,
            WHERE,
        )


@rule("ETM508", "system-role-rejected", INFO, "the template refuses a system message")
def system_role_rejected(target: Target) -> Iterator[Issue]:
    """The template raises on a conversation that starts with a system
    message, while it renders one without.

    Why: deliberate in some families (Gemma, Mistral's early templates); apps
    must then fold system text into the first user turn.

    Fix: nothing if deliberate; tell app developers.

    Reported: Gemma's "System role not supported".
    Passing: a ChatML template.
    """
    rendered = _probe(target).rendered
    system = rendered.get("system-user+gen")
    if (
        isinstance(rendered.get("user+gen"), str)
        and isinstance(system, TemplateError)
        and system.kind is TemplateErrorKind.RAISED
    ):
        yield Issue(f"system messages are refused: {system.detail}", METADATA, WHERE)


@rule("ETM509", "tool-call-fails", WARNING, "the template fails on a tool call")
def tool_call_fails(target: Target) -> Iterator[Issue]:
    """The template reads `tools` but raises on a standard tool-calling
    conversation (a tool list, an assistant tool call, a tool result).

    Why: function calling breaks in every app that uses it.

    Fix: render tool calls and `tool` role messages as the model expects.

    Failing: a template that reads `tools` and raises on a `tool` message.
    Passing: Llama 3.1's or Qwen 2.5's template.
    """
    for name, result in _probe(target).rendered.items():
        if (
            name.startswith("tool-call")
            and isinstance(result, TemplateError)
            and result.kind not in (TemplateErrorKind.SYNTAX, *LIMITS)
        ):
            yield Issue(f"conversation '{name}': {result}", METADATA, WHERE)
            return
