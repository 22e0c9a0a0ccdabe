"""What a question mentions: the values the template baseline (server/sql/baseline.py) puts in
its slots.

`mentions(question, values)` finds, in order of mention: quoted strings and the database's own
text values (a `ValueIndex` of its short text columns, matched on word n-grams), which catches
"orders from Berlin" → 'Berlin' and "paid by credit card" → 'credit_card'; dates ('2025-03-24',
"March 24, 2025", "24 March 2025", "March 24"; "the week of <date>" is its first and last day),
month-year dates, years; numbers (with thousands separators, $, %, and the words zero-twelve).
Each number carries its context words, so numbers can be paired by what they count.

A name claims its text: the digits of "Brightdesk 4-Drawer Filing Cabinet" or of a quoted
"COVID-19" are no numbers, nor is the day of "March 24, 2025". A number word is `weak` unless it
is clearly a quantity ("top three", "more than two", "three products"): "zero sales" and "at
least one customer" are how people speak, not values a query must hold.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from server.errors import HearthError
from server.sql.retrieval import words
from server.sql.schema import DatabaseSchema

log = logging.getLogger(__name__)
MAX_VALUE_CHARS = 60  # longer text (titles, descriptions) is never typed into a question verbatim
MAX_VALUES_PER_COLUMN = 5000
MAX_NGRAM = 8

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())} | {"sept": 9})
_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMBER = re.compile(r"(?<![\w.])\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%| percent)?(?![\w])")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})(?:-(\d{2}))?\b")
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+(\d{{4}})\b", re.I)          # March 24, 2025
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I)  # 24 March 2025
_TO = r"\s*(?:-|–|to|through|thru|until|till)\s*"
_MONTH_DAYS_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY}{_TO}{_DAY},?\s+(\d{{4}})\b", re.I)      # March 24-30, 2025
_DAYS_MONTH_YEAR = re.compile(rf"\b{_DAY}{_TO}{_DAY}\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I)  # 24-30 March 2025
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+{_DAY}\b(?![.,:/-]?\d)", re.I)                 # March 24
_WEEK_OF = re.compile(r"\bweek\s+(?:of|starting|beginning|commencing)\s+(?:on\s+)?(?:the\s+)?$", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(\d{{4}})\b", re.I)
_YEAR = re.compile(r"\b(19\d{2}|20\d{2})\b")
# A quarter of a year: "Q2 2025", "Q2 of 2025", "2025 Q2", "the second quarter of 2025", "3rd quarter 2024"
_QUARTER_WORDS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_QUARTER = re.compile(r"\bq([1-4])(?:\s+of)?,?\s+(\d{4})\b|\b(\d{4})[\s-]*q([1-4])\b"
                      r"|\b(first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter(?:\s+of)?,?\s+(\d{4})\b", re.I)
# "anything called Folders", "products named Desk Pro", "search the catalogue for Tape": a name typed
# as it is, though not quoted
_CALLED = re.compile(r"\b(?:called|named|containing|contains|mentioning|mentions|matching|"
                     r"[Ss]earch(?:es|ing)?\s+(?:\w+\s+){0,3}?for|[Ll]ook(?:s|ing)?\s+for)\s+"
                     r"([A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*)*)")
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
        """A connections.Database's values: every short text value, up to MAX_VALUES_PER_COLUMN a
        column (SQLite read directly, a server database through read-only queries); its schema's
        samples if those queries fail. With samples only, a template that leaves out a value the
        question names ("Office Furniture") could not tell it did: PostgreSQL answered "Which 10
        products in Office Furniture cost the most?" with every category's products."""
        if database.sqlite_path is not None and database.sqlite_path.is_file():
            return cls.from_sqlite(database.sqlite_path)
        from server.sql.introspect import text_values

        try:
            return cls(text_values(database, MAX_VALUES_PER_COLUMN))
        except HearthError as exc:  # the database is down or refuses: serve with the samples
            log.warning("database %s: cannot read its text values (%s); using its schema's samples",
                        database.config.name, exc)
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
        """Values mentioned in `question`, longest first where they overlap, in order of mention,
        each with the span of text it was found in."""
        spans = _token_spans(question)
        tokens = [t for t, _, _ in spans]
        size = max(len(question), 1)
        taken = [False] * len(tokens)
        found = []
        for n in range(min(MAX_NGRAM, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(taken[i:i + n]):
                    continue
                hits = self.values.get(" ".join(tokens[i:i + n]))
                if hits:
                    taken[i:i + n] = [True] * n
                    start, end = spans[i][1], spans[i + n - 1][2]
                    found.append(Mention("string", hits[0][0], start / size, hits=tuple(hits), span=(start, end)))
        return sorted(found, key=lambda m: m.pos)


def _token_spans(text: str) -> list[tuple[str, int, int]]:
    """norm(text)'s words with the character span each has in `text`."""
    low = text.lower()
    if len(low) != len(text):  # a letter whose lower case is longer ('İ'): keep offsets aligned
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"[a-z0-9]+", low)]


