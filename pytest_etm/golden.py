"""Golden-prompt files (``*.golden.yaml``): cases collected as test items.

A file holds cases, each run once per ``--etm`` bundle it applies to::

    bundles: [stories260K]          # optional: glob patterns on the bundle's
                                    # file name or metadata name (default: all)
    defaults:                       # optional: merged into every case
      max_new_tokens: 64
    cases:
      - name: once-upon-a-time
        prompt: Once upon a time    # raw text; or messages: [{role, content}]
        max_new_tokens: 256         # also temperature (0, greedy, by default),
                                    # stop, num_bos, num_eos,
                                    # add_generation_prompt (messages)
        expect:
          text: ", there was a ..."   # the exact text after the prompt
          token_ids: [432, 383, ...]  # the exact ids, the stop id included
          contains: [Lily]
          not_contains: ["<|im_end|>"]
          regex: "girl named \\\\w+"
          eos_within: 256             # stops on an EOS id within N tokens
          stop_reason: length         # eos, stop_string or length
        speed:
          min_decode_tokens_per_s: 50
          max_time_to_first_token_s: 0.5

Settings a case leaves out take the bundle's (``num_bos``, ``num_eos``,
``generation``), except the temperature: greedy unless the case says so.
``text`` and ``token_ids`` are snapshots: ``--etm-update-goldens`` rewrites
them from what the model produced (in place, keeping the file's comments and
layout); the other expectations are the author's and are only checked. A case
with no expectation at all, or with an empty ``text:`` or ``token_ids:``,
fails until it is recorded; the update records both snapshots for the first
and the empty ones for the second.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from etm_lint.errors import EtmError
from pytest_etm.fixtures import Speed, measure, pool, speed_of

if TYPE_CHECKING:
    from etm_lint.runtime.bundle import BundleModel
    from etm_lint.runtime.runner import Generation

SUFFIXES = (".golden.yaml", ".golden.yml")
MAX_FILE_BYTES = 4 * 1024 * 1024
# Values (scalars, lists, mappings) a file may hold with aliases expanded.
MAX_VALUES = 1_000_000
SETTING_KEYS = (
    "max_new_tokens",
    "temperature",
    "stop",
    "num_bos",
    "num_eos",
    "add_generation_prompt",
)
EXPECT_KEYS = (
    "text",
    "token_ids",
    "contains",
    "not_contains",
    "regex",
    "eos_within",
    "stop_reason",
)
SNAPSHOT_KEYS = ("text", "token_ids")
SPEED_KEYS = ("min_decode_tokens_per_s", "max_time_to_first_token_s")
CASE_KEYS = ("name", "prompt", "messages", "expect", "speed", *SETTING_KEYS)
TOP_KEYS = ("bundles", "defaults", "cases")
STOP_REASONS = ("eos", "stop_string", "length")
_NAME = re.compile(r"[^\s\[\]:][^\[\]\n]*")


class GoldenError(EtmError):
    """A golden file that cannot be read as one; one line naming the place."""


# ------------------------------------------------------------ the file


@dataclass(frozen=True)
class Case:
    name: str
    line: int  # 0-based, where the case starts
    prompt: str | None
    messages: tuple[dict[str, Any], ...] | None
    settings: dict[str, Any]
    expect: dict[str, Any]
    speed: dict[str, float]

    @property
    def greedy(self) -> bool:
        return not self.settings.get("temperature")

    @property
    def records_snapshot(self) -> bool:
        return any(key in self.expect for key in SNAPSHOT_KEYS)


@dataclass(frozen=True)
class GoldenDoc:
    path: Path
    bundles: tuple[str, ...]
    cases: tuple[Case, ...]


def load(path: Path) -> GoldenDoc:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise GoldenError(f"{path}: {size} bytes, over {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GoldenError(f"{path}: cannot be read ({err})") from None
    return parse(text, path)


def parse(text: str, path: Path) -> GoldenDoc:
    node, document = _compose(text, path)
    if not isinstance(document, dict):
        raise GoldenError(f"{path}: a golden file is a mapping with 'cases'")
    _known(str(path), document, TOP_KEYS)
    cases = document.get("cases")
    if not isinstance(cases, list) or not cases:
        raise GoldenError(f"{path}: 'cases' must be a non-empty list")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise GoldenError(f"{path}: 'defaults' must be a mapping")
    _known(f"{path}: defaults", defaults, (*SETTING_KEYS, "speed"))
    lines = [n.start_mark.line for n in _value(node, "cases").value]
    parsed = [
        _case(path, raw, defaults, line) for raw, line in zip(cases, lines, strict=True)
    ]
    _unique(path, parsed)
    return GoldenDoc(path, _patterns(path, document.get("bundles")), tuple(parsed))


def _compose(text: str, path: Path) -> tuple[Any, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise GoldenError(f"{path}: the file is empty")
        _no_duplicates(node, path)
        _bounded(node, path)
        return node, loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise GoldenError(f"{path}{where}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def _no_duplicates(node: Any, path: Path) -> None:
    # PyYAML keeps the last of two equal keys without a word; in a golden
    # file that hides an expectation.
    pending, seen_nodes = [node], set()
    while pending:
        current = pending.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value in keys:
                    line = key.start_mark.line + 1
                    raise GoldenError(f"{path}:{line}: duplicate key {key.value!r}")
                keys.add(key.value)
                pending.append(value)
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)


def _bounded(node: Any, path: Path) -> None:
    # Aliases share a node, so a few lines can stand for a billion values
    # once a case's messages or expectations are copied out; count the
    # values as they would be, each shared node counted once (post-order).
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        current, finished = stack.pop()
        key = id(current)
        if finished:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(current))
            sizes[key] = min(total, MAX_VALUES + 1)
        elif key in open_nodes:
            line = current.start_mark.line + 1
            raise GoldenError(f"{path}:{line}: an alias refers to itself")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((current, True))
            stack.extend((child, False) for child in _children(current))
    if sizes[id(node)] > MAX_VALUES:
        raise GoldenError(
            f"{path}: more than {MAX_VALUES} values once its aliases are expanded"
        )


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _value(node: Any, key: str) -> Any:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return value_node
    raise KeyError(key)


def _known(where: str, mapping: Mapping[Any, Any], keys: Sequence[str]) -> None:
    for key in mapping:
        if key not in keys:
            raise GoldenError(
                f"{where}: unknown key {key!r} (known: {', '.join(keys)})"
            )


def _patterns(path: Path, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GoldenError(f"{path}: 'bundles' must be a list of glob patterns")
    return tuple(value)


def _unique(path: Path, cases: list[Case]) -> None:
    seen: set[str] = set()
    for case in cases:
        if case.name in seen:
            raise GoldenError(f"{path}:{case.line + 1}: two cases named {case.name!r}")
        seen.add(case.name)


def _case(path: Path, raw: Any, defaults: dict[str, Any], line: int) -> Case:
    where = f"{path}:{line + 1}"
    if not isinstance(raw, dict):
        raise GoldenError(f"{where}: a case is a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise GoldenError(
            f"{where}: a case needs a 'name' on one line, without '[', ']' or "
            "a leading ':'"
        )
    where = f"{where}: case {name!r}"
    _known(where, raw, CASE_KEYS)
    prompt, messages = raw.get("prompt"), raw.get("messages")
    if (prompt is None) == (messages is None):
        raise GoldenError(f"{where}: give a 'prompt' or 'messages' (one of them)")
    settings = {k: v for k, v in defaults.items() if k != "speed"}
    settings.update({k: raw[k] for k in SETTING_KEYS if k in raw})
    speed = dict(defaults.get("speed") or {})
    speed.update(raw.get("speed") or {})
    expect = raw.get("expect") or {}
    return Case(
        name=name,
        line=line,
        prompt=_prompt(where, prompt),
        messages=_messages(where, messages),
        settings=_settings(where, settings),
        expect=_expect(where, expect),
        speed=_speed(where, speed),
    )


def _prompt(where: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise GoldenError(f"{where}: 'prompt' must be non-empty text")
    return value if isinstance(value, str) else None


def _messages(where: str, value: Any) -> tuple[dict[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise GoldenError(f"{where}: 'messages' must be a non-empty list")
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GoldenError(f"{where}: each message is a mapping with a 'role'")
    return tuple(value)


_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,),
    "temperature": (int, float),
    "num_bos": (int,),
    "num_eos": (int,),
    "add_generation_prompt": (bool,),
}


def _settings(where: str, settings: dict[str, Any]) -> dict[str, Any]:
    for key, kinds in _SETTING_TYPES.items():
        value = settings.get(key)
        if value is None:
            continue
        if isinstance(value, bool) is not (kinds == (bool,)) or not isinstance(
            value, kinds
        ):
            raise GoldenError(f"{where}: {key} cannot be {value!r}")
    if "stop" in settings:
        settings["stop"] = _texts(where, "stop", settings["stop"])
    return settings


def _texts(where: str, key: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(
        isinstance(v, str) and v for v in values
    ):
        raise GoldenError(f"{where}: {key} must be text or a list of texts")
    return list(values)


def _expect(where: str, expect: Any) -> dict[str, Any]:
    if not isinstance(expect, dict):
        raise GoldenError(f"{where}: 'expect' must be a mapping")
    _known(f"{where}: expect", expect, EXPECT_KEYS)
    found = dict(expect)
    # An empty snapshot (``text:`` alone) asks for a recording.
    if found.get("text") is not None and not isinstance(found["text"], str):
        raise GoldenError(f"{where}: expect.text must be text")
    ids = found.get("token_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise GoldenError(f"{where}: expect.token_ids must be a list of integers")
    for key in ("contains", "not_contains", "regex"):
        if key in found:
            found[key] = _texts(where, f"expect.{key}", found[key])
    for pattern in found.get("regex", []):
        try:
            re.compile(pattern)
        except re.error as err:
            raise GoldenError(f"{where}: expect.regex {pattern!r}: {err}") from None
    within = found.get("eos_within")
    if "eos_within" in found and (
        not isinstance(within, int) or isinstance(within, bool) or within < 1
    ):
        raise GoldenError(f"{where}: expect.eos_within must be a count of tokens")
    if "stop_reason" in found and found["stop_reason"] not in STOP_REASONS:
        raise GoldenError(
            f"{where}: expect.stop_reason must be one of {', '.join(STOP_REASONS)}"
        )
    return found


def _speed(where: str, speed: Any) -> dict[str, float]:
    if not isinstance(speed, dict):
        raise GoldenError(f"{where}: 'speed' must be a mapping")
    _known(f"{where}: speed", speed, SPEED_KEYS)
    for key, value in speed.items():
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            raise GoldenError(f"{where}: speed.{key} must be a number >= 0")
    return {k: float(v) for k, v in speed.items()}


# ------------------------------------------------------------ options


@dataclass(frozen=True)
class Options:
    update: bool = False
    timed_runs: int = 3
    min_decode_tokens_per_s: float | None = None
    max_time_to_first_token_s: float | None = None

    def thresholds(self, case: Case) -> dict[str, float]:
        """The case's speed thresholds, with the command line's laid over."""
        found = dict(case.speed)
        overrides = {
            "min_decode_tokens_per_s": self.min_decode_tokens_per_s,
            "max_time_to_first_token_s": self.max_time_to_first_token_s,
        }
        for key, value in overrides.items():
            if value is not None:
                found[key] = value
        # 0 turns a check off: no speed is below 0 tokens/s, and a maximum
        # time of 0 is read as no maximum.
        return {k: v for k, v in found.items() if v > 0}


OPTIONS = pytest.StashKey[Options]()


def options(config: pytest.Config) -> Options:
    return config.stash.get(OPTIONS, Options())


# ------------------------------------------------------------ collection


def is_golden(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


@dataclass(frozen=True)
class BundleRef:
    """A bundle a golden file's cases run against, and its label in ids."""

    path: Path
    label: str
    names: tuple[str, ...]


class GoldenFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        doc = load(self.path)
        targets, reason = applicable(self.config, doc)
        for case in doc.cases:
            if not targets:
                item = GoldenItem.from_parent(
                    self, name=case.name, case=case, target=None
                )
                item.add_marker(pytest.mark.skip(reason=reason))
                yield item
            for target in targets:
                yield GoldenItem.from_parent(
                    self, name=f"{case.name}[{target.label}]", case=case, target=target
                )

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, GoldenError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


TARGETS = pytest.StashKey[list[BundleRef]]()


def targets(config: pytest.Config, paths: Sequence[Path]) -> list[BundleRef]:
    """Every --etm bundle with its id label and the names patterns match."""
    if TARGETS not in config.stash:
        names = [p.name for p in paths]
        found = []
        for path in paths:
            label = path.name if names.count(path.name) == 1 else str(path)
            found.append(BundleRef(path, label, (path.name, *_metadata_name(path))))
        config.stash[TARGETS] = found
    return config.stash[TARGETS]


def _metadata_name(path: Path) -> tuple[str, ...]:
    # Read only to match 'bundles' patterns; a broken bundle matches by its
    # file name and fails in its items with the reason.
    from etm_lint.format import metadata as meta
    from etm_lint.format.bundle import Bundle

    try:
        with Bundle(path) as bundle:
            document = meta.parse(bundle.metadata_bytes() or b"{}")
    except (EtmError, ValueError):
        return ()
    name = document.get("name") if isinstance(document, dict) else None
    return (name,) if isinstance(name, str) else ()


