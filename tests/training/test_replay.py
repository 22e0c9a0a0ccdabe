"""The offline general corpus: the base model's own greedy answers, cached."""

from __future__ import annotations

import json

import pytest

from training.replay import general_prompts

pytestmark = pytest.mark.model


def test_prompts_are_fixed_and_distinct():
    prompts = general_prompts()
    assert len(prompts) >= 100 and len(set(prompts)) == len(prompts)
    assert prompts == general_prompts()


def test_generate_is_cached_and_usable_as_chat(tmp_path):
    from server.settings import embedded_model_path
    from training.data import load_chat
    from training.replay import generate

    out = tmp_path / "replay.jsonl"
    generate(embedded_model_path(), out, n_prompts=2, max_tokens=8, n_threads=1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == general_prompts()[:2]
    assert all(r["messages"][1]["content"] for r in rows)
    before = out.read_text()
    generate("/nonexistent.gguf", out, n_prompts=2)  # everything cached: the model is not even opened
    assert out.read_text() == before
    assert len(load_chat(out)) == 2
