"""`hearth export`: a merged Hugging Face model folder → GGUF (f16, bf16, q8_0 or f32), via llama.cpp's converter.

The conversion is llama.cpp's own convert_hf_to_gguf.py from the same llama-cpp-python release as
the compiled library (quantize/converter.py; the Makefile installs it), so every architecture that
llama.cpp serves exports (llama, mistral, qwen2/3, gemma, phi3, ...) and the tokenizer comes from
the model folder itself, `hearth vocab`'s added tokens included (written USER_DEFINED). An
architecture the converter does not know is refused before anything is written, naming it.

Around the conversion:
- atomic: the converter writes a temporary file beside `out`, renamed onto `out` only after every
  check passed; a failure or a kill never leaves a half-written file under the final name;
- tokenizer check: llama.cpp (vocab only) must tokenize as transformers does sample texts
  (including the text llama.cpp's converter uses to tell pre-tokenizers apart) and each added
  token alone, and the chat template must be in the GGUF; otherwise the export is refused (the
  file would serve the model wrongly). The chat template rendered on a short conversation is
  compared too, and a difference reported (manifest and stderr) but not refused: with a
  SentencePiece vocabulary llama.cpp puts a prefix space after each special token, as
  sentencepiece does, and transformers 5 does not;
- manifest `<out stem>-export.json` beside it: size, sha256, output type, architecture, the
  converter's version, the source files' sha256 and the tokenizer check.

It replaced the hand-written llama-only writer (git history: quantize/export.py before issue 22):
on SmolLM2-135M (dequantized from the embedded GGUF) both gave the same tensors bit for bit and
the same tokenizer metadata (the converter adds general.* and key/value-length keys), mean KL 0 of
llama.cpp's next-token distributions on 4 texts; converting took 3.7-4.2 s against the writer's
6.2-6.4 s (same load; the subprocess adds 2.5-4 s of start-up). A BPE vocabulary the converter
does not recognise is refused, unless `tokenizer_pre` (--tokenizer-pre) names its pre-tokenizer;
the tokenizer check then confirms it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from training.io import atomic_path, sha256_file, write_json

TOKENIZER_TEXTS = (
    "Write one SQLite SELECT query that answers the question.\nQuestion: How many orders were shipped in 2024?",
    "SELECT c.company_name, SUM(oi.quantity * oi.unit_price) AS revenue FROM customers c JOIN orders o "
    "ON o.customer_id = c.customer_id GROUP BY c.company_name ORDER BY revenue DESC LIMIT 10;",
    "The water cycle describes how water evaporates, condenses into clouds and falls back as rain.",
    # none starts with a space: there transformers 5's SentencePiece tokenizers drop the prefix space that
    # sentencepiece itself and llama.cpp keep (measured on a Llama SPM vocabulary), a start-of-text quirk
    "Indented:\n  line\n\n\tTabbed, then   three spaces; numbers 3 33 333 3333 3.14 -42 1e-5.",
    "Größe, naïve café, «quotes», “curly”, — dashes … and emoji 🦙✅; Привет мир; 東京は日本の首都です。",
    # the text llama.cpp's converter hashes to tell pre-tokenizers apart (convert_hf_to_gguf_update.py)
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
)
CHAT_SAMPLE = [{"role": "system", "content": "You write SQL."},
               {"role": "user", "content": "How many customers are in Berlin?"},
               {"role": "assistant", "content": "SELECT COUNT(*) FROM customers WHERE city = 'Berlin';"}]


def manifest_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".gguf") + "-export.json")


def source_files(model_dir: Path) -> dict[str, str]:
    """sha256 of the files the GGUF is made from (weights, config, tokenizer)."""
    names = sorted(p for p in model_dir.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin", ".model", ".jinja") or p.name.endswith(".json")))
    return {p.name: sha256_file(p) for p in names}


def _render_chat(tok) -> str | None:
    if not tok.chat_template:
        return None
    for messages in (CHAT_SAMPLE, CHAT_SAMPLE[1:]):  # some templates refuse a system turn
        try:
            return tok.apply_chat_template(messages, tokenize=False)
        except Exception:  # noqa: BLE001 (jinja raises whatever the template raises)
            continue
    return None


def load_checked_tokenizer(model_dir: str | Path):
    """The folder's tokenizer, refused when some id below its size has no token.

    That happens when tokenizer.json is inconsistent (e.g. an added token moved into the BPE
    vocabulary): transformers then shifts the later added tokens' ids, so the ids no longer match
    the embedding rows the model was trained with, and the converter would write that shift."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = set(tok.get_vocab().values())
    holes = [i for i in range(len(tok)) if i not in ids]
    if holes:
        raise ValueError(f"tokenizer of {model_dir} differs from the model's vocabulary: ids {holes[:5]} have no "
                         f"token below its size {len(tok)} (an added token moved into the BPE vocabulary?)")
    return tok


