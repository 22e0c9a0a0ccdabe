"""Open-ended evaluation: answers from several variants, graded blind by people, then summarised.

    load_prompts(path)                          JSONL prompt set: {id, prompt, system?, reference?, notes?}
    generate_answers(variants, prompts, out)    every variant answers every prompt at temperature 0;
                                                answers JSONL, rewritten atomically after each variant
                                                (a rerun keeps the rows it already has)
    export_blind(answers, store, key, seed)     shuffle (seeded), give each answer an opaque id, write
                                                the id -> variant key to its own file, and import the
                                                blind items into the review store that GET /review shows
    review_summary(store, key)                  per-variant mean grade, per-reviewer counts, agreement

The key file is the only link from a blind id to a variant: keep it away from reviewers (it is
never put in the store, so the server cannot show it). Torch and transformers are imported only
to answer a Hugging Face variant; GGUF variants go through llama-cpp-python, as in serving.

    python -m training.evaluation.open_ended answers --variant base=embedded:smollm2 --out var/eval/answers.jsonl
    python -m training.evaluation.open_ended export var/eval/answers.jsonl --store var/review.sqlite3 --key key.json
    python -m training.evaluation.open_ended summary --store var/review.sqlite3 --key key.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from server.review.store import Item, ReviewStore

from ..io import read_jsonl, sha256_file, write_json, write_jsonl
from .agreement import agreement_report
from .variants import Variant, parse_variants

log = logging.getLogger("hearth.eval.open")

DEFAULT_PROMPTS = Path(__file__).parent / "data" / "open_prompts.jsonl"
PROMPT_KEYS = {"id", "prompt", "system", "reference", "notes"}

# (messages, max_tokens) -> (text, finish_reason, completion_tokens)
Answer = Callable[[list[dict], int], tuple[str, str, int]]


@dataclass(frozen=True)
class OpenPrompt:
    id: str
    prompt: str
    system: str | None = None
    reference: str | None = None  # what a good answer contains, shown to reviewers as notes
    notes: str | None = None

    def messages(self) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": self.prompt}]

    def reviewer_notes(self) -> str | None:
        return "\n\n".join(t for t in (self.reference, self.notes) if t) or None


def load_prompts(path: str | Path = DEFAULT_PROMPTS) -> list[OpenPrompt]:
    prompts: list[OpenPrompt] = []
    for n, row in enumerate(read_jsonl(path), 1):
        unknown = set(row) - PROMPT_KEYS
        if unknown:
            raise ValueError(f"{path}:{n}: unknown keys {sorted(unknown)}; expected {sorted(PROMPT_KEYS)}")
        for key in ("id", "prompt"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{path}:{n}: '{key}' must be a non-empty string")
        prompts.append(OpenPrompt(**row))
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: prompt ids must be unique")
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


# -- answering ---------------------------------------------------------------------------------


@contextmanager
def _gguf(variant: Variant, n_ctx: int, n_threads: int) -> Iterator[Answer]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(variant.resolved_path), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=0,
                seed=0, verbose=False)

    def answer(messages: list[dict], max_tokens: int) -> tuple[str, str, int]:
        out = llm.create_chat_completion(messages=messages, temperature=0.0, max_tokens=max_tokens, seed=0)
        choice = out["choices"][0]
        return choice["message"]["content"] or "", choice["finish_reason"], out["usage"]["completion_tokens"]

    try:
        yield answer
    finally:
        llm.close()


@contextmanager
def _hf(variant: Variant, n_threads: int) -> Iterator[Answer]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise RuntimeError(f"variant {variant.name!r} is a Hugging Face folder; answering it needs the training "
                           "stack (pip install -e '.[train]'), or export it to GGUF first") from exc
    torch.set_num_threads(n_threads)
    tokenizer = AutoTokenizer.from_pretrained(variant.path)
    model = AutoModelForCausalLM.from_pretrained(variant.path, dtype=torch.float32).eval()
    configured = model.generation_config.eos_token_id
    eos = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])} - {None}

    def answer(messages: list[dict], max_tokens: int) -> tuple[str, str, int]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        new = out[0, enc["input_ids"].shape[1]:].tolist()
        finish = "stop" if new and new[-1] in eos else "length"
        return tokenizer.decode(new, skip_special_tokens=True), finish, len(new)

    yield answer


def _answerer(variant: Variant, n_ctx: int, n_threads: int):
    return _gguf(variant, n_ctx, n_threads) if variant.kind == "gguf" else _hf(variant, n_threads)


def _row_key(row: dict) -> tuple:
    return row["variant"], row["prompt_id"], row["prompt"], row.get("system")


def generate_answers(variants: Sequence[Variant], prompts: Sequence[OpenPrompt] | str | Path, out_path: str | Path,
                     *, max_tokens: int = 384, n_ctx: int = 2048, n_threads: int | None = None) -> Path:
    """Every variant answers every prompt greedily (temperature 0), one variant loaded at a time;
    one JSONL row per answer:
    {variant, prompt_id, prompt, system, reference, answer, finish_reason, completion_tokens, seconds}.

    The file is rewritten atomically after each answer, and rows already in it for the same
    variant and prompt text are kept, so an interrupted run resumes where it stopped.
    """
    if isinstance(prompts, (str, Path)):
        prompts = load_prompts(prompts)
    out_path = Path(out_path)
    n_threads = n_threads or os.cpu_count() or 1
    wanted = {v.name for v in variants}
    done = {_row_key(r): r for r in (read_jsonl(out_path) if out_path.exists() else []) if r["variant"] in wanted}
    rows: list[dict] = []
    for variant in variants:
        todo = [p for p in prompts if (variant.name, p.id, p.prompt, p.system) not in done]
        if todo:
            log.info("variant %s: answering %d prompts", variant.name, len(todo))
            with _answerer(variant, n_ctx, n_threads) as answer:
                for p in todo:
                    started = time.perf_counter()
                    text, finish, tokens = answer(p.messages(), max_tokens)
                    done[(variant.name, p.id, p.prompt, p.system)] = {
                        "variant": variant.name, "prompt_id": p.id, "prompt": p.prompt, "system": p.system,
                        "reference": p.reviewer_notes(), "answer": text.strip(), "finish_reason": finish,
                        "completion_tokens": tokens, "seconds": round(time.perf_counter() - started, 3),
                    }
                    write_jsonl(out_path, list(done.values()))
        rows += [done[(variant.name, p.id, p.prompt, p.system)] for p in prompts]
    return write_jsonl(out_path, rows)  # this run's variants x prompts, in order; stale rows dropped


# -- blind review ------------------------------------------------------------------------------


def blind_items(answers: list[dict], seed: int) -> tuple[list[Item], dict[str, dict]]:
    """Shuffled items with opaque ids, and the key id -> {variant, prompt_id}. The order depends only
    on the answers' content and the seed, not on the order of the rows in the file."""
    for n, row in enumerate(answers, 1):
        missing = {"variant", "prompt_id", "prompt", "answer"} - set(row)
        if missing:
            raise ValueError(f"answer row {n} lacks {sorted(missing)}")
    rows = sorted(answers, key=lambda r: (r["prompt_id"], r["variant"], r["prompt"], r["answer"]))
    rng = random.Random(seed)
    rng.shuffle(rows)
    items: list[Item] = []
    key: dict[str, dict] = {}
    for position, row in enumerate(rows):
        blind_id = f"{rng.getrandbits(48):012x}"
        while blind_id in key:
            blind_id = f"{rng.getrandbits(48):012x}"
        items.append(Item(id=blind_id, position=position, prompt=row["prompt"], answer=row["answer"],
                          system=row.get("system"), reference=row.get("reference")))
        key[blind_id] = {"variant": row["variant"], "prompt_id": row["prompt_id"]}
    return items, key


