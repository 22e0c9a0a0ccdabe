"""The blind-review store: one SQLite file holding review items and reviewers' grades.

    items    id (opaque blind id), position (display order), prompt, system, reference, answer
    grades   (item_id, reviewer) primary key, score 1..5, comment, updated_at (UTC, ISO 8601)

An item never names the model variant that wrote its answer: the blind id -> variant key lives
in a separate file written by training/evaluation/open_ended.py, not here, so nothing the server
can read reveals it. A reviewer grading the same item again replaces their grade (upsert).

Durability: WAL journal with synchronous=FULL, one short transaction per write, so a grade that
was acknowledged survives a crash, a restart or a power cut. Each call opens its own connection
(a few microseconds for SQLite), which makes the store safe to use from any thread.
"""

from __future__ import annotations

import os
import resource
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import ReviewItemNotFound

SCHEMA_VERSION = 1
SCORES = range(1, 6)
MAX_REVIEWER_CHARS = 80

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS items (
    id        TEXT PRIMARY KEY,
    position  INTEGER NOT NULL,
    prompt    TEXT NOT NULL,
    system    TEXT,
    reference TEXT,
    answer    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grades (
    item_id    TEXT NOT NULL REFERENCES items (id),
    reviewer   TEXT NOT NULL,
    score      INTEGER NOT NULL CHECK (score BETWEEN {SCORES.start} AND {SCORES.stop - 1}),
    comment    TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (item_id, reviewer)
);
CREATE INDEX IF NOT EXISTS ix_grades_reviewer ON grades (reviewer);
PRAGMA user_version = {SCHEMA_VERSION};
"""


@dataclass(frozen=True)
class Item:
    id: str
    position: int
    prompt: str
    answer: str
    system: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Grade:
    item_id: str
    reviewer: str
    score: int
    comment: str
    updated_at: str


def why_not_written(path: Path, exc: sqlite3.Error) -> str:
    """What stopped a write to the store at `path`, for the person who must make room. SQLite says
    "database or disk is full" on ENOSPC but "disk I/O error" on a file-size limit (EFBIG)."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    if limit != resource.RLIM_INFINITY and any(p.stat().st_size >= limit for p in files):
        return f"{path} reached the process's file-size limit ({limit} bytes, ulimit -f) ({exc})"
    try:
        stat = os.statvfs(path.parent)
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = None
    if free is not None and free < (1 << 20):
        return f"the disk holding {path} is full ({free} bytes free) ({exc})"
    return f"review store {path}: {exc}"


def clean_reviewer(name: str) -> str:
    """Reviewer names are compared after trimming; empty or overlong names are refused."""
    name = name.strip()
    if not name or len(name) > MAX_REVIEWER_CHARS:
        raise ValueError(f"reviewer name must have 1 to {MAX_REVIEWER_CHARS} characters")
    return name


class ReviewStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has review schema {version}; this Hearth knows {SCHEMA_VERSION}")
            db.execute("PRAGMA journal_mode = WAL")  # persists in the file
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)  # wait up to 10 s for another writer
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA synchronous = FULL")  # an acknowledged grade is on disk
            with db:  # one transaction: commit on success, roll back on error
                yield db
        finally:
            db.close()

    # -- items ------------------------------------------------------------------------------

    def add_items(self, items: Iterable[Item]) -> int:
        """Adds items; returns how many were new. Adding an identical item again is a no-op, but an
        existing id with different text is refused (its grades were given for the old text)."""
        added = 0
        with self._connect() as db:
            for item in items:
                row = db.execute("SELECT prompt, system, reference, answer FROM items WHERE id = ?",
                                 (item.id,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO items (id, position, prompt, system, reference, answer) "
                               "VALUES (?, ?, ?, ?, ?, ?)",
                               (item.id, item.position, item.prompt, item.system, item.reference, item.answer))
                    added += 1
                elif tuple(row) != (item.prompt, item.system, item.reference, item.answer):
                    raise ValueError(f"{self.path} already holds item {item.id} with different text; "
                                     "export into a new store or with another seed")
        return added

    def items(self) -> list[Item]:
        with self._connect() as db:
            rows = db.execute("SELECT id, position, prompt, answer, system, reference FROM items "
                              "ORDER BY position, id").fetchall()
        return [Item(*row) for row in rows]

    def item(self, item_id: str) -> Item:
        with self._connect() as db:
            row = db.execute("SELECT id, position, prompt, answer, system, reference FROM items WHERE id = ?",
                             (item_id,)).fetchone()
        if row is None:
            raise ReviewItemNotFound(f"The review item '{item_id}' does not exist.", param="item_id")
        return Item(*row)

    # -- grades -----------------------------------------------------------------------------

    def put_grade(self, item_id: str, reviewer: str, score: int, comment: str = "") -> Grade:
        """Inserts or replaces `reviewer`'s grade of `item_id`."""
        reviewer = clean_reviewer(reviewer)
        if score not in SCORES:
            raise ValueError(f"score must be {SCORES.start} to {SCORES.stop - 1}, got {score}")
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._connect() as db:
            if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                raise ReviewItemNotFound(f"The review item '{item_id}' does not exist.", param="item_id")
            db.execute(
                "INSERT INTO grades (item_id, reviewer, score, comment, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (item_id, reviewer) DO UPDATE SET "
                "score = excluded.score, comment = excluded.comment, updated_at = excluded.updated_at",
                (item_id, reviewer, score, comment, now),
            )
        return Grade(item_id, reviewer, score, comment, now)

    def grades(self, reviewer: str | None = None) -> list[Grade]:
        """Every grade, or one reviewer's, in item order."""
        sql = ("SELECT g.item_id, g.reviewer, g.score, g.comment, g.updated_at FROM grades g "
               "JOIN items i ON i.id = g.item_id")
        args: tuple = ()
        if reviewer is not None:
            sql += " WHERE g.reviewer = ?"
            args = (clean_reviewer(reviewer),)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY i.position, g.item_id, g.reviewer", args).fetchall()
        return [Grade(*row) for row in rows]

    def reviewers(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT reviewer FROM grades ORDER BY reviewer")]
