"""Text-to-SQL evaluation items: questions, the database each runs on, gold SQL variants and their rows.

Any set of pairs works: a JSONL of {question, sql, database} lines (plus optional id, category,
seen_shape; `sql` may be a list of acceptable variants, or null/empty for a question the schema
cannot answer) and the `databases:` entries of a Hearth settings file. Ready-made splits:

  sample          the embedded sample's test split (server/sql/sample/pairs/test.jsonl); few-shot
                  examples and baseline index from its train split; `seen_shape` per item
  sample_paraphrased       the same questions (same gold SQL, same database) reworded by hand the
                  way people type them, not by the sample's question generator
                  (server/sql/sample/paraphrased.jsonl), its `dev` part: what changes are judged on
  sample_paraphrased_held  its `held` part (about a third, by a hash of the id): reported, never
                  tuned on
  defog           ../shared/data/defog/questions_gen_sqlite.csv (gold variants split on ';')
  defog_basic     instruct_basic_sqlite.csv
  defog_advanced  instruct_advanced_sqlite.csv
  defog_idk       idk.csv: unanswerable questions; the score is the refusal rate

defog's data is a development benchmark read from ../shared at run time, never copied into the
project. Few-shot examples for a defog split come from the *other* defog question files on the
same database (questions compared case- and space-insensitively, and none is shared), so no
evaluated question is ever its own example. The five databases that only questions_gen covers
(academic, advising, atis, scholar, yelp) therefore have no examples in the `defog` split; in
`defog_idk` they get questions_gen's pairs. Each split is its own server database entry
("<split>.<db>") because its example pool differs.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from server.sql.compare import Gold, is_ordered, split_statements
from server.sql.settings import DatabaseConfig, parse_url

ROOT = Path(__file__).resolve().parents[2]
DEFOG_DIR = ROOT.parent / "shared" / "data" / "defog"
DEFOG_FILES = {
    "defog": "questions_gen_sqlite.csv",
    "defog_basic": "instruct_basic_sqlite.csv",
    "defog_advanced": "instruct_advanced_sqlite.csv",
    "defog_idk": "idk.csv",
}
ANSWERABLE_FILES = ("defog", "defog_basic", "defog_advanced")  # the pools few-shot examples come from
PARAPHRASED = {"sample_paraphrased": "dev", "sample_paraphrased_held": "held"}  # split -> part of the file
ALL_SPLITS = ("sample", *PARAPHRASED, *DEFOG_FILES)
GOLD_TIMEOUT_S = 30.0
GOLD_MAX_ROWS = 10_000  # well above any gold result here; a truncated prediction cannot match anyway


@dataclass
class Item:
    split: str
    id: str
    database: str  # the server's name for it
    db_file: Path | None  # the SQLite file, read directly (None: another engine, through `config`)
    question: str  # as sent (defog: with its instructions appended)
    gold_sql: list[str]  # acceptable variants; empty for unanswerable questions
    category: str
    seen_shape: bool | None = None  # sample (and pairs files that say so) only
    golds: list[Gold] = field(default_factory=list)  # filled by run_golds()
    gold_errors: int = 0
    config: DatabaseConfig | None = None  # the server's entry; None for defog (built with its pool)

    @property
    def answerable(self) -> bool:
        return bool(self.gold_sql)


def _norm(question: str) -> str:
    return " ".join(question.lower().split())


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sqlite_file(config: DatabaseConfig) -> Path | None:
    return Path(parse_url(config.url).database).expanduser().resolve() if config.dialect == "sqlite" else None


def load_databases(path: str | Path) -> dict[str, DatabaseConfig]:
    """The `databases:` list of a Hearth settings YAML (or a bare list) → {name: config}."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entries = data.get("databases") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a `databases:` list of Hearth database entries")
    configs = [DatabaseConfig(**e) for e in entries]
    return {c.name: c for c in configs}