def applicable(config: pytest.Config, doc: GoldenDoc) -> tuple[list[BundleRef], str]:
    from pytest_etm.plugin import bundle_paths

    every = targets(config, bundle_paths(config))
    if not every:
        return [], "no bundle to run on: give one with --etm PATH"
    if not doc.bundles:
        return every, ""
    chosen = [
        t
        for t in every
        if any(fnmatch.fnmatchcase(n, p) for n in t.names for p in doc.bundles)
    ]
    wanted = ", ".join(doc.bundles)
    return chosen, f"no --etm bundle matches this file's bundles: {wanted}"


# ------------------------------------------------------------ items


class GoldenFailure(Exception):
    """A case's expectations or thresholds that did not hold, as text."""


@dataclass
class Outcome:
    """What one case did on one bundle."""

    generation: Generation
    speed: Speed | None
    thresholds: dict[str, float]
    failures: list[str] = field(default_factory=list)
    update: dict[str, Any] | None = None


class GoldenItem(pytest.Item):
    def __init__(self, *, case: Case, target: BundleRef | None, **kwargs: Any):
        super().__init__(**kwargs)
        # No target: skipped by a marker, never run.
        self.case, self.target = case, target
        self.etm_record: dict[str, Any] | None = None
        self.etm_update: dict[str, Any] | None = None

    def runtest(self) -> None:
        assert self.target is not None
        model = pool(self.config).get(self.target.path)
        outcome = run_case(model, self.case, options(self.config))
        self._record(model, outcome)
        if outcome.failures:
            raise GoldenFailure(
                "\n\n".join([*outcome.failures, _context(outcome.generation)])
            )

    def _record(self, model: BundleModel, outcome: Outcome) -> None:
        assert self.target is not None
        gen, speed = outcome.generation, outcome.speed
        record: dict[str, Any] = {
            "nodeid": self.nodeid,
            "file": str(self.path),
            "case": self.case.name,
            "bundle": str(self.target.path),
            "label": self.target.label,
            "load_s": model.load_s,
            "num_generated": gen.timing.num_generated,
            "stop_reason": gen.stop_reason,
            **{k: outcome.thresholds.get(k) for k in SPEED_KEYS},
        }
        if speed is not None:
            record.update(
                runs=speed.runs,
                decode_tokens_per_s=speed.decode_tokens_per_s,
                time_to_first_token_s=speed.time_to_first_token_s,
                decode_samples=list(speed.decode_samples),
                ttft_samples=list(speed.ttft_samples),
            )
            self.user_properties.extend(
                [
                    ("etm_decode_tokens_per_s", round(speed.decode_tokens_per_s, 3)),
                    (
                        "etm_time_to_first_token_s",
                        round(speed.time_to_first_token_s, 6),
                    ),
                    ("etm_timed_runs", speed.runs),
                ]
            )
        self.user_properties.append(("etm_load_s", round(model.load_s, 6)))
        for key in SPEED_KEYS:
            if key in outcome.thresholds:
                self.user_properties.append((f"etm_{key}", outcome.thresholds[key]))
        self.etm_record = record
        if outcome.update is not None:
            self.etm_update = {
                "file": str(self.path),
                "case": self.case.name,
                "bundle": str(self.target.path),
                "values": outcome.update,
            }

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, (GoldenFailure, EtmError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line, f"golden case {self.name}"


# ------------------------------------------------------------ running a case


def generate(model: BundleModel, case: Case) -> Generation:
    settings = case.settings
    try:
        return model.generate(
            case.prompt,
            messages=case.messages,
            max_new_tokens=settings.get("max_new_tokens"),
            temperature=float(settings.get("temperature") or 0.0),
            stop=settings.get("stop"),
            num_bos=settings.get("num_bos"),
            num_eos=settings.get("num_eos"),
            add_generation_prompt=settings.get("add_generation_prompt", True),
        )
    except ValueError as err:
        raise GoldenError(f"case {case.name!r}: {err}") from None


def run_case(model: BundleModel, case: Case, opts: Options) -> Outcome:
    """Generate once (the output checked, and the warm-up), then time it."""
    gen = generate(model, case)
    found = check(case.expect, gen, model.eos_ids)
    failures, update = list(found.values()), None
    if opts.update:
        failures, update = _updating(case, gen, found)
    elif not case.expect:
        failures.append(
            "no expectation recorded for this case; run pytest with "
            "--etm-update-goldens to record what the model produces"
        )
    thresholds = opts.thresholds(case)
    outcome = Outcome(gen, None, thresholds, failures, update)
    if not thresholds:
        outcome.speed = speed_of([gen.timing])
    elif not failures:
        outcome.speed = measure(lambda: generate(model, case), opts.timed_runs, 0)
        failures.extend(speed_failures(outcome.speed, thresholds))
    return outcome


def _updating(
    case: Case, gen: Generation, found: Mapping[str, str]
) -> tuple[list[str], dict[str, Any] | None]:
    """Failures that remain when snapshots are rewritten, and the new values.

    A case with no expectation gets both snapshots; one with snapshots has
    them rewritten; the author's own expectations are never touched.
    """
    own = [m for k, m in found.items() if k not in SNAPSHOT_KEYS]
    if not case.greedy:
        if not case.expect:
            own.append(
                f"a sampled case (temperature {case.settings['temperature']}) "
                "cannot be recorded: give it contains, regex or eos_within"
            )
        return own, None
    keys = [k for k in SNAPSHOT_KEYS if k in case.expect]
    if not case.expect:
        keys = list(SNAPSHOT_KEYS)
    values: dict[str, Any] = {"text": gen.text, "token_ids": list(gen.token_ids)}
    changed = {k: values[k] for k in keys if case.expect.get(k) != values[k]}
    return own, changed or None


def check(
    expect: Mapping[str, Any], gen: Generation, eos_ids: Sequence[int]
) -> dict[str, str]:
    """A message for each expectation that does not hold, the fact first."""
    found = {}
    for key, checker in _CHECKS.items():
        if key in expect and expect[key] is None:
            found[key] = (
                f"expect.{key} is empty, not recorded yet; run pytest with "
                "--etm-update-goldens to record what the model produces"
            )
        elif key in expect:
            message = checker(expect[key], gen, tuple(eos_ids))
            if message:
                found[key] = message
    return found


def _check_text(want: str, gen: Generation, eos: tuple[int, ...]) -> str:
    got = gen.text
    if got == want:
        return ""
    at = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
        min(len(want), len(got)),
    )
    lines = [
        f"text differs from the expected text at character {at} "
        f"(expected {len(want)} characters, got {len(got)})",
        f"  expected: {_excerpt(want, at)}",
        f"  got:      {_excerpt(got, at)}",
    ]
    if "\n" in want or "\n" in got:
        lines.extend(_diff(want, got))
    return "\n".join(lines)


