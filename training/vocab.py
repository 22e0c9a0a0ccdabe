"""`hearth vocab`: domain tokens for strings the base tokenizer splits badly.

    hearth vocab training/recipes/sql_sample.yaml --heldout server/sql/sample/pairs/test.jsonl
    hearth vocab corpus/ --n-tokens 128 --out var/vocab/mine      # a corpus folder/file or pairs .jsonl

1. Mine: identifiers in the domain texts (the sample's ` customer_id`, `.unit_price`, ...), scored
   by count × tokens saved under the base tokenizer. SmolLM2's byte-level pre-tokenizer cuts
   ` customer_id` into ` customer`, `_`, `id` before BPE runs, so no BPE merge could join them:
   they become *added* tokens (not special), which both transformers and llama.cpp match in raw
   text before BPE.
2. Expand: the tokenizer gets the tokens, the embedding (and an untied lm_head) one row each,
   set to the mean of the rows of the token's old pieces.
3. Train only the new rows for a few steps (plain LM loss on the domain texts; every other weight
   frozen), so the model also *writes* the new tokens: a mean row alone is understood as input but
   rarely wins the argmax.
4. Save a plain HF model folder atomically, with vocab_report.json: held-out tokens per character
   before/after and held-out loss per character (nats; comparable across tokenizers) of the base,
   the mean-initialised and the trained model.
Then train on it with `base_model: <that folder>`; quantize/export.py writes the added tokens into
the GGUF as USER_DEFINED.

Why only `[ .]word` strings: transformers picks the leftmost-longest added token, llama.cpp the
longest first over the whole text. They agree when no token can start inside another, which holds
when every token is one start character (space or dot) plus a word without either.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

from .io import atomic_dir, read_jsonl

CANDIDATE = re.compile(r"[ .][A-Za-z_][A-Za-z0-9_]*(?!\w)")
REPORT = "vocab_report.json"  # not vocab.json: that is a slow GPT-2 tokenizer's file name


# -- texts ------------------------------------------------------------------------------------


def read_texts(path: str | Path) -> list[str]:
    """Domain texts of a corpus file/folder (data.load_corpus), or question and SQL of a pairs .jsonl."""
    from .data import load_corpus

    path = Path(path)
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        if rows and "sql" in rows[0]:
            return [t for r in rows for t in (r.get("question"), r["sql"]) if t]
    texts = []
    for doc in load_corpus(path):
        texts += [doc["text"]] if "text" in doc else [m["content"] for m in doc["messages"]]
    return texts


def recipe_texts(recipe) -> list[str]:
    """Texts of the recipe's domain sources (replay is general text: never mined)."""
    from .data import load_chat

    texts = []
    for s in recipe.sources:
        if s.role == "domain" and s.kind != "replay" and s.path:
            texts += read_texts(s.path) if s.kind != "chat" else [
                m["content"] for d in load_chat(s.path) for m in d["messages"]]
    return texts


# -- mining -----------------------------------------------------------------------------------


def pieces(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def mine(texts: list[str], tokenizer, n: int, *, min_count: int = 5, min_pieces: int = 2) -> list[dict]:
    """The n candidates with the largest count × (pieces - 1), the tokens one added token saves."""
    counts = Counter(m.group(0) for t in texts for m in CANDIDATE.finditer(t))
    vocab = tokenizer.get_vocab()
    scored = []
    for s, c in counts.items():
        if c < min_count or s in vocab:
            continue
        k = len(pieces(tokenizer, s))
        if k >= min_pieces:
            scored.append({"token": s, "count": c, "pieces": k, "saved": c * (k - 1)})
    scored.sort(key=lambda r: (-r["saved"], r["token"]))  # ties by name: deterministic
    return scored[:n]


def tokens_per_char(tokenizer, texts: list[str]) -> float:
    return sum(len(pieces(tokenizer, t)) for t in texts) / max(1, sum(len(t) for t in texts))


# -- expansion --------------------------------------------------------------------------------


def add_tokens(model, tokenizer, strings: list[str]) -> list[int]:
    """Adds `strings` as non-special tokens; new rows = mean of the old pieces' rows. Returns their ids."""
    import torch
    from tokenizers import AddedToken

    old_pieces = [pieces(tokenizer, s) for s in strings]
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) != rows:  # new ids would land on padding rows, and the GGUF needs one row per token
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the embedding {rows} rows")
    added = tokenizer.add_tokens([AddedToken(s, normalized=False, special=False) for s in strings])
    if added != len(strings):
        raise ValueError(f"only {added} of {len(strings)} tokens were new to the tokenizer")
    ids = tokenizer.convert_tokens_to_ids(strings)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # we set the rows below
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied = head is not None and head.weight.data_ptr() != emb.data_ptr()
    with torch.no_grad():
        for i, old in zip(ids, old_pieces):
            emb[i] = emb[old].mean(0)
            if untied:
                head.weight[i] = head.weight[old].mean(0)
    return ids


