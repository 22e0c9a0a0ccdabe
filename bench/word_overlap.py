"""A reference peer for Text-to-SQL accuracy: the "word-overlap template baseline" users compare
Hearth with, scored beside Hearth's own TemplateBaseline and its served template-first stage.

    .venv/bin/python -m bench.word_overlap [--splits sample,defog,defog_basic,defog_advanced,defog_loo]
                                           [--limit N] [--out report.json] [--no-instructions]

WordOverlapBaseline (the peer, no model): the training pair whose question shares the most words
with the new one (Jaccard of lower-cased word sets less stop words), its SQL with the literals
re-filled: a string literal compared with column c takes a stored value of c that the question
names (case-insensitive, whole words), a number literal in a comparison or a LIMIT takes the
question's numbers in order. A literal with nothing to take keeps the template's value. It always
answers.

Three answerers, on the same items and gold rows (training/evaluation/sql_data.py, scored by
training/evaluation/sql_summary.score, i.e. server/sql/compare.py):

  word_overlap  the peer above, on the same pairs the other two learn from;
  baseline      Hearth's TemplateBaseline exactly as training/evaluation/sql_accuracy.py
                `evaluate_baseline` runs it (make_baselines + ask_baseline);
  served        what POST /v1/sql's template-first stage answers without a model
                (server/services/text_to_sql.py SqlService.generate: the nearest
                `sql.template_shapes` shapes, those `complete`, cues.best_agreeing, then the first
                that passes validate_sql with Grounding and executes), in-process on the objects
                SqlService builds (SqlService.examples: load_examples + with_schema_templates +
                TemplateBaseline). A question none fits is "not answered": the model would write it.

Pools: sample: the train pairs; defog splits: sql_data.defog_pool (the other defog files, same
database); defog_loo: every defog question (questions_gen + instruct_basic + instruct_advanced),
the pool being every *other* defog question on the same database (questions compared case- and
space-insensitively). defog's data is read from ../shared at run time, never copied.

`--no-twins` takes out of every item's pool the pairs whose SQL is the item's gold query itself
(same text, whitespace aside). On the sample each of the 140 seen-shape test questions has such a
twin in train (the generator words one query several ways), so retrieval that finds the pair with
the same values is nearly an oracle there; users' questions mostly share a pair's shape, not its
values. Without twins a seen shape must be re-filled from a pair about other values, as it is for
them. `--splits sample_paraphrased` (hand-reworded test questions) with `--no-twins` is the dev
set that resembles users most; `sample_paraphrased_held` is reported, never tuned on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import sqlglot
from sqlglot import exp

# -- the peer -----------------------------------------------------------------------------------

STOP = frozenset("a an the of in on at for to by with and or is are was were be been what which who whom whose "
                 "how me show list give find all each from that this these those there their it its do does did "
                 "has have had i we you our my your please return".split())
_WORD = re.compile(r"[a-z0-9]+")
_NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_COMPARE = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.In, exp.Between)
_THROUGH = (exp.Paren, exp.Tuple, exp.Lower, exp.Upper, exp.Trim, exp.Cast, exp.Neg)
MAX_VALUE_CHARS, MAX_VALUES = 60, 5000


def word_set(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOP}


def sqlite_values(path: str | Path) -> dict[str, set[str]]:
    """{column name (lower case): its distinct short text values}, every table, read-only."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        out: dict[str, set[str]] = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            for _, col, *_ in conn.execute(f'PRAGMA table_info("{table}")'):
                rows = conn.execute(f'SELECT DISTINCT "{col}" FROM "{table}" WHERE typeof("{col}") = \'text\' '
                                    f'AND length("{col}") <= {MAX_VALUE_CHARS} LIMIT {MAX_VALUES}')
                found = {r[0] for r in rows if r[0] and r[0].strip()}
                out.setdefault(col.lower(), set()).update(found)  # every column named, values or not
        return out
    finally:
        conn.close()


def _column(literal: exp.Literal) -> str | None:
    """The column a literal is compared with (`city = 'X'`, `LOWER(c) LIKE '%x%'`, `c IN (...)`)."""
    node = literal.parent
    while isinstance(node, _THROUGH):
        node = node.parent
    if not isinstance(node, _COMPARE):
        return None
    col = next(node.find_all(exp.Column), None)
    return col.name.lower() if col is not None else None


