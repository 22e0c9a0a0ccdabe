"""training/sizing.py: the sizing rule against runs measured here, and the 1.5B/7B/13B table.

The checks that touch this machine's speed measure both sides in the test (calibration and real
steps of the same tiny model, same threads), so they hold on any machine: the time rule must land
within TIME_FACTOR of the measured steps. Activation memory is counted exactly (the bytes autograd
keeps for backward), so its bound is tight.
"""

from __future__ import annotations

import statistics
import time

import pytest

from training import calibrate, sizing
from training.calibrate import Calibration
from training.flops import model_shape
from training.plan import SMOLLM2_135M

TIME_FACTOR = 2.0       # measured step time / the rule's, either way
ACTIVATION_BOUND = 0.15  # |measured / rule - 1| on a shape the fit never saw
CAL = Calibration(gflops=80.0, spread=0.02, overhead_s_per_layer_pass=0.006, trials=12, threads=2, layer="smol",
                  key="test")


def test_activation_rule_is_the_fit_of_measured_runs():
    """ACTIVATION_RULE is what the fit of FIT_SHAPES' measured bytes gives, and it predicts
    SmolLM2-135M's own layer shape (9 heads, 3 KV heads, head_dim 64, ff 2.67x: not in the fit)."""
    for mode in ("fp32", "bf16"):
        (a, b, c), points = sizing.measure_fit(mode)
        assert (a, b, c) == pytest.approx(sizing.ACTIVATION_RULE[mode], rel=0.02), (mode, a, b, c)
        assert all(abs(y / (a * h + b * f + c) - 1) < 0.05 for h, f, y in points)
        layer = SMOLLM2_135M | {"num_hidden_layers": 2, "vocab_size": 256}
        measured = sizing.decoder_saved_bytes(layer, mode, rows=2, seq=128)
        rule = sizing.activation_bytes(model_shape(layer), 2 * 128, mode, seq=128)
        assert abs(measured / rule - 1) < ACTIVATION_BOUND, (mode, measured, rule)


def test_checkpointing_keeps_the_layer_inputs_only():
    """With checkpointing, what autograd keeps is the mask and the layers' inputs (the first layer's
    input is the frozen embedding's output, held by the checkpoint itself): the rule's persistent part."""
    config = sizing.tiny_config(64, 256, layers=4)
    shape = model_shape(config)
    tokens, seq = 4 * 128, 128
    full, ckpt = (sizing.decoder_saved_bytes(config, "fp32", rows=4, seq=seq, checkpointing=c) for c in (False, True))
    mask, layer_input = tokens * seq * 4, tokens * shape["hidden"] * 4
    assert mask + (shape["layers"] - 1) * layer_input <= ckpt <= mask + shape["layers"] * layer_input
    assert ckpt < full / 10
    rule_full = sizing.activation_bytes(shape, tokens, "fp32", seq=seq)
    rule_ckpt = sizing.activation_bytes(shape, tokens, "fp32", seq=seq, checkpointing=True)
    assert abs(full / rule_full - 1) < 0.05
    # The rule adds one layer's activations, alive while backward recomputes it.
    assert rule_ckpt == pytest.approx(mask + shape["layers"] * layer_input + (rule_full - mask) / shape["layers"])


def test_time_rule_predicts_measured_tiny_steps():
    """A couple of real LoRA steps of a tiny llama against FLOPs / calibrated rate + per-pass overhead,
    both measured now with one thread, in CPU time (the other work on a shared machine then slows
    neither side)."""
    config = sizing.tiny_config(128, 512, layers=4, vocab=4096)
    cal = calibrate.measure(config, threads=1, clock=time.process_time)
    measured = statistics.median(sizing.time_steps(config, rows=4, seq=128, steps=3, threads=1,
                                                   clock=time.process_time))
    predicted = sizing.predicted_step_seconds(config, cal, rows=4, seq=128)
    assert 1 / TIME_FACTOR < measured / predicted < TIME_FACTOR, (measured, predicted, cal.describe())


def test_size_table_covers_models_targets_and_methods():
    rows = sizing.size_table(CAL, cpu_name="this CPU", cpu_memory_gb=31.0)
    assert len(rows) == 3 * 4 * 2
    by = {(r.model.split()[0], r.target.split()[0] if r.target.startswith("this") else r.target, r.method): r
          for r in rows}
    cpu_qlora = by[("7B", "this", "QLoRA")]
    assert cpu_qlora.seconds is None and "CUDA only" in cpu_qlora.note
    a10, l40s, a100 = (f"{g.name} {g.memory_gb:g} GB" for g in sizing.GPUS)
    # 13B in bf16 is 26 GB of weights: LoRA cannot fit 24 GB even with checkpointing; QLoRA does.
    assert not by[("13B", a10, "LoRA")].fits and by[("13B", a10, "QLoRA")].fits
    assert by[("13B", a100, "LoRA")].fits
    for size in ("1.5B", "7B", "13B"):
        for gpu in (a10, l40s, a100):
            lora, qlora = by[(size, gpu, "LoRA")], by[(size, gpu, "QLoRA")]
            # Less memory for QLoRA, unless only LoRA needed checkpointing to fit.
            assert qlora.peak_gb < lora.peak_gb or (lora.checkpointing and not qlora.checkpointing)
    # Same work, same memory choice: GPU time scales with 1 / (peak × MFU).
    a, b = by[("1.5B", l40s, "LoRA")], by[("1.5B", a100, "LoRA")]
    assert a.checkpointing == b.checkpointing
    assert a.seconds / b.seconds == pytest.approx(312.0 / 362.05, rel=0.02)
    # The CPU row is the FLOP rule at the calibrated rate: 4·N per token for 1M tokens dominates.
    seven = model_shape(sizing.REFERENCE_MODELS["7B"][1])
    cpu7 = by[("7B", "this", "LoRA")]
    recompute = 6 / 4 if cpu7.checkpointing else 1
    assert cpu7.seconds == pytest.approx(4 * recompute * seven["body_params"] * 1e6 / 80e9, rel=0.25)


def test_plan_sizes_prints_the_table(tmp_path, monkeypatch, capsys):
    from training import cli

    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    measured = []

    def fake_measure(config, threads):
        measured.append(config["hidden_size"])
        layer = calibrate.layer_key(config)
        return Calibration(gflops=80.0, spread=0.03, overhead_s_per_layer_pass=0.006, trials=12, threads=threads,
                           layer=layer, key=calibrate.machine_key(threads, layer))

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    args = cli.argparse.Namespace(recipe=None, overrides=[], out_dir=None, json=False, recalibrate=False, sizes=True,
                                  tokens=1_000_000, seq=1024, batch_tokens=4096)
    assert cli.run(args, "plan") == 0
    out = capsys.readouterr().out
    assert measured == [576]  # calibrated with SmolLM2-135M's layer
    for text in ("1.5B (Qwen2.5-1.5B)", "7B (Qwen2.5-7B)", "13B (Llama-2-13B)", "NVIDIA A10 24 GB",
                 "NVIDIA L40S 48 GB", "NVIDIA A100 80GB 80 GB", "QLoRA", "Assumptions", "MFU"):
        assert text in out
    assert out.count("| 13B") == 8