@dataclass(frozen=True)
class Mention:
    """A value a question mentions. `pos` orders mentions (0..1, relative position in the text)."""

    kind: str  # "string", "number", "period"
    value: object  # str; float; a period: (year, None), (year, month) or a day (year or None, month, day);
    #                a quarter is (year, its first month) with months=3
    pos: float
    scale: float = 1.0  # 0.01 for "20%", whose SQL literal may be 0.2
    hits: tuple[tuple[str, str, str], ...] = ()  # value-index entries (value, table, column)
    quoted: bool = False
    context: frozenset[str] = frozenset()  # word stems around a number: "rating no lower than 3"
    weak: bool = False  # a number word that need not be a value: "zero sales", "at least one customer"
    span: tuple[int, int] | None = None  # where in the question a string was found
    months: int = 0  # a period's length in months where it is neither one month nor a year: 3 for a quarter

    def columns(self) -> set[str]:
        return {column for _, _, column in self.hits}


def is_month_word(word: str) -> bool:
    """'jan', 'Sept', 'march': a month's name or abbreviation."""
    return word.strip(".").lower() in _MONTHS


def mentions(question: str, values: ValueIndex | None = None) -> list[Mention]:
    """Quoted strings, known database values, dates, month-year periods, years and numbers, in order."""
    size = max(len(question), 1)
    out: list[Mention] = []
    for m in _QUOTED.finditer(question):
        group = 1 if m.group(1) is not None else 2
        text = m.group(group)
        hits = tuple(values.values.get(norm(text), ())) if values else ()
        out.append(Mention("string", text, m.start() / size, hits=hits, quoted=True, span=m.span(group)))
    if values is not None:
        quoted = {norm(str(q.value)) for q in out if q.quoted}
        out += [v for v in values.find(question) if norm(str(v.value)) not in quoted]
    for m in _CALLED.finditer(question):
        if not any(a < m.end(1) and m.start(1) < b for a, b in (x.span for x in out if x.span is not None)):
            out.append(Mention("string", m.group(1), m.start(1) / size, quoted=True, span=m.span(1)))
    names = [m.span for m in out if m.span is not None]  # a name's digits are part of the name

    def named(start: int, end: int) -> bool:  # a date inside a longer name ("Summer 2024 Collection")
        return any(a <= start and end <= b and b - a > end - start for a, b in names)

    spans: list[tuple[int, int]] = []  # text claimed by a date, so its digits are no numbers

    def free(m: re.Match) -> bool:
        return not any(a < m.end() and m.start() < b for a, b in spans) and not named(*m.span())

    def period(m: re.Match, value: tuple) -> None:
        out.append(Mention("period", value, m.start() / size))
        spans.append(m.span())

    def day(m: re.Match, year: int | None, month: int, day_: int) -> bool:
        try:
            first = date(year or 2000, month, day_)  # a leap year for "February 29" without one
        except ValueError:
            return False
        period(m, (year, month, day_))
        if _WEEK_OF.search(question[:m.start()]) and first < date(9999, 12, 25):  # "the week of <day>": seven days
            last = first + timedelta(days=6)
            out.append(Mention("period", (year and last.year, last.month, last.day), (m.start() + 0.5) / size))
        return True

    for m in _ISO_DATE.finditer(question):
        if free(m) and not (m.group(3) and day(m, int(m.group(1)), int(m.group(2)), int(m.group(3)))):
            period(m, (int(m.group(1)), int(m.group(2))))
    # A range of days in one month, "March 24-30, 2025": its first and last day, as if both were spelled
    for pattern, (y, mo, d1, d2) in ((_MONTH_DAYS_YEAR, (4, 1, 2, 3)), (_DAYS_MONTH_YEAR, (4, 3, 1, 2))):
        for m in pattern.finditer(question):
            if free(m):
                month = _MONTHS[m.group(mo).lower()[:3]]
                if day(m, int(m.group(y)), month, int(m.group(d1))):
                    day(m, int(m.group(y)), month, int(m.group(d2)))
    for pattern, (y, mo, d) in ((_MONTH_DAY_YEAR, (3, 1, 2)), (_DAY_MONTH_YEAR, (3, 2, 1))):
        for m in pattern.finditer(question):
            # "the top 5 March 2024 orders": a count before a month-year, not the 5th of March
            counted = (pattern is _DAY_MONTH_YEAR and re.match(r"\d+\s", m.group(0))
                       and _COUNTED.search(question[:m.start()]))
            if free(m) and not counted:
                day(m, int(m.group(y)), _MONTHS[m.group(mo).lower()[:3]], int(m.group(d)))
    for m in _QUARTER.finditer(question):
        if free(m):
            year, q = ((m.group(2), m.group(1)) if m.group(1) else (m.group(3), m.group(4)) if m.group(3)
                       else (m.group(6), _QUARTER_WORDS[m.group(5).lower()]))
            out.append(Mention("period", (int(year), 3 * int(q) - 2), m.start() / size, months=3))
            spans.append(m.span())
    for m in _MONTH_YEAR.finditer(question):
        if free(m):
            period(m, (int(m.group(2)), _MONTHS[m.group(1).lower()[:3]]))
    for m in _MONTH_DAY.finditer(question):
        if free(m):
            day(m, None, _MONTHS[m.group(1).lower()[:3]], int(m.group(2)))
    for m in _YEAR.finditer(question):
        if free(m):
            period(m, (int(m.group(1)), None))
    taken = spans + names
    for m in _NUMBER.finditer(question):
        if not any(a < m.end() and m.start() < b for a, b in taken):
            number = float(m.group(1).replace(",", "") + (m.group(2) or ""))
            out.append(Mention("number", number, m.start() / size, scale=0.01 if m.group(3) else 1.0,
                               context=_context(question, m.start(), m.end())))
    for word, number in _WORD_NUMBERS.items():
        for m in re.finditer(rf"\b{word}\b", question, re.I):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                out.append(Mention("number", float(number), m.start() / size,
                                   context=_context(question, m.start(), m.end()),
                                   weak=not _quantity(question, m.start(), m.end(), number)))
    return sorted(out, key=lambda m: m.pos)


