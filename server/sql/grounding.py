"""What a question vouches for: the values a generated query may compare columns with.

A small model copies values it has seen (a draft's city, a neighbour's year) into a query whose
question never named them: "How many customers are in each segment?" got `WHERE country =
'Netherlands'`. The validator's `grounded_literals` rule (server/sql/rules.py) checks each literal
a query compares a column with against `Grounding.of(question)`, and an unsupported one is fed
back to the model as an error.

A literal is supported when:
  * a string: its normalised text is a value the question mentions (a quoted string, a database
    value found by the ValueIndex, so "credit card" vouches for 'credit_card'), or all its words
    are words of the question in some form ("Account Executives" vouches for 'Account Executive',
    "cancellations" for 'cancelled');
    LIKE wildcards are ignored;
  * a date ('2024-03-01', '2024'): the question names its year or the year before it (an
    exclusive upper bound: "in 2023" is `< '2024-01-01'`), or speaks of relative time ("last
    month", "this year", "recent");
  * a number: 0 or 1 (flags, "any"), a number the question mentions (digits, the words zero to
    twelve, "both", "twice", "20%" as 20 or 0.2), the number of a month it names, or a year;
  * any literal the database's own example pairs imply for the question's words (`implied`, from
    server/sql/lexicon.py: "major" -> 150000 where the pairs always say so).
Only literals compared with a column are checked (`=`, `<>`, `<`, `>`, `IN`, `LIKE`, `BETWEEN`),
not function arguments (ROUND(x, 2), STRFTIME('%Y', d)), LIMIT counts or CASE results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from server.sql.mentions import ValueIndex, mentions, norm

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[ T].*)?$")
# Time relative to today ("in the last 30 days", "this year", "2 weeks ago"): a query may then name
# any date. "last", "latest" or "most recent" alone order rows ("when did each customer last
# order?") and vouch for no date: taking them as relative time let a copied year through.
_RELATIVE_TIME = re.compile(
    r"\b((last|past|previous|next|this|current|coming)( \d+| few| couple of| two| three| six| twelve)? "
    r"(days?|weeks?|months?|quarters?|years?|yrs?|fiscal year|decade)|ago|today|tonight|yesterday|tomorrow|now|"
    r"so far|to date|ytd|mtd|qtd|recently|lately|since|year to date|month to date)\b", re.I)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.In, exp.Between)
_TRANSPARENT = (exp.Paren, exp.Tuple, exp.Lower, exp.Upper, exp.Trim, exp.Cast, exp.Neg)


_EXTRA_NUMBERS = {"both": 2.0, "twice": 2.0, "once": 1.0, "single": 1.0, "pair": 2.0, "dozen": 12.0}
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")


def _same_word(a: str, b: str) -> bool:
    """One word in two forms: 'executive'/'executives', 'cancelled'/'cancellations'. Short words
    must match exactly; longer ones may differ in their last two letters and their endings."""
    if a == b:
        return True
    shared = len(next((p for p in (a[:i] for i in range(min(len(a), len(b)), 0, -1)) if b.startswith(p)), ""))
    return shared >= 4 and shared >= min(len(a), len(b)) - 2


@dataclass(frozen=True)
class Grounding:
    words: frozenset[str]    # the question's normalised words
    strings: frozenset[str]  # normalised string values the question mentions
    numbers: frozenset[float]
    years: frozenset[int]
    relative_time: bool
    implied: frozenset[str] = frozenset()  # literal_key()s the example pairs imply (PairLexicon.implied)

    @classmethod
    def of(cls, question: str, values: ValueIndex | None = None, implied: frozenset[str] = frozenset()) -> Grounding:
        found = mentions(question, values)
        strings = set()
        for m in found:
            if m.kind == "string":
                strings.add(norm(str(m.value)))
                strings.update(norm(v) for v, _, _ in m.hits)
        numbers = {float(m.value) * s for m in found if m.kind == "number" for s in {1.0, m.scale}}
        years = {m.value[0] for m in found if m.kind == "period"}
        words = norm(question).split()
        numbers |= {_EXTRA_NUMBERS[w] for w in words if w in _EXTRA_NUMBERS}
        months = {i for i, name in enumerate(_MONTH_NAMES, 1) for w in words if w in (name, name[:3])}
        numbers |= {float(m) for m in months}  # MONTH(d) = 6 for "June"; STRFTIME('%m', d) = '06'
        strings |= {f"{m:02d}" for m in months}
        return cls(frozenset(words), frozenset(strings), frozenset(numbers), frozenset(years),
                   bool(_RELATIVE_TIME.search(question)), frozenset(implied))

    def supports(self, literal: exp.Literal) -> bool:
        if self.implied and literal_key(literal) in self.implied:
            return True
        text = literal.this
        if literal.is_string:
            date = _DATE.match(text.strip())
            if date:
                return self._supports_year(int(date.group(1)))
            key = norm(text.strip("%"))
            if key.isdigit() and len(key) <= 2:  # a date part ('0' for Sunday, '06' for June): a code
                return True
            if not key or key in self.strings:
                return True
            return all(any(_same_word(w, q) for q in self.words) for w in key.split())
        try:
            value = float(text)
        except ValueError:
            return True
        if value in (0.0, 1.0) or value in self.numbers:
            return True
        return value.is_integer() and 1900 <= value <= 2100 and self._supports_year(int(value))

    def _supports_year(self, year: int) -> bool:
        return self.relative_time or year in self.years or (year - 1) in self.years


def literal_key(literal: exp.Literal) -> str:
    """One spelling per value: strings by their normalised text (LIKE wildcards aside), numbers by
    value (150000, 150000.0 and 1.5e5 are one)."""
    if literal.is_string:
        return "s:" + norm(literal.this.strip("%"))
    try:
        return f"n:{float(literal.this)!r}"
    except ValueError:
        return "s:" + norm(literal.this)


def compared_literals(tree: exp.Expression):
    """(literal, column name) for each literal the query compares a column (or an expression of
    one) with; other literals are the query's own constants."""
    for literal in tree.find_all(exp.Literal):
        node, child = literal.parent, literal
        while isinstance(node, _TRANSPARENT):
            node, child = node.parent, node
        if not isinstance(node, _COMPARISONS):
            continue
        column = next((c for c in node.find_all(exp.Column)), None)
        if column is not None:
            yield literal, column.sql()
