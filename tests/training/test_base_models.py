"""`hearth plan` and `hearth train` take a GGUF file as base_model, as they take a local HF folder
(tests/training/test_plan.py, test_train.py, test_precision.py use the tiny save_pretrained
llama) and embedded:smollm2 (the default recipe): the GGUF is dequantized once into a plain HF
folder (training/model.py materialize_base) and both verbs read that."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.train


def test_plan_and_train_take_a_gguf_base(tmp_path, tiny_model, monkeypatch):
    from quantize.export import export_gguf
    from tests.training.conftest import sql_pairs
    from training import calibrate
    from training.calibrate import Calibration
    from training.model import materialize_base
    from training.plan import plan_from_sources
    from training.recipe import load_recipe
    from training.train import train

    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data-dir"))
    # The plan's arithmetic is test_plan's business: a fixed calibration keeps this test short.
    monkeypatch.setattr(calibrate, "measure", lambda config, threads: Calibration(
        gflops=10.0, spread=0.0, overhead_s_per_layer_pass=0.001, trials=12, threads=threads, layer="l", key="k"))
    gguf = tmp_path / "tiny-F16.gguf"
    export_gguf(tiny_model, gguf)
    pairs = sql_pairs(tmp_path / "pairs.jsonl", 8)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({
        "name": "g", "base_model": str(gguf), "out_dir": str(tmp_path / "run"),
        "sources": [{"name": "sql", "kind": "sql", "path": str(pairs), "role": "domain", "schema_source": "ddl"}],
        "data": {"ratio": 0, "val_fraction": 0.25},
        "train": {"max_steps": 2, "batch_size": 2, "lora_r": 4, "threads": 1, "patience": None, "device": "cpu"},
    }))
    r = load_recipe(recipe)
    plan, _ = plan_from_sources(r)
    assert plan.est_seconds > 0 and plan.method == "lora"
    base = materialize_base(str(gguf))
    assert base.is_dir() and (base / "SOURCE").read_text().strip() == str(gguf.resolve())
    config = json.loads((base / "config.json").read_text())
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2

    from training.prepare import prepare

    prepare(r)
    summary = train(r, progress=False)
    assert summary["steps"] == 2 and (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
