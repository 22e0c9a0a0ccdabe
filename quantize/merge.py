"""`hearth merge`: a LoRA adapter merged into its base, saved as a plain HF model directory.

The base comes from the adapter's run (training/model.py materializes a GGUF base as a plain HF
folder first, so the merged model is always serializable). Checks on fixed prompts that
merged ≈ adapter output and merged ≠ base output, and refuses to write otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.io import atomic_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json")
CHECK_TEXTS = ("SELECT COUNT(*) FROM orders WHERE", "The quarterly report shows", "Question: How many customers")


def _logits(model, tokenizer, texts=CHECK_TEXTS):
    import torch

    with torch.no_grad():
        return [model(**tokenizer(t, return_tensors="pt")).logits[0].float() for t in texts]


def merge(adapter_dir: str | Path, base: str, out: str | Path, *, atol: float = 1e-3) -> dict:
    """Merges and writes `out` atomically; returns the check figures."""
    import torch
    from peft import PeftModel

    from training.model import load_model, load_tokenizer, materialize_base

    adapter_dir, out = Path(adapter_dir), Path(out)
    if (adapter_dir / "METHOD").exists() and (adapter_dir / "METHOD").read_text().strip() == "full":
        raise ValueError(f"{adapter_dir} is a fully fine-tuned model, not an adapter: export it directly")
    tokenizer = load_tokenizer(base)
    base_model = load_model(base, dtype=torch.float32)
    base_logits = _logits(base_model, tokenizer)
    model = PeftModel.from_pretrained(base_model, str(adapter_dir))
    model.eval()
    adapter_logits = _logits(model, tokenizer)
    merged = model.merge_and_unload()
    if any("lora" in name for name, _ in merged.named_parameters()):
        raise RuntimeError("adapter modules left after merge_and_unload")
    merged_logits = _logits(merged, tokenizer)
    diff_adapter = max(float((a - m).abs().max()) for a, m in zip(adapter_logits, merged_logits))
    diff_base = max(float((b - m).abs().max()) for b, m in zip(base_logits, merged_logits))
    if diff_adapter > atol:
        raise RuntimeError(f"merged model differs from base+adapter by {diff_adapter:.2e} > {atol}")
    report = {"max_abs_diff_merged_vs_adapter": diff_adapter, "max_abs_diff_merged_vs_base": diff_base,
              "adapter": str(adapter_dir), "base": base}
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        copy_tokenizer_files(materialize_base(base), tmp)
        (tmp / "merge.json").write_text(json.dumps(report, indent=2))
    return report


def copy_tokenizer_files(base_dir: Path, out: Path) -> None:
    """The base folder's tokenizer files, byte for byte, over those save_pretrained wrote.

    transformers 5 rewrites them: a GPT2Tokenizer folder's tokenizer_config.json comes back with
    tokenizer_class "TokenizersBackend", and files it does not use (tokenizer.model) are not written.
    llama.cpp's converter reads both (a Phi-3 vocabulary comes from tokenizer.model unless the class
    is GPT2Tokenizer), so the merged folder keeps the base's own."""
    import shutil

    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, out / name)
