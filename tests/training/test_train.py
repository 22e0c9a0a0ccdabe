"""The training loop on a tiny model: outputs, early stop, and --resume after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[2]


def write_recipe(tmp_path: Path, model: Path, pairs: Path, run: Path, **train) -> Path:
    train_cfg = {"max_steps": 12, "batch_size": 2, "eval_every": 4, "save_every": 4, "seq_len": 2048,
                 "lora_r": 4, "lr": 1e-3, "warmup_steps": 2, "threads": 1, "patience": None} | train
    path = tmp_path / f"recipe-{run.name}.yaml"
    path.write_text(json.dumps({
        "name": "t", "base_model": str(model), "out_dir": str(run),
        "sources": [{"name": "sql", "kind": "sql", "path": str(pairs), "role": "domain", "schema_source": "ddl"}],
        "serve": {"sql": {"few_shot_k": 1}},
        "data": {"ratio": 0, "val_fraction": 0.2, "seed": 1}, "train": train_cfg,
    }))
    return path


@pytest.fixture
def prepared(tmp_path, tiny_model, data_dir):
    from tests.training.conftest import sql_pairs
    from training.prepare import prepare
    from training.recipe import load_recipe

    pairs = sql_pairs(tmp_path / "pairs.jsonl", 12)
    recipe = write_recipe(tmp_path, tiny_model, pairs, tmp_path / "run")
    prepare(load_recipe(recipe))
    return tmp_path, tiny_model, pairs, recipe


def test_train_writes_adapter_metrics_plot_and_checkpoints(prepared):
    from training.recipe import load_recipe
    from training.train import checkpoints, train

    tmp_path, *_ , recipe = prepared
    summary = train(load_recipe(recipe), progress=False)
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(r["loss"] > 0 and r["tok_s"] > 0 for r in rows)
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0]  # it learns (lr 1e-3 on 8 samples)
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert [c.name for c in checkpoints(run)] == ["step-000008", "step-000012"]  # keep_checkpoints=2
    assert summary["steps"] == 12 and summary["best_val_loss"] == pytest.approx(min(vals), abs=1e-4)
    assert not list(run.glob("**/*.tmp"))


def test_early_stop_on_validation_loss(prepared):
    from training.recipe import load_recipe
    from training.train import train

    tmp_path, *_ , recipe = prepared
    # lr so high that validation loss gets worse: stops after `patience` bad evaluations.
    summary = train(load_recipe(recipe, ["train.lr=0.5", "train.eval_every=1", "train.patience=2",
                                         "train.max_steps=40", "train.warmup_steps=0"]), progress=False)
    assert summary["stopped"] and summary["steps"] < 40


def test_resume_after_kill_9_matches_uninterrupted_run(prepared):
    from safetensors.torch import load_file

    tmp_path, model, pairs, recipe = prepared
    steps = ["train.max_steps=60", "train.save_every=5", "train.eval_every=20"]
    # Reference: the same recipe, uninterrupted, in another run folder with the same data.
    ref_run = tmp_path / "ref"
    shutil.copytree(tmp_path / "run" / "data", ref_run / "data")
    cmd = [sys.executable, "-m", "server.cli", "train", "--no-progress"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    sets = [a for s in steps for a in ("--set", s)]
    subprocess.run(cmd + [str(recipe), "--out-dir", str(ref_run)] + sets, check=True, cwd=ROOT, env=env,
                   capture_output=True, timeout=300)

    run = tmp_path / "run"
    proc = subprocess.Popen(cmd + [str(recipe)] + sets, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list((run / "checkpoints").glob("step-0000[1-4]*/state.json")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (run / "adapter").exists()  # it really died mid-run

    done = subprocess.run(cmd + [str(recipe), "--resume"] + sets, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 61))  # no step lost or repeated
    got = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    ref = load_file(str(ref_run / "adapter" / "adapter_model.safetensors"))
    import torch

    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-6)