class WordOverlapBaseline:
    """Nearest pair by word-set Jaccard; its SQL's literals re-filled from the question."""

    def __init__(self, pairs: Iterable, db_path_or_values: str | Path | Mapping[str, Iterable[str]] | None,
                 dialect: str = "sqlite"):
        self.pairs = [(p["question"], p["sql"]) if isinstance(p, Mapping) else (p[0], p[1]) if isinstance(p, tuple)
                      else (p.question, p.sql) for p in pairs]
        self.words = [word_set(q) for q, _ in self.pairs]
        if db_path_or_values is None or isinstance(db_path_or_values, Mapping):
            self.values = {c.lower(): set(v) for c, v in (db_path_or_values or {}).items()}
        else:
            self.values = sqlite_values(db_path_or_values)
        self.dialect = dialect

    def nearest(self, question: str) -> int:
        """Index of the pair with the highest Jaccard overlap (ties: the first)."""
        q = word_set(question)
        scores = [len(q & w) / (len(q | w) or 1) for w in self.words]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    def _mentioned(self, column: str, question: str) -> list[tuple[int, str]]:
        """(position, value) of `column`'s stored values the question names, longest first where they overlap."""
        text, found, taken = question.lower(), [], []
        for v in sorted(self.values.get(column, ()), key=len, reverse=True):
            for m in re.finditer(rf"(?<!\w){re.escape(v.lower())}(?!\w)", text):
                if not any(a < m.end() and m.start() < b for a, b in taken):
                    taken.append(m.span())
                    found.append((m.start(), v))
        return sorted(found)

    def answer(self, question: str) -> str:
        sql = self.pairs[self.nearest(question)][1]
        try:
            tree = sqlglot.parse_one(sql, read=self.dialect)
        except sqlglot.errors.SqlglotError:
            return sql
        if self.dialect in ("sqlite", "mysql"):
            # "BOSTON" is a string in SQLite's and MySQL's eyes when no column has that name
            # (classic text-to-SQL datasets quote values so); sqlglot reads it as a column.
            for col in list(tree.find_all(exp.Column)):
                if not col.table and col.this.quoted and col.name.lower() not in self.values:
                    col.replace(exp.Literal.string(col.name))
        numbers = [m.group() for m in _NUM.finditer(question)]
        used: set[tuple[int, str]] = set()
        memo: dict[str, str] = {}
        for lit in list(tree.find_all(exp.Literal)):
            if lit.is_string:
                core = lit.this.strip("%")
                col = _column(lit)
                if not core or col is None:
                    continue
                if core not in memo:
                    pick = next((m for m in self._mentioned(col, question) if m not in used), None)
                    if pick is None:
                        continue  # nothing named: the template's value stays
                    used.add(pick)
                    memo[core] = pick[1]
                new = lit.this.replace(core, memo[core])
                if new != lit.this:
                    lit.replace(exp.Literal.string(new))
            elif numbers and (_column(lit) is not None or isinstance(lit.parent, exp.Limit)):
                lit.replace(exp.Literal.number(numbers.pop(0)))
        return tree.sql(dialect=self.dialect)


# -- items and pools ----------------------------------------------------------------------------

LOO = "defog_loo"


def loo_items(defog_dir: Path, limit: int | None, instructions: bool) -> tuple[list, dict[str, list[dict]]]:
    """Every answerable defog question as split `defog_loo`, and {database name: every defog pair on
    it, in file order, each with its normalised question under "norm"}."""
    from training.evaluation.sql_data import ANSWERABLE_FILES, DEFOG_FILES, _limit, _norm, _rows, defog_items

    items, pools = [], {}
    for split in ANSWERABLE_FILES:
        rows = _rows(defog_dir / DEFOG_FILES[split])
        for row, item in zip(rows, defog_items(split, defog_dir, None, instructions)):
            db = row["db_name"]
            name = f"{LOO}.{db}"
            items.append(dataclasses.replace(item, split=LOO, database=name, id=f"{LOO}.{item.id}"))
            items[-1].norm = _norm(row["question"])
            if item.gold_sql:
                pools.setdefault(name, []).append({"question": row["question"].strip(), "sql": item.gold_sql[0],
                                                   "norm": _norm(row["question"])})
    return _limit(items, limit), pools


