"""Blind review: list items with one reviewer's grades, save a grade. Logic for routers/review.py.

The store (server/review/store.py) is opened on first use, so a server nobody reviews on never
creates the file. SQLite calls run in a worker thread; they take well under a millisecond.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from ..errors import InvalidRequest, ServiceUnavailable
from ..protocol.review import Grade, GradeRequest, ReviewItem, ReviewItemList
from ..review.store import ReviewStore, clean_reviewer, why_not_written
from ..settings import ReviewSettings


class ReviewService:
    def __init__(self, settings: ReviewSettings):
        self.path: Path = settings.resolved_path()
        self._store: ReviewStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ReviewStore:
        with self._lock:
            if self._store is None:
                self._store = ReviewStore(self.path)
            return self._store

    def _items(self, reviewer: str) -> ReviewItemList:
        try:
            reviewer = clean_reviewer(reviewer)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="reviewer") from None
        store = self.store
        grades = {g.item_id: g for g in store.grades(reviewer)}
        data = []
        for item in store.items():
            grade = grades.get(item.id)
            data.append(ReviewItem(
                id=item.id, position=item.position, prompt=item.prompt, system=item.system,
                reference=item.reference, answer=item.answer,
                grade=Grade(**vars(grade)) if grade else None,
            ))
        return ReviewItemList(reviewer=reviewer, graded=len(grades), total=len(data), data=data)

    def _grade(self, item_id: str, body: GradeRequest) -> Grade:
        try:
            saved = self.store.put_grade(item_id, body.reviewer, body.score, body.comment)
        except ValueError as exc:  # the schema checks first; this is the store's own guard
            raise InvalidRequest(str(exc)) from None
        except sqlite3.OperationalError as exc:  # rolled back: the store holds what it held before
            raise ServiceUnavailable(f"the grade was not saved: {why_not_written(self.path, exc)}") from None
        return Grade(**vars(saved))

    async def items(self, reviewer: str) -> ReviewItemList:
        return await asyncio.to_thread(self._items, reviewer)

    async def grade(self, item_id: str, body: GradeRequest) -> Grade:
        return await asyncio.to_thread(self._grade, item_id, body)
