"""`hearth plan`: recommend a recipe for the data and this machine, and estimate time and memory.

Rules (the seed article's figures, issue 4):
  - samples < 20k: the chat model, LoRA (keeps its chat template and system prompt, limits
    forgetting); ~100k and more: the base model, full fine-tuning if memory allows;
  - domain data scarce (< 1M domain loss tokens): general:domain 1:5 to 1:10, else 1:5;
  - LoRA rank 16 (8 under 1k samples), lr 2e-4 for LoRA, 2e-5 for full;
  - epochs: 3 under 1k samples, 2 under 10k, then 1;
  - batch 8 samples; grad_accum to reach ~16 samples per update when memory is short.

Time estimate: a step's FLOPs (training/flops.py states the rule) divided by this machine's
measured training rate, plus a fixed cost per layer pass; training/calibrate.py measures both with
one real decoder layer of the model and caches them per machine. No efficiency constant stands
between the probe and a step.
Peak memory: training/sizing.py's rule (weights, + grads and AdamW moments for full, LoRA state,
activations fitted per token·layer from measured runs, logits, runtime).
`hearth plan --sizes` (size_report): the same rules for 1.5B, 7B and 13B models on this CPU and on
one 24, 48 and 80 GB GPU, for LoRA and QLoRA (training/sizing.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from .calibrate import Calibration, calibration
from .flops import Work, batch_work, model_shape, train_flops
from .sizing import memory_bytes

RUNTIME_BYTES = 900 * 2**20         # python + torch + tokenizer resident set before any model
# SmolLM2-135M's published config: the layer this CPU's rate is calibrated with for `--sizes` (the
# largest model measured here; head_dim as its config.json has it, so the calibration cache is shared).
SMOLLM2_135M = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                "tie_word_embeddings": True, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                "rope_theta": 100000.0}


@dataclass
class Hardware:
    cores: int
    ram_gb: float
    ram_available_gb: float
    gpu: str | None = None
    gpu_memory_gb: float | None = None
    calibration: Calibration | None = None  # this machine's measured training rate (training/calibrate.py)


def _meminfo() -> tuple[float, float]:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] / 2**30, info.get("MemAvailable", info["MemFree"]) / 2**30


def detect_hardware(config: dict | None = None, threads: int | None = None, refresh: bool = False) -> Hardware:
    """This machine; with a model `config`, its training rate calibrated at that model's layer shape."""
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
    if config is not None:
        hw.calibration = calibration(config, threads or hw.cores, refresh=refresh)
    return hw


def estimate(shape: dict, *, method: str, work: Work, batch_tokens: int, cal: Calibration, lora_r: int = 16,
             label_tokens: int = 0, checkpointing: bool = False, seq: int | None = None) -> tuple[float, float]:
    """(seconds, peak GB) on this CPU for `work`, micro-batches of up to batch_tokens in rows of up
    to `seq` (label_tokens of them labelled), at the calibrated rate; memory by training/sizing.py's rule."""
    seconds = train_flops(shape, work, method, recompute=checkpointing) / (cal.gflops * 1e9)
    seconds += work.passes * shape["layers"] * cal.overhead_s_per_layer_pass
    parts = memory_bytes(shape, device="cpu", tokens=batch_tokens, label_tokens=label_tokens, seq=seq,
                         lora_r=lora_r if method == "lora" else None, checkpointing=checkpointing,
                         runtime_bytes=RUNTIME_BYTES)
    return seconds, sum(parts.values()) / 2**30


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