def load_items(splits: list[str], limit: int | None, defog_dir: Path, instructions: bool):
    from training.evaluation.sql_data import load_split, run_golds

    items, loo_pools = [], {}
    for split in splits:
        if split == LOO:
            more, loo_pools = loo_items(defog_dir, limit, instructions)
            items += more
        else:
            items += load_split(split, limit, defog_dir=defog_dir, instructions=instructions)
    run_golds(items)
    return items, loo_pools


def _sql_key(sql: str) -> str:
    return " ".join(str(sql).split()).rstrip(";").lower()


def twin_questions(item, pool: list[dict]) -> set[str]:
    """Questions of the pool's pairs whose SQL is one of the item's gold queries (--no-twins)."""
    golds = {_sql_key(g) for g in item.gold_sql}
    return {p["question"].strip() for p in pool if p.get("sql") and _sql_key(p["sql"]) in golds}


def pool_of(item, defog_dir: Path, loo_pools: dict) -> list[dict]:
    """The {question, sql} pairs the item's answerers learn from (as make_baselines reads them)."""
    from training.evaluation.sql_data import defog_pool
    from training.io import read_jsonl

    if item.split == LOO:
        return [p for p in loo_pools.get(item.database, []) if p["norm"] != item.norm]
    if item.config is not None:
        return [p for p in read_jsonl(item.config.examples_path)] if item.config.examples_path else []
    return defog_pool(item.split, item.database.split(".", 1)[1], defog_dir)


# -- the three answerers ------------------------------------------------------------------------

def _execute(runner, item, sql: str | None) -> dict:
    record = {"status": "no_examples", "sql": sql, "rows": None, "attempts": 1, "attempt_rules": [],
              "failed_rule": None, "error": None}
    if sql:
        try:
            record["rows"], record["status"] = runner.rows(item, sql, 10.0), "ok"
        except Exception as exc:  # noqa: BLE001 - a broken filled template is the answerer's error
            record["status"], record["error"] = "execution_error", str(exc)
    return record


