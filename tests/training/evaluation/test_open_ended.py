"""Open-ended evaluation: prompt set, answers from real models, blind export, agreement, summary.

The agreement statistics are checked against values worked out by hand in the comments.
"""

from __future__ import annotations

import json
import re
import sqlite3
from fractions import Fraction

import pytest

from server.review.store import ReviewStore
from training.evaluation.agreement import agreement_report, exact_agreement, krippendorff_alpha, weighted_kappa
from training.evaluation.open_ended import (
    DEFAULT_PROMPTS,
    OpenPrompt,
    blind_items,
    export_blind,
    generate_answers,
    load_prompts,
    review_summary,
)
from training.evaluation.variants import EMBEDDED, Variant
from training.io import read_jsonl, write_jsonl

VARIANTS = ("secret-base-model", "secret-adapted-q4")
STYLE = {VARIANTS[0]: "Briefly", VARIANTS[1]: "In detail"}  # answers differ but never name the variant


def _answers(n_prompts: int = 6) -> list[dict]:
    return [{"variant": v, "prompt_id": f"p{i}", "prompt": f"Question {i}?", "system": None,
             "reference": f"notes {i}", "answer": f"{STYLE[v]}: {i}"}
            for i in range(n_prompts) for v in VARIANTS]


@pytest.fixture()
def exported(tmp_path):
    answers = write_jsonl(tmp_path / "answers.jsonl", _answers())
    store, key = tmp_path / "review.sqlite3", tmp_path / "private" / "key.json"
    result = export_blind(answers, store, key, seed=3)
    return answers, store, key, result


# -- prompt set --------------------------------------------------------------------------------


def test_default_prompt_set_is_about_the_sample_domain():
    prompts = load_prompts()
    assert 18 <= len(prompts) <= 30
    assert len({p.id for p in prompts}) == len(prompts)
    sql = [p for p in prompts if "SELECT" in p.prompt or "query" in p.prompt.lower()]
    assert 5 <= len(sql) <= len(prompts) - 5  # a mix of SQL explanations and domain questions
    text = " ".join(p.prompt for p in prompts).lower()
    for word in ("order_items", "customers", "supplier", "reorder", "discount", "credit limit"):
        assert word in text
    assert all(p.reference for p in prompts)
    assert prompts[0].messages()[0]["role"] == "system" and prompts[0].messages()[-1]["content"] == prompts[0].prompt


@pytest.mark.parametrize("row, error", [
    ({"id": "a", "prompt": "Q?", "answer": "x"}, "unknown keys"),
    ({"id": "a", "prompt": " "}, "'prompt'"),
    ({"prompt": "Q?"}, "'id'"),
])
def test_bad_prompt_rows_are_refused(tmp_path, row, error):
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    with pytest.raises(ValueError, match=error):
        load_prompts(path)


def test_duplicate_prompt_ids_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "Q?"}, {"id": "a", "prompt": "R?"}])
    with pytest.raises(ValueError, match="unique"):
        load_prompts(path)


# -- blind export ------------------------------------------------------------------------------


def test_blind_export_hides_the_variant_names(exported):
    _, store, key_path, result = exported
    assert (result["items"], result["added"]) == (12, 12)
    dump = "\n".join(sqlite3.connect(store).iterdump())
    assert not any(v in dump for v in VARIANTS) and "secret" not in dump
    items = ReviewStore(store).items()
    assert all(re.fullmatch(r"[0-9a-f]{12}", item.id) for item in items)
    key = json.loads(key_path.read_text())
    assert key["seed"] == 3 and set(key["items"]) == {item.id for item in items}
    for item in items:  # the key unblinds each item to the variant that wrote its answer
        entry = key["items"][item.id]
        assert item.answer == f"{STYLE[entry['variant']]}: {entry['prompt_id'][1:]}"
        assert item.reference == f"notes {entry['prompt_id'][1:]}"


def test_shuffle_is_seeded_and_independent_of_file_order():
    rows = _answers()
    items, key = blind_items(rows, seed=11)
    again, key_again = blind_items(list(reversed(rows)), seed=11)
    assert items == again and key == key_again
    other, _ = blind_items(rows, seed=12)
    assert [i.answer for i in other] != [i.answer for i in items]
    assert [i.position for i in items] == list(range(12))
    order = [key[i.id]["variant"] for i in items]
    assert order != sorted(order) and order != [v for _ in range(6) for v in VARIANTS]  # really shuffled


