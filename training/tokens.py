"""Samples → token ids with loss labels, and batches that waste no compute.

Rendering: chat samples go through the tokenizer's own chat template (the one stored in the
GGUF), raw text gets EOS appended. Labels are -100 (ignored) everywhere except:
  - raw text: every token (continued pre-training);
  - chat: the assistant turns, content plus the closing <|im_end|>, so the model learns to stop;
    for "verbatim" SQL samples only the last assistant turn (the few-shot answers before it are
    part of the prompt, as served).

Two batch shapes (`make_batches`):
  prefix  samples that share a long token prefix (every SQL sample on one database starts with
          the same instructions and schema, ~1,000 tokens on the sample database): the prefix is
          computed once per batch and its KV cache is shared by all suffixes. 8 samples × 1,200
          tokens become 1,000 + 8 × ~200 computed tokens, about 3.7× less work.
  packed  the rest, first-fit-decreasing into rows of seq_len tokens, position_ids restarting at
          each sample so transformers builds a block-diagonal causal mask (no cross-talk).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

IGNORE = -100


def render(tokenizer, messages: list[dict], *, add_generation_prompt: bool = False,
           template_kwargs: dict | None = None) -> str:
    """`template_kwargs` are extra template variables, as serving's (e.g. Text-to-SQL's
    {"enable_thinking": False}, server.sql.prompt.TEMPLATE_KWARGS)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         **(template_kwargs or {}))


def encode_chat(tokenizer, messages: list[dict], *, last_turn_only: bool = False,
                template_kwargs: dict | None = None) -> tuple[list[int], list[int]]:
    """Token ids and labels of one conversation, via character spans of the assistant turns.

    The whole conversation is tokenized once (so token boundaries are those of the full text,
    as at serving time) and each assistant span [end of the generation prompt, end of its
    <|im_end|>] is mapped onto tokens through the offsets. With `last_turn_only` (a served prompt)
    the generation prompt (rendered with `template_kwargs`, as serving renders it) must be a prefix
    of the conversation: what the model is trained to write is what the served prompt is continued
    with, else ValueError. Qwen3's template, for
    one, renders the last assistant turn after an empty think block, which its generation prompt
    holds only with enable_thinking=False (without it, the block is trained as part of the answer).
    """
    text = render(tokenizer, messages, template_kwargs=template_kwargs)
    spans = []
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for i in turns[-1:] if last_turn_only else turns:
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True, template_kwargs=template_kwargs)
        if last_turn_only and not text.startswith(prompt):  # a served prompt (verbatim): it must be exact
            raise ValueError("the chat template's generation prompt does not start the assistant turn it renders, "
                             "so the trained answer would not continue the served prompt")
        start = len(prompt)
        turn = render(tokenizer, messages[: i + 1], template_kwargs=template_kwargs)
        end = len(turn.rstrip("\n"))  # keep <|im_end|>, drop the newline
        if not text.startswith(turn[:end]):
            raise ValueError("the chat template does not render conversations incrementally")
        spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], []
    for tok, (a, b) in zip(ids, enc["offset_mapping"]):
        inside = any(a >= s and b <= e and b > a for s, e in spans)
        labels.append(tok if inside else IGNORE)
    return ids, labels


