"""Merge equivalence, GGUF export parity with transformers, quantization with its checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    """A LoRA adapter on the tiny model with non-zero B matrices (as after training)."""
    import torch

    from training.model import add_lora, load_model
    from training.recipe import TrainConfig

    torch.manual_seed(1)
    model = add_lora(load_model(str(tiny_model)), TrainConfig(lora_r=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def merged(adapter, tiny_model, tmp_path_factory):
    from quantize.merge import merge

    out = tmp_path_factory.mktemp("m") / "merged"
    report = merge(adapter, str(tiny_model), out)
    return out, report


def test_merge_matches_adapter_and_differs_from_base(merged):
    out, report = merged
    assert report["max_abs_diff_merged_vs_adapter"] < 1e-3
    assert report["max_abs_diff_merged_vs_base"] > 1e-2
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    from safetensors.torch import load_file

    assert not [k for k in load_file(str(out / "model.safetensors")) if "lora" in k]


@pytest.fixture(scope="module")
def f16(merged, tmp_path_factory):
    from quantize.export import export_gguf

    out = tmp_path_factory.mktemp("g") / "tiny-F16.gguf"
    export_gguf(merged[0], out)
    return out


def test_gguf_logits_match_transformers(merged, f16, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from quantize.cli import DEFAULT_TEXTS
    from quantize.quant import next_token_logprobs

    model = AutoModelForCausalLM.from_pretrained(str(merged[0]), dtype=torch.float32).eval()
    for tokens, logp in next_token_logprobs(f16, DEFAULT_TEXTS[:3]):
        assert tokens == tokenizer(DEFAULT_TEXTS[DEFAULT_TEXTS.index(tokenizer.decode(tokens))])["input_ids"]
        with torch.no_grad():
            ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
        assert np.abs(ref - logp).max() < 0.05          # f16 weights: small, bounded error
        assert (ref.argmax(-1) == logp.argmax(-1)).mean() >= 0.95


def test_gguf_keeps_tokenizer_and_chat_template(f16):
    from gguf import GGUFReader

    from server.settings import embedded_model_path

    ours, ref = GGUFReader(str(f16)).fields, GGUFReader(str(embedded_model_path())).fields
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "tokenizer.ggml.eos_token_id"):
        assert ours[key].contents() == ref[key].contents()


def test_quantize_types_checked_and_atomic(f16, tmp_path):
    from quantize.cli import DEFAULT_TEXTS
    from quantize.quant import compare, next_token_logprobs, quantize

    reference = next_token_logprobs(f16, DEFAULT_TEXTS)
    results = {}
    for qtype in ("Q8_0", "Q4_0", "Q4_1", "Q4_K_M"):
        res = quantize(f16, tmp_path / f"tiny-{qtype}.gguf", qtype)
        res["check"] = compare(reference, next_token_logprobs(res["path"], DEFAULT_TEXTS))
        results[qtype] = res
    assert results["Q8_0"]["check"]["mean_kl"] < results["Q4_0"]["check"]["mean_kl"]
    assert results["Q8_0"]["check"]["top1_agreement"] > 0.9
    assert results["Q8_0"]["bytes"] < os.path.getsize(f16)
    # 64-wide rows do not fit 256-wide K-quant blocks: llama.cpp falls back, and we report it.
    assert results["Q4_K_M"]["fallbacks"]["summary"] and results["Q4_K_M"]["fallbacks"]["by_type"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"tiny-{q}.gguf" for q in results)  # no temp left


def test_failed_quantize_leaves_nothing(tmp_path):
    from quantize.quant import quantize

    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf")
    with pytest.raises(RuntimeError):
        quantize(bogus, tmp_path / "out.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.gguf"]
