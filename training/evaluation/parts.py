"""Finished parts of an evaluation, kept on disk so that a stopped `hearth eval` resumes.

An evaluation of five variants on a few hundred Text-to-SQL questions takes the better part of an
hour on 2 cores. Each (part, variant) result is written as soon as it is done, atomically, to
`<out>/parts/<part>--<variant>.json` with a *key*: everything the result depends on (the model
file's path, size and modification time, the questions, the settings). A later run with the same
key loads it instead of measuring again; a changed model file or question set measures anew.
`--fresh` (or deleting the folder) throws all parts away.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import write_json


def model_fingerprint(path: Path) -> dict:
    """What identifies a model file's contents cheaply: path, size and mtime (a re-export changes
    them; hashing a 270 MB file on every run would not be cheap)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file())
        return {"path": str(path.resolve()), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Parts:
    """The part store of one evaluation output folder."""

    def __init__(self, out_dir: str | Path, *, fresh: bool = False):
        self.root = Path(out_dir) / "parts"
        if fresh and self.root.exists():
            shutil.rmtree(self.root)

    def path(self, part: str, variant: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{part}--{variant}")
        return self.root / f"{safe}.json"

    def load(self, part: str, variant: str, key: dict) -> Any | None:
        """The stored result when its key matches, else None."""
        p = self.path(part, variant)
        try:
            stored = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        return stored.get("value") if stored.get("key") == digest(key) else None

    def save(self, part: str, variant: str, key: dict, value: Any) -> Path:
        return write_json(self.path(part, variant), {"key": digest(key), "part": part, "variant": variant,
                                                     "value": value})

    def get_or_run(self, part: str, variant: str, key: dict, run: Callable[[], Any]) -> Any:
        """The stored result for (part, variant, key), or run() and store what it returns."""
        value = self.load(part, variant, key)
        if value is not None:
            print(f"  {part} {variant}: done in an earlier run, reusing {self.path(part, variant)}",
                  file=sys.stderr, flush=True)
            return value
        value = run()
        self.save(part, variant, key, value)
        return value
