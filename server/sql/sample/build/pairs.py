"""Build the sample database's question/SQL pairs, split them into train and test, read/write JSONL.

The split tests two kinds of generalisation, as the Text-to-SQL issue asks:

* new paraphrases of seen SQL: every ordinary shape has 4 paraphrases; train asks its instances
  with the first three in rotation, and for TEST_REPHRASED of them test asks the *same SQL*
  again with the fourth wording, which train never uses (`seen_shape: true`);
* unseen SQL shapes: shapes marked `held_out=True` appear only in test (`seen_shape: false`), so
  a model that only memorised train's templates cannot answer them.

Each pair: {"id", "question", "sql", "database": "sample", "category", "shape", "split",
"seen_shape"}. Ids are `<shape>.<instance>.q<paraphrase>` and stable across regenerations as
long as the shape and the generated data do not change. `python -m server.sql.sample pairs`
rewrites pairs/train.jsonl and pairs/test.jsonl; both are committed so the server and the
training pipeline never have to generate them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from random import Random

from server.sql.sample.generate import connect_memory
from server.sql.sample.paths import PAIRS_DIR, SAMPLE_DATABASE
from server.sql.sample.build.questions import Instance, Pools, instantiate
from server.sql.sample.build.shapes import all_shapes

DEFAULT_PAIRS_SEED = 7
TEST_REPHRASED = 2  # instances per seen shape asked again in test with the held-out wording
SPLITS = ("train", "test")


def _pair(inst: Instance, paraphrase: int, split: str, seen_shape: bool) -> dict:
    shape = inst.shape
    return {
        "id": f"{shape.id}.{inst.index:02d}.q{paraphrase}",
        "question": inst.question(paraphrase),
        "sql": inst.sql,
        "database": SAMPLE_DATABASE,
        "category": shape.category,
        "shape": shape.id,
        "split": split,
        "seen_shape": seen_shape,
    }


def build_pairs(conn: sqlite3.Connection | None = None, seed: int = DEFAULT_PAIRS_SEED) -> list[dict]:
    """All pairs, train and test, in a deterministic order. `conn`: the sample data (default: in memory)."""
    if conn is None:
        conn = connect_memory()
    pools = Pools(conn)
    pairs: list[dict] = []
    for shape in all_shapes():
        instances = instantiate(shape, pools, seed)
        wordings = len(shape.questions)
        if shape.held_out:
            pairs += [_pair(inst, inst.index % wordings, "test", False) for inst in instances]
            continue
        held = wordings - 1  # the wording train never sees
        pairs += [_pair(inst, inst.index % held, "train", True) for inst in instances]
        rng = Random(f"{seed}/{shape.id}/rephrase")
        chosen = sorted(rng.sample(range(len(instances)), min(TEST_REPHRASED, len(instances))))
        pairs += [_pair(instances[i], held, "test", True) for i in chosen]
    return pairs


def write_pairs(pairs: list[dict], directory: str | os.PathLike = PAIRS_DIR) -> dict[str, Path]:
    """Write <directory>/train.jsonl and test.jsonl (atomically each); returns {split: path}."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in SPLITS:
        target = out_dir / f"{split}.jsonl"
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out_dir)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for pair in pairs:
                if pair["split"] == split:
                    f.write(json.dumps(pair, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
        written[split] = target
    return written


def load_pairs(split: str | None = None, directory: str | os.PathLike = PAIRS_DIR) -> list[dict]:
    """The committed pairs of one split, or of both (train first) when `split` is None."""
    splits = SPLITS if split is None else (split,)
    pairs = []
    for name in splits:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        with open(Path(directory) / f"{name}.jsonl", encoding="utf-8") as f:
            pairs += [json.loads(line) for line in f if line.strip()]
    return pairs


def summary(pairs: list[dict]) -> dict[str, dict[str, int]]:
    """{category: {"train": n, "test_seen": n, "test_unseen": n}} for reports and the CLI."""
    out: dict[str, dict[str, int]] = {}
    for pair in pairs:
        key = "train" if pair["split"] == "train" else ("test_seen" if pair["seen_shape"] else "test_unseen")
        counts = out.setdefault(pair["category"], {"train": 0, "test_seen": 0, "test_unseen": 0})
        counts[key] += 1
    return out