def export_blind(answers_path: str | Path, store_path: str | Path, key_path: str | Path, seed: int = 0) -> dict:
    """Blind items into the review store (SQLite), the id -> variant key into `key_path` (JSON).

    The key is written first, so every item a reviewer can see has its key. Exporting the same
    answers with the same seed again adds nothing and keeps every grade."""
    if Path(key_path).resolve() == Path(store_path).resolve():
        raise ValueError("the key must be a separate file from the review store")
    items, key = blind_items(read_jsonl(answers_path), seed)
    write_json(key_path, {"seed": seed, "answers": str(answers_path), "answers_sha256": sha256_file(answers_path),
                          "items": key})
    added = ReviewStore(store_path).add_items(items)
    return {"items": len(items), "added": added, "store": str(store_path), "key": str(key_path)}


def _mean(scores: list[int]) -> float | None:
    return round(statistics.fmean(scores), 4) if scores else None


def review_summary(store_path: str | Path, key_path: str | Path) -> dict:
    """Grades of the items in `key_path`, unblinded:

        {"variants": {name: {"mean", "n" (grades), "items" (graded items), "scores" {"1".."5": count}}},
         "reviewers": [{"name", "n", "mean"}],
         "agreement": {"items_with_several_grades", "pairs", "exact", "within_one",
                       "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                       "pairwise": [{"reviewers", "items", "exact", "kappa_quadratic"}]},
         "items": number of items in the key, "grades": number of grades counted}

    A variant's mean is over all its grades (every reviewer's); None when it has none yet.
    """
    key = json.loads(Path(key_path).read_text(encoding="utf-8"))["items"]
    grades = [g for g in ReviewStore(store_path).grades() if g.item_id in key]
    by_variant: dict[str, list[int]] = {name: [] for name in sorted({k["variant"] for k in key.values()})}
    graded_items: dict[str, set[str]] = {name: set() for name in by_variant}
    by_reviewer: dict[str, list[int]] = {}
    by_item: dict[str, dict[str, int]] = {}
    for g in grades:
        variant = key[g.item_id]["variant"]
        by_variant[variant].append(g.score)
        graded_items[variant].add(g.item_id)
        by_reviewer.setdefault(g.reviewer, []).append(g.score)
        by_item.setdefault(g.item_id, {})[g.reviewer] = g.score
    return {
        "variants": {name: {"mean": _mean(s), "n": len(s), "items": len(graded_items[name]),
                            "scores": {str(v): s.count(v) for v in range(1, 6)}}
                     for name, s in by_variant.items()},
        "reviewers": [{"name": r, "n": len(s), "mean": _mean(s)} for r, s in sorted(by_reviewer.items())],
        "agreement": agreement_report(by_item),
        "items": len(key),
        "grades": len(grades),
    }


