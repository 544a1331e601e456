"""Pack examples/stories260K.etm and stories260K_ext.etm from the real files.

The sources are Karpathy's stories260K (MIT), converted and exported with
the real ExecuTorch export, in ``../shared/real/models/stories260K`` (see its
PROVENANCE.md). This script only packs; rerunning it gives identical bytes.

    python examples/build_stories260K.py [--source DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from etm_lint.format.pack import pack_bundle

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "real" / "models" / "stories260K"


def settings(source: Path) -> dict[str, object]:
    # The model ends a story by emitting BOS (id 1), as llama2.c trained it;
    # its generation_config.json says eos_token_id [1, 2], so both token texts
    # are declared EOS, matching the program's get_eos_ids.
    generation = json.loads((source / "hf" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [1, 2], generation
    return {
        "hf_dir": source,
        "special_tokens": {"bos": "<s>", "eos": ["</s>", "<s>"], "unk": "<unk>"},
        "num_bos": 1,
        "generation": {"temperature": 0.0, "max_new_tokens": 256},
        "name": "stories260K",
    }


def build(source: Path, out_dir: Path) -> list[Path]:
    common = settings(source)
    inside = out_dir / "stories260K.etm"
    pack_bundle(
        inside,
        program=source / "model.pte",
        tokenizer=source / "tokenizer.model",
        **common,  # type: ignore[arg-type]
    )
    external = out_dir / "stories260K_ext.etm"
    pack_bundle(
        external,
        program=source / "model_ext.pte",
        weights=[source / "model_weights.ptd"],
        tokenizer=source / "tokenizer.model",
        **common,  # type: ignore[arg-type]
    )
    return [inside, external]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for path in build(args.source, args.out):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.name}  {path.stat().st_size} bytes  sha256 {digest}")


if __name__ == "__main__":
    main()
