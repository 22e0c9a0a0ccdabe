"""Where the sample database's files are: the SQLite file generated into the data directory
(HEARTH_DATA_DIR or ./var), and the question/SQL pairs shipped inside the package.

Plain paths, no settings and no generator, so that every module of the package can import it.
"""

from __future__ import annotations

from pathlib import Path

from server.paths import data_dir

PAIRS_DIR = Path(__file__).parent / "pairs"
# The test split's questions reworded by hand, not by the question generator (a dev set whose
# wording nobody tuned the templates to); outside pairs/ so that no training source reading that
# folder can take them in.
PARAPHRASED_FILE = Path(__file__).parent / "paraphrased.jsonl"


def sample_sqlite_path() -> Path:
    return data_dir() / "sample.sqlite"