class Served:
    """SqlService's template-first stage without a model, on the service's own objects."""

    def __init__(self, items, defog_dir: Path, tmp: Path, loo_pools: dict, sql: dict | None = None,
                 drop: Mapping[str, set[str]] | None = None):
        from server.services.text_to_sql import SqlService
        from server.settings import ServerSettings
        from training.evaluation.sql_data import GOLD_MAX_ROWS, database_configs, write_pools

        pools = write_pools([s for s in dict.fromkeys(i.split for i in items) if s != LOO], defog_dir, tmp)
        configs = database_configs([i for i in items if i.split != LOO], pools)
        self._loo_paths: dict[str, Path] = {}
        loo_files = {i.database: i.db_file for i in items if i.split == LOO}
        for name, db_file in loo_files.items():  # one full pool file per database; each item drops its own
            path = tmp / f"{name}.jsonl"
            path.write_text("".join(json.dumps({"question": p["question"], "sql": p["sql"]}) + "\n"
                                    for p in loo_pools.get(name, [])))
            configs.append({"name": name, "url": f"sqlite:///{Path(db_file).resolve()}",
                            "max_rows": GOLD_MAX_ROWS})
            self._loo_paths[name] = path
        self.service = SqlService(ServerSettings(databases=configs, sql=sql or {}))
        self.options = self.service.options
        self.loo_pools = loo_pools
        self._loo_cache: dict[str, tuple] = {}
        self.drop = drop or {}  # item id → questions of the pairs it must not see (--no-twins)

    def pairs_for(self, item, database, schema):
        if item.split != LOO:
            pairs = self.service.examples(database, schema)
            gone = self.drop.get(item.id)
            if not gone or pairs is None:
                return pairs
            from server.sql.baseline import TemplateBaseline

            kept = [ex for ex in pairs.examples if ex.question.strip() not in gone]
            return TemplateBaseline(kept, pairs.values, dialect=schema.dialect) if kept else None
        from server.sql.baseline import TemplateBaseline
        from server.sql.retrieval import load_examples
        from server.sql.synth import with_schema_templates

        if item.database not in self._loo_cache:  # what SqlService.examples builds, minus the item's own pairs
            examples = load_examples(self._loo_paths[item.database], schema.dialect, schema)
            values = self.service.values(database)
            synth = with_schema_templates([], schema, values) if self.options.schema_templates else []
            self._loo_cache[item.database] = (examples, synth, values)
        examples, synth, values = self._loo_cache[item.database]
        norms = [p["norm"] for p in self.loo_pools[item.database]]
        gone = self.drop.get(item.id, set())
        kept = [ex for ex, n in zip(examples, norms) if n != item.norm and ex.question.strip() not in gone] + synth
        return TemplateBaseline(kept, values, dialect=schema.dialect) if kept else None

    def answer(self, item) -> tuple[dict, dict]:
        """(record, trace): generate()'s template stage: server/services/sql_stages.py's own
        `answer_with_template` on an SqlRun built as SqlService._start builds it."""
        from server.protocol.sql import SqlRequest
        from server.services import sql_stages
        from server.sql.grounding import Grounding

        opts, question = self.options, item.question
        database = self.service.database(item.database)
        schema = database.schema()
        pairs = self.pairs_for(item, database, schema)
        searched = opts.template_shapes if opts.template_first else 0
        nearest = pairs.answers(question, max(1, searched)) if pairs else []
        templates = nearest[:searched]
        grounding = (Grounding.of(question, self.service.values(database), pairs.lexicon.implied(question) if pairs
                                  else frozenset()) if opts.grounded_literals else None)
        agreeing = sql_stages.template_candidates(templates, question, schema.dialect)
        run = sql_stages.SqlRun(req=SqlRequest(question=question, database=item.database), engine=None,
                                database=database, schema=schema, dialect=schema.dialect,
                                max_rows=self.service._max_rows(database, None), started=time.perf_counter(),
                                templates=templates, messages=[], shared="", grammar=None, grounding=grounding,
                                max_new_tokens=opts.max_new_tokens)
        asyncio.run(sql_stages.answer_with_template(self.service, run))
        attempts, final, result = run.attempts, run.final, run.result
        trace = {"nearest": [{"rank": r, "sql": a.sql, "neighbour": a.neighbour.question if a.neighbour else None,
                              "unfilled": a.unfilled, "unused": a.unused, "unused_words": a.unused_words,
                              "complete": a.complete} for r, a in enumerate(templates)],
                 "complete": [r for r, a in enumerate(templates) if a.complete],
                 "agreeing": [c.rank for c in agreeing],
                 "tried": [{"rank": a.rank, "stage": a.stage, "failed_rule": a.failed_rule, "error": a.error}
                           for a in attempts]}
        record = {"status": "not_answered", "sql": None, "rows": None, "attempts": len(attempts), "source": "none",
                  "attempt_rules": [a.failed_rule for a in attempts if a.failed_rule], "failed_rule": None,
                  "error": None}
        if final is not None:
            record |= {"status": "ok", "sql": final.sql, "source": "template", "rank": attempts[-1].rank,
                       "rows": result.rows if result is not None and not result.truncated else None}
        return record, trace

    def close(self) -> None:
        self.service.close()


def evaluate(items, loo_pools: dict, defog_dir: Path, progress: bool = False, sql: dict | None = None,
             no_twins: bool = False) -> dict:
    from server.sql.baseline import TemplateBaseline
    from server.sql.mentions import ValueIndex
    from server.sql.prompt import Example
    from training.evaluation.sql_accuracy import ask_baseline, evaluate_baseline
    from training.evaluation.sql_data import Runner
    from training.evaluation.sql_summary import score

    baseline: dict[str, dict] = {}  # item id → scored record
    drop = {i.id: twin_questions(i, pool_of(i, defog_dir, loo_pools)) for i in items} if no_twins else {}
    regular = [i for i in items if i.split != LOO and not drop.get(i.id)]
    if regular:  # exactly as `hearth eval` / bench/sql.py run it
        for run in evaluate_baseline(regular, defog_dir=defog_dir).values():
            baseline |= {r["id"]: r for r in run["records"]}
    runner, values, wo_values = Runner(), {}, {}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hearth-wo-") as tmp:
        served = Served(items, defog_dir, Path(tmp), loo_pools, sql, drop)
        try:
            for n, item in enumerate(items, 1):
                pool = [p for p in pool_of(item, defog_dir, loo_pools)
                        if p["question"].strip() not in drop.get(item.id, ())]
                if item.id not in baseline:  # make_baselines, for a pool that evaluate_baseline cannot name
                    index = values.setdefault(item.db_file, ValueIndex.from_sqlite(item.db_file))
                    examples = [Example(p["question"], p["sql"]) for p in pool if p.get("sql")]
                    tb = {item.database: TemplateBaseline(examples, index) if examples else None}
                    baseline[item.id] = score(item, ask_baseline(tb, item, runner))
                vals = wo_values.setdefault(item.db_file, sqlite_values(item.db_file))
                wo = WordOverlapBaseline([p for p in pool if p.get("sql")], vals) if pool else None
                t0 = time.perf_counter()
                wo_sql = wo.answer(item.question) if wo else None
                wo_rec = _execute(runner, item, wo_sql) | {"latency_ms": (time.perf_counter() - t0) * 1000}
                wo_rec["neighbour"] = wo.pairs[wo.nearest(item.question)][0] if wo else None
                t0 = time.perf_counter()
                sv_rec, trace = served.answer(item)
                sv_rec["latency_ms"] = (time.perf_counter() - t0) * 1000
                out[item.id] = {"item": item, "word_overlap": score(item, wo_rec), "baseline": baseline[item.id],
                                "served": score(item, sv_rec), "trace": trace}
                if progress and n % 25 == 0:
                    print(f"  {n}/{len(items)}", file=sys.stderr)
        finally:
            served.close()
            runner.close()
    return out


