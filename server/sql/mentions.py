"""What a question mentions: the values the template baseline (server/sql/baseline.py) puts in
its slots.

`mentions(question, values)` finds, in order of mention: ISO dates, month-year dates, years,
numbers (with thousands separators, $, %, and the words zero-twelve), quoted strings, and the
database's own text values (a `ValueIndex` of its short text columns, matched on word n-grams),
which catches "orders from Berlin" → 'Berlin' and "paid by credit card" → 'credit_card'. Each
number carries its context words, so numbers can be paired by what they count.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from server.sql.retrieval import words
from server.sql.schema import DatabaseSchema

MAX_VALUE_CHARS = 60  # longer text (titles, descriptions) is never typed into a question verbatim
MAX_VALUES_PER_COLUMN = 5000
MAX_NGRAM = 8

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMBER = re.compile(r"(?<![\w.])\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%| percent)?(?![\w])")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})(?:-(\d{2}))?\b")
_MONTH_YEAR = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?,?\s+(\d{4})\b", re.I)
_YEAR = re.compile(r"\b(19\d{2}|20\d{2})\b")
_QUOTED = re.compile(r"\"([^\"]{1,80})\"|(?<![A-Za-z])'([^']{1,80})'(?![A-Za-z])")


def norm(text: str) -> str:
    """Lower case, punctuation and underscores as spaces: 'credit_card' matches 'credit card'."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


class ValueIndex:
    """The text values of a database, looked up by their normalised form."""

    def __init__(self, entries: Iterable[tuple[str, str, str]] = ()):
        self.values: dict[str, list[tuple[str, str, str]]] = {}  # norm → [(value, table, column)]
        for table, column, value in entries:
            key = norm(value)
            if key and len(value) <= MAX_VALUE_CHARS and not key.replace(" ", "").isdigit():
                self.values.setdefault(key, []).append((value, table.lower(), column.lower()))

    @classmethod
    def from_schema(cls, schema: DatabaseSchema) -> "ValueIndex":
        """From the few sample values introspection keeps (weak, but needs no database access)."""
        return cls((t.name, c, v) for t in schema.tables for c, vs in t.sample_values.items() for v in vs)

    @classmethod
    def for_database(cls, database) -> "ValueIndex":
        """A connections.Database's values: all of them for SQLite, else its schema's samples."""
        if database.sqlite_path is not None and database.sqlite_path.is_file():
            return cls.from_sqlite(database.sqlite_path)
        return cls.from_schema(database.schema())

    @classmethod
    def from_sqlite(cls, path: str | Path) -> "ValueIndex":
        """Every distinct short text value of every column, read through a read-only connection."""
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            entries = []
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                 "AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                for _, column, *_ in conn.execute(f'PRAGMA table_info("{table}")'):
                    rows = conn.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE typeof("{column}") = '
                                        f"'text' LIMIT {MAX_VALUES_PER_COLUMN}")
                    entries += [(table, column, r[0]) for r in rows]
            return cls(entries)
        finally:
            conn.close()

    def masked(self, question: str) -> str:
        """`question` with each stored value it names replaced by that value's column name, and
        numbers by "number": "customers in France" → "customers in country", so questions that
        differ only in their values read alike (the template search's second retrieval)."""
        tokens = norm(question).split()
        out: list[str | None] = list(tokens)
        for n in range(min(MAX_NGRAM, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(t is None or t != tokens[j] for j, t in zip(range(i, i + n), out[i:i + n])):
                    continue
                hits = self.values.get(" ".join(tokens[i:i + n]))
                if hits:  # the column most of its hits are in (France: country, not region_name)
                    columns = Counter(c for _, _, c in hits)
                    out[i] = min(columns, key=lambda c: (-columns[c], c)).replace("_", " ")
                    out[i + 1:i + n] = [None] * (n - 1)
        return " ".join("number" if t.isdigit() else t for t in out if t is not None)

    def find(self, question: str) -> list["Mention"]:
        """Values mentioned in `question`, longest first where they overlap, in order of mention."""
        tokens = norm(question).split()
        taken = [False] * len(tokens)
        found = []
        for n in range(min(MAX_NGRAM, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(taken[i:i + n]):
                    continue
                hits = self.values.get(" ".join(tokens[i:i + n]))
                if hits:
                    taken[i:i + n] = [True] * n
                    found.append(Mention("string", hits[0][0], i / max(len(tokens), 1), hits=tuple(hits)))
        return sorted(found, key=lambda m: m.pos)


@dataclass(frozen=True)
class Mention:
    """A value a question mentions. `pos` orders mentions (0..1, relative position in the text)."""

    kind: str  # "string", "number", "year", "period"
    value: object  # str; float; int year; (year, month or None) for a period
    pos: float
    scale: float = 1.0  # 0.01 for "20%", whose SQL literal may be 0.2
    hits: tuple[tuple[str, str, str], ...] = ()  # value-index entries (value, table, column)
    quoted: bool = False
    context: frozenset[str] = frozenset()  # word stems around a number: "rating no lower than 3"

    def columns(self) -> set[str]:
        return {column for _, _, column in self.hits}


def mentions(question: str, values: ValueIndex | None = None) -> list[Mention]:
    """Quoted strings, known database values, numbers, years and month-year periods, in order."""
    size = max(len(question), 1)
    out: list[Mention] = []
    spans: list[tuple[int, int]] = []  # text already claimed by a date, so its digits are no numbers
    for m in _ISO_DATE.finditer(question):
        out.append(Mention("period", (int(m.group(1)), int(m.group(2))), m.start() / size))
        spans.append(m.span())
    for m in _MONTH_YEAR.finditer(question):
        if not any(a <= m.start() < b for a, b in spans):
            out.append(Mention("period", (int(m.group(2)), _MONTHS[m.group(1).lower()[:3]]), m.start() / size))
            spans.append(m.span())
    for m in _YEAR.finditer(question):
        if not any(a <= m.start() < b for a, b in spans):
            out.append(Mention("period", (int(m.group(1)), None), m.start() / size))
            spans.append(m.span())
    for m in _NUMBER.finditer(question):
        if not any(a <= m.start() < b for a, b in spans):
            number = float(m.group(1).replace(",", "") + (m.group(2) or ""))
            out.append(Mention("number", number, m.start() / size, scale=0.01 if m.group(3) else 1.0,
                               context=_context(question, m.start(), m.end())))
    for word, number in _WORD_NUMBERS.items():
        for m in re.finditer(rf"\b{word}\b", question, re.I):
            out.append(Mention("number", float(number), m.start() / size,
                               context=_context(question, m.start(), m.end())))
    for m in _QUOTED.finditer(question):
        text = m.group(1) or m.group(2)
        hits = tuple(values.values.get(norm(text), ())) if values else ()
        out.append(Mention("string", text, m.start() / size, hits=hits, quoted=True))
    if values is not None:
        quoted = {norm(str(q.value)) for q in out if q.quoted}
        out += [v for v in values.find(question) if norm(str(v.value)) not in quoted]
    return sorted(out, key=lambda m: m.pos)


def _context(text: str, start: int, end: int, width: int = 2) -> frozenset[str]:
    # Two words either side, digits left out: a wider window reaches the other number's words.
    near = [w for w in words(text[:start]) if not w.isdigit()][-width:]
    return frozenset(near + [w for w in words(text[end:]) if not w.isdigit()][:width])