def _check_ids(want: list[int], gen: Generation, eos: tuple[int, ...]) -> str:
    got = list(gen.token_ids)
    if got == want:
        return ""
    if not got and gen.timing.num_generated:
        return (
            "token ids are not observable at temperature > 0 (the runner "
            "samples with a seed of its own); expect text instead"
        )
    at = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
        min(len(want), len(got)),
    )
    if at < min(len(want), len(got)):
        head = f"expected {want[at]}, got {got[at]}"
    else:
        head = f"the first {at} agree"
    return (
        f"token ids differ at position {at}: {head} "
        f"(expected {len(want)} ids, got {len(got)})\n"
        f"  expected: {_window(want, at)}\n"
        f"  got:      {_window(got, at)}"
    )


def _check_contains(want: list[str], gen: Generation, eos: tuple[int, ...]) -> str:
    missing = [w for w in want if w not in gen.text]
    if not missing:
        return ""
    return (
        f"text does not contain {missing[0]!r}"
        + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
        + f"\n  got: {_excerpt(gen.text, 0)}"
    )


def _check_absent(want: list[str], gen: Generation, eos: tuple[int, ...]) -> str:
    for word in want:
        at = gen.text.find(word)
        if at >= 0:
            return (
                f"text contains {word!r} at character {at}\n"
                f"  got: {_excerpt(gen.text, at)}"
            )
    return ""


