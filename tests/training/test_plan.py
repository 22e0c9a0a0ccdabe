"""The planner: recommendations follow the rules, and the time estimate follows its stated rule.

No test here asserts a duration or a rate of this machine: whether the estimate lands near a real
run is measured by bench/plan.py, which prints estimate, measured time and their ratio. These tests
check what the planner promises: the FLOP rule (linear in tokens and in model size, a forward-only
prompt cheaper than a differentiated one), the calibration's stopping rule (with a fake clock), its
per-machine cache, and that `hearth plan` answers without running the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training import calibrate
from training.calibrate import Calibration, fit, stable_median, timed
from training.flops import Work, batch_work, model_shape, train_flops
from training.plan import Hardware, detect_hardware, estimate, recommend

ROOT = Path(__file__).resolve().parents[2]
SMOL = {"hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True, "max_position_embeddings": 8192}
CAL = Calibration(gflops=40.0, spread=0.02, overhead_s_per_layer_pass=0.0, trials=10, threads=2, layer="smol",
                  key="test")


def test_detect_hardware_sees_this_machine():
    hw = detect_hardware()
    assert hw.cores == len(os.sched_getaffinity(0)) and hw.ram_gb > 0.5 and hw.calibration is None


def test_rules_small_vs_large_data():
    hw = Hardware(cores=2, ram_gb=24, ram_available_gb=20, calibration=CAL)
    small = recommend(samples=500, domain_loss_tokens=20_000, mean_tokens=1200, computed_per_sample=400,
                      config=SMOL, hw=hw)
    assert (small.model, small.method, small.lora_r, small.epochs, small.ratio) == ("chat", "lora", 8, 3, 5.0)
    assert small.seq_len >= 1200 and small.est_seconds > 0 and small.est_peak_gb > 0.5
    assert any("calibrated rate" in r for r in small.reasons)
    big = recommend(samples=150_000, domain_loss_tokens=30_000_000, mean_tokens=300, computed_per_sample=300,
                    config=SMOL, hw=hw)
    assert (big.model, big.method, big.epochs) == ("base", "full", 1)


def _seconds(config: dict, work: Work, cal: Calibration = CAL, method: str = "lora") -> float:
    return estimate(model_shape(config), method=method, work=work, batch_tokens=1000, cal=cal)[0]


def test_estimate_is_linear_in_tokens_and_in_model_size():
    work = Work(grad_tokens=10_000, grad_attended=10_000 * 300, label_tokens=400)
    one = _seconds(SMOL, work)
    assert _seconds(SMOL, work.scaled(2)) == pytest.approx(2 * one)
    # Twice the layers: body, attention and pass costs double; lm_head stays. Without labels: exactly 2x.
    deeper = SMOL | {"num_hidden_layers": 60}
    plain = Work(grad_tokens=10_000, grad_attended=10_000 * 300)
    assert _seconds(deeper, plain) == pytest.approx(2 * _seconds(SMOL, plain))
    # The rule itself: 4 FLOPs per body weight per token for LoRA, 6 for full, at the calibrated rate.
    body = model_shape(SMOL)["body_params"]
    assert _seconds(SMOL, Work(grad_tokens=1000)) == pytest.approx(4 * body * 1000 / 40e9)
    assert _seconds(SMOL, Work(grad_tokens=1000), method="full") == pytest.approx(6 * body * 1000 / 40e9)
    assert _seconds(SMOL, Work(forward_tokens=1000)) == pytest.approx(2 * body * 1000 / 40e9)
    # Twice the measured rate halves the time; the per-pass overhead adds layers × passes × overhead.
    fast = Calibration(**{**CAL.__dict__, "gflops": 80.0})
    assert _seconds(SMOL, work, fast) == pytest.approx(one / 2)
    slow_passes = Calibration(**{**CAL.__dict__, "overhead_s_per_layer_pass": 0.01})
    assert _seconds(SMOL, Work(passes=5), slow_passes) == pytest.approx(5 * 30 * 0.01)


def test_batch_work_counts_a_forward_only_prompt_cheaper(tokenizer_dir):
    from training.tokens import IGNORE, Batch

    prefix = list(range(100))
    rows = [list(range(50)), list(range(40))]
    labels = [[IGNORE] * 45 + [1] * 5, [IGNORE] * 30 + [1] * 10]
    batch = Batch(kind="prefix", rows=rows, labels=labels, prefix=prefix)
    full, answers = batch_work(batch, prompt_grad=True), batch_work(batch, prompt_grad=False)
    assert full.grad_tokens == 100 + 2 * 50 and full.forward_tokens == 0 and full.passes == 2
    # The answers start one before their first label: rows 44.. and 29..; the prompt up to 44 runs once.
    assert answers.grad_tokens == (50 - 44) + (40 - 29)
    assert answers.forward_tokens == 100 + 2 * 44 and answers.passes == 1 + 1 + 2
    assert train_flops(model_shape(SMOL), answers, "lora") < train_flops(model_shape(SMOL), full, "lora")
    packed = batch_work(Batch(kind="packed", rows=rows, labels=labels), prompt_grad=False)
    assert packed.grad_tokens == 2 * 50 and packed.passes == 1  # no prompt to skip: all differentiated


def test_stable_median_stops_when_the_window_agrees():
    noisy = iter([9.0, 3.0, 1.0, 2.0, 1.0, 1.02, 0.99, 1.01, 1.0, 5.0])
    calls = []

    def trial():
        calls.append(1)
        return next(noisy)

    med, spread, n = stable_median(trial, window=5, tolerance=0.05, max_trials=40)
    # The first call is a warm-up; the window 1.0, 1.02, 0.99, 1.01, 1.0 is the first to agree.
    assert med == 1.0 and spread == pytest.approx(0.03) and n == len(calls) == 9


def test_stable_median_gives_up_with_its_spread_on_a_machine_that_never_settles():
    values = iter([1.0, 2.0] * 50)
    med, spread, n = stable_median(lambda: next(values), window=4, tolerance=0.05, max_trials=12)
    assert n == 13 and med == 1.5 and spread == pytest.approx(1 / 1.5)


def test_timed_repeats_work_for_the_target_on_the_given_clock():
    now = [0.0]

    def work():
        now[0] += 0.03

    assert timed(work, clock=lambda: now[0], target_s=0.1)() == pytest.approx(0.03)


def test_fit_recovers_rate_and_overhead():
    rate, overhead = 50e9, 0.002
    large, small = 4e6 * calibrate.LARGE_TOKENS, 4e6 * calibrate.SMALL_TOKENS
    cal = fit(overhead + large / rate, overhead + small / rate, large, small, spread=0.0, trials=2, threads=1,
              layer="l", key="k")
    assert cal.gflops == pytest.approx(50.0) and cal.overhead_s_per_layer_pass == pytest.approx(0.002)


TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 1024}


def test_calibration_is_measured_once_per_machine_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    measured = []

    def fake_measure(config, threads):
        measured.append(threads)
        layer = calibrate.layer_key(config)
        return Calibration(gflops=10.0 * threads, spread=0.01, overhead_s_per_layer_pass=0.001, trials=7,
                           threads=threads, layer=layer, key=calibrate.machine_key(threads, layer))

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    first = calibrate.calibration(TINY, 1)
    again = calibrate.calibration(TINY | {"num_hidden_layers": 30}, 1)  # depth does not change a layer
    assert (first.cached, again.cached, again.gflops, measured) == (False, True, 10.0, [1])
    assert calibrate.calibration(TINY, 2).gflops == 20.0 and measured == [1, 2]  # threads are in the key
    assert calibrate.calibration(TINY | {"hidden_size": 128}, 1).cached is False and measured == [1, 2, 1]
    assert calibrate.calibration(TINY, 1, refresh=True).cached is False and measured == [1, 2, 1, 1]
    stored = json.loads((tmp_path / "cache" / "calibration.json").read_text())
    assert len(stored) == 3 and all("cores=" in k and "torch=" in k for k in stored)


def test_a_real_calibration_reports_its_rate_and_spread():
    cal = calibrate.measure(TINY, threads=1)
    assert cal.gflops > 0 and cal.spread >= 0 and cal.overhead_s_per_layer_pass >= 0
    assert cal.trials >= 2 * (calibrate.WINDOW + 1) and "spread" in cal.describe() and "hidden_size=64" in cal.layer


def test_plan_on_an_unprepared_recipe_answers_without_running_the_model(tmp_path, tokenizer_dir, tiny_model,
                                                                       monkeypatch, capsys):
    from tests.training.conftest import sql_pairs
    from training import cli, prepare, replay

    def forbidden(*a, **k):
        raise AssertionError("hearth plan ran the data stage")

    monkeypatch.setattr(prepare, "prepare", forbidden)
    monkeypatch.setattr(replay, "generate", forbidden)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data-dir"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({
        "name": "p", "base_model": str(tiny_model), "out_dir": str(tmp_path / "run"),
        "sources": [{"name": "sql", "kind": "sql", "path": str(sql_pairs(tmp_path / "p.jsonl", 12)), "role": "domain",
                     "schema_source": "ddl"},
                    {"name": "replay", "kind": "replay", "role": "general", "replay_prompts": 60}],
        "train": {"threads": 1},
    }))
    args = cli.argparse.Namespace(recipe=str(recipe), overrides=[], out_dir=None, json=False, recalibrate=False)
    assert cli.run(args, "plan") == 0
    out = capsys.readouterr().out
    assert "data not prepared" in out and "calibration:" in out and "spread" in out
    assert "est_seconds:" in out and "source replay (replay, role general) not read" in out
    assert not (tmp_path / "run" / "data").exists()


@pytest.mark.train
def test_plan_cli_runs_as_a_process_on_prepared_data(tmp_path, tiny_model):
    from tests.training.conftest import sql_pairs

    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({
        "name": "p", "base_model": str(tiny_model), "out_dir": str(tmp_path / "run"),
        "sources": [{"name": "sql", "kind": "sql", "path": str(sql_pairs(tmp_path / "p.jsonl", 12)), "role": "domain",
                     "schema_source": "ddl"}],
        "data": {"ratio": 0, "val_fraction": 0}, "train": {"threads": 1},
    }))
    env = os.environ | {"PYTHONPATH": str(ROOT), "HEARTH_DATA_DIR": str(tmp_path / "d")}
    subprocess.run([sys.executable, "-m", "server.cli", "data", str(recipe)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    out = subprocess.run([sys.executable, "-m", "server.cli", "plan", str(recipe), "--json"], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True, timeout=600).stdout
    plan = json.loads(out[out.index("{"):])
    assert plan["hardware"]["calibration"]["gflops"] > 0 and plan["est_seconds"] > 0 and plan["notes"] == []
