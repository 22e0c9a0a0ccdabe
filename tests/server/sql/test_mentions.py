"""What a question mentions (server/sql/mentions.py): the values the template baseline fills in."""

from __future__ import annotations

import sqlite3

import pytest

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


NAMED = ValueIndex([("products", "name", "Brightdesk 4-Drawer Filing Cabinet"),
                    ("products", "name", "Stackwell Window Envelopes DL, Box of 500"),
                    ("products", "name", "One Touch Stapler"), ("products", "name", "Summer 2024 Collection"),
                    ("customers", "country", "Germany")])


@pytest.mark.parametrize("question, expected", [
    ("Who in Germany ordered the Brightdesk 4-Drawer Filing Cabinet?",
     [("string", "Germany"), ("string", "Brightdesk 4-Drawer Filing Cabinet")]),
    ("How many Stackwell Window Envelopes DL, Box of 500 were sold?",
     [("string", "Stackwell Window Envelopes DL, Box of 500")]),
    ("Who bought the One Touch Stapler?", [("string", "One Touch Stapler")]),  # no number word either
    ("Sales of the Summer 2024 Collection in 2025", [("string", "Summer 2024 Collection"), ("period", (2025, None))]),
    ('Papers with the keyphrase "COVID-19" from 2021', [("string", "COVID-19"), ("period", (2021, None))]),
])
def test_a_named_value_claims_its_digits(question, expected) -> None:
    assert [(m.kind, m.value) for m in mentions(question, NAMED)] == expected


@pytest.mark.parametrize("question, periods", [
    ("Orders on March 24, 2025", [(2025, 3, 24)]),
    ("Orders on Sept 3rd 2024 and on 4 July 2023", [(2024, 9, 3), (2023, 7, 4)]),
    ("Orders on 24th of March 2025", [(2025, 3, 24)]),
    ("Orders since March 24", [(None, 3, 24)]),
    ("Orders on 2024-03-18", [(2024, 3, 18)]),
    ("Orders on 2024-02-30", [(2024, 2)]),  # no such day: the month, as before
    ("What did we ship in the week of March 24, 2025?", [(2025, 3, 24), (2025, 3, 30)]),
    ("What did we ship in the week of 2025-12-29?", [(2025, 12, 29), (2026, 1, 4)]),
    # a range of days in one month: its first and last day
    ("UPS shipments from March 24-30, 2025 with tracking numbers", [(2025, 3, 24), (2025, 3, 30)]),
    ("DHL shipments 3 to 9 May 2024", [(2024, 5, 3), (2024, 5, 9)]),
])
def test_a_day_of_month_is_part_of_its_date(question, periods) -> None:
    found = mentions(question)
    assert [m.value for m in found if m.kind == "period"] == periods
    assert not [m for m in found if m.kind == "number"]


def test_a_count_before_a_month_is_no_day() -> None:
    found = [(m.kind, m.value) for m in mentions("List the top 5 March 2024 orders")]
    assert found == [("number", 5.0), ("period", (2024, 3))]


@pytest.mark.parametrize("question, weak", [
    ("What in Safety & First Aid had zero sales in 2025?", True),
    ("Name every city where at least one customer is based.", True),
    ("Which products were ordered one time?", True),
    ("Which three products cost the most?", False),
    ("List the top three customers.", False),
    ("Show the two most expensive products.", False),
    ("Which customers placed more than one order?", False),
    ("Which suppliers have at least two products?", False),
    ("Which customers ordered four or more times?", False),
])
def test_a_number_word_is_weak_unless_clearly_a_quantity(question, weak) -> None:
    [number] = [m for m in mentions(question) if m.kind == "number"]
    assert number.weak is weak


@pytest.mark.parametrize("question, names", [
    ("I'm looking for anything called Folders in our catalog", ["Folders"]),
    ("products named Desk Pro Max, cheapest first", ["Desk Pro Max"]),
    ("Find every product whose name mentions Tape.", ["Tape"]),
    ("customers named in the audit", []),  # a lower-case word is no name
])
def test_a_name_after_called_or_named_is_taken_as_typed(question, names) -> None:
    assert [m.value for m in mentions(question) if m.kind == "string" and m.quoted] == names


@pytest.mark.parametrize("question, value", [
    ("sales in Q2 2025", (2025, 4)), ("Q1 of 2023 orders", (2023, 1)), ("2024-Q3 revenue", (2024, 7)),
    ("the fourth quarter of 2024", (2024, 10)), ("3rd quarter 2022 sales", (2022, 7)),
])
def test_a_quarter_is_a_period_of_three_months(question, value):
    found = [m for m in mentions(question) if m.kind == "period"]
    assert [(m.value, m.months) for m in found] == [(value, 3)]
    assert not [m for m in mentions(question) if m.kind == "number"]  # its digits are no numbers


@pytest.mark.parametrize("question, name", [("Search the catalogue for Tape: SKU, name and price.", "Tape"),
                                           ("search for Folders", "Folders"), ("Looking for Desk Pro chairs", "Desk Pro")])
def test_a_name_searched_for_is_a_string_mention(question, name):
    assert [(m.kind, m.value, m.quoted) for m in mentions(question)] == [("string", name, True)]
