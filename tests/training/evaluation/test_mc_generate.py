"""Drafting items from a small hand-written corpus, and the human approval step."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from training.evaluation.mc import evaluate_mc, load_mc
from training.evaluation.mc_generate import (
    approve,
    approve_file,
    definition_of,
    draft_from_corpus,
    main,
    sentences,
)
from training.evaluation.variants import Variant

GLOSSARY = """# Warehouse glossary

- **SKU**: the stock-keeping unit that identifies one sellable product.
- **Pick list**: a document that tells a warehouse worker which items to collect.
- Note: this glossary is updated every quarter.
"""
PROSE = """A purchase order is a document that a buyer sends to a supplier to request goods.
It is a good idea to check every purchase order twice. The rule is simple: count before you ship.
An invoice is a bill that the supplier sends after the goods are delivered.
This is the case for every customer.
"""
PAGE = "<html><body><p>A pallet is a flat wooden structure that holds goods during transport.</p>" \
       "<script>var x = 'A trap is a thing that must not be read';</script></body></html>"
ROWS = [{"text": "Backorder refers to an order that cannot be filled because the item is out of stock."},
        {"text": "A credit note is a document that reduces the amount a customer owes."}]

TERMS = {"SKU", "Pick list", "purchase order", "invoice", "pallet", "Backorder", "credit note"}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "glossary.md").write_text(GLOSSARY)
    (root / "orders.txt").write_text(PROSE)
    (root / "sub" / "page.html").write_text(PAGE)
    (root / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return root


def test_definitions_are_found_and_non_definitions_skipped():
    assert definition_of("A purchase order is a document that a buyer sends.") == {
        "term": "purchase order", "definition": "a document that a buyer sends"}
    assert definition_of("SKU: the stock-keeping unit of a product.")["term"] == "SKU"
    for sentence in ["It is a good idea to check every purchase order twice.", "This is the case for everyone.",
                     "Note: this glossary is updated every quarter.", "The rule is simple: count before you ship.",
                     "A box is a box that holds things.", "An x is a y."]:
        assert definition_of(sentence) is None, sentence
    # Wrapped prose joins into one sentence; bullets stay apart.
    assert sentences("A term is a word\nthat spans lines. Next one.\n- Bullet: one\n- Bullet two") == [
        "A term is a word that spans lines.", "Next one.", "Bullet: one", "Bullet two"]


def test_drafts_from_a_corpus(corpus, tmp_path):
    items = draft_from_corpus(corpus, subject="warehouse")
    assert {it["kind"] for it in items} == {"term", "definition"}
    assert len(items) == 2 * len(TERMS)
    for it in items:
        assert it["status"] == "draft" and it["subject"] == "warehouse"
        gold = it["choices"]["ABCD".index(it["answer"])]
        src = it["source"]
        assert src["doc"] in {"glossary.md", "orders.txt", "sub/page.html", "more.jsonl:0", "more.jsonl:1"}
        if it["kind"] == "term":
            assert gold in TERMS and gold in src["text"]
            assert set(it["choices"]) <= TERMS  # distractors of the same kind, from the corpus
        else:
            assert gold in src["text"] and f'"{gold}"' not in it["question"]
        assert len(set(it["choices"])) == 4
    positions = Counter(it["answer"] for it in items)
    assert max(positions.values()) - min(positions.values()) <= 1, positions
    assert items == draft_from_corpus(corpus, subject="warehouse")  # deterministic
    assert "trap" not in json.dumps(items)  # script text is not corpus text

    out = tmp_path / "drafts.jsonl"
    assert main([str(corpus), str(out)]) == 0
    loaded = load_mc(out)  # the drafted file is a valid multiple-choice file
    assert len(loaded) == len(items) and all(it["status"] == "draft" for it in loaded)
    with pytest.raises(ValueError, match="all are drafts"):  # scoring skips drafts, no model needed to see it
        evaluate_mc(Variant("v", "unused.gguf", "gguf"), loaded)


def test_approval(corpus, tmp_path):
    items = draft_from_corpus(corpus)
    first, second = items[0]["id"], items[1]["id"]
    approved = approve(items, [first])
    assert [it["status"] for it in approved[:2]] == ["approved", "draft"]
    assert items[0]["status"] == "draft"  # the input is not modified
    with pytest.raises(KeyError, match="no-such-id"):
        approve(items, ["no-such-id"])

    out = tmp_path / "drafts.jsonl"
    main([str(corpus), str(out)])
    assert approve_file(out, [first, second]) == len(items) - 2
    assert {it["id"] for it in load_mc(out) if it["status"] == "approved"} == {first, second}
    assert main(["--approve", str(out)]) == 0
    assert all(it["status"] == "approved" for it in load_mc(out))


def test_too_small_a_corpus_drafts_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("A pallet is a flat structure that holds goods.\nAn invoice is a bill for goods.")
    assert draft_from_corpus(tmp_path) == []
    assert main([str(tmp_path), str(tmp_path / "out.jsonl")]) == 1
