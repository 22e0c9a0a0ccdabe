"""`hearth plan`: recommend a recipe for the data and this machine, and estimate time and memory.

Rules (the seed article's figures, issue 4):
  - samples < 20k: the chat model, LoRA (keeps its chat template and system prompt, limits
    forgetting); ~100k and more: the base model, full fine-tuning if memory allows;
  - domain data scarce (< 1M domain loss tokens): general:domain 1:5 to 1:10, else 1:5;
  - LoRA rank 16 (8 under 1k samples), lr 2e-4 for LoRA, 2e-5 for full;
  - epochs: 3 under 1k samples, 2 under 10k, then 1;
  - batch 8 samples; grad_accum to reach ~16 samples per update when memory is short.

Time estimate: FLOPs per computed token are 4·N for LoRA (forward 2N, backward through frozen
weights 2N, no weight gradients) and 6·N for full training, N = non-embedding parameters (lm_head
runs on trained tokens only, training/loop.py). The machine's fp32 matmul rate is measured (a
0.1-0.3 s benchmark) and multiplied by EFFICIENCY, the share of that rate a training step reaches
(measured here: see tests/training/test_plan.py, which checks estimate against a real run).
Peak memory: weights (+ grads and AdamW moments for full) + activations per computed token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

EFFICIENCY = 0.18          # training step FLOP rate / pure matmul FLOP rate (CPU, fp32, measured)
ACT_BYTES_PER_TOKEN_LAYER_DIM = 90  # saved activations for backward, bytes per token·layer·hidden unit
RUNTIME_BYTES = 900 * 2**20         # python + torch + tokenizer resident set before any model


@dataclass
class Hardware:
    cores: int
    ram_gb: float
    ram_available_gb: float
    gpu: str | None = None
    gpu_memory_gb: float | None = None
    matmul_gflops: float | None = None


@dataclass
class Plan:
    hardware: Hardware
    model: str
    method: str
    lora_r: int
    lr: float
    epochs: int
    seq_len: int
    batch_size: int
    grad_accum: int
    ratio: float
    steps: int
    computed_tokens: int
    est_seconds: float
    est_peak_gb: float
    reasons: list[str] = field(default_factory=list)

    def recipe_overrides(self) -> dict:
        return {"train": {"method": self.method, "lora_r": self.lora_r, "lr": self.lr, "epochs": self.epochs,
                          "seq_len": self.seq_len, "batch_size": self.batch_size, "grad_accum": self.grad_accum},
                "data": {"ratio": self.ratio}}


def _meminfo() -> tuple[float, float]:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] / 2**30, info.get("MemAvailable", info["MemFree"]) / 2**30


def matmul_gflops(seconds: float = 0.2) -> float:
    """fp32 GEMM rate of this process with torch's thread count, shapes like a 135M model's layers."""
    import torch

    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    a @ b
    # Counted in CPU time × threads, not wall time: other load on the box (2 shared cores) must
    # not make the estimate swing; the estimate is for the machine to itself.
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    cpu = max(time.process_time() - c0, 1e-9)
    return 2 * 512 * 576 * 1536 * n / (cpu / torch.get_num_threads()) / 1e9


def detect_hardware(measure: bool = True, threads: int | None = None) -> Hardware:
    total, avail = _meminfo()
    hw = Hardware(cores=len(os.sched_getaffinity(0)), ram_gb=round(total, 1), ram_available_gb=round(avail, 1))
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
            if out:
                name, mem = out[0].rsplit(",", 1)
                hw.gpu, hw.gpu_memory_gb = name.strip(), round(float(mem) / 1024, 1)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if measure:
        import torch

        torch.set_num_threads(threads or hw.cores)
        hw.matmul_gflops = round(matmul_gflops() * hw.cores / (threads or hw.cores), 1)
    return hw


def model_shape(config: dict) -> dict:
    d, layers, ff = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or d // heads
    per_layer = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d + 3 * d * ff
    embed = config["vocab_size"] * d
    return {"hidden": d, "layers": layers, "body_params": per_layer * layers, "vocab": config["vocab_size"],
            "total_params": per_layer * layers + embed * (1 if config.get("tie_word_embeddings", True) else 2)}


def estimate(shape: dict, *, method: str, computed_tokens: int, batch_tokens: int, gflops: float,
             lora_params: int = 0, label_tokens: int = 0) -> tuple[float, float]:
    """(seconds, peak GB) for training on `computed_tokens` tokens (of which `label_tokens` go
    through lm_head), micro-batches of batch_tokens."""
    k = 4 if method == "lora" else 6
    flops = computed_tokens * k * shape["body_params"] + label_tokens * k * shape["vocab"] * shape["hidden"]
    seconds = flops / (gflops * 1e9 * EFFICIENCY)
    weights = 4 * shape["total_params"]
    if method == "full":
        weights *= 4  # weights, gradients, AdamW first and second moments (fp32)
    else:
        weights += 16 * lora_params
    activations = batch_tokens * shape["layers"] * shape["hidden"] * ACT_BYTES_PER_TOKEN_LAYER_DIM
    return seconds, (weights + activations + RUNTIME_BYTES) / 2**30


def recommend(*, samples: int, domain_loss_tokens: int, mean_tokens: float, computed_per_sample: float,
              config: dict, hw: Hardware, is_chat_model: bool = True) -> Plan:
    reasons = []
    if samples < 20_000:
        model, method = "chat", "lora"
        reasons.append(f"{samples} samples: keep the chat model and its template; LoRA limits forgetting")
    else:
        model = "base"
        shape = model_shape(config)
        fits = 16 * shape["total_params"] / 2**30 < 0.5 * (hw.gpu_memory_gb or hw.ram_available_gb)
        method = "full" if fits else "lora"
        reasons.append(f"{samples} samples: enough to adapt the base model; {method} ({'fits' if fits else 'memory'})")
    if model == "base" and is_chat_model:
        reasons.append("the recipe's base model is a chat model: point base_model at its base checkpoint")
    r = 8 if samples < 1000 else 16
    lr = 2e-4 if method == "lora" else 2e-5
    epochs = 3 if samples < 1000 else 2 if samples < 10_000 else 1
    reasons.append(f"rank {r}, lr {lr:g}, {epochs} epoch(s) for {samples} samples")
    scarce = domain_loss_tokens < 1_000_000
    ratio = 5.0
    reasons.append(f"domain loss tokens {domain_loss_tokens}: general:domain {'1:5 (up to 1:10 if it forgets)' if scarce else '1:5'}")
    seq_len = 1 << max(7, int(mean_tokens * 1.5 - 1).bit_length())
    seq_len = min(seq_len, config.get("max_position_embeddings", 8192))
    batch = 8
    shape = model_shape(config)
    budget = 0.6 * (hw.gpu_memory_gb or hw.ram_available_gb)
    accum = 1
    while batch > 1 and estimate(shape, method=method, computed_tokens=0, batch_tokens=int(batch * computed_per_sample),
                                 gflops=1)[1] > budget:
        batch //= 2
        accum *= 2
    reasons.append(f"batch {batch} × grad_accum {accum} fits {budget:.1f} GB")
    total_samples = samples * (1 + ratio) if domain_loss_tokens else samples
    computed = int(total_samples * computed_per_sample * epochs)
    steps = max(1, int(total_samples * epochs) // (batch * accum))
    gflops = hw.matmul_gflops or 50.0
    secs, peak = estimate(shape, method=method, computed_tokens=computed, batch_tokens=int(batch * computed_per_sample),
                          gflops=gflops)
    return Plan(hw, model, method, r, lr, epochs, seq_len, batch, accum, ratio, steps, computed, round(secs, 1),
                round(peak, 2), reasons)


def plan_from_run(recipe, measure: bool = True) -> Plan:
    """Plan from the recipe's prepared data (<run>/data) and its base model's config."""
    from .io import read_jsonl
    from .model import materialize_base
    from .tokens import make_batches

    data = recipe.run_dir() / "data"
    if not (data / "manifest.json").exists():
        raise FileNotFoundError(f"{data / 'manifest.json'} is missing: run `hearth data` first")
    manifest = json.loads((data / "manifest.json").read_text())
    samples = read_jsonl(data / "train.jsonl")
    batches = make_batches(samples, batch_size=recipe.train.batch_size, seq_len=recipe.train.seq_len,
                           seed=recipe.data.seed, share_prefix=recipe.train.share_prefix)
    computed = sum(b.computed_tokens for b in batches) / max(len(samples), 1)
    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    domain = manifest["mix"]["roles"]["domain"]
    return recommend(samples=domain["samples"], domain_loss_tokens=domain["loss_tokens"],
                     mean_tokens=manifest["mix"]["tokens"] / max(manifest["mix"]["samples"], 1),
                     computed_per_sample=computed, config=config, hw=detect_hardware(measure))


def format_plan(plan: Plan) -> str:
    d = asdict(plan)
    hw = d.pop("hardware")
    lines = [f"hardware: {hw}"] + [f"{k}: {v}" for k, v in d.items() if k != "reasons"]
    return "\n".join(lines + ["why:"] + [f"  - {r}" for r in plan.reasons])


OVERHEAD_S_PER_LAYER_PASS = 0.004  # python/dispatch time per decoder layer per forward+backward pass


def estimate_recipe(recipe, steps: int | None = None, hw: Hardware | None = None) -> dict:
    """Seconds and peak GB for `steps` optimizer steps of the recipe as configured, on this machine.

    Uses the real micro-batches of the prepared data (so prefix sharing and packing are counted).
    """
    from .io import read_jsonl
    from .model import materialize_base
    from .tokens import make_batches

    cfg = recipe.train
    hw = hw or detect_hardware(threads=cfg.threads)
    samples = read_jsonl(recipe.run_dir() / "data" / "train.jsonl")
    batches = make_batches(samples, batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=recipe.data.seed,
                           share_prefix=cfg.share_prefix)
    steps = steps or max(1, len(batches) // cfg.grad_accum)
    used = [batches[i % len(batches)] for i in range(steps * cfg.grad_accum)]
    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    shape = model_shape(config)
    lora = 0
    if cfg.method == "lora":  # r·(in+out) per adapted linear, 7 linears per layer
        d, ff = shape["hidden"], config["intermediate_size"]
        lora = shape["layers"] * cfg.lora_r * (4 * 2 * d + 3 * (d + ff))
    computed = sum(b.computed_tokens for b in used)
    # The recipe's thread count, not the machine's: the rate scales with the threads training uses.
    gflops = (hw.matmul_gflops or 50.0) * (cfg.threads or hw.cores) / hw.cores
    secs, peak = estimate(shape, method=cfg.method, computed_tokens=computed,
                          batch_tokens=max(b.computed_tokens for b in used), gflops=gflops,
                          lora_params=lora, label_tokens=sum(b.n_labels for b in used))
    passes = sum(2 if b.kind == "prefix" and b.prefix else 1 for b in used)
    secs += passes * shape["layers"] * OVERHEAD_S_PER_LAYER_PASS
    return {"steps": steps, "computed_tokens": computed, "seconds": round(secs, 2), "peak_gb": round(peak, 3),
            "gflops": hw.matmul_gflops}