def test_exporting_again_keeps_grades_and_refuses_changed_answers(exported, tmp_path):
    answers, store, key, _ = exported
    item = ReviewStore(store).items()[0]
    ReviewStore(store).put_grade(item.id, "Ada", 4)
    assert export_blind(answers, store, key, seed=3)["added"] == 0
    assert len(ReviewStore(store).grades()) == 1
    changed = _answers()
    changed[0]["answer"] = "a different answer"
    write_jsonl(tmp_path / "changed.jsonl", changed)
    with pytest.raises(ValueError, match="different text"):
        export_blind(tmp_path / "changed.jsonl", store, tmp_path / "key2.json", seed=3)
    with pytest.raises(ValueError, match="separate file"):
        export_blind(answers, store, store, seed=3)


# -- agreement ---------------------------------------------------------------------------------


def test_quadratic_kappa_by_hand():
    # O: 1/4 on (4,5), rest on the diagonal -> sum w*O = 1/4. E: cells 1/16 over a in {1,2,3,4},
    # b in {1,2,3,5}; sum of (a-b)^2 over them = 21 + 11 + 9 + 15 = 56 -> sum w*E = 3.5.
    # kappa = 1 - 0.25 / 3.5 = 13/14.
    assert weighted_kappa([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(13 / 14)
    # Linear: sum |a-b| = 7 + 5 + 5 + 7 = 24 -> E = 1.5; kappa = 1 - 0.25 / 1.5 = 5/6.
    assert weighted_kappa([1, 2, 3, 4], [1, 2, 3, 5], "linear") == pytest.approx(5 / 6)
    assert weighted_kappa([1, 2], [2, 1]) == pytest.approx(-1.0)  # O = 1, E = 0.5
    assert weighted_kappa([2, 4, 5], [2, 4, 5]) == pytest.approx(1.0)
    assert weighted_kappa([3, 3], [3, 3]) is None  # no variation: chance agreement is already total
    with pytest.raises(ValueError):
        weighted_kappa([1, 2], [1])


def test_krippendorff_alpha_by_hand():
    # Values 1,2 | 3,3 | 5,5: n = 6, o(1,2) = o(2,1) = 1, so D_o = 2/6 for both metrics.
    # Interval: D_e = 2 * (1 + 8 + 32 + 2 + 18 + 16) / 30 = 154/30 -> alpha = 1 - 10/154 = 72/77.
    # Ordinal (n1=1, n2=1, n3=2, n5=2): delta = 1, 6.25, 20.25, 2.25, 12.25, 4 for
    # (1,2) (1,3) (1,5) (2,3) (2,5) (3,5); D_e = 2 * 99 / 30 = 6.6 -> alpha = 1 - 5/99 = 94/99.
    units = {"u1": [1, 2], "u2": [3, 3], "u3": [5, 5]}
    assert krippendorff_alpha(units, "interval") == pytest.approx(float(Fraction(72, 77)))
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(float(Fraction(94, 99)))
    # Three reviewers on u1, an item with one grade (ignored): o11 = o12 = o21 = 1, o33 = 2, n = 5,
    # D_o = 2/5; interval D_e = 2 * (2*1*1 + 2*2*4 + 1*2*1) / 20 = 2 -> alpha = 0.8.
    missing = {"u1": [1, 1, 2], "u2": [3, 3], "u3": [5]}
    assert krippendorff_alpha(missing, "interval") == pytest.approx(0.8)
    assert krippendorff_alpha({"u1": [1, 2], "u2": [2, 1]}, "interval") == pytest.approx(-0.5)
    assert krippendorff_alpha({"u1": [4, 4], "u2": [4, 4]}) is None
    assert krippendorff_alpha({"u1": [4]}) is None


def test_exact_agreement_by_hand():
    # Pairs: (1,1) equal; (2,3) off by one; (4,4) equal, (4,5) and (4,5) off by one.
    assert exact_agreement({"a": [1, 1], "b": [2, 3], "c": [4, 4, 5], "d": [2]}) == {
        "pairs": 5, "exact": 0.4, "within_one": 1.0}
    assert exact_agreement({"a": [3]}) == {"pairs": 0, "exact": None, "within_one": None}


def test_agreement_report_pairs_reviewers_on_shared_items():
    grades = {"i1": {"ann": 1, "bob": 1}, "i2": {"ann": 2, "bob": 3, "cy": 2}, "i3": {"ann": 4, "bob": 5}}
    report = agreement_report(grades)
    ann_bob = next(p for p in report["pairwise"] if p["reviewers"] == ["ann", "bob"])
    assert ann_bob["items"] == 3 and ann_bob["exact"] == pytest.approx(1 / 3)
    assert ann_bob["kappa_quadratic"] == pytest.approx(weighted_kappa([1, 2, 4], [1, 3, 5]))
    assert next(p for p in report["pairwise"] if p["reviewers"] == ["bob", "cy"])["items"] == 1
    assert report["items_with_several_grades"] == 3 and report["pairs"] == 5


# -- summary -----------------------------------------------------------------------------------


def test_review_summary_unblinds_grades_per_variant(exported, tmp_path):
    _, store_path, key_path, _ = exported
    store = ReviewStore(store_path)
    key = json.loads(key_path.read_text())["items"]
    plan = {("ann", VARIANTS[0]): 5, ("bob", VARIANTS[0]): 4, ("ann", VARIANTS[1]): 2, ("bob", VARIANTS[1]): 2}
    for item in store.items():
        for reviewer in ("ann", "bob"):
            store.put_grade(item.id, reviewer, plan[reviewer, key[item.id]["variant"]])
    # Another export in the same store: its grades must not be counted.
    other = write_jsonl(tmp_path / "other.jsonl",
                        [{"variant": "x", "prompt_id": "q", "prompt": "Other?", "answer": "y"}])
    export_blind(other, store_path, tmp_path / "other-key.json", seed=1)
    [foreign] = [i for i in store.items() if i.prompt == "Other?"]
    store.put_grade(foreign.id, "ann", 1)

    summary = review_summary(store_path, key_path)
    assert summary["variants"] == {
        VARIANTS[1]: {"mean": 2.0, "n": 12, "items": 6, "scores": {"1": 0, "2": 12, "3": 0, "4": 0, "5": 0}},
        VARIANTS[0]: {"mean": 4.5, "n": 12, "items": 6, "scores": {"1": 0, "2": 0, "3": 0, "4": 6, "5": 6}},
    }
    assert summary["reviewers"] == [{"name": "ann", "n": 12, "mean": 3.5}, {"name": "bob", "n": 12, "mean": 3.0}]
    assert (summary["items"], summary["grades"]) == (12, 24)
    agreement = summary["agreement"]
    assert agreement["exact"] == pytest.approx(0.5) and agreement["within_one"] == 1.0
    # ann: 5,2 ; bob: 4,2 on six items each -> the same kappa as one item of each.
    assert agreement["pairwise"][0]["kappa_quadratic"] == pytest.approx(weighted_kappa([5, 2], [4, 2]))
    json.dumps(summary)  # renderable as JSON


def test_summary_before_any_grade(exported):
    _, store, key, _ = exported
    summary = review_summary(store, key)
    assert {v["n"] for v in summary["variants"].values()} == {0}
    assert {v["mean"] for v in summary["variants"].values()} == {None}
    assert summary["agreement"]["exact"] is None and summary["reviewers"] == []


# -- answers from real models ------------------------------------------------------------------

PROMPTS = [OpenPrompt("reorder", "What is a reorder level? One sentence.", system="Be brief."),
           OpenPrompt("null", "Why is `x = NULL` never true in SQL? One sentence.")]


@pytest.mark.model
def test_gguf_variant_answers_greedily_and_resumes(tmp_path):
    variant = Variant("base", EMBEDDED, "gguf")
    out = generate_answers([variant], PROMPTS, tmp_path / "answers.jsonl", max_tokens=24, n_ctx=512, n_threads=2)
    rows = read_jsonl(out)
    assert [(r["variant"], r["prompt_id"]) for r in rows] == [("base", "reorder"), ("base", "null")]
    assert all(r["answer"] and r["finish_reason"] in ("stop", "length") and 0 < r["completion_tokens"] <= 24
               for r in rows)
    again = generate_answers([variant], PROMPTS[:1], tmp_path / "again.jsonl", max_tokens=24, n_ctx=512, n_threads=2)
    assert read_jsonl(again)[0]["answer"] == rows[0]["answer"]  # temperature 0: the same answer
    # A rerun keeps the rows it has: this variant's path no longer exists, yet nothing is loaded.
    moved = Variant("base", str(tmp_path / "gone.gguf"), "gguf")
    assert read_jsonl(generate_answers([moved], PROMPTS, out)) == rows
    with pytest.raises(ValueError):
        generate_answers([moved], [OpenPrompt("new", "A new question?")], tmp_path / "new.jsonl")


@pytest.mark.slow
def test_hf_variant_answers_through_transformers(tiny_model, tmp_path):
    variant = Variant("tiny", str(tiny_model), "hf")
    rows = read_jsonl(generate_answers([variant], PROMPTS, tmp_path / "hf.jsonl", max_tokens=4, n_threads=2))
    assert [r["prompt_id"] for r in rows] == ["reorder", "null"]
    assert all(r["completion_tokens"] <= 4 and r["finish_reason"] in ("stop", "length") for r in rows)
