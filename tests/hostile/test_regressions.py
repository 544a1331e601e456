"""One test per fault the hostile corpus and the property tests found.

Each names the input that broke the tool and what it did before the fix
(a traceback, a hang, memory or disk spent, a bundle nobody could read).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from etm_lint import cache
from etm_lint.cli import etm, lint
from etm_lint.errors import EtmError, FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import Bundle
from etm_lint.format.pack import pack_bundle
from tests.hostile import rawzip
from tests.hostile.corpus import GOOD, REPO, bundle_bytes, members_of
from tests.hostile.harness import run_main

SRC = REPO / "fixtures" / "src"

# rawzip.zero_bomb's default: 1 GiB of zeros.
BOMB_SIZE = 1 << 30


def write_tokenizer_bomb(path: Path, **claim: object) -> None:
    """The good bundle with a 1 GiB deflate bomb for its tokenizer;
    ``claim`` rewrites metadata.json's tokenizer entry (else kept)."""
    members = members_of(GOOD)
    document = json.loads(members["metadata.json"])
    document["tokenizer"].update(claim)
    entries = [rawzip.deflated("metadata.json", json.dumps(document).encode())]
    entries += [rawzip.stored("model.pte", members["model.pte"])]
    entries += [rawzip.zero_bomb("tokenizer.json")]
    path.write_bytes(rawzip.build(entries))


def write_swapped_tokenizer(path: Path) -> bytes:
    """The good bundle with other tokenizer bytes under metadata.json kept
    byte for byte (so it claims the good tokenizer's size and hash); returns
    the bytes it holds."""
    members = members_of(GOOD)
    swapped = members["tokenizer.json"].replace(b'"<|im_end|>"', b'"<|im_fin|>"')
    assert swapped != members["tokenizer.json"]
    files = {**members, "tokenizer.json": swapped}
    path.write_bytes(bundle_bytes(files, metadata=members["metadata.json"]))
    return swapped


LINT = ["--no-config", "--output-format", "json"]


def lint_codes(path: Path) -> tuple[int | None, set[str], str]:
    outcome = run_main(lint.main, [*LINT, str(path)])
    assert outcome.crash is None, outcome.crash
    codes = {f["code"] for f in json.loads(outcome.stdout or "[]")}
    return outcome.code, codes, outcome.stdout + outcome.stderr


