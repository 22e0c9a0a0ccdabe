"""SHA-256 of a file, read in 1 MiB blocks (model files are gigabytes). Standard library only:
`hearth doctor` checks models against their manifests with it, `hearth bundle` writes its lock
and SHA256SUMS with it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
