"""`hearth sample` / `python -m server.sql.sample`: build, load and describe the sample database.

  build [--path P] [--force]            the SQLite file (default: paths.sample_sqlite_path())
  load [--postgres URL] [--mysql URL]   (re)create it on PostgreSQL and/or MariaDB/MySQL, with a
                                        SELECT-only login (default hearth_ro) for Hearth to use
  pairs [--out DIR] [--check]           regenerate pairs/train.jsonl and test.jsonl; --check only
                                        compares them with the committed files (exit 1 if stale)

server/cli.py imports this module for `hearth sample` and calls add_arguments() and run().
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

READONLY_PASSWORD_ENV = "HEARTH_SAMPLE_READONLY_PASSWORD"  # kept out of argv (and so out of `ps`)


def add_arguments(parser: argparse.ArgumentParser, verb: str = "sample") -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="Write the sample SQLite database (atomically).")
    build.add_argument("--path", default=None, help="Target file (default: $HEARTH_DATA_DIR/sample.sqlite).")
    build.add_argument("--force", action="store_true", help="Rebuild even if an up-to-date file exists.")

    load = sub.add_parser("load", help="Load the sample database onto PostgreSQL and/or MariaDB/MySQL.")
    load.add_argument("--postgres", metavar="URL", default=None,
                      help="Admin URL whose database is dropped and recreated, e.g. "
                           "postgresql://postgres@127.0.0.1:5432/hearth_sample")
    load.add_argument("--postgres-admin-db", default="test",
                      help="Existing PostgreSQL database to connect to while (re)creating the target.")
    load.add_argument("--mysql", metavar="URL", default=None,
                      help="Admin URL, e.g. mysql://root@127.0.0.1:3306/hearth_sample (MariaDB too).")
    load.add_argument("--readonly-user", default="hearth_ro",
                      help="Login granted SELECT on the loaded database ('' to skip).")
    load.add_argument("--seed", type=int, default=None, help="Generator seed (default: the shipped one).")

    pairs = sub.add_parser("pairs", help="Regenerate the question/SQL pairs (train.jsonl, test.jsonl).")
    pairs.add_argument("--out", default=None, help="Directory (default: the package's pairs/).")
    pairs.add_argument("--check", action="store_true", help="Only check the committed files are current.")


def run(args: argparse.Namespace, verb: str = "sample") -> int:
    return {"build": _build, "load": _load, "pairs": _pairs}[args.action](args)


def _build(args: argparse.Namespace) -> int:
    from server.sql.sample.generate import build_sqlite, ensure_sample_sqlite

    started = time.monotonic()
    if args.force:
        from server.sql.sample.paths import sample_sqlite_path

        path = build_sqlite(args.path or sample_sqlite_path())
    else:
        path = ensure_sample_sqlite(args.path)
    print(f"sample database: {path} ({time.monotonic() - started:.1f} s)")
    return 0


def _load(args: argparse.Namespace) -> int:
    from server.sql.sample.generate import DEFAULT_SEED, generate
    from server.sql.sample.load import load_mysql, load_postgres
    from server.sql.settings import redact_url

    if not (args.postgres or args.mysql):
        raise ValueError("give --postgres URL and/or --mysql URL")
    data = generate(DEFAULT_SEED if args.seed is None else args.seed)
    readonly = dict(readonly_user=args.readonly_user or None, readonly_password=os.environ.get(READONLY_PASSWORD_ENV))
    for url, loader, extra in ((args.postgres, load_postgres, {"admin_db": args.postgres_admin_db}),
                               (args.mysql, load_mysql, {})):
        if not url:
            continue
        result = loader(url, data=data, **readonly, **extra)
        rows = sum(result["rows"].values())
        print(f"{redact_url(url)}: {rows} rows in {len(result['rows'])} tables, {result['seconds']} s; "
              f"read-only login: {result['readonly_user'] or 'NOT created'}")
    return 0


def _pairs(args: argparse.Namespace) -> int:
    from server.sql.sample.build.pairs import build_pairs, summary, write_pairs
    from server.sql.sample.paths import PAIRS_DIR

    pairs = build_pairs()
    target = Path(args.out) if args.out else PAIRS_DIR
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_pairs(pairs, tmp)
            stale = [p.name for p in fresh.values() if not (target / p.name).is_file()
                     or (target / p.name).read_bytes() != p.read_bytes()]
        if stale:
            print(f"out of date in {target}: {', '.join(stale)}; run `python -m server.sql.sample pairs`")
            return 1
        print(f"{target}: up to date ({len(pairs)} pairs)")
        return 0
    written = write_pairs(pairs, target)
    for category, counts in summary(pairs).items():
        print(f"  {category:16s} train {counts['train']:4d}  test seen {counts['test_seen']:3d}  "
              f"test unseen {counts['test_unseen']:3d}")
    print(f"{len(pairs)} pairs -> {', '.join(str(p) for p in written.values())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.sql.sample", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
