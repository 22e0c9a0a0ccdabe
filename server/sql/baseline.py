"""The rule-based Text-to-SQL baseline that a model has to beat: nearest question + slot filling.

This is the classic strong non-neural approach (template retrieval with value re-filling) that
many deployed "natural-language query" products are: no model, no training, just the customer's
own question/SQL pairs.

    1. find the training question most similar to the new one (TF-IDF cosine, the very
       ExampleIndex that retrieves few-shot examples, server/sql/retrieval.py);
    2. take its SQL as a template: a literal in it is a *slot* when the neighbour's question
       mentions it (a string value, a number, a year or a date range); other literals are part of
       the template (`discontinued = 0`, `LIMIT 1` for "the most");
    3. find the values the new question mentions (server/sql/mentions.py): quoted strings,
       numbers, years, month-year dates, days, and the database's own text values (a `ValueIndex` of
       its text columns), which catches "orders from Berlin" → 'Berlin' and "paid by credit
       card" → 'credit_card';
    4. put the new values in the slots by type and by order of mention, string slots preferring
       a value from the same column as the old one; a slot with no new value keeps the old one.

Literals are found and replaced on sqlglot's AST and the SQL is regenerated from it, so quoting
is always right. `BaselineAnswer.filled` says what was replaced, for the report and for debugging.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import sqlglot
from sqlglot import exp

from server.sql.canonical import sql_skeleton
from server.sql.lexicon import PairLexicon
from server.sql.mentions import Mention, ValueIndex, is_month_word, mentions, norm
from server.sql.prompt import Example
from server.sql.retrieval import ExampleIndex, words

_DATE_LITERAL = re.compile(r"^(\d{4})-(\d{2})(-\d{2})?(.*)$")


# Words of a bound or a rank, shared by numbers that count quite different things ("a credit
# limit of at least $50,000", "at least one customer"): no sign that two numbers mean the same.
_BOUND_WORDS = frozenset(words("at least most more fewer less greater over under above below exactly only top first "
                               "last bottom up to or"))


# A number the new question repeats is most likely the same slot ("rated 2 or higher" in both),
# worth this many shared context words: two-word windows often reach the other number's words.
_SAME_VALUE = 2


def _pair_numbers(old: list[Mention], new: list[Mention]) -> dict[int, int]:
    """Old number i → new number j: by shared context words first ("within 30 days" ↔ "within
    7 days", whatever the order the questions mention them in; a repeated value counts as
    _SAME_VALUE words), then by order of mention. A weak
    number word ("at least one customer") takes a slot only where the two share a word of what
    they count."""
    scored = sorted(((len(o.context & n.context) + _SAME_VALUE * (o.value == n.value), -abs(i - j), i, j)
                     for i, o in enumerate(old) for j, n in enumerate(new)
                     if not (o.weak or n.weak) or (o.context & n.context) - _BOUND_WORDS), reverse=True)
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in scored:
        if i not in pairs and j not in taken:
            pairs[i] = j
            taken.add(j)
    return pairs


@dataclass
class BaselineAnswer:
    sql: str | None  # None only when there is no training pair at all
    neighbour: Example | None = None
    similarity: float = 0.0
    filled: list[tuple[str, str]] = field(default_factory=list)  # (old literal, new literal)
    unfilled: int = 0  # slots that kept the neighbour's value for want of a new one
    unused: int = 0  # values the question names that the query does not use ("... in Germany" → no filter)
    unused_words: int = 0  # ... of which are plain words too ("shipped", "online", "zero sales"): weaker evidence

    @property
    def fits(self) -> bool:
        """Every literal slot of the neighbour was re-filled from the question. A slot left as it
        was means the neighbour asks about something this question does not name (its city, its
        year): on the sample's splits such a template was right for 3 of 35 training questions
        (leave-one-out) and none of 50 test questions, against 82% (429/523) and 72% (119/165) of
        those that fit."""
        return self.sql is not None and self.unfilled == 0

    @property
    def complete(self) -> bool:
        """It fits, and it uses every value the question names (a plain lower-case word that is
        also a stored value, such as 'shipped' in "which carrier shipped the most", or a number
        word that is no clear quantity, "zero sales", may be left out): a template that may
        answer as is."""
        return self.fits and self.unused == self.unused_words


class TemplateBaseline:
    """Nearest training question, its SQL with the literals re-filled from the new question."""

    def __init__(self, examples: Sequence[Example], values: ValueIndex | None = None, dialect: str = "sqlite"):
        self.examples = list(examples)
        self.values = values
        self.dialect = dialect
        # Similarity on the questions as asked. Masking the values first ("5 most expensive
        # <category> products") was tried and lost 21 of 140 seen-shape test items on the sample:
        # a training pair that names the same customer or category is often the very query.
        self.index = ExampleIndex(self.examples)
        # A second index over the questions with their values masked ("customers in France" reads
        # "customers in country"): the template search also takes the nearest shapes by it, so a
        # pair naming other values of the same columns is found (a synthesized template above all).
        self.masked = (ExampleIndex(self.examples, analyzer=lambda q: words(values.masked(q)))
                       if values is not None else None)
        self._skeletons: dict[int, str] = {}

    @cached_property
    def lexicon(self) -> PairLexicon:
        """The values these pairs imply for their questions' words (server/sql/lexicon.py): what the
        grounded-literals rule also accepts for a question of this pool."""
        return PairLexicon.learn(self.examples, self.values, self.dialect)

    def skeleton(self, example: Example) -> str:
        """`example`'s SQL shape (sql_skeleton), computed once per pair."""
        key = id(example)
        if key not in self._skeletons:
            self._skeletons[key] = sql_skeleton(example.sql, self.dialect)
        return self._skeletons[key]

    def answer(self, question: str, *, leave_out: str | None = None) -> BaselineAnswer:
        """The filled template for `question`. `leave_out` skips training pairs asking exactly that
        question: training drafts its own pairs this way, so a pair never drafts itself."""
        skip = leave_out.strip() if leave_out else None
        pool = self.index.scored(question, 4 if skip else 1)
        best = [(score, ex) for score, ex in pool if ex.question.strip() != skip][:1]
        if not best:
            return BaselineAnswer(None)
        return self._filled(question, *best[0])

    def answers(self, question: str, k: int, *, leave_out: str | None = None) -> list[BaselineAnswer]:
        """Up to `k` filled templates for `question`, from the nearest pairs of `k` different SQL
        shapes, nearest first: the template search (sql.template_shapes). The nearest pair's shape is wrong
        for about 1 test question in 7 on the sample, and the right one is then usually second or
        third (server/sql/sample: right shape in the first 1/2/3 shapes for 119/126/135 of 140)."""
        skip = leave_out.strip() if leave_out else None
        if k <= 1:
            first = self.answer(question, leave_out=leave_out)
            return [first] if first.sql is not None else []
        out: list[BaselineAnswer] = []
        shapes: set[str] = set()
        for score, ex in self._ranked(question):
            if ex.question.strip() == skip or self.skeleton(ex) in shapes:
                continue
            shapes.add(self.skeleton(ex))
            out.append(self._filled(question, score, ex))
            if len(out) == k:
                break
        return out

    def _ranked(self, question: str):
        """Pairs nearest first, by the questions as asked and, taking turns, with their values
        masked; each pair once, with its as-asked similarity."""
        plain = self.index.scored(question, len(self.examples))
        if self.masked is None:
            yield from plain
            return
        raw = {id(ex): score for score, ex in plain}
        masked = self.masked.scored(question, len(self.examples))
        seen: set[int] = set()
        for a, b in zip(plain, masked):
            for _, ex in (a, b):
                if id(ex) not in seen:
                    seen.add(id(ex))
                    yield raw[id(ex)], ex

    def _filled(self, question: str, score: float, neighbour: Example) -> BaselineAnswer:
        """`neighbour`'s SQL with its literals re-filled from `question`."""
        answer = BaselineAnswer(neighbour.sql, neighbour, round(score, 4))
        try:
            tree = sqlglot.parse_one(neighbour.sql, read=self.dialect)
        except sqlglot.errors.ParseError:
            return answer  # the template as it stands: still the baseline's best guess
        old = mentions(neighbour.question, self.values) + _patterns_named(tree, neighbour.question)
        new = mentions(question, self.values)
        _fill(tree, old, new, answer)
        answer.unused, answer.unused_words = _unused(tree, new, question)
        answer.sql = tree.sql(dialect=self.dialect)
        return answer


