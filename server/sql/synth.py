"""Question/SQL templates synthesized from the live schema: the plain questions every database
answers (counts, lists, group-bys, a filter on a named value, top N, averages, one join; the
distinct values of a category within another's value, GROUP BY with HAVING, superlatives both
ways, parents no row refers to), for
databases whose example pairs do not cover them, or that have none.

A new user's first questions ("How many customers are in each segment?", "Which suppliers are
based in Germany?") are rarely the ones their example pairs were written for, and a small model
asked to write them from scratch copied whatever its draft said. These templates join the
database's example pairs in the template search (server/sql/baseline.py): a template answers
when every value it holds is one the question names (its slot is re-filled from the question),
and among the fitting ones the nearest that agrees best with the question's cues answers
(server/sql/cues.py).

Each rule is a small pure function `rule(table, facts) -> [Example]` applied to every table, in
the style of sqlglot's optimizer rules (and server/sql/rules.py). What a
rule needs of a table (its label column, its categorical and numeric columns, one stored value of
each category, its foreign keys) is read once into `TableFacts`. The questions are worded from
the schema's own names (`unit_price` → "unit price"), so they share words with what users ask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from server.sql.canonical import canonical_sql
from server.sql.mentions import ValueIndex
from server.sql.prompt import Example
from server.sql.schema import Column, DatabaseSchema, Table

MAX_CATEGORIES = 60     # distinct values of a text column that is a category (status, country, segment)
MAX_CATEGORY_CHARS = 40  # longer values are names or descriptions, not categories
_NUMERIC = re.compile(r"int|num|dec|real|float|double|money", re.I)
_DATE = re.compile(r"date|time", re.I)
_FLAG_TYPE = re.compile(r"bool", re.I)
_PRICE = re.compile(r"price|cost|fee|fare", re.I)
_FLAG_NAME = re.compile(r"^(is|has|can|was)_|ed$", re.I)  # is_active, has_discount, discontinued
_LABEL = re.compile(r"(^|_)(name|title|label)$", re.I)
_NOT_CATEGORY = re.compile(r"(^|_)(name|email|mail|phone|url|description|comment|notes?|address|sku|"
                           r"code|number|id)$", re.I)


def words(name: str) -> str:
    """`unit_price` → 'unit price', `OrderLines` → 'order lines'."""
    return " ".join(p.lower() for p in re.split(r"_+|(?<=[a-z])(?=[A-Z])", name) if p)


def singular(noun: str) -> str:
    if noun.endswith("ies") and len(noun) > 4:
        return noun[:-3] + "y"
    if noun.endswith(("sses", "xes", "ches", "shes")):
        return noun[:-2]
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun


def plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun if noun.endswith("s") and not noun.endswith("ss") else noun + "es"
    return noun + "s"


@dataclass(frozen=True)
class TableFacts:
    table: Table
    things: str                 # the rows, in words, plural: "order items"
    label: str | None           # the column that names a row (company_name), if any
    categories: tuple[tuple[str, str], ...]  # (column, one stored value)
    measures: tuple[str, ...]   # numeric columns that are no keys
    parents: tuple[tuple[str, str, Table], ...]  # (fk column, parent key column, parent table)
    flags: tuple[str, ...] = ()  # yes/no columns (is_active, discontinued): 1 is yes


def _is_key(column: Column, table: Table) -> bool:
    name = column.name.lower()
    fk_columns = {c.lower() for fk in table.foreign_keys for c in fk.columns}
    return column.primary_key or name in fk_columns or name == "id" or name.endswith("_id")


def table_facts(table: Table, values: ValueIndex | None) -> TableFacts:
    """What the rules need of `table`; `values` (every stored text value, for SQLite) tells the
    categories apart from names, else the schema's sample values do."""
    stored: dict[str, list[str]] = {}
    if values is not None:
        for hits in values.values.values():
            for value, t, c in hits:
                if t == table.name.lower():
                    stored.setdefault(c, []).append(value)
    text = [c for c in table.columns if not _NUMERIC.search(c.type) and not _DATE.search(c.type)
            and not _is_key(c, table)]
    # A name-like column names a row; else its primary key does (orders are listed by order_id).
    pk = next((c.name for c in table.columns if c.primary_key), None)
    label = next((c.name for c in text if _LABEL.search(c.name)), pk)
    categories = []
    for c in text:
        seen = stored.get(c.name.lower()) or list(table.sample_values.get(c.name, ()))
        if (c.name == label or _NOT_CATEGORY.search(c.name) or not seen or len(seen) > MAX_CATEGORIES
                or max(len(v) for v in seen) > MAX_CATEGORY_CHARS or any("@" in v for v in seen)):
            continue
        categories.append((c.name, sorted(seen)[0]))
    flags = tuple(c.name for c in table.columns if _FLAG_TYPE.search(c.type) or (
        _NUMERIC.search(c.type) and _FLAG_NAME.search(c.name) and not _is_key(c, table)))
    measures = tuple(c.name for c in table.columns
                     if _NUMERIC.search(c.type) and not _is_key(c, table) and c.name not in flags)
    return TableFacts(table, words(table.name), label, tuple(categories), measures, (), flags)


