"""Which tokens of context+continuation a multiple-choice scorer scores (mc.py has the format).

Both scorers (mc_gguf.py through llama-cpp-python, mc_hf.py through transformers) split with
`split_tokens`, so they score the same token sequences and can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Callable


def split_tokens(encode: Callable[[str], list[int]], context: str, continuation: str) -> tuple[list[int], int]:
    """(tokens of context+continuation, how many of them belong to the context).

    The continuation's tokens are what context+continuation adds over the context alone: the
    longest common prefix of the two encodings is the context. When a merge crosses the boundary
    the shared prefix is shorter than the context's encoding and the merged token counts as the
    continuation's, so every token of the whole text is scored exactly once, by either scorer.
    """
    ctx = encode(context)
    whole = encode(context + continuation)
    n = 0
    while n < len(ctx) and n < len(whole) and ctx[n] == whole[n]:
        n += 1
    if n == 0:
        raise ValueError(f"context {context[:40]!r}… encodes to no token the continuation can follow")
    if n == len(whole):
        raise ValueError(f"continuation {continuation!r} adds no token to the context")
    return whole, n