def pairs_items(path: str | Path, databases: dict[str, DatabaseConfig], split: str | None = None,
                limit: int | None = None) -> list[Item]:
    """Items from a pairs JSONL; every line's `database` must be one of `databases`."""
    from training.io import read_jsonl

    split = split or Path(path).stem
    items = []
    for i, row in enumerate(read_jsonl(path)):
        name = row.get("database")
        if name not in databases:
            raise ValueError(f"{path}:{i + 1}: database {name!r} is not configured (known: {sorted(databases)})")
        sql = row.get("sql") or []
        golds = [s for v in ([sql] if isinstance(sql, str) else sql) for s in split_statements(v)]
        config = databases[name]
        items.append(Item(split, str(row.get("id") or f"{split}.{i:04d}"), name, sqlite_file(config),
                          row["question"], golds, row.get("category") or "all", row.get("seen_shape"),
                          config=config))
    return _limit(items, limit)


def sample_items(sample_file: Path | None = None, limit: int | None = None, *, split: str = "sample") -> list[Item]:
    """The sample test split (or its hand-paraphrased `split`), on the sample SQLite file
    (generated on first use)."""
    from server.sql.sample.generate import ensure_sample_sqlite
    from server.sql.sample.paths import PAIRS_DIR, PARAPHRASED_FILE, default_sample_config

    config = default_sample_config()
    if sample_file is not None:
        config = config.model_copy(update={"url": f"sqlite:///{Path(sample_file).resolve()}"})
    ensure_sample_sqlite(sqlite_file(config))
    if split == "sample":
        return pairs_items(PAIRS_DIR / "test.jsonl", {config.name: config}, "sample", limit)
    part = PARAPHRASED[split]
    items = [i for i, row in zip(pairs_items(PARAPHRASED_FILE, {config.name: config}, split), _jsonl(PARAPHRASED_FILE))
             if row["part"] == part]
    return _limit(items, limit)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def defog_items(split: str, defog_dir: Path, limit: int | None, instructions: bool = True) -> list[Item]:
    if not (defog_dir / DEFOG_FILES[split]).exists():
        raise FileNotFoundError(f"{defog_dir / DEFOG_FILES[split]} is missing (defog's sql-eval data, see --defog-dir)")
    items = []
    for i, row in enumerate(_rows(defog_dir / DEFOG_FILES[split])):
        question = row["question"].strip()
        extra = (row.get("instructions") or "").strip()
        # idk's instructions ask for a canned SELECT; Hearth refuses in its own way (status
        # "unanswerable"), so they are not sent. The others are part of the question upstream.
        if instructions and extra and split != "defog_idk":
            question = f"{question}\n{extra}"
        gold = [] if split == "defog_idk" else split_statements(row["query"])
        items.append(Item(split, f"{split}.{row['db_name']}.{i:03d}", f"{split}.{row['db_name']}",
                          defog_dir / "sqlite" / f"{row['db_name']}.sqlite", question[:4000], gold,
                          row["query_category"]))
    return _limit(items, limit)


def load_split(name: str, limit: int | None = None, *, defog_dir: Path = DEFOG_DIR,
               databases: dict[str, DatabaseConfig] | None = None, instructions: bool = True) -> list[Item]:
    """A ready-made split by name, or a pairs JSONL path (then `databases` is required)."""
    if name == "sample" or name in PARAPHRASED:
        return sample_items(limit=limit, split=name)
    if name in DEFOG_FILES:
        return defog_items(name, Path(defog_dir), limit, instructions)
    if name.endswith(".jsonl"):
        if not Path(name).exists():
            raise FileNotFoundError(f"pairs file {name} does not exist")
        if not databases:
            raise ValueError(f"pairs file {name}: give the databases it runs on (--databases settings.yaml)")
        return pairs_items(name, databases, limit=limit)
    raise ValueError(f"unknown SQL split {name!r}: one of {', '.join(ALL_SPLITS)}, or a pairs .jsonl file")


def _limit(items: list[Item], limit: int | None) -> list[Item]:
    """The first `limit` items, spread round-robin over (category, seen shape) groups, so that a
    quick run sees each category and, on the sample split, SQL shapes unseen in training too."""
    if not limit or limit >= len(items):
        return items
    by_cat: dict[tuple, list[Item]] = {}
    for item in items:
        by_cat.setdefault((item.category, item.seen_shape), []).append(item)
    out: list[Item] = []
    while len(out) < limit:
        for group in by_cat.values():
            if group and len(out) < limit:
                out.append(group.pop(0))
    return out


