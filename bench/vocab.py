"""Vocabulary expansion on the served GGUF: tokens per character, and decode speed in characters/s.

    .venv/bin/hearth vocab training/recipes/sql_sample.yaml --heldout server/sql/sample/pairs/test.jsonl \
        --out var/vocab/sql-sample
    .venv/bin/python -m bench.vocab --expanded var/vocab/sql-sample            # ~5 minutes on 2 cores

Both models go the way a served model goes: the base (as a plain HF folder) and the expanded folder
of `hearth vocab` are exported with quantize/export.py to f16 and quantized to `--quant` (Q8_0, the
served type), cached in var/bench/vocab/. On held-out question/SQL pairs (default: the sample's
test split, never mined or trained on), each GGUF gets the question in its chat template, then:
  tokens/char  the SQL's tokens under the GGUF's own (llama.cpp) tokenizer, per character
  forced       the SQL fed one token per llama_decode after the prompt, as generation emits it:
               characters/s of the same text (the gain: fewer decodes for it), and the loss per
               character (nats) of that SQL given the question (the accuracy side: is the text
               as likely in fewer tokens?)
  greedy       free greedy answers (max --max-tokens): characters/s and the share of new tokens
               written (the model only gains speed if it writes the new tokens)
Passes alternate (A B, B A, ...) and run under bench.common's load check: figures taken while
other work used the cores are marked UNRELIABLE and the script exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import (
    CACHE,
    LoadGuard,
    add_load_args,
    exit_on_sigterm,
    guard_from_args,
    median,
    print_table,
    ratio,
)

PROMPT = "Write one SQLite query that answers the question.\nQuestion: {question}"


def served_gguf(hf_dir: Path, name: str, quant: str) -> Path:
    """hf_dir → f16 GGUF → `quant` GGUF under var/bench/vocab/, redone when the weights are newer."""
    from quantize.export import export_gguf
    from quantize.quant import quantize

    out = CACHE / "vocab" / f"{name}-{quant}.gguf"
    newest = max(p.stat().st_mtime for p in hf_dir.glob("*.safetensors"))
    if out.exists() and out.stat().st_mtime > newest:
        return out
    f16 = CACHE / "vocab" / f"{name}-F16.gguf"
    export_gguf(hf_dir, f16, name=name)
    quantize(f16, out, quant)
    f16.unlink()  # only the served file is measured
    return out


def forced(raw, prompt: list[int], answer: list[int]) -> tuple[float, float]:
    """(seconds in llama_decode, summed NLL in nats) of emitting `answer` after `prompt`, one token
    per decode; the log-softmax is computed outside the timed calls."""
    import llama_cpp

    llama_cpp.llama_memory_clear(raw.mem, True)
    raw._prefill(0, prompt)
    n_vocab = llama_cpp.llama_vocab_n_tokens(raw.vocab)
    one = (llama_cpp.llama_token * 1)()
    nll, seconds = 0.0, 0.0
    for tok in answer:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(raw.ctx, -1), shape=(n_vocab,)).astype(np.float64)
        m = logits.max()
        nll += float(m + np.log(np.exp(logits - m).sum()) - logits[tok])
        one[0] = tok
        t0 = time.perf_counter()
        if llama_cpp.llama_decode(raw.ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed")
        seconds += time.perf_counter() - t0
    return seconds, nll


def run_pass(raw, pairs: list[dict], max_tokens: int, first_new: int | None) -> dict:
    chars = tokens = 0
    f_seconds = nll = 0.0
    g_chars = g_tokens = g_new = g_all = 0
    g_seconds = 0.0
    for p in pairs:
        prompt = raw.chat_tokens(PROMPT.format(question=p["question"]))
        answer = raw.model.tokenize(p["sql"].encode(), add_bos=False, special=False)
        s, n = forced(raw, prompt, answer)
        f_seconds, nll, chars, tokens = f_seconds + s, nll + n, chars + len(p["sql"]), tokens + len(answer)
        res = raw.greedy(prompt, max_tokens)
        g_seconds += res.decode_time
        g_chars += len(raw.detokenize(res.tokens[1:]))  # the first token comes from the prefill, untimed
        g_tokens += max(0, len(res.tokens) - 1)
        g_new += sum(t >= first_new for t in res.tokens) if first_new is not None else 0
        g_all += len(res.tokens)
    return {"tokens_per_char": tokens / chars, "forced_chars_s": chars / f_seconds, "forced_tok_s": tokens / f_seconds,
            "nats_per_char": nll / chars, "greedy_chars_s": g_chars / g_seconds if g_seconds else float("nan"),
            "greedy_tok_s": g_tokens / g_seconds if g_seconds else float("nan"),
            "greedy_new_token_share": g_new / max(1, g_all)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expanded", required=True, help="HF model folder with added tokens: `hearth vocab`'s output, "
                                                      "or a model merged from an adapter trained on it.")
    ap.add_argument("--base", default="embedded:smollm2", help="The model it was expanded from.")
    ap.add_argument("--quant", default="Q8_0", help="Served quantization both are measured in.")
    ap.add_argument("--pairs", default=None, help="Held-out question/SQL .jsonl (default: the sample's test split).")
    ap.add_argument("--limit", type=int, default=30, help="Pairs measured (spread over the file).")
    ap.add_argument("--max-tokens", type=int, default=48, help="Greedy answer length cap, tokens.")
    ap.add_argument("--repeats", type=int, default=2, help="Passes per model (alternating order).")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--json", default=None, help="Also write the figures here.")
    add_load_args(ap)
    args = ap.parse_args(argv)
    exit_on_sigterm()

    import llama_cpp

    from bench.raw import RawModel
    from server.sql.sample.paths import PAIRS_DIR
    from training.io import read_jsonl
    from training.model import materialize_base

    expanded = Path(args.expanded)
    rows = read_jsonl(args.pairs or PAIRS_DIR / "test.jsonl")
    pairs = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    paths = {"base": served_gguf(materialize_base(args.base), "base", args.quant),
             "expanded": served_gguf(expanded, f"{expanded.name}-vocab", args.quant)}
    models = {k: RawModel(p, n_threads=args.threads, n_ctx=1024) for k, p in paths.items()}
    # Added tokens come after the base vocabulary, so any expanded folder works (`hearth vocab`'s
    # output, or a model merged from a LoRA trained on it).
    n_base = llama_cpp.llama_vocab_n_tokens(models["base"].vocab)
    added = llama_cpp.llama_vocab_n_tokens(models["expanded"].vocab) - n_base
    first_new = {"base": None, "expanded": n_base}
    guard: LoadGuard = guard_from_args(args)
    results: dict[str, list[dict]] = {k: [] for k in models}
    for k, m in models.items():  # warm-up: first-call allocations are not what we measure
        run_pass(m, pairs[:2], 8, first_new[k])
    order = list(models)
    for rep in range(args.repeats):
        for k in order if rep % 2 == 0 else order[::-1]:
            with guard.measure(f"{k} pass {rep + 1}") as rec:
                res = run_pass(models[k], pairs, args.max_tokens, first_new[k])
            results[k].append(res | {"load": rec.tag()})
            print(f"  {k} pass {rep + 1}: forced {res['forced_chars_s']:.0f} chars/s, greedy "
                  f"{res['greedy_chars_s']:.0f} chars/s  [{rec.tag()}]", flush=True)
    for m in models.values():
        m.close()

    keys = ("tokens_per_char", "forced_tok_s", "forced_chars_s", "nats_per_char", "greedy_tok_s", "greedy_chars_s",
            "greedy_new_token_share")
    summary = {k: {f: median([r[f] for r in results[k]]) for f in keys} for k in models}
    table = [[f, summary["base"][f], summary["expanded"][f], ratio(summary["expanded"][f], summary["base"][f])]
             for f in keys]
    print_table(["figure (median of passes)", "base", "expanded", "expanded/base"], table,
                title=f"{len(pairs)} held-out pairs, {args.quant} GGUFs, {args.threads} threads, "
                      f"{added} added tokens")
    print(f"\nspeed-up in characters/s: forced {table[2][3]:.3f}x, greedy {table[5][3]:.3f}x; "
          f"tokens per character {table[0][3]:.3f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"paths": {k: str(p) for k, p in paths.items()}, "pairs": len(pairs),
                                               "summary": summary, "passes": results}, indent=2))
    return guard.summary_exit()


if __name__ == "__main__":
    sys.exit(main())