def _check_regex(want: list[str], gen: Generation, eos: tuple[int, ...]) -> str:
    for pattern in want:
        if not re.search(pattern, gen.text):
            return (
                f"text does not match the regex {pattern!r}\n"
                f"  got: {_excerpt(gen.text, 0)}"
            )
    return ""


def _check_eos(within: int, gen: Generation, eos: tuple[int, ...]) -> str:
    count = gen.timing.num_generated
    if gen.stop_reason != "eos":
        return (
            f"did not stop on EOS within {within} tokens: stopped by "
            f"{gen.stop_reason} after {count} tokens (EOS ids {list(eos)})"
        )
    if count > within:
        return f"stopped on EOS after {count} tokens, expected within {within}"
    return ""


def _check_reason(want: str, gen: Generation, eos: tuple[int, ...]) -> str:
    if gen.stop_reason == want:
        return ""
    return (
        f"stop reason is {gen.stop_reason} after {gen.timing.num_generated} tokens, "
        f"expected {want}"
    )


_Check = Callable[[Any, "Generation", tuple[int, ...]], str]
_CHECKS: dict[str, _Check] = {
    "text": _check_text,
    "token_ids": _check_ids,
    "contains": _check_contains,
    "not_contains": _check_absent,
    "regex": _check_regex,
    "eos_within": _check_eos,
    "stop_reason": _check_reason,
}