def defog_pool(split: str, db: str, defog_dir: Path) -> list[dict]:
    """{question, sql} pairs for `db` from the answerable defog files other than `split`."""
    evaluated = {_norm(r["question"]) for r in _rows(defog_dir / DEFOG_FILES[split]) if r["db_name"] == db}
    pool = []
    for other in ANSWERABLE_FILES:
        if other == split:
            continue
        for row in _rows(defog_dir / DEFOG_FILES[other]):
            if row["db_name"] == db and _norm(row["question"]) not in evaluated:
                variants = split_statements(row["query"])
                if variants:
                    pool.append({"question": row["question"].strip(), "sql": variants[0]})
    return pool


def write_pools(splits: Iterable[str], defog_dir: Path, out_dir: Path) -> dict[str, Path | None]:
    """Write one examples JSONL per "<split>.<db>" of the defog splits; None where the pool is empty."""
    paths: dict[str, Path | None] = {}
    for split in splits:
        if split not in DEFOG_FILES:
            continue
        for db in sorted({r["db_name"] for r in _rows(defog_dir / DEFOG_FILES[split])}):
            pool = defog_pool(split, db, defog_dir)
            name = f"{split}.{db}"
            if not pool:
                paths[name] = None
                continue
            path = out_dir / f"{name}.jsonl"
            path.write_text("".join(json.dumps(p) + "\n" for p in pool), encoding="utf-8")
            paths[name] = path
    return paths


def database_configs(items: list[Item], pools: dict[str, Path | None], max_rows: int = GOLD_MAX_ROWS) -> list[dict]:
    """The server's `databases:` entries for these items (defog's with their example pools)."""
    out: dict[str, dict] = {}
    for item in items:
        if item.database in out:
            continue
        if item.config is not None:
            entry = item.config.model_dump(exclude_none=True)
        else:
            entry = {"name": item.database, "url": f"sqlite:///{Path(item.db_file).resolve()}"}
            if pools.get(item.database):
                entry["examples_path"] = str(pools[item.database])
        out[item.database] = entry | {"max_rows": max_rows}
    return list(out.values())


def connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)


def run_sql(conn: sqlite3.Connection, sql: str, timeout_s: float = GOLD_TIMEOUT_S) -> list[tuple]:
    """Run one query with a deadline (a runaway baseline or gold query must not stall the run)."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.set_progress_handler(None, 0)


class Runner:
    """Runs SQL read-only on an item's database: sqlite3 on the file, else Hearth's own executor."""

    def __init__(self) -> None:
        self.conns: dict[Path, sqlite3.Connection] = {}
        self.databases: dict[str, object] = {}

    def rows(self, item: Item, sql: str, timeout_s: float = GOLD_TIMEOUT_S) -> list:
        if item.db_file is not None:
            conn = self.conns.setdefault(item.db_file, connect_ro(item.db_file))
            return run_sql(conn, sql, timeout_s)
        from server.sql.connections import Database
        from server.sql.execute import execute_readonly

        database = self.databases.setdefault(item.database, Database(item.config))
        return execute_readonly(database, sql, max_rows=GOLD_MAX_ROWS, timeout_s=timeout_s).rows

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        for database in self.databases.values():
            database.dispose()


def run_golds(items: list[Item]) -> None:
    """Execute each gold variant on its database, read-only; a failing variant is dropped (and counted)."""
    runner = Runner()
    try:
        for item in items:
            for sql in item.gold_sql:
                try:
                    dialect = item.config.dialect if item.config is not None else "sqlite"
                    item.golds.append(Gold(runner.rows(item, sql), is_ordered(sql, dialect), sql))
                except Exception:  # noqa: BLE001 - counted and reported; README says none should fail
                    item.gold_errors += 1
    finally:
        runner.close()
