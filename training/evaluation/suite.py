"""Run a whole evaluation of several variants and write its report: what `hearth eval` and the
pipeline's eval stage do.

    report, paths = run_evaluation(variants, recipe.eval, "var/runs/x/eval", gate=recipe.gate,
                                   candidate="Q8_0", run_dir="var/runs/x")

In order, each part only when asked for (EvalConfig in training/recipe.py):
  1. Text-to-SQL execution accuracy of every GGUF variant (a Hearth server each, one at a time)
     and of the template baseline, on each SQL set (sql_accuracy.py);
  2. multiple-choice accuracy of every variant on each MC set (mc.py);
  3. open-ended answers of every variant exported for blind review, and the grades of an
     existing review store (open_ended.py);
  4. the gate (gate.py), when gate settings are given;
  5. report.json / .md / .html with plots (report.py), written atomically.
Hugging Face folder variants are scored by MC and open-ended only: Text-to-SQL is measured as
served, through llama.cpp, so it needs a GGUF.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .parts import Parts, digest, model_fingerprint
from .variants import Variant

GENERAL_MC = Path(__file__).parent / "data" / "general_mc.jsonl"
OPEN_PROMPTS = Path(__file__).parent / "data" / "open_prompts.jsonl"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def mc_path(name: str) -> Path:
    """`general` → the bundled general set; anything else is a .jsonl path."""
    return GENERAL_MC if name == "general" else Path(name)


def mc_name(name: str) -> str:
    return name if name == "general" else Path(name).stem


def review_key_path(store: str | Path, key: str | Path | None = None) -> Path:
    """The blind id → variant key of a review store: given, or `<store stem>.key.json` beside it."""
    return Path(key) if key else Path(store).with_name(Path(store).stem + ".key.json")


def load_sql_items(config) -> list:
    from .sql_data import DEFOG_DIR, load_databases, load_split, run_golds

    databases = load_databases(config.databases) if config.databases else None
    defog_dir = Path(config.defog_dir) if config.defog_dir else DEFOG_DIR
    items = [i for split in config.sql
             for i in load_split(split, config.sql_limit, defog_dir=defog_dir, databases=databases)]
    run_golds(items)
    bad = sum(i.gold_errors for i in items)
    _log(f"SQL: {len(items)} questions in {len(config.sql)} set(s); {bad} gold variants failed to run")
    return items


def _sql_key(v: Variant, items: list, config) -> dict:
    """What one variant's Text-to-SQL result depends on (parts.py): the serving settings in full,
    defaults included, so that a changed default (sql.template_shapes, say) measures again."""
    from server.sql.settings import SqlSettings

    return {"model": model_fingerprint(v.resolved_path), "modes": list(config.sql_modes), "n_ctx": config.n_ctx,
            "sql": SqlSettings(**config.sql_settings).model_dump(mode="json"),
            "items": [[i.split, i.id, i.database, i.question, i.gold_sql] for i in items]}


def run_sql(variants: list[Variant], config, report: dict, progress: bool, parts: Parts) -> None:
    from .sql_accuracy import evaluate_baseline, evaluate_sql_variant
    from .sql_data import DEFOG_DIR

    items = load_sql_items(config)
    defog_dir = Path(config.defog_dir) if config.defog_dir else DEFOG_DIR
    report["sql_splits"] = list(dict.fromkeys(i.split for i in items))
    report["baseline"] = {"sql": {}}
    for split, run in evaluate_baseline(items, defog_dir=defog_dir).items():
        report["baseline"]["sql"][split] = run["summary"]
        report["sql_records"].setdefault("baseline", {})[split] = {"baseline": run["records"]}
    for v in variants:
        if v.kind != "gguf":
            report["variants"][v.name].setdefault("notes", []).append("Text-to-SQL needs a GGUF: not measured")
            continue
        if config.sql_variants is not None and v.name not in config.sql_variants:
            report["variants"][v.name].setdefault("notes", []).append("Text-to-SQL not measured (eval.sql_variants)")
            continue
        _log(f"SQL: {v.name} ({v.path})")
        runs = parts.get_or_run("sql", v.name, _sql_key(v, items, config), lambda v=v: evaluate_sql_variant(
            str(v.resolved_path), items, config.sql_modes, defog_dir=defog_dir, n_ctx=config.n_ctx,
            sql=config.sql_settings, progress=progress))
        for split, by_mode in runs.items():
            for mode, run in by_mode.items():
                report["variants"][v.name].setdefault("sql", {}).setdefault(split, {})[mode] = run["summary"]
                report["sql_records"].setdefault(v.name, {}).setdefault(split, {})[mode] = run["records"]


def run_mc(variants: list[Variant], config, report: dict, parts: Parts) -> None:
    from .mc import evaluate_mc, load_mc

    for name in config.mc:
        items = load_mc(mc_path(name))
        items = [it for it in items if it.get("status", "approved") != "draft"][:config.mc_limit]
        for v in variants:
            _log(f"MC {mc_name(name)}: {v.name} ({len(items)} questions)")

            def measure(v=v, items=items) -> dict:
                result = evaluate_mc(v, items)
                result.pop("items", None)  # per-question log-likelihoods: too long for the report
                return result

            key = {"model": model_fingerprint(v.resolved_path), "items": digest(items)}
            report["variants"][v.name].setdefault("mc", {})[mc_name(name)] = parts.get_or_run(
                f"mc-{mc_name(name)}", v.name, key, measure)


def run_open_ended(variants: list[Variant], config, report: dict, out: Path) -> None:
    from .open_ended import export_blind, generate_answers

    if config.open_ended:
        answers = out / "open_ended" / "answers.jsonl"
        store = Path(config.review_db) if config.review_db else out / "open_ended" / "review.sqlite3"
        key = review_key_path(store, config.review_key)
        _log(f"open-ended: {len(variants)} variants answer {OPEN_PROMPTS.name} → blind items in {store}")
        generate_answers(variants, OPEN_PROMPTS, answers)
        report["open_ended"] = export_blind(answers, store, key, 0) | {"answers": str(answers)}
    if config.review_db and review_key_path(config.review_db, config.review_key).exists():
        from .open_ended import review_summary

        summary = review_summary(config.review_db, review_key_path(config.review_db, config.review_key))
        report.setdefault("open_ended", {})["agreement"] = summary.get("agreement")
        for name, grade in summary.get("variants", {}).items():
            if name in report["variants"]:
                report["variants"][name]["open_ended"] = grade


def run_evaluation(variants: list[Variant], config, out_dir: str | Path, *, gate=None, candidate: str | None = None,
                   run_dir: str | Path | None = None, name: str = "", progress: bool = False, fresh: bool = False):
    """Evaluates `variants` as `config` (EvalConfig) says; returns (report, written paths).

    Each variant's finished part is kept in `<out_dir>/parts/` (parts.py), so running the same
    evaluation again after a crash or a kill measures only what is missing; `fresh` starts over.
    """
    from .report import write_report

    out = Path(out_dir)
    parts = Parts(out, fresh=fresh)
    report: dict = {
        "meta": {"name": name, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "cores": len(os.sched_getaffinity(0)), "sql_limit": config.sql_limit, "mc_limit": config.mc_limit,
                 "config": config.model_dump(), "loadavg_at_start": os.getloadavg()},
        "headline_mode": config.sql_modes[0] if config.sql_modes else None,
        "variants": {v.name: {"path": v.path, "kind": v.kind, "size_mb": round(v.size_bytes / 1e6, 1)}
                     for v in variants},
        "sql_records": {},
    }
    t0 = time.perf_counter()
    if config.sql:
        run_sql(variants, config, report, progress, parts)
    if config.mc:
        run_mc(variants, config, report, parts)
    if config.open_ended or config.review_db:
        run_open_ended(variants, config, report, out)
    report["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    if gate is not None:
        from .gate import check_gate

        report["gate"] = check_gate(report, gate, candidate).to_dict()
    metrics = Path(run_dir) / "metrics.jsonl" if run_dir else None
    paths = write_report(report, out, metrics)
    return report, paths


def candidate_name(recipe) -> str:
    """The variant the gate judges: gate.candidate, else the quantization `register` would serve."""
    return recipe.gate.candidate or recipe.export.serve_quant.upper()


def recipe_variants(recipe) -> list[Variant]:
    """A pipeline run's variants: base, adapted (the merged f16 GGUF) and each quantization."""
    from .variants import variant

    run, out = recipe.run_dir(), []
    gguf = run / "gguf"
    files = [("adapted", gguf / f"{recipe.name}-F16.gguf")]
    files += [(q.upper(), gguf / f"{recipe.name}-{q.upper()}.gguf") for q in recipe.export.quant_types]
    missing = [str(p) for _, p in files if not p.exists()]
    if missing:
        raise FileNotFoundError(f"run {run} lacks {', '.join(missing)}: run `hearth pipeline` (export, quantize) first")
    out.append(variant("base", recipe.base_model))
    out += [variant(name, str(p)) for name, p in files]
    return out
