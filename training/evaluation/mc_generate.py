"""Drafting multiple-choice items from a domain corpus, by rule, for a human to check.

A domain corpus (the folder `hearth data` reads: .txt / .md / .html / .jsonl) usually defines its
own vocabulary: "A purchase order is a document that ...", "- **SKU**: the stock-keeping unit ...".
Each such definition becomes two items, with distractors of the same kind from the same corpus:

  term        Which term is defined as follows: "<definition>"?   choices: this term + 3 other terms
  definition  What does "<term>" mean?                            choices: this definition + 3 others

Rules cannot tell a good item from a misleading one (a definition that is true of two terms, a
sentence that only looks definitional), so every item is written with "status": "draft" and a
"source" naming the document and sentence; `evaluate_mc` skips drafts until `approve` marks them.

    python -m training.evaluation.mc_generate CORPUS_DIR OUT.jsonl [--subject billing]
    python -m training.evaluation.mc_generate --approve OUT.jsonl [ID ...]     # no ids: all drafts
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

from training.data import load_corpus
from training.io import sha256_text, write_jsonl

from .mc import LETTERS, load_mc

# "X is a/an/the ...", "X are ...", "X refers to ...", "X means ...": the subject is 1-5 words
# with no pronoun, so "It is a good idea" or "This is the case" are not taken for definitions.
_VERB = re.compile(r"^(?P<term>.{2,60}?) (?P<verb>is|are|refers to|means) (?P<definition>(?:a|an|the|any|one) .+)$")
_COLON = re.compile(r"^(?P<term>[^:]{2,60}): (?P<definition>.+)$")  # glossary lines: "SKU: the stock-keeping unit"
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_BLOCK_START = re.compile(r"^\s*(?:[-+*]|\d+[.)]|#+)\s+")  # a bullet, numbered line or heading starts a block
_MARKUP = re.compile(r"[*_`]+")
_NOT_TERMS = {"it", "this", "that", "these", "those", "there", "here", "he", "she", "they", "we", "you", "i",
              "which", "what", "who", "one", "each", "all", "some", "such", "its", "his", "her", "their", "our"}
_NOT_GLOSSARY = {"note", "example", "warning", "tip", "see", "step", "important", "summary", "update", "question",
                 "answer", "caution", "result", "output", "input"}  # "Note: ..." labels a remark, defines nothing
_VERBS = {"is", "are", "was", "were", "has", "have", "be", "can", "will", "must", "should"}
DEF_CHARS = (8, 200)  # a definition shorter than 8 characters says nothing; one over 200 is a paragraph


def sentences(text: str) -> list[str]:
    """Sentences of a document, light Markdown removed.

    Wrapped prose lines join into their paragraph; a bullet, numbered line or heading is a block
    of its own, so a glossary line never runs into the next one.
    """
    blocks, current = [], []
    for line in text.splitlines():
        if not line.strip() or _BLOCK_START.match(line):
            if current:
                blocks.append(" ".join(current))
                current = []
            if line.strip():
                blocks.append(_BLOCK_START.sub("", line))
        else:
            current.append(line.strip())
    if current:
        blocks.append(" ".join(current))
    out = []
    for block in blocks:
        block = _MARKUP.sub("", block).strip()
        out.extend(s.strip() for s in _SENTENCE_END.split(block) if s.strip())
    return out


def _term_ok(term: str) -> bool:
    words = term.split()
    return (1 <= len(words) <= 5 and words[0].lower() not in _NOT_TERMS and not term.endswith(",")
            and any(ch.isalpha() for ch in term) and not any(ch in term for ch in ".;!?\"()")
            and not _VERBS & {w.lower() for w in words})  # "The rule is simple: …" names no term


def definition_of(sentence: str) -> dict | None:
    """{"term", "definition"} when the sentence defines a term, else None."""
    text = sentence.rstrip(".").strip()
    m = _COLON.match(text)
    if m and m.group("term").strip().lower() in _NOT_GLOSSARY:
        return None
    m = m or _VERB.match(text)
    if not m:
        return None
    term = _ARTICLE.sub("", m.group("term").strip())
    definition = m.group("definition").strip().rstrip(".")
    if not _term_ok(term) or not DEF_CHARS[0] <= len(definition) <= DEF_CHARS[1]:
        return None
    if term.lower() in definition.lower().split():  # "X is an X that…" gives the answer away
        return None
    return {"term": term, "definition": definition}


def find_definitions(docs: list[dict]) -> list[dict]:
    """The first definition of each term across the corpus, in document order, with its source."""
    seen, out = set(), []
    for doc in docs:
        if "text" not in doc:
            continue
        for i, sentence in enumerate(sentences(doc["text"])):
            found = definition_of(sentence)
            if found and found["term"].lower() not in seen:
                seen.add(found["term"].lower())
                out.append({**found, "source": {"doc": doc["id"], "sentence": i, "text": sentence}})
    return out


def _distractors(rng: random.Random, answer: str, pool: list[str], k: int) -> list[str]:
    """k entries of `pool` unlike `answer`, preferring those of similar length (same kind, less of a hint)."""
    candidates = sorted({p for p in pool if p.lower() != answer.lower()},
                        key=lambda p: (abs(len(p.split()) - len(answer.split())), rng.random()))
    picked: list[str] = []
    for p in candidates:
        if p.lower() not in {x.lower() for x in picked}:
            picked.append(p)
        if len(picked) == k:
            break
    return picked


def draft_items(docs: list[dict], *, subject: str = "domain", n_choices: int = 4, seed: int = 0,
                kinds: tuple[str, ...] = ("term", "definition")) -> list[dict]:
    """Draft items (status "draft") from corpus documents (training.data.load_corpus' dicts).

    Needs at least n_choices definitions (fewer give no distractors and no items). The gold
    position cycles through a shuffled A..D block per n_choices items, so answers stay balanced.
    """
    defs = find_definitions(docs)
    if len(defs) < n_choices:
        return []
    rng = random.Random(seed)
    terms, definitions = [d["term"] for d in defs], [d["definition"] for d in defs]
    items, positions = [], []
    for d in defs:
        for kind in kinds:
            if kind == "term":
                question, answer, pool = f'Which term is defined as follows: "{d["definition"]}"?', d["term"], terms
            elif kind == "definition":
                question, answer, pool = f'What does "{d["term"]}" mean?', d["definition"], definitions
            else:
                raise ValueError(f"unknown item kind {kind!r}; expected 'term' or 'definition'")
            wrong = _distractors(rng, answer, pool, n_choices - 1)
            if len(wrong) < n_choices - 1:
                continue
            if not positions:
                positions = list(range(n_choices))
                rng.shuffle(positions)
            gold = positions.pop()
            choices = wrong[:gold] + [answer] + wrong[gold:]
            key = sha256_text(f"{kind}\0{d['source']['doc']}\0{d['term']}")[:10]
            items.append({"id": f"gen-{kind}-{key}", "question": question, "choices": choices,
                          "answer": LETTERS[gold], "subject": subject, "status": "draft", "kind": kind,
                          "source": d["source"]})
    return items


def draft_from_corpus(folder: str | Path, **kwargs) -> list[dict]:
    return draft_items(load_corpus(folder), **kwargs)


def approve(items: list[dict], ids: list[str] | None = None) -> list[dict]:
    """Copies of `items` with the given ids (all drafts when None) marked "approved" after a human check."""
    known = {str(it["id"]) for it in items}
    missing = sorted(set(ids or []) - known)
    if missing:
        raise KeyError(f"no items with ids {missing}")
    wanted = None if ids is None else set(ids)
    return [{**it, "status": "approved"} if wanted is None or str(it["id"]) in wanted else dict(it) for it in items]


def approve_file(path: str | Path, ids: list[str] | None = None) -> int:
    """Approves items in a JSONL file in place (atomically); returns how many drafts remain."""
    items = approve(load_mc(path), ids)
    write_jsonl(path, items)
    return sum(it["status"] == "draft" for it in items)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluation.mc_generate", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", help="CORPUS OUT.jsonl, or with --approve: FILE.jsonl [ID ...]")
    p.add_argument("--approve", action="store_true", help="mark items of FILE approved (all drafts if no ids)")
    p.add_argument("--subject", default="domain")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.approve:
        left = approve_file(args.paths[0], args.paths[1:] or None)
        print(f"{args.paths[0]}: {left} drafts left")
        return 0
    if len(args.paths) != 2:
        p.error("expected CORPUS OUT.jsonl")
    items = draft_from_corpus(args.paths[0], subject=args.subject, seed=args.seed)
    if not items:
        print(f"{args.paths[0]}: fewer than 4 definitions found, no items drafted", file=sys.stderr)
        return 1
    write_jsonl(args.paths[1], items)
    print(f"{args.paths[1]}: {len(items)} draft items; check them, then --approve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
