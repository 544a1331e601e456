"""No file is created outside the cache folder the tool owns (or the output a
command was asked for), and no input changes.

Each test runs the commands in a real process with HOME, XDG_CACHE_HOME,
TMPDIR and (or not) ETM_CACHE_DIR pointed at fresh folders and the working
directory an empty folder, then checks two ways:

- the file trees of those folders, the corpus and the repository's inputs,
  before and after: whatever is new or changed lies under an allowed root;
- a Python audit hook in the child, which sees every write-mode open,
  mkdir, rename, link, chmod and removal anywhere on the machine: each lies
  under an allowed root, or under TMPDIR (the tokenizer module's anonymous
  capture files), which must be as empty afterwards as before.

Native code (the tokenizer libraries) is not audited; its writes would show
in the trees, which cover every folder it is told about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.corpus import REPO
from tests.hostile.harness import corpus, corpus_root, snapshot

CHILD = r"""
import contextlib, io, json, os, sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# event: (index of the path written, index of its folder descriptor)
EVENTS = {
    "os.mkdir": (0, 2), "os.rmdir": (0, 1), "os.remove": (0, 1),
    "os.rename": (1, 3), "os.replace": (1, 3), "os.link": (1, 3),
    "os.symlink": (1, 2), "os.chmod": (0, 2), "os.utime": (0, 3),
    "os.truncate": (0, None), "shutil.copyfile": (1, None),
    "shutil.rmtree": (0, 1),
}
seen = []


def where(path, dir_fd=None):
    # shutil.rmtree and friends name files relative to an open folder.
    base = os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None else ""
    return os.path.abspath(os.path.join(base, os.fsdecode(path)))


def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        writes = writes or (mode is None and flags & WRITE_FLAGS)
        if writes:
            seen.append([event, where(path)])
    elif event in EVENTS:
        at, fd_at = EVENTS[event]
        path = args[at]
        if isinstance(path, int):
            return
        fd = args[fd_at] if fd_at is not None and len(args) > fd_at else None
        fd = fd if isinstance(fd, int) and fd >= 0 else None
        seen.append([event, where(path, fd)])


commands = json.loads(sys.argv[1])
sys.addaudithook(hook)
from etm_lint.cli import etm, lint

codes = []
for tool, argv in commands:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            codes.append((lint if tool == "lint" else etm).main(argv))
        except SystemExit as stop:
            codes.append(stop.code)
