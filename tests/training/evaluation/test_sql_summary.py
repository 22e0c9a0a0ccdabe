"""Text-to-SQL scoring and summary on hand-made records, and items from any database and pairs file."""

from __future__ import annotations

import json
import sqlite3

import pytest

from server.sql.compare import Gold
from training.evaluation.sql_accuracy import evaluate_baseline
from training.evaluation.sql_data import Item, load_databases, load_split, run_golds
from training.evaluation.sql_summary import score, summarise


def _item(golds, *, category="join", seen=None, gold_sql=("SELECT 1",)) -> Item:
    item = Item("custom", "x", "db", None, "q", list(gold_sql), category, seen)
    item.golds = golds
    return item


def _record(status="ok", rows=None, attempts=1, rules=(), latency=100.0) -> dict:
    return {"status": status, "rows": rows, "attempts": attempts, "attempt_rules": list(rules),
            "failed_rule": rules[-1] if status == "rejected" else None, "latency_ms": latency}


def test_breakdowns() -> None:
    records = [
        score(_item([Gold([[1], [2]])], seen=True), _record(rows=[[2], [1]])),  # row order free without ORDER BY
        score(_item([Gold([[1], [2]], ordered=True)], seen=True), _record(rows=[[2], [1]])),  # ORDER BY: wrong
        score(_item([Gold([[0.1 + 0.2]])], seen=False, category="agg"), _record(rows=[[0.3]], attempts=2,
                                                                             rules=["columns_exist"])),  # rescued
        score(_item([Gold([[7]])], seen=False, category="agg"),
              _record("rejected", attempts=3, rules=["read_only", "tables_exist", "tables_exist"])),
        score(_item([Gold([]), Gold([[None]])]), _record(rows=[])),  # empty gold: counted apart
        score(_item([Gold([[5]])], category="agg"), _record("execution_error", latency=300.0)),
    ]
    assert [r.get("correct") for r in records] == [True, False, True, False, True, False]
    s = summarise(records)
    assert s["n"] == 6 and s["n_scored"] == 5 and s["ex_pct"] == 40.0  # 2 of 5, the empty-gold item apart
    assert s["empty_gold"] == {"n": 1, "ex_pct": 100.0}
    assert s["by_category"] == {"agg": {"n": 3, "ex_pct": 33.3}, "join": {"n": 2, "ex_pct": 50.0}}
    assert s["by_seen_shape"] == {"False": {"n": 2, "ex_pct": 50.0}, "True": {"n": 2, "ex_pct": 50.0}}
    assert s["valid_pct"] == pytest.approx(66.7)
    assert s["rejected_pct"] == pytest.approx(16.7) and s["rejected_by_rule"] == {"tables_exist": 1}
    assert s["attempt_rejections_by_rule"] == {"tables_exist": 2, "read_only": 1, "columns_exist": 1}
    assert s["rescues"] == {"n": 1, "correct": 1}
    assert s["latency_ms"] == {"p50": 100.0, "p95": 250.0, "mean": 133.3}
    assert "refusal_pct" not in s and "rows" not in records[0]


def test_unanswerable_and_unscorable() -> None:
    refused = score(_item([], gold_sql=()), _record("unanswerable"))
    answered = score(_item([], gold_sql=()), _record(rows=[[1]]))
    broken_gold = score(_item([]), _record(rows=[[1]]))  # gold SQL given, but none of it ran
    s = summarise([refused, answered, broken_gold], latency_ok=False)
    assert s["refusal_pct"] == 50.0 and s["unscorable"] == 1 and "ex_pct" not in s
    assert s["latency_ms"] is None


