"""The bundle format: deterministic, atomic, aligned writing; in-place reads."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from etm_lint.errors import EtmError, FormatError
from etm_lint.format import metadata as meta
from etm_lint.format.bundle import ALIGNMENT, Bundle
from etm_lint.format.pack import pack_bundle, read_hf_folder


def _pack(stories: Path, out: Path, **extra: object) -> dict[str, object]:
    return pack_bundle(
        out,
        program=stories / "model_ext.pte",
        weights=[stories / "model_weights.ptd"],
        tokenizer=stories / "tokenizer.model",
        hf_dir=stories,
        **extra,  # type: ignore[arg-type]
    )


def test_pack_twice_gives_identical_bytes(stories: Path, tmp_path: Path) -> None:
    _pack(stories, tmp_path / "a.etm")
    _pack(stories, tmp_path / "b.etm")
    digests = {
        hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()
        for n in ("a.etm", "b.etm")
    }
    assert len(digests) == 1


def test_program_and_weights_are_stored_and_aligned(
    stories: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.etm"
    _pack(stories, out)
    with zipfile.ZipFile(out) as archive:
        infos = archive.infolist()
        assert infos[0].filename == "metadata.json"
        by_name = {i.filename: i for i in infos}
        raw = out.read_bytes()
        sources = {
            "model.pte": "model_ext.pte",
            "weights/model_weights.ptd": "model_weights.ptd",
        }
        for name, source in sources.items():
            info = by_name[name]
            assert info.compress_type == zipfile.ZIP_STORED
            # Where the data starts, read from the local header as any zip
            # reader does: 30 bytes, then the name and the extra field.
            start = info.header_offset
            name_len = int.from_bytes(raw[start + 26 : start + 28], "little")
            extra_len = int.from_bytes(raw[start + 28 : start + 30], "little")
            data = start + 30 + name_len + extra_len
            assert data % ALIGNMENT == 0
            expected = (stories / source).read_bytes()
            assert raw[data : data + info.file_size] == expected
        # The archive is valid for the standard library's own checker.
        assert archive.testzip() is None


def test_reader_reads_ranges_in_place_and_hashes(stories: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.etm"
    document = _pack(stories, out)
    program = (stories / "model_ext.pte").read_bytes()
    with Bundle(out) as bundle:
        source = bundle.source("model.pte")
        assert source.read(4, 4) == b"ET12"
        assert source.read(1000, 64) == program[1000:1064]
        assert bundle.sha256("model.pte") == document["program"]["sha256"]  # type: ignore[index]
        with pytest.raises(FormatError):
            source.read(len(program) - 2, 4)


def test_metadata_is_valid_and_reflects_the_hf_folder(
    stories: Path, tmp_path: Path
) -> None:
    document = _pack(stories, tmp_path / "m.etm")
    assert meta.validate(document) == []
    # The stories260K folder's tokenizer_config.json says these.
    assert document["special_tokens"] == {"bos": "<s>", "eos": ["</s>"], "unk": "<unk>"}
    assert document["num_bos"] == 1
    assert "chat_template" not in document


def test_hf_folder_reads_real_llama3_files(real: Path, tmp_path: Path) -> None:
    folder = tmp_path / "llama3"
    folder.mkdir()
    src = real / "chat_templates"
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_bytes((src / f"llama3-8B-instruct__{name}").read_bytes())
    settings = read_hf_folder(folder)
    assert settings.bos == "<|begin_of_text|>"
    assert settings.eos == ["<|end_of_text|>"] or settings.eos[0].startswith("<|e")
    assert isinstance(settings.chat_template, str)


def test_generation_config_ids_are_spelled_by_the_tokenizer(
    stories: Path, tmp_path: Path
) -> None:
    """A model folder with only generation_config.json (stories260K's hf/)
    names BOS and EOS by id; the bundle declares them as the tokenizer
    spells them. The reference: Hugging Face tokenizers on the same file."""
    tokenizers = pytest.importorskip("tokenizers")
    out = tmp_path / "m.etm"
    pack_bundle(
        out,
        program=stories / "model.pte",
        tokenizer=stories / "tokenizer.json",
        hf_dir=stories / "hf",
    )
    with Bundle(out) as bundle:
        raw = bundle.metadata_bytes()
    assert raw is not None
    declared = meta.parse(raw)["special_tokens"]
    hf = tokenizers.Tokenizer.from_file(str(stories / "tokenizer.json"))
    assert declared == {
        "bos": hf.id_to_token(1),
        "eos": [hf.id_to_token(1), hf.id_to_token(2)],
    }


def test_failed_pack_leaves_nothing(stories: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.etm"
    with pytest.raises(EtmError):
        _pack(stories, out, num_bos=99)  # outside the schema's range
    assert os.listdir(tmp_path) == []


def test_pack_refuses_to_overwrite_an_input(stories: Path, tmp_path: Path) -> None:
    program = tmp_path / "model.pte"
    program.write_bytes((stories / "model.pte").read_bytes())
    with pytest.raises(EtmError, match="overwrite an input"):
        pack_bundle(program, program=program, tokenizer=stories / "tokenizer.model")
    assert program.read_bytes() == (stories / "model.pte").read_bytes()


def test_not_a_zip_is_one_format_error(tmp_path: Path) -> None:
    path = tmp_path / "x.etm"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(FormatError, match=r"x\.etm"):
        Bundle(path)
