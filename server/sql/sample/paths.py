"""Where the embedded sample database lives, and its default connection entry.

The SQLite file is generated (deterministically) on first use into the data directory,
HEARTH_DATA_DIR or ./var, and the question/SQL pairs ship inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..settings import DatabaseConfig, parse_url

SAMPLE_DATABASE = "sample"
PAIRS_DIR = Path(__file__).parent / "pairs"


def data_dir() -> Path:
    return Path(os.environ.get("HEARTH_DATA_DIR", "var")).expanduser()


def sample_sqlite_path() -> Path:
    return data_dir() / "sample.sqlite"


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
            from .generate import ensure_sample_sqlite

            ensure_sample_sqlite(sample)
            return
