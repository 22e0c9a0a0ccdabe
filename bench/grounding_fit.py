"""How often does the grounded-literals rule refuse a right query, and what does the pairs' lexicon let in?

    .venv/bin/python -m bench.grounding_fit              # defog's SQLite questions (../shared/data/defog)
    .venv/bin/python -m bench.grounding_fit --show 10    # and the literals the lexicon lets in, with why

Every answerable defog question (questions_gen, instruct_basic, instruct_advanced) with its
database's other questions as that database's example pairs (leave-one-out, what a user's pairs
file is to a new question). For each question:

  gold refused   its gold query has a compared literal its question does not vouch for
                 (server/sql/grounding.py), without and with the lexicon the other pairs teach
                 (server/sql/lexicon.py): a right answer the validator would turn away;
  own admitted   of those gold literals, how many the lexicon lets in;
  foreign        the literals of the *other* questions' gold queries on the same database that
                 this one neither names nor uses: how many the lexicon lets in (a wrong value a
                 model could copy from a neighbour and no longer be told so).

The sample's pairs name every value they use (0 of 558 training queries refused), so there the
lexicon is empty; `--sample` checks that.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defog-dir", default=str(ROOT.parent / "shared" / "data" / "defog"))
    parser.add_argument("--show", type=int, default=0, help="print this many admitted literals, with the words that imply them")
    parser.add_argument("--sample", action="store_true", help="also learn from the sample's training pairs and report its size")
    args = parser.parse_args(argv)

    import sqlglot

    from server.sql.grounding import Grounding, compared_literals, literal_key
    from server.sql.lexicon import PairLexicon
    from server.sql.mentions import ValueIndex
    from server.sql.prompt import Example
    from training.evaluation.sql_data import ANSWERABLE_FILES, DEFOG_FILES, _rows, split_statements

    defog = Path(args.defog_dir)
    by_db: dict[str, list[tuple[str, Example]]] = defaultdict(list)
    for split in ANSWERABLE_FILES:
        for row in _rows(defog / DEFOG_FILES[split]):
            gold = split_statements(row["query"])
            if gold:
                by_db[row["db_name"]].append((split, Example(row["question"].strip(), gold[0])))

    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 5)  # n, refused, refused with, own unvouched, own admitted
    foreign_seen = foreign_in = 0
    shown = 0
    for db, items in sorted(by_db.items()):
        values = ValueIndex.from_sqlite(defog / "sqlite" / f"{db}.sqlite")
        parsed = []
        for split, ex in items:
            try:
                tree = sqlglot.parse_one(ex.sql, read="sqlite")
            except sqlglot.errors.SqlglotError:
                tree = None
            parsed.append((split, ex, tree, {literal_key(lit): lit for lit, _ in compared_literals(tree)} if tree else {}))
        for i, (split, ex, tree, lits) in enumerate(parsed):
            if tree is None:
                continue
            others = [p[1] for j, p in enumerate(parsed) if j != i]
            lexicon = PairLexicon.learn(others, values, "sqlite")
            plain = Grounding.of(ex.question, values)
            implied = lexicon.implied(ex.question)
            rich = Grounding.of(ex.question, values, implied)
            unvouched = [k for k, lit in lits.items() if not plain.supports(lit)]
            t = totals[split]
            t[0] += 1
            t[1] += bool(unvouched)
            t[2] += any(not rich.supports(lits[k]) for k in unvouched)
            t[3] += len(unvouched)
            t[4] += sum(k in implied for k in unvouched)
            for k in unvouched:
                if k in implied and shown < args.show:
                    shown += 1
                    print(f"  own  {db}: {k} <- {lexicon.explain(k)[:3]} | {ex.question[:90]!r}")
            foreign = {}
            for j, (_, _, _, other_lits) in enumerate(parsed):
                if j != i:
                    foreign.update({k: lit for k, lit in other_lits.items() if k not in lits})
            for k, lit in foreign.items():
                if plain.supports(lit):
                    continue
                foreign_seen += 1
                if k in implied:
                    foreign_in += 1
                    if shown < args.show:
                        shown += 1
                        print(f"  FOREIGN {db}: {k} <- {lexicon.explain(k)[:3]} | {ex.question[:90]!r}")

    print(f"{'file':<16} {'n':>4} {'gold refused':>13} {'with lexicon':>13} {'own unvouched':>14} {'admitted':>9}")
    for split in ANSWERABLE_FILES:
        n, refused, refused_with, own, admitted = totals[split]
        print(f"{DEFOG_FILES[split]:<16.16} {n:>4} {refused:>13} {refused_with:>13} {own:>14} {admitted:>9}")
    n = sum(t[0] for t in totals.values())
    print(f"{'all':<16} {n:>4} {sum(t[1] for t in totals.values()):>13} {sum(t[2] for t in totals.values()):>13} "
          f"{sum(t[3] for t in totals.values()):>14} {sum(t[4] for t in totals.values()):>9}")
    print(f"foreign literals (other questions' gold values this one neither names nor uses): {foreign_in} of "
          f"{foreign_seen} let in by the lexicon ({100 * foreign_in / max(1, foreign_seen):.1f}%)")

    if args.sample:
        import json

        from server.sql.sample.paths import PAIRS_DIR, ensure_sample_database, default_sample_config, sample_sqlite_path

        ensure_sample_database([default_sample_config()])
        pairs = [Example(r["question"], r["sql"]) for r in map(json.loads, (PAIRS_DIR / "train.jsonl").open())]
        lexicon = PairLexicon.learn(pairs, ValueIndex.from_sqlite(sample_sqlite_path()), "sqlite")
        print(f"sample training pairs: {len(pairs)}, literals their questions do not vouch for: {len(lexicon)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
