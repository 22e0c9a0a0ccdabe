"""`hearth eval`: evaluate model variants and write the report (and, given gate settings, judge them).

    hearth eval --variant base=embedded:smollm2 --variant Q8_0=var/runs/x/gguf/x-Q8_0.gguf \\
        --sql sample,defog,defog_idk --sql-limit 20 --mc general --mc-limit 50 \\
        --run-dir var/runs/x --gate-from recipe.yaml --out var/eval/x
    hearth eval recipe.yaml [--set eval.sql_limit=10]     # a pipeline run's base, adapted f16 and quants

Without a recipe only the parts named on the command line run (--sql, --mc, --open-ended,
--review-db). With one, the recipe's `eval` section is the starting point and flags override it,
the variants are the run's, the report goes to <run>/eval and the recipe's `gate` judges them.
Exit status: 0, or 1 when a gate was applied and failed (its reasons are printed), 2 for bad
arguments. Flags and their help come from EvalConfig's fields (training/recipe.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# EvalConfig fields that are flags; list values may be comma-separated ("--sql sample,defog").
EVAL_FLAGS = ("sql", "sql_limit", "sql_variants", "sql_modes", "databases", "mc", "mc_limit", "open_ended", "review_db",
              "review_key", "n_ctx", "defog_dir")


def add_arguments(parser: argparse.ArgumentParser, verb: str = "eval") -> None:
    from server.cli import add_fields
    from training.recipe import EvalConfig

    parser.add_argument("recipe", nargs="?", default=None,
                        help="Pipeline recipe: evaluate its run's variants with its eval and gate settings.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a recipe value, e.g. --set eval.sql_limit=10 (repeatable).")
    parser.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME=PATH",
                        help="A variant to evaluate: a .gguf file, a Hugging Face model folder or embedded:smollm2.")
    add_fields(parser, EvalConfig, EVAL_FLAGS)
    parser.add_argument("--sql-setting", dest="sql_settings", action="append", default=[], metavar="KEY=VALUE",
                        help="A `sql:` setting of the evaluation server (server/settings.py SqlSettings), over the "
                             "recipe's serve.sql, e.g. --sql-setting template_shapes=12 (repeatable).")
    parser.add_argument("--run-dir", default=None, help="Training run folder whose metrics.jsonl gives the loss curve.")
    parser.add_argument("--gate-from", default=None, metavar="RECIPE",
                        help="Apply this recipe's gate settings to the report.")
    parser.add_argument("--candidate", default=None,
                        help="Variant the gate judges (default: gate.candidate, else export.serve_quant).")
    parser.add_argument("--out", default=None, help="Report folder (default with a recipe: <run>/eval).")
    parser.add_argument("--progress", action="store_true", help="One line per SQL question on stderr.")
    parser.add_argument("--fresh", action="store_true",
                        help="Measure everything again, ignoring the finished parts an earlier run kept in <out>/parts.")


def _flags(args: argparse.Namespace) -> dict:
    """The EvalConfig values given on the command line, comma lists split."""
    out = {}
    for name in EVAL_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        if isinstance(value, list):
            value = [part.strip() for v in value for part in v.split(",") if part.strip()]
        out[name] = value
    if args.sql_settings:
        out["sql_settings"] = parse_assignments(args.sql_settings, "--sql-setting")
    return out


def parse_assignments(items: list[str], flag: str) -> dict:
    """KEY=VALUE strings → {key: YAML-parsed value}."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _check_sets(config) -> None:
    """Unknown SQL or MC sets are argument errors, found before any model is loaded."""
    from .sql_data import ALL_SPLITS

    for name in config.sql:
        if name not in ALL_SPLITS and not name.endswith(".jsonl"):
            raise ValueError(f"--sql: unknown set {name!r}; choose from {', '.join(ALL_SPLITS)} or a pairs .jsonl file")
        if name.endswith(".jsonl") and not config.databases:
            raise ValueError(f"--sql {name}: a pairs file needs --databases (a settings YAML with `databases:`)")
    if config.review_db and not config.open_ended:
        from .suite import review_key_path

        key = review_key_path(config.review_db, config.review_key)
        if not Path(config.review_db).exists() or not key.exists():
            raise FileNotFoundError(f"--review-db {config.review_db}: the store or its key {key} does not exist "
                                    "(export answers first with --open-ended)")
    for name in config.mc:
        if name != "general" and not (name.endswith(".jsonl") and Path(name).exists()):
            raise ValueError(f"--mc: {name!r} is neither `general` nor an existing .jsonl file")


def plan(args: argparse.Namespace):
    """(variants, EvalConfig, out folder, gate or None, candidate, run folder, name) from the arguments."""
    from training.recipe import EvalConfig, load_recipe

    from .suite import candidate_name, recipe_variants
    from .variants import parse_variants

    flags = _flags(args)
    if args.recipe:
        recipe = load_recipe(args.recipe, args.overrides)
        config = recipe.eval_config(**flags)
        variants = recipe_variants(recipe) + parse_variants(args.variants)
        out = Path(args.out) if args.out else recipe.run_dir() / "eval"
        gate, candidate = recipe.gate, args.candidate or candidate_name(recipe)
        run_dir, name = Path(args.run_dir) if args.run_dir else recipe.run_dir(), recipe.name
    else:
        if args.overrides:
            raise ValueError("--set needs a recipe")
        if not args.variants:
            raise ValueError("give a recipe or at least one --variant NAME=PATH")
        if not args.out:
            raise ValueError("--out DIR is required without a recipe")
        config = EvalConfig(**({"sql": [], "mc": []} | flags))
        if not (config.sql or config.mc or config.open_ended or config.review_db):
            raise ValueError("nothing to evaluate: give --sql, --mc, --open-ended or --review-db")
        variants, out = parse_variants(args.variants), Path(args.out)
        gate = candidate = None
        if args.gate_from:
            gate_recipe = load_recipe(args.gate_from)
            gate, candidate = gate_recipe.gate, args.candidate or candidate_name(gate_recipe)
        run_dir, name = (Path(args.run_dir) if args.run_dir else None), ""
    if gate is not None and candidate not in {v.name for v in variants}:
        raise ValueError(f"the gate judges variant {candidate!r}, which is not among "
                         f"{[v.name for v in variants]}: name it so, or pass --candidate")
    if run_dir is not None and not (run_dir / "metrics.jsonl").exists():
        print(f"note: {run_dir / 'metrics.jsonl'} does not exist: no loss curve", file=sys.stderr)
    _check_sets(config)
    return variants, config, out, gate, candidate, run_dir, name


def run(args: argparse.Namespace, verb: str = "eval") -> int:
    from .report_data import HEADLINE, headline_rows
    from .suite import run_evaluation

    variants, config, out, gate, candidate, run_dir, name = plan(args)
    report, paths = run_evaluation(variants, config, out, gate=gate, candidate=candidate, run_dir=run_dir,
                                   name=name, progress=args.progress, fresh=args.fresh)
    for row in headline_rows(report):
        cells = ", ".join(f"{title} {row[key]}" for key, title in HEADLINE if row[key] is not None)
        print(f"{row['variant']}: {cells}")
    print(f"report: {paths['html']} (and report.md, report.json)")
    if "gate" in report:
        from .gate import GateResult

        result = GateResult(**report["gate"])
        print(result.explain(), file=sys.stdout if result.passed else sys.stderr)
        return 0 if result.passed else 1
    return 0
