"""Recipes: every shipped recipe parses; precedence CLI > env > YAML > default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from training.recipe import EvalConfig, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "training" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_parse(path):
    recipe = load_recipe(path)
    assert recipe.sources and any(s.role == "domain" for s in recipe.sources)


def test_precedence(tmp_path, monkeypatch):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsources: [{name: a, kind: chat, path: a.jsonl}]\ntrain: {lr: 0.001, batch_size: 4, epochs: 2}\n")
    assert load_recipe(path).train.lr == 0.001                        # YAML over default
    assert load_recipe(path).train.grad_accum == 1                    # default
    monkeypatch.setenv("HEARTH_TRAIN__LR", "0.002")
    assert load_recipe(path).train.lr == 0.002                        # env over YAML
    assert load_recipe(path).train.batch_size == 4                    # rest of the YAML section kept
    assert load_recipe(path, ["train.lr=0.003"]).train.lr == 0.003   # CLI over env


def test_typos_and_bad_values_are_errors(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsources: [{name: a, kind: chat, path: a.jsonl}]\ntrain: {learning_rate: 1}\n")
    with pytest.raises(ValidationError):
        load_recipe(path)
    with pytest.raises(ValidationError):
        load_recipe(None, ["sources=[{name: a, kind: chat, role: general}]"])  # no domain source


SQL = "sources: [{name: s, kind: sql, path: p.jsonl}]\n"


@pytest.mark.parametrize(("recipe", "served"), [
    (SQL, {}),  # the server's defaults
    (SQL + "serve: {sql: {few_shot_k: 2, draft: false}}\n", {"few_shot_k": 2, "draft": False}),
    (SQL + "serve: {sql: {template_first: true, template_shapes: 12}}\n", {"template_first": True, "template_shapes": 12}),
    ("sources: [{name: s, kind: chat, path: p.jsonl}]\nserve: {sql: {draft: false}}\n", {}),
])
def test_served_sql_is_serve_sql_into_serving_and_eval(tmp_path, recipe, served):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n" + recipe)
    loaded = load_recipe(path)
    assert loaded.served_sql() == served
    assert loaded.eval_config().sql_settings == served
    # a command-line setting goes over the recipe's, and turning templates off drops their options
    flags = loaded.eval_config(sql_settings={"template_first": False}).sql_settings
    assert flags["template_first"] is False and "template_shapes" not in flags
    assert flags.get("draft", True) == served.get("draft", True)


@pytest.mark.parametrize("sql", [
    {"template_first": False, "template_shapes": 12},            # a template option without templates
    {"draftz": 3},                                               # a typo
])
def test_inert_or_unknown_sql_options_are_errors(tmp_path, sql):
    with pytest.raises(ValidationError):
        load_recipe(None, {"name": "r", "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl"}],
                           "serve": {"sql": sql}})
    with pytest.raises(ValidationError):
        EvalConfig(sql_settings=sql)


@pytest.mark.parametrize("longest, budget", [(100, None), (204, None), (300, 384), (500, 640)])
def test_serving_token_budget_fits_the_longest_trained_answer(tmp_path, longest, budget):
    import json

    recipe = load_recipe(None, {"name": "r", "out_dir": str(tmp_path),
                                "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl"}]})
    assert "max_new_tokens" not in recipe.served_sql()  # no data prepared yet: serving's default
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"sources": {"q": {"longest_answer_tokens": longest}}}))
    assert recipe.served_sql().get("max_new_tokens") == budget
    assert recipe.eval_config().sql_settings.get("max_new_tokens") == budget


def test_a_removed_sql_option_warns_and_is_ignored():
    with pytest.warns(DeprecationWarning, match="sql.rerank"):
        recipe = load_recipe(None, {"name": "r", "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl"}],
                                    "serve": {"sql": {"rerank": 3, "draft": False}}})
    assert recipe.served_sql() == {"draft": False}


@pytest.mark.parametrize("key, value", [("template_choice", "model"), ("template_choice", "nearest"),
                                        ("template_edits", True), ("edit_penalty", 2.0)])
def test_the_removed_template_choice_options_warn_and_are_ignored(key, value):
    with pytest.warns(DeprecationWarning, match=f"sql.{key}"):
        recipe = load_recipe(None, {"name": "r", "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl"}],
                                    "serve": {"sql": {key: value, "draft": False}}})
    assert recipe.served_sql() == {"draft": False}


def test_question_samples_was_removed_and_says_why():
    with pytest.raises(ValidationError, match=r"question_samples was removed \(2026-12-07\).*template_choice: model"):
        load_recipe(None, {"name": "r", "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl",
                                                     "question_samples": True}]})
