"""Training under `accelerate launch`: the shipped configs, the batch sharding, and a real 2-process run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "training" / "accelerate").glob("*.yaml"))
SAMPLES = 44  # 31 micro-batches: the last step holds 1 (for steps of 2 and of 6)


def readme_launches() -> list[list[str]]:
    """The `accelerate launch` commands of training/README.md's "More than one GPU", as argv."""
    text = (ROOT / "training" / "README.md").read_text()
    section = text[text.index("## More than one GPU"):]
    return [shlex.split(line.strip())[2:] for line in section.splitlines()
            if line.strip().startswith("accelerate launch ")]


def test_every_config_is_launched_by_the_readme_and_parses_in_accelerate(monkeypatch):
    """accelerate's own parser and launch validation, on the README's exact commands."""
    import torch
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType, PrecisionType

    from training.train import mixed_precision_for

    launches = readme_launches()
    named = {ROOT / argv[argv.index("--config_file") + 1] for argv in launches}
    assert CONFIGS and named == set(CONFIGS), "the README launches every shipped config, and only those"
    for argv in launches:
        path = ROOT / argv[argv.index("--config_file") + 1]
        config = load_config_from_file(str(path))
        assert isinstance(config, ClusterConfig)
        # MULTI_GPU's launcher (torchrun) starts num_processes processes; MULTI_CPU would start one.
        assert config.distributed_type == DistributedType.MULTI_GPU and config.num_processes >= 2
        on_cpu = "train.device=cpu" in argv
        device, dtype = (torch.device("cpu"), torch.float32) if on_cpu else (torch.device("cuda"), torch.bfloat16)
        assert config.mixed_precision in PrecisionType.list()
        assert config.mixed_precision == mixed_precision_for(device, dtype)  # the config says what the loop does

        monkeypatch.chdir(ROOT)  # the README's paths are relative to the repository
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
        assert args.multi_gpu and not args.cpu and args.num_processes == config.num_processes
        assert args.module and args.training_script == "server.cli"
        assert args.training_script_args[:2] == ["train", "recipe.yaml"]


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_shards_of_each_step_are_disjoint_and_make_the_single_process_order(grad_accum):
    """Ranks take every world_size-th micro-batch of each step, over a real epoch of micro-batches."""
    from training.tokens import make_batches
    from training.train import shard

    samples = [{"input_ids": list(range(3 + i % 5)), "labels": list(range(3 + i % 5)), "source": "t", "id": i}
               for i in range(SAMPLES)]
    order = make_batches(samples, batch_size=1, seq_len=8, seed=3, share_prefix=False)
    world, per_step = 2, grad_accum * 2
    assert len(order) % per_step == 1, "the epoch must end on a 1-batch step: rank 1 gets none"
    merged = []
    for start in range(0, len(order), per_step):  # the loop's steps: grad_accum × world micro-batches
        group = order[start:start + per_step]
        shares = [shard(group, r, world) for r in range(world)]
        assert not {id(b) for b in shares[0]} & {id(b) for b in shares[1]}
        assert sorted(id(b) for s in shares for b in s) == sorted(id(b) for b in group)
        assert len(shares[0]) - len(shares[1]) in (0, 1)
        merged += [shares[i % world][i // world] for i in range(len(group))]  # round robin = the order
    assert [id(b) for b in merged] == [id(b) for b in order]
    assert shares[1] == [] and shard(order, 0, 1) == order  # one process: everything, in order


@pytest.mark.train
@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch_match_one_process(tmp_path, tiny_model):
    """A real `accelerate launch` of 2 processes (gloo): one writer, --resume, and the same gradients
    and adapter as one process whose steps hold the same micro-batches (grad_accum × 2)."""
    import torch
    from safetensors.torch import load_file

    from tests.training.conftest import sql_pairs
    from tests.training.test_train import write_recipe
    from training.io import read_jsonl
    from training.prepare import prepare
    from training.recipe import load_recipe
    from training.tokens import make_batches
    from training.train import checkpoints, train

    pairs = sql_pairs(tmp_path / "pairs.jsonl", 12)
    run, ref = tmp_path / "run", tmp_path / "ref"
    # No clipping: a clipped gradient would hide a wrong gradient scale.
    steps = {"max_steps": 3, "eval_every": 3, "save_every": 2, "warmup_steps": 1, "device": "cpu", "grad_clip": 1e9}
    recipe = write_recipe(tmp_path, tiny_model, pairs, run, **steps)
    prepare(load_recipe(recipe))
    cfg = load_recipe(recipe)
    epoch = make_batches(read_jsonl(run / "data" / "train.jsonl"), batch_size=cfg.train.batch_size,
                         seq_len=cfg.train.seq_len, seed=cfg.data.seed)
    assert len(epoch) == 5  # 3 steps of 2, 2, 1 micro-batches: in the last, rank 1 has none

    accelerate = Path(sys.executable).with_name("accelerate")
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def launch(*extra: str) -> None:  # the README's command
        done = subprocess.run([str(accelerate), "launch", "--config_file", "training/accelerate/cpu_2proc.yaml",
                               "--main_process_port", "0", "-m", "server.cli", "train", str(recipe), "--no-progress",
                               "--set", "train.device=cpu", *extra],
                              check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(re.findall(r'"processes": 2', done.stdout)) == 2  # both processes trained, as one group

    launch()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # one writer: a second would have doubled every line
    assert "val_loss" in rows[-1]
    assert json.loads((run / "train_config.json").read_text())["processes"] == 2
    assert [c.name for c in checkpoints(run)] == ["step-000002", "step-000003"]
    assert not [p for p in run.rglob("*") if p.name.endswith((".tmp", ".old"))]
    first = load_file(str(run / "adapter" / "adapter_model.safetensors"))

    # --resume under 2 processes: from step 2 (weights, AdamW state, position), step 3 again.
    for gone in ("checkpoints/step-000003", "adapter", "adapter-best"):
        shutil.rmtree(run / gone)
    launch("--resume")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # step 3 redone once
    resumed = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    for k in first:
        torch.testing.assert_close(resumed[k], first[k], rtol=1e-5, atol=1e-7)

    # One process, two micro-batches per step: the same batches per step, so the same update.
    (ref / "data").mkdir(parents=True)
    for f in (run / "data").iterdir():
        (ref / "data" / f.name).write_bytes(f.read_bytes())
    summary = train(load_recipe(recipe, [f"out_dir={ref}", "train.grad_accum=2"]), progress=False)
    ref_rows = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    assert summary["processes"] == 1
    for got, want in zip(rows, ref_rows):
        assert got["sample_tokens"] == want["sample_tokens"]  # the same micro-batches in each step
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert rows[-1]["val_loss"] == pytest.approx(ref_rows[-1]["val_loss"], rel=1e-4)
    # AdamW's moments scale with the gradients (its update barely does): the gradients were the same.
    moments = [torch.load(r / "checkpoints" / "step-000003" / "optimizer.pt", weights_only=True)["state"]
               for r in (run, ref)]
    assert moments[0].keys() == moments[1].keys()
    for k in moments[1]:
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(moments[0][k][name], moments[1][k][name], rtol=1e-3, atol=1e-9)
    got = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    want = load_file(str(ref / "adapter" / "adapter_model.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
