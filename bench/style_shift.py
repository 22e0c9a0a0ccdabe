"""The sample in the style of the classic Text-to-SQL datasets (ATIS, GeoQuery, Advising, Scholar),
and Hearth's figures on it next to the sample's own.

    .venv/bin/python -m bench.style_shift [--out-dir var/style_shift] [--limit N] [--no-measure]
                                          [--no-spelling] [--report report.json]

Users' databases often look like those datasets: UPPER_CASE tables and columns, values stored upper
case ('BOSTON') while questions say "Boston", and pairs written as

    SELECT DISTINCT CITYalias0.CITY_NAME FROM CITY AS CITYalias0, STATE AS STATEalias0
    WHERE CITYalias0.STATE_CODE = STATEalias0.STATE_CODE AND STATEalias0.STATE_NAME = "TEXAS"

(every table aliased `<TABLE>alias<N>`, comma joins with the join condition in WHERE, string
literals double-quoted, which SQLite reads as strings when they name no column). Hearth should not
care. This script:

  1. copies the sample SQLite database (server/sql/sample) with every table and column renamed to
     UPPER_CASE and the text values of its code-like columns upper-cased (`is_code_column`: a
     short text column: declared VARCHAR(n) with n <= 40, or undeclared length with every value
     at most 40 characters; never dates or e-mail addresses). Cities, countries, statuses,
     categories, first/last names, carriers go upper case; company, product, supplier and contact
     names and descriptions keep their case, so both kinds are exercised;
  2. rewrites the sample's pairs in that style (`StyleRewriter`, on sqlglot's AST): upper-case
     identifiers, every table (and CTE reference) aliased `<TABLE>alias<N>`, a derived table
     `DERIVED_TABLEalias<N>`, inner joins as comma joins with their ON in WHERE, string literals
     double-quoted and upper-cased where they are compared with a code-like column;
  3. checks that every rewritten gold query runs on the copy and returns the original pair's rows
     on the original database (text compared case-insensitively, the order where the gold orders);
  4. measures, as bench/word_overlap.py does (its WordOverlapBaseline, TemplateBaseline through
     training/evaluation's make_baselines, and its replica of the served template stage), the
     shifted test split with the shifted train pairs as the pool, next to the original sample;
  5. the train/serve spelling check: for every shifted train pair, `canonical_sql(sql, "sqlite",
     schema)` (what training teaches) must return the gold rows, be accepted by the serving grammar
     (llama.cpp's own grammar sampler, bench/grammar_fit.py), be spelled in the schema's own case
     and fit sql.max_new_tokens (token counts with the embedded model's tokenizer).

Exit status 1 when a gold check or a spelling check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIFTED = "sample_upper"  # the shifted split's and database's name
CODE_MAX_CHARS = 40
_LENGTH = re.compile(r"char\s*\(\s*(\d+)\s*\)", re.I)
_DATE_TYPE = re.compile(r"date|time", re.I)
_TEXT_TYPE = re.compile(r"char|text|clob|string", re.I)


# -- 1. the database --------------------------------------------------------------------------

def is_code_column(declared: str, values: Iterable) -> bool:
    """A short text column whose values a classic dataset would store upper case."""
    if _DATE_TYPE.search(declared or "") or (declared and not _TEXT_TYPE.search(declared)):
        return False
    texts = [v for v in values if isinstance(v, str)]
    if not texts or any("@" in v for v in texts):
        return False
    length = _LENGTH.search(declared or "")
    if length:
        return int(length.group(1)) <= CODE_MAX_CHARS
    return max(len(v) for v in texts) <= CODE_MAX_CHARS


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_database(src: Path, dst: Path) -> dict[str, set[str]]:
    """Write the upper-case copy of `src` to `dst`; {table (lower): its code-like columns (lower)}."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{src.resolve()}?mode=ro", uri=True)
    target = sqlite3.connect(tmp)
    code: dict[str, set[str]] = {}
    try:
        tables = [r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        for table in tables:
            cols = source.execute(f"PRAGMA table_info({_q(table)})").fetchall()
            fks = source.execute(f"PRAGMA foreign_key_list({_q(table)})").fetchall()
            parts = []
            for _, name, declared, notnull, _default, pk in cols:
                parts.append(f"{name.upper()} {declared}{' NOT NULL' if notnull else ''}"
                             f"{' PRIMARY KEY' if pk == 1 and sum(c[5] > 0 for c in cols) == 1 else ''}")
            for fk in fks:  # (id, seq, table, from, to, ...)
                parts.append(f"FOREIGN KEY ({fk[3].upper()}) REFERENCES {fk[2].upper()} ({fk[4].upper()})")
            target.execute(f"CREATE TABLE {table.upper()} (\n    " + ",\n    ".join(parts) + "\n)")
            upper = []
            for i, (_, name, declared, *_rest) in enumerate(cols):
                values = [r[0] for r in source.execute(f"SELECT DISTINCT {_q(name)} FROM {_q(table)}")]
                if is_code_column(declared, values):
                    upper.append(i)
                    code.setdefault(table.lower(), set()).add(name.lower())
            rows = source.execute(f"SELECT * FROM {_q(table)}").fetchall()
            rows = [tuple(v.upper() if i in upper and isinstance(v, str) else v for i, v in enumerate(row))
                    for row in rows]
            target.executemany(f"INSERT INTO {table.upper()} VALUES ({', '.join('?' * len(cols))})", rows)
        for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"):
            target.execute(sql.upper())
        target.commit()
    finally:
        source.close()
        target.close()
    tmp.replace(dst)
    return code


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    """{table: [columns]} as the file spells them."""
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({_q(t)})")] for t in tables}
    finally:
        conn.close()


# -- 2. the pairs -------------------------------------------------------------------------------

_THROUGH = (exp.Paren, exp.Tuple, exp.In, exp.Between)
_COMPARE = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.In, exp.Between)