# -- the table and the diagnosis ----------------------------------------------------------------

def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}" if b else "    -"


def summary(results: dict, split: str) -> dict:
    rows = [r for r in results.values() if r["item"].split == split and "correct" in r["served"]
            and not r["served"]["gold_empty"]]
    n = len(rows)
    answered = [r for r in rows if r["served"]["status"] == "ok"]
    unanswered = [r for r in rows if r["served"]["status"] != "ok"]
    s = {"n": n, "n_items": sum(1 for r in results.values() if r["item"].split == split)}
    for key in ("word_overlap", "baseline", "served"):
        s[f"{key}_correct"] = sum(r[key]["correct"] for r in rows)
    s |= {"served_answered": len(answered), "served_answered_correct": sum(r["served"]["correct"] for r in answered),
          "unanswered": len(unanswered),
          "wo_correct_on_unanswered": sum(r["word_overlap"]["correct"] for r in unanswered),
          "wo_right_served_wrong": sum(r["word_overlap"]["correct"] and not r["served"]["correct"] for r in rows),
          "served_right_wo_wrong": sum(r["served"]["correct"] and not r["word_overlap"]["correct"] for r in rows)}
    for seen in (True, False):
        part = [r for r in rows if r["item"].seen_shape is seen]
        if part:
            s[f"seen_{seen}"] = {"n": len(part)} | {k: sum(r[k]["correct"] for r in part)
                                                     for k in ("word_overlap", "baseline", "served")}
    return s


def table(sums: dict[str, dict]) -> str:
    head = (f"{'split':15} {'n':>4} {'WO EX%':>7} {'TB EX%':>7} {'srv cov%':>8} {'srv EX%':>7} {'srv prec%':>9} "
            f"{'WO on unans%':>12}  seen/unseen EX% (WO | TB | served)")
    lines = [head, "-" * len(head)]
    for split, s in sums.items():
        n = s["n"]
        shapes = ""
        if "seen_True" in s:
            shapes = "  ".join(f"{'seen' if seen else 'unseen'}({s[f'seen_{seen}']['n']}): "
                               + " | ".join(_pct(s[f"seen_{seen}"][k], s[f"seen_{seen}"]["n"]).strip()
                                            for k in ("word_overlap", "baseline", "served"))
                               for seen in (True, False) if f"seen_{seen}" in s)
        lines.append(f"{split:15} {n:4d} {_pct(s['word_overlap_correct'], n):>7} {_pct(s['baseline_correct'], n):>7} "
                     f"{_pct(s['served_answered'], n):>8} {_pct(s['served_correct'], n):>7} "
                     f"{_pct(s['served_answered_correct'], s['served_answered']):>9} "
                     f"{_pct(s['wo_correct_on_unanswered'], s['unanswered']):>12}  {shapes}")
    return "\n".join(lines)


