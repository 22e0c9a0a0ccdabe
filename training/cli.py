"""Verbs `hearth plan`, `hearth data`, `hearth train` (registered in server/cli.py VERBS).

Each takes a recipe YAML and `--set key=value` overrides (CLI > HEARTH_* env > YAML > defaults).
torch is imported inside run(), never at import time.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("recipe", nargs="?", default=None, help="Recipe YAML (see training/recipes/).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a recipe value, e.g. --set train.lr=1e-4 (repeatable).")
    parser.add_argument("--out-dir", default=None, help="Run folder (default var/runs/<name>).")
    if verb == "train":
        parser.add_argument("--resume", action="store_true", help="Continue from the last checkpoint in the run folder.")
        parser.add_argument("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (metrics still go to metrics.jsonl).")
    if verb == "plan":
        parser.add_argument("--json", action="store_true", help="Print the plan as JSON.")
        parser.add_argument("--recalibrate", action="store_true",
                            help="Measure this machine's training rate again instead of using the cached one.")
        parser.add_argument("--sizes", action="store_true",
                            help="Time and peak memory of LoRA and QLoRA for 1.5B, 7B and 13B models on this CPU and "
                                 "on one 24, 48 and 80 GB GPU (training/sizing.py states the rule); no recipe needed.")
        parser.add_argument("--tokens", type=int, default=1_000_000, help="--sizes: trained tokens the time is for.")
        parser.add_argument("--seq", type=int, default=1024, help="--sizes: packed row length (tokens).")
        parser.add_argument("--batch-tokens", type=int, default=4096, help="--sizes: tokens per micro-batch.")


def load(args: argparse.Namespace):
    from .recipe import load_recipe

    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    if getattr(args, "max_steps", None):
        overrides.append(f"train.max_steps={args.max_steps}")
    return load_recipe(args.recipe, overrides)


def run(args: argparse.Namespace, verb: str) -> int:
    recipe = load(args)
    if verb == "data":
        from .prepare import prepare

        manifest = prepare(recipe)
        print(json.dumps({"split": manifest["split"], "mix": manifest["mix"]["achieved"],
                          "roles": manifest["mix"]["roles"]}, indent=2))
        print(f"wrote {recipe.run_dir() / 'data'}")
        return 0
    if verb == "plan" and getattr(args, "sizes", False):
        from .plan import size_report

        print(size_report(tokens=args.tokens, seq=args.seq, batch_tokens=args.batch_tokens,
                          threads=recipe.train.threads, refresh=args.recalibrate))
        return 0
    if verb == "plan":
        from dataclasses import asdict

        from .plan import format_plan, plan_from_run, plan_from_sources

        notes = []
        if (recipe.run_dir() / "data" / "manifest.json").exists():
            plan = plan_from_run(recipe, refresh=args.recalibrate)
        else:  # the data stage would generate replay answers with the model: plan from counts instead
            print(f"data not prepared ({recipe.run_dir() / 'data'}): planning from the domain sources' counts",
                  flush=True)
            plan, notes = plan_from_sources(recipe, refresh=args.recalibrate)
        print(json.dumps(asdict(plan) | {"notes": notes}, indent=2) if args.json else format_plan(plan))
        for note in notes if not args.json else ():
            print(f"note: {note}")
        return 0
    if verb == "train":
        from .train import train

        summary = train(recipe, resume=args.resume, progress=not args.no_progress)
        print(json.dumps(summary, indent=2))
        return 0
    raise ValueError(f"`hearth {verb}` is not a verb of training.cli")