# -- training the new rows and measuring ------------------------------------------------------


def _batch(tokenizer, texts: list[str], seq_len: int, prefix: int):
    """Right-padded ids, mask and labels; every text starts after `prefix` (a fixed separator token),
    so its first token is predicted too and losses of different tokenizers cover the same text."""
    import torch

    seqs = [[prefix] + pieces(tokenizer, t)[: seq_len - 1] for t in texts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), prefix, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, 0] = -100
    return ids, mask, labels


def _summed_nll(model, tokenizer, texts: list[str], seq_len: int):
    import torch.nn.functional as F

    ids, mask, labels = _batch(tokenizer, texts, seq_len, tokenizer.eos_token_id)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), reduction="sum")


def nats_per_char(model, tokenizer, texts: list[str], *, batch_size: int = 16, seq_len: int = 512) -> float:
    """Held-out loss per character: -log p(text) / len(text), the same unit whatever the tokenizer."""
    import torch

    total = 0.0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            total += float(_summed_nll(model, tokenizer, texts[i:i + batch_size], seq_len))
    return total / max(1, sum(len(t) for t in texts))


def train_new_rows(model, tokenizer, texts: list[str], first_new: int, *, steps: int, lr: float,
                   batch_size: int, seq_len: int, seed: int = 0) -> dict:
    """AdamW on the embedding (tied: also the output) rows >= first_new; every other weight frozen.

    Gradients of the old rows are zeroed by a hook, so Adam's update of them is exactly 0 (no weight
    decay). The loss covers every position: the new rows also learn where they must *not* be written.
    """
    import torch

    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != trained[0].data_ptr():
        trained.append(head.weight)
    hooks = []
    for w in trained:
        w.requires_grad_(True)
        keep = torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device)
        keep[first_new:] = 1
        hooks.append(w.register_hook(lambda g, keep=keep: g * keep))
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    order: list[str] = []
    losses, t0 = [], time.perf_counter()
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.sample(texts, len(texts))
        batch, order = order[:batch_size], order[batch_size:]
        ids, mask, labels = _batch(tokenizer, batch, seq_len, tokenizer.eos_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
    for h in hooks:
        h.remove()
    for p in trained:
        p.requires_grad_(False)
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1), "loss_first": losses[:1],
            "loss_last": losses[-1:]}


# -- the verb ---------------------------------------------------------------------------------


