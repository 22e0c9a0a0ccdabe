"""server/sql/synth.py: templates synthesized from the live schema, on the real sample database
and on a made-up upper-case one; each one runs, and each fits the validator."""

from __future__ import annotations

import sqlite3

import pytest

from server.sql.canonical import canonical_sql
from server.sql.mentions import ValueIndex
from server.sql.synth import RULES, plural, singular, synthesize, table_facts, words
from server.sql.validate import validate_sql
from tests.server.sql.conftest import schema_of



@pytest.fixture(scope="module")
def sample(data_dir):
    from server.settings import ServerSettings
    from server.sql.sample.paths import ensure_sample_database, sample_sqlite_path

    ensure_sample_database(ServerSettings().databases)
    path = sample_sqlite_path()
    return path, schema_of(path, "sample"), ValueIndex.from_sqlite(path)


def test_words_and_nouns():
    assert words("unit_price") == "unit price" and words("OrderLines") == "order lines"
    assert [singular(w) for w in ("categories", "boxes", "orders", "address")] == ["category", "box", "order", "address"]
    assert plural("category") == "categories" and plural("order") == "orders"


def test_facts_tell_labels_categories_measures_and_flags(sample):
    _, schema, values = sample
    facts = {t.name: table_facts(t, values) for t in schema.tables}
    assert facts["customers"].label == "company_name" and facts["orders"].label == "order_id"
    assert {c for c, _ in facts["orders"].categories} == {"status", "channel"}
    assert "credit_limit" in facts["customers"].measures and "contact_email" not in dict(facts["customers"].categories)
    assert facts["products"].flags == ("discontinued",) and "discontinued" not in facts["products"].measures


def test_every_synthesized_template_validates_and_runs_on_the_sample(sample):
    path, schema, values = sample
    examples = synthesize(schema, values)
    assert len(examples) > 100 and len({e.question for e in examples}) == len(examples)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    empty = 0
    for ex in examples:
        sql = canonical_sql(ex.sql, "sqlite", schema)
        report = validate_sql(sql, schema)
        assert report.valid, (ex, report.message)
        empty += not conn.execute(report.sql).fetchall()
    assert empty <= len(examples) // 20  # the values are stored ones: nearly all return rows


def test_each_rule_contributes_on_the_sample(sample):
    _, schema, values = sample
    for rule in RULES:
        assert synthesize(schema, values, rules=(rule,)), rule.__name__


def test_an_upper_case_schema_without_sample_values_still_gets_templates(tmp_path):
    path = tmp_path / "fleet.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE PORT (PORT_ID INTEGER PRIMARY KEY, PORT_NAME TEXT, COUNTRY TEXT);
        CREATE TABLE VESSEL (VESSEL_ID INTEGER PRIMARY KEY, VESSEL_NAME TEXT, FLAG TEXT, TONNAGE INTEGER,
                             HOME_PORT INTEGER REFERENCES PORT(PORT_ID));
        INSERT INTO PORT VALUES (1, 'rotterdam', 'netherlands'), (2, 'hamburg', 'germany');
        INSERT INTO VESSEL VALUES (1, 'aurora', 'norway', 52000, 1), (2, 'boreas', 'germany', 31000, 2);
    """)
    conn.commit()
    schema = schema_of(path, "fleet")
    examples = synthesize(schema, ValueIndex.from_sqlite(path))
    sqls = {canonical_sql(e.sql, "sqlite", schema) for e in examples}
    assert "SELECT COUNT(*) FROM VESSEL" in sqls
    assert "SELECT VESSEL_NAME FROM VESSEL ORDER BY TONNAGE DESC LIMIT 5" in sqls
    assert any("JOIN PORT" in s and "GROUP BY p.PORT_NAME" in s for s in sqls)
    for sql in sqls:
        assert validate_sql(sql, schema).valid, sql
        conn.execute(sql).fetchall()