def real_run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A CLI in a real process with a timeout, for faults that used to hang."""
    command, *rest = argv
    code = f"from etm_lint.cli.{command} import entry; entry()"
    return subprocess.run(
        [sys.executable, "-c", code, *rest],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- paths that are not regular files (used to hang) ----------------------------


def test_fifo_as_bundle_is_refused_not_waited_on(tmp_path: Path) -> None:
    # Before: os.open(O_RDONLY) on a FIFO blocks until a writer comes.
    fifo = tmp_path / "model.etm"
    os.mkfifo(fifo)
    for argv in (("lint", "--no-config", str(fifo)), ("etm", "inspect", str(fifo))):
        result = real_run(*argv)
        assert result.returncode == 2
        assert result.stderr.strip().endswith(f"{fifo}: not a regular file")


def test_device_as_program_in_a_folder(tmp_path: Path) -> None:
    # Before: sha256 over /dev/zero, forever.
    shutil.copy(SRC / "tokenizer.json", tmp_path / "tokenizer.json")
    os.symlink("/dev/zero", tmp_path / "model.pte")
    result = real_run("lint", "--no-config", "--output-format", "json", str(tmp_path))
    assert result.returncode == 1
    finding = json.loads(result.stdout)[0]
    assert finding["code"] == "ETM101"
    assert "not a regular file" in finding["message"]


def test_fifo_as_tokenizer_in_a_folder(tmp_path: Path) -> None:
    # Before: tokenizer_kind() opened a FIFO named x.model and waited.
    shutil.copy(SRC / "good.pte", tmp_path / "model.pte")
    os.mkfifo(tmp_path / "x.model")
    result = real_run("lint", "--no-config", "--output-format", "json", str(tmp_path))
    assert result.returncode == 1
    assert json.loads(result.stdout)[0]["code"] == "ETM101"


def test_folder_named_like_a_program(tmp_path: Path) -> None:
    # Before: IsADirectoryError from file_digest.
    shutil.copy(SRC / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "model.pte").mkdir()
    code, codes, _ = lint_codes(tmp_path)
    assert (code, codes) == (1, {"ETM101"})


# -- Hugging Face folder files (used to raise) -----------------------------------


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("tokenizer_config.json", b"[" * 100_000, "nested too deeply"),
        ("generation_config.json", b'{"top_k": 1' + b"0" * 5000 + b"}", "too long"),
        ("chat_template.jinja", b"{{ '\xff' }}", "not UTF-8"),
    ],
    ids=["deep-json", "5000-digit-int", "not-utf8"],
)
def test_hostile_folder_config(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    # Before: RecursionError, ValueError, UnicodeDecodeError tracebacks.
    shutil.copy(SRC / "good.pte", tmp_path / "model.pte")
    shutil.copy(SRC / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / name).write_bytes(data)
    code, codes, text = lint_codes(tmp_path)
    assert (code, codes) == (1, {"ETM101"})
    assert name in text and says in text


# -- metadata.json values no reader can hold ------------------------------------


@pytest.mark.parametrize(
    ("literal", "says"),
    [
        (b'"\\ud800"', "lone surrogate"),
        (b"1e400", "too large for a 64-bit float"),
        (b"18446744073709551616", "does not fit in 64 bits"),
    ],
    ids=["lone-surrogate", "float-overflow", "int-2-64"],
)
def test_metadata_values_refused(tmp_path: Path, literal: bytes, says: str) -> None:
    # Before: a surrogate crashed `etm inspect` on a strict stdout; 1e400 read
    # as inf and 2**64 as a number no runtime holds, both without a finding.
    text = GOOD.read_bytes()
    raw = members_of(GOOD)["metadata.json"].replace(b'"good"', literal)
    path = tmp_path / "x.etm"
    path.write_bytes(bundle_bytes(members_of(GOOD), metadata=raw))
    assert text  # the good bundle is untouched
    code, codes, output = lint_codes(path)
    assert (code, codes) == (1, {"ETM103"}) and says in output
    inspected = run_main(etm.main, ["inspect", str(path)])
    assert inspected.crash is None and inspected.code == 0


def test_metadata_null_is_not_an_absent_file(tmp_path: Path) -> None:
    # Before: `null` parsed to None, which the linter took for "no metadata
    # to check": a clean report for a bundle with nothing in it.
    path = tmp_path / "x.etm"
    path.write_bytes(bundle_bytes(members_of(GOOD), metadata=b"null"))
    code, codes, output = lint_codes(path)
    assert (code, codes) == (1, {"ETM103"})
    assert "JSON null, not an object" in output


def test_report_with_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    # Before: UnicodeEncodeError writing the path to a strict UTF-8 stdout.
    odd = tmp_path / os.fsdecode(b"model-\xff.etm")
    shutil.copy(GOOD, odd)
    for fmt in ("text", "json", "sarif", "github", "junit"):
        outcome = run_main(lint.main, ["--no-config", "--output-format", fmt, str(odd)])
        assert outcome.crash is None, outcome.crash
        assert "model-\\udcff.etm" in outcome.stdout or fmt == "junit"


# -- the zip reader ---------------------------------------------------------------


def test_lying_deflated_member_is_inflated_to_its_stated_size(tmp_path: Path) -> None:
    # Before: read() asked zipfile for 256 MiB and zipfile inflated that much
    # before cutting to the 900 bytes the directory claimed.
    bomb = rawzip.zero_bomb("metadata.json").but(size=900)
    path = tmp_path / "x.etm"
    path.write_bytes(rawzip.build([bomb]))
    with Bundle(path) as bundle:
        tracemalloc.start()
        with pytest.raises(FormatError, match="CRC"):
            bundle.read("metadata.json")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 << 20


def test_metadata_over_its_limit_is_refused_before_inflating(tmp_path: Path) -> None:
    # Before: metadata.json was inflated up to 256 MiB, then refused at 4 MiB.
    path = tmp_path / "x.etm"
    path.write_bytes(rawzip.build([rawzip.zero_bomb("metadata.json")]))
    with Bundle(path) as bundle:
        tracemalloc.start()
        with pytest.raises(FormatError, match=str(meta.MAX_METADATA_BYTES)):
            bundle.metadata_bytes()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 1 << 20


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    # Before: two directory entries sharing one local header read as two
    # members (the trick of overlapping zip bombs).
    entry = rawzip.deflated("a.txt", b"x" * 100)
    twin = entry.but(name=b"b.txt", local_name=b"a.txt", header_offset=0)
    path = tmp_path / "x.etm"
    path.write_bytes(rawzip.build([entry, twin]))
    with pytest.raises(FormatError, match="overlap"):
        Bundle(path)


def test_stored_member_without_a_local_header(tmp_path: Path) -> None:
    # Before: read() -> source() -> read() ... RecursionError, through lint
    # when metadata.json was the member.
    members = members_of(GOOD)
    entries = [rawzip.stored(n, d) for n, d in members.items()]
    entries[0] = entries[0].but(header_offset=7)
    path = tmp_path / "x.etm"
    path.write_bytes(rawzip.build(entries))
    with Bundle(path) as bundle:
        for read in (bundle.read, bundle.source, bundle.sha256):
            with pytest.raises(FormatError, match="no local header"):
                read("metadata.json")
    code, codes, _ = lint_codes(path)
    assert code == 1 and {"ETM103", "ETM117"} <= codes


@pytest.mark.parametrize(
    "entry",
    [
        rawzip.deflated("metadata.json", b"{}").but(payload=b"\xff" * 8),
        rawzip.stored("", b"x").but(flags=rawzip.ENCRYPTED, method=rawzip.DEFLATED),
    ],
    ids=["corrupt-deflate", "encrypted-empty-name"],
)
def test_inflate_errors_are_format_errors(tmp_path: Path, entry: rawzip.Entry) -> None:
    # Before: zlib.error, and IndexError from zipfile formatting the name ''.
    path = tmp_path / "x.etm"
    path.write_bytes(rawzip.build([entry]))
    name = entry.name.decode()
    with Bundle(path) as bundle:
        with pytest.raises(FormatError):
            bundle.read(name)
        with pytest.raises(FormatError):
            bundle.sha256(name)


# -- pack ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "generation",
    [{"temperature": float("nan")}, {"max_new_tokens": 10**24}],
    ids=["nan", "2**80"],
)
def test_pack_refuses_settings_its_reader_refuses(
    tmp_path: Path, generation: dict[str, float]
) -> None:
    # Before: written as NaN or a 25-digit integer, a bundle that every
    # reader of it refused.
    out = tmp_path / "x.etm"
    with pytest.raises(EtmError, match=r"metadata\.json"):
        pack_bundle(
            out,
            program=SRC / "good.pte",
            tokenizer=SRC / "tokenizer.json",
            generation=generation,
        )
    assert os.listdir(tmp_path) == []


def test_pack_never_overwrites_its_configuration(tmp_path: Path) -> None:
    # Before: -o hf/tokenizer_config.json renamed the bundle over the config
    # it had just read.
    hf = tmp_path / "hf"
    hf.mkdir()
    config = hf / "tokenizer_config.json"
    shutil.copy(SRC / "tokenizer_config.json", config)
    before = config.read_bytes()
    with pytest.raises(EtmError, match="refusing to overwrite"):
        pack_bundle(
            config,
            program=SRC / "good.pte",
            tokenizer=SRC / "tokenizer.json",
            hf_dir=hf,
        )
    assert config.read_bytes() == before
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    outcome = run_main(
        etm.main,
        [
            "pack",
            "--program",
            str(SRC / "good.pte"),
            "--tokenizer",
            str(SRC / "tokenizer.json"),
            "--chat-template",
            str(template),
            "-o",
            str(template),
        ],
    )
    assert outcome.code == 2 and "refusing to overwrite" in outcome.stderr
    assert template.read_text() == "{{ messages }}"


def test_pack_chat_template_from_a_fifo(tmp_path: Path) -> None:
    # Before: read_text() on a FIFO waits for a writer.
    fifo = tmp_path / "t.jinja"
    os.mkfifo(fifo)
    result = real_run(
        "etm",
        "pack",
        "--program",
        str(SRC / "good.pte"),
        "--tokenizer",
        str(SRC / "tokenizer.json"),
        "--chat-template",
        str(fifo),
        "-o",
        str(tmp_path / "x.etm"),
    )
    assert result.returncode == 2
    assert "not a regular file" in result.stderr
    assert not (tmp_path / "x.etm").exists()


# -- unpack ----------------------------------------------------------------------


def test_unpack_beside_a_stale_partial_folder(tmp_path: Path) -> None:
    # Before: a fixed temporary name; a leftover from a killed run made
    # mkdir raise FileExistsError.
    (tmp_path / ".out.partial").mkdir()
    outcome = run_main(etm.main, ["unpack", str(GOOD), str(tmp_path / "out")])
    assert outcome.code == 0, outcome.stderr + (outcome.crash or "")
    assert sorted(os.listdir(tmp_path)) == [".out.partial", "out"]


def test_unpack_member_names_that_collide(tmp_path: Path) -> None:
    # Before: NotADirectoryError from makedirs, a traceback.
    members = members_of(GOOD)
    document = json.loads(members["metadata.json"])
    document["program"]["member"] = "x"
    document["tokenizer"]["member"] = "x/tokenizer.json"
    members = {
        "x": members["model.pte"],
        "x/tokenizer.json": members["tokenizer.json"],
        "metadata.json": b"",
    }
    path = tmp_path / "x.etm"
    path.write_bytes(bundle_bytes(members, metadata=document))
    out = tmp_path / "out"
    outcome = run_main(etm.main, ["unpack", str(path), str(out)])
    assert outcome.crash is None and outcome.code == 2
    assert outcome.stderr.count("\n") == 1 and "not unpacked" in outcome.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.etm"]


def test_unpack_refuses_a_bomb(tmp_path: Path) -> None:
    # Before: a 1 GiB tokenizer inflated to disk from 1 MB (64 GiB from
    # 64 MB would have filled it).
    path = tmp_path / "x.etm"
    write_tokenizer_bomb(path, size=BOMB_SIZE, sha256="0" * 64)
    outcome = run_main(etm.main, ["unpack", str(path), str(tmp_path / "out")])
    assert outcome.code == 2 and "zip bomb" in outcome.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.etm"]


# -- the cache -------------------------------------------------------------------


def test_cache_store_stops_at_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    chunks = (bytes(1 << 20) for _ in range(1 << 12))  # 4 GiB, lazily
    with pytest.raises(EtmError, match="larger than"):
        cache.store("0" * 64, "tokenizer.json", chunks, max_bytes=8 << 20)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("claim", ["true", "small"])
def test_lint_never_extracts_a_tokenizer_bomb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claim: str
) -> None:
    # Before: the 1 GiB tokenizer was hashed and written to the cache (5 to
    # 20 s, a gigabyte of disk) before the loader refused it for its size.
    # metadata.json states either the true size or a small one; the zip's
    # own directory size bounds what would be inflated either way.
    path = tmp_path / "x.etm"
    write_tokenizer_bomb(path, size=BOMB_SIZE if claim == "true" else 1000)
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    code, codes, text = lint_codes(path)
    assert code == 1 and "ETM116" in codes
    assert "not extracted" in text
    assert not (tmp_path / "cache").exists()


# -- templates -------------------------------------------------------------------


def test_a_template_out_of_time_is_rendered_once(tmp_path: Path) -> None:
    # Before: each of the 7 probe conversations ran to the 2 s time limit,
    # and the end-of-turn probe once more: 16 s for one bundle.
    from etm_lint.lint.rules import template as rules
    from etm_lint.lint.target import Target
    from etm_lint.template import TemplateErrorKind

    members = members_of(GOOD)
    document = json.loads(members["metadata.json"])
    document["chat_template"] = (
        "{% for a in range(100000) %}{% for b in range(100000) %}"
        "{% endfor %}{% endfor %}"
    )
    members["metadata.json"] = json.dumps(document).encode()
    path = tmp_path / "x.etm"
    path.write_bytes(bundle_bytes(members))
    target = Target(str(path))
    try:
        probe = rules._probe(target)
        assert len(probe.rendered) == 1
        assert probe.limit_hit is not None
        assert probe.limit_hit.kind is TemplateErrorKind.TIME_LIMIT
        assert rules.turn_marker(target) is None
        (issue,) = rules.template_limits(target)
        assert "time limit" in issue.message
    finally:
        target.close()


@pytest.mark.parametrize(
    ("template", "says"),
    [
        # Before: 13 s to compile (Jinja folds constants over every subtree
        # at every level), then a syntax error from Python's own limit.
        ("{{ x" + ".a" * 300 + " }}", "nests more than 64 levels"),
        ("{% if 1 %}" * 80 + "{% endif %}" * 80, "nests more than 64 levels"),
        # Before: 10 s, then compiled: a megabyte of tiny outputs.
        ("{{ x.a }}" * 100_000, "more than 20000 tokens"),
        ("{{ [" + "1," * 9_000 + "1] }}", "more than 8000 syntax nodes"),
    ],
)
def test_template_size_and_nesting_refused_before_compiling(
    template: str, says: str
) -> None:
    from etm_lint.template import TemplateError, compile_template

    with pytest.raises(TemplateError, match=says):
        compile_template(template)


def test_unknown_escape_in_a_template_string_is_not_an_error_under_w_error() -> None:
    # Found by the template fuzzer: Jinja decodes '\q' with Python's escapes,
    # which warns; under -W error (or PYTHONWARNINGS=error) the warning became
    # a syntax error (ETM501) for a template transformers renders.
    import warnings

    from etm_lint.template import render

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = render('{{ "a\\qb-w-error" }}', [{"role": "user", "content": "x"}])
    assert text == "a\\qb-w-error"


# -- writing where the user did not mean to ------------------------------------


def test_pack_does_not_replace_a_fifo_or_device(tmp_path: Path) -> None:
    """`etm pack -o FIFO` (or `-o /dev/null` as root) renamed a bundle over
    the node; now it is refused and the node stays what it was."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    argv = ["pack", "--program", str(SRC / "good.pte")]
    argv += ["--tokenizer", str(SRC / "tokenizer.json"), "-o", str(fifo)]
    outcome = run_main(etm.main, argv)
    assert outcome.code == 2 and "not a regular file" in outcome.stderr
    assert fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]


