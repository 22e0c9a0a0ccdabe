"""Loading and cleaning training data.

Three kinds of input, each becoming a list of sample dicts:

  domain corpus   a folder of .txt / .md / .html / .jsonl ({"text": ...}) files  → {"text"}
  chat pairs      JSONL of {"messages": [...]} or {"prompt"/"instruction", "response"/"output"}
                                                                                  → {"messages"}
  SQL pairs       JSONL of {question, sql, database}, see training/sql.py         → {"messages"}

Every sample also carries "source" (the recipe's name for its input) and "id".

Cleaning, in order: Unicode NFKC + whitespace normalisation, exact duplicates (sha256 of the
normalised text), near duplicates (MinHash over word 5-shingles with LSH banding, confirmed by the
true Jaccard), length filters, and chunking of long documents at paragraph boundaries.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from .io import read_jsonl

CORPUS_SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl")


# -- loading --------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page: drops script/style, keeps block structure as newlines."""

    _SKIP = {"script", "style", "noscript", "head"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return html.unescape("".join(parser.parts))


def load_corpus(folder: str | Path, source: str = "domain") -> list[dict]:
    """Documents from a file or a folder (recursively, in sorted path order for determinism)."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"corpus {root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in CORPUS_SUFFIXES)
    docs = []
    for path in files:
        rel = path.name if root.is_file() else str(path.relative_to(root))
        if path.suffix.lower() == ".jsonl":
            for i, row in enumerate(read_jsonl(path)):
                if "messages" in row:  # a chat file dropped into the corpus folder: keep it as chat
                    docs.append({"messages": row["messages"], "source": source, "id": f"{rel}:{i}"})
                elif row.get("text"):
                    docs.append({"text": str(row["text"]), "source": source, "id": f"{rel}:{i}"})
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        text = html_to_text(raw) if path.suffix.lower() in (".html", ".htm") else raw
        docs.append({"text": text, "source": source, "id": rel})
    return docs


def load_chat(path: str | Path, source: str = "chat") -> list[dict]:
    """Instruction pairs as chat messages. Accepts the OpenAI messages shape and alpaca-style rows."""
    out = []
    for i, row in enumerate(read_jsonl(path)):
        if "messages" in row:
            messages = row["messages"]
        else:
            prompt = row.get("prompt") or row.get("instruction") or row.get("question")
            answer = row.get("response") or row.get("output") or row.get("answer")
            if prompt is None or answer is None:
                raise ValueError(f"{path}:{i + 1}: expected messages, or prompt/instruction and response/output")
            if row.get("input"):
                prompt = f"{prompt}\n\n{row['input']}"
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError(f"{path}:{i + 1}: the last message must be the assistant's answer")
        out.append({"messages": messages, "source": source, "id": str(row.get("id", i))})
    return out


# -- cleaning -------------------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*(\n\s*)+")


def normalize(text: str) -> str:
    """NFKC, unified newlines, runs of spaces collapsed, at most one blank line, no control chars."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


def sample_text(sample: dict) -> str:
    """The text a sample contributes, for hashing, dedup and length checks.

    SQL samples set "dedup_key" (question + SQL): their rendered prompts all share the schema, so
    comparing whole prompts would call every pair a near duplicate of every other.
    """
    if "dedup_key" in sample:
        return sample["dedup_key"]
    if "text" in sample:
        return sample["text"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in sample["messages"])


def dedup_exact(samples: list[dict]) -> tuple[list[dict], int]:
    seen: set[str] = set()
    kept = []
    for s in samples:
        key = hashlib.sha256(sample_text(s).encode("utf-8")).hexdigest()
        if key not in seen:
            seen.add(key)
            kept.append(s)
    return kept, len(samples) - len(kept)


def shingles(text: str, n: int = 5) -> set[int]:
    """Hashed word n-grams (blake2b, so the values are the same in every process)."""
    words = re.findall(r"\w+", text.lower())
    grams = [" ".join(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))] if words else []
    return {int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") >> 1 for g in grams}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


_PRIME = (1 << 61) - 1


def minhash(sh: set[int], num_perm: int = 64, seed: int = 1) -> np.ndarray:
    """MinHash signature: min over the shingles of num_perm universal hashes (a·x + b) mod p."""
    rng = np.random.default_rng(seed)  # same seed for every document, so signatures compare
    a = rng.integers(1, 1 << 31, num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, num_perm, dtype=np.uint64)
    if not sh:
        return np.full(num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
    x = np.fromiter(sh, dtype=np.uint64, count=len(sh)) % np.uint64(1 << 31)
    # x < 2^31 and a < 2^31, so a·x + b < 2^63: no uint64 overflow before the modulo.
    return ((np.outer(x, a) + b) % np.uint64(_PRIME)).min(axis=0)


def dedup_near(samples: list[dict], threshold: float = 0.8, num_perm: int = 64, bands: int = 16) -> tuple[list[dict], int]:
    """Drops samples whose 5-shingle Jaccard with an earlier kept sample is >= threshold.

    LSH: signatures cut into `bands` bands of num_perm/bands rows; two samples become candidates
    when any band matches. With 16 bands of 4 rows, a pair at Jaccard 0.8 is a candidate with
    probability 1-(1-0.8^4)^16 ≈ 0.9997; at 0.3 with about 0.12. Candidates are confirmed with the
    exact Jaccard, so LSH only saves time and never removes a false positive.
    """
    rows = num_perm // bands
    buckets: dict[tuple, list[int]] = {}
    kept: list[dict] = []
    kept_sh: list[set[int]] = []
    for s in samples:
        sh = shingles(sample_text(s))
        sig = minhash(sh, num_perm)
        keys = [(band, sig[band * rows:(band + 1) * rows].tobytes()) for band in range(bands)]
        candidates = {j for k in keys for j in buckets.get(k, ())}
        if any(jaccard(sh, kept_sh[j]) >= threshold for j in candidates):
            continue
        for k in keys:
            buckets.setdefault(k, []).append(len(kept))
        kept.append(s)
        kept_sh.append(sh)
    return kept, len(samples) - len(kept)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Splits at paragraph boundaries (then lines, then hard cuts) into pieces <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"(\n\n|\n)", text):
        if len(current) + len(para) <= max_chars:
            current += para
            continue
        if current.strip():
            pieces.append(current.strip())
        while len(para) > max_chars:  # one paragraph longer than a chunk: hard cut at a space
            cut = para.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(para[:cut].strip())
            para = para[cut:]
        current = para
    if current.strip():
        pieces.append(current.strip())
    return pieces


def clean(samples: list[dict], *, min_chars: int = 32, max_chars: int = 20000, chunk_chars: int = 2000,
          near_dup_threshold: float = 0.8) -> tuple[list[dict], dict]:
    """Normalise, chunk raw text, filter by length, drop exact then near duplicates.

    Returns the kept samples and counts of what each step removed (for the manifest). Chat
    samples are normalised per message but never chunked (an answer cut in half teaches nothing).
    """
    stats = {"input": len(samples), "too_short": 0, "too_long": 0, "chunks_added": 0}
    out: list[dict] = []
    for s in samples:
        if "text" in s:
            text = normalize(s["text"])
            if len(text) > max_chars * 50:  # pathological file (a log dump): refuse it whole
                stats["too_long"] += 1
                continue
            parts = chunk_text(text, chunk_chars)
            stats["chunks_added"] += len(parts) - 1
            for j, part in enumerate(parts):
                out.append({**s, "text": part, "id": s["id"] if len(parts) == 1 else f"{s['id']}#{j}"})
        elif s.get("verbatim"):  # built by the serving prompt function: must stay byte-identical
            out.append(s)
        else:
            out.append({**s, "messages": [{**m, "content": normalize(m["content"])} for m in s["messages"]]})
    filtered = []
    for s in out:
        n = len(s["text"]) if "text" in s else sum(len(m["content"]) for m in s["messages"])
        if s.get("verbatim") and n >= min_chars:  # a served prompt: as long as serving makes it
            filtered.append(s)
        elif n < min_chars:
            stats["too_short"] += 1
        elif n > max_chars:
            stats["too_long"] += 1
        else:
            filtered.append(s)
    filtered, stats["exact_duplicates"] = dedup_exact(filtered)
    if near_dup_threshold < 1.0:
        filtered, stats["near_duplicates"] = dedup_near(filtered, near_dup_threshold)
    stats["output"] = len(filtered)
    return filtered, stats
