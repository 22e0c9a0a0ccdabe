"""Recipes: every shipped recipe parses; precedence CLI > env > YAML > default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from training.recipe import load_recipe

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


@pytest.mark.parametrize(("source", "served"), [
    ("{name: s, kind: sql, path: p.jsonl}", {"few_shot_k": 0, "draft": True, "drafts": 1}),
    ("{name: s, kind: sql, path: p.jsonl, template_first: true, rerank: 3}",
     {"few_shot_k": 0, "draft": True, "drafts": 1, "rerank": 3, "rerank_context": "served", "template_first": True,
      "template_choice": "nearest", "template_edits": False}),
    ("{name: s, kind: sql, path: p.jsonl, template_first: true, template_choice: model, question_samples: true}",
     {"few_shot_k": 0, "draft": True, "drafts": 1, "template_first": True, "template_choice": "model",
      "template_edits": False}),
    ("{name: s, kind: sql, path: p.jsonl, template_first: true, template_choice: model, template_edits: true}",
     {"few_shot_k": 0, "draft": True, "drafts": 1, "template_first": True, "template_choice": "model",
      "template_edits": True}),
    ("{name: s, kind: chat, path: p.jsonl}", {}),
])
def test_served_sql_follows_the_sql_source_into_serving_and_eval(tmp_path, source, served):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: x\nsources: [{source}]\n")
    recipe = load_recipe(path)
    assert recipe.served_sql() == served
    assert recipe.eval_config().served_sql()["template_first"] is served.get("template_first", False)
    assert recipe.eval_config().served_sql()["template_choice"] == served.get("template_choice", "nearest")
    assert recipe.eval_config().served_sql()["template_edits"] is served.get("template_edits", False)


@pytest.mark.parametrize("longest, budget", [(100, None), (204, None), (300, 384), (500, 640)])
def test_serving_token_budget_fits_the_longest_trained_answer(tmp_path, longest, budget):
    import json

    recipe = load_recipe(None, {"name": "r", "out_dir": str(tmp_path),
                                "sources": [{"name": "q", "kind": "sql", "path": "p.jsonl"}]})
    assert "max_new_tokens" not in recipe.served_sql()  # no data prepared yet: serving's default
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"sources": {"q": {"longest_answer_tokens": longest}}}))
    assert recipe.served_sql().get("max_new_tokens") == budget
    assert recipe.eval_config().sql_max_new_tokens == budget if budget else True
