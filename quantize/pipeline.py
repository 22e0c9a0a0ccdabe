"""`hearth pipeline recipe.yaml`: data → train → merge → export → quantize → eval → register, resumable.

Each stage writes <run>/stages/<stage>.json with the hash of its inputs and its outputs. A stage
is skipped when that file exists, its outputs exist, and the inputs hash is unchanged, so a
pipeline killed anywhere is simply run again. A killed training stage resumes from its last
checkpoint (when the data and training settings are unchanged).

eval evaluates base, adapted (merged f16 GGUF) and each quantization with the recipe's `eval`
settings (training/evaluation/suite.py) into <run>/eval/report.{json,md,html}. register applies
the recipe's `gate` to that report (training/evaluation/gate.py) and, only when it passes (or
`gate.enforce: false`), writes <run>/serve.yaml, a `hearth serve --config` file that serves the
quantized model under the recipe's name, with `sql.few_shot_k` equal to the k the model was
trained with. A failed gate removes a serve.yaml an earlier run registered, prints the reasons
and makes `hearth pipeline` exit 1.

It lives in quantize/, the package on top: it runs training/'s stages and this package's, and
training/ never imports quantize/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training.io import atomic_dir, sha256_file, sha256_json, write_json, write_text
from training.recipe import Recipe

from .cli import run_export, run_merge, run_quantize

STAGES = ("data", "train", "merge", "export", "quantize", "eval", "register")


def _files_hash(folder: Path, pattern: str = "*") -> str:
    return sha256_json({p.name: sha256_file(p) for p in sorted(folder.glob(pattern)) if p.is_file()})


def stage_inputs(stage: str, recipe: Recipe) -> str:
    run = recipe.run_dir()
    if stage == "data":
        from training.prepare import inputs_hash

        return inputs_hash(recipe)
    if stage == "train":
        return sha256_json({"data": _files_hash(run / "data", "*.jsonl"), "train": recipe.train.model_dump(),
                            "base": recipe.base_model})
    if stage == "merge":
        return sha256_json({"adapter": _files_hash(run / "adapter"), "base": recipe.base_model})
    if stage == "export":
        merged = _files_hash(run / "merged", "*.safetensors")
        pre = recipe.export.tokenizer_pre
        return merged if pre is None else sha256_json({"merged": merged, "tokenizer_pre": pre})
    if stage == "quantize":
        return sha256_json({"f16": sha256_file(f16_path(recipe)), "export": recipe.export.model_dump()})
    if stage == "eval":
        return sha256_json({"gguf": _files_hash(run / "gguf", "*.gguf"), "base": recipe.base_model,
                            "eval": recipe.eval.model_dump(), "sql": recipe.served_sql()})
    report = run / "eval" / "report.json"
    return sha256_json({"quant": _files_hash(run / "gguf", "*.gguf"), "sources": [s.model_dump() for s in recipe.sources],
                        "report": sha256_file(report) if report.exists() else None, "gate": recipe.gate.model_dump()})


def f16_path(recipe: Recipe) -> Path:
    return recipe.run_dir() / "gguf" / f"{recipe.name}-F16.gguf"


def outputs(stage: str, recipe: Recipe) -> list[Path]:
    run = recipe.run_dir()
    return {
        "data": [run / "data" / "train.jsonl", run / "data" / "manifest.json"],
        "train": [run / "adapter"],
        "merge": [run / "merged" / "config.json"],
        "export": [f16_path(recipe)],
        "quantize": [run / "gguf" / f"{recipe.name}-{q.upper()}.gguf" for q in recipe.export.quant_types],
        "eval": [run / "eval" / "report.json"],
        "register": [run / "serve.yaml"],
    }[stage]


def is_done(stage: str, recipe: Recipe) -> bool:
    stamp = recipe.run_dir() / "stages" / f"{stage}.json"
    if not stamp.exists() or not all(p.exists() for p in outputs(stage, recipe)):
        return False
    return json.loads(stamp.read_text()).get("inputs") == stage_inputs(stage, recipe)


def serve_snippet(recipe: Recipe) -> str:
    import yaml

    quant = recipe.export.serve_quant.upper()
    gguf = (recipe.run_dir() / "gguf" / f"{recipe.name}-{quant}.gguf").resolve()
    settings: dict = {"models": [{"name": recipe.name, "path": str(gguf)}]}
    if recipe.served_sql():  # served as trained: the same number of examples, a draft or none
        settings["sql"] = recipe.served_sql()
    header = (f"# Written by `hearth pipeline` for run {recipe.name}.\n"
              f"# hearth serve --config {recipe.run_dir() / 'serve.yaml'}   (or merge `models:` into your settings)\n")
    return header + yaml.safe_dump(settings, sort_keys=False)


def check_registration(recipe: Recipe) -> dict:
    """The gate on the eval stage's report; raises GateFailed (and unregisters) when it fails and is enforced."""
    from training.evaluation.gate import GateFailed, check_gate
    from training.evaluation.suite import candidate_name

    report_path = recipe.run_dir() / "eval" / "report.json"
    if not report_path.exists():
        if recipe.gate.enforce:
            raise FileNotFoundError(f"{report_path} is missing: run the eval stage first (or set gate.enforce=false)")
        print("[register] no evaluation report; gate not enforced: registering anyway")
        return {"passed": None, "enforced": False}
    result = check_gate(json.loads(report_path.read_text()), recipe.gate, candidate_name(recipe))
    print("[register] " + result.explain().replace("\n", "\n[register] "))
    if not result.passed and recipe.gate.enforce:
        (recipe.run_dir() / "serve.yaml").unlink(missing_ok=True)  # a failed gate never leaves a model registered
        raise GateFailed(result)
    return result.to_dict() | {"enforced": recipe.gate.enforce}