def with_parents(facts: dict[str, TableFacts], schema: DatabaseSchema) -> dict[str, TableFacts]:
    """Each table's foreign keys to a parent that has a label (what a join groups by)."""
    out = {}
    for name, f in facts.items():
        parents = []
        for fk in f.table.foreign_keys:
            parent = schema.table(fk.ref_table)
            if parent is not None and parent.name != f.table.name and len(fk.columns) == 1 \
                    and facts[parent.name].label is not None:
                parents.append((fk.columns[0], fk.ref_columns[0], parent))
        out[name] = replace(f, parents=tuple(parents))
    return out


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- rules: (facts, all facts) -> examples -------------------------------------------------------

def count_rows(f: TableFacts, _all) -> list[Example]:
    return [Example(f"How many {f.things} are there?", f"SELECT COUNT(*) FROM {f.table.name}")]


def list_rows(f: TableFacts, _all) -> list[Example]:
    if f.label is None:
        return []
    return [Example(f"List all {f.things}.", f"SELECT {f.label} FROM {f.table.name}")]


def count_by_category(f: TableFacts, _all) -> list[Example]:
    t = f.table.name
    return [Example(f"How many {f.things} are there in each {words(c)}?",
                    f"SELECT {c}, COUNT(*) FROM {t} GROUP BY {c}") for c, _ in f.categories]


def rows_with_value(f: TableFacts, _all) -> list[Example]:
    if f.label is None:
        return []
    t = f.table.name
    out = []
    for c, v in f.categories:  # two wordings, one query: retrieval finds whichever is nearer
        sql = f"SELECT {f.label} FROM {t} WHERE {c} = {_q(v)}"
        out += [Example(f"Which {f.things} have {words(c)} {v}?", sql), Example(f"Which {f.things} are in {v}?", sql)]
    return out


def count_with_value(f: TableFacts, _all) -> list[Example]:
    t = f.table.name
    out = []
    for c, v in f.categories:
        sql = f"SELECT COUNT(*) FROM {t} WHERE {c} = {_q(v)}"
        out += [Example(f"How many {f.things} have {words(c)} {v}?", sql), Example(f"How many {f.things} are in {v}?", sql)]
    return out


def flagged_rows(f: TableFacts, _all) -> list[Example]:
    t, out = f.table.name, []
    for c in f.flags:
        said = re.sub(r"^(is|has|can|was) ", "", words(c))
        if f.label is not None:
            out.append(Example(f"Which {f.things} are {said}?", f"SELECT {f.label} FROM {t} WHERE {c} = 1"))
        out.append(Example(f"How many {f.things} are {said}?", f"SELECT COUNT(*) FROM {t} WHERE {c} = 1"))
    return out


def most_common_category(f: TableFacts, _all) -> list[Example]:
    t = f.table.name
    return [Example(f"Which {words(c)} has the most {f.things}?",
                    f"SELECT {c} FROM {t} GROUP BY {c} ORDER BY COUNT(*) DESC LIMIT 1") for c, _ in f.categories]


def top_by_measure(f: TableFacts, _all) -> list[Example]:
    if f.label is None:
        return []
    t, out = f.table.name, []
    for m in f.measures:
        out.append(Example(f"Which 5 {f.things} have the highest {words(m)}?",
                           f"SELECT {f.label} FROM {t} ORDER BY {m} DESC LIMIT 5"))
        out.append(Example(f"Which 5 {f.things} have the lowest {words(m)}?",
                           f"SELECT {f.label} FROM {t} ORDER BY {m} ASC LIMIT 5"))
        if _PRICE.search(m):  # what people say of prices: "the most expensive", "the cheapest"
            out.append(Example(f"What are the 5 most expensive {f.things}?",
                               f"SELECT {f.label} FROM {t} ORDER BY {m} DESC LIMIT 5"))
            out.append(Example(f"What are the 5 cheapest {f.things}?",
                               f"SELECT {f.label} FROM {t} ORDER BY {m} ASC LIMIT 5"))
    return out


def aggregate_measure(f: TableFacts, _all) -> list[Example]:
    t, out = f.table.name, []
    for m in f.measures:
        for word, fn in (("average", "AVG"), ("total", "SUM"), ("highest", "MAX"), ("lowest", "MIN")):
            out.append(Example(f"What is the {word} {words(m)} of all {f.things}?", f"SELECT {fn}({m}) FROM {t}"))
    return out


def measure_by_category(f: TableFacts, _all) -> list[Example]:
    t = f.table.name
    return [Example(f"What is the average {words(m)} for each {words(c)}?",
                    f"SELECT {c}, AVG({m}) FROM {t} GROUP BY {c}") for c, _ in f.categories for m in f.measures]


def count_per_parent(f: TableFacts, facts: dict[str, TableFacts]) -> list[Example]:
    out = []
    for fk, key, parent in f.parents:
        p = facts[parent.name]
        a, b = "c", "p"  # canonical form respells these as the tables' initials
        out.append(Example(
            f"How many {f.things} does each {singular(p.things)} have?",
            f"SELECT {b}.{p.label}, COUNT(*) FROM {f.table.name} AS {a} JOIN {parent.name} AS {b} "
            f"ON {a}.{fk} = {b}.{key} GROUP BY {b}.{p.label}"))
    return out


