"""Values a database's own example pairs imply: the codes and thresholds its people never spell.

Real question/SQL pairs carry knowledge no question states: "major cities" is `population >
150000`, "United" is `airline_code = 'UA'`, "morning flights" is `departure_time < 1200`. The
validator's `grounded_literals` rule (server/sql/grounding.py) rejects a literal the question does not
name, so without this every such template, and every such query the adapted model learned to
write, was refused, on exactly the databases whose pairs teach the most.

`PairLexicon.learn(pairs)` reads each pair's compared literals that its own question does not
vouch for (Grounding.supports) and remembers which question words came with them. A new question
then implies a literal when it holds a word that *predicts* it in the pairs:

    n(w, L) >= MIN_SEEN              the word came with the literal in at least two pairs (one
                                     pair is an anecdote: its rare words predict anything), and
    n(w, L) / n(w) >= MIN_PRECISION  at least half the pairs whose question has the word use it.

Word stems as retrieval reads them (server/sql/retrieval.py words: stop words out). A literal the
questions always spell (every value of the sample's pairs) is never learned, so a lexicon built
from pairs that name their values is empty and changes nothing: a model copying a neighbour's
city ('Netherlands' for "customers in each segment") is still told so, because the pair that
used 'Netherlands' named it. Measured by `python -m bench.grounding_fit` (gold queries rejected,
and other questions' literals let in, with and without the lexicon).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import sqlglot

from server.sql.grounding import Grounding, compared_literals, literal_key
from server.sql.mentions import ValueIndex
from server.sql.retrieval import words

MIN_SEEN = 2          # pairs in which a word must come with a literal
MIN_PRECISION = 0.5   # share of the pairs whose question has the word that use the literal


@dataclass
class PairLexicon:
    with_word: dict[str, Counter] = field(default_factory=dict)  # literal key -> question stem -> pairs using it unvouched
    word_pairs: Counter = field(default_factory=Counter)         # question stem -> pairs whose question has it

    @classmethod
    def learn(cls, pairs: Iterable, values: ValueIndex | None = None, dialect: str = "sqlite") -> PairLexicon:
        """From (question, sql) pairs (anything with `.question` and `.sql`)."""
        lexicon = cls()
        for pair in pairs:
            stems, unvouched = pair_facts(pair.question, pair.sql, dialect, values)
            lexicon.word_pairs.update(stems)
            for key in unvouched:
                lexicon.with_word.setdefault(key, Counter()).update(stems)
        return lexicon

    def __len__(self) -> int:
        """How many literals the pairs use without their questions naming them."""
        return len(self.with_word)

    def _predictors(self, counts: Counter, stems) -> list[str]:
        """The stems among `stems` that predict the literal whose stem counts are `counts`."""
        return [w for w in stems if counts[w] >= MIN_SEEN and counts[w] >= MIN_PRECISION * self.word_pairs[w]]

    def implied(self, question: str) -> frozenset[str]:
        """The literal keys (literal_key) that `question`'s words predict."""
        stems = set(words(question))
        return frozenset(key for key, counts in self.with_word.items() if self._predictors(counts, stems & counts.keys()))

    def explain(self, key: str) -> list[tuple[str, int, int]]:
        """(stem, pairs with the stem and the literal, pairs with the stem) that predict `key`, best first."""
        counts = self.with_word.get(key, Counter())
        hits = [(w, counts[w], self.word_pairs[w]) for w in self._predictors(counts, counts.keys())]
        return sorted(hits, key=lambda h: (-h[1] / h[2], -h[1], h[0]))


@lru_cache(maxsize=65536)
def pair_facts(question: str, sql: str, dialect: str, values: ValueIndex | None) -> tuple[frozenset[str], frozenset[str]]:
    """(the question's stems, the literal keys its query compares that the question does not vouch
    for), once per pair: a template pool rebuilt without a few pairs re-learns in microseconds."""
    stems = frozenset(words(question))
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return stems, frozenset()
    grounding = Grounding.of(question, values)
    return stems, frozenset(literal_key(lit) for lit, _ in compared_literals(tree) if not grounding.supports(lit))
