"""Fixtures for training and quantize tests: the embedded tokenizer and a tiny random Llama.

The tiny model has SmolLM2's tokenizer and vocabulary (so chat templates, GGUF tokenizer metadata
and llama.cpp all behave as with the real model) but 2 layers of width 64: a training step takes
milliseconds, so tests train a few real steps without needing both cores for minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer from the embedded GGUF, saved once as a HF folder (7 s)."""
    from transformers import AutoTokenizer

    from server.settings import embedded_model_path

    gguf = embedded_model_path()
    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


def make_tiny_model(tokenizer_dir: Path, out: Path, *, seed: int = 0, hidden: int = 64, layers: int = 2,
                    tie: bool = True) -> Path:
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=2,
                         rms_norm_eps=1e-5, rope_theta=100000.0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger random weights than the default init, so outputs depend on them
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.save_pretrained(out)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def tiny_model(tokenizer_dir, tmp_path_factory) -> Path:
    return make_tiny_model(tokenizer_dir, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def sql_pairs(path: Path, n: int = 12) -> Path:
    """The first n sample training pairs (a few shapes) as a small JSONL."""
    from server.sql.sample.paths import PAIRS_DIR

    lines = (PAIRS_DIR / "train.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines[:: max(1, len(lines) // n)][:n]) + "\n")
    return path
