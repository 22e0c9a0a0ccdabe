"""Load-time checks of the kernel properties that prefix reuse at any length rests on.

The scheduler reuses a cached prefix of any length for prompts shorter than CPU_FA_TILE_ROWS
(server/engine/slots.py), because ggml's CPU kernels compute such prompts row by row, so a
prompt cut anywhere gives bit-identical logits; and a longer prompt prefilled in chunks of
CPU_FA_TILE_ROWS rows or more (the tiled kernel) likewise gives the same logits however those
chunks are cut. These are properties of this llama.cpp build on this hardware, not promises: the
engine checks them once on the loaded model and turns the reuse off where they do not hold.
Cost: three small decodes and two of 300 tokens at load.
"""

from __future__ import annotations

from typing import Sequence

import llama_cpp
import numpy as np

from .slots import CPU_FA_TILE_ROWS, tiled_chunk_end


def cut_logits(ctx, n_vocab: int, tokens: list[int], cut: int | Sequence[int] | None = None,
               seq_id: int = 0) -> np.ndarray:
    """The last token's logits after decoding `tokens` in `seq_id`, whole or cut into chunks at
    `cut` (one position or several, increasing). Leaves `seq_id`'s KV cells empty."""
    mem = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    cuts = [] if not cut else [cut] if isinstance(cut, int) else list(cut)
    try:
        llama_cpp.llama_memory_seq_rm(mem, seq_id, -1, -1)
        bounds = [0] + cuts + [len(tokens)]
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


def long_prompt_cuts(n: int, block: int) -> tuple[list[int], list[int]]:
    """Two ways to prefill `n` tokens in chunks of CPU_FA_TILE_ROWS rows or more: as the scheduler
    cuts a long prompt (slots.tiled_chunk_end), and as a hit restarting elsewhere would."""
    ours, pos = [], 0
    while pos < n:
        pos = tiled_chunk_end(pos, n, block)
        ours.append(pos)
    other = list(range(CPU_FA_TILE_ROWS + 37, n - CPU_FA_TILE_ROWS, CPU_FA_TILE_ROWS + 37))
    return ours[:-1], other


def long_prompt_cuts_are_exact(ctx, n_vocab: int, tokens: list[int], block: int, seq_id: int = 0) -> bool:
    """Whether `tokens` prefilled in chunks of CPU_FA_TILE_ROWS rows or more, cut two different
    ways, end on bit-identical logits. Leaves `seq_id`'s KV cells empty."""
    ours, other = long_prompt_cuts(len(tokens), block)
    assert ours != other and len(tokens) >= 3 * CPU_FA_TILE_ROWS
    return np.array_equal(cut_logits(ctx, n_vocab, tokens, ours, seq_id),
                          cut_logits(ctx, n_vocab, tokens, other, seq_id))
