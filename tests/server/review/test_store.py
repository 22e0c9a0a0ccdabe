"""The blind-review SQLite store: upserts, validation, WAL, and grades that survive kill -9."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from server.errors import ReviewItemNotFound
from server.review.store import Item, ReviewStore
from tests.conftest import ROOT

ITEMS = [Item("a1", 0, "What is a reorder level?", "The stock level that triggers a new order."),
         Item("b2", 1, "Explain LEFT JOIN.", "It keeps unmatched rows.", system="Be brief.", reference="Keeps rows.")]


@pytest.fixture()
def store(tmp_path) -> ReviewStore:
    s = ReviewStore(tmp_path / "review.sqlite3")
    assert s.add_items(ITEMS) == 2
    return s


def test_items_round_trip_in_position_order(store):
    assert store.items() == ITEMS
    assert store.item("b2") == ITEMS[1]
    with pytest.raises(ReviewItemNotFound):
        store.item("nope")


def test_file_is_in_wal_mode(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_grade_is_an_upsert_per_item_and_reviewer(store):
    first = store.put_grade("a1", "Ada", 2, "vague")
    store.put_grade("a1", "Grace", 5)
    second = store.put_grade("a1", " Ada ", 4, "fine on second reading")  # names are trimmed
    assert second.updated_at >= first.updated_at
    assert [(g.reviewer, g.score, g.comment) for g in store.grades()] == [
        ("Ada", 4, "fine on second reading"), ("Grace", 5, "")]
    assert [g.item_id for g in store.grades("Grace")] == ["a1"]
    assert store.reviewers() == ["Ada", "Grace"]


@pytest.mark.parametrize("score", [0, 6, -1])
def test_scores_outside_one_to_five_are_refused(store, score):
    with pytest.raises(ValueError, match="score"):
        store.put_grade("a1", "Ada", score)
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError):  # and by the table itself
        db.execute("INSERT INTO grades VALUES ('a1', 'Ada', ?, '', 'now')", (score,))


def test_unknown_item_and_blank_reviewer_are_refused(store):
    with pytest.raises(ReviewItemNotFound):
        store.put_grade("zzz", "Ada", 3)
    with pytest.raises(ValueError, match="reviewer"):
        store.put_grade("a1", "   ", 3)
    assert store.grades() == []


def test_adding_items_again_is_idempotent_but_changed_text_is_refused(store):
    store.put_grade("a1", "Ada", 3)
    assert store.add_items(ITEMS) == 0
    changed = Item("a1", 0, ITEMS[0].prompt, "A different answer.")
    with pytest.raises(ValueError, match="different text"):
        store.add_items([changed])
    assert store.item("a1").answer == ITEMS[0].answer and len(store.grades()) == 1


def test_concurrent_writers_lose_nothing(store):
    def grade(reviewer: str) -> None:
        for i in range(15):
            store.put_grade(("a1", "b2")[i % 2], reviewer, 1 + i % 5)

    threads = [threading.Thread(target=grade, args=(f"r{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grades = store.grades()
    assert len(grades) == 12  # 6 reviewers x 2 items, each the reviewer's last write
    assert {(g.reviewer, g.item_id): g.score for g in grades}[("r0", "a1")] == 5  # i = 14


def test_an_acknowledged_grade_survives_kill_9(store):
    script = (
        "import os, signal, sys\n"
        "from server.review.store import ReviewStore\n"
        "ReviewStore(sys.argv[1]).put_grade('b2', 'Ada', 5, 'kept')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(store.path)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    [grade] = ReviewStore(store.path).grades()
    assert (grade.item_id, grade.reviewer, grade.score, grade.comment) == ("b2", "Ada", 5, "kept")


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema 99"):
        ReviewStore(path)