class StyleRewriter:
    """A lower-case pair's SQL in the classic datasets' style, on the upper-case copy."""

    def __init__(self, columns: dict[str, list[str]], code: dict[str, set[str]], comma_joins: bool = True,
                 double_quotes: bool = True):
        self.columns = {t.lower(): {c.lower() for c in cols} for t, cols in columns.items()}
        self.names = {c for cols in self.columns.values() for c in cols} | set(self.columns)
        self.code = code
        self.comma_joins = comma_joins
        self.double_quotes = double_quotes

    def rewrite(self, sql: str) -> str:
        tree = sqlglot.parse_one(sql, read="sqlite")
        scopes = traverse_scope(tree)
        self._qualify(scopes)
        self._literals(tree, scopes)
        self._aliases(tree, scopes)
        self._upper(tree)
        if self.comma_joins:
            for select in list(tree.find_all(exp.Select)):
                _comma_joins(select)
        if self.double_quotes:
            self._double_quote(tree)
        return tree.sql(dialect="sqlite")

    # every column qualified with its source, as the classic datasets write them
    def _source_columns(self, source) -> set[str]:
        if isinstance(source, exp.Table):
            return self.columns.get(source.name.lower(), set())
        if isinstance(source, Scope):
            return {s.lower() for s in source.expression.named_selects}
        return set()

    def _qualify(self, scopes: list[Scope]) -> None:
        for scope in scopes:
            select = scope.expression
            outputs = {s.lower() for s in select.named_selects} if isinstance(select, exp.Select) else set()
            for column in scope.columns:
                if column.table or isinstance(column.this, exp.Star):
                    continue
                name = column.name.lower()
                # an output alias named in ORDER BY / GROUP BY / HAVING refers to the alias
                if name in outputs and column.find_ancestor(exp.Order, exp.Group, exp.Having) is not None:
                    continue
                owners = [alias for alias, source in scope.sources.items()
                          if name in self._source_columns(source)]
                if len(owners) == 1:
                    column.set("table", exp.to_identifier(owners[0]))

    def _table_of(self, column: exp.Column, scope: Scope) -> str | None:
        """The table (lower case) a qualified column reads, through the enclosing scopes."""
        while scope is not None:
            source = scope.sources.get(column.table)
            if isinstance(source, exp.Table):
                return source.name.lower()
            if source is not None:
                return None
            scope = scope.parent
        return None

    def _is_code(self, column: exp.Column, scope: Scope) -> bool:
        table = self._table_of(column, scope) if column.table else None
        if table is not None:
            return column.name.lower() in self.code.get(table, set())
        return any(column.name.lower() in cols for cols in self.code.values())

    def _literals(self, tree: exp.Expression, scopes: list[Scope]) -> None:
        """Upper-case a string compared directly with a code-like column (`city = 'Boston'`,
        `status IN ('shipped', ...)`, `carrier LIKE 'DHL%'`); not through a function."""
        scope_of = {id(s.expression): s for s in scopes}
        for literal in list(tree.find_all(exp.Literal)):
            if not literal.is_string:
                continue
            node = literal.parent
            while isinstance(node, _THROUGH) and not isinstance(node, _COMPARE):
                node = node.parent
            if not isinstance(node, _COMPARE):
                continue
            column = node.this if isinstance(node.this, exp.Column) else node.args.get("expression")
            if not isinstance(column, exp.Column):
                continue
            select = literal.find_ancestor(exp.Select)
            scope = scope_of.get(id(select))
            if scope is not None and self._is_code(column, scope):
                literal.replace(exp.Literal.string(literal.this.upper()))

    def _aliases(self, tree: exp.Expression, scopes: list[Scope]) -> None:
        counters: Counter = Counter()
        renames: dict[int, dict[str, str]] = {}
        for scope in scopes:
            names: dict[str, str] = {}
            for alias, (node, _source) in scope.selected_sources.items():
                if isinstance(node, exp.Table):
                    base = node.name.upper()
                elif isinstance(node, exp.Subquery):
                    base = "DERIVED_TABLE"
                else:
                    continue
                new = f"{base}alias{counters[base]}"
                counters[base] += 1
                old_alias = node.args.get("alias")
                node.set("alias", exp.TableAlias(this=exp.to_identifier(new),
                                                 columns=old_alias.args.get("columns") if old_alias else None))
                names[alias] = new
            renames[id(scope)] = names
        for scope in scopes:
            for column in scope.columns:
                if not column.table:
                    continue
                s = scope
                while s is not None and column.table not in renames.get(id(s), {}):
                    s = s.parent
                if s is not None:
                    column.set("table", exp.to_identifier(renames[id(s)][column.table]))

    @staticmethod
    def _upper(tree: exp.Expression) -> None:
        for node in tree.find_all(exp.Table):
            node.set("this", exp.to_identifier(node.name.upper()))
        for cte in tree.find_all(exp.CTE):
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(cte.alias.upper())))
        for column in tree.find_all(exp.Column):
            if isinstance(column.this, exp.Identifier):
                column.set("this", exp.to_identifier(column.name.upper()))
        for alias in tree.find_all(exp.Alias):
            if alias.alias:
                alias.set("alias", exp.to_identifier(alias.alias.upper()))

    def _double_quote(self, tree: exp.Expression) -> None:
        """'X' → "X" (a string to SQLite while it names no column or alias), where safe."""
        taken = self.names | {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
        for literal in list(tree.find_all(exp.Literal)):
            text = literal.this
            if (not literal.is_string or not text or '"' in text or text.lower() in taken
                    or literal.find_ancestor(exp.Select) is None):
                continue
            literal.replace(exp.column(exp.to_identifier(text, quoted=True)))


def _comma_joins(select: exp.Select) -> None:
    """`FROM a JOIN b ON c WHERE w` → `FROM a, b WHERE c AND w`, when every join is an inner one."""
    joins = select.args.get("joins") or []
    if not joins or any(j.side or (j.kind and j.kind.upper() not in ("INNER",)) or j.args.get("using")
                        or not j.args.get("on") for j in joins):
        return
    conditions = []
    for join in joins:
        conditions.append(join.args["on"])
        join.set("on", None)
        join.set("kind", None)
    where = select.args.get("where")
    if where is not None:
        conditions.append(where.this)
    select.set("where", exp.Where(this=exp.and_(*conditions)))


# -- 3. the gold check --------------------------------------------------------------------------

def _folded(rows: list[tuple]) -> list[tuple]:
    return [tuple(v.casefold() if isinstance(v, str) else v for v in row) for row in rows]


def same_rows(a: list[tuple], b: list[tuple], ordered: bool) -> bool:
    """Text compared case-insensitively (the copy stores some values upper case)."""
    from server.sql.compare import same_result

    return same_result(_folded(a), _folded(b), ordered=ordered, rel_tol=1e-9, abs_tol=1e-9)


@dataclass
class Shifted:
    pairs: dict[str, list[dict]]           # split → rewritten pairs
    failures: list[dict] = field(default_factory=list)


def shift_pairs(original_db: Path, shifted_db: Path, code: dict[str, set[str]], pairs_dir: Path,
                out_dir: Path) -> Shifted:
    from server.sql.compare import is_ordered

    rewriter = StyleRewriter(sqlite_columns(original_db), code)
    src = sqlite3.connect(f"file:{original_db.resolve()}?mode=ro", uri=True)
    dst = sqlite3.connect(f"file:{shifted_db.resolve()}?mode=ro", uri=True)
    out = Shifted({})
    try:
        for split in ("train", "test"):
            rows = [json.loads(line) for line in (pairs_dir / f"{split}.jsonl").read_text().splitlines() if line]
            shifted = []
            for row in rows:
                sql = rewriter.rewrite(row["sql"])
                try:
                    ok = same_rows(dst.execute(sql).fetchall(), src.execute(row["sql"]).fetchall(),
                                   is_ordered(row["sql"]))
                    error = None if ok else "different rows"
                except sqlite3.Error as exc:
                    ok, error = False, str(exc)
                if not ok:
                    out.failures.append({"split": split, "id": row.get("id"), "sql": row["sql"], "shifted": sql,
                                         "error": error})
                shifted.append(row | {"sql": sql, "database": SHIFTED, "original_sql": row["sql"]})
            out.pairs[split] = shifted
            (out_dir / f"{split}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in shifted))
    finally:
        src.close()
        dst.close()
    return out


# -- 4. the figures -----------------------------------------------------------------------------

def _split(label: str, name: str, db: Path, pool: Path, test_rows: list[dict], out_dir: Path, limit: int | None):
    """Items of `test_rows` on database `name` (the SQLite file `db`, example pool `pool`), as split `label`."""
    from server.sql.settings import DatabaseConfig
    from training.evaluation.sql_data import pairs_items, run_golds

    config = DatabaseConfig(name=name, url=f"sqlite:///{db.resolve()}", examples_path=str(pool.resolve()))
    path = out_dir / f"{name}.test.jsonl"
    path.write_text("".join(json.dumps(r | {"database": name}) + "\n" for r in test_rows))
    items = pairs_items(path, {name: config}, label, limit)
    for item in items:  # results are keyed by id: each split's own
        item.id = f"{label}.{item.id}"
    run_golds(items)
    return items


def canonical_pool(pairs: list[dict], db: Path, name: str, path: Path) -> Path:
    """`pairs` as serving loads them (server/sql/retrieval.py load_examples: canonical_sql with the
    live schema), written to `path`."""
    from server.sql.canonical import canonical_sql

    schema = _schema(db, name)
    path.write_text("".join(json.dumps({"question": p["question"], "sql": canonical_sql(p["sql"], "sqlite", schema)})
                            + "\n" for p in pairs))
    return path


def measure(original_db: Path, shifted_db: Path, shifted: Shifted, out_dir: Path, limit: int | None,
            served_pools: bool) -> tuple[dict, dict]:
    """bench/word_overlap.py's three answerers on the sample's test split (exactly its `sample`
    split), on the shifted one, and with `served_pools` on both again with the pools loaded as
    serving loads them (what TemplateBaseline and the peer would see if they read pairs so)."""
    from bench.word_overlap import evaluate, load_items, summary
    from server.sql.sample.location import PAIRS_DIR
    from training.evaluation.sql_data import DEFOG_DIR

    items, _ = load_items(["sample"], limit, DEFOG_DIR, True)
    items += _split(SHIFTED, SHIFTED, shifted_db, out_dir / "train.jsonl", shifted.pairs["test"], out_dir, limit)
    if served_pools:
        original = [json.loads(x) for x in (PAIRS_DIR / "train.jsonl").read_text().splitlines() if x]
        test = [json.loads(x) for x in (PAIRS_DIR / "test.jsonl").read_text().splitlines() if x]
        pool = canonical_pool(original, original_db, "sample", out_dir / "sample.canonical.train.jsonl")
        items += _split("sample*", "sample_canonical", original_db, pool, test, out_dir, limit)
        pool = canonical_pool(shifted.pairs["train"], shifted_db, SHIFTED, out_dir / f"{SHIFTED}.canonical.train.jsonl")
        items += _split(f"{SHIFTED}*", f"{SHIFTED}_canonical", shifted_db, pool, shifted.pairs["test"], out_dir, limit)
    results = evaluate(items, {}, DEFOG_DIR)
    return {split: summary(results, split) for split in dict.fromkeys(i.split for i in items)}, results


def _schema(db: Path, name: str):
    from server.sql.connections import Database
    from server.sql.settings import DatabaseConfig

    database = Database(DatabaseConfig(name=name, url=f"sqlite:///{db.resolve()}"))
    try:
        return database.schema()
    finally:
        database.dispose()


def canonical_parity(shifted: Shifted, original_db: Path, shifted_db: Path) -> list[dict]:
    """Pairs whose canonical form differs between the styles (compared upper-cased: the copy's
    names and some values are upper case): a style Hearth is not indifferent to."""
    from server.sql.canonical import canonical_sql

    schemas = (_schema(original_db, "sample"), _schema(shifted_db, SHIFTED))
    out = []
    for pair in shifted.pairs["train"] + shifted.pairs["test"]:
        a = canonical_sql(pair["original_sql"], "sqlite", schemas[0])
        b = canonical_sql(pair["sql"], "sqlite", schemas[1])
        if a.upper() != b.upper():
            out.append({"id": pair.get("id"), "original": a, "shifted": b})
    return out


# -- 5. the train/serve spelling check ------------------------------------------------------------

def spelling_problems(sql: str, schema) -> list[str]:
    """Names not spelled as the schema spells them, and double-quoted strings left as names."""
    tables = {t.name.lower(): t.name for t in schema.tables}
    columns = {c.name.lower(): c.name for t in schema.tables for c in t.columns}
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    for table in tree.find_all(exp.Table):
        known = tables.get(table.name.lower())
        if known is not None and table.name != known:
            problems.append(f"table {table.name} (schema: {known})")
    for column in tree.find_all(exp.Column):
        if not isinstance(column.this, exp.Identifier):
            continue
        known = columns.get(column.name.lower())
        if known is not None and column.name != known:
            problems.append(f"column {column.name} (schema: {known})")
        if column.this.quoted and known is None:
            problems.append(f'double-quoted name "{column.name}" is no column')
    return problems


def spelling_check(pairs: list[dict], db: Path, name: str, engine) -> dict:
    from bench.grammar_fit import grammar_prefix
    from server.sql.canonical import canonical_sql
    from server.sql.compare import is_ordered
    from server.sql.grammar import sql_grammar

    schema = _schema(db, name)
    grammar = sql_grammar(schema)
    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    out = {"n": len(pairs), "rows_differ": [], "grammar_refused": [], "spelling": [], "tokens": []}
    try:
        for pair in pairs:
            canonical = canonical_sql(pair["sql"], "sqlite", schema)
            try:
                same = same_rows(conn.execute(canonical).fetchall(), conn.execute(pair["sql"]).fetchall(),
                                 is_ordered(pair["sql"]))
            except sqlite3.Error as exc:
                same = False
                canonical += f"  -- {exc}"
            if not same:
                out["rows_differ"].append({"sql": pair["sql"], "canonical": canonical})
            stop = grammar_prefix(engine, canonical, grammar)
            if stop is not None:
                out["grammar_refused"].append({"canonical": canonical, "refused_after": stop[-60:]})
            problems = spelling_problems(canonical, schema)
            if problems:
                out["spelling"].append({"canonical": canonical, "problems": problems})
            out["tokens"].append(len(engine.tokenize(canonical, add_special=False, parse_special=False)))
    finally:
        conn.close()
    return out


def _token_line(tokens: list[int], budget: int) -> str:
    s = sorted(tokens)
    pct = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731
    return (f"tokens: median {pct(0.5)}, p90 {pct(0.9)}, p99 {pct(0.99)}, max {s[-1]}; "
            f"over max_new_tokens {budget}: {sum(t > budget for t in s)}")


# -- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from server.settings import ServerSettings
    from server.sql.sample.location import PAIRS_DIR
    from server.sql.sample.paths import ensure_sample_database, sample_sqlite_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "var" / "style_shift")
    ap.add_argument("--limit", type=int, default=None, help="test items per split in the measurement")
    ap.add_argument("--no-measure", action="store_true")
    ap.add_argument("--no-spelling", action="store_true")
    ap.add_argument("--served-pools", action="store_true",
                    help="measure both splits again with their pools loaded as serving loads them (canonical)")
    ap.add_argument("--report", type=Path, default=None, help="JSON report: failures, figures, every item")
    args = ap.parse_args(argv)

    ensure_sample_database(ServerSettings().databases)
    original_db = sample_sqlite_path()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    shifted_db = args.out_dir / f"{SHIFTED}.sqlite"
    code = build_database(original_db, shifted_db)
    print("code-like columns upper-cased: " + ", ".join(f"{t}.{c}" for t in sorted(code) for c in sorted(code[t])))
    shifted = shift_pairs(original_db, shifted_db, code, PAIRS_DIR, args.out_dir)
    n = sum(len(p) for p in shifted.pairs.values())
    print(f"gold check: {n - len(shifted.failures)}/{n} rewritten gold queries return the original rows")
    for f in shifted.failures[:10]:
        print(f"  {f['id']}: {f['error']}\n    {f['shifted']}")
    example = next((p for p in shifted.pairs["train"] if " JOIN " in p["original_sql"]), shifted.pairs["train"][0])
    print(f"e.g. {example['original_sql']}\n  →  {example['sql']}")
    report: dict = {"gold_failures": shifted.failures}
    status = 1 if shifted.failures else 0
    parity = canonical_parity(shifted, original_db, shifted_db)
    print(f"canonical form: {n - len(parity)}/{n} shifted pairs canonicalise to the original pair's form "
          "(compared upper-cased)")
    for d in parity[:3]:
        print(f"  {d['id']}:\n    {d['original']}\n    {d['shifted']}")
    report["canonical_differs"] = parity

    if not args.no_measure:
        from bench.word_overlap import table

        t0 = time.perf_counter()
        sums, results = measure(original_db, shifted_db, shifted, args.out_dir, args.limit, args.served_pools)
        print(table(sums))
        if args.served_pools:
            print("* the same, the pools loaded as serving loads them (canonical_sql with the live schema)")
        print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        report["summary"] = sums
        report["items"] = {iid: {"split": r["item"].split, "question": r["item"].question,
                                 "gold": r["item"].gold_sql[:1], "word_overlap": r["word_overlap"],
                                 "baseline": r["baseline"], "served": r["served"], "trace": r["trace"]}
                           for iid, r in results.items()}

    if not args.no_spelling:
        from server.engine.llama_engine import LlamaEngine
        from server.settings import ServerSettings as Settings
        from server.settings import embedded_model_path

        budget = Settings().sql.max_new_tokens
        engine = LlamaEngine("vocab", embedded_model_path(), n_ctx=256, n_slots=1, n_threads=1)
        try:
            report["spelling"] = {}
            for label, pairs, db in (("sample", [json.loads(x) for x in (PAIRS_DIR / "train.jsonl").read_text()
                                                 .splitlines() if x], original_db),
                                     (SHIFTED, shifted.pairs["train"], shifted_db)):
                check = spelling_check(pairs, db, label, engine)
                report["spelling"][label] = check
                print(f"{label} train, canonical form: {check['n'] - len(check['rows_differ'])}/{check['n']} same rows, "
                      f"{check['n'] - len(check['grammar_refused'])}/{check['n']} accepted by the grammar, "
                      f"{check['n'] - len(check['spelling'])}/{check['n']} in the schema's spelling; "
                      + _token_line(check["tokens"], budget))
                for kind in ("rows_differ", "grammar_refused", "spelling"):
                    for bad in check[kind][:3]:
                        print(f"  {kind}: {bad}")
                if check["rows_differ"] or check["grammar_refused"] or check["spelling"] \
                        or max(check["tokens"]) > budget:
                    status = 1
        finally:
            engine.close()
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.report}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
