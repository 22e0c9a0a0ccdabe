"""Multiple-choice evaluation: the JSONL format, the prompt, the metrics, and the entry point.

One item per line:

    {"id": "geo-001", "question": "What is the capital of France?",
     "choices": ["Berlin", "Paris", "Rome", "Madrid"], "answer": 1,        # index, or "B"
     "subject": "geography",                                             # optional
     "status": "approved"}                                               # optional, see below

`status` is "approved" (the default when absent) or "draft": items drafted by mc_generate.py
wait for a human check and are left out of scoring unless `include_drafts=True`.

Scoring follows lm-evaluation-harness's multiple_choice tasks: the context is
"Question: <question>\nAnswer:", each choice is the continuation " <choice>", and a choice's
score is the summed log-probability of its tokens given the context. acc takes the argmax of
that sum; acc_norm divides it by the choice's length in characters first (lm-eval's
`completion_len = len(choice)`, the choice without the leading space; for ASCII text that is
its UTF-8 byte count), which removes the bias towards short answers without depending on the
tokenizer.

Both scorers (mc_gguf.py, mc_hf.py) split tokens with mc_tokens.split_tokens, so they score the
same token sequences and can be compared number for number.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from . import mc_gguf, mc_hf

LETTERS = "ABCDEFGHIJ"
STATUSES = ("approved", "draft")


class MCFormatError(ValueError):
    """A multiple-choice file or item that does not follow the format; the message names the line."""


# -- format ---------------------------------------------------------------------------------


def validate_item(row: object, where: str = "item") -> dict:
    """A checked, normalised copy of one item (answer as an int index, status filled in)."""
    if not isinstance(row, dict):
        raise MCFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("id", "question", "choices", "answer"):
        if key not in row:
            raise MCFormatError(f"{where}: missing {key!r}")
    item_id, question, choices, answer = row["id"], row["question"], row["choices"], row["answer"]
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or str(item_id) == "":
        raise MCFormatError(f"{where}: 'id' must be a non-empty string or an integer")
    if not isinstance(question, str) or not question.strip():
        raise MCFormatError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
        raise MCFormatError(f"{where}: 'choices' must be a list of 2 to {len(LETTERS)} strings")
    if not all(isinstance(c, str) and c.strip() for c in choices):
        raise MCFormatError(f"{where}: every choice must be a non-empty string")
    if len({c.strip() for c in choices}) != len(choices):
        raise MCFormatError(f"{where}: choices must be distinct, got {choices}")
    if isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().upper() in LETTERS:
        index = LETTERS.index(answer.strip().upper())
    elif isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    else:
        raise MCFormatError(f"{where}: 'answer' must be a choice index or a letter A-{LETTERS[len(choices) - 1]}, "
                            f"got {answer!r}")
    if not 0 <= index < len(choices):
        raise MCFormatError(f"{where}: 'answer' {answer!r} is out of range for {len(choices)} choices")
    subject = row.get("subject", "general")
    if not isinstance(subject, str) or not subject:
        raise MCFormatError(f"{where}: 'subject' must be a non-empty string")
    status = row.get("status", "approved")
    if status not in STATUSES:
        raise MCFormatError(f"{where}: 'status' must be one of {STATUSES}, got {status!r}")
    return {**row, "id": str(item_id), "answer": index, "subject": subject, "status": status}


def load_mc(path: str | Path) -> list[dict]:
    """All items of a JSONL file, validated (drafts included: `evaluate_mc` decides what it scores)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multiple-choice file {path} does not exist")
    items, seen = [], {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise MCFormatError(f"{where}: not JSON ({exc})") from None
        item = validate_item(row, where)
        if item["id"] in seen:
            raise MCFormatError(f"{where}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
        seen[item["id"]] = line_no
        items.append(item)
    if not items:
        raise MCFormatError(f"{path}: no items")
    return items


# -- prompt ---------------------------------------------------------------------------------


def render_context(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


def render_continuation(choice: str) -> str:
    return " " + choice.strip()


def scoring_requests(items: list[dict]) -> list[tuple[str, list[str]]]:
    """(context, continuations) per item: what a scorer computes log-likelihoods for."""
    return [(render_context(it["question"]), [render_continuation(c) for c in it["choices"]]) for it in items]


# -- metrics --------------------------------------------------------------------------------


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))  # ties → the first, as np.argmax


def mc_metrics(items: list[dict], logprobs: list[list[float]]) -> dict:
    """acc, acc_norm and the per-subject breakdown from each choice's summed log-likelihood."""
    if len(items) != len(logprobs):
        raise ValueError(f"{len(items)} items but {len(logprobs)} log-likelihood lists")
    rows, by_subject = [], {}
    for it, lps in zip(items, logprobs):
        if len(lps) != len(it["choices"]):
            raise ValueError(f"item {it['id']}: {len(it['choices'])} choices but {len(lps)} log-likelihoods")
        normed = [lp / max(len(c.strip()), 1) for lp, c in zip(lps, it["choices"])]
        row = {"id": it["id"], "subject": it["subject"], "pred": argmax(lps), "pred_norm": argmax(normed),
               "gold": it["answer"], "logprobs": [float(x) for x in lps]}
        rows.append(row)
        by_subject.setdefault(it["subject"], []).append(row)

    def summary(rs: list[dict]) -> dict:
        n = len(rs)
        return {"n": n, "acc": sum(r["pred"] == r["gold"] for r in rs) / n if n else math.nan,
                "acc_norm": sum(r["pred_norm"] == r["gold"] for r in rs) / n if n else math.nan}

    return {**summary(rows), "by_subject": {s: summary(rs) for s, rs in sorted(by_subject.items())}, "items": rows}


# -- entry point ----------------------------------------------------------------------------


def evaluate_mc(variant, items: list[dict], *, n_threads: int | None = None, include_drafts: bool = False) -> dict:
    """Scores `items` with `variant` (training/evaluation/variants.py) and returns mc_metrics' dict.

    GGUF variants go through llama-cpp-python (mc_gguf.py), Hugging Face folders through
    transformers (mc_hf.py, the only path that imports torch). Adds "variant", "skipped_drafts"
    and "seconds" (wall time of loading and scoring).
    """
    items = [validate_item(it, f"item {i}") for i, it in enumerate(items)]
    scored = [it for it in items if include_drafts or it["status"] != "draft"]
    if not scored:
        raise ValueError("no items to score (all are drafts; pass include_drafts=True to score them)")
    t0 = time.perf_counter()
    if variant.kind == "gguf":
        loglikelihoods = mc_gguf.loglikelihoods
    elif variant.kind == "hf":
        loglikelihoods = mc_hf.loglikelihoods
    else:
        raise ValueError(f"variant {variant.name!r}: unknown kind {variant.kind!r}")
    # llama.cpp needs the file (embedded:smollm2 → the wheel's GGUF); training/model.py resolves HF paths itself.
    path = variant.resolved_path if variant.kind == "gguf" else variant.path
    lls = loglikelihoods(path, scoring_requests(scored), n_threads=n_threads)
    result = mc_metrics(scored, lls)
    return {"variant": variant.name, **result, "skipped_drafts": len(items) - len(scored),
            "seconds": round(time.perf_counter() - t0, 2)}
