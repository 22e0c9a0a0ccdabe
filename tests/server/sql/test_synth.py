"""server/sql/synth.py: templates synthesized from the live schema, on the real sample database
and on a made-up upper-case one; each one runs, and each fits the validator."""

from __future__ import annotations

import sqlite3

import pytest

from server.sql.canonical import canonical_sql
from server.sql.mentions import ValueIndex
from server.sql.synth import (RULES, categories_with_many, parents_without_rows, plural, singular, synthesize,
                               table_facts, words)
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
    # A HAVING bound or a parent no row refers to is often empty with the rule's example value (every
    # sample customer has orders): those templates give a shape, re-filled from the question. Every
    # other template holds stored values and nearly all return rows.
    rare = {ex.question for ex in synthesize(schema, values, rules=(categories_with_many, parents_without_rows))}
    empty = 0
    for ex in examples:
        sql = canonical_sql(ex.sql, "sqlite", schema)
        report = validate_sql(sql, schema)
        assert report.valid, (ex, report.message)
        rows = conn.execute(report.sql).fetchall()
        empty += not rows and ex.question not in rare
    assert empty <= len(examples) // 20


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


def test_having_negation_distinct_and_fewest_shapes_answer_plain_questions(tmp_path):
    """The shapes past one filter (GROUP BY with HAVING, a parent no row refers to, the distinct
    values of a column within another's value, the fewest) answer questions worded unlike the
    templates, through the served template search (TemplateBaseline + template_candidates)."""
    from server.services.sql_stages import template_candidates
    from server.sql.baseline import TemplateBaseline

    path = tmp_path / "fleet.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE PORT (PORT_ID INTEGER PRIMARY KEY, PORT_NAME TEXT, COUNTRY TEXT);
        CREATE TABLE VESSEL (VESSEL_ID INTEGER PRIMARY KEY, VESSEL_NAME TEXT, FLAG TEXT, OPERATOR TEXT,
                             TONNAGE INTEGER, HOME_PORT INTEGER REFERENCES PORT(PORT_ID));
        INSERT INTO PORT VALUES (1, 'Rotterdam', 'Netherlands'), (2, 'Hamburg', 'Germany'), (3, 'Bremen', 'Germany');
        INSERT INTO VESSEL VALUES (1, 'Aurora', 'Norway', 'Nordline', 52000, 1), (2, 'Boreas', 'Germany', 'Hanse', 31000, 2),
                                  (3, 'Ceres', 'Norway', 'Hanse', 12000, 1), (4, 'Dione', 'Malta', 'Nordline', 8000, 1);
    """)
    conn.commit()
    schema = schema_of(path, "fleet")
    values = ValueIndex.from_sqlite(path)
    pool = TemplateBaseline(synthesize(schema, values), values)
    pool = TemplateBaseline([type(e)(e.question, canonical_sql(e.sql, "sqlite", schema)) for e in pool.examples], values)

    def answer(question: str) -> list[tuple]:
        found = template_candidates(pool.answers(question, 24), question, "sqlite")
        assert found, question
        return conn.execute(found[0].sql).fetchall()

    assert answer("ports without any vessel") == [("Bremen",)]
    assert answer("which flags does operator Nordline use") == [("Malta",), ("Norway",)]
    assert answer("flags with at least 2 vessels") == [("Norway", 2)]
    assert answer("which operators in Norway have at least 1 vessel") == [("Hanse", 1), ("Nordline", 1)]
    assert answer("which flag has the fewest vessels") in ([("Germany",)], [("Malta",)])
