"""Raw llama-cpp-python baselines (no HTTP, no scheduler): lean low-level decode loops, the
high-level `Llama.generate`, and quantized copies of a GGUF for the quant-type comparison.

The context is set up the way Hearth's engine sets it (n_batch, per-sequence KV streams with
kv_unified=False, the same thread count), so the only difference measured is Hearth's own work.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp import _logger as llama_log
from llama_cpp._internals import LlamaModel

from server.engine.template import CHATML_TEMPLATE, ChatTemplate


@contextlib.contextmanager
def quiet_stderr():
    """llama.cpp logs some things (every tensor, in llama_model_quantize) to fd 2 whatever `verbose` says."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@dataclass
class RunResult:
    ttft: float  # prompt prefill + first sample, seconds
    decode_time: float  # first to last sampled token, seconds
    tokens: list[int]

    @property
    def decode_tps(self) -> float:
        n = len(self.tokens)
        return (n - 1) / self.decode_time if n > 1 and self.decode_time > 0 else float("nan")


class RawModel:
    """One model and one context; greedy decoding straight over llama_decode."""

    def __init__(self, path: str | Path, *, n_threads: int, n_ctx: int, n_seqs: int = 1, n_batch: int = 512):
        llama_log.set_verbose(False)
        self.path = str(path)
        self.n_ctx = n_ctx
        self.n_seqs = n_seqs
        self.model = LlamaModel(path_model=self.path, params=llama_cpp.llama_model_default_params(), verbose=False)
        self.vocab = self.model.vocab
        p = llama_cpp.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch = n_ctx * n_seqs, n_batch, n_batch
        p.n_seq_max, p.kv_unified = n_seqs, False
        p.n_threads = p.n_threads_batch = n_threads
        self.ctx = llama_cpp.llama_init_from_model(self.model.model, p)
        if not self.ctx:
            raise RuntimeError("could not create a llama.cpp context")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch_size = max(n_batch, n_seqs)
        self.batch = llama_cpp.llama_batch_init(self.batch_size, 0, 1)
        meta = self.model.metadata()
        self.template = ChatTemplate(
            meta.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            bos_token=self.model.token_get_text(self.model.token_bos()),
            eos_token=self.model.token_get_text(self.model.token_eos()),
        )

    def chat_tokens(self, prompt: str) -> list[int]:
        """The prompt tokens Hearth's /v1/chat/completions builds for one user message."""
        text = self.template.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
        return self.model.tokenize(text.encode(), add_bos=False, special=True)

    def detokenize(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens).decode("utf-8", "replace")

    def _fill(self, items) -> None:
        """items: (token, pos, seq, want_logits) into self.batch."""
        b = self.batch
        b.n_tokens = 0
        for tok, pos, seq, logits in items:
            j = b.n_tokens
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = tok, pos, 1, logits
            b.seq_id[j][0] = seq
            b.n_tokens += 1

    def _decode(self) -> None:
        rc = llama_cpp.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def _prefill(self, seq: int, tokens: list[int], n_batch: int = 512) -> None:
        for start in range(0, len(tokens), n_batch):
            piece = tokens[start:start + n_batch]
            last = start + len(piece) == len(tokens)
            self._fill((t, start + i, seq, last and i == len(piece) - 1) for i, t in enumerate(piece))
            self._decode()

    def greedy(self, prompt: list[int], max_tokens: int, *, stop_at_eos: bool = True) -> RunResult:
        """Single stream: prefill, then one llama_decode per token, greedy sampler in C."""
        llama_cpp.llama_memory_clear(self.mem, True)
        smpl = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(smpl, llama_cpp.llama_sampler_init_greedy())
        one = (llama_cpp.llama_token * 1)()
        out: list[int] = []
        try:
            t0 = time.perf_counter()
            self._prefill(0, prompt)
            pos = len(prompt)
            tok = llama_cpp.llama_sampler_sample(smpl, self.ctx, -1)
            t_first = time.perf_counter()
            while True:
                if stop_at_eos and llama_cpp.llama_vocab_is_eog(self.vocab, tok):
                    break
                out.append(tok)
                if len(out) >= max_tokens:
                    break
                one[0] = tok
                batch = llama_cpp.llama_batch_get_one(one, 1)
                if llama_cpp.llama_decode(self.ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")
                pos += 1
                tok = llama_cpp.llama_sampler_sample(smpl, self.ctx, -1)
            t_end = time.perf_counter()
        finally:
            llama_cpp.llama_sampler_free(smpl)
        return RunResult(t_first - t0, t_end - t_first, out)

    def batched(self, prompts: list[list[int]], steps: int, *, with_prefill: bool = False,
                seq_ids: list[int] | None = None) -> float:
        """Decode tok/s of len(prompts) greedy sequences advancing together, one llama_decode per
        step over all of them (EOS ignored: this is the throughput ceiling). Prefill not timed,
        unless `with_prefill`: then the clock also runs over the prompts, prefilled together in
        as few llama_decode calls as n_batch allows (what a server does for the same requests,
        at its best, without HTTP). `seq_ids` places the sequences (default 0..n-1)."""
        n = len(prompts)
        seqs = list(range(n)) if seq_ids is None else list(seq_ids)
        assert n <= self.n_seqs and len(seqs) == n and max(seqs) < self.n_seqs
        llama_cpp.llama_memory_clear(self.mem, True)
        samplers = []
        for _ in range(n):
            s = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
            llama_cpp.llama_sampler_chain_add(s, llama_cpp.llama_sampler_init_greedy())
            samplers.append(s)
        try:
            nxt, pos = [], []
            t_prefill = time.perf_counter()
            if with_prefill and sum(map(len, prompts)) <= self.batch_size:
                self._fill((t, j, seqs[i], j == len(p) - 1) for i, p in enumerate(prompts) for j, t in enumerate(p))
                self._decode()
                outputs = list(itertools.accumulate(len(p) for p in prompts))
                for i, p in enumerate(prompts):
                    nxt.append(llama_cpp.llama_sampler_sample(samplers[i], self.ctx, outputs[i] - 1))
                    pos.append(len(p))
            else:
                for i, p in enumerate(prompts):
                    self._prefill(seqs[i], p)
                    nxt.append(llama_cpp.llama_sampler_sample(samplers[i], self.ctx, -1))
                    pos.append(len(p))
            t0 = t_prefill if with_prefill else time.perf_counter()
            for _ in range(steps):
                self._fill((nxt[i], pos[i], seqs[i], True) for i in range(n))
                self._decode()
                for i in range(n):
                    nxt[i] = llama_cpp.llama_sampler_sample(samplers[i], self.ctx, i)
                    pos[i] += 1
            elapsed = time.perf_counter() - t0
        finally:
            for s in samplers:
                llama_cpp.llama_sampler_free(s)
        return n * steps / elapsed

    def close(self) -> None:
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        self.model.close()


class GenerateModel:
    """The high-level API: `Llama.generate`, greedy (temp 0), prompt cache reset between runs."""

    def __init__(self, path: str | Path, *, n_threads: int, n_ctx: int, n_batch: int = 512):
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                   n_threads_batch=n_threads, n_batch=n_batch, verbose=False)

    def greedy(self, prompt: list[int], max_tokens: int) -> RunResult:
        self.llm.reset()
        out: list[int] = []
        t0 = time.perf_counter()
        t_first = None
        for tok in self.llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, reset=True):
            if t_first is None:
                t_first = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, tok):
                break
            out.append(tok)
            if len(out) >= max_tokens:
                break
        t_end = time.perf_counter()
        return RunResult((t_first or t_end) - t0, t_end - (t_first or t_end), out)

    def close(self) -> None:
        self.llm.close()


QUANT_TYPES = {
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}


def quantized(src: Path, qtype: str, cache: Path, n_threads: int) -> Path:
    """A copy of `src` requantized to `qtype` in `cache` (made once). Requantizing an already
    quantized file compounds error: these copies are for speed measurement only."""
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{src.stem}.requant-{qtype}.gguf"
    if out.exists():
        return out
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[qtype]
    params.allow_requantize = True
    params.nthread = n_threads
    tmp = out.with_suffix(".tmp")
    with quiet_stderr():
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize to {qtype} failed ({rc})")
    tmp.rename(out)
    return out
