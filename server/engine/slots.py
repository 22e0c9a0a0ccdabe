"""Slots: one sequence (and one KV stream) each, and the rules for placing a request in one.

A slot keeps the KV cells of its last sequence when it finishes (the prefix cache). These pure
helpers and constants say which idle slot a new request takes and how much of a cached prefix it
may reuse; server/engine/scheduler.py applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sampling import SamplerChain
from .text import IncrementalText

if TYPE_CHECKING:
    from .jobs import Job

# A cached prefix shorter than this is not worth a seq_cp (cells are cheap to recompute).
MIN_REUSE_TOKENS = 8
# ggml's CPU flash attention (GGML_FA_TILE_Q in ggml-cpu/common.h) runs a chunk of fewer query
# rows than this per stream through a per-row kernel, and larger chunks through a tiled one that
# rounds differently. So a prompt shorter than this is computed by the per-row kernel however it
# is cut (one chunk, or split by llama.cpp into ubatches beside other sequences), and its cached
# prefix can be reused at any length with output identical to a miss. Measured on the embedded
# model: splitting a 30-63-token prompt anywhere leaves its logits bit-identical; splitting a
# 64-token prompt anywhere changes them (by up to 0.9).
# The tiled kernel, for its part, computes each row alike in any chunk of at least this many rows:
# a 300- or 1,300-token prompt cut anywhere into such chunks (64, 72, 100, 128, 136 or 512 rows)
# ends on bit-identical logits, while one chunk of 36 rows among them changes them (by 0.7). So a
# longer prompt is prefilled in chunks of at least this many rows (tiled_chunk_end), and its cached
# prefix can be reused at any length that leaves at least this many tokens to prefill (the long
# prompt rule, reusable_length). Per-row chunks would be no substitute: at 1,200 cells of context
# the per-row kernel took about 17 ms a row here against the tiled one's 3.5, so a warm request
# recomputes 64 tiled rows (about 0.2 s) sooner than 20 per-row ones (0.34 s).
CPU_FA_TILE_ROWS = 64
# The same kernel has a third path (use_split_kv_path in ggml-cpu/ops.cpp): one query row of one
# stream over 512 or more KV cells is split across the threads by KV cells, and rounds differently
# from the per-row kernel. llama.cpp pads a stream's KV view to a multiple of 256 cells, so a
# chunk ending at or below this position never meets it, however llama.cpp cuts it; a chunk past
# it must never reach the kernel as a lone row (scheduler._step's cut_alike). Measured: a repeated
# 700-token prompt whose last row was computed alone started its answer with a log-probability of
# -0.67 where a miss had -0.72. Decoded tokens are such rows, so the long prompt rule never reuses
# them as prompt (Slot.prefilled).
SPLIT_KV_FREE_END = 256


@dataclass
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this seq holds, pos 0..n-1
    last_used: float = 0.0
    job: "Job | None" = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to prefill
    next_token: int | None = None  # sampled, not yet decoded
    sampler: SamplerChain | None = None
    text: IncrementalText | None = None
    n_generated: int = 0
    prompt_len: int = 0
    reused: int = 0
    first_token_at: float | None = None
    batch_index: int = -1
    short: bool = False  # every cached cell came from a prompt shorter than CPU_FA_TILE_ROWS (or decoding)
    boundary: int | None = None  # the prefix boundary its cells were prefilled with (chunk_end)
    long: bool = False  # every prefilled cell came from a chunk of CPU_FA_TILE_ROWS rows or more
    prefilled: int = 0  # how many of its cached cells the prefill computed (the rest: decoded)
    scoring: int = 0  # teacher-forced tokens scored in the prefill (forced_tokens with logprobs), 0: none
    batch_rows: list[int] = field(default_factory=list)  # this step's logits rows, one per scored position


def compact_choices(slots: list[Slot], idle: list[Slot], final_count: int = 0) -> list[Slot]:
    """The idle slots that keep the running sequences on a compact run of seq ids.

    `final_count` is how many slots will be busy once every request now waiting is placed. Any
    slot that still lets them end on a run of that length will do (a burst of requests then finds
    each its own cached slot); if none does, the slots that leave the shortest run."""
    span = {s.seq_id: run_span(slots, s) for s in idle}
    fitting = [s for s in idle if span[s.seq_id] <= final_count]
    if fitting:
        return fitting
    shortest = min(span.values())
    return [s for s in idle if span[s.seq_id] == shortest]


def run_span(slots: list[Slot], joining: Slot) -> int:
    """The length of the run of seq ids from the lowest to the highest busy slot, `joining` included."""
    ids = [s.seq_id for s in slots if s.job is not None] + [joining.seq_id]
    return max(ids) - min(ids) + 1


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# -- prefill chunks and exact reuse -------------------------------------------------------------
# A token's KV cells depend, in the last bits, on the chunk it was computed in, so a cache hit
# gives exactly a miss's output only when the reused cells and the tail are cut into the chunks a
# miss would use. Prompts are prefilled in blocks aligned to multiples of `block` from position 0;
# a request that names a prefix boundary (the end of a shared system prompt or database schema,
# GenerationRequest.prefix_boundary) has its blocks end there and restart from it, so the whole
# shared prefix, not just its whole blocks, can be reused by the next request with that boundary.
# On a CPU build where the load-time check holds, two rules cut finer (CPU_FA_TILE_ROWS): a
# prompt shorter than CPU_FA_TILE_ROWS is computed row by row and a longer one in chunks of at
# least that many rows, and either reuses a cache of its own kind at any length.


def chunk_end(pos: int, boundary: int | None, block: int) -> int:
    """Where the prefill chunk that starts at `pos` ends (exclusive), at the latest."""
    if boundary is not None and pos < boundary:
        return min((pos // block + 1) * block, boundary)
    if boundary is not None:
        return boundary + ((pos - boundary) // block + 1) * block
    return (pos // block + 1) * block


def tiled_chunk_end(pos: int, end: int, block: int) -> int:
    """Where a long prompt's chunk that starts at `pos` ends, `end` being where its prefill ends:
    `block` rows, or fewer so that what follows keeps CPU_FA_TILE_ROWS rows, or all that is left.
    Every chunk then has CPU_FA_TILE_ROWS rows or more when the prefill starts with that many left
    and `block` is at least twice that."""
    left = end - pos
    if left <= block:
        return end
    return pos + min(block, left - CPU_FA_TILE_ROWS)


def last_chunk_end(pos: int, boundary: int | None, block: int) -> int:
    """The last aligned chunk end (chunk_end's) at or before `pos`; 0 counts as one."""
    if boundary is not None and pos >= boundary:
        return boundary + (pos - boundary) // block * block
    return pos // block * block


def reusable_length(match: int, boundary: int | None, cached_boundary: int | None, block: int, *,
                    long: bool = False, cached_long: bool = False, cached_prefilled: int | None = None,
                    length: int | None = None) -> int:
    """How much of a `match`-token cached prefix a request may reuse and stay bit-identical to a
    miss.

    `long`/`cached_long`: the request is, and the cache was, prefilled by the long prompt rule
    (tiled_chunk_end); `cached_prefilled`: how many of the cache's cells its prefill computed (the
    rest were decoded, one row at a time); `length`: the request's prompt length.

    Both long: any length within the cache's prefilled cells that leaves CPU_FA_TILE_ROWS tokens
    to prefill. One long, not the other: nothing (their cells come from different kernels).
    Otherwise up to a chunk end of its own, computed with the same chunk ends as the cache, within
    the cache's whole prefilled chunks: with equal boundaries the last chunk end at or before that;
    otherwise only the whole blocks below both boundaries are cut alike."""
    prefilled = match if cached_prefilled is None else cached_prefilled
    if long != cached_long:
        return 0
    if long:
        assert length is not None, "the long prompt rule needs the prompt's length"
        return max(0, min(match, prefilled, length - CPU_FA_TILE_ROWS))
    limit = match if cached_prefilled is None else min(match, last_chunk_end(prefilled, cached_boundary, block))
    if boundary == cached_boundary:
        return last_chunk_end(limit, boundary, block)
    limit = min(b for b in (limit, boundary, cached_boundary) if b is not None)
    return limit // block * block
