"""One-GPU training options, checked on the CPU: the precision a device gets, the recipe's rules for
gradient checkpointing and QLoRA, checkpointing's equal loss and smaller saved activations, and a
CPU training run that never imports the GPU module or bitsandbytes.

No GPU was available to this suite: autocast, GradScaler and the 4-bit base (training/gpu.py) are
only checked to be chosen and refused correctly here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from training.precision import Amp, Precision, QloraUnavailable, amp_for, choose

ROOT = Path(__file__).resolve().parents[2]


def test_precision_follows_the_device():
    assert choose("cpu") == Precision("float32", "float32", None, False, None)
    bf16 = choose("cuda", bf16=True)
    assert (bf16.frozen_dtype, bf16.trainable_dtype, bf16.autocast, bf16.loss_scaling) == \
        ("bfloat16", "float32", "bfloat16", False)
    fp16 = choose("cuda", bf16=False)  # Volta/Turing: fp16 needs loss scaling
    assert (fp16.frozen_dtype, fp16.autocast, fp16.loss_scaling) == ("float16", "float16", True)
    full = choose("cuda", bf16=True, method="full")  # every weight trained: fp32 master weights
    assert (full.frozen_dtype, full.autocast) == ("float32", "bfloat16")
    assert "loss scaling" in fp16.describe() and "autocast off" in choose("cpu").describe()


def test_qlora_is_refused_clearly_where_it_cannot_run():
    with pytest.raises(QloraUnavailable, match="needs a CUDA GPU.*device is cpu"):
        choose("cpu", quantize_base="nf4", has_bitsandbytes=True)
    with pytest.raises(QloraUnavailable, match="bitsandbytes package, which is not installed"):
        choose("cuda", bf16=True, quantize_base="nf4", has_bitsandbytes=False)
    with pytest.raises(ValueError, match="method: lora"):
        choose("cuda", bf16=True, method="full", quantize_base="nf4", has_bitsandbytes=True)
    ok = choose("cuda", bf16=True, quantize_base="nf4", has_bitsandbytes=True)
    assert ok.quantize_base == "nf4" and ok.autocast == "bfloat16" and "frozen nf4" in ok.describe()
    # Without the flag, whether bitsandbytes is installed decides (it is not, in this environment).
    from importlib.util import find_spec

    if find_spec("bitsandbytes") is None:
        with pytest.raises(QloraUnavailable, match="bitsandbytes"):
            choose("cuda", bf16=True, quantize_base="nf4")


def test_recipe_rules_for_checkpointing_and_qlora():
    from pydantic import ValidationError

    from training.recipe import load_recipe

    with pytest.raises(ValidationError, match="share_prefix: false"):
        load_recipe(None, ["train.gradient_checkpointing=true"])
    with pytest.raises(ValidationError, match="method: lora"):
        load_recipe(None, ["train.quantize_base=nf4", "train.method=full"])
    with pytest.raises(ValidationError):
        load_recipe(None, ["train.quantize_base=int3"])
    r = load_recipe(None, ["train.gradient_checkpointing=true", "train.share_prefix=false", "train.quantize_base=nf4"])
    assert r.train.gradient_checkpointing and r.train.quantize_base == "nf4"


def test_cpu_amp_is_plain_backward_clip_and_step():
    import torch

    amp = amp_for(choose("cpu"), "cpu")
    assert type(amp) is Amp
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    with amp.autocast():
        loss = (w * w).sum()  # gradient (6, 8), norm 10
    amp.backward(loss)
    amp.step(opt, [w], clip=1.0)  # clipped to norm 1: (0.6, 0.8)
    assert torch.allclose(w.detach(), torch.tensor([2.4, 3.2]))


def test_gradient_checkpointing_keeps_the_loss_and_gradients_and_saves_less():
    """On the CPU with a tiny llama: the same loss and LoRA gradients with and without
    checkpointing, the same losses over 3 AdamW steps, and fewer bytes kept for backward."""
    import torch

    from training.loop import batch_loss
    from training.sizing import build_lora_model, decoder_saved_bytes, packed_batch, tiny_config

    config = tiny_config(64, 128, layers=3)
    batch = packed_batch(2, 64, config["vocab_size"])
    runs = {}
    for ckpt in (False, True):
        model = build_lora_model(config, seed=1)
        if ckpt:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        for p in model.parameters():  # LoRA B starts at zero: give it values so every gradient is non-trivial
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(p.numel()))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-2)
        losses, grads = [], None
        for step in range(3):
            loss, n = batch_loss(model, batch, torch.device("cpu"), 0)
            (loss / n).backward()
            if step == 0:
                grads = [p.grad.clone() for p in params]
            opt.step()
            opt.zero_grad()
            losses.append(float(loss / n))
        runs[ckpt] = losses, grads
    (plain, g_plain), (ckpt, g_ckpt) = runs[False], runs[True]
    assert plain == pytest.approx(ckpt, rel=1e-5) and plain[-1] < plain[0]
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(g_plain, g_ckpt))
    kept, kept_ckpt = decoder_saved_bytes(config, "fp32"), decoder_saved_bytes(config, "fp32", checkpointing=True)
    assert kept_ckpt < 0.5 * kept


@pytest.mark.train
def test_cpu_training_run_never_imports_the_gpu_module(tmp_path, tiny_model):
    """A real `train()` on the CPU (tiny HF folder as base_model, gradient checkpointing on): it
    learns, records its precision, and leaves training.gpu and bitsandbytes unimported; QLoRA on
    the CPU stops before any model loads with the CUDA message."""
    from tests.training.conftest import sql_pairs

    pairs = sql_pairs(tmp_path / "pairs.jsonl", 8)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({
        "name": "p", "base_model": str(tiny_model), "out_dir": str(tmp_path / "run"),
        "sources": [{"name": "sql", "kind": "sql", "path": str(pairs), "role": "domain", "schema_source": "ddl"}],
        "data": {"ratio": 0, "val_fraction": 0.25},
        "train": {"max_steps": 6, "batch_size": 2, "eval_every": 3, "lora_r": 4, "lr": 1e-3, "warmup_steps": 0,
                  "threads": 1, "patience": None, "device": "cpu", "share_prefix": False,
                  "gradient_checkpointing": True},
    }))
    script = textwrap.dedent(f"""
        import json, sys
        from training.prepare import prepare
        from training.recipe import load_recipe
        from training.train import train
        from training.precision import QloraUnavailable
        recipe = load_recipe({str(recipe)!r})
        prepare(recipe)
        summary = train(recipe, progress=False)
        try:
            train(load_recipe({str(recipe)!r}, ["train.quantize_base=nf4"]), progress=False)
            qlora = "trained"
        except QloraUnavailable as e:
            qlora = str(e)
        print(json.dumps({{"summary": summary, "qlora": qlora,
                          "imported": sorted(m for m in sys.modules if m in ("training.gpu", "bitsandbytes")
                                             or m.startswith("bitsandbytes."))}}))
    """)
    env = os.environ | {"PYTHONPATH": str(ROOT), "HEARTH_DATA_DIR": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["imported"] == []
    assert "needs a CUDA GPU" in result["qlora"]
    assert result["summary"]["steps"] == 6
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [m["val_loss"] for m in metrics if "val_loss" in m]
    assert len(vals) == 2 and vals[-1] < vals[0]
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["precision"] == "frozen float32, trainable float32, autocast off"
