"""How fast this machine trains, measured with the work a training step does.

The planner's time estimate divides a step's FLOPs by a rate. That rate is measured here, not
derived from a matmul benchmark times a fixed efficiency: a peak-GEMM probe swung by 40% from run
to run and its efficiency factor held on one CPU only (issue 27: 2x off on a 2-core EPYC).

The probe is one decoder layer of the model's own architecture and sizes (transformers, random
frozen weights: norms, rotary, attention and MLP as training runs them), forward and backward to
an input that needs its gradient: what a LoRA step does to the base weights. A bare GEMM probe
was 3x too fast for SmolLM2's 576-wide layers, whose norms and element-wise work cost as much as
the matmuls (measured here). It is timed at two token counts; training/flops.py's rule gives each
pass's FLOPs, so the fit yields the FLOP rate (large batch) and the fixed cost of one layer pass
(Python and dispatch, small batch), in the rule's own units. Each trial repeats until the last `window` trials
agree within `tolerance`; the median of those is the figure and their spread is reported.

The result is cached per machine (CPU model, usable cores, threads, torch version, layer architecture) in
`$HEARTH_DATA_DIR/cache/calibration.json`, so `hearth plan` costs a few seconds once.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .flops import Work, model_shape, train_flops

LARGE_TOKENS = 512   # rows of the probe's input when measuring the FLOP rate
SMALL_TOKENS = 8     # rows when measuring the fixed cost of a layer pass (FLOPs negligible)
WINDOW = 5           # trials that must agree
TOLERANCE = 0.10     # (max - min) / median of the window that counts as stable
MAX_TRIALS = 40      # per size: a machine that never settles gets its median and a large spread
TRIAL_S = 0.1        # wall seconds one trial aims for (repeats of the pass inside it)


@dataclass
class Calibration:
    gflops: float                  # fwd+bwd FLOP rate of the probe layer, 1e9 FLOP/s, with `threads`
    spread: float                  # (max - min) / median of the stable window, large-batch trials
    overhead_s_per_layer_pass: float  # fixed seconds of one layer's forward+backward pass
    trials: int                    # trials run, both sizes together
    threads: int
    layer: str                     # the probe layer's architecture and sizes (layer_key)
    key: str
    cached: bool = False

    def describe(self) -> str:
        return (f"{self.gflops:.1f} GFLOP/s fwd+bwd (spread {100 * self.spread:.0f}% over the last {WINDOW} "
                f"of {self.trials} trials), {1000 * self.overhead_s_per_layer_pass:.2f} ms per layer pass, "
                f"{self.threads} thread(s), probe layer {self.layer}"
                + (" (cached)" if self.cached else ""))


def stable_median(trial: Callable[[], float], *, window: int = WINDOW, tolerance: float = TOLERANCE,
                  max_trials: int = MAX_TRIALS) -> tuple[float, float, int]:
    """Run `trial` (it returns seconds per unit of work) until the last `window` results agree.

    Returns (median of the window, its spread (max - min) / median, trials run). The first trial
    is a warm-up and is dropped (allocations, thread pool start).
    """
    trial()
    seen: list[float] = []
    while True:
        seen.append(trial())
        last = seen[-window:]
        med = statistics.median(last)
        spread = (max(last) - min(last)) / med if med > 0 else float("inf")
        if (len(last) == window and spread <= tolerance) or len(seen) >= max_trials:
            return med, spread, len(seen) + 1


def timed(work: Callable[[], None], clock: Callable[[], float] = time.perf_counter,
          target_s: float = TRIAL_S) -> Callable[[], float]:
    """A trial: repeat `work` for about target_s of `clock`, return seconds per repeat."""
    def trial() -> float:
        n, t0 = 0, clock()
        while True:
            work()
            n += 1
            dt = clock() - t0
            if dt >= target_s:
                return dt / n
    return trial


def probe_layer(config: dict):
    """(pass(tokens) -> None, flops(tokens) -> FLOPs of one pass): one decoder layer of the model's
    own architecture (transformers, random weights, frozen), forward and backward to its input."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    skip = {"architectures", "transformers_version", "torch_dtype", "dtype", "quantization_config", "model_type",
            "auto_map"}
    cfg = AutoConfig.for_model(config.get("model_type", "llama"),
                               **{k: v for k, v in config.items() if k not in skip} | {"num_hidden_layers": 1})
    torch.manual_seed(0)
    body = AutoModelForCausalLM.from_config(cfg).model  # embeddings are built but not used
    body.requires_grad_(False)
    shape = model_shape(config | {"num_hidden_layers": 1})
    inputs: dict[int, torch.Tensor] = {}

    def one_pass(tokens: int) -> None:
        x = inputs.setdefault(tokens, torch.randn(1, tokens, shape["hidden"]) * 0.02).detach().requires_grad_(True)
        body(inputs_embeds=x, use_cache=False).last_hidden_state.sum().backward()

    def flops(tokens: int) -> float:  # the planner's own rule, so rate and rule agree by construction
        return train_flops(shape, Work(grad_tokens=tokens, grad_attended=tokens * (tokens + 1) // 2), "lora")

    return one_pass, flops


def layer_key(config: dict) -> str:
    """What of a model config decides the probe layer's speed."""
    keys = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")
    return ",".join(f"{k}={config.get(k)}" for k in keys if config.get(k) is not None)


def machine_key(threads: int, layer: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}|cores={len(os.sched_getaffinity(0))}|threads={threads}|torch={torch.__version__}|{layer}"


def cache_path() -> Path:
    return Path(os.environ.get("HEARTH_DATA_DIR", "var")) / "cache" / "calibration.json"


def measure(config: dict, threads: int, clock: Callable[[], float] = time.perf_counter) -> Calibration:
    """Calibrate now (seconds): the FLOP rate and per-pass overhead of one layer of `config`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        one_pass, flops = probe_layer(config)
        large, spread, n_large = stable_median(timed(lambda: one_pass(LARGE_TOKENS), clock))
        small, _, n_small = stable_median(timed(lambda: one_pass(SMALL_TOKENS), clock))
    finally:
        torch.set_num_threads(before)
    return fit(large, small, flops(LARGE_TOKENS), flops(SMALL_TOKENS), spread=spread, trials=n_large + n_small,
               threads=threads, layer=layer_key(config), key=machine_key(threads, layer_key(config)))


def fit(large_s: float, small_s: float, large_flops: float, small_flops: float, **kw) -> Calibration:
    """Solve t = overhead + flops / rate from the two sizes' times."""
    rate = max(large_flops - small_flops, 1.0) / max(large_s - small_s, 1e-12)
    overhead = max(small_s - small_flops / rate, 0.0)
    return Calibration(gflops=round(rate / 1e9, 2), spread=round(kw.pop("spread"), 4),
                       overhead_s_per_layer_pass=round(overhead, 6), **kw)


def calibration(config: dict, threads: int, *, refresh: bool = False) -> Calibration:
    """The cached calibration for this machine and the model's layer, measured first if missing."""
    path = cache_path()
    key = machine_key(threads, layer_key(config))
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if not refresh and key in stored:
        return Calibration(**stored[key] | {"cached": True})
    cal = measure(config, threads)
    stored[key] = asdict(cal) | {"cached": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stored, indent=1))
    os.replace(tmp, path)  # atomic: a concurrent planner never reads half a file
    return cal
