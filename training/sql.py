"""Text-to-SQL pairs → chat samples, through the server's own prompt function.

`server.sql.prompt.sql_messages` builds the user turns exactly as POST /v1/sql does, and
`sql_answer` the assistant turn, so the trained prompt is the served prompt token for token
(tests/training/test_prompt_parity.py checks it against the GGUF's template in llama.cpp).

Few-shot examples: serving puts the k nearest training pairs (server.sql.retrieval.ExampleIndex,
k = SqlSettings.few_shot_k, default 0) in front of the question. Training does the same with the
same index over the same training file, leaving the sample itself out (otherwise the answer
would be in the prompt and the model would learn to copy). The recipe's `few_shot_k` must equal
the served `sql.few_shot_k`; the pipeline writes it into the serving snippet.

Schema: by default the one serving sees, introspected from the configured database (sample values
included); `schema_source: ddl` uses the sample's DDL without connecting (no sample values, so
the prompt differs slightly from serving: only for tests and for machines without the database).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .io import read_jsonl


def load_database(database: str, source: str = "live", dialect: str = "sqlite"):
    """(DatabaseSchema serving would show for `database`, its ValueIndex for drafts)."""
    from server.sql.mentions import ValueIndex

    if source == "ddl":
        from server.sql.sample.ddl import database_schema

        schema = database_schema(dialect, name=database)
        return schema, ValueIndex.from_schema(schema)
    from server.settings import load_settings
    from server.sql.connections import DatabaseRegistry
    from server.sql.sample.paths import ensure_sample_database

    configs = load_settings().databases
    ensure_sample_database(configs)
    db = DatabaseRegistry(configs).get(database)
    return db.schema(), ValueIndex.for_database(db)


def sql_samples(path: str | Path, *, source: str = "sql", few_shot_k: int = 0, schema_source: str = "live",
                max_prompt_tables: int = 12, examples_path: str | Path | None = None,
                splits: tuple[str, ...] = ("train",), draft: bool = True, drafts: int = 1,
                other_shape_fraction: float = 0.0, question_samples: bool = False, seed: int = 0) -> list[dict]:
    """One chat sample per pair: [user (instructions+schema+question), ..., assistant (SQL)].

    `examples_path` is the file serving retrieves few-shot examples from (default: `path`).
    `draft` adds the template baseline's filled SQL after the question, as serving's `sql.draft`
    does, drafted from the other pairs (never from the pair itself); `drafts` > 1 adds that many
    candidates of different SQL shapes, as serving's `sql.drafts` does.

    `other_shape_fraction` of the pairs (a seeded, deterministic choice) are drafted, and given
    examples, only from pairs of *another* shape (SQL skeleton). Without it nearly every draft is
    the answer with other values, so the model learns to copy, and at serving time a question of a
    new shape gets a wrong draft copied. With it, the model is meant to learn to write past a draft
    that does not fit. Such samples carry "other_shape": true. Measured on the sample (44 steps),
    0.3 made the model distrust right drafts without answering any new shape (training/README.md),
    so recipes default to 0.

    `question_samples` adds the reverse task for every pair: the SQL (canonical) in, the question
    out, through server.sql.prompt.question_messages as serving's sql.template_choice = "model"
    scores it. Such samples carry "task": "question" and are ~100 tokens (no schema).
    """
    from server.sql.baseline import TemplateBaseline
    from server.sql.canonical import canonical_sql, sql_skeleton
    from server.sql.prompt import Example, question_answer, question_messages, sql_answer, sql_messages
    from server.sql.retrieval import load_examples, prune_tables
    from server.sql.synth import with_schema_templates

    rows = [r for r in read_jsonl(path) if r.get("split", "train") in splits]
    databases: dict[str, tuple] = {}
    drafters: dict[str, TemplateBaseline] = {}
    out = []
    for row in rows:
        db = row.get("database", "sample")
        if db not in databases:
            databases[db] = load_database(db, schema_source)
            dialect = databases[db][0].dialect
            # The pool serving drafts from: the pairs (canonical) and the schema's templates
            # (sql.schema_templates, on by default).
            examples = with_schema_templates(load_examples(examples_path or path, dialect, databases[db][0]),
                                             databases[db][0], databases[db][1])
            drafters[db] = TemplateBaseline(examples, databases[db][1], dialect=dialect)
        schema = databases[db][0]
        index = drafters[db].index if few_shot_k > 0 else None  # the one ExampleIndex, as serving has
        other_shape = row["sql"] is not None and _chosen(row, seed, other_shape_fraction)
        shape_of = row["sql"] if other_shape else None
        if not draft:
            draft_sql = None
        elif drafts > 1 and not other_shape:  # candidates of `drafts` shapes, as serving's sql.drafts
            draft_sql = [a.sql for a in drafters[db].answers(row["question"], drafts, leave_out=row["question"])]
        else:
            draft_sql = drafters[db].answer(row["question"], leave_out=row["question"], other_shape_than=shape_of).sql
        shots: list[Example] = []
        if index is not None:
            # Drop the pair itself (and exact copies of its question), and for an other-shape
            # sample every pair of its shape; ask for enough to still have k left.
            want = len(index.examples) if other_shape else few_shot_k + 1
            skeleton = sql_skeleton(row["sql"], schema.dialect) if other_shape else None
            near = index.nearest(row["question"], want)
            shots = [ex for ex in near if ex.question.strip() != row["question"].strip()
                     and (skeleton is None or drafters[db].skeleton(ex) != skeleton)][:few_shot_k]
        tables = prune_tables(schema, row["question"], max_prompt_tables)
        messages = sql_messages(schema, row["question"], tables=tables, examples=shots, draft=draft_sql)
        target = row["sql"] if row["sql"] is None else canonical_sql(row["sql"], schema.dialect, schema)
        messages.append({"role": "assistant", "content": sql_answer(target)})
        out.append({
            "messages": messages, "source": source, "id": str(row.get("id", len(out))),
            "verbatim": True, "dedup_key": f"{row['question']}\n{row['sql']}",
            "shape": row.get("shape"), "other_shape": other_shape,
        })
        if question_samples and target is not None:
            out.append({
                "messages": question_messages(target) + [{"role": "assistant", "content": question_answer(row["question"])}],
                "source": source, "id": f"{row.get('id', len(out))}:question", "verbatim": True,
                "dedup_key": f"question\n{row['question']}\n{row['sql']}", "shape": row.get("shape"),
                "task": "question",
            })
    return out


def _chosen(row: dict, seed: int, fraction: float) -> bool:
    """A stable coin flip per pair: the same pairs are chosen on every run and machine."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}\0{row.get('id')}\0{row['question']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