def recommend(*, samples: int, domain_loss_tokens: int, mean_tokens: float, computed_per_sample: float,
              config: dict, hw: Hardware, is_chat_model: bool = True, sample_work: Work | None = None) -> Plan:
    """The recipe for `samples` domain samples on `hw`. `sample_work`: the Work of one average
    sample as batched (default: every computed token with gradients, attending half the sample)."""
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
    memory_only = Calibration(gflops=1.0, spread=0.0, overhead_s_per_layer_pass=0.0, trials=0, threads=1, layer="",
                              key="")
    while batch > 1 and estimate(shape, method=method, work=Work(), batch_tokens=int(batch * computed_per_sample),
                                 cal=memory_only, lora_r=r, seq=seq_len)[1] > budget:
        batch //= 2
        accum *= 2
    reasons.append(f"batch {batch} × grad_accum {accum} fits {budget:.1f} GB")
    total_samples = samples * (1 + ratio) if domain_loss_tokens else samples
    computed = int(total_samples * computed_per_sample * epochs)
    steps = max(1, int(total_samples * epochs) // (batch * accum))
    per_sample = sample_work or Work(grad_tokens=round(computed_per_sample),
                                     grad_attended=round(computed_per_sample * mean_tokens / 2),
                                     label_tokens=round(0.05 * computed_per_sample), passes=0)
    work = per_sample.scaled(total_samples * epochs) + Work(passes=steps * accum)
    if hw.calibration is None:
        raise ValueError("recommend needs hw.calibration (detect_hardware(config=...))")
    secs, peak = estimate(shape, method=method, work=work, batch_tokens=int(batch * computed_per_sample),
                          cal=hw.calibration, lora_r=r, seq=seq_len)
    reasons.append(f"time at the calibrated rate: {hw.calibration.describe()}")
    return Plan(hw, model, method, r, lr, epochs, seq_len, batch, accum, ratio, steps, computed, round(secs, 1),
                round(peak, 2), reasons)


def _epoch_batches(recipe, samples: list[dict]):
    from .tokens import make_batches

    return make_batches(samples, batch_size=recipe.train.batch_size, seq_len=recipe.train.seq_len,
                        seed=recipe.data.seed, share_prefix=recipe.train.share_prefix)


def plan_from_run(recipe, refresh: bool = False) -> Plan:
    """Plan from the recipe's prepared data (<run>/data) and its base model's config."""
    from .io import read_jsonl
    from .model import materialize_base

    data = recipe.run_dir() / "data"
    if not (data / "manifest.json").exists():
        raise FileNotFoundError(f"{data / 'manifest.json'} is missing: run `hearth data` first")
    manifest = json.loads((data / "manifest.json").read_text())
    samples = read_jsonl(data / "train.jsonl")
    batches = _epoch_batches(recipe, samples)
    n = max(len(samples), 1)
    computed = sum(b.computed_tokens for b in batches) / n
    work = sum((batch_work(b, recipe.train.prompt_grad) for b in batches), Work()).scaled(1 / n)
    work.passes = 0  # counted per step by recommend
    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    domain = manifest["mix"]["roles"]["domain"]
    return recommend(samples=domain["samples"], domain_loss_tokens=domain["loss_tokens"],
                     mean_tokens=manifest["mix"]["tokens"] / max(manifest["mix"]["samples"], 1),
                     computed_per_sample=computed, config=config, sample_work=work,
                     hw=detect_hardware(config, threads=recipe.train.threads, refresh=refresh))


def plan_from_sources(recipe, refresh: bool = False) -> tuple[Plan, list[str]]:
    """Plan before `hearth data`: the domain sources are read, cleaned and tokenized (seconds), and
    nothing is generated. The general sources' share is what the plan recommends (ratio), so their
    counts are not needed. Returns the plan and what was left out, to print."""
    from .data import clean
    from .model import load_tokenizer, materialize_base
    from .prepare import load_source
    from .tokens import encode_samples

    cfg = recipe.data
    tokenizer = load_tokenizer(recipe.base_model)
    encoded, notes = [], []
    for src in recipe.sources:
        if src.role != "domain":
            notes.append(f"source {src.name} ({src.kind}, role {src.role}) not read: `hearth data` prepares it; "
                         f"the plan assumes the recommended general:domain ratio")
            continue
        kept, _ = clean(load_source(src, recipe), min_chars=cfg.min_chars, max_chars=cfg.max_chars,
                        chunk_chars=cfg.chunk_chars, near_dup_threshold=src.near_dup_threshold)
        if src.limit:
            kept = kept[:src.limit]
        encoded.extend(encode_samples(tokenizer, kept, recipe.train.seq_len)[0])
    if not encoded:
        raise ValueError("no domain samples to plan from: the recipe needs a source with role: domain")
    batches = _epoch_batches(recipe, encoded)
    n = len(encoded)
    work = sum((batch_work(b, recipe.train.prompt_grad) for b in batches), Work()).scaled(1 / n)
    work.passes = 0
    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    loss_tokens = sum(sum(1 for t in s["labels"] if t != -100) for s in encoded)
    plan = recommend(samples=n, domain_loss_tokens=loss_tokens,
                     mean_tokens=sum(len(s["input_ids"]) for s in encoded) / n,
                     computed_per_sample=sum(b.computed_tokens for b in batches) / n, config=config, sample_work=work,
                     hw=detect_hardware(config, threads=recipe.train.threads, refresh=refresh))
    return plan, notes


def format_plan(plan: Plan) -> str:
    d = asdict(plan)
    hw = d.pop("hardware")
    hw.pop("calibration")
    lines = [f"hardware: {hw}"]
    if plan.hardware.calibration:
        lines.append(f"calibration: {plan.hardware.calibration.describe()}")
    lines += [f"{k}: {v}" for k, v in d.items() if k != "reasons"]
    return "\n".join(lines + ["why:"] + [f"  - {r}" for r in plan.reasons])


def estimate_recipe(recipe, steps: int | None = None, hw: Hardware | None = None) -> dict:
    """Seconds and peak GB for `steps` optimizer steps of the recipe as configured, on this machine.

    Uses the real micro-batches of the prepared data (so prefix sharing, packing and
    train.prompt_grad are counted).
    """
    from .io import read_jsonl
    from .model import materialize_base

    cfg = recipe.train
    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    hw = hw or detect_hardware(config, threads=cfg.threads)
    batches = _epoch_batches(recipe, read_jsonl(recipe.run_dir() / "data" / "train.jsonl"))
    steps = steps or max(1, len(batches) // cfg.grad_accum)
    used = [batches[i % len(batches)] for i in range(steps * cfg.grad_accum)]
    shape = model_shape(config)
    work = sum((batch_work(b, cfg.prompt_grad) for b in used), Work())
    secs, peak = estimate(shape, method=cfg.method, work=work, batch_tokens=max(b.computed_tokens for b in used),
                          cal=hw.calibration, lora_r=cfg.lora_r, label_tokens=max(b.n_labels for b in used),
                          checkpointing=cfg.gradient_checkpointing,
                          seq=max(len(b.prefix) + max(len(r) for r in b.rows) for b in used))
    return {"steps": steps, "computed_tokens": sum(b.computed_tokens for b in used), "seconds": round(secs, 2),
            "peak_gb": round(peak, 3), "gflops": hw.calibration.gflops, "spread": hw.calibration.spread,
            "overhead_s_per_layer_pass": hw.calibration.overhead_s_per_layer_pass}


def size_report(*, tokens: int = 1_000_000, seq: int = 1024, batch_tokens: int = 4096, label_fraction: float = 0.25,
                threads: int | None = None, refresh: bool = False) -> str:
    """`hearth plan --sizes`: training/sizing.py's table for this machine (its CPU rate calibrated
    with SmolLM2-135M's layer, cached like every calibration)."""
    from .sizing import format_table, size_table

    hw = detect_hardware(SMOLLM2_135M, threads=threads, refresh=refresh)
    cpu = f"this CPU ({hw.cores} cores, {hw.ram_gb:g} GB)"
    rows = size_table(hw.calibration, cpu_name=cpu, cpu_memory_gb=hw.ram_gb, tokens=tokens, seq=seq,
                      batch_tokens=batch_tokens, label_fraction=label_fraction)
    return format_table(rows, tokens=tokens, seq=seq, batch_tokens=batch_tokens, label_fraction=label_fraction,
                        cal=hw.calibration)
