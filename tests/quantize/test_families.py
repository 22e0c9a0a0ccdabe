"""llama.cpp's converter (hearth export) on tiny random models with vocabularies it recognises or reads.

Each model is built from a transformers config (no download): 2 layers of width 64, SmolLM2's
tokenizer and chat template (the embedded GGUF's, as tests/training/conftest.py builds them).
Every family through the whole pipeline (LoRA, merge, export, quantize, serve) is
test_family_pipeline.py, on vocabularies trained there; here are the vocabularies a converter run
meets otherwise: SmolLM2's, which it recognises by hash (llama), the same under Qwen2's rebuilt
pre-tokenizer, which it refuses until named (qwen2), and a SentencePiece tokenizer.model
(llama-spm).
Each is exported to f16 GGUF through the converter (the llama one also to bf16 and q8_0), then:
llama.cpp's next-token log-probabilities on a short prompt against transformers' (max abs
difference < 0.05, the bound test_convert.py puts on the hand-written writer; f16 weights), the
same tokens for a text sample, and the chat template kept in the GGUF metadata. llama-spm is a
llama with a SentencePiece vocabulary trained here (the converter's tokenizer.model path, as
Llama 2 or Mistral 7B v0.1). Also: an architecture llama.cpp cannot convert is refused by name,
and a failed or refused export leaves no file.

qwen2: transformers 5 always loads a qwen2 model's tokenizer as Qwen2Tokenizer, which rebuilds
Qwen's pre-tokenizer over the folder's vocabulary; over SmolLM2's vocabulary that is a tokenizer
llama.cpp's converter does not recognise (it hashes the tokenization of a fixed text), so it is
refused unless the pre-tokenizer is named (`tokenizer_pre="qwen2"`), and then the export's own
check (and this test) confirms llama.cpp tokenizes as transformers does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train

LOGPROB_BOUND = 0.05  # max |log p_transformers - log p_llama.cpp| over all positions and the vocabulary
PROMPT = "SELECT c.company_name, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.customer_id GROUP BY 1"
SAMPLE = "Question: How many orders were shipped to Berlin in 2024?\n  Größe → 東京 🦙 3.14 <|im_end|>"
COMMON = dict(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=2,
              rms_norm_eps=1e-5)
SPM_VOCAB = 1000
FAMILIES = {  # family: (config class, model class, extra config, tie embeddings)
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}, True),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}, False),  # q/k/v biases, untied output; see the docstring
    # a SentencePiece vocabulary (tokenizer.model, as Llama 2 / Mistral 7B v0.1): the converter's other path
    "llama-spm": ("LlamaConfig", "LlamaForCausalLM", {"vocab_size": SPM_VOCAB}, False),
}


def make_family_model(family: str, tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    import torch
    import transformers

    config_cls, model_cls, extra, tie = FAMILIES[family]
    torch.manual_seed(seed)
    config = getattr(transformers, config_cls)(**{**COMMON, **extra}, tie_word_embeddings=tie)
    model = getattr(transformers, model_cls)(config)
    with torch.no_grad():  # larger random weights than the default init, so outputs depend on them
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.save_pretrained(out)
    if family == "llama-spm":
        return sentencepiece_tokenizer(out)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


def sentencepiece_tokenizer(out: Path) -> Path:
    """A Llama SentencePiece BPE tokenizer (byte fallback) trained on the sample SQL pairs, saved into `out`."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    from server.sql.sample.paths import PAIRS_DIR
    from training.vocab import read_texts

    raw = out / "spm"
    raw.mkdir()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(read_texts(PAIRS_DIR / "train.jsonl")), model_prefix=str(raw / "tokenizer"),
        vocab_size=SPM_VOCAB, model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, split_digits=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        normalization_rule_name="identity", minloglevel=2)
    (raw / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    tok = LlamaTokenizer.from_pretrained(str(raw))  # converted to a tokenizers pipeline (needs protobuf)
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}</s>\n{% endfor %}"
    tok.save_pretrained(out)
    shutil.copy(raw / "tokenizer.model", out / "tokenizer.model")
    shutil.rmtree(raw)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_exports_through_llama_cpp_converter(family, tokenizer_dir, tmp_path):
    import torch
    from llama_cpp import llama_model_default_params
    from llama_cpp._internals import LlamaModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantize.export import export_gguf, manifest_path
    from quantize.quant import next_token_logprobs
    from training.io import sha256_file

    hf = make_family_model(family, tokenizer_dir, tmp_path / family)
    out = tmp_path / "gguf" / f"{family}-F16.gguf"
    pre = "qwen2" if family == "qwen2" else None
    if pre:
        with pytest.raises(ValueError, match="does not recognise this tokenizer's pre-tokenizer"):
            export_gguf(hf, out)
        assert not out.parent.exists() or not list(out.parent.iterdir())
    manifest = export_gguf(hf, out, tokenizer_pre=pre, name="tiny-random")
    assert manifest["architecture"] == FAMILIES[family][1] and manifest["tokenizer_pre_forced"] == pre
    assert manifest["sha256"] == sha256_file(out) and json.loads(manifest_path(out).read_text()) == manifest
    check = manifest["tokenizer_check"]
    assert check["texts_equal"] and check["chat_template_kept"]
    # SentencePiece: llama.cpp puts "▁" after the template's </s> (as sentencepiece does), transformers 5
    # does not; reported, not refused. Every byte-level BPE family tokenizes the rendered template alike.
    assert check["chat_tokens_equal"] is (family != "llama-spm"), check
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, manifest_path(out).name])  # no temp

    tok = AutoTokenizer.from_pretrained(str(hf))
    params = llama_model_default_params()
    params.vocab_only = True
    vocab = LlamaModel(path_model=str(out), params=params, verbose=False)
    try:
        assert vocab.tokenize(SAMPLE.encode(), False, True) == tok.encode(SAMPLE, add_special_tokens=False)
        assert vocab.metadata()["tokenizer.chat_template"] == tok.chat_template
    finally:
        vocab.close()

    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()
    [(tokens, logp)] = next_token_logprobs(out, [PROMPT])
    assert tokens == tok.encode(PROMPT, add_special_tokens=False)
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
    diff = float(np.abs(ref - logp).max())
    ours, theirs = logp.argmax(-1), ref.argmax(-1)
    print(f"{family}: {len(tokens)} positions, max |Δ log p| {diff:.2e}, top-1 agreement {(ours == theirs).mean():.3f}")
    assert diff < LOGPROB_BOUND, (family, diff)
    rows = np.arange(len(tokens))  # a different top-1 only where transformers itself has a near-tie
    assert (ref[rows, theirs] - ref[rows, ours]).max() < 2 * LOGPROB_BOUND