def test_lint_report_and_fixed_copy_never_overwrite_the_input(
    tmp_path: Path,
) -> None:
    """`etm-lint -o model.etm model.etm` replaced the bundle by its report."""
    bundle = tmp_path / "model.etm"
    shutil.copyfile(GOOD, bundle)
    before = bundle.read_bytes()
    for argv in (
        ["-o", str(bundle), str(bundle)],
        ["--fix", "--fixed-copy", str(bundle), str(bundle)],
    ):
        outcome = run_main(lint.main, argv)
        assert outcome.code == 2 and "refusing to overwrite" in outcome.stderr
    assert bundle.read_bytes() == before


def test_a_repeated_metadata_key_is_refused() -> None:
    """`{"kind": "llm", ..., "kind": "other"}` was read as kind "other"
    (last wins) where another reader takes the first."""
    with pytest.raises(ValueError, match="repeats the key 'kind'"):
        meta.parse(b'{"kind": "llm", "format_version": "1.0", "kind": "other"}')


def test_a_false_hash_claim_does_not_borrow_another_tokenizer(tmp_path: Path) -> None:
    """The runtime's tokenizer folder was cached under the sha256 that
    metadata.json claims: a bundle claiming the good tokenizer's hash, with
    other bytes, was linted (and rendered) with the good tokenizer."""
    from etm_lint.lint.target import LintOptions, Target

    liar = tmp_path / "liar.etm"
    swapped = write_swapped_tokenizer(liar)
    good = members_of(GOOD)["tokenizer.json"]
    for path, expected in ((GOOD, good), (liar, swapped)):
        target = Target(str(path), LintOptions())
        try:
            folder = target.runtime_tokenizer_path
            assert folder is not None
            assert (folder / "tokenizer.json").read_bytes() == expected
        finally:
            target.close()