# -- command line (used until `hearth eval` wraps these) ---------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.open_ended",
                                     description=__doc__.split("\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    answers = verbs.add_parser("answers", help="Every variant answers the open prompt set.")
    answers.add_argument("--variant", action="append", required=True, metavar="NAME=PATH",
                         help="A GGUF, a Hugging Face folder or embedded:smollm2; repeat for each variant.")
    answers.add_argument("--prompts", default=str(DEFAULT_PROMPTS), help="Prompt set (JSONL).")
    answers.add_argument("--out", required=True, help="Answers JSONL to write.")
    answers.add_argument("--max-tokens", type=int, default=384, help="Token budget of one answer.")
    answers.add_argument("--n-ctx", type=int, default=2048, help="Context length of GGUF variants.")
    answers.add_argument("--threads", type=int, default=None, help="CPU threads (default: all).")
    export = verbs.add_parser("export", help="Blind the answers and import them into the review store.")
    export.add_argument("answers", help="Answers JSONL from `answers`.")
    export.add_argument("--store", required=True, help="Review SQLite file (the server's review.path).")
    export.add_argument("--key", required=True, help="Where to write the blind id -> variant key (keep it private).")
    export.add_argument("--seed", type=int, default=0, help="Shuffle seed.")
    summary = verbs.add_parser("summary", help="Per-variant grades and reviewer agreement, as JSON.")
    summary.add_argument("--store", required=True, help="Review SQLite file.")
    summary.add_argument("--key", required=True, help="The key written by `export`.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.verb == "answers":
            out = generate_answers(parse_variants(args.variant), args.prompts, args.out, max_tokens=args.max_tokens,
                                   n_ctx=args.n_ctx, n_threads=args.threads)
            print(out)
        elif args.verb == "export":
            print(json.dumps(export_blind(args.answers, args.store, args.key, args.seed), indent=2))
        else:
            print(json.dumps(review_summary(args.store, args.key), indent=2))
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
