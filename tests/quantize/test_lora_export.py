"""`hearth export --lora`: a peft LoRA adapter → a GGUF LoRA adapter that llama.cpp applies as peft does.

On the tiny random Llama (SmolLM2's vocabulary, 2 layers of width 64): llama.cpp's log-probabilities
with the GGUF adapter on the f32 base GGUF agree with transformers + peft on the same adapter, and
differ from the base's; adapters llama.cpp cannot carry are refused naming the problem, and a failed
conversion leaves no file behind.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest

pytestmark = pytest.mark.train

TEXTS = ("Write one SQLite SELECT query that answers the question.", "The water cycle describes how water evaporates.")


def _peft_adapter(base, out, *, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"), seed=3, **extra):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(target_modules),
                                             task_type="CAUSAL_LM", **extra))
    with torch.no_grad():  # as after training: B is no longer zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    model.save_pretrained(out)
    return model


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    model = _peft_adapter(tiny_model, out)
    return out, model.eval()


def _llama_logprobs(model_path, texts, lora_path=None, scale=1.0):
    """Every position's next-token log-probabilities from llama.cpp, with the LoRA adapter set on the context."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from server.engine.adapters import load_lora, set_loras

    model = LlamaModel(path_model=str(model_path), params=llama_cpp.llama_model_default_params(), verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_threads, params.n_threads_batch = 256, 2, 2
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    try:
        if lora_path:
            lora, _ = load_lora(model.model, lora_path, model_name="tiny")
            set_loras(ctx, [lora], [scale])
        out = []
        for text in texts:
            tokens = model.tokenize(text.encode(), add_bos=False, special=True)
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
            batch.n_tokens = len(tokens)
            for i, t in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, True
                batch.seq_id[i][0] = 0
            assert llama_cpp.llama_decode(ctx, batch) == 0
            n_vocab = model.n_vocab()
            logits = np.ctypeslib.as_array(ctypes.cast(llama_cpp.llama_get_logits(ctx), ctypes.POINTER(ctypes.c_float)),
                                           shape=(len(tokens), n_vocab)).astype(np.float64)
            llama_cpp.llama_batch_free(batch)
            out.append((tokens, logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)))
        return out
    finally:
        llama_cpp.llama_free(ctx)
        model.close()


def test_gguf_adapter_applies_as_peft_does(adapter, tiny_model, tmp_path):
    import torch

    from quantize.export import export_gguf, manifest_path
    from server.cli import main
    from training.io import sha256_file

    adapter_dir, peft_model = adapter
    base = export_gguf(tiny_model, tmp_path / "tiny-F32.gguf", outtype="f32", check=False)["path"]
    # `hearth export --lora`, the base being the folder adapter_config.json names
    assert main(["export", "--lora", str(adapter_dir), "--outtype", "f32"]) == 0
    out = adapter_dir.parent / "adapter-lora-F32.gguf"
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["base"]["dir"] == str(tiny_model.resolve())
    assert manifest["sha256"] == sha256_file(out) and manifest["bytes"] == out.stat().st_size
    assert manifest["kind"] == "lora" and manifest["lora"]["r"] == 4 and manifest["lora"]["alpha"] == 8
    assert manifest["tensors"] == 2 * 7 * 2  # A and B for 7 modules in 2 layers
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left

    ours = _llama_logprobs(base, TEXTS, out)
    plain = _llama_logprobs(base, TEXTS)
    half = _llama_logprobs(base, TEXTS, out, scale=0.5)
    for (tokens, logp), (_, base_logp), (_, half_logp) in zip(ours, plain, half):
        with torch.no_grad():
            ref = torch.log_softmax(peft_model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
            with peft_model.disable_adapter():
                ref_base = torch.log_softmax(peft_model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
            lora_layers = [m for m in peft_model.modules() if hasattr(m, "scale_layer")]
            for m in lora_layers:
                m.scale_layer(0.5)  # peft's scaling alpha/r times 0.5: what the server's `scale: 0.5` means
            ref_half = torch.log_softmax(peft_model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
            for m in lora_layers:
                m.unscale_layer()
        # f32 weights and adapter; llama.cpp's f16 KV cache moves the base itself by ~2e-3
        assert np.abs(ref - logp).max() < 5e-3 and np.abs(ref_base - base_logp).max() < 5e-3
        effect = ref - ref_base                                # what the adapter does, in transformers + peft
        assert np.abs(effect).max() > 0.1                      # the adapter changes the model...
        assert np.abs((logp - base_logp) - effect).max() < 5e-3  # ...and llama.cpp applies that change
        assert np.abs(half_logp - ref_half).max() < 5e-3 and np.abs(ref_half - ref).max() > 0.05


def test_adapters_llama_cpp_cannot_carry_are_refused_before_converting(tiny_model, adapter, tmp_path, capsys):
    from quantize.lora import LoraExportError, export_lora
    from server.cli import main

    full = tmp_path / "full"
    _peft_adapter(tiny_model, full, target_modules=("q_proj",), modules_to_save=["embed_tokens"])
    with pytest.raises(LoraExportError, match="full module weights.*modules_to_save.*hearth merge"):
        export_lora(full, tmp_path / "full.gguf", base=tiny_model)

    dora = tmp_path / "dora"
    dora.mkdir()
    config = json.loads((adapter[0] / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps(config | {"use_dora": True}))
    with pytest.raises(LoraExportError, match="DoRA"):
        export_lora(dora, tmp_path / "dora.gguf", base=tiny_model)
    assert main(["export", "--lora", str(dora), "--base", str(tiny_model)]) == 2  # the CLI prints the message
    assert "a DoRA adapter (use_dora)" in capsys.readouterr().err

    # a tied model's GGUF has no output matrix: an adapter on lm_head would fail to load in the server
    head = tmp_path / "head"
    _peft_adapter(tiny_model, head, target_modules=("lm_head",))
    with pytest.raises(LoraExportError, match="adapts lm_head, but the base ties it"):
        export_lora(head, tmp_path / "head.gguf", base=tiny_model)

    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "/nowhere/base"}))
    (moved / "adapter_model.safetensors").write_bytes((adapter[0] / "adapter_model.safetensors").read_bytes())
    with pytest.raises(LoraExportError, match="'/nowhere/base'.*--base"):
        export_lora(moved, tmp_path / "moved.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def test_a_failed_conversion_names_the_problem_and_writes_nothing(adapter, tmp_path):
    from quantize.lora import LoraExportError, export_lora

    # weights cut short after an intact header: the checks before converting pass, the converter fails reading them
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "adapter_config.json").write_bytes((adapter[0] / "adapter_config.json").read_bytes())
    data = (adapter[0] / "adapter_model.safetensors").read_bytes()
    (cut / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    out = tmp_path / "gguf" / "cut.gguf"
    with pytest.raises(LoraExportError, match=r"LoRA converter .* failed on .*cut \(exit 1\): .*SafetensorError"):
        export_lora(cut, out)
    assert list(out.parent.iterdir()) == []  # neither the file nor its temporary
