"""The embedded SmolLM2-135M-Instruct itself through export and quantize (slow: ~2 minutes).

The exported f16 GGUF holds the dequantized Q4_1 weights, so llama.cpp on it must reproduce the
original embedded GGUF almost exactly, and transformers on the same weights too.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.train]


def test_export_and_quantize_the_embedded_model(tmp_path, data_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from quantize.cli import DEFAULT_TEXTS
    from quantize.export import export_gguf
    from quantize.quant import compare, next_token_logprobs, quantize
    from server.settings import embedded_model_path
    from training.model import materialize_base

    base = materialize_base("embedded:smollm2")
    f16 = tmp_path / "smol-F16.gguf"
    export_gguf(base, f16)
    ours = next_token_logprobs(f16, DEFAULT_TEXTS)
    original = compare(next_token_logprobs(embedded_model_path(), DEFAULT_TEXTS), ours)
    assert original["top1_agreement"] > 0.97 and original["mean_kl"] < 0.01, original

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()
    for tokens, logp in ours:
        with torch.no_grad():
            ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
        assert (ref.argmax(-1) == logp.argmax(-1)).mean() >= 0.95  # near-ties may flip in f16
        p = np.exp(ref)
        assert float((p * (ref - logp)).sum(-1).mean()) < 0.01

    report = {}
    for qtype in ("Q8_0", "Q4_K_M", "Q4_0", "Q4_1"):
        res = quantize(f16, tmp_path / f"smol-{qtype}.gguf", qtype)
        res["check"] = compare(ours, next_token_logprobs(res["path"], DEFAULT_TEXTS))
        report[qtype] = {"MB": round(res["bytes"] / 2**20, 1), "fallbacks": res["fallbacks"], **res["check"]}
    print(report)
    assert report["Q8_0"]["mean_kl"] < report["Q4_0"]["mean_kl"]
    assert "576" not in str(report["Q8_0"]["fallbacks"]["summary"] or "")
    assert report["Q4_K_M"]["fallbacks"]["summary"]  # 576-wide rows do not fit 256-blocks