def expand(base: str, texts: list[str], heldout: list[str], out: str | Path, cfg, *, seed: int = 0,
           eval_texts: int = 200) -> dict:
    """Mines, expands, trains the new rows and writes `out` (HF model folder + vocab_report.json)."""
    import torch

    from .model import load_model, load_tokenizer

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(base)
    model = load_model(base, dtype=torch.float32).eval()
    chosen = mine(texts, tokenizer, cfg.n_tokens, min_count=cfg.min_count, min_pieces=cfg.min_pieces)
    if not chosen:
        raise ValueError(f"no string seen >= {cfg.min_count} times splits into >= {cfg.min_pieces} tokens")
    # A seeded sample, not every k-th text: pairs files alternate question and SQL, and a stride
    # of 2 would measure only one of the two.
    probe = random.Random(seed).sample(heldout, min(eval_texts, len(heldout)))
    before = {"tokens_per_char": tokens_per_char(tokenizer, heldout),
              "nats_per_char": nats_per_char(model, tokenizer, probe)}
    ids = add_tokens(model, tokenizer, [c["token"] for c in chosen])
    init = {"tokens_per_char": tokens_per_char(tokenizer, heldout),
            "nats_per_char": nats_per_char(model, tokenizer, probe)}
    train = train_new_rows(model, tokenizer, texts, min(ids), steps=cfg.train_steps, lr=cfg.lr,
                           batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=seed) if cfg.train_steps else {}
    after = {"nats_per_char": nats_per_char(model, tokenizer, probe)}
    report = {
        "base": base, "added": len(ids), "first_id": min(ids), "vocab_size": len(tokenizer),
        "tokens": [c | {"id": i} for c, i in zip(chosen, ids)],
        "heldout": {"texts": len(heldout), "chars": sum(len(t) for t in heldout),
                    "tokens_per_char_before": before["tokens_per_char"],
                    "tokens_per_char_after": init["tokens_per_char"],
                    "token_reduction": 1 - init["tokens_per_char"] / before["tokens_per_char"],
                    "loss_texts": len(probe), "nats_per_char_base": before["nats_per_char"],
                    "nats_per_char_mean_init": init["nats_per_char"], "nats_per_char_trained": after["nats_per_char"]},
        "train": train | {"lr": cfg.lr, "batch_size": cfg.batch_size, "texts": len(texts)},
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def add_arguments(parser: argparse.ArgumentParser, verb: str = "vocab") -> None:
    parser.add_argument("target", help="Recipe YAML (its domain sources and `vocab` section), or a corpus "
                                       "file/folder or question/SQL pairs .jsonl.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Recipe override, e.g. --set vocab.n_tokens=128 (repeatable).")
    parser.add_argument("--base", default=None, help="Base model (default: the recipe's base_model, else embedded:smollm2).")
    parser.add_argument("--n-tokens", type=int, default=None, help="Domain tokens to add (vocab.n_tokens).")
    parser.add_argument("--train-steps", type=int, default=None, help="Steps on the new rows (vocab.train_steps).")
    parser.add_argument("--heldout", default=None, help="Held-out corpus or pairs file for the figures "
                                                        "(default: every vocab.heldout_every-th text).")
    parser.add_argument("--out", default=None, help="Output model folder (vocab.out).")


def run(args: argparse.Namespace, verb: str = "vocab") -> int:
    from .recipe import load_recipe

    overrides = list(args.overrides)
    for key, value in (("n_tokens", args.n_tokens), ("train_steps", args.train_steps), ("out", args.out)):
        if value is not None:
            overrides.append(f"vocab.{key}={value}")
    is_recipe = str(args.target).endswith((".yaml", ".yml"))
    recipe = load_recipe(args.target if is_recipe else None, overrides)
    base = args.base or recipe.base_model
    texts = recipe_texts(recipe) if is_recipe else read_texts(args.target)
    if args.heldout:
        heldout = read_texts(args.heldout)
    else:
        every = recipe.vocab.heldout_every
        texts, heldout = [t for i, t in enumerate(texts) if i % every], texts[::every]
    if not texts or not heldout:
        raise ValueError(f"{args.target}: no domain texts to mine and hold out")
    name = recipe.name if is_recipe else Path(args.target).stem
    out = Path(recipe.vocab.out or Path(os.environ.get("HEARTH_DATA_DIR", "var")) / "vocab" / name)
    import torch

    torch.set_num_threads(recipe.train.threads or len(os.sched_getaffinity(0)))
    report = expand(base, texts, heldout, out, recipe.vocab, seed=recipe.train.seed)
    h = report["heldout"]
    print(json.dumps({"out": str(out), "added": report["added"], "top": [t["token"] for t in report["tokens"][:12]],
                      **{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()},
                      "train": report["train"]}, indent=2))
    print(f"tokens per character on {h['texts']} held-out texts: {h['tokens_per_char_before']:.4f} → "
          f"{h['tokens_per_char_after']:.4f} ({h['token_reduction']:.1%} fewer tokens); loss per character "
          f"{h['nats_per_char_base']:.4f} base, {h['nats_per_char_mean_init']:.4f} mean-init, "
          f"{h['nats_per_char_trained']:.4f} trained (nats)")
    print(f"next: set `base_model: {out}` in the recipe (and export with quantize/export.py as usual)")
    return 0
