"""Per-sequence sampling: a llama.cpp sampler chain built from `SamplingParams`, plus logprobs.

Each sequence in the batch owns its chain, so requests with different temperatures, seeds or
grammars share one `llama_decode` call and still sample independently.
"""

from __future__ import annotations

import ctypes
import random

import llama_cpp
import numpy as np

from ..errors import InvalidRequest
from .base import SamplingParams

# Tokens the grammar checks first when the unconstrained pick breaks it (see SamplerChain).
GRAMMAR_SHORTLIST = 256
# How many recent tokens the repetition/presence/frequency penalties look at (llama.cpp default).
PENALTY_LAST_N = 64


_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")], align=True)
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class SamplerChain:
    """Owns one llama_sampler chain (and a grammar sampler beside it); free it with close().

    Grammar, the way llama-server does it: sample from the unconstrained chain first, then ask
    the grammar whether that one token is allowed, and only when it is not, mask the whole
    vocabulary with the grammar and sample again. Checking one token is cheap; masking 49,152
    tokens against a large grammar (JSON schema, SQL over a schema) costs milliseconds per step,
    and most steps of a well-prompted model already pick an allowed token.
    """

    def __init__(self, vocab: ctypes.c_void_p, n_vocab: int, params: SamplingParams):
        self._n_vocab = n_vocab
        self._grammar = None
        self._chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda s: llama_cpp.llama_sampler_chain_add(self._chain, s)  # noqa: E731
        if params.grammar:
            self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not self._grammar:
                self.close()
                raise InvalidRequest("the output grammar could not be parsed", param="response_format")
            # Candidate buffers, reused every step: the whole vocabulary, and one token.
            self._cands = np.zeros(n_vocab, dtype=_TOKEN_DATA)
            self._one = np.zeros(1, dtype=_TOKEN_DATA)
            self.grammar_resamples = 0  # steps where the first pick broke the grammar
        if params.repeat_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab,
                    PENALTY_LAST_N, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
                )
            )
        # Plain greedy (no penalties, no grammar) needs no chain state: sample() takes the argmax
        # of the logits in numpy. llama_sampler_sample builds a 49,152-entry candidate array for
        # that, about 0.1 ms a token; 1.5% of the engine thread at 8 streams (py-spy, this box).
        self._argmax = params.temperature <= 0 and not params.grammar and not (
            params.repeat_penalty != 1.0 or params.frequency_penalty or params.presence_penalty)
        if params.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0:
                add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: ctypes.c_void_p, batch_index: int) -> int:
        if self._argmax:  # the first maximum, as llama.cpp's greedy sampler picks
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, batch_index), shape=(self._n_vocab,))
            return int(logits.argmax())
        if self._grammar is None:
            # llama_sampler_sample also accepts the token into every stateful sampler
            # (penalties, the RNG), so the chain stays in step with the sequence.
            return llama_cpp.llama_sampler_sample(self._chain, ctx, batch_index)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, batch_index), shape=(self._n_vocab,))
        token = self._pick(logits, constrained=False)
        if not self._allowed(token):
            self.grammar_resamples += 1
            token = self._pick(logits, constrained=True, shortlist=GRAMMAR_SHORTLIST)
            if token < 0:  # nothing allowed among the likeliest tokens: mask the whole vocabulary
                token = self._pick(logits, constrained=True)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _pick(self, logits: np.ndarray, *, constrained: bool, shortlist: int = 0) -> int:
        """Sample a token; with `shortlist`, only among that many likeliest, -1 if none is allowed.

        Masking a shortlist instead of the vocabulary is exact for greedy decoding (the likeliest
        allowed token is in the shortlist whenever any is) and, for sampling, drops only the
        tail of the distribution that top-k / top-p would drop anyway.
        """
        if shortlist:
            ids = np.argpartition(-logits, shortlist)[:shortlist].astype(np.int32)
            cands = self._cands[:shortlist]
            cands["id"] = ids
            cands["logit"] = logits[ids]
        else:
            cands = self._cands
            cands["id"] = np.arange(self._n_vocab, dtype=np.int32)
            cands["logit"] = logits
        cands["p"] = 0.0
        arr = _token_array(cands)
        if constrained:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(arr))
            if shortlist and not np.isfinite(cands["logit"]).any():
                return -1
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(arr))
        if arr.selected < 0:
            raise RuntimeError("sampler chain selected no token")
        return int(arr.data[arr.selected].id)

    def _allowed(self, token: int) -> bool:
        one = self._one
        one[0] = (token, 1.0, 0.0)
        arr = _token_array(one)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        return bool(np.isfinite(arr.data[0].logit))

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None

    def __del__(self) -> None:  # pragma: no cover - safety net; close() is the normal path
        self.close()


def _token_array(buf: np.ndarray) -> llama_cpp.llama_token_data_array:
    data = buf.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
    return llama_cpp.llama_token_data_array(data=data, size=len(buf), selected=-1, sorted=False)


def logprobs_at(ctx: ctypes.c_void_p, batch_index: int, n_vocab: int, token: int, top_n: int):
    """Log-probability of `token` and the `top_n` most likely tokens, from the raw logits.

    Like OpenAI, these are the model's own distribution before temperature or grammar.
    Cost: one log-softmax over the vocabulary (49,152 floats for SmolLM2), about 0.2 ms.
    """
    ptr = llama_cpp.llama_get_logits_ith(ctx, batch_index)
    logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)
    shifted = logits - logits.max()
    logp = shifted - np.log(np.exp(shifted).sum())
    top: list[tuple[int, float]] = []
    if top_n > 0:
        idx = np.argpartition(-logp, top_n)[:top_n]
        idx = idx[np.argsort(-logp[idx])]
        top = [(int(i), float(logp[i])) for i in idx]
    return float(logp[token]), top
