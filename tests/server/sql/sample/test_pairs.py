"""The committed question/SQL pairs: enough of them, every category, a sound split, valid gold SQL."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict

import pytest

from server.sql.sample import __main__ as cli
from server.sql.sample.build.pairs import load_pairs, summary
from server.sql.sample.build.questions import CATEGORIES
from server.sql.sample.build.shapes import all_shapes

FIELDS = {"id", "question", "sql", "database", "category", "shape", "split", "seen_shape"}


def test_committed_files_are_current(committed_pairs: list[dict], fresh_pairs: list[dict]) -> None:
    # Regenerating gives the committed files' pairs: deterministic, and nobody forgot to rerun it.
    train_first = [p for p in fresh_pairs if p["split"] == "train"] + [p for p in fresh_pairs if p["split"] == "test"]
    assert train_first == committed_pairs


def test_counts_and_fields(committed_pairs: list[dict]) -> None:
    assert len(committed_pairs) >= 600
    assert all(set(p) == FIELDS for p in committed_pairs)
    assert {p["database"] for p in committed_pairs} == {"sample"}
    ids = [p["id"] for p in committed_pairs]
    assert len(ids) == len(set(ids))
    assert len({(p["question"]) for p in committed_pairs}) == len(committed_pairs)  # no question twice


def test_every_category_is_well_represented(committed_pairs: list[dict]) -> None:
    per_category = summary(committed_pairs)
    assert set(per_category) == set(CATEGORIES)
    for category, counts in per_category.items():
        assert counts["train"] >= 40, category
        assert counts["test_seen"] >= 10, category
        assert counts["test_unseen"] >= 5, category  # every category has a held-out shape


def test_split_properties(committed_pairs: list[dict]) -> None:
    train = [p for p in committed_pairs if p["split"] == "train"]
    test = [p for p in committed_pairs if p["split"] == "test"]
    assert {p["split"] for p in committed_pairs} == {"train", "test"}
    assert len(test) >= 0.2 * len(committed_pairs)
    train_shapes = {p["shape"] for p in train}
    unseen = [p for p in test if not p["seen_shape"]]
    seen = [p for p in test if p["seen_shape"]]
    assert len(unseen) >= 60 and len(seen) >= 60
    assert not {p["shape"] for p in unseen} & train_shapes  # unseen shapes are absent from train
    assert {p["shape"] for p in seen} <= train_shapes
    # Seen-shape test pairs are new wordings of SQL that train holds verbatim.
    train_questions_by_sql = defaultdict(set)
    for p in train:
        train_questions_by_sql[p["sql"]].add(p["question"])
    for p in seen:
        assert p["sql"] in train_questions_by_sql, p["id"]
        assert p["question"] not in train_questions_by_sql[p["sql"]], p["id"]
    assert not {p["question"] for p in test} & {p["question"] for p in train}


def test_shapes_produce_their_instances(fresh_pairs: list[dict]) -> None:
    shapes = all_shapes()
    assert len(shapes) >= 60
    produced = Counter(p["shape"] for p in fresh_pairs if p["split"] == "train" or not p["seen_shape"])
    for shape in shapes:
        assert produced[shape.id] == shape.count, shape.id  # enough distinct, non-empty slot fillings
        assert shape.id.startswith(shape.category + ".")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_gold_sql_passes_the_validator(validated: dict, dialect: str) -> None:
    # Portable SQL: valid read as any of the three dialects, against that dialect's schema.
    rejected = [(pid, r.failed_rule, r.message) for pid, r in validated[dialect].items() if not r.valid]
    assert rejected == []


def test_gold_sql_runs_on_sqlite_with_real_answers(committed_pairs: list[dict], sample_conn: sqlite3.Connection) -> None:
    empty = []
    for pair in committed_pairs:
        rows = sample_conn.execute(pair["sql"]).fetchall()
        if not rows or all(v in (None, 0) for row in rows for v in row):
            empty.append(pair["id"])
    assert len(empty) <= 0.1 * len(committed_pairs), empty


def test_like_patterns_do_not_depend_on_case(committed_pairs: list[dict], sample_sqlite) -> None:
    # SQLite's LIKE ignores ASCII case, PostgreSQL's and MariaDB's binary collation do not: a gold
    # LIKE must give the same rows either way (checked here without the servers).
    conn = sqlite3.connect(f"file:{sample_sqlite}?mode=ro", uri=True)
    try:
        like = [p for p in committed_pairs if " LIKE " in p["sql"]]
        assert like
        before = [conn.execute(p["sql"]).fetchall() for p in like]
        conn.execute("PRAGMA case_sensitive_like = ON")
        assert [conn.execute(p["sql"]).fetchall() for p in like] == before
    finally:
        conn.close()


def test_load_pairs_rejects_unknown_split() -> None:
    with pytest.raises(ValueError):
        load_pairs("validation")
    assert [p["split"] for p in load_pairs("test")] == ["test"] * len(load_pairs("test"))


def test_pairs_cli_writes_both_files(tmp_path) -> None:
    assert cli.main(["pairs", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jsonl", "train.jsonl"]
    assert load_pairs(directory=tmp_path) == load_pairs()
    assert cli.main(["pairs", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "test.jsonl").write_text("")
    assert cli.main(["pairs", "--out", str(tmp_path), "--check"]) == 1