def diagnose(r: dict, runner, dialect: str = "sqlite") -> dict:
    """Why the served stage missed a question the word-overlap peer got right: which of the
    searched templates would have been right, and what stopped it."""
    from server.sql.canonical import sql_skeleton
    from server.sql.compare import compare_to_gold

    item, trace, sv = r["item"], r["trace"], r["served"]
    right = []
    for cand in trace["nearest"]:
        try:
            rows = runner.rows(item, cand["sql"], 10.0)
        except Exception:  # noqa: BLE001
            continue
        if compare_to_gold(rows, item.golds).correct:
            right.append(cand["rank"])
    wo_shape = None
    try:
        wo_shape = sql_skeleton(r["word_overlap"]["sql"], dialect)
    except Exception:  # noqa: BLE001
        pass
    shapes = []
    for cand in trace["nearest"]:
        try:
            shapes.append(sql_skeleton(cand["sql"], dialect))
        except Exception:  # noqa: BLE001
            shapes.append(None)
    if sv["status"] == "ok":
        reason = "answered_wrong"
    elif not trace["nearest"]:
        reason = "no_templates"
    elif not trace["complete"]:
        reason = "none_complete"
    else:
        rules = {t["failed_rule"] or t["stage"] for t in trace["tried"]}
        reason = "all_tried_rejected:" + ",".join(sorted(rules))
    verdicts = {}
    for rank in right:
        c = trace["nearest"][rank]
        if not c["complete"]:
            verdicts[rank] = f"not complete (unfilled={c['unfilled']} unused={c['unused']} words={c['unused_words']})"
        elif rank not in trace["agreeing"]:
            verdicts[rank] = "dropped by best_agreeing"
        else:
            t = next((t for t in trace["tried"] if t["rank"] == rank), None)
            verdicts[rank] = f"tried: {t['failed_rule'] or t['stage']}" if t else "not tried (an earlier one answered)"
    return {"reason": reason, "right_ranks": right, "why_not_right": verdicts,
            "wo_shape_rank": shapes.index(wo_shape) if wo_shape in shapes else None}


def main(argv: list[str] | None = None) -> int:
    from training.evaluation.sql_data import DEFOG_DIR, Runner

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default="sample,defog,defog_basic,defog_advanced",
                    type=lambda s: [x.strip() for x in s.split(",") if x.strip()])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--defog-dir", type=Path, default=DEFOG_DIR)
    ap.add_argument("--no-instructions", action="store_true", help="send defog questions without their instructions")
    ap.add_argument("--out", type=Path, default=None, help="JSON report: summaries and every item's records")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--no-twins", action="store_true",
                    help="take each item's twins (pairs with its very gold SQL) out of every answerer's pool")
    ap.add_argument("--sql-setting", dest="sql_settings", action="append", default=[], metavar="KEY=VALUE",
                    help="a `sql:` setting of the served stage (server/sql/settings.py SqlSettings), for ablations, "
                         "e.g. --sql-setting schema_templates=false (repeatable)")
    args = ap.parse_args(argv)

    items, loo_pools = load_items(args.splits, args.limit, args.defog_dir, not args.no_instructions)
    print(f"{len(items)} items; {sum(i.gold_errors for i in items)} gold variants failed to run", file=sys.stderr)
    from training.evaluation.cli import parse_assignments

    sql = parse_assignments(args.sql_settings, "--sql-setting")
    results = evaluate(items, loo_pools, args.defog_dir, args.progress, sql, args.no_twins)
    sums = {split: summary(results, split) for split in dict.fromkeys(i.split for i in items)}
    print(table(sums))
    runner = Runner()
    try:
        misses = {iid: diagnose(r, runner) for iid, r in results.items()
                  if r["word_overlap"].get("correct") and not r["served"].get("correct")
                  and not r["served"].get("gold_empty")}
    finally:
        runner.close()
    for split in sums:
        reasons: dict[str, int] = {}
        for iid, d in misses.items():
            if results[iid]["item"].split == split:
                reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        if reasons:
            print(f"{split}: word-overlap right, served not: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    if args.out:
        report = {"meta": {"command": " ".join(sys.argv), "splits": args.splits, "limit": args.limit,
                           "instructions": not args.no_instructions, "sql": sql,
                           "no_twins": args.no_twins}, "summary": sums, "items": {}}
        for iid, r in results.items():
            report["items"][iid] = {"split": r["item"].split, "question": r["item"].question,
                                    "gold": r["item"].gold_sql[:1], "seen_shape": r["item"].seen_shape,
                                    "word_overlap": r["word_overlap"], "baseline": r["baseline"],
                                    "served": r["served"], "trace": r["trace"], "diagnosis": misses.get(iid)}
        args.out.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