def _patterns_named(tree: exp.Expression, question: str) -> list[Mention]:
    """The text of a LIKE pattern that the pair's question spells ("Paper products" for
    `LIKE '%Paper%'`) though it is no stored value: a slot for the new question's name, as a
    value's would be, not part of the template."""
    out = []
    for like in tree.find_all(exp.Like, exp.ILike):
        pattern = like.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and "%" in pattern.this:
            core = pattern.this.strip("%")
            found = re.search(rf"(?<!\w){re.escape(core)}(?!\w)", question, re.I) if core.strip() else None
            if found:
                out.append(Mention("string", core, found.start() / max(len(question), 1), quoted=True,
                                   span=found.span()))
    return out


def _unused(tree: exp.Expression, new: list[Mention], question: str) -> tuple[int, int]:
    """How many of the question's values the query leaves out: a string it names (a database
    value or a quoted one), a number, a year, a day. A template that ignores "in Germany" answers
    another question, however well its words match. Second: how many of those are single
    lower-case words of the question ('shipped', 'online') or weak number words ("zero sales",
    "at least one"), which may be plain words rather than values."""
    strings, numbers, years, days = set(), set(), set(), set()
    for literal in tree.find_all(exp.Literal):
        if literal.is_string:
            strings.add(norm(literal.this.strip("%")))
            date_ = _DATE_LITERAL.match(literal.this)
            if date_ or (literal.this.isdigit() and len(literal.this) == 4):
                years.add(int(literal.this[:4]))
            day = _day(date_) if date_ else None
            if day is not None:  # a day, and the day before it (`< '2025-03-25'` ends "March 24")
                days |= {day, day - timedelta(days=1)} if day > date.min else {day}
        else:
            try:
                numbers.add(float(literal.this))
            except ValueError:
                pass
    years |= {int(n) for n in numbers if n.is_integer()}
    count = words = 0
    for m in new:
        if m.kind == "string":
            missing = not ({norm(str(m.value))} | {norm(v) for v, _, _ in m.hits}) & strings
            key = norm(str(m.value))
            words += (missing and not m.quoted and " " not in key and not _proper_name(m)
                      and bool(re.search(rf"\b{re.escape(key)}\b", question)))
        elif m.kind == "number":
            missing = not {m.value, m.value * m.scale} & numbers
            words += missing and m.weak
        elif len(m.value) == 3:  # a day: the query must hold that very date
            year, month, day_ = m.value
            missing = not any((year is None or d.year == year) and (d.month, d.day) == (month, day_) for d in days)
        else:
            missing = m.value[0] not in years and m.value[0] + 1 not in years
        count += missing
    return count, words


