"""The embedded sample database as a configured database: its default connection entry, and its
SQLite file generated on first use.

The locations themselves are in location.py; they are imported here too, where existing callers
look for them.
"""

from __future__ import annotations

from pathlib import Path

from ..settings import DatabaseConfig, parse_url
from .generate import ensure_sample_sqlite
from .location import PAIRS_DIR, PARAPHRASED_FILE, sample_sqlite_path

__all__ = ["PAIRS_DIR", "PARAPHRASED_FILE", "SAMPLE_DATABASE", "default_sample_config", "ensure_sample_database", "sample_sqlite_path"]

SAMPLE_DATABASE = "sample"


def default_sample_config() -> DatabaseConfig:
    return DatabaseConfig(
        name=SAMPLE_DATABASE,
        url=f"sqlite:///{sample_sqlite_path().resolve()}",
        examples_path=str(PAIRS_DIR / "train.jsonl"),
        description="Embedded sample: a B2B office-supplies distributor (orders, customers, products).",
    )


def ensure_sample_database(configs) -> None:
    """Generate the sample SQLite file if a configured database points at it and it is missing
    or was written by an older generator (generate.DATA_VERSION).

    A 100-byte header read when the file is current; about a second, once, when it is not
    (deterministic rows, written atomically, so a half-written file is never opened).
    """
    sample = sample_sqlite_path().resolve()
    for config in configs:
        if config.dialect == "sqlite" and Path(parse_url(config.url).database).expanduser().resolve() == sample:
            ensure_sample_sqlite(sample)
            return
