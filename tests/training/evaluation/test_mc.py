"""The multiple-choice format, token split and metrics: pure functions, no model."""

from __future__ import annotations

import json
import math
import re

import pytest

from training.evaluation.mc import (
    MCFormatError,
    evaluate_mc,
    load_mc,
    mc_metrics,
    render_context,
    render_continuation,
    scoring_requests,
    validate_item,
)
from training.evaluation.mc_tokens import split_tokens
from training.evaluation.variants import Variant


def item(**kw) -> dict:
    return {"id": "q1", "question": "What is 2 + 2?", "choices": ["3", "4", "5", "22"], "answer": 1, **kw}


def write(tmp_path, rows) -> str:
    path = tmp_path / "mc.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_load_normalises_letters_and_defaults(tmp_path):
    items = load_mc(write(tmp_path, [item(answer="c", id=7), "", item(id="x", subject="math", status="draft")]))
    assert [it["id"] for it in items] == ["7", "x"]
    assert items[0]["answer"] == 2 and items[0]["subject"] == "general" and items[0]["status"] == "approved"
    assert items[1]["answer"] == 1 and items[1]["subject"] == "math" and items[1]["status"] == "draft"


@pytest.mark.parametrize("bad, message", [
    ("{not json", "mc.jsonl:2: not JSON"),
    ([1, 2], "mc.jsonl:2: expected a JSON object"),
    ({"id": "b", "question": "Q?", "choices": ["a", "b"]}, "mc.jsonl:2: missing 'answer'"),
    (item(id="b", answer=4), "mc.jsonl:2: 'answer' 4 is out of range for 4 choices"),
    (item(id="b", answer="E"), "mc.jsonl:2: 'answer' 'E' is out of range for 4 choices"),
    (item(id="b", answer="one"), "mc.jsonl:2: 'answer' must be a choice index or a letter A-D"),
    (item(id="b", answer=True), "mc.jsonl:2: 'answer' must be"),
    (item(id="b", choices=["x", "x ", "y"]), "mc.jsonl:2: choices must be distinct"),
    (item(id="b", choices=["only"]), "mc.jsonl:2: 'choices' must be a list of 2"),
    (item(id="b", choices=["a", ""]), "mc.jsonl:2: every choice must be a non-empty string"),
    (item(id="b", question=" "), "mc.jsonl:2: 'question' must be a non-empty string"),
    (item(id="b", status="maybe"), "mc.jsonl:2: 'status' must be one of"),
    (item(), "mc.jsonl:2: duplicate id 'q1' (first on line 1)"),
])
def test_load_errors_name_the_line(tmp_path, bad, message):
    with pytest.raises(MCFormatError, match=re.escape(message)):
        load_mc(write(tmp_path, [item(), bad]))


def test_load_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mc(tmp_path / "nope.jsonl")
    with pytest.raises(MCFormatError, match="no items"):
        load_mc(write(tmp_path, [""]))


def test_prompt_is_lm_eval_style():
    (context, conts), = scoring_requests([validate_item(item())])
    assert context == render_context("What is 2 + 2?") == "Question: What is 2 + 2?\nAnswer:"
    assert conts == [" 3", " 4", " 5", " 22"] and render_continuation(" 4 ") == " 4"


def toy_encode(text: str) -> list[int]:
    """A greedy tokenizer whose vocabulary has a token (":" + " ") that crosses the prompt boundary."""
    vocab = {": ": 100, ":": 101, " ": 102}
    out, i = [], 0
    while i < len(text):
        if text.startswith(": ", i):
            out.append(vocab[": "])
            i += 2
        else:
            out.append(vocab.get(text[i], ord(text[i])))
            i += 1
    return out


