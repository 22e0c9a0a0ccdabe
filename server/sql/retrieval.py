"""Lexical matching for Text-to-SQL: schema pruning and few-shot example retrieval.

Both work on word stems, with no model and no index to build offline, so they run on a 2-core box
in microseconds per request:

  prune_tables()   keeps the tables whose names, columns or sample values the question mentions,
                   plus their foreign-key neighbours (the join path), up to a cap.
  ExampleIndex     TF-IDF cosine over question words; `nearest(question, k)` gives the k most
                   similar training pairs. The evaluation's template-filling baseline uses it too.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from server.sql.canonical import canonical_sql
from server.sql.prompt import Example
from server.sql.schema import DatabaseSchema

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of in on for to by with and or is are was were be what which who whom how many much "
    "me show list give find all each per from that this there their than do does did has have "
    "get number".split()
)


def stem(word: str) -> str:
    """Crude English stemming, enough to match 'customers' to 'customer' and 'orders' to 'order'."""
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def words(text: str) -> list[str]:
    """Lower-case word stems, identifiers split at underscores, stop words dropped."""
    return [stem(w) for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOP]


def prune_tables(schema: DatabaseSchema, question: str, max_tables: int) -> list[str] | None:
    """Names of the tables to show for `question`, or None to show the whole schema.

    Small schemas are shown whole: the prompt prefix then never changes between questions, which
    is what the prefix cache needs, and there is nothing to gain from pruning.
    """
    if len(schema.tables) <= max_tables:
        return None
    asked = set(words(question))
    scores: dict[str, float] = {}
    for table in schema.tables:
        score = 3.0 * len(asked & set(words(table.name)))
        for col in table.columns:
            score += len(asked & set(words(col.name)))
        for values in table.sample_values.values():
            score += 2.0 * sum(1 for v in values if set(words(v)) and set(words(v)) <= asked)
        scores[table.name] = score
    ranked = [t for t in sorted(scores, key=lambda t: -scores[t]) if scores[t] > 0]
    chosen: list[str] = []
    for name in ranked:
        if len(chosen) >= max_tables:
            break
        if name not in chosen:
            chosen.append(name)
        # Foreign-key neighbours both ways: they are how the matched tables join.
        for neighbour in _neighbours(schema, name):
            if len(chosen) < max_tables and neighbour not in chosen:
                chosen.append(neighbour)
    return chosen or [t.name for t in schema.tables[:max_tables]]


def _neighbours(schema: DatabaseSchema, name: str) -> list[str]:
    out = []
    for table in schema.tables:
        for fk in table.foreign_keys:
            if table.name == name:
                out.append(fk.ref_table)
            elif fk.ref_table == name:
                out.append(table.name)
    return out


class ExampleIndex:
    """TF-IDF vectors over the questions of a set of question/SQL pairs."""

    def __init__(self, examples: Sequence[Example], analyzer: Callable[[str], list[str]] = words):
        self.examples = list(examples)
        self.analyzer = analyzer  # question → its words (default: stems without stop words)
        docs = [Counter(analyzer(ex.question)) for ex in self.examples]
        df = Counter(w for doc in docs for w in doc)
        n = max(len(docs), 1)
        self._idf = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}
        self._vectors = [self._vector(doc) for doc in docs]

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "ExampleIndex":
        return cls(load_examples(path))

    def _vector(self, counts: Counter) -> dict[str, float]:
        vec = {w: c * self._idf.get(w, 1.0) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {w: v / norm for w, v in vec.items()}

    def scored(self, question: str, k: int) -> list[tuple[float, Example]]:
        if k <= 0 or not self.examples:
            return []
        query = self._vector(Counter(self.analyzer(question)))
        scores = [
            (sum(weight * vec.get(w, 0.0) for w, weight in query.items()), i)
            for i, vec in enumerate(self._vectors)
        ]
        scores.sort(key=lambda s: (-s[0], s[1]))  # ties: file order, so results are deterministic
        return [(score, self.examples[i]) for score, i in scores[:k]]

    def nearest(self, question: str, k: int) -> list[Example]:
        return [ex for _, ex in self.scored(question, k)]


def load_examples(path: str | Path, dialect: str | None = None, schema: DatabaseSchema | None = None) -> list[Example]:
    """{question, sql} pairs from a JSONL file (other keys are ignored), the SQL in canonical form
    (server/sql/canonical.py) when the database's `dialect` is given, its names spelled as the live
    `schema` spells them: serving and training both load examples this way, so the model is shown
    and taught one spelling, the one the schema grammar writes."""
    rows = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"question": row["question"], "sql": row["sql"]})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: not a {{question, sql}} pair ({exc})") from None
    return examples_from_rows(rows, dialect, schema)


def examples_from_rows(rows: list[dict], dialect: str | None = None,
                       schema: DatabaseSchema | None = None) -> list[Example]:
    """Examples from {question, sql} dicts, canonical as load_examples makes them."""
    return [Example(question=row["question"],
                    sql=row["sql"] if dialect is None else canonical_sql(row["sql"], dialect, schema))
            for row in rows]