def test_unsupported_architecture_is_refused_by_name(tmp_path):
    """OPT is a transformers model llama.cpp does not convert: a clear error, and nothing written."""
    from transformers import OPTConfig

    from quantize.converter import UnsupportedArchitecture
    from quantize.export import export_gguf

    src = tmp_path / "opt"
    OPTConfig(vocab_size=256, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
              architectures=["OPTForCausalLM"]).save_pretrained(src)
    with pytest.raises(UnsupportedArchitecture, match="OPTForCausalLM"):
        export_gguf(src, tmp_path / "out" / "opt-F16.gguf", check=False)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_failed_conversion_leaves_no_file(tokenizer_dir, tmp_path):
    """The converter dies half-way (truncated weights): the error says so, no file and no temp are left."""
    from quantize.export import export_gguf

    hf = make_family_model("llama", tokenizer_dir, tmp_path / "llama")
    weights = hf / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "x-F16.gguf").write_bytes(b"previous")  # an earlier export stays as it was
    with pytest.raises(RuntimeError, match="converter failed"):
        export_gguf(hf, out_dir / "x-F16.gguf")
    assert sorted(p.name for p in out_dir.iterdir()) == ["x-F16.gguf"]
    assert (out_dir / "x-F16.gguf").read_bytes() == b"previous"


def test_converter_from_another_version_is_refused(tmp_path, monkeypatch):
    from quantize.converter import CONVERTER_ENV, ConverterMissing, default_root, find_converter

    conv = find_converter()  # the installed one matches the library
    fake = tmp_path / "conv"
    shutil.copytree(default_root(), fake, ignore=shutil.ignore_patterns("conversion", "__pycache__"))
    (fake / "hearth-vendor.json").write_text(json.dumps({"llama_cpp_python": "0.0.1", "sdist_sha256": ""}))
    monkeypatch.setenv(CONVERTER_ENV, str(fake))
    with pytest.raises(ConverterMissing, match="0.0.1.*make install-train"):
        find_converter()
    monkeypatch.setenv(CONVERTER_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConverterMissing, match="not installed"):
        find_converter()
    assert conv.version


def test_converter_outtypes_bf16_and_q8_0(tokenizer_dir, tmp_path):
    """The converter's own bf16 and q8_0 outputs load in llama.cpp and stay close to transformers."""
    import torch
    from transformers import AutoModelForCausalLM

    from quantize.export import export_gguf
    from quantize.quant import next_token_logprobs

    hf = make_family_model("llama", tokenizer_dir, tmp_path / "llama")
    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()
    sizes = {}
    for outtype, bound in (("bf16", 0.1), ("q8_0", 0.25)):  # measured 0.04 and 0.11
        out = tmp_path / f"llama-{outtype.upper()}.gguf"
        manifest = export_gguf(hf, out, outtype=outtype, name="tiny-random", check=outtype == "bf16")
        sizes[outtype] = manifest["bytes"]
        [(tokens, logp)] = next_token_logprobs(out, [PROMPT])
        with torch.no_grad():
            ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
        diff = float(np.abs(ref - logp).max())
        print(f"llama {outtype}: max |Δ log p| {diff:.2e}")
        assert diff < bound, (outtype, diff)
    assert sizes["q8_0"] < sizes["bf16"]
