"""Text-to-SQL pairs → chat samples, through the server's own prompt function.

`server.sql.prompt.sql_messages` builds the user turns exactly as POST /v1/sql does, and
`sql_answer` the assistant turn, so the trained prompt is the served prompt token for token
(tests/training/test_prompt_parity.py checks it against the GGUF's template in llama.cpp). Each
sample carries serving's template variables (server.sql.prompt.TEMPLATE_KWARGS: thinking off),
which training/tokens.py renders it with.

Few-shot examples: serving puts the k nearest training pairs (server.sql.retrieval.ExampleIndex,
k = SqlSettings.few_shot_k, default 0) in front of the question. Training does the same with the
same index over the same training file, leaving the sample itself out (otherwise the answer
would be in the prompt and the model would learn to copy). Both read the one setting: the
recipe's `serve.sql`, which the pipeline writes into the serving snippet.

Schema: by default the one serving sees, introspected from the configured database (sample values
included); `schema_source: ddl` uses the sample's DDL without connecting (no sample values, so
the prompt differs slightly from serving: only for tests and for machines without the database).
"""

from __future__ import annotations

from pathlib import Path

from server.sql.settings import SqlSettings

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


def sql_samples(path: str | Path, *, source: str = "sql", serving: SqlSettings | None = None,
                schema_source: str = "live", examples_path: str | Path | None = None,
                splits: tuple[str, ...] = ("train",)) -> list[dict]:
    """One chat sample per pair: [user (instructions+schema+question), ..., assistant (SQL)].

    The prompt is the one serving builds under `serving` (the recipe's serve.sql, default the
    server's defaults): sql.few_shot_k retrieved examples, sql.draft (the template baseline's filled
    SQL after the question, drafted from the other pairs, never from the pair itself), the schema
    pruned to sql.max_prompt_tables, and the draft pool with sql.schema_templates.
    `examples_path` is the file serving retrieves examples from (default: `path`).
    """
    from server.sql.baseline import TemplateBaseline
    from server.sql.canonical import canonical_sql
    from server.sql.prompt import TEMPLATE_KWARGS, Example, sql_answer, sql_messages
    from server.sql.retrieval import load_examples, prune_tables
    from server.sql.synth import with_schema_templates

    serving = serving or SqlSettings()
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
            examples = load_examples(examples_path or path, dialect, databases[db][0])
            if serving.schema_templates:
                examples = with_schema_templates(examples, databases[db][0], databases[db][1])
            drafters[db] = TemplateBaseline(examples, databases[db][1], dialect=dialect)
        schema = databases[db][0]
        draft_sql = drafters[db].answer(row["question"], leave_out=row["question"]).sql if serving.draft else None
        shots: list[Example] = []
        if serving.few_shot_k > 0:  # the one ExampleIndex, as serving has; never the pair itself
            near = drafters[db].index.nearest(row["question"], serving.few_shot_k + 1)
            shots = [ex for ex in near if ex.question.strip() != row["question"].strip()][:serving.few_shot_k]
        tables = prune_tables(schema, row["question"], serving.max_prompt_tables)
        messages = sql_messages(schema, row["question"], tables=tables, examples=shots, draft=draft_sql)
        target = row["sql"] if row["sql"] is None else canonical_sql(row["sql"], schema.dialect, schema)
        messages.append({"role": "assistant", "content": sql_answer(target)})
        out.append({
            "messages": messages, "source": source, "id": str(row.get("id", len(out))),
            "verbatim": True, "dedup_key": f"{row['question']}\n{row['sql']}",
            "shape": row.get("shape"), "template_kwargs": dict(TEMPLATE_KWARGS),
        })
    return out