_RANKED = (r"top|first|last|bottom|best|worst|latest|earliest|newest|oldest|highest|lowest|largest|biggest|"
           r"smallest|cheapest|priciest|most|least|fewest")
_RANK_BEFORE = re.compile(rf"(?<!\bat )\b({_RANKED})\s+$", re.I)               # "top three", not "at least one"
_RANK_AFTER = re.compile(rf"^\s+({_RANKED})\b", re.I)                          # "the three most ..."
_MORE_THAN = re.compile(r"\b((more|fewer|less|greater|larger|higher|lower|smaller)\s+than|over|under|above|"
                        r"below|exceed(s|ing)?|exactly)\s+$", re.I)             # "more than one"
_AT_LEAST = re.compile(r"\b(at\s+(least|most)|up\s+to|only)\s+$", re.I)      # "at least one": any at all
_OR_MORE = re.compile(r"^\s+(or\s+(more|fewer|less|over|above|under|below|higher|lower)|times)\b", re.I)
_NOT_PLURAL = frozenset("is was has its us this thus yes as his does less plus across".split())
_COUNTED = re.compile(rf"\b({_RANKED}|which|what|list|show|give|find|name|the|any|all|only)\s+$", re.I)


def _plural_next(after: str) -> bool:
    """One of the next two words is a plural noun: "three products", "two new regions"."""
    near = re.findall(r"[a-z]+", after.lower())[:2]
    return any(w.endswith("s") and not w.endswith("ss") and len(w) > 2 and w not in _NOT_PLURAL for w in near)


def _quantity(text: str, start: int, end: int, number: int) -> bool:
    """Whether the number word at text[start:end] is clearly a quantity a query should hold: a
    count of ranked rows ("top three", "the three most"), a bound ("more than one", "at least
    two", "two or more", "three times") or a count of things ("three products"). Zero never is
    ("zero sales" is a NOT EXISTS), nor "one" but as a strict bound ("at least one" is any)."""
    before, after = text[:start], text[end:]
    if number == 0:
        return False
    if _RANK_BEFORE.search(before) or _RANK_AFTER.search(after) or _MORE_THAN.search(before):
        return True
    return number >= 2 and bool(_AT_LEAST.search(before) or _OR_MORE.search(after) or _plural_next(after))


def _context(text: str, start: int, end: int, width: int = 2) -> frozenset[str]:
    # Two words either side, digits left out: a wider window reaches the other number's words.
    near = [w for w in words(text[:start]) if not w.isdigit()][-width:]
    return frozenset(near + [w for w in words(text[end:]) if not w.isdigit()][:width])
