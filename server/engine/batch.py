"""Filling one `llama_batch` from the scheduler's per-slot token lists."""

from __future__ import annotations

from .slots import Slot

# (slot, tokens to decode for it this step, how many of its last tokens want logits: True/1 for
# sampling, more for a teacher-forced score computed in the prefill)
BatchEntry = tuple[Slot, list[int], int]


def fill_batch(batch, group: list[BatchEntry]) -> None:
    """Write `group` into `batch` (a llama_batch with room for every token) and extend each
    slot's `cached` with its tokens. A slot that wants logits gets `batch_index`, the row of its
    last token, which its sampler reads after llama_decode, and `batch_rows`, every row it asked for.

    Entries go in seq id order: with one KV stream per sequence llama.cpp splits a batch into
    ubatches of consecutive seq ids taken in batch order (llama_batch_allocr::split_equal,
    sequential), so a token listed after those of higher seq ids costs an extra graph run."""
    batch.n_tokens = 0
    for slot, tokens, want_logits in sorted(group, key=lambda e: e[0].seq_id):
        pos = len(slot.cached)
        for i, tok in enumerate(tokens):
            j = batch.n_tokens
            batch.token[j] = tok
            batch.pos[j] = pos + i
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = slot.seq_id
            batch.logits[j] = False
            batch.n_tokens += 1
        slot.cached.extend(tokens)
        if want_logits:
            slot.batch_rows = list(range(batch.n_tokens - int(want_logits), batch.n_tokens))
            for row in slot.batch_rows:
                batch.logits[row] = True
            slot.batch_index = batch.n_tokens - 1