sys.stderr.write("\n@@" + json.dumps({"codes": codes, "writes": seen}) + "\n")
"""


def run_child(
    tmp_path: Path, commands: list[tuple[str, list[str]]], *, own_cache: str
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run ``commands`` in one audited process; returns its report and the
    folders it was given."""
    folders = {n: tmp_path / n for n in ("home", "xdg", "tmp", "cwd", "cache", "out")}
    for folder in folders.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ETM_CACHE_DIR",)}
    env.update(HOME=str(folders["home"]), TMPDIR=str(folders["tmp"]))
    env.pop("XDG_CACHE_HOME", None)
    env["PYTHONPATH"] = str(REPO)
    if own_cache == "ETM_CACHE_DIR":
        env["ETM_CACHE_DIR"] = str(folders["cache"])
    elif own_cache == "XDG_CACHE_HOME":
        env["XDG_CACHE_HOME"] = str(folders["xdg"])
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(commands)],
        cwd=folders["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stderr.rsplit("\n@@", 1)[1])
    return report, folders


def cache_of(folders: dict[str, Path], own_cache: str) -> Path:
    return {
        "ETM_CACHE_DIR": folders["cache"],
        "XDG_CACHE_HOME": folders["xdg"] / "etm-lint",
        "HOME": folders["home"] / ".cache" / "etm-lint",
    }[own_cache]


WATCHED = ("home", "xdg", "tmp", "cwd", "cache", "out")


def watched_trees(folders: dict[str, Path]) -> dict[str, dict[str, str]]:
    trees = {name: snapshot(folders[name]) for name in WATCHED}
    trees["corpus"] = snapshot(corpus_root())
    trees["fixtures"] = snapshot(REPO / "fixtures")
    trees["examples"] = snapshot(REPO / "examples")
    return trees


def changed(
    before: dict[str, dict[str, str]],
    after: dict[str, dict[str, str]],
    folders: dict[str, Path],
) -> list[Path]:
    roots = {**folders, "corpus": corpus_root()}
    roots.update(fixtures=REPO / "fixtures", examples=REPO / "examples")
    found = []
    for name, tree in after.items():
        old = before.get(name, {})
        found += [roots[name] / p for p in tree if old.get(p) != tree[p]]
        found += [roots[name] / p for p in old if p not in tree]
    return found


def check_writes(
    report: dict[str, Any],
    before: dict[str, dict[str, str]],
    after: dict[str, dict[str, str]],
    folders: dict[str, Path],
    allowed: list[Path],
) -> None:
    tmp = folders["tmp"]
    assert after["tmp"] == before["tmp"], "something was left in TMPDIR"
    outside = [
        path
        for event, path in report["writes"]
        if not _under(Path(path), *allowed, tmp)
        and path != os.devnull
        and not (event == "os.mkdir" and _makes_room(Path(path), allowed))
    ]
    assert outside == [], f"written outside {allowed}: {sorted(set(outside))[:10]}"
    stray = [
        p
        for p in changed(before, after, folders)
        if not _under(p, *allowed) and not _makes_room(p, allowed)
    ]
    assert stray == [], f"new or changed outside {allowed}: {stray[:10]}"


def _under(path: Path, *roots: Path) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _makes_room(path: Path, allowed: list[Path]) -> bool:
    # A missing ~/.cache is made on the way to ~/.cache/etm-lint.
    return any(path in root.parents for root in allowed)


def lint_argv(path: Path) -> list[str]:
    return ["--no-config", "-o", os.devnull, str(path)]


def _tiktoken(name: str) -> bool:
    return name.startswith("tiktoken")


@pytest.mark.parametrize("own_cache", ["ETM_CACHE_DIR", "XDG_CACHE_HOME", "HOME"])
def test_lint_writes_only_to_its_cache(tmp_path: Path, own_cache: str) -> None:
    """The whole corpus with ETM_CACHE_DIR set; with the cache found through
    XDG_CACHE_HOME or HOME, a few bundles that do reach the cache."""
    cases = [c for c in corpus() if not _tiktoken(c.name)]
    if own_cache != "ETM_CACHE_DIR":
        wanted = {"hf_truncated", "sp_truncated", "tpl_loop_billion", "name_dotdot"}
        cases = [c for c in cases if c.name in wanted]
    commands = [("lint", lint_argv(c.path)) for c in cases]
    folders = _folders(tmp_path)
    before = watched_trees(folders)
    report, folders = run_child(tmp_path, commands, own_cache=own_cache)
    after = watched_trees(folders)
    cache = cache_of(folders, own_cache)
    check_writes(report, before, after, folders, [cache])
    assert any(_under(Path(p), cache) for _, p in report["writes"])
    assert set(report["codes"]) <= {0, 1, 2}


def test_tiktoken_reference_writes_only_to_the_cache(tmp_path: Path) -> None:
    """Before: tiktoken's loader copied each file it read into
    $TMPDIR/data-gym-cache and later read that copy, so a loose
    tokenizer.model edited in place was compared as it was."""
    cases = [c for c in corpus() if _tiktoken(c.name)]
    commands = [("lint", lint_argv(c.path)) for c in cases]
    folders = _folders(tmp_path)
    before = watched_trees(folders)
    report, folders = run_child(tmp_path, commands, own_cache="ETM_CACHE_DIR")
    check_writes(report, before, watched_trees(folders), folders, [folders["cache"]])


def test_inspect_writes_nothing(tmp_path: Path) -> None:
    cases = [c for c in corpus() if c.part != "folder"]
    commands = [("etm", ["inspect", "--json", str(c.path)]) for c in cases]
    folders = _folders(tmp_path)
    before = watched_trees(folders)
    report, folders = run_child(tmp_path, commands, own_cache="ETM_CACHE_DIR")
    check_writes(report, before, watched_trees(folders), folders, [])


def test_unpack_writes_only_its_new_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cases = [c for c in corpus() if c.bundle]
    commands = [("etm", ["unpack", str(c.path), str(out / c.name)]) for c in cases]
    folders = _folders(tmp_path)
    before = watched_trees(folders)
    report, folders = run_child(tmp_path, commands, own_cache="ETM_CACHE_DIR")
    check_writes(report, before, watched_trees(folders), folders, [out])
    unpacked = {
        c.name for c, code in zip(cases, report["codes"], strict=True) if not code
    }
    assert set(os.listdir(out)) == unpacked, "a half-built folder was left"


def test_fix_and_pack_write_only_their_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    src = REPO / "fixtures" / "src"
    names = ["name_dotdot", "referenced_dotdot", "symlink_extra", "pte_root_outside"]
    commands: list[tuple[str, list[str]]] = [
        (
            "lint",
            [
                *("--no-config", "-o", os.devnull, "--fix", "--fixed-copy"),
                *(str(out / f"{name}.etm"), str(corpus_root() / f"{name}.etm")),
            ],
        )
        for name in names
    ]
    commands += [
        (
            "etm",
            [
                *("pack", "--program", str(src / program)),
                *("--tokenizer", str(src / "tokenizer.json")),
                *("-o", str(out / f"{program}.etm")),
            ],
        )
        for program in ("good.pte", "tokenizer_config.json")
    ]
    folders = _folders(tmp_path)
    before = watched_trees(folders)
    report, folders = run_child(tmp_path, commands, own_cache="ETM_CACHE_DIR")
    after = watched_trees(folders)
    check_writes(report, before, after, folders, [out, folders["cache"]])
    assert report["codes"][-2:] == [0, 2]
    assert "good.pte.etm" in os.listdir(out)
    assert not [n for n in os.listdir(out) if n.endswith(".partial")]


def _folders(tmp_path: Path) -> dict[str, Path]:
    # The same names run_child creates; snapshots of absent folders are empty.
    return {n: tmp_path / n for n in WATCHED}
