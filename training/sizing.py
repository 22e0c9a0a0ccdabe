"""Sizing: the time and peak memory of LoRA and QLoRA training for 1.5B, 7B and 13B models on
this CPU and on one 24, 48 or 80 GB GPU (`hearth plan --sizes`), by a stated rule fitted from
measured runs of small models. tests/training/test_sizing.py checks the rule against runs it
measures; `python -m bench.sizing` prints measured against predicted for the tiny and 135M models.

Time (seconds) = FLOPs / rate + passes · layers · overhead per layer pass
  - FLOPs: training/flops.py (4·N per differentiated token for LoRA, N = non-embedding weights;
    attention per attended position; lm_head on labelled tokens; gradient checkpointing adds the
    2·N forward once more).
  - rate and overhead, this CPU: training/calibrate.py, measured with one decoder layer of
    SmolLM2-135M (the largest model measured here). Wider layers are assumed to train at that rate:
    wider matmuls run at least as fast on a CPU, so the figure errs long, not short.
  - rate, GPU: the card's peak dense bf16 tensor FLOP/s (NVIDIA datasheets, below) × an assumed
    MFU (model FLOPs utilisation). No GPU was measured: these are assumptions, labelled as such.
Peak memory (bytes) = frozen weights + 16·LoRA params + activations + logits + runtime
  - frozen weights: 4 B per weight on the CPU (fp32), 2 B on a GPU (bf16); QLoRA (NF4 with double
    quantization) 4.127 bits per decoder weight (QLoRA paper, Dettmers et al. 2023, §2), the
    embeddings and lm_head staying bf16 (bitsandbytes quantizes nn.Linear layers except lm_head).
  - LoRA parameters (training/flops.py lora_params): fp32 weight, gradient, AdamW's two moments.
  - activations: tokens · layers · (a·hidden + b·ff + c·r/16) bytes, a, b and c fitted
    (ACTIVATION_RULE) from the bytes autograd keeps for backward, counted exactly in LoRA forward
    passes of small llamas (saved_bytes) in fp32 (the CPU) and in bf16 autocast over bf16 weights
    (what a GPU run keeps, measured on the CPU); c is the adapters' rank-r intermediates, fitted
    at r = 16. Plus the additive attention mask transformers builds for packed rows, tokens · seq
    values once for all layers, and under autocast a bf16 copy of each LoRA weight (2 B per LoRA
    parameter). With gradient checkpointing: each layer's input (tokens · hidden values) plus one
    layer's activations, recomputed during backward.
  - logits: labelled tokens · vocab · 12 B (fp32 logits, the saved log-probabilities and their
    gradient; training/loop.py computes lm_head on the labelled positions only).
  - runtime: 0.9 GB on the CPU (python, torch, tokenizer: measured, training/plan.py RUNTIME_BYTES);
    1.0 GB on a GPU for the CUDA context and cuBLAS workspace (assumed), and 10% of the rest for
    the caching allocator's fragmentation (assumed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .flops import Work, lora_params, model_shape, train_flops

# Published configs (config.json of each model on the Hugging Face hub); only the shape matters.
REFERENCE_MODELS = {
    "1.5B": ("Qwen2.5-1.5B", {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                              "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                              "vocab_size": 151936, "tie_word_embeddings": True}),
    "7B": ("Qwen2.5-7B", {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
                          "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                          "vocab_size": 152064, "tie_word_embeddings": False}),
    "13B": ("Llama-2-13B", {"model_type": "llama", "hidden_size": 5120, "intermediate_size": 13824,
                            "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 40,
                            "vocab_size": 32000, "tie_word_embeddings": False}),
}


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    bf16_tflops: float  # peak dense bf16 tensor TFLOP/s (without 2:4 sparsity), from the datasheet
    source: str


GPUS = (
    Gpu("NVIDIA A10", 24, 125.0, "NVIDIA A10 datasheet: BF16 Tensor Core 125 TFLOPS (250 with sparsity)"),
    Gpu("NVIDIA L40S", 48, 362.05, "NVIDIA L40S datasheet: BF16 Tensor Core 362.05 TFLOPS (733 with sparsity)"),
    Gpu("NVIDIA A100 80GB", 80, 312.0, "NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 with sparsity)"),
)
# Assumed, not measured: the share of peak that training/flops.py's FLOPs reach. transformers + peft
# LoRA with micro-batches of a few thousand tokens is commonly reported at 30-40% MFU; QLoRA
# dequantizes every 4-bit weight before each matmul, forward and backward, which costs a further
# fraction. Replace with a measured figure once a GPU run exists (issue 22).
MFU = {"lora": 0.35, "qlora": 0.25}
GPU_OVERHEAD_S_PER_LAYER_PASS = 0.5e-3  # ~40 kernels fwd+bwd per layer × ~12 µs launch (assumed)
GPU_RUNTIME_BYTES = 2**30               # CUDA context + cuBLAS workspace (assumed)
GPU_FRAGMENTATION = 0.10                # caching allocator slack on top of what tensors hold (assumed)
QLORA_BITS_PER_WEIGHT = 4.127           # NF4 + double-quantized constants (QLoRA paper)
LOGIT_BYTES = 12                        # per labelled token per vocabulary entry (see the docstring)

# Bytes kept for backward per token per layer = a·hidden + b·ff + c·r/16: least-squares fit over
# the shapes in FIT_SHAPES (saved_bytes, LoRA r=16 on all 7 projections, 4 rows × 128 tokens packed,
# mask and adapter-weight copies taken out first). Refit: python -m bench.sizing --fit.
# "fp32": the CPU; "bf16": autocast over bf16 weights (a GPU run).
ACTIVATION_RULE = {"fp32": (33.0, 16.0, 728.0), "bf16": (28.41, 8.0, 376.0)}  # measured 2026-12-07
BYTES_PER_VALUE = {"fp32": 4, "bf16": 2}  # of a layer's input (checkpointing) and of the attention mask
FIT_SHAPES = ((64, 128), (64, 256), (128, 256), (128, 512), (96, 384))  # (hidden, ff): 2-layer llamas, 4 heads, 2 kv


def activation_bytes(shape: dict, tokens: int, mode: str, *, seq: int, lora_r: int = 16,
                     checkpointing: bool = False) -> float:
    """Bytes autograd keeps for backward over the decoder, for a micro-batch of `tokens` tokens in
    rows of `seq` (module docstring). With checkpointing, one layer's activations are counted too:
    they exist while backward recomputes that layer."""
    a, b, c = ACTIVATION_RULE[mode]
    per_layer = tokens * (a * shape["hidden"] + b * shape["ff"] + c * lora_r / 16)
    fixed = tokens * seq * BYTES_PER_VALUE[mode]  # the packed rows' attention mask, shared by the layers
    if mode == "bf16":
        fixed += 2 * lora_params(shape, lora_r)   # autocast's bf16 copies of the fp32 adapter weights
    if not checkpointing:
        return fixed + shape["layers"] * per_layer
    return fixed + shape["layers"] * tokens * shape["hidden"] * BYTES_PER_VALUE[mode] + per_layer


def memory_bytes(shape: dict, *, device: str, tokens: int, label_tokens: int, seq: int | None = None,
                 lora_r: int | None = 16, qlora: bool = False, checkpointing: bool = False,
                 runtime_bytes: float = 900 * 2**20) -> dict:
    """The parts of peak memory (bytes) of one training process, by the module docstring's rule.

    device "cpu" (fp32) or "cuda" (bf16); lora_r None: full training (weights, gradients and AdamW
    moments, all fp32 here); `seq`: row length (default: one row of `tokens`); `runtime_bytes` is
    the CPU's (the GPU's is GPU_RUNTIME_BYTES)."""
    gpu = device == "cuda"
    body, embed = shape["body_params"], shape["embed_params"]
    if lora_r is None:
        weights, trainable = 0.0, 16.0 * (body + embed)
    else:
        per_weight = QLORA_BITS_PER_WEIGHT / 8 if qlora else 2 if gpu else 4
        weights = body * per_weight + embed * (2 if gpu else 4)
        trainable = 16.0 * lora_params(shape, lora_r)
    parts = {"weights": weights, "trainable": trainable,
             "activations": activation_bytes(shape, tokens, "bf16" if gpu else "fp32", seq=seq or tokens,
                                             lora_r=lora_r or 16, checkpointing=checkpointing),
             "logits": float(label_tokens * shape["vocab"] * LOGIT_BYTES)}
    tensors = sum(parts.values())
    parts["runtime"] = (GPU_RUNTIME_BYTES + GPU_FRAGMENTATION * tensors) if gpu else runtime_bytes
    return parts


def packed_work(tokens: int, seq: int, label_fraction: float, batch_tokens: int) -> Work:
    """Work of `tokens` trained tokens in packed rows of `seq` (each attends half its row on average),
    in micro-batches of `batch_tokens` (one decoder pass each)."""
    return Work(grad_tokens=tokens, grad_attended=tokens * (seq + 1) // 2, label_tokens=round(tokens * label_fraction),
                passes=max(1, -(-tokens // batch_tokens)))


@dataclass
class SizeRow:
    model: str           # "7B (Qwen2.5-7B)"
    target: str          # "this CPU (2 cores, 31 GB)" or "NVIDIA A10 24 GB"
    method: str          # "LoRA" or "QLoRA"
    checkpointing: bool  # chosen: off if the run fits without it
    peak_gb: float | None
    memory_gb: float     # the target's memory
    seconds: float | None  # per `tokens` trained tokens; None: cannot run there
    note: str = ""

    @property
    def fits(self) -> bool:
        return self.peak_gb is not None and self.peak_gb <= self.memory_gb


def size_table(cal, *, cpu_name: str, cpu_memory_gb: float, tokens: int = 1_000_000, seq: int = 1024,
               batch_tokens: int = 4096, label_fraction: float = 0.25, lora_r: int = 16) -> list[SizeRow]:
    """Every reference model × (this CPU, each GPU) × (LoRA, QLoRA). `cal`: this CPU's Calibration."""
    work = packed_work(tokens, seq, label_fraction, batch_tokens)
    labels = round(batch_tokens * label_fraction)
    rows = []
    for size, (name, config) in REFERENCE_MODELS.items():
        shape = model_shape(config)
        model = f"{size} ({name})"
        targets = [(cpu_name, cpu_memory_gb, "cpu", cal.gflops * 1e9, cal.overhead_s_per_layer_pass, None)]
        targets += [(f"{g.name} {g.memory_gb:g} GB", g.memory_gb, "cuda", g.bf16_tflops * 1e12, GPU_OVERHEAD_S_PER_LAYER_PASS,
                     g) for g in GPUS]
        for label, mem_gb, device, peak, overhead, gpu in targets:
            for method in ("LoRA", "QLoRA"):
                if method == "QLoRA" and device == "cpu":
                    rows.append(SizeRow(model, label, method, False, None, mem_gb, None, "CUDA only (bitsandbytes)"))
                    continue
                rate = peak * (MFU[method.lower()] if gpu else 1.0)
                for ckpt in (False, True):
                    parts = memory_bytes(shape, device=device, tokens=batch_tokens, label_tokens=labels, seq=seq,
                                         lora_r=lora_r, qlora=method == "QLoRA", checkpointing=ckpt)
                    peak_gb = sum(parts.values()) / 2**30
                    if peak_gb <= mem_gb:
                        break
                secs = train_flops(shape, work, "lora", recompute=ckpt) / rate
                secs += work.passes * shape["layers"] * overhead
                rows.append(SizeRow(model, label, method, ckpt, peak_gb, mem_gb, secs,
                                    "" if peak_gb <= mem_gb else "does not fit"))
    return rows