def rows_of_parent_value(f: TableFacts, facts: dict[str, TableFacts]) -> list[Example]:
    """Rows whose parent has a category value: "products in category Desk Accessories"."""
    out = []
    if f.label is None:
        return out
    for fk, key, parent in f.parents:
        p = facts[parent.name]
        values = [(c, v) for c, v in p.categories] + ([(p.label, "")] if p.label else [])
        for c, v in values[:3]:
            if not v:
                stored = parent.sample_values.get(c)
                if not stored:
                    continue
                v = sorted(stored)[0]
            out.append(Example(
                f"Which {f.things} have {singular(p.things)} {words(c)} {v}?",
                f"SELECT c.{f.label} FROM {f.table.name} AS c JOIN {parent.name} AS p ON c.{fk} = p.{key} "
                f"WHERE p.{c} = {_q(v)}"))
    return out


def least_common_category(f: TableFacts, _all) -> list[Example]:
    """The other direction of most_common_category: superlatives come both ways."""
    t = f.table.name
    return [Example(f"Which {words(c)} has the fewest {f.things}?",
                    f"SELECT {c} FROM {t} GROUP BY {c} ORDER BY COUNT(*) ASC LIMIT 1") for c, _ in f.categories]


def category_values_within(f: TableFacts, _all) -> list[Example]:
    """The distinct values of one category among the rows with another's value ("in which cities in
    Sweden do we have customers?"), alphabetical: a list of values, not of rows."""
    t, out = f.table.name, []
    for c, _ in f.categories:
        for c1, v in f.categories:
            if c1 != c:
                out.append(Example(f"Which {plural(words(c))} in {v} have {f.things}?",
                                   f"SELECT DISTINCT {c} FROM {t} WHERE {c1} = {_q(v)} ORDER BY {c}"))
    return out


def categories_with_many(f: TableFacts, _all) -> list[Example]:
    """GROUP BY with HAVING: the values of a category held by at least N rows, alone and among the
    rows with another category's value; most rows first."""
    t, out = f.table.name, []
    for c, _ in f.categories:
        out.append(Example(f"Which {plural(words(c))} have at least 3 {f.things}?",
                           f"SELECT {c}, COUNT(*) FROM {t} GROUP BY {c} HAVING COUNT(*) >= 3 "
                           f"ORDER BY COUNT(*) DESC, {c}"))
        for c1, v in f.categories:
            if c1 != c:
                out.append(Example(f"Which {plural(words(c))} in {v} have at least 3 {f.things}?",
                                   f"SELECT {c}, COUNT(*) FROM {t} WHERE {c1} = {_q(v)} GROUP BY {c} "
                                   f"HAVING COUNT(*) >= 3 ORDER BY COUNT(*) DESC, {c}"))
    return out


def parents_without_rows(f: TableFacts, facts: dict[str, TableFacts]) -> list[Example]:
    """Negation along a foreign key: the parents no row of this table refers to ("customers that
    never placed an order"), alone and with one of the parent's category values."""
    out = []
    pk = next((c.name for c in f.table.columns if c.primary_key), None)
    if pk is None:
        return out
    for fk, key, parent in f.parents:
        p = facts[parent.name]
        base = (f"SELECT p.{p.label} FROM {parent.name} AS p LEFT JOIN {f.table.name} AS c ON c.{fk} = p.{key} "
                f"WHERE c.{pk} IS NULL")
        out.append(Example(f"Which {p.things} have no {f.things}?", base))
        for c, v in p.categories[:3]:
            out.append(Example(f"Which {p.things} in {v} have no {f.things}?", f"{base} AND p.{c} = {_q(v)}"))
    return out


Rule = Callable[[TableFacts, dict], list[Example]]
RULES: tuple[Rule, ...] = (
    count_rows, list_rows, count_by_category, rows_with_value, count_with_value, flagged_rows, most_common_category,
    top_by_measure, aggregate_measure, measure_by_category, count_per_parent, rows_of_parent_value,
    least_common_category, category_values_within, categories_with_many, parents_without_rows,
)


def synthesize(schema: DatabaseSchema, values: ValueIndex | None = None,
               rules: Sequence[Rule] = RULES) -> list[Example]:
    """Every rule over every table; one pair per question, first rule first."""
    facts = with_parents({t.name: table_facts(t, values) for t in schema.tables}, schema)
    out, seen = [], set()
    for rule in rules:
        for f in facts.values():
            for ex in rule(f, facts):
                if ex.question not in seen:
                    seen.add(ex.question)
                    out.append(ex)
    return out


def with_schema_templates(examples: Sequence[Example], schema: DatabaseSchema,
                          values: ValueIndex | None = None) -> list[Example]:
    """A database's example pairs followed by its schema templates in canonical form: the one
    template pool that serving searches and drafts from, and that training drafts from too."""
    return list(examples) + [Example(ex.question, canonical_sql(ex.sql, schema.dialect, schema))
                             for ex in synthesize(schema, values)]
