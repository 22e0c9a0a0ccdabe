"""The Text-to-SQL prompt: one function that serving and training both call.

`sql_messages()` returns chat messages; the server renders them with the model's own chat
template (server/engine/template.py), and training renders the very same messages with the
tokenizer's chat template, appending the gold SQL as the assistant turn (`sql_answer()`). The
served prompt and the trained prompt therefore match token for token.

Layout, chosen for the prefix cache: instructions and schema come first and are identical for
every question on one database, so their KV cells are computed once and reused (issue 6 measures
time to first token warm against cold); the retrieved examples and the question, which change
per request, come last.

No system message: a chat model keeps the system prompt its template supplies by default, the
one it was tuned with, and the instructions ride in the user turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.sql.schema import DatabaseSchema, Table

# What the model answers when the schema cannot answer the question (defog's idk set measures it).
CANNOT_ANSWER = "-- cannot answer from this schema"

# Introduces the draft query after the question (see sql_messages).
DRAFT_LABEL = "Draft from the most similar known question (correct it if it does not fit):"

# Chat-template variables for every Text-to-SQL prompt, served (generation) and trained
# (training/sql.py puts them on each sample): thinking off, so a template with a think block
# (Qwen3) ends the generation prompt with its empty block, exactly where the trained answer's
# tokens start, and the SQL grammar never has to write one. A template that does not read a
# variable is unaffected by it.
TEMPLATE_KWARGS: dict = {"enable_thinking": False}

DIALECT_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MySQL/MariaDB"}

# Sample values show the model how literals look ('on_hold', not 'On Hold'). Long values, e-mail
# addresses and digit strings cost tokens and teach nothing, so such columns show none.
MAX_SAMPLE_CHARS = 24
MAX_SAMPLES = 3


@dataclass(frozen=True)
class Example:
    """A question/SQL pair retrieved as a few-shot example."""

    question: str
    sql: str


def instructions(dialect: str) -> str:
    name = DIALECT_NAMES.get(dialect, dialect)
    return (
        f"Write one {name} SELECT query that answers the question, using only the tables and "
        f"columns in the schema. Reply with the SQL only. If the schema cannot answer the "
        f"question, reply exactly: {CANNOT_ANSWER}"
    )


def render_table(table: Table) -> str:
    """Compact DDL: types, primary and foreign keys inline, a few sample values as comments."""
    refs = {cols[0]: f"{fk.ref_table}({fk.ref_columns[0]})"
            for fk in table.foreign_keys for cols in [fk.columns] if len(cols) == 1}
    lines = []
    for col in table.columns:
        parts = [f"  {col.name} {col.type or 'TEXT'}"]
        if col.primary_key and len(table.primary_key) == 1:
            parts.append("PRIMARY KEY")
        if col.name in refs:
            parts.append(f"REFERENCES {refs[col.name]}")
        lines.append((" ".join(parts), _samples(table.sample_values.get(col.name, ()))))
    if len(table.primary_key) > 1:
        lines.append((f"  PRIMARY KEY ({', '.join(table.primary_key)})", ""))
    for fk in table.foreign_keys:
        if len(fk.columns) > 1:
            lines.append((f"  FOREIGN KEY ({', '.join(fk.columns)}) REFERENCES "
                          f"{fk.ref_table}({', '.join(fk.ref_columns)})", ""))
    # The comma goes before the comment, so the DDL stays valid SQL.
    body = "\n".join(text + ("," if i < len(lines) - 1 else "") + comment
                     for i, (text, comment) in enumerate(lines))
    return f"CREATE TABLE {table.name} (\n{body}\n);"


def _samples(values: Sequence[str]) -> str:
    useful = all(len(v) <= MAX_SAMPLE_CHARS and "@" not in v and not v.isdigit() for v in values)
    if not values or not useful:
        return ""
    return " -- e.g. " + ", ".join(_quote(v) for v in values[:MAX_SAMPLES])


def render_schema(schema: DatabaseSchema, tables: Sequence[str] | None = None) -> str:
    """The schema's tables (all, or those named, kept in schema order for a stable prefix)."""
    wanted = None if tables is None else {t.lower() for t in tables}
    return "\n".join(render_table(t) for t in schema.tables if wanted is None or t.name.lower() in wanted)


def sql_messages(
    schema: DatabaseSchema,
    question: str,
    *,
    dialect: str | None = None,
    tables: Sequence[str] | None = None,
    examples: Sequence[Example] = (),
    draft: str | None = None,
) -> list[dict]:
    """Chat messages asking for the SQL that answers `question` over `schema`.

    Retrieved examples are earlier turns of the same conversation (question, then the SQL as the
    assistant's reply), so a small model answers the real question in the same form. Every
    request on one database starts with the same instructions, schema and "Question: ", which
    is the prefix the cache reuses.

    `draft` is the template baseline's answer (server/sql/baseline.py: the nearest pair's SQL
    with this question's literal values filled in), shown after the question. A small model is
    bad at copying literal values ('Los Angeles', '2024-03-01', 250) into place; with the draft it
    only has to keep or correct a query whose values are already right.
    """
    dialect = dialect or schema.dialect
    head = f"{instructions(dialect)}\n\n### Schema\n{render_schema(schema, tables)}\n\n"
    questions = [ex.question for ex in examples] + [question]
    messages: list[dict] = []
    for i, q in enumerate(questions):
        content = (head if i == 0 else "") + f"Question: {q.strip()}"
        if draft and i == len(examples):
            content += "\n" + draft_text(draft)
        messages.append({"role": "user", "content": content})
        if i < len(examples):
            messages.append({"role": "assistant", "content": sql_answer(examples[i].sql)})
    return messages


def draft_text(draft: str) -> str:
    """The draft line that follows the question."""
    return f"{DRAFT_LABEL} {one_line(draft)}"


def sql_answer(sql: str | None) -> str:
    """The assistant turn training teaches: the SQL on one line, or the refusal."""
    return CANNOT_ANSWER if sql is None else one_line(sql)


def correction_messages(previous_sql: str, error: str) -> list[dict]:
    """Turns appended after a failed attempt, so the model sees its query and what was wrong."""
    return [
        {"role": "assistant", "content": previous_sql},
        {"role": "user", "content": f"That query failed: {error}\nWrite a corrected query. Reply with the SQL only."},
    ]


def one_line(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.strip()).rstrip(";").strip()


_FENCE = re.compile(r"```(?:sql)?\s*(.*?)(?:```|$)", re.S | re.I)


def parse_answer(text: str) -> str | None:
    """The SQL in a model reply, or None when the model declined to answer.

    Handles what small models do: code fences, a trailing explanation after the statement, a
    leading "SQL:" label.
    """
    text = text.strip()
    if CANNOT_ANSWER in text or text.lower().startswith("-- cannot answer"):
        return None
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    text = re.sub(r"^(sql|answer)\s*:\s*", "", text, flags=re.I)
    # Stop at the end of the first statement, or at a blank line before any prose.
    text = text.split("\n\n")[0]
    statement = _first_statement(text)
    return statement.strip() or None


def _first_statement(text: str) -> str:
    in_quote = None
    for i, ch in enumerate(text):
        if in_quote:
            if ch == in_quote:
                in_quote = None
        elif ch in ("'", '"'):
            in_quote = ch
        elif ch == ";":
            return text[:i]
    return text


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
