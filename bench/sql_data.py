"""Benchmark items for bench/sql.py: the sample test split and defog's sql-eval sample, gold results, load.

Splits (each item: a question, a server database name, the SQLite file, gold SQL variants):

  sample          the embedded sample's test split (server/sql/sample/pairs/test.jsonl), few-shot
                  examples and baseline index from its train split; `seen_shape` per item
  defog           ../shared/data/defog/questions_gen_sqlite.csv (gold variants split on ';')
  defog_basic     instruct_basic_sqlite.csv
  defog_advanced  instruct_advanced_sqlite.csv
  defog_idk       idk.csv: unanswerable questions; the score is the refusal rate

defog's data is read from ../shared at run time, never copied into the project. Few-shot examples
for a defog split come from the *other* defog question files on the same database (questions
compared case- and space-insensitively, and none is shared), so no evaluated question is ever
its own example. The five databases that only questions_gen covers (academic, advising, atis,
scholar, yelp) therefore have no examples in the `defog` split; in `defog_idk` they get
questions_gen's pairs. Each split is its own server database entry ("<split>.<db>") because
its example pool differs.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from server.sql.compare import Gold, is_ordered, split_statements

ROOT = Path(__file__).resolve().parents[1]
DEFOG_DIR = ROOT.parent / "shared" / "data" / "defog"
DEFOG_FILES = {
    "defog": "questions_gen_sqlite.csv",
    "defog_basic": "instruct_basic_sqlite.csv",
    "defog_advanced": "instruct_advanced_sqlite.csv",
    "defog_idk": "idk.csv",
}
ANSWERABLE_FILES = ("defog", "defog_basic", "defog_advanced")  # the pools few-shot examples come from
ALL_SPLITS = ("sample", *DEFOG_FILES)
GOLD_TIMEOUT_S = 30.0


@dataclass
class Item:
    split: str
    id: str
    database: str  # the server's name for it
    db_file: Path
    question: str  # as sent (defog: with its instructions appended)
    gold_sql: list[str]  # acceptable variants; empty for unanswerable questions
    category: str
    seen_shape: bool | None = None  # sample only
    golds: list[Gold] = field(default_factory=list)  # filled by run_golds()
    gold_errors: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.gold_sql)


def _norm(question: str) -> str:
    return " ".join(question.lower().split())


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sample_items(sample_file: Path, limit: int | None) -> list[Item]:
    from server.sql.sample.pairs import load_pairs

    items = [Item("sample", p["id"], "sample", sample_file, p["question"], [p["sql"]], p["category"], p["seen_shape"])
             for p in load_pairs("test")]
    return _limit(items, limit)


def defog_items(split: str, defog_dir: Path, limit: int | None, instructions: bool = True) -> list[Item]:
    items = []
    for i, row in enumerate(_rows(defog_dir / DEFOG_FILES[split])):
        question = row["question"].strip()
        extra = (row.get("instructions") or "").strip()
        # idk's instructions ask for a canned SELECT; Hearth refuses in its own way (status
        # "unanswerable"), so they are not sent. The others are part of the question upstream.
        if instructions and extra and split != "defog_idk":
            question = f"{question}\n{extra}"
        gold = [] if split == "defog_idk" else split_statements(row["query"])
        items.append(Item(split, f"{split}.{row['db_name']}.{i:03d}", f"{split}.{row['db_name']}",
                          defog_dir / "sqlite" / f"{row['db_name']}.sqlite", question[:4000], gold,
                          row["query_category"]))
    return _limit(items, limit)


def _limit(items: list[Item], limit: int | None) -> list[Item]:
    """The first `limit` items, spread over categories (round-robin) so a quick run sees each."""
    if not limit or limit >= len(items):
        return items
    by_cat: dict[str, list[Item]] = {}
    for item in items:
        by_cat.setdefault(item.category, []).append(item)
    out: list[Item] = []
    while len(out) < limit:
        for group in by_cat.values():
            if group and len(out) < limit:
                out.append(group.pop(0))
    return out


def defog_pool(split: str, db: str, defog_dir: Path) -> list[dict]:
    """{question, sql} pairs for `db` from the answerable defog files other than `split`."""
    evaluated = {_norm(r["question"]) for r in _rows(defog_dir / DEFOG_FILES[split]) if r["db_name"] == db}
    pool = []
    for other in ANSWERABLE_FILES:
        if other == split:
            continue
        for row in _rows(defog_dir / DEFOG_FILES[other]):
            if row["db_name"] == db and _norm(row["question"]) not in evaluated:
                variants = split_statements(row["query"])
                if variants:
                    pool.append({"question": row["question"].strip(), "sql": variants[0]})
    return pool


def write_pools(splits: Iterable[str], defog_dir: Path, out_dir: Path) -> dict[str, Path | None]:
    """Write one examples JSONL per "<split>.<db>"; None where the pool is empty."""
    paths: dict[str, Path | None] = {}
    for split in splits:
        if split == "sample":
            continue
        for db in sorted({r["db_name"] for r in _rows(defog_dir / DEFOG_FILES[split])}):
            pool = defog_pool(split, db, defog_dir)
            name = f"{split}.{db}"
            if not pool:
                paths[name] = None
                continue
            path = out_dir / f"{name}.jsonl"
            path.write_text("".join(json.dumps(p) + "\n" for p in pool), encoding="utf-8")
            paths[name] = path
    return paths


def connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)


def run_sql(conn: sqlite3.Connection, sql: str, timeout_s: float = GOLD_TIMEOUT_S) -> list[tuple]:
    """Run one query with a deadline (a runaway baseline or gold query must not stall the bench)."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.set_progress_handler(None, 0)


def run_golds(items: list[Item]) -> None:
    """Execute each gold variant on its SQLite file, read-only; a failing variant is dropped."""
    conns: dict[Path, sqlite3.Connection] = {}
    for item in items:
        conn = conns.setdefault(item.db_file, connect_ro(item.db_file))
        for sql in item.gold_sql:
            try:
                item.golds.append(Gold(run_sql(conn, sql), is_ordered(sql), sql))
            except Exception:  # noqa: BLE001 - counted and reported; README says none should fail
                item.gold_errors += 1
    for conn in conns.values():
        conn.close()