def _differs(vocab, tok, text: str) -> str | None:
    """Where llama.cpp's tokens of `text` leave transformers' (no BOS; special tokens parsed), or None."""
    ours = vocab.tokenize(text.encode("utf-8"), False, True)
    theirs = tok.encode(text, add_special_tokens=False)
    if ours == theirs:
        return None
    at = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return (f"llama.cpp {ours[max(0, at - 2):at + 4]} vs transformers {theirs[max(0, at - 2):at + 4]} at token {at} "
            f"(…{tok.decode(theirs[max(0, at - 2):at + 2])!r})")


def check_tokenizer(model_dir: str | Path, gguf: str | Path, texts: tuple[str, ...] = TOKENIZER_TEXTS,
                    tok=None) -> dict:
    """llama.cpp's tokenizer in `gguf` against transformers' in `model_dir`; raises ValueError on a difference."""
    from llama_cpp import llama_model_default_params
    from llama_cpp._internals import LlamaModel

    tok = tok or load_checked_tokenizer(model_dir)
    params = llama_model_default_params()
    params.vocab_only = True  # the tokenizer only: no weights, no context
    try:
        vocab = LlamaModel(path_model=str(gguf), params=params, verbose=False)
    except ValueError as exc:  # llama.cpp logs the reason to stderr only
        raise ValueError(f"llama.cpp cannot load the tokenizer of the GGUF exported from {model_dir} ({exc}); "
                         "its log says why (run with verbose llama.cpp)") from None
    try:
        meta = vocab.metadata()
        samples = [("text", t) for t in texts]
        samples += [(f"added token {i}", t.content) for i, t in sorted(tok.added_tokens_decoder.items())]
        for what, text in samples:
            if problem := _differs(vocab, tok, text):
                raise ValueError(f"tokenizer of the GGUF differs from the model's on {what} {text[:80]!r}: {problem}")
        if vocab.n_vocab() < len(tok):
            raise ValueError(f"tokenizer of the GGUF differs from the model's: {vocab.n_vocab()} < {len(tok)} tokens")
        template = meta.get("tokenizer.chat_template")
        if tok.chat_template and not template:
            raise ValueError(f"{model_dir}: the chat template is missing from the GGUF")
        # The rendered template is reported, not refused: with a SentencePiece vocabulary llama.cpp puts
        # the prefix space after each special token as sentencepiece does, transformers 5 does not.
        chat = _render_chat(tok)
        chat_problem = _differs(vocab, tok, chat) if chat else None
        if chat_problem:
            print(f"hearth export: warning: the rendered chat template tokenizes differently in llama.cpp: "
                  f"{chat_problem}", file=sys.stderr)
        return {"texts": len(texts), "added_tokens": len(tok.added_tokens_decoder), "texts_equal": True,
                "chat_tokens_equal": None if chat is None else not chat_problem, "chat_difference": chat_problem,
                "n_vocab": vocab.n_vocab(),
                "chat_template_kept": template == tok.chat_template if tok.chat_template else None}
    finally:
        vocab.close()


def export_gguf(model_dir: str | Path, out: str | Path, *, outtype: str = "f16", name: str | None = None,
                tokenizer_pre: str | None = None, check: bool = True) -> dict:
    """Writes `out` atomically (and its manifest beside it); returns the manifest."""
    from .converter import check_supported, find_converter, run_converter

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json (a Hugging Face model folder is needed)")
    if "{" in out.name or "}" in out.name:
        raise ValueError(f"{out.name}: braces in the file name (the converter reads them as a template)")
    name = name or model_dir.name
    config = json.loads((model_dir / "config.json").read_text())
    conv = find_converter()
    arch = check_supported(model_dir, conv)  # refused here: nothing written
    t0 = time.perf_counter()
    tok = load_checked_tokenizer(model_dir) if check else None
    with atomic_path(out) as tmp:
        log = run_converter(model_dir, tmp, outtype=outtype, name=name, conv=conv, tokenizer_pre=tokenizer_pre)
        seconds = round(time.perf_counter() - t0, 2)
        tokenizer = check_tokenizer(model_dir, tmp, tok=tok) if check else None
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    manifest = {"path": str(out), "bytes": size, "sha256": digest, "outtype": outtype, "architecture": arch,
                "model_type": config.get("model_type"), "name": name, "seconds": seconds,
                "tensors": sum(1 for line in log.splitlines() if line.startswith("INFO:hf-to-gguf:") and "-->" in line),
                "tokenizer_pre_forced": tokenizer_pre if "pre-tokenizer not recognised" in log else None,
                "tokenizer_check": tokenizer, "converter": conv.describe(),
                "source": {"dir": str(model_dir.resolve()), "files": source_files(model_dir)}}
    write_json(manifest_path(out), manifest)
    return manifest
