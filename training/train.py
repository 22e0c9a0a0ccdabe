"""`hearth train`: the training loop, with atomic checkpoints, --resume, metrics and early stop.

Reads the encoded mix written by `hearth data` (<run>/data/train.jsonl, val.jsonl), trains a LoRA
adapter (or the full model) and writes <run>/adapter (the best by validation loss, else the last).

Units: a *step* is one optimizer update = grad_accum micro-batches of batch_size samples. The
loss is the mean over the step's loss tokens (summed per micro-batch, divided once), so gradient
accumulation gives the same update as one big batch.

Resume: checkpoints <run>/checkpoints/step-NNNNNN hold the trainable weights, AdamW state, the
step, the epoch and micro-batch position, and the early-stop state. Batch order is a pure function
of (seed, epoch), so a resumed run sees exactly the batches the killed run would have seen.

Several processes (`accelerate launch`, training/README.md "More than one GPU"): a step takes
grad_accum × processes micro-batches from the same order and each process computes every
processes-th of them (`shard`); DDP all-reduces the gradients once per step, and only the main
process writes files. One process (the default) never imports accelerate.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import time
from pathlib import Path

from .io import atomic_dir, atomic_path, read_jsonl, write_json
from .loop import batch_loss, evaluate, loss_module, loss_sums
from .recipe import Recipe
from .tokens import make_batches


def world_size_from_env() -> int:
    """Processes of this run, as the launcher says: WORLD_SIZE (accelerate launch, torchrun), PMI_SIZE
    or OMPI_COMM_WORLD_SIZE (mpirun); 1 when started plainly."""
    return max(int(os.environ.get(k) or 1) for k in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))


def shard(group: list, rank: int, world_size: int) -> list:
    """This process's micro-batches of one step: every world_size-th, from its rank on. The ranks'
    shares are disjoint and together are `group`, so the step sees the single-process batches."""
    return group[rank::world_size]


def mixed_precision_for(device, dtype) -> str:
    """accelerate's mixed_precision for the device pick_device chose, as in one process: bf16 on GPUs
    that have it, fp16 (with loss scaling) on older ones, "no" on the CPU (bf16 is slower there)."""
    import torch

    return "no" if device.type == "cpu" else "bf16" if dtype == torch.bfloat16 else "fp16"


def accelerator_for(device, dtype):
    """The Accelerator of a multi-process launch: NCCL between GPUs, gloo between CPU processes.
    Precision comes from the device (mixed_precision_for), not from the launch config."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    mixed = mixed_precision_for(device, dtype)
    # The only buffers are constants (rotary frequencies): broadcasting them in every forward would
    # cost a collective per micro-batch and need the same count of micro-batches on every process.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    acc = Accelerator(cpu=device.type == "cpu", mixed_precision=mixed, kwargs_handlers=[ddp])
    if acc.num_processes != world_size_from_env():  # else N unsynchronised copies would share one run folder
        raise RuntimeError(f"launched as {world_size_from_env()} processes, but accelerate formed a group of "
                           f"{acc.num_processes} (device {device}): use a MULTI_GPU config (torchrun launcher)")
    return acc


def backward_shard(acc, step_loss, group: list, n_tokens: int) -> float:
    """Forward and backward of this process's share of a step; the step's summed loss, all processes.

    DDP averages gradients over the processes, so each scales its summed loss by processes / n_tokens
    (n_tokens: loss tokens of the whole step): the average is the single-process gradient.
    """
    import torch

    mine, scale = shard(group, acc.process_index, acc.num_processes), acc.num_processes / n_tokens
    if not mine:  # an epoch's last, short step left this process nothing; every process must still
        mine, scale = group[:1], 0.0  # join the gradient all-reduce, so it adds zero gradients
    loss_sum = 0.0
    for i, b in enumerate(mine):
        last = i == len(mine) - 1  # all-reduce once per step, after the last micro-batch
        with contextlib.nullcontext() if last else acc.no_sync(step_loss):
            loss, _ = step_loss(b)
            acc.backward(loss * scale)
        loss_sum += float(loss.detach()) if scale else 0.0
    return float(acc.reduce(torch.tensor(loss_sum, dtype=torch.float64, device=acc.device), "sum"))


def evaluate_shard(acc, model, batches: list, device, pad_id: int) -> float | None:
    """Validation loss with the batches split over the processes; the same number on every process
    (early stopping must agree, or one process would stop and the others wait for it forever)."""
    import torch

    if not batches:
        return None
    total, count = loss_sums(model, shard(batches, acc.process_index, acc.num_processes), device, pad_id)
    sums = acc.reduce(torch.tensor([total, count], dtype=torch.float64, device=acc.device), "sum")
    return float(sums[0] / max(sums[1], 1))


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then cosine decay to 10% of it at `total` steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is complete once state.json is in it)."""
    root = run / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / "state.json").exists()) if root.exists() else []


def _trainable_state(model) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.named_parameters() if v.requires_grad}


def save_checkpoint(run: Path, model, optimizer, state: dict, keep: int) -> Path:
    import torch
    from safetensors.torch import save_file

    path = run / "checkpoints" / f"step-{state['step']:06d}"
    with atomic_dir(path) as tmp:
        save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
    for old in checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: Path, model, optimizer) -> dict:
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v)
    # On the CPU first: the optimizer moves each state to its parameter's device (cuda:<rank>).
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    return json.loads((path / "state.json").read_text())


def save_adapter(model, out: Path, method: str, tokenizer) -> None:
    """LoRA: peft adapter folder; full: a plain HF model folder. Atomically replaced."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "METHOD").write_text(method + "\n")


