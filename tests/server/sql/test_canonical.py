"""SQL canonicalisation (server/sql/canonical.py): table-driven cases, and on the real sample
database, every training pair's canonical SQL returns exactly the rows of the original."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from server.sql.canonical import canonical_sql

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "canonical.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_canonical_sql(case) -> None:
    assert canonical_sql(case["sql"], case.get("dialect", "sqlite")) == case["expected"]


def test_canonical_sql_is_idempotent() -> None:
    for case in CASES:
        once = canonical_sql(case["sql"], case.get("dialect", "sqlite"))
        assert canonical_sql(once, case.get("dialect", "sqlite")) == once, case["name"]


def test_sample_pairs_return_the_same_rows_after_canonicalisation(data_dir) -> None:
    from server.sql.sample.paths import PAIRS_DIR, ensure_sample_database, sample_sqlite_path
    from server.settings import ServerSettings

    ensure_sample_database(ServerSettings().databases)
    conn = sqlite3.connect(f"file:{sample_sqlite_path()}?mode=ro", uri=True)
    rows = [json.loads(line) for f in ("train.jsonl", "test.jsonl")
            for line in (PAIRS_DIR / f).read_text().splitlines() if line.strip()]
    changed = 0
    for row in rows:
        canonical = canonical_sql(row["sql"])
        changed += canonical != row["sql"]
        assert conn.execute(canonical).fetchall() == conn.execute(row["sql"]).fetchall(), row["id"]
    assert changed > 100  # the sample writes `orders o`; canonical is `orders AS o`
