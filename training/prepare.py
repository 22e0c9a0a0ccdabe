"""`hearth data`: sources → clean → tokenize → mix → <run>/data/{train,val}.jsonl + manifest.json.

The manifest records, per source: input files and their sha256, what cleaning removed, samples,
tokens and loss tokens; for the mix: asked and achieved ratios, the seed, and the sha256 of the
written files. `inputs_hash` (recipe data section + input file hashes + tokenizer) is what the
pipeline compares to decide whether this stage can be skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

from .data import clean, load_chat, load_corpus
from .io import read_jsonl, sha256_file, sha256_json, write_json, write_jsonl
from .mix import loss_tokens, mix, split_validation
from .recipe import Recipe, Source


def source_files(src: Source, run: Path) -> list[Path]:
    if src.kind == "replay":
        return [replay_path(src, run)]
    p = Path(src.path or "")
    return [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())


def replay_path(src: Source, run: Path) -> Path:
    return Path(src.path) if src.path else run / "replay.jsonl"


def load_source(src: Source, recipe: Recipe) -> list[dict]:
    run = recipe.run_dir()
    if src.kind == "corpus":
        return load_corpus(src.path, src.name)
    if src.kind == "chat":
        return load_chat(src.path, src.name)
    if src.kind == "sql":
        from .sql import sql_samples

        return sql_samples(src.path, source=src.name, serving=recipe.serve.sql, schema_source=src.schema_source,
                           examples_path=src.examples_path)
    if src.kind == "replay":
        from .model import resolve_base
        from .replay import generate

        path = replay_path(src, run)
        gguf = resolve_base(recipe.base_model)
        if gguf.suffix != ".gguf" and not path.exists():
            raise ValueError(f"source {src.name}: replay needs a GGUF base model, or an existing replay file in path")
        if gguf.suffix == ".gguf":
            generate(gguf, path, n_prompts=src.replay_prompts)
        rows = [r for r in read_jsonl(path) if r.get("finish_reason") != "length"]  # cut answers teach cut answers
        return [{"messages": r["messages"], "source": src.name, "id": f"replay:{i}"} for i, r in enumerate(rows)]
    raise ValueError(f"unknown source kind {src.kind}")


MIX_TOLERANCE = 0.9  # the achieved general:domain ratio must reach this share of the asked one


def describe_mix(report: dict) -> str:
    asked, got = report["asked"], report["achieved"]
    general = report["roles"]["general"]
    return (f"mix: general:domain loss tokens asked {asked['ratio_general_per_domain']:g}, achieved "
            f"{got['ratio_general_per_domain']} ({general['samples']} general samples, {general['passes']} pass(es) "
            f"over the pool); instruction share asked {asked['mip_fraction']:g}, achieved {got['mip_fraction']}")


def check_mix(report: dict, cfg) -> None:
    """A mix that falls short of the asked ratio is an error, not a line in the manifest: the
    recipe would claim a mix it never trained on (issue 21: 1.0 asked, 0.075 trained)."""
    asked = report["asked"]["ratio_general_per_domain"]
    got = report["achieved"]["ratio_general_per_domain"]
    if asked > 0 and got is not None and got < MIX_TOLERANCE * asked:
        pool = report["roles"]["general"]["samples"]
        raise ValueError(
            f"data.ratio asks {asked:g} general loss tokens per domain loss token, but the general sources give "
            f"{got} ({pool} samples, data.max_repeat {cfg.max_repeat} pass(es)). Add general data (a larger "
            f"replay_prompts or another general source), raise data.max_repeat, or set data.ratio to {got}.")


def describe_source(name: str, read: int, kept: int, cleaning: dict) -> str:
    """One line per source for `hearth data`: what was read, kept, and why the rest went."""
    why = {k: v for k, v in cleaning.items() if k not in ("input", "output", "chunks_added") and v}
    return f"source {name}: {read} read, {kept} kept" + (f" ({', '.join(f'{k} {v}' for k, v in why.items())})"
                                                          if why else "")


def inputs_hash(recipe: Recipe) -> str:
    files = {s.name: [sha256_file(f) for f in source_files(s, recipe.run_dir()) if f.exists()] for s in recipe.sources}
    return sha256_json({"data": recipe.data.model_dump(), "sources": [s.model_dump() for s in recipe.sources],
                        "files": files, "base": recipe.base_model, "seq_len": recipe.train.seq_len,
                        "serve_sql": recipe.serve.sql.model_dump(mode="json")})  # the prompts follow it


def prepare(recipe: Recipe) -> dict:
    from .model import load_tokenizer
    from .tokens import encode_samples

    if not recipe.sources:
        raise ValueError("the recipe has no sources")
    t0 = time.perf_counter()
    run = recipe.run_dir()
    tokenizer = load_tokenizer(recipe.base_model)
    cfg = recipe.data
    by_role: dict[str, list[dict]] = {}
    sources_report = {}
    for src in recipe.sources:
        raw = load_source(src, recipe)
        kept, stats = clean(raw, min_chars=cfg.min_chars, max_chars=cfg.max_chars, chunk_chars=cfg.chunk_chars,
                            near_dup_threshold=src.near_dup_threshold)
        if src.limit:
            kept = kept[:src.limit]
        encoded, enc_stats = encode_samples(tokenizer, kept, recipe.train.seq_len)
        by_role.setdefault(src.role, []).extend(encoded)
        sources_report[src.name] = {
            "kind": src.kind, "role": src.role, "path": src.path,
            "files": {str(f): sha256_file(f) for f in source_files(src, run) if f.exists()},
            "cleaning": stats | enc_stats, "samples": len(encoded),
            "tokens": sum(len(s["input_ids"]) for s in encoded),
            # The longest trained answer: serving's token budget must fit it (Recipe.served_sql).
            "longest_answer_tokens": max((loss_tokens(s) for s in encoded), default=0),
        }
        print(describe_source(src.name, len(raw), len(encoded), stats | enc_stats), flush=True)
    mixed, mix_report = mix(by_role, ratio=cfg.ratio, mip_fraction=cfg.mip_fraction, seed=cfg.seed,
                            domain_repeat=cfg.domain_repeat, max_repeat=cfg.max_repeat)
    print(describe_mix(mix_report), flush=True)
    check_mix(mix_report, cfg)
    train, val = split_validation(mixed, cfg.val_fraction, cfg.seed)
    data = run / "data"
    keep = ("input_ids", "labels", "source", "id")
    write_jsonl(data / "train.jsonl", [{k: s[k] for k in keep} for s in train])
    write_jsonl(data / "val.jsonl", [{k: s[k] for k in keep} for s in val])
    manifest = {
        "inputs_hash": inputs_hash(recipe), "sources": sources_report, "mix": mix_report,
        "split": {"train": len(train), "val": len(val)},
        "files": {name: sha256_file(data / name) for name in ("train.jsonl", "val.jsonl")},
        "tokenizer": {"name": type(tokenizer).__name__, "vocab": len(tokenizer)},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(data / "manifest.json", manifest)
    return manifest
