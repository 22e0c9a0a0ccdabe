"""What a question mentions (server/sql/mentions.py): the values the template baseline fills in."""

from __future__ import annotations

import sqlite3

from server.sql.mentions import ValueIndex, mentions

VALUES = ValueIndex([("customers", "city", "Berlin"), ("payments", "method", "credit_card")])


def test_mentions_kinds_and_order() -> None:
    found = [(m.kind, m.value) for m in mentions("Top 5 orders from Berlin in May 2024 over $1,200.50 in 2023", VALUES)]
    assert found == [("number", 5.0), ("string", "Berlin"), ("period", (2024, 5)), ("number", 1200.5),
                     ("period", (2023, None))]


def test_value_index_from_sqlite(tmp_path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (id INTEGER, city TEXT, note TEXT);"
                       f"INSERT INTO t VALUES (1, 'New York', '{'x' * 100}'), (2, 'Oslo', '123'), (3, NULL, 'ok');")
    conn.commit()
    conn.close()
    index = ValueIndex.from_sqlite(path)
    # long text and digit strings are left out: nobody types them into a question
    assert set(index.values) == {"new york", "oslo", "ok"}
    assert index.values["new york"] == [("New York", "t", "city")]
