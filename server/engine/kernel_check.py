"""A load-time check of the kernel property that short-prompt prefix reuse rests on.

The scheduler reuses a cached prefix of any length for prompts shorter than CPU_FA_TILE_ROWS
(server/engine/slots.py), because ggml's CPU kernels compute such prompts row by row, so a
prompt cut anywhere gives bit-identical logits. That is a property of this llama.cpp build on
this hardware, not a promise: the engine checks it once on the loaded model and turns the reuse
off where it does not hold. Cost: three small decodes of the model at load.
"""

from __future__ import annotations

import llama_cpp
import numpy as np

from .slots import CPU_FA_TILE_ROWS


def cut_logits(ctx, n_vocab: int, tokens: list[int], cut: int | None = None, seq_id: int = 0) -> np.ndarray:
    """The last token's logits after decoding `tokens` in `seq_id`, whole or cut in two chunks at
    `cut`. Leaves `seq_id`'s KV cells empty."""
    mem = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    try:
        llama_cpp.llama_memory_seq_rm(mem, seq_id, -1, -1)
        bounds = [0] + ([cut] if cut else []) + [len(tokens)]
        for a, b in zip(bounds, bounds[1:]):
            batch.n_tokens = b - a
            for j, pos in enumerate(range(a, b)):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = tokens[pos], pos, 1
                batch.seq_id[j][0] = seq_id
                batch.logits[j] = pos == len(tokens) - 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed during the kernel check")
        ptr = llama_cpp.llama_get_logits_ith(ctx, batch.n_tokens - 1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()
    finally:
        llama_cpp.llama_memory_seq_rm(mem, seq_id, -1, -1)
        llama_cpp.llama_batch_free(batch)


def short_prompt_cuts_are_exact(ctx, n_vocab: int, tokens: list[int], seq_id: int = 0) -> bool:
    """Whether `tokens` (shorter than CPU_FA_TILE_ROWS) decoded whole, and cut in two at two
    places, end on bit-identical logits. Leaves `seq_id`'s KV cells empty."""
    assert 2 < len(tokens) < CPU_FA_TILE_ROWS
    whole = cut_logits(ctx, n_vocab, tokens, None, seq_id)
    return all(np.array_equal(cut_logits(ctx, n_vocab, tokens, cut, seq_id), whole)
               for cut in (len(tokens) // 3, len(tokens) - 2))
