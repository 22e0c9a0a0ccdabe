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
    """Generate the sample SQLite file if a configured database points at it and it is missing.

    A stat when the file exists; a few seconds, once, when it does not (deterministic rows,
    written atomically by generate.build_sqlite, so a half-written file is never opened).
    """
    sample = sample_sqlite_path().resolve()
    if sample.exists():
        return
    for config in configs:
        if config.dialect == "sqlite" and Path(parse_url(config.url).database).expanduser().resolve() == sample:
            from .generate import build_sqlite  # the generator is only needed this once

            build_sqlite(sample)
            return
