"""Where the sample database's files are: the SQLite file generated into the data directory
(HEARTH_DATA_DIR or ./var), and the question/SQL pairs shipped inside the package.

Plain paths, no settings and no generator, so that every module of the package can import it.
"""

from __future__ import annotations

from pathlib import Path

from server.paths import data_dir

PAIRS_DIR = Path(__file__).parent / "pairs"


def sample_sqlite_path() -> Path:
    return data_dir() / "sample.sqlite"
