"""Multiple-choice log-likelihoods through llama-cpp-python, as Hearth serves GGUF models.

Per item the shared context is evaluated once; each choice then rewinds the KV cache to the end
of that context (Llama.eval drops cache cells past n_tokens) and evaluates only its own tokens, so
a 4-choice item costs one prompt plus four short continuations. logits_all=True keeps the logits
of every evaluated position in `Llama.scores`, which the log-softmax reads back.

llama.cpp's CPU kernels depend on the batch shape (repacked quantized matmuls for batches, dot
products for single tokens), so the same text scored another way moves slightly: on the embedded
Q4_1 model, one batch against token by token differs by up to 0.24 nats per choice (f16 file:
0.015). Scores are reproducible for this procedure; compare variants only through it.
"""

from __future__ import annotations

import os

import numpy as np

from .mc_tokens import split_tokens


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def continuation_logprob(scores: np.ndarray, whole: list[int], n_context: int) -> float:
    """Sum of log P(whole[p] | whole[:p]) for p >= n_context; scores[p] are the logits after whole[p]."""
    rows = _log_softmax(np.asarray(scores[n_context - 1: len(whole) - 1]))
    return float(rows[np.arange(len(rows)), whole[n_context:]].sum())


def loglikelihoods(path, reqs: list[tuple[str, list[str]]], *, n_threads: int | None = None,
                   n_ctx: int = 1024) -> list[list[float]]:
    """Summed log-probability of each continuation given its context, per request."""
    from llama_cpp import Llama

    threads = n_threads or len(os.sched_getaffinity(0))
    # n_ctx bounds one item (prompt + longest choice); scores take n_ctx x n_vocab float32 (200 MB
    # for SmolLM2 at 1024), so it stays small. n_batch = n_ctx: a whole item is one decode call.
    llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                n_threads=threads, n_threads_batch=threads, seed=0)
    # add_bos=True adds BOS only where the model's metadata asks for it (SmolLM2: no), like
    # add_special_tokens=True in transformers; special=True parses special tokens in the text as HF does.
    encode = lambda text: llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    out = []
    try:
        for context, conts in reqs:
            splits = [split_tokens(encode, context, c) for c in conts]
            longest = max(len(w) for w, _ in splits)
            if longest > n_ctx:
                raise ValueError(f"an item needs {longest} tokens, more than n_ctx={n_ctx}: {context[:60]!r}…")
            shared = min(n for _, n in splits)  # every choice's tokens start with these context tokens
            llm.reset()
            llm.eval(splits[0][0][:shared])
            lps = []
            for whole, n in splits:
                llm.n_tokens = shared  # rewind: eval() removes the cache cells of the previous choice
                if len(whole) - 1 > shared:  # the last token's own logits are never needed
                    llm.eval(whole[shared:-1])
                lps.append(continuation_logprob(llm.scores, whole, n))
            out.append(lps)
    finally:
        llm.close()
    return out