def encode_text(tokenizer, text: str, seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Raw text + EOS, every token trained, cut into pieces of at most seq_len tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return [(ids[i:i + seq_len], ids[i:i + seq_len]) for i in range(0, len(ids), seq_len)]


def encode_samples(tokenizer, samples: list[dict], seq_len: int) -> tuple[list[dict], dict]:
    """Encoded samples {"input_ids", "labels", "source"}. A chat sample longer than seq_len is
    dropped (cutting it would cut the answer) and counted, unless it is `verbatim`: a served prompt
    (Text-to-SQL: instructions, the schema, the question, the draft), which is kept whole in a row
    of its own (pack). Dropping those would silently train on none of a large schema's pairs: with
    upper-case names a 12-table schema prompt passes 2,048 tokens. Serving's context bounds them."""
    out, dropped, long_kept = [], 0, 0
    for s in samples:
        if "text" in s:
            for ids, labels in encode_text(tokenizer, s["text"], seq_len):
                if len(ids) > 1:
                    out.append({"input_ids": ids, "labels": labels, "source": s["source"], "id": s["id"]})
            continue
        ids, labels = encode_chat(tokenizer, s["messages"], last_turn_only=bool(s.get("verbatim")),
                                  template_kwargs=s.get("template_kwargs"))
        if len(ids) > seq_len:
            if not s.get("verbatim"):
                dropped += 1
                continue
            long_kept += 1
        out.append({"input_ids": ids, "labels": labels, "source": s["source"], "id": s["id"]})
    return out, {"too_long_for_seq_len": dropped, "longer_than_seq_len_kept": long_kept}


@dataclass
class Batch:
    """One micro-batch. kind "prefix": `prefix` ids [P] shared, `rows` suffixes; kind "packed":
    `rows` of concatenated samples with `positions` restarting per sample."""

    kind: str
    rows: list[list[int]]
    labels: list[list[int]]
    positions: list[list[int]] = field(default_factory=list)
    prefix: list[int] = field(default_factory=list)
    sample_tokens: int = 0  # tokens the samples hold before any sharing (what a plain run computes)

    @property
    def n_labels(self) -> int:
        return sum(1 for row in self.labels for t in row[1:] if t != IGNORE)

    @property
    def computed_tokens(self) -> int:
        return len(self.prefix) + sum(len(r) for r in self.rows)


def common_prefix(rows: list[list[int]]) -> int:
    n = min(len(r) for r in rows)
    for i in range(n):
        tok = rows[0][i]
        if any(r[i] != tok for r in rows[1:]):
            return i
    return n


def pack(samples: list[dict], seq_len: int) -> list[Batch]:
    """First-fit-decreasing packing into rows of <= seq_len tokens, one row per Batch entry."""
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i]["input_ids"]), i))
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in order:
        n = len(samples[i]["input_ids"])
        for r, used in enumerate(fill):
            if used + n <= seq_len:
                rows[r].append(i)
                fill[r] += n
                break
        else:
            rows.append([i])
            fill.append(n)
    out = []
    for members in rows:
        ids, labels, pos = [], [], []
        for i in members:
            s = samples[i]
            ids += s["input_ids"]
            # Each sample's first label must not be predicted from the previous sample's last token.
            labels += [IGNORE] + s["labels"][1:]
            pos += list(range(len(s["input_ids"])))
        out.append(Batch("packed", [ids], [labels], [pos], sample_tokens=len(ids)))
    return out


def make_batches(samples: list[dict], *, batch_size: int, seq_len: int, seed: int,
                 share_prefix: bool = True, min_prefix: int = 64) -> list[Batch]:
    """Deterministic micro-batches for one epoch (the order depends only on `seed`)."""
    rng = random.Random(seed)
    order = list(range(len(samples)))
    rng.shuffle(order)
    batches: list[Batch] = []
    leftovers: list[dict] = []
    if share_prefix:
        groups: dict[str, list[dict]] = {}
        for i in order:
            s = samples[i]
            if len(s["input_ids"]) > min_prefix and s["labels"][:min_prefix] == [IGNORE] * min_prefix:
                key = hashlib.sha1(repr(s["input_ids"][:min_prefix]).encode()).hexdigest()
                groups.setdefault(key, []).append(s)
            else:
                leftovers.append(s)
        for members in groups.values():
            for j in range(0, len(members), batch_size):
                chunk = members[j:j + batch_size]
                if len(chunk) == 1:
                    leftovers.extend(chunk)
                    continue
                p = common_prefix([s["input_ids"] for s in chunk])
                # No label inside the prefix, nor on the first suffix token (its prediction would
                # come from the prefix's last position, whose logits are never computed).
                p = min(p, min(_first_label(s["labels"]) for s in chunk) - 1)
                batches.append(Batch(
                    "prefix", [s["input_ids"][p:] for s in chunk], [s["labels"][p:] for s in chunk],
                    prefix=chunk[0]["input_ids"][:p], sample_tokens=sum(len(s["input_ids"]) for s in chunk)))
    else:
        leftovers = [samples[i] for i in order]
    packed = pack(leftovers, seq_len)
    # A packed row already holds several samples: group rows so a micro-batch holds about
    # batch_size samples' worth of tokens.
    mean_len = sum(len(s["input_ids"]) for s in leftovers) / max(len(leftovers), 1)
    per = max(1, round(batch_size * mean_len / seq_len))
    for j in range(0, len(packed), per):
        group = packed[j:j + per]
        batches.append(Batch("packed", [r for b in group for r in b.rows], [lb for b in group for lb in b.labels],
                             [p for b in group for p in b.positions], sample_tokens=sum(b.sample_tokens for b in group)))
    rng.shuffle(batches)
    return batches


def _first_label(labels: list[int]) -> int:
    return next((i for i, t in enumerate(labels) if t != IGNORE), len(labels))
