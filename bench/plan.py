"""The planner's time estimate against a real training run of the same recipe on this machine.

    .venv/bin/python -m bench.plan                                   # the default recipe, 135M, 8 steps
    .venv/bin/python -m bench.plan --recipe R.yaml --steps 4 --set train.threads=1

The recipe's domain sources are prepared (general sources such as replay are left out: they would
generate answers with the model first, and both sides see the same data either way), then
`training.plan.estimate_recipe` estimates `--steps` optimizer steps with this machine's calibration
(training/calibrate.py; `--recalibrate` measures it again), and training.train runs them in this
process. Printed: the calibration and its spread, estimate, measured wall seconds of the
steps (train_summary.json's train_seconds: model loading excluded), CPU seconds / threads, the
ratio measured / estimate, and the peak RSS against the memory estimate. The load check of
bench.common marks figures taken while other work used the cores UNRELIABLE (exit status 3).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_load_args, guard_from_args, print_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "training/recipes/sql_sample.yaml"))
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps to estimate and run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out-dir", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--recalibrate", action="store_true")
    add_load_args(parser)
    args = parser.parse_args(argv)

    from training.plan import detect_hardware, estimate_recipe
    from training.prepare import prepare
    from training.recipe import load_recipe

    out = Path(args.out_dir or tempfile.mkdtemp(prefix="hearth-bench-plan-"))
    overrides = args.overrides + [f"out_dir={out}", f"train.max_steps={args.steps}", "train.eval_every=100000",
                                  "train.save_every=100000", "data.ratio=0", "data.val_fraction=0"]
    recipe = load_recipe(args.recipe, overrides)
    recipe.sources = [s for s in recipe.sources if s.role == "domain"]
    prepare(recipe)

    from training.model import materialize_base

    config = json.loads((materialize_base(recipe.base_model) / "config.json").read_text())
    hw = detect_hardware(config, threads=recipe.train.threads, refresh=args.recalibrate)
    print(f"calibration: {hw.calibration.describe()}", flush=True)
    est = estimate_recipe(recipe, steps=args.steps, hw=hw)
    print(f"estimate: {est}", flush=True)

    from training.train import train

    guard = guard_from_args(args)
    with guard.measure(f"train {args.steps} steps") as rec:  # in this process: the guard sees its own load
        summary = train(recipe, progress=False)
    wall, cpu = summary["train_seconds"], summary["cpu_seconds"] / summary["threads"]
    print_table(["what", "estimate", "measured", "measured / estimate"], [
        ["step time, s (wall)", f"{est['seconds']:.1f}", f"{wall:.1f}", f"{wall / est['seconds']:.2f}"],
        ["step time, s (CPU / threads)", f"{est['seconds']:.1f}", f"{cpu:.1f}", f"{cpu / est['seconds']:.2f}"],
        ["peak RSS, GB", f"{est['peak_gb']:.2f}", f"{summary['peak_rss_gb']:.2f}",
         f"{summary['peak_rss_gb'] / est['peak_gb']:.2f}"],
    ], title=f"{recipe.name}: {args.steps} steps, {summary['threads']} thread(s), {rec.tag()}")
    return guard.summary_exit()


if __name__ == "__main__":
    raise SystemExit(main())
