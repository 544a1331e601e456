"""``etm-lint --fix``: a fixed copy where the fix is mechanical.

Re-aligning and un-compressing the program and weights, putting
``metadata.json`` first, recording the members' real sizes and hashes and
dropping members nobody references are mechanical: the fixed copy holds the
same program, weights and tokenizer bytes. Anything else needs a person. The
input is never touched; the copy is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from etm_lint import cache
from etm_lint.errors import EtmError
from etm_lint.format.writer import MemberSource, write_bundle
from etm_lint.lint.target import Target

FIXES = "aligned STORED program and weights, metadata first, real sizes and hashes"


def write_fixed_copy(target: Target, out: Path) -> str:
    """Write the fixed copy of ``target`` to ``out``; returns a one-line note."""
    if target.bundle is None:
        raise EtmError(f"{target.path}: --fix works on bundles, not folders")
    if os.path.exists(out) and os.path.samefile(out, target.path):
        raise EtmError(f"{out}: is the input; refusing to overwrite it")
    document = target.valid_metadata
    if document is None:
        raise EtmError(
            f"{target.path}: metadata.json must be valid before a fix can be made"
        )
    bundle = target.bundle
    document = dict(document)
    members: list[MemberSource] = []
    entries = [("program", document["program"], True)]
    entries += [("weights", w, True) for w in document.get("weights", [])]
    entries.append(("tokenizer", document["tokenizer"], False))
    fixed_weights = []
    rehashed = []
    for role, entry, mapped in entries:
        name = entry["member"]
        member = bundle.get(name)
        if member is None:
            raise EtmError(f"{target.path}: {name} is missing; no mechanical fix")
        if member.looks_like_bomb:
            raise EtmError(f"{target.path}: {name} looks like a compression bomb")
        digest = bundle.sha256(name)
        path = cache.store(digest, name, bundle.chunks(name))
        fixed = {**entry, "size": path.stat().st_size, "sha256": digest}
        if (fixed["size"], digest) != (entry["size"], entry["sha256"]):
            rehashed.append(f"{name} (metadata said {entry['sha256'][:12]}…)")
        if role == "weights":
            fixed_weights.append(fixed)
        else:
            document[role] = fixed
        members.append(MemberSource(name, path, aligned=mapped))
    if fixed_weights:
        document["weights"] = fixed_weights
    write_bundle(out, document, members)
    dropped = len(bundle.members) - len(members) - 1
    extra = f"; dropped {dropped} unreferenced member(s)" if dropped > 0 else ""
    if rehashed:
        # The one fix that changes what the bundle vouches for: say so.
        extra += (
            f"; WARNING: recorded the real size and sha256 of {', '.join(rehashed)}"
            ": ship this copy only if that member is the one you meant"
        )
    return f"wrote {out} ({FIXES}{extra})"