def run_stage(stage: str, recipe: Recipe, progress: bool = True) -> dict:
    run = recipe.run_dir()
    if stage == "data":
        from training.prepare import prepare

        return {"split": prepare(recipe)["split"]}
    if stage == "train":
        from training.train import checkpoints, train

        started = run / "stages" / "train.started.json"
        inputs = stage_inputs("train", recipe)
        resume = started.exists() and json.loads(started.read_text()).get("inputs") == inputs and bool(checkpoints(run))
        write_json(started, {"inputs": inputs})
        return train(recipe, resume=resume, progress=progress)
    ns = argparse.Namespace(target=None, overrides=[], out=None, base=None, tokenizer_gguf=None, name=None,
                            types=None, no_check=False)
    if stage == "merge":
        if recipe.train.method == "full":  # nothing to merge: the trained model is the merged model
            import shutil

            with atomic_dir(run / "merged") as tmp:
                shutil.copytree(run / "adapter", tmp, dirs_exist_ok=True)
            return {"copied": str(run / "adapter")}
        return run_merge(ns, recipe)
    if stage == "export":
        return run_export(ns, recipe)
    if stage == "quantize":
        manifest = run_quantize(ns, recipe)
        return {q: r.get("check", {}) | {"bytes": r["bytes"]} for q, r in manifest["outputs"].items()}
    if stage == "eval":
        from training.evaluation.suite import candidate_name, recipe_variants, run_evaluation

        report, paths = run_evaluation(recipe_variants(recipe), recipe.eval_config(), run / "eval", gate=recipe.gate,
                                       candidate=candidate_name(recipe), run_dir=run, name=recipe.name)
        return {"report": str(paths["html"]), "gate_passed": report["gate"]["passed"]}
    if stage == "register":
        gate = check_registration(recipe)
        write_text(run / "serve.yaml", serve_snippet(recipe))
        return {"serve_config": str(run / "serve.yaml"), "gate": gate}
    raise ValueError(stage)


def pipeline(recipe: Recipe, *, stages=STAGES, progress: bool = True, force: bool = False) -> dict:
    report_path = recipe.run_dir() / "pipeline.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for stage in stages:
        if not force and is_done(stage, recipe):
            print(f"[{stage}] up to date, skipped")
            report.setdefault(stage, {})["skipped"] = True
            continue
        print(f"[{stage}] running")
        t0 = time.perf_counter()
        result = run_stage(stage, recipe, progress)
        seconds = round(time.perf_counter() - t0, 1)
        write_json(recipe.run_dir() / "stages" / f"{stage}.json",
                   {"inputs": stage_inputs(stage, recipe), "seconds": seconds,
                    "outputs": [str(p) for p in outputs(stage, recipe)]})
        report[stage] = {"seconds": seconds, "skipped": False, "result": result}
        write_json(report_path, report)
        print(f"[{stage}] done in {seconds} s")
    write_json(report_path, report)
    return report


def add_arguments(parser: argparse.ArgumentParser, verb: str = "pipeline") -> None:
    from training.cli import add_arguments as common

    common(parser, "pipeline")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="Stages to run, in order.")
    parser.add_argument("--force", action="store_true", help="Run stages even when their outputs are up to date.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")


def run(args: argparse.Namespace, verb: str = "pipeline") -> int:
    from training.cli import load
    from training.evaluation.gate import GateFailed

    recipe = load(args)
    try:
        report = pipeline(recipe, stages=args.stages, progress=not args.no_progress, force=args.force)
    except GateFailed as exc:
        print(f"hearth pipeline: not registered, the promotion gate failed ({len(exc.result.reasons)} reason(s) "
              "above); set gate.enforce=false to register anyway", file=sys.stderr)
        return 1
    print(json.dumps({k: v.get("seconds") for k, v in report.items()}, indent=2))
    return 0