def test_split_tokens_takes_the_difference_and_handles_a_boundary_merge():
    whole, n = split_tokens(toy_encode, "ab", "cd")
    assert whole == [97, 98, 99, 100] and n == 2
    # "Answer:" + " x": ':' and ' ' merge into one token, which then belongs to the continuation.
    whole, n = split_tokens(toy_encode, "A:", " x")
    assert whole == [65, 100, ord("x")] and n == 1 and whole[n:] == [100, ord("x")]
    with pytest.raises(ValueError, match="adds no token"):
        split_tokens(toy_encode, "ab", "")


def test_acc_and_acc_norm_by_hand():
    items = [validate_item(x) for x in [
        # Summed log-likelihoods favour the short wrong answer; per character the long right one wins:
        # "no": -2.0 / 2 = -1.0; "certainly yes": -6.5 / 13 = -0.5.
        {"id": "a", "question": "q", "choices": ["no", "certainly yes"], "answer": 1, "subject": "s1"},
        # Both metrics right: "x" -0.1 vs "yyy" -3.0 (per char -0.1 vs -1.0).
        {"id": "b", "question": "q", "choices": ["x", "yyy"], "answer": 0, "subject": "s1"},
        # Both wrong.
        {"id": "c", "question": "q", "choices": ["p", "q", "r"], "answer": 2, "subject": "s2"},
        # Ties go to the first choice, as np.argmax.
        {"id": "d", "question": "q", "choices": ["aa", "bb"], "answer": 0, "subject": "s2"},
    ]]
    res = mc_metrics(items, [[-2.0, -6.5], [-0.1, -3.0], [-1.0, -0.5, -4.0], [-1.0, -1.0]])
    assert [r["pred"] for r in res["items"]] == [0, 0, 1, 0]
    assert [r["pred_norm"] for r in res["items"]] == [1, 0, 1, 0]
    assert res["n"] == 4 and res["acc"] == 0.5 and res["acc_norm"] == 0.75
    assert res["by_subject"] == {"s1": {"n": 2, "acc": 0.5, "acc_norm": 1.0}, "s2": {"n": 2, "acc": 0.5, "acc_norm": 0.5}}
    assert res["items"][0] == {"id": "a", "subject": "s1", "pred": 0, "pred_norm": 1, "gold": 1, "logprobs": [-2.0, -6.5]}
    with pytest.raises(ValueError, match="2 choices but 3"):
        mc_metrics(items[:1], [[-1.0, -2.0, -3.0]])
    assert math.isnan(mc_metrics([], [])["acc"])


def test_acc_norm_divides_by_the_choice_characters_as_lm_eval():
    """lm-eval's completion_len = len(choice): characters, without the leading space of the continuation."""
    items = [validate_item(x) for x in [
        # per character: "ab" -2.0/2 = -1.0, "abcd" -3.6/4 = -0.9 → 1; counting the space (3, 5) would give
        # -0.667 against -0.72 → 0.
        {"id": "space", "question": "q", "choices": ["ab", "abcd"], "answer": 1},
        # per character: "été" -2.7/3 = -0.9, "abcd" -3.0/4 = -0.75 → 1; per UTF-8 byte (5, 4) "été" would win.
        {"id": "bytes", "question": "q", "choices": ["été", "abcd"], "answer": 1},
    ]]
    res = mc_metrics(items, [[-2.0, -3.6], [-2.7, -3.0]])
    assert [r["pred_norm"] for r in res["items"]] == [1, 1] and res["acc_norm"] == 1.0


def test_evaluate_mc_refuses_drafts_only_and_unknown_kinds():
    drafts = [item(status="draft")]
    with pytest.raises(ValueError, match="all are drafts"):
        evaluate_mc(Variant("v", "x.gguf", "gguf"), drafts)
    with pytest.raises(ValueError, match="unknown kind 'onnx'"):
        evaluate_mc(Variant("v", "x.onnx", "onnx"), [item()])  # type: ignore[arg-type]
    with pytest.raises(MCFormatError, match="item 0: missing 'choices'"):
        evaluate_mc(Variant("v", "x.gguf", "gguf"), [{"id": 1, "question": "q", "answer": 0}])
