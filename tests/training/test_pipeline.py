"""`hearth pipeline` end to end on the tiny model: every stage, skip on rerun, a servable config."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.train


def test_pipeline_runs_skips_and_registers(tmp_path, tiny_model, data_dir):
    import yaml

    from server.cli import main
    from server.settings import load_settings
    from tests.training.conftest import sql_pairs

    run = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-sql", "base_model": str(tiny_model), "out_dir": str(run),
        "sources": [{"name": "sql", "kind": "sql", "path": str(sql_pairs(tmp_path / "p.jsonl", 8)), "role": "domain",
                     "schema_source": "ddl"}],
        "serve": {"sql": {"few_shot_k": 2, "draft": False}},
        "data": {"ratio": 0, "val_fraction": 0.25},
        "train": {"max_steps": 3, "batch_size": 2, "eval_every": 3, "save_every": 3, "lora_r": 4, "threads": 1},
        "export": {"quant_types": ["Q8_0", "Q4_0"], "check_prompts": 2, "serve_quant": "Q8_0"},
        # A random 2-layer model cannot pass the gate: evaluate a little, register anyway.
        "eval": {"sql_limit": 2, "mc_limit": 3}, "gate": {"enforce": False},
    }))
    assert main(["pipeline", str(recipe), "--no-progress"]) == 0
    report = json.loads((run / "pipeline.json").read_text())
    assert all(not report[s]["skipped"] for s in ("data", "train", "merge", "export", "quantize", "eval", "register"))
    assert report["quantize"]["result"]["Q8_0"]["top1_agreement"] > 0.9
    quant = json.loads((run / "gguf" / "tiny-sql-quantize.json").read_text())
    assert set(quant["outputs"]) == {"Q8_0", "Q4_0"} and all(len(o["sha256"]) == 64 for o in quant["outputs"].values())

    evaluation = json.loads((run / "eval" / "report.json").read_text())
    assert list(evaluation["variants"]) == ["base", "adapted", "Q8_0", "Q4_0"]
    assert evaluation["variants"]["base"]["kind"] == "hf" and "sql" not in evaluation["variants"]["base"]
    assert evaluation["variants"]["Q8_0"]["sql"]["sample"]["constrained"]["n"] == 2
    assert all(v["mc"]["general"]["n"] == 3 for v in evaluation["variants"].values())
    # Evaluated as trained and as it will be served: 2 examples, no draft.
    served = evaluation["meta"]["config"]["sql_settings"]
    assert (served["few_shot_k"], served["draft"]) == (2, False)
    assert (run / "eval" / "plots" / "loss.png").exists() and (run / "eval" / "report.html").exists()
    assert report["register"]["result"]["gate"]["enforced"] is False

    serve = yaml.safe_load((run / "serve.yaml").read_text())
    assert serve["sql"] == {"few_shot_k": 2, "draft": False}
    settings = load_settings(run / "serve.yaml")
    assert settings.models[0].name == "tiny-sql" and settings.models[0].resolved_path().exists()

    assert main(["pipeline", str(recipe), "--no-progress"]) == 0  # everything up to date
    report = json.loads((run / "pipeline.json").read_text())
    assert all(report[s]["skipped"] for s in report)
    # A changed training setting reruns training and everything after it, not the data stage.
    assert main(["pipeline", str(recipe), "--no-progress", "--set", "train.max_steps=4"]) == 0
    report = json.loads((run / "pipeline.json").read_text())
    assert report["data"]["skipped"] and not report["train"]["skipped"] and not report["quantize"]["skipped"]
    assert not report["eval"]["skipped"]
