"""Verbs `hearth merge`, `hearth export`, `hearth quantize`.

Each accepts either a recipe YAML (paths come from its run folder: <run>/adapter → <run>/merged →
<run>/gguf/<name>-F16.gguf → <run>/gguf/<name>-<TYPE>.gguf) or explicit paths.
torch/transformers/llama_cpp are imported inside run(), never at import time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_TEXTS = [
    "Write one SQLite SELECT query that answers the question.\nQuestion: How many orders were shipped in 2024?",
    "SELECT c.company_name, SUM(oi.quantity * oi.unit_price) AS revenue FROM customers c JOIN orders o "
    "ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id GROUP BY c.company_name",
    "The water cycle describes how water evaporates, condenses into clouds and falls back as rain.",
    "Please find attached the invoice for last month's office supplies. Payment is due within 30 days.",
]


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("target", help="Recipe YAML, or the input path (adapter dir / HF model dir / f16 GGUF).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Recipe override (with a recipe target).")
    parser.add_argument("--out", default=None, help="Output path (default: in the recipe's run folder).")
    if verb == "merge":
        parser.add_argument("--base", default=None, help="Base model of the adapter (default: the recipe's).")
    if verb == "export":
        parser.add_argument("--outtype", default="f16", choices=("f16", "bf16", "q8_0", "f32"),
                            help="GGUF tensor type written by llama.cpp's converter (default f16; other "
                            "quantizations: `hearth quantize` on the f16 file).")
        parser.add_argument("--tokenizer-pre", default=None, help="BPE pre-tokenizer name (e.g. llama-bpe, qwen2) for "
                            "a vocabulary llama.cpp's converter does not recognise; the tokenizer check confirms it.")
        parser.add_argument("--name", default=None, help="general.name written into the GGUF.")
        parser.add_argument("--no-tokenizer-check", action="store_true",
                            help="Skip the check that llama.cpp tokenizes as transformers does.")
        parser.add_argument("--lora", action="store_true",
                            help="Export the trained LoRA adapter itself (target: the adapter folder; with a recipe "
                            "<run>/adapter) as a GGUF LoRA adapter, <name>-lora-<OUTTYPE>.gguf, which the server "
                            "applies on its base model's GGUF (`adapters:` in the settings) instead of a merged copy.")
        parser.add_argument("--base", default=None, help="With --lora: the base model the adapter was trained on (HF "
                            "folder, GGUF or embedded:smollm2; default: the recipe's, else the adapter's own record).")
    if verb == "quantize":
        parser.add_argument("--types", nargs="+", default=None, help="Quantizations, e.g. Q8_0 Q4_K_M Q4_0 Q4_1.")
        parser.add_argument("--no-check", action="store_true", help="Skip the comparison with the f16 model.")


def _recipe(args):
    if str(args.target).endswith((".yaml", ".yml")):
        from training.recipe import load_recipe

        return load_recipe(args.target, args.overrides)
    return None


def check_texts(recipe, limit: int) -> list[str]:
    """Held-out texts: the run's validation samples (never trained on), else built-in ones."""
    if recipe is not None:
        val = recipe.run_dir() / "data" / "val.jsonl"
        if val.exists():
            from training.io import read_jsonl
            from training.model import load_tokenizer

            tok = load_tokenizer(recipe.base_model)
            texts = [tok.decode(r["input_ids"][-400:]) for r in read_jsonl(val)[:limit]]
            if texts:
                return texts
    return DEFAULT_TEXTS[:limit]


def run_merge(args, recipe) -> dict:
    from .merge import merge

    adapter = Path(args.target) if recipe is None else recipe.run_dir() / "adapter"
    base = args.base or (recipe.base_model if recipe else None)
    if base is None:
        raise ValueError("--base is required without a recipe")
    out = Path(args.out) if args.out else (recipe.run_dir() / "merged" if recipe else adapter.parent / "merged")
    return merge(adapter, base, out) | {"out": str(out)}


def run_export(args, recipe) -> dict:
    from .export import export_gguf

    if getattr(args, "lora", False):
        return run_export_lora(args, recipe)
    src = Path(args.target) if recipe is None else recipe.run_dir() / "merged"
    name = getattr(args, "name", None) or (recipe.name if recipe else src.name)
    outtype = getattr(args, "outtype", None) or "f16"
    out = Path(args.out) if args.out else (recipe.run_dir() / "gguf" / f"{name}-{outtype.upper()}.gguf" if recipe
                                           else src.with_suffix(".gguf"))
    pre = getattr(args, "tokenizer_pre", None) or (recipe.export.tokenizer_pre if recipe else None)
    return export_gguf(src, out, outtype=outtype, name=name, tokenizer_pre=pre,
                       check=not getattr(args, "no_tokenizer_check", False))


def run_export_lora(args, recipe) -> dict:
    from .lora import export_lora

    src = Path(args.target) if recipe is None else recipe.run_dir() / "adapter"
    base = getattr(args, "base", None) or (recipe.base_model if recipe else None)
    name = getattr(args, "name", None) or (recipe.name if recipe else src.name)
    outtype = getattr(args, "outtype", None) or "f16"
    out = Path(args.out) if args.out else (
        (recipe.run_dir() / "gguf" if recipe else src.parent) / f"{name}-lora-{outtype.upper()}.gguf")
    return export_lora(src, out, base=base, outtype=outtype)


def run_quantize(args, recipe) -> dict:
    from training.io import sha256_file, write_json

    from .quant import compare, next_token_logprobs, quantize

    if recipe is not None:
        src = recipe.run_dir() / "gguf" / f"{recipe.name}-F16.gguf"
        types = args.types or recipe.export.quant_types
        n_texts = recipe.export.check_prompts
    else:
        src, types, n_texts = Path(args.target), args.types or ["Q8_0", "Q4_K_M"], 8
    out_dir = Path(args.out) if args.out else src.parent
    stem = src.name.removesuffix(".gguf").removesuffix("-F16")
    texts = None if args.no_check else check_texts(recipe, n_texts)
    reference = next_token_logprobs(src, texts) if texts else None
    results = {}
    for qtype in types:
        res = quantize(src, out_dir / f"{stem}-{qtype.upper()}.gguf", qtype)
        if reference is not None:
            res["check"] = compare(reference, next_token_logprobs(res["path"], texts))
        results[qtype.upper()] = res
        print(json.dumps({qtype: {k: v for k, v in res.items() if k != "sha256"}}, indent=1))
    manifest = {"source": str(src), "source_sha256": sha256_file(src), "check_texts": len(texts or []),
                "run": str(recipe.run_dir()) if recipe else None, "outputs": results}
    write_json(out_dir / f"{stem}-quantize.json", manifest)
    return manifest


def run(args: argparse.Namespace, verb: str) -> int:
    recipe = _recipe(args)
    result = {"merge": run_merge, "export": run_export, "quantize": run_quantize}[verb](args, recipe)
    print(json.dumps(result, indent=2, default=str))
    return 0