def test_fix_refuses_a_compression_bomb(tmp_path: Path) -> None:
    """`--fix` inflated a bomb member whole into memory (1 GiB for a 1.3 MB
    bundle) and wrote it into the copy."""
    bomb = tmp_path / "bomb.etm"
    write_tokenizer_bomb(bomb)
    fixed = tmp_path / "fixed.etm"
    outcome = run_main(lint.main, ["--fix", "--fixed-copy", str(fixed), str(bomb)])
    assert outcome.code == 2 and "compression bomb" in outcome.stderr
    assert not fixed.exists()


def test_a_cache_that_cannot_be_written_is_not_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable cache was reported as ETM301 [error] against the bundle
    (exit 1: a false release blocker); it is this machine's trouble."""
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("ETM_CACHE_DIR", str(blocker / "cache"))
    outcome = run_main(lint.main, ["--no-config", str(GOOD)])
    assert outcome.code == 2
    assert outcome.one_line_error("etm-lint: cannot write the cache")
    assert "ETM_CACHE_DIR" in outcome.stderr


def test_unpack_writes_only_what_the_bundle_vouches_for(tmp_path: Path) -> None:
    """`etm unpack` wrote a tampered tokenizer, and a format_version 2.0
    bundle, without a word."""
    tampered = tmp_path / "tampered.etm"
    write_swapped_tokenizer(tampered)
    members = members_of(GOOD)
    later = tmp_path / "later.etm"
    document = json.loads(members["metadata.json"])
    later.write_bytes(
        bundle_bytes(members, metadata={**document, "format_version": "2.0"})
    )
    for bundle, says in ((tampered, "hashing to"), (later, "format_version 2.0")):
        out = tmp_path / f"{bundle.stem}-out"
        outcome = run_main(etm.main, ["unpack", str(bundle), str(out)])
        assert outcome.code == 2 and says in outcome.stderr, outcome.stderr
        assert not out.exists()
        assert (
            sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
        )
