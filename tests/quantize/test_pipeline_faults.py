"""`kill -9` during each stage of `hearth pipeline`, then a rerun: it completes with the same
artifacts as a run that was never interrupted (issue 26, item 3).

Each faulted run is a real `hearth pipeline` process that SIGKILLs itself at the worst moment of one
stage: just before it renames a finished output onto its final name (the temporary file is whole,
the stage not yet recorded); in training, before its second checkpoint is committed, so the rerun
resumes from the first. The runs follow one another in one run folder, each skipping the stages
the last one finished, as an operator rerunning after each crash would; a last plain rerun then
finishes. The tiny Llama, a few training steps; eval is left out (register, with the gate not
enforced, registers without a report).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.train, pytest.mark.slow]

STAGES = ["data", "train", "merge", "export", "quantize", "register"]
# The rename to die before, counted within the stage: train renames its started-stamp, its
# train_config.json, checkpoint step 2, then step 4 (the second checkpoint).
KILL_AT = {"data": 1, "train": 4, "merge": 1, "export": 1, "quantize": 1, "register": 1}

_KILLER = textwrap.dedent("""
    import os, signal, sys
    import quantize.pipeline as pipeline
    from server.cli import main

    target, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    real_replace, real_run_stage = os.replace, pipeline.run_stage
    state = {"stage": None, "renames": 0}

    def run_stage(stage, recipe, progress=True):
        state["stage"] = stage
        return real_run_stage(stage, recipe, progress)

    def replace(src, dst, *args, **kwargs):
        if state["stage"] == target:
            state["renames"] += 1
            if state["renames"] == nth:
                print(f"killing during {target} before renaming onto {dst}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    pipeline.run_stage, os.replace = run_stage, replace
    sys.exit(main(argv))
""")


def _recipe(tmp_path: Path, tiny_model: Path, run: Path) -> Path:
    from tests.training.conftest import sql_pairs

    recipe = tmp_path / f"{run.name}.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-sql", "base_model": str(tiny_model), "out_dir": str(run),
        "sources": [{"name": "sql", "kind": "sql", "path": str(sql_pairs(tmp_path / "p.jsonl", 8)), "role": "domain",
                     "schema_source": "ddl"}],
        "data": {"ratio": 0, "val_fraction": 0.25},
        "train": {"max_steps": 4, "batch_size": 2, "eval_every": 4, "save_every": 2, "lora_r": 4, "threads": 1},
        "export": {"quant_types": ["Q8_0"], "check_prompts": 1, "serve_quant": "Q8_0"},
        "gate": {"enforce": False},
    }))
    return recipe


def _pipeline(recipe: Path, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    argv = ["pipeline", str(recipe), "--no-progress", "--stages", *STAGES]
    cmd = [sys.executable, "-c", _KILLER, *map(str, kill), *argv] if kill else \
        [sys.executable, "-m", "server.cli", *argv]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"})


def _artifacts(run: Path) -> dict[str, str]:
    """sha256 of what the stages hand on: data, adapter weights, merged weights, GGUFs; and serve.yaml
    with the run folder taken out of its paths."""
    from training.io import sha256_file, sha256_text

    files = [run / "data" / "train.jsonl", run / "adapter" / "adapter_model.safetensors",
             *sorted((run / "merged").glob("*.safetensors")), *sorted((run / "gguf").glob("*.gguf"))]
    out = {str(p.relative_to(run)): sha256_file(p) for p in files}
    out["serve.yaml"] = sha256_text((run / "serve.yaml").read_text().replace(str(run), "<run>"))
    return out


def test_kill_9_in_each_stage_then_a_rerun_gives_the_same_artifacts(tiny_model, tmp_path, data_dir):
    from server.cli import main

    reference = tmp_path / "reference"  # uninterrupted, in this process (spares a start of torch)
    assert main(["pipeline", str(_recipe(tmp_path, tiny_model, reference)), "--no-progress", "--stages", *STAGES]) == 0

    run = tmp_path / "faulted"
    recipe = _recipe(tmp_path, tiny_model, run)
    for stage in STAGES:
        died = _pipeline(recipe, (stage, KILL_AT[stage]))
        assert died.returncode == -signal.SIGKILL, (stage, died.stdout[-2000:], died.stderr[-2000:])
        assert f"killing during {stage}" in died.stdout
        assert not (run / "stages" / f"{stage}.json").exists()  # not recorded as done
        if stage == "train":  # it died after its first checkpoint, before the adapter
            assert (run / "checkpoints" / "step-000002" / "state.json").exists() and not (run / "adapter").exists()
    done = _pipeline(recipe)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "pipeline.json").read_text())
    assert all(report[s]["skipped"] for s in STAGES[:-1]) and not report["register"]["skipped"]
    assert _artifacts(run) == _artifacts(reference)