def plot_losses(metrics_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(metrics_path) if metrics_path.exists() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per trained token (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _truncate_metrics(path: Path, step: int) -> None:
    """After a resume, forget metric lines written after the checkpoint (they will be redone)."""
    if path.exists():
        rows = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def train(recipe: Recipe, *, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> dict:
    """Trains and returns a summary. `stop_after` ends the process-level run early (tests)."""
    import torch
    from tqdm import tqdm

    from .model import add_lora, count_params, load_for_training, load_tokenizer, pick_device
    from .precision import amp_for, choose

    cfg = recipe.train
    run = recipe.run_dir()
    data = run / "data"
    if not (data / "train.jsonl").exists():
        raise FileNotFoundError(f"{data / 'train.jsonl'} is missing: run `hearth data` first")
    world = world_size_from_env()
    # Processes on one CPU box share its cores.
    torch.set_num_threads(cfg.threads or max(1, len(os.sched_getaffinity(0)) // world))
    torch.manual_seed(cfg.seed)
    device, dtype = pick_device(cfg.device)
    # QLoRA without CUDA or bitsandbytes fails here, before any model loads (training/precision.py).
    precision = choose(device.type, bf16=dtype == torch.bfloat16, method=cfg.method, quantize_base=cfg.quantize_base)
    acc = accelerator_for(device, dtype) if world > 1 else None
    if acc is None:  # one process: frozen weights in half precision, trainable ones fp32, autocast
        dtype = getattr(torch, precision.frozen_dtype)
    device = acc.device if acc else device  # cuda:<local rank> under several GPUs
    main = acc.is_main_process if acc else True  # the only process that writes files
    # A GGUF base is dequantized into a cache folder once: by main, before the others read it.
    with acc.main_process_first() if acc else contextlib.nullcontext():
        tokenizer = load_tokenizer(recipe.base_model)
    pad_id = tokenizer.pad_token_id
    model = load_for_training(recipe.base_model, cfg, device=device, dtype=dtype, precision=precision)
    if cfg.method == "lora":
        model = add_lora(model, cfg)
    model.train()
    total_params, trainable = count_params(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if (acc and acc.mixed_precision == "fp16") or (not acc and precision.autocast):  # the loss scaler refuses
        for p in params:  # fp16 gradients, AdamW wants fp32 moments: fp32 master weights (peft's LoRA already is)
            p.data = p.data.float()
    amp = amp_for(precision, device.type)  # CPU: plain backward and step; CUDA: autocast (+ GradScaler for fp16)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    # `model` stays the plain (peft) model, for checkpoints and the adapter; `step_loss` is the
    # DDP-wrapped loss that shares its parameters. The lr is set on the optimizer each step (lr_at),
    # so there is no scheduler object to prepare.
    step_loss = None
    if acc:
        step_loss, optimizer = acc.prepare(loss_module(model, device, pad_id, cfg.prompt_grad), optimizer)

    samples, val_samples = read_jsonl(data / "train.jsonl"), read_jsonl(data / "val.jsonl")
    per_epoch = len(make_batches(samples, batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=recipe.data.seed,
                                 share_prefix=cfg.share_prefix))
    # Effective batch = batch_size × grad_accum × processes micro-batches' samples per step.
    per_step = cfg.grad_accum * world
    steps_per_epoch = max(1, per_epoch // per_step)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    val_batches = make_batches(val_samples, batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=0,
                               share_prefix=cfg.share_prefix)

    state = {"step": 0, "epoch": 0, "micro": 0, "best_val": None, "bad_evals": 0, "sample_tokens": 0,
             "seconds": 0.0, "stopped": None}
    metrics_path, png = run / "metrics.jsonl", run / "loss.png"
    if resume and checkpoints(run):
        last = checkpoints(run)[-1]
        state = load_checkpoint(last, model, optimizer)
        if main:
            _truncate_metrics(metrics_path, state["step"])
    elif not resume and main:
        for stale in (metrics_path, run / "checkpoints"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    if main:
        write_json(run / "train_config.json", {"recipe": recipe.model_dump(), "total_steps": total_steps,
                                               "steps_per_epoch": steps_per_epoch, "params": total_params,
                                               "trainable_params": trainable, "device": str(device),
                                               "precision": precision.describe(),
                                               "processes": world})
    if acc:
        acc.wait_for_everyone()  # every process has read the checkpoint before main writes the next

    bar = tqdm(total=total_steps, initial=state["step"], disable=not progress or not main, unit="step",
               dynamic_ncols=True)
    epoch_batches = None
    started_here = state["step"]
    with open(metrics_path if main else os.devnull, "a") as metrics:
        while state["step"] < total_steps and state["stopped"] is None:
            if epoch_batches is None:  # first step of this process (fresh or resumed)
                epoch_batches = make_batches(samples, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                                             seed=recipe.data.seed + state["epoch"], share_prefix=cfg.share_prefix)
            if state["micro"] >= len(epoch_batches):  # epoch done (also when a resume lands on its end)
                state["epoch"], state["micro"] = state["epoch"] + 1, 0
                epoch_batches = make_batches(samples, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                                             seed=recipe.data.seed + state["epoch"], share_prefix=cfg.share_prefix)
            group = epoch_batches[state["micro"]:state["micro"] + per_step]  # all processes' micro-batches
            t0, c0 = time.perf_counter(), time.process_time()
            n_tokens = sum(b.n_labels for b in group) or 1
            for g in optimizer.param_groups:
                g["lr"] = lr_at(state["step"], total_steps, cfg.lr, cfg.warmup_steps)
            if acc:
                loss_sum = backward_shard(acc, step_loss, group, n_tokens)
                acc.clip_grad_norm_(params, cfg.grad_clip)  # unscales fp16 gradients first
            else:
                loss_sum = 0.0
                for b in group:
                    with amp.autocast():
                        loss, _ = batch_loss(model, b, device, pad_id, cfg.prompt_grad)
                    amp.backward(loss / n_tokens)  # one division per step: accumulation == big batch
                    loss_sum += float(loss.detach())
            if acc:
                optimizer.step()
            else:
                amp.step(optimizer, params, cfg.grad_clip)  # clip (fp16: unscaled first), then step
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            seen = sum(b.sample_tokens for b in group)
            state["step"] += 1
            state["micro"] += len(group)
            state["sample_tokens"] += seen
            state["seconds"] += dt
            state["cpu_seconds"] = state.get("cpu_seconds", 0.0) + time.process_time() - c0
            row = {"step": state["step"], "epoch": state["epoch"], "loss": round(loss_sum / n_tokens, 5),
                   "lr": g["lr"], "seconds": round(dt, 3), "sample_tokens": seen,
                   "computed_tokens": sum(b.computed_tokens for b in group), "tok_s": round(seen / dt, 1)}
            if state["step"] % cfg.eval_every == 0 or state["step"] == total_steps:
                val = (evaluate_shard(acc, model, val_batches, device, pad_id) if acc
                       else evaluate(model, val_batches, device, pad_id))
                if val is not None:
                    row["val_loss"] = round(val, 5)
                    if state["best_val"] is None or val < state["best_val"]:
                        state["best_val"], state["bad_evals"] = val, 0
                        if main:
                            save_adapter(model, run / "adapter-best", cfg.method, tokenizer)
                    else:
                        state["bad_evals"] += 1
                        if cfg.patience and state["bad_evals"] >= cfg.patience:
                            state["stopped"] = f"early stop: no better validation loss in {cfg.patience} evaluations"
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            bar.set_postfix(loss=row["loss"], tok_s=row["tok_s"], val=row.get("val_loss", "-"))
            bar.update(1)
            if main and (state["step"] % cfg.save_every == 0 or state["step"] == total_steps or state["stopped"]):
                metrics.flush()
                os.fsync(metrics.fileno())
                save_checkpoint(run, model, optimizer, state, cfg.keep_checkpoints)
                plot_losses(metrics_path, png)
            if stop_after is not None and state["step"] - started_here >= stop_after:
                bar.close()
                _end(acc)
                return {"step": state["step"], "stopped": "stop_after"}
    bar.close()
    if main:
        best = run / "adapter-best"
        if best.exists():
            with atomic_dir(run / "adapter") as tmp:
                shutil.copytree(best, tmp, dirs_exist_ok=True)
        else:
            save_adapter(model, run / "adapter", cfg.method, tokenizer)
        plot_losses(metrics_path, png)
    summary = {"steps": state["step"], "total_steps": total_steps, "epochs": state["epoch"] + 1,
               "best_val_loss": state["best_val"], "stopped": state["stopped"],
               "sample_tokens_per_s": round(state["sample_tokens"] / max(state["seconds"], 1e-9), 1),
               "train_seconds": round(state["seconds"], 1), "adapter": str(run / "adapter"),
               # CPU time / threads: what the wall time would be on an otherwise idle machine.
               "cpu_seconds": round(state.get("cpu_seconds", 0.0), 1), "threads": torch.get_num_threads(),
               "processes": world,
               "peak_rss_gb": round(peak_rss_gb(), 3)}
    if main:
        write_json(run / "train_summary.json", summary)
    _end(acc)
    return summary


def _end(acc) -> None:
    """Several processes: exit together, after main has written, and close the process group."""
    if acc:
        acc.wait_for_everyone()
        acc.end_training()


def peak_rss_gb() -> float:
    """This process's peak resident set (GB). VmHWM belongs to the address space exec made, while
    ru_maxrss carries over from the parent across fork: a run started from a 2 GB pytest process
    reported a 2.19 GB peak that alone was 0.79 GB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
