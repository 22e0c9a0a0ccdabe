"""How much gold SQL, in the canonical form training teaches, can the serving grammar write?

    .venv/bin/python -m bench.grammar_fit                  # defog's SQLite questions (../shared/data/defog)
    .venv/bin/python -m bench.grammar_fit --show 20        # and the first misfits, cut where the grammar stops

Each gold query is put in canonical form with its live schema (server/sql/canonical.py) and fed,
token by token, through llama.cpp's own grammar sampler with the schema grammar
(server/sql/grammar.py). A query the grammar cannot write is one a model trained on it is forced
off at serving time. Printed: fitting/total per question file, and misfits with the text up to
the token the grammar refused.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ("questions_gen_sqlite.csv", "instruct_basic_sqlite.csv", "instruct_advanced_sqlite.csv")


def grammar_prefix(engine, text: str, grammar: str) -> str | None:
    """None when the grammar accepts `text` whole, else the text up to the refused token."""
    import llama_cpp
    import numpy as np

    vocab = engine._vocab
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    one = (llama_cpp.llama_token_data * 1)()
    arr = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
    tokens = engine.tokenize(text, add_special=False, parse_special=False)
    eos = llama_cpp.llama_vocab_eos(vocab)
    try:
        for i, token in enumerate(tokens + [eos]):
            one[0].id, one[0].logit, arr.size = token, 1.0, 1
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
            if not np.isfinite(one[0].logit):
                return engine.detokenize(tokens[:i])
            if token != eos:
                llama_cpp.llama_sampler_accept(sampler, token)
        return None
    finally:
        llama_cpp.llama_sampler_free(sampler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defog-dir", default=str(ROOT.parent / "shared" / "data" / "defog"))
    parser.add_argument("--show", type=int, default=0, help="print this many misfits")
    args = parser.parse_args(argv)

    from server.engine.llama_engine import LlamaEngine
    from server.settings import embedded_model_path
    from server.sql.canonical import canonical_sql
    from server.sql.connections import Database
    from server.sql.grammar import sql_grammar
    from server.sql.settings import DatabaseConfig

    defog = Path(args.defog_dir)
    if not defog.is_dir():
        print(f"{defog} is missing: nothing to measure", file=sys.stderr)
        return 2
    engine = LlamaEngine("vocab", embedded_model_path(), n_ctx=256, n_slots=1, n_threads=1)
    schemas: dict = {}
    misfits = []
    try:
        for name in FILES:
            fit = total = 0
            for row in csv.DictReader((defog / name).open()):
                db = row["db_name"]
                if db not in schemas:
                    database = Database(DatabaseConfig(name=db, url=f"sqlite:///{defog / 'sqlite' / (db + '.sqlite')}"))
                    schemas[db] = database.schema()
                    database.dispose()
                sql = canonical_sql(row["query"].split(";")[0], "sqlite", schemas[db])
                stop = grammar_prefix(engine, sql, sql_grammar(schemas[db]))
                total += 1
                fit += stop is None
                if stop is not None:
                    misfits.append((sql, stop))
            print(f"{name}: {fit}/{total} gold queries fit the grammar in canonical form")
    finally:
        engine.close()
    for sql, stop in misfits[:args.show]:
        print(f"--- {sql}\n    refused after: ...{stop[-60:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