def format_table(rows: list[SizeRow], *, tokens: int, seq: int, batch_tokens: int, label_fraction: float,
                 cal) -> str:
    head = (f"Per {tokens:,} trained tokens, packed rows of {seq}, micro-batch {batch_tokens} tokens, "
            f"{label_fraction:.0%} labelled, LoRA r=16 on all 7 projections; gradient checkpointing only "
            f"where the run does not fit without it (ckpt).")
    lines = [head, "", "| model | target | method | ckpt | peak GB | fits | time |", "|---|---|---|---|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.target} | {r.method} | {'yes' if r.checkpointing else 'no'} | "
                     f"{'-' if r.peak_gb is None else f'{r.peak_gb:.1f}'} | {'yes' if r.fits else 'no'} | "
                     f"{'-' if r.seconds is None else duration(r.seconds)} |" + (f" {r.note}" if r.note else ""))
    lines += ["", "Assumptions (no GPU was measured):",
              f"  - CPU rate: {cal.describe()}, measured here with SmolLM2-135M's layer, assumed for wider layers",
              f"  - GPU rate: peak dense bf16 × MFU (LoRA {MFU['lora']}, QLoRA {MFU['qlora']}); "
              f"{GPU_OVERHEAD_S_PER_LAYER_PASS * 1e3:g} ms per layer pass"]
    lines += [f"  - {g.name}: {g.source}" for g in GPUS]
    lines += [f"  - GPU memory: {GPU_RUNTIME_BYTES / 2**30:g} GB CUDA runtime + {GPU_FRAGMENTATION:.0%} allocator slack; "
              f"QLoRA {QLORA_BITS_PER_WEIGHT} bits per decoder weight",
              f"  - activations per token per layer: {describe_activation_rule()}"]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """3.2 min, 18.9 h, 5.7 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def describe_activation_rule() -> str:
    return "; ".join(f"{mode}: {a:.1f}·hidden + {b:.1f}·ff + {c:.0f}·r/16 bytes"
                     for mode, (a, b, c) in ACTIVATION_RULE.items())


# ---- measurement: what the rule is fitted from and checked against ----

def tiny_config(hidden: int, ff: int, *, layers: int = 2, heads: int = 4, kv_heads: int = 2, vocab: int = 256) -> dict:
    return {"model_type": "llama", "hidden_size": hidden, "intermediate_size": ff, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
            "max_position_embeddings": 4096, "tie_word_embeddings": True}


def build_lora_model(config: dict, *, lora_r: int = 16, dtype=None, seed: int = 0):
    """A random-weight model of `config` with LoRA on the 7 projections (timing and memory depend on
    the shapes, not the values)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    skip = {"model_type", "architectures", "transformers_version", "torch_dtype", "dtype", "quantization_config"}
    cfg = AutoConfig.for_model(config.get("model_type", "llama"), **{k: v for k, v in config.items() if k not in skip})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    if dtype is not None:
        model = model.to(dtype)
    model.config._attn_implementation = "sdpa"  # as training/model.py load_model
    lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=list(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    return model


def packed_batch(rows: int, seq: int, vocab: int, *, sample_len: int = 64, label_fraction: float = 0.25, seed: int = 0):
    """A packed micro-batch as training/tokens.py makes it: rows of samples of `sample_len` tokens,
    positions restarting per sample, the last `label_fraction` of each sample labelled."""
    import random

    from .tokens import IGNORE, Batch

    rng = random.Random(seed)
    ids, labels, positions = [], [], []
    for _ in range(rows):
        row = [rng.randrange(3, vocab) for _ in range(seq)]
        pos = [i % sample_len for i in range(seq)]
        lab = [t if p >= sample_len * (1 - label_fraction) else IGNORE for t, p in zip(row, pos)]
        ids.append(row), labels.append(lab), positions.append(pos)
    return Batch(kind="packed", rows=ids, labels=labels, positions=positions, sample_tokens=rows * seq)


def saved_bytes(model, fn) -> tuple[int, object]:
    """(bytes of the distinct storages autograd saved for backward while `fn()` ran, its result).

    Parameters are left out (they are weights, counted apart); views of one storage count once."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and storage.nbytes():
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(kept.values()), out


def decoder_saved_bytes(config: dict, mode: str, *, rows: int = 4, seq: int = 128, checkpointing: bool = False) -> int:
    """Bytes the decoder stack keeps for backward in a LoRA forward of a packed micro-batch of
    `rows` × `seq` tokens, `mode` "fp32" or "bf16" (bf16 weights, bf16 autocast, on the CPU)."""
    import contextlib

    import torch

    from .model import parts

    bf16 = mode == "bf16"
    model = build_lora_model(config, dtype=torch.bfloat16 if bf16 else None)
    if bf16:  # as training/train.py: trainable weights fp32
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    decoder, _ = parts(model)
    batch = packed_batch(rows, seq, config["vocab_size"])
    ids = torch.tensor(batch.rows)
    pos = torch.tensor(batch.positions)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def forward():
        with ctx:
            return decoder(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state

    n, _ = saved_bytes(model, forward)
    return n


def fit_activation_rule(points: list[tuple[int, int, float]]) -> tuple[float, float, float]:
    """Least squares (a, b, c) of bytes_per_token_layer ≈ a·hidden + b·ff + c over (hidden, ff, bytes)."""
    import numpy as np

    x = np.array([[h, f, 1.0] for h, f, _ in points])
    y = np.array([v for _, _, v in points])
    return tuple(float(v) for v in np.linalg.lstsq(x, y, rcond=None)[0])


def measure_fit(mode: str, *, rows: int = 4, seq: int = 128) -> tuple[tuple[float, float, float], list]:
    """Refit ACTIVATION_RULE[mode] from FIT_SHAPES: ((a, b, c), [(hidden, ff, bytes per token·layer)]),
    the mask and (bf16) adapter-weight copies taken out of each measurement first."""
    points = []
    for hidden, ff in FIT_SHAPES:
        config = tiny_config(hidden, ff)
        shape = model_shape(config)
        fixed = rows * seq * seq * BYTES_PER_VALUE[mode] + (2 * lora_params(shape, 16) if mode == "bf16" else 0)
        kept = decoder_saved_bytes(config, mode, rows=rows, seq=seq)
        points.append((hidden, ff, (kept - fixed) / (rows * seq * shape["layers"])))
    return fit_activation_rule(points), points


def time_steps(config: dict, *, rows: int, seq: int, steps: int, threads: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds by `clock` of `steps` LoRA training steps (training/loop.py batch_loss, backward,
    AdamW) on one packed micro-batch of rows × seq tokens, after one warm-up step. With one thread,
    clock=time.process_time is the time of an otherwise idle machine, whatever else runs."""
    import torch

    from .loop import batch_loss

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_lora_model(config)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        batch = packed_batch(rows, seq, config["vocab_size"])
        times = []
        for i in range(steps + 1):
            t0 = clock()
            loss, n = batch_loss(model, batch, torch.device("cpu"), 0)
            (loss / max(n, 1)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i:
                times.append(clock() - t0)
        return times
    finally:
        torch.set_num_threads(before)


def predicted_step_seconds(config: dict, cal, *, rows: int, seq: int) -> float:
    """The rule's seconds for one step of time_steps' micro-batch (CPU, calibration `cal`)."""
    from .flops import batch_work

    shape = model_shape(config)
    work = batch_work(packed_batch(rows, seq, config["vocab_size"]))
    return train_flops(shape, work, "lora") / (cal.gflops * 1e9) + work.passes * shape["layers"] * cal.overhead_s_per_layer_pass
