"""`hearth eval`: argument errors (exit 2 before any model loads) and one short real run."""

from __future__ import annotations

import json

import pytest

from server.cli import main


@pytest.mark.parametrize("argv, message", [
    ([], "give a recipe or at least one --variant"),
    (["--variant", "base=embedded:smollm2", "--sql", "sample"], "--out DIR is required"),
    (["--variant", "base=embedded:smollm2", "--out", "x"], "nothing to evaluate"),
    (["--variant", "base", "--sql", "sample", "--out", "x"], "expected NAME=PATH"),
    (["--variant", "q8=missing.gguf", "--sql", "sample", "--out", "x"], "no GGUF file at missing.gguf"),
    (["--variant", "a=embedded:smollm2", "--variant", "a=embedded:smollm2", "--sql", "sample", "--out", "x"],
     "names must be unique"),
    (["--variant", "base=embedded:smollm2", "--sql", "sample,spider", "--out", "x"], "unknown set 'spider'"),
    (["--variant", "base=embedded:smollm2", "--sql", "pairs.jsonl", "--out", "x"], "needs --databases"),
    (["--variant", "base=embedded:smollm2", "--mc", "trivia", "--out", "x"], "neither `general` nor"),
    (["--variant", "base=embedded:smollm2", "--review-db", "nowhere.sqlite3", "--out", "x"], "does not exist"),
    (["--variant", "base=embedded:smollm2", "--sql", "sample", "--set", "eval.sql_limit=1", "--out", "x"],
     "--set needs a recipe"),
    (["--variant", "base=embedded:smollm2", "--sql", "sample", "--gate-from", "training/recipes/sql_sample.yaml",
      "--out", "x"], "the gate judges variant 'Q8_0'"),
    (["missing-recipe.yaml"], "recipe missing-recipe.yaml does not exist"),
])
def test_argument_errors(argv, message, capsys) -> None:
    assert main(["eval", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_recipe_whose_run_has_no_models(tmp_path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: nothing\nout_dir: {tmp_path / 'run'}\n")
    assert main(["eval", str(recipe)]) == 2
    assert "run `hearth pipeline`" in capsys.readouterr().err


@pytest.mark.model
@pytest.mark.slow
def test_eval_the_embedded_model(tmp_path, capsys) -> None:
    """A real Hearth server answers 3 sample questions; 4 MC questions; the report and a gate."""
    recipe = tmp_path / "gate.yaml"
    recipe.write_text("gate:\n  candidate: base\n  reference: base\n")  # judge base against itself
    out = tmp_path / "eval"
    code = main(["eval", "--variant", "base=embedded:smollm2", "--sql", "sample", "--sql-limit", "3",
                 "--mc", "general", "--mc-limit", "4", "--gate-from", str(recipe), "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    sample = report["variants"]["base"]["sql"]["sample"]["constrained"]
    assert sample["n"] == 3 and sample["latency_ms"]["p50"] > 0
    assert len(report["sql_records"]["base"]["sample"]["constrained"]) == 3
    assert report["baseline"]["sql"]["sample"]["n"] == 3
    assert report["variants"]["base"]["mc"]["general"]["n"] == 4
    assert report["variants"]["base"]["size_mb"] > 50  # SmolLM2-135M Q4_1 GGUF
    assert {"accuracy", "latency", "size_accuracy"} <= {p.stem for p in (out / "plots").glob("*.png")}
    gate = report["gate"]
    assert gate["checks"][0].startswith("ok: base SQL EX") and "a drop of 0.0 points" in gate["checks"][0]
    assert code == (0 if gate["passed"] else 1)
    assert "report: " in capsys.readouterr().out
    # Run again: every finished part is reused from <out>/parts, no model is measured again.
    assert sorted(p.name for p in (out / "parts").glob("*.json")) == ["mc-general--base.json", "sql--base.json"]
    assert main(["eval", "--variant", "base=embedded:smollm2", "--sql", "sample", "--sql-limit", "3",
                 "--mc", "general", "--mc-limit", "4", "--gate-from", str(recipe), "--out", str(out)]) == code
    assert capsys.readouterr().err.count("done in an earlier run") == 2
    again = json.loads((out / "report.json").read_text())
    # The model's records come back as stored (the in-process baseline is re-run: its latency differs).
    assert again["sql_records"]["base"] == report["sql_records"]["base"] and again["variants"] == report["variants"]


def test_grades_of_a_review_store_go_into_the_report(tmp_path) -> None:
    """--review-db alone loads no model: the blind grades, unblinded with the key, per variant."""
    from server.review.store import ReviewStore
    from training.evaluation.open_ended import export_blind
    from training.io import write_jsonl

    answers = write_jsonl(tmp_path / "answers.jsonl", [
        {"variant": v, "prompt_id": f"p{i}", "prompt": f"Question {i}?", "answer": f"{v} says {i}"}
        for v in ("base", "Q8_0") for i in range(2)])
    store, key = tmp_path / "review.sqlite3", tmp_path / "review.key.json"  # the default key name beside it
    export_blind(answers, store, key, seed=0)
    blind = json.loads(key.read_text())["items"]
    reviews = ReviewStore(store)
    for item_id, origin in blind.items():
        reviews.put_grade(item_id, "ann", 5 if origin["variant"] == "Q8_0" else 2)
    out = tmp_path / "eval"
    gguf = str(tmp_path / "Q8_0.gguf")
    (tmp_path / "Q8_0.gguf").write_bytes(b"GGUF" + bytes(2_000_000))  # only its size is read
    assert main(["eval", "--variant", "base=embedded:smollm2", "--variant", f"Q8_0={gguf}",
                 "--review-db", str(store), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["variants"]["Q8_0"]["open_ended"]["mean"] == 5.0
    assert report["variants"]["base"]["open_ended"]["mean"] == 2.0
    assert report["variants"]["Q8_0"]["size_mb"] == 2.0
    assert "| Q8_0 | - | - | - | - | - | - | 5.0 | 2.0 |" in (out / "report.md").read_text()


@pytest.mark.model
@pytest.mark.slow
def test_eval_serves_with_template_first(tmp_path) -> None:
    """--sql-setting reaches the evaluation server: with templates on, fitting templates answer
    without the model; with template_first=false the model writes every answer."""
    out = tmp_path / "eval"
    assert main(["eval", "--variant", "base=embedded:smollm2", "--sql", "sample", "--sql-limit", "6",
                 "--sql-setting", "template_first=true", "--sql-setting", "template_shapes=12",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    records = report["sql_records"]["base"]["sample"]["constrained"]
    templated = [r for r in records if r["source"] == "template"]
    assert templated and all(r["completion_tokens"] == 0 for r in templated)
    assert report["meta"]["config"]["sql_settings"] == {"template_first": True, "template_shapes": 12}
    off = tmp_path / "off"
    assert main(["eval", "--variant", "base=embedded:smollm2", "--sql", "sample", "--sql-limit", "2",
                 "--sql-setting", "template_first=false", "--out", str(off)]) == 0
    model_only = json.loads((off / "report.json").read_text())["sql_records"]["base"]["sample"]["constrained"]
    assert model_only and all(r["source"] != "template" for r in model_only)
    assert "template" in report["variants"]["base"]["sql"]["sample"]["constrained"]["by_source"]


def test_list_flags_of_optional_fields_take_several_names() -> None:
    """--sql-variants is `list[str] | None` in EvalConfig: a list of names, as --sql is (it was read
    as one string, and pydantic refused it)."""
    import argparse

    from server.cli import add_fields
    from training.recipe import EvalConfig

    parser = argparse.ArgumentParser()
    add_fields(parser, EvalConfig)
    args = parser.parse_args(["--sql-variants", "Q8_0", "base", "--sql-limit", "5", "--sql", "sample"])
    assert (args.sql_variants, args.sql_limit, args.sql) == (["Q8_0", "base"], 5, ["sample"])
    EvalConfig(sql_variants=args.sql_variants, sql_limit=args.sql_limit)  # and the config takes them