def _proper_name(mention: Mention) -> bool:
    """The database stores the value as a name ('Belgium', 'Atlanta'), not as a code word
    ('shipped', 'online'): typed in lower case ("custmers in belgium by segment") it is still a
    value the question asks about, never a plain word a template may leave out."""
    if is_month_word(str(mention.value)):  # "order count for jan 2023": a month, whoever is called Jan
        return False
    stored = [value for value, _, _ in mention.hits] or [str(mention.value)]
    return any(v[:1].isupper() and not v.isupper() for v in stored)


def _day(match: re.Match) -> date | None:
    """The day of a date literal's _DATE_LITERAL match, None for a month ('2024-03') or a bad date."""
    if not match.group(3):
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)[1:]))
    except ValueError:
        return None


# -- slot filling -------------------------------------------------------------------------------

def _fill(tree: exp.Expression, old: list[Mention], new: list[Mention], answer: BaselineAnswer) -> None:
    periods_old = [m for m in old if m.kind == "period"]
    periods_new = [m for m in new if m.kind == "period"]
    numbers_old = [m for m in old if m.kind == "number"]
    numbers_new = [m for m in new if m.kind == "number"]
    strings_old = [m for m in old if m.kind == "string"]
    strings_new = [m for m in new if m.kind == "string"]
    number_pairs = _pair_numbers(numbers_old, numbers_new)
    used: set[int] = set()  # ids of new string mentions already placed
    memo: dict[str, tuple[bool, str | None]] = {}  # one old value → one new value, however often it recurs

    for literal in list(tree.find_all(exp.Literal)):
        text = literal.this
        replacement = None
        slotted = False
        if literal.is_string:
            date = _DATE_LITERAL.match(text)
            year = int(text) if text.isdigit() and len(text) == 4 else None
            if date or year:
                slotted, replacement = _fill_period(text, year, periods_old, periods_new, _is_upper_bound(literal))
            else:
                key = norm(text.strip("%"))
                if key not in memo:
                    memo[key] = _fill_string(literal, strings_old, strings_new, used)
                slotted, replacement = memo[key]
                if replacement is not None:  # the same wildcards as this occurrence
                    replacement = _rewrap(text, replacement.strip("%"))
        else:
            value = float(text)
            year_slot = value.is_integer() and any(p.value[0] == int(value) for p in periods_old)
            if year_slot and _IDENTIFIER.search(_comparison_column(literal) or ""):
                slotted, replacement = _fill_identifier(int(value), periods_old, periods_new, numbers_new)
            elif year_slot:
                slotted, replacement = _fill_period(str(int(value)), int(value), periods_old, periods_new)
            else:
                slotted, replacement = _fill_number(value, numbers_old, numbers_new, number_pairs,
                                                    limit=isinstance(literal.parent, (exp.Limit, exp.Fetch)))
        if not slotted:
            continue
        if replacement is None or replacement == text:
            answer.unfilled += replacement is None
            continue
        new_literal = exp.Literal.string(replacement) if literal.is_string else exp.Literal.number(replacement)
        literal.replace(new_literal)
        answer.filled.append((text, replacement))


