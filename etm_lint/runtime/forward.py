"""Greedy decoding by calling a program's ``forward`` through ``executorch.runtime``.

The LLM runner streams text pieces and never tells which token ids it chose.
This loop makes the same calls the runner makes (``TextPrefiller`` and
``TextTokenGenerator`` in executorch's ``extension/llm/runner``), so at
temperature 0 it chooses the same ids, and it can report them:

- the prompt is prefilled in one call when the program has a dynamic sequence
  length (``enable_dynamic_shape``), in chunks of ``get_max_seq_len`` when the
  prompt is longer, and one token per call otherwise;
- the second input is a ``cache_position`` vector ``[start, start + S)`` when
  the program declares it longer than one element, else the start position
  alone (the llama example's ``input_pos``); a program with a single input
  has no KV cache and gets the whole sequence at every step;
- the next token is the argmax of the last position's logits (the first
  maximum on ties, as the runner's sampler);
- the first generated token (the one prefill picks) is never compared with
  the EOS ids: the runner only checks tokens from its decode loop.

torch and executorch are imported here, lazily; importing this module costs
nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from etm_lint.errors import EtmError


@dataclass(frozen=True)
class Layout:
    """How the runner feeds this program, read from its constant methods."""

    max_seq_len: int
    max_context_len: int
    dynamic_shape: bool
    kv_cache: bool
    # True: a cache_position vector; False: the start position alone.
    position_vector: bool
    takes_position: bool
    eos_ids: tuple[int, ...]


# The constant methods the runner reads (llm_runner_helper.cpp).
_RUNNER_CONSTANTS = (
    "get_max_seq_len",
    "get_max_context_len",
    "enable_dynamic_shape",
    "use_kv_cache",
    "get_eos_ids",
)


def _constants(program: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in _RUNNER_CONSTANTS:
        if name in program.method_names:
            values = program.load_method(name).execute([])
            found[name] = values[0] if len(values) == 1 else list(values)
    return found


def read_layout(program: Any) -> Layout:
    """The runner's view of a loaded ``executorch.runtime`` program."""
    consts = _constants(program)
    if "get_max_seq_len" not in consts:
        raise EtmError("the program has no get_max_seq_len; the runner refuses it")
    max_seq = int(consts["get_max_seq_len"])
    meta = program.metadata("forward")
    takes_position = meta.num_inputs() > 1
    vector = takes_position and int(meta.input_tensor_meta(1).sizes()[0]) > 1
    eos = consts.get("get_eos_ids", ())
    return Layout(
        max_seq_len=max_seq if max_seq > 0 else 128,
        max_context_len=int(consts.get("get_max_context_len", max_seq)),
        dynamic_shape=bool(consts.get("enable_dynamic_shape", False)),
        kv_cache=bool(consts.get("use_kv_cache", True)),
        position_vector=vector,
        takes_position=takes_position,
        eos_ids=tuple(int(i) for i in (eos if isinstance(eos, list) else [eos])),
    )


def _import_runtime() -> Any:
    # portable_lib warns that its API is experimental on every first import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import executorch.runtime

    return executorch.runtime


class ForwardLoop:
    """A program's ``forward`` method, loaded once and driven token by token."""

    def __init__(self, program: str, data_files: Sequence[str] = ()):
        if len(data_files) > 1:
            raise EtmError(f"{program}: one .ptd file at most, got {len(data_files)}")
        runtime = _import_runtime()
        data = data_files[0] if data_files else None
        try:
            loaded = runtime.Runtime.get().load_program(program, data_path=data)
            self.layout = read_layout(loaded)
            self._method = loaded.load_method("forward")
        except (RuntimeError, KeyError, ValueError) as err:
            raise EtmError(
                f"{program}: executorch.runtime cannot load it: {err}"
            ) from None
        self._program = loaded

    def greedy(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int,
        eos_ids: Iterable[int],
        *,
        should_stop: Callable[[list[int]], bool] | None = None,
    ) -> list[int]:
        """Up to ``max_new_tokens`` ids after the prompt, the stop token included.

        ``should_stop`` sees the ids so far after each token that is not an
        end of generation, and ends the loop when it answers True (stop
        strings).
        """
        import torch

        if not prompt_ids:
            raise ValueError("the prompt has no tokens")
        eos = set(eos_ids)
        with torch.no_grad():
            out = [self._prefill(list(prompt_ids))]
            seq = list(prompt_ids) + out
            while len(out) < max_new_tokens:
                if len(out) > 1 and out[-1] in eos:
                    break
                if should_stop is not None and should_stop(out):
                    break
                out.append(self._decode(seq))
                seq.append(out[-1])
        return out

    def _prefill(self, ids: list[int]) -> int:
        lay = self.layout
        if lay.dynamic_shape or not lay.kv_cache:
            token = -1
            for start in range(0, len(ids), lay.max_seq_len):
                chunk = ids[start : start + lay.max_seq_len]
                token = self._step(chunk, start)
            return token
        # Sequential prefill: one call per prompt token.
        for pos, tok in enumerate(ids):
            token = self._step([tok], pos)
        return token

    def _decode(self, seq: list[int]) -> int:
        if self.layout.kv_cache:
            return self._step(seq[-1:], len(seq) - 1)
        return self._step(seq, 0)

    def _step(self, tokens: list[int], start: int) -> int:
        import torch

        inputs = [torch.tensor([tokens], dtype=torch.long)]
        if self.layout.takes_position:
            if self.layout.position_vector:
                pos = torch.arange(start, start + len(tokens), dtype=torch.long)
            else:
                pos = torch.tensor([start], dtype=torch.long)
            inputs.append(pos)
        logits = self._method.execute(inputs)[0]
        return int(logits.reshape(-1, logits.shape[-1])[-1].argmax())


def greedy(
    program: str,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    eos_ids: Iterable[int],
    data_files: Sequence[str] = (),
) -> list[int]:
    """Greedy ids for ``prompt_ids``, made as the runner makes them.

    The result holds at most ``max_new_tokens`` ids and ends with the EOS id
    when one stopped it. Native log output is not captured here; callers that
    need clean descriptors wrap the call (``etm_lint.runtime.runner`` does).
    """
    return ForwardLoop(program, data_files).greedy(prompt_ids, max_new_tokens, eos_ids)