def test_any_database_and_pairs_file(tmp_path) -> None:
    db = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE fruit (name TEXT, colour TEXT, price REAL);"
                       "INSERT INTO fruit VALUES ('apple','red',1.5),('banana','yellow',0.5),('cherry','red',4.0);")
    conn.commit()
    conn.close()
    examples = tmp_path / "examples.jsonl"
    examples.write_text(json.dumps({"question": "Which fruits are yellow?",
                                    "sql": "SELECT name FROM fruit WHERE colour = 'yellow'"}) + "\n")
    settings = tmp_path / "hearth.yaml"
    settings.write_text(f"databases:\n  - name: shop\n    url: sqlite:///{db}\n    examples_path: {examples}\n")
    pairs = tmp_path / "shop_test.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in [
        {"question": "Which fruits are red?", "sql": "SELECT name FROM fruit WHERE colour = 'red'",
         "database": "shop", "category": "filter"},
        {"question": "Most expensive fruit?", "sql": ["SELECT name FROM fruit ORDER BY price DESC LIMIT 1",
                                                       "SELECT name FROM fruit WHERE price = 4.0"],
         "database": "shop", "category": "top"},
        {"question": "Who supplies the fruit?", "sql": None, "database": "shop"},
    ]))
    with pytest.raises(ValueError, match="give the databases"):
        load_split(str(pairs))
    items = load_split(str(pairs), databases=load_databases(settings))
    assert [i.split for i in items] == ["shop_test"] * 3 and [len(i.gold_sql) for i in items] == [1, 2, 0]
    run_golds(items)
    assert items[0].golds[0].rows == [("apple",), ("cherry",)] and items[1].golds[0].ordered
    # The template baseline answers from the database's own example pairs: "yellow" → "red".
    run = evaluate_baseline(items)["shop_test"]
    assert run["records"][0]["sql"] == "SELECT name FROM fruit WHERE colour = 'red'"
    assert run["records"][0]["correct"] and run["summary"]["by_category"]["filter"]["ex_pct"] == 100.0
    assert run["summary"]["refusal_pct"] == 0.0  # the baseline never refuses

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "sql": "SELECT 1", "database": "elsewhere"}) + "\n")
    with pytest.raises(ValueError, match="'elsewhere' is not configured"):
        load_split(str(bad), databases=load_databases(settings))


def test_a_timed_out_question_counts_as_wrong_instead_of_ending_the_run():
    import httpx

    from training.evaluation.sql_accuracy import ask_server
    from training.evaluation.sql_data import sample_items

    def hang(request):
        raise httpx.ReadTimeout("timed out", request=request)

    client = httpx.Client(base_url="http://test", transport=httpx.MockTransport(hang))
    record = ask_server(client, sample_items(limit=1)[0], constrained=True)
    assert record["status"] == "timeout" and record["rows"] is None


def test_by_source_only_when_something_other_than_the_model_answered() -> None:
    def rec(source, rows):
        return score(_item([Gold([[1]])], seen=True), _record(rows=rows) | {"source": source})

    mixed = [rec("template", [[1]]), rec("template", [[1]]), rec("model", [[2]]), rec(None, None)]
    assert summarise(mixed)["by_source"] == {"model": {"n": 1, "ex_pct": 0.0}, "none": {"n": 1, "ex_pct": 0.0},
                                             "template": {"n": 2, "ex_pct": 100.0}}
    assert "by_source" not in summarise([rec("model", [[1]]), rec(None, None)])


def test_the_paraphrased_sample_is_the_test_split_reworded_with_a_held_part(data_dir):
    # The hand-reworded dev set: every test question once, its gold SQL unchanged, reworded (no
    # question as the generator wrote it), split into a dev part and a held part that never meet.
    import hashlib

    from server.sql.sample.paths import PAIRS_DIR

    test = {json.loads(line)["id"]: json.loads(line) for line in (PAIRS_DIR / "test.jsonl").read_text().splitlines()}
    dev, held = load_split("sample_paraphrased"), load_split("sample_paraphrased_held")
    assert len(dev) + len(held) == len(test) and len(held) >= 50
    for part, items in (("dev", dev), ("held", held)):
        for item in items:
            source = test[item.id.removesuffix(".p")]
            assert item.gold_sql == [source["sql"]] and item.seen_shape == source["seen_shape"]
            assert item.question.strip().lower() != source["question"].strip().lower()
            held_by_hash = hashlib.sha256(source["id"].encode()).hexdigest()[-1] in "01234"
            assert held_by_hash == (part == "held") and item.split.endswith("_held") == (part == "held")