def _fill_number(value: float, old: list[Mention], new: list[Mention],
                 pairs: dict[int, int], limit: bool = False) -> tuple[bool, str | None]:
    for i, m in enumerate(old):
        for scale in {1.0, m.scale}:
            if abs(m.value * scale - value) < 1e-9:
                j = pairs.get(i)
                if j is not None and limit and new[j].weak:
                    j = None  # "at least one customer" is no count of rows to return
                if j is None:  # an old number word that is no clear quantity ("at least one") is template
                    return (False, None) if m.weak else (True, None)
                target = new[j].value * scale
                return True, str(int(target)) if float(target).is_integer() else repr(round(target, 10))
    return False, None


# A column that holds numbers naming things, never years: "order 1952" and "flight 1291" read as
# years by mentions(), but `order_id = 1952` is an order number a year must not re-fill.
_IDENTIFIER = re.compile(r"(^|_)(id|no|num|number|code)$|^id$", re.I)


def _fill_identifier(value: int, old: list[Mention], new: list[Mention], numbers: list[Mention]) -> tuple[bool, str | None]:
    """The old question's bare "year" that a template compares with an identifier column is that
    identifier: re-filled from the new question's bare years (at the same index) or its first
    number; a month or a date is no identifier, so without either the slot stays unfilled."""
    bare_old = [m for m in old if m.value[1] is None]
    bare_new = [m for m in new if len(m.value) == 2 and m.value[1] is None and m.value[0] is not None]
    i = next((k for k, m in enumerate(bare_old) if m.value[0] == value), None)
    if i is None:
        return False, None
    if i < len(bare_new):
        return True, str(bare_new[i].value[0])
    plain = [m for m in numbers if not m.weak and float(m.value).is_integer()]
    return True, (str(int(plain[0].value)) if plain else None)


