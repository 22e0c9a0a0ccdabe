"""`hearth quantize`: llama.cpp's quantizer, and a check of every output against the f16 model.

llama_model_quantize logs to stderr whatever `verbose` says; the log is captured (file-descriptor
level) to report which tensors fell back to another type. SmolLM2's 576-wide rows do not fit the
256-wide K-quant blocks, so most of its tensors fall back in Q4_K_M/Q5_K_M.

The check runs llama.cpp on held-out texts with the f16 file and each quantized file and reports,
per file: mean KL(f16 || quant) of next-token distributions (nats), top-1 agreement, and the
perplexity of both.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from training.io import atomic_path, sha256_file

QUANT_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K", "F16")


@contextmanager
def captured_stderr():
    """Redirects fds 1 and 2 (C code) and sys.stdout/stderr (llama-cpp-python's log callback prints
    there) to a temp file; yields a list that receives the text."""
    import io
    import sys
    from contextlib import redirect_stderr

    from contextlib import redirect_stdout

    out: list[str] = []
    py = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as f:
        sys.stderr.flush()
        sys.stdout.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}  # the per-tensor fallback lines go to stdout
        for fd in saved:
            os.dup2(f.fileno(), fd)
        try:
            with redirect_stderr(py), redirect_stdout(py):
                yield out
        finally:
            for fd, orig in saved.items():
                os.dup2(orig, fd)
                os.close(orig)
            f.seek(0)
            out.append(f.read().decode("utf-8", errors="replace") + py.getvalue())


def fallbacks(log: str) -> dict:
    """Tensors llama.cpp quantized to another type than asked, from its log."""
    lines = [ln for ln in log.splitlines() if "fallback" in ln.lower() or "falling back" in ln.lower()]
    summary = next((ln.strip() for ln in lines if "required fallback" in ln), None)
    per_type: dict[str, int] = {}
    for ln in lines:
        m = re.search(r"falling back to\s+(\w+)", ln)
        if m:
            per_type[m.group(1)] = per_type.get(m.group(1), 0) + 1
    return {"summary": summary, "by_type": per_type}


def quantize(src: str | Path, out: str | Path, qtype: str, threads: int | None = None) -> dict:
    import llama_cpp

    qtype = qtype.upper()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype}", None)
    if ftype is None:
        raise ValueError(f"unknown quantization {qtype}; try one of {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or len(os.sched_getaffinity(0))
    with atomic_path(out) as tmp:  # an exception inside discards the temporary file
        with captured_stderr() as log:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize {qtype} failed (rc={rc}): {log[0][-2000:]}")
    return {"path": str(out), "type": qtype, "bytes": Path(out).stat().st_size, "sha256": sha256_file(out),
            "fallbacks": fallbacks(log[0] if log else "")}


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def next_token_logprobs(gguf: str | Path, texts: list[str], n_ctx: int = 1024) -> list[tuple[list[int], np.ndarray]]:
    """(tokens, log-probabilities [n_tokens, vocab]) of each text under the GGUF, via llama.cpp."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, logits_all=True, verbose=False, seed=0,
                n_threads=len(os.sched_getaffinity(0)))
    out = []
    try:
        for text in texts:
            tokens = llm.tokenize(text.encode(), add_bos=False, special=True)[: n_ctx - 1]
            llm.reset()
            llm.eval(tokens)
            out.append((tokens, _log_softmax(np.array(llm.scores[: len(tokens)], dtype=np.float64))))
    finally:
        llm.close()
    return out


def compare(reference: list, candidate: list) -> dict:
    """Mean KL(ref || cand), top-1 agreement and perplexities over all positions of all texts."""
    kls, agree, nll_ref, nll_cand, n = [], 0, 0.0, 0.0, 0
    for (tokens, p), (_, q) in zip(reference, candidate):
        kls.append((np.exp(p) * (p - q)).sum(axis=-1))
        agree += int((p.argmax(-1) == q.argmax(-1)).sum())
        nxt = np.array(tokens[1:])
        nll_ref -= float(p[np.arange(len(nxt)), nxt].sum())
        nll_cand -= float(q[np.arange(len(nxt)), nxt].sum())
        n += len(nxt)
    positions = sum(len(k) for k in kls)
    return {"mean_kl": float(np.concatenate(kls).mean()), "top1_agreement": agree / positions,
            "ppl_reference": float(np.exp(nll_ref / max(n, 1))), "ppl": float(np.exp(nll_cand / max(n, 1))),
            "positions": positions}
