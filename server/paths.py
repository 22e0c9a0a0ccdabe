"""Hearth's data directory: HEARTH_DATA_DIR, else ./var.

What Hearth writes at run time goes under it: the sample database, the review store, the
requantized embedded model. Standard library only, so any module can import it.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("HEARTH_DATA_DIR", "var")).expanduser()