def _month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def _fill_period(text: str, year: int | None, old: list[Mention], new: list[Mention],
                 upper: bool = False) -> tuple[bool, str | None]:
    """Shift a date (or year) literal that falls in (or just after) the i-th old period to the i-th
    new one: by as many months, or, where both are days ("March 24, 2025"), by as many days."""
    if year is not None:  # '2024' or 2024: a year slot
        for i, m in enumerate(old):
            if m.value[0] == year:
                return True, (str(new[i].value[0]) if i < len(new) and new[i].value[0] is not None else None)
            if m.value[1] is None and m.value[0] + 1 == year:  # the exclusive end of a year range
                return True, (str(new[i].value[0] + 1) if i < len(new) and new[i].value[0] is not None else None)
        return False, None
    match = _DATE_LITERAL.match(text)
    y, mo = int(match.group(1)), int(match.group(2))
    at = _month_index(y, mo)
    # '2024-01-01' closes "2023" (as `< '2024-01-01'`) and opens "2024" (as `>= '2024-01-01'`):
    # an upper bound looks for a period it ends first, anything else for one it lies in.
    order = (True, False) if upper else (False, True)
    day = _day(match)
    if day is not None:  # a day the old question names, the day after it (an exclusive end), or near it
        named = [(i, _on(m.value, day.year)) for i, m in enumerate(old) if len(m.value) == 3]
        named = [(i, d) for i, d in named if d is not None]
        exact = [(i, d) for as_end in order for i, d in named if day == d + timedelta(days=as_end)]
        near = sorted((abs((day - d).days), i, d) for i, d in named if abs((day - d).days) <= 31)
        pick = exact[0] if exact else (near[0][1:] if near else None)
        if pick is not None:
            i, was = pick
            if i >= len(new) or len(new[i].value) != 3:
                return True, None  # no day to put there: "in March" is not "on March 24"
            target = _on(new[i].value, was.year if new[i].value[0] is None else new[i].value[0])
            try:
                return True, f"{day + (target - was):%Y-%m-%d}{match.group(4)}"
            except (TypeError, OverflowError):  # no such day in that year, or past year 9999
                return True, None
    for i, m, as_end in [(i, m, as_end) for as_end in order for i, m in enumerate(old)]:
        if len(m.value) == 3:
            continue
        start_year, start_month = m.value
        start = _month_index(start_year, start_month or 1)
        end = start + (m.months or (1 if start_month else 12))  # the first month after the period (exclusive ends)
        if (at == end) if as_end else (start <= at < end):
            if i >= len(new) or len(new[i].value) == 3:
                return True, None  # nothing new, or a day where the template asks about a month or year
            if (m.months == 3) != (new[i].months == 3):
                return True, None  # a quarter's three months are no month's one, nor a year's twelve
            new_year, new_month = new[i].value
            shifted = at + _month_index(new_year, new_month or start_month or 1) - start
            ny, nm = divmod(shifted, 12)
            return True, f"{ny:04d}-{nm + 1:02d}{match.group(3) or ''}{match.group(4)}"
    return False, None


def _on(value: tuple, year: int) -> date | None:
    """The day of a day period (year, month, day), in `year` when the question gave none."""
    try:
        return date(value[0] if value[0] is not None else year, value[1], value[2])
    except ValueError:
        return None


def _is_upper_bound(literal: exp.Literal) -> bool:
    """`x < lit`, `x <= lit`, `lit > x`, `lit >= x`, or the second value of BETWEEN."""
    parent = literal.parent
    if isinstance(parent, (exp.LT, exp.LTE)):
        return parent.expression is literal
    if isinstance(parent, (exp.GT, exp.GTE)):
        return parent.this is literal
    return isinstance(parent, exp.Between) and parent.args.get("high") is literal


def _comparison_column(literal: exp.Literal) -> str | None:
    """The column a literal is compared with (`city = 'Berlin'`, `name LIKE '%x%'`, `x IN (...)`)."""
    node = literal.parent
    for _ in range(4):  # through LOWER(...), IN (...) lists and parentheses
        if node is None:
            return None
        if isinstance(node, (exp.EQ, exp.NEQ, exp.Like, exp.ILike, exp.In, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            column = next(node.find_all(exp.Column), None)
            return column.name.lower() if column is not None else None
        node = node.parent
    return None


def _fill_string(literal: exp.Literal, old: list[Mention], new: list[Mention], used: set[int]) -> tuple[bool, str | None]:
    text = literal.this
    core = text.strip("%")  # LIKE '%Machine Learning%': the slot is the text between the wildcards
    key = norm(core)
    if not key:
        return False, None
    rank = next((i for i, m in enumerate(old) if norm(str(m.value)) == key), None)
    if rank is None:
        return False, None  # the neighbour's question does not mention it: part of the template
    column = _comparison_column(literal)
    pick = None
    if column:  # a value the database holds in the same column is the surest substitute
        pick = next((m for m in new if id(m) not in used and column in m.columns()), None)
    if pick is None:  # else a quoted string, in order of mention
        pick = next((m for m in new if id(m) not in used and m.quoted), None)
    if pick is None:
        return True, None
    used.add(id(pick))
    value = str(pick.value)
    if column:
        value = next((v for v, _, c in pick.hits if c == column), value)  # the stored spelling
    return True, _rewrap(text, value)


def _rewrap(template: str, value: str) -> str:
    """`value` with the LIKE wildcards that `template` has around it."""
    prefix = template[: len(template) - len(template.lstrip("%"))]
    suffix = template[len(template.rstrip("%")):]
    return prefix + value + suffix
