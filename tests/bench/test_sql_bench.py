"""bench/sql.py and its library (training/evaluation/sql_data.py, sql_summary.py) without a model: item
loading, clean example pools, scoring and the summary."""

from __future__ import annotations

import pytest

from bench.sql import score, summarise
from training.evaluation.sql_data import ANSWERABLE_FILES, DEFOG_DIR, DEFOG_FILES, Item, _norm, _rows, defog_items, defog_pool, run_golds
from server.sql.compare import Gold

needs_defog = pytest.mark.skipif(not (DEFOG_DIR / "README.md").exists(), reason="../shared/data/defog not present")


@needs_defog
@pytest.mark.parametrize("split", list(DEFOG_FILES))
def test_no_evaluated_question_is_its_own_example(split: str) -> None:
    rows = _rows(DEFOG_DIR / DEFOG_FILES[split])
    for db in {r["db_name"] for r in rows}:
        asked = {_norm(r["question"]) for r in rows if r["db_name"] == db}
        pool = defog_pool(split, db, DEFOG_DIR)
        assert not asked & {_norm(p["question"]) for p in pool}
        if split in ANSWERABLE_FILES and db in {"academic", "advising", "atis", "scholar", "yelp"}:
            assert pool == []  # only questions_gen covers these: nothing clean to learn from


@needs_defog
def test_defog_gold_variants_are_split_and_run() -> None:
    items = defog_items("defog", DEFOG_DIR, limit=12)
    assert len({i.category for i in items}) == 6  # the limit is spread over categories
    run_golds(items)
    assert any(len(i.gold_sql) > 1 for i in items)
    assert all(i.golds for i in items)
    idk = defog_items("defog_idk", DEFOG_DIR, limit=3)
    assert all(not i.answerable for i in idk)


def _item(golds, category="join", seen=None) -> Item:
    item = Item("sample", "x", "sample", None, "q", ["SELECT 1"] if golds is not None else [], category, seen)
    item.golds = golds or []
    return item


def _record(status="ok", rows=None, attempts=1, rules=(), latency=10.0) -> dict:
    return {"status": status, "rows": rows, "attempts": attempts, "attempt_rules": list(rules),
            "failed_rule": rules[-1] if status == "rejected" and rules else None, "latency_ms": latency}


def test_summary_counts() -> None:
    records = [
        score(_item([Gold([[1]])], seen=True), _record(rows=[[1]])),
        score(_item([Gold([[1]])], seen=False), _record(rows=[[2]], attempts=2, rules=["columns_exist"])),
        score(_item([Gold([[5]])], category="agg", seen=True),
              _record("rejected", attempts=3, rules=["read_only", "read_only", "columns_exist"])),
        score(_item([Gold([])]), _record(rows=[])),  # empty gold: reported apart
        score(_item(None), _record("unanswerable")),  # an unanswerable question, refused
        score(_item([]), _record(rows=[[1]])),  # gold does not run: unscorable
    ]
    s = summarise(records, latency_ok=True)
    assert s["n_scored"] == 3 and s["ex_pct"] == pytest.approx(33.3)
    assert s["empty_gold"] == {"n": 1, "ex_pct": 100.0}
    assert s["by_seen_shape"]["True"] == {"n": 2, "ex_pct": 50.0}
    assert s["rejected_by_rule"] == {"columns_exist": 1}
    assert s["attempt_rejections_by_rule"] == {"read_only": 2, "columns_exist": 2}
    assert s["rescues"] == {"n": 1, "correct": 0}
    assert s["refusal_pct"] == 100.0 and s["unscorable"] == 1
    assert s["latency_ms"]["p50"] == 10.0
    assert summarise(records, latency_ok=False)["latency_ms"] is None  # withheld under load