def speed_failures(speed: Speed, thresholds: Mapping[str, float]) -> list[str]:
    found = []
    runs = f"median of {speed.runs} run{'s' if speed.runs != 1 else ''}"
    minimum = thresholds.get("min_decode_tokens_per_s")
    if minimum is not None and speed.decode_tokens_per_s < minimum:
        samples = ", ".join(f"{v:.1f}" for v in speed.decode_samples)
        found.append(
            f"decode speed {speed.decode_tokens_per_s:.1f} tokens/s is below the "
            f"minimum {number(minimum)} tokens/s ({runs}: {samples})"
        )
    maximum = thresholds.get("max_time_to_first_token_s")
    if maximum is not None and speed.time_to_first_token_s > maximum:
        samples = ", ".join(f"{v * 1e3:.2f}" for v in speed.ttft_samples)
        found.append(
            f"time to first token {speed.time_to_first_token_s * 1e3:.2f} ms is "
            f"above the maximum {number(maximum * 1e3)} ms ({runs}: {samples} ms)"
        )
    return found


def number(value: float) -> str:
    """A threshold as its author wrote it: 20, 0.5, 1000000000."""
    return f"{value:.0f}" if value >= 1e6 and value == int(value) else f"{value:g}"


def _context(gen: Generation) -> str:
    return (
        f"prompt: {_excerpt(gen.prompt, 0)} ({len(gen.prompt_ids)} tokens); "
        f"generated {gen.timing.num_generated} tokens, stopped by {gen.stopped_by}"
    )


def _excerpt(text: str, at: int, width: int = 40) -> str:
    start = max(0, at - width)
    end = min(len(text), at + width)
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return f"{head}{text[start:end]!r}{tail}"


def _window(ids: Sequence[int], at: int, width: int = 5) -> str:
    start = max(0, at - width)
    part = ", ".join(str(i) for i in ids[start : at + width])
    head = "..., " if start > 0 else ""
    tail = ", ..." if at + width < len(ids) else ""
    return f"[{head}{part}{tail}]"


def _diff(want: str, got: str, limit: int = 20) -> list[str]:
    lines = list(
        difflib.unified_diff(
            want.splitlines(),
            got.splitlines(),
            "expected",
            "got",
            n=1,
            lineterm="",
        )
    )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return ["", *lines]


# ------------------------------------------------------------ rewriting


class _Dumper(yaml.SafeDumper):
    """Mappings as blocks, id lists on a few lines, text as a block where
    it reads better (PyYAML falls back to quotes when a block cannot hold it).
    """


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_mapping(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=False)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(dict, _represent_mapping)
_Dumper.add_representer(list, _represent_list)


def _render(entries: Mapping[str, Any], indent: int) -> list[str]:
    text = yaml.dump(
        dict(entries),
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        # PyYAML breaks a line after passing the width; keep within 88.
        width=max(40, 78 - indent),
    )
    return [(" " * indent + line) if line else line for line in text.splitlines()]


def rewrite(text: str, path: Path, updates: Mapping[str, Mapping[str, Any]]) -> str:
    """``text`` with each named case's snapshots set to the given values.

    Only the lines of the rewritten entries change; comments and layout stay.
    The result is read back and compared with what was asked for.
    """
    node, document = _compose(text, path)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, list[str]]] = []
    cases = zip(_value(node, "cases").value, document["cases"], strict=True)
    for case_node, case in cases:
        if case.get("name") in updates:
            values = updates[case["name"]]
            expect = {**(case.get("expect") or {}), **values}
            edits.extend(_case_edits(case_node, lines, values, expect))
    for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[start:end] = [line + "\n" for line in new]
    result = "".join(lines)
    _verify(result, path, document, updates)
    return result


def _case_edits(
    case: Any, lines: list[str], values: Mapping[str, Any], merged: dict[str, Any]
) -> list[tuple[int, int, list[str]]]:
    """Line edits setting ``values`` in a case; ``merged`` is its whole new
    ``expect``, written out when the old one is not a block mapping."""
    pair = next(((k, v) for k, v in case.value if k.value == "expect"), None)
    if pair is None:
        column = case.value[0][0].start_mark.column
        after = _last_line(case.value[-1][1], lines) + 1
        return [(after, after, _render({"expect": merged}, column))]
    key, expect = pair
    if (
        not isinstance(expect, yaml.MappingNode)
        or expect.flow_style
        or not expect.value
    ):
        return [_replace(key, expect, lines, {"expect": merged})]
    edits = []
    missing = dict(values)
    for entry_key, entry_value in expect.value:
        if entry_key.value in values:
            entry = {entry_key.value: missing.pop(entry_key.value)}
            edits.append(_replace(entry_key, entry_value, lines, entry))
    if missing:
        column = expect.value[0][0].start_mark.column
        after = _last_line(expect.value[-1][1], lines) + 1
        edits.append((after, after, _render(missing, column)))
    return edits


def _replace(
    key: Any, value: Any, lines: list[str], entry: Mapping[str, Any]
) -> tuple[int, int, list[str]]:
    """Lines from ``key`` to the end of ``value``, rendered anew at its column."""
    first, column = key.start_mark.line, key.start_mark.column
    new = _render(entry, column)
    new[0] = lines[first][:column] + new[0][column:]
    return first, _last_line(value, lines) + 1, new


def _last_line(node: Any, lines: list[str]) -> int:
    mark = node.end_mark
    last = mark.line if mark.column > 0 else mark.line - 1
    while last > node.start_mark.line and not lines[last].strip():
        last -= 1
    return max(last, node.start_mark.line)


def _verify(
    result: str, path: Path, before: Any, updates: Mapping[str, Mapping[str, Any]]
) -> None:
    _, after = _compose(result, path)
    want = yaml.safe_load(yaml.safe_dump(before))
    for case in want["cases"]:
        if case.get("name") in updates:
            case["expect"] = {**(case.get("expect") or {}), **updates[case["name"]]}
    if after != want:
        raise GoldenError(f"{path}: could not rewrite the expectations in place")
