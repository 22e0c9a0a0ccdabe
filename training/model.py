"""Loading the base model and tokenizer, adding LoRA, and turning a GGUF-loaded model plain.

Base models come from a local Hugging Face directory, or from a GGUF that transformers
dequantizes (the embedded SmolLM2-135M-Instruct Q4_1 takes ~30 s on 2 cores). No hub access:
HF_HUB_OFFLINE is forced on. A GGUF-loaded model refuses save_pretrained ("quantized with gguf"),
so `plain_copy` rebuilds it from its config without the quantization_config.
The dequantized model is cached as a plain HF directory beside the run (var/cache/base-<sha>),
so later stages and resumed runs load it in ~1 s instead of dequantizing again.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import atomic_dir, sha256_text
from .recipe import EMBEDDED

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def resolve_base(base: str) -> Path:
    if base == EMBEDDED:
        from server.settings import embedded_model_path

        return embedded_model_path()
    p = Path(base).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"base model {p} does not exist")
    return p


def plain_copy(model):
    """A plain (non-GGUF) copy of `model` with the same weights, which save_pretrained accepts."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.tie_weights()
    return plain


def cache_dir(base: Path) -> Path:
    """Where a dequantized GGUF is kept as a plain HF model (keyed by path, size and mtime)."""
    st = base.stat()
    key = sha256_text(f"{base.resolve()}:{st.st_size}:{st.st_mtime_ns}")[:16]
    root = Path(os.environ.get("HEARTH_DATA_DIR", "var")) / "cache"
    return root / f"base-{key}"


def materialize_base(base: str) -> Path:
    """A local HF directory for `base`: itself, or the cached dequantization of a GGUF."""
    path = resolve_base(base)
    if path.is_dir():
        return path
    target = cache_dir(path)
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    with atomic_dir(target) as tmp:
        plain_copy(model).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{path.resolve()}\n")
    return target


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(materialize_base(base)))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def pick_device(choice: str = "auto"):
    import torch

    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32  # bf16 matmuls are slower than fp32 on AVX2 CPUs


def load_model(base: str, *, device=None, dtype=None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(materialize_base(base)), dtype=dtype)
    # sdpa builds a block-diagonal mask from restarting position_ids (packed rows, tokens.py), as
    # transformers 5's other attentions do. A model sdpa cannot compute keeps its own: Gemma 2's
    # attention soft-capping (_supports_sdpa False) would otherwise be dropped silently.
    if model._supports_sdpa:
        model.config._attn_implementation = "sdpa"
    return model.to(device) if device is not None else model


def load_for_training(base: str, train_cfg, *, device, dtype, precision):
    """The base model as training uses it: frozen weights in `dtype`, or in 4-bit NF4 when
    train.quantize_base asks (QLoRA: training/gpu.py, imported only then, on CUDA only), and
    gradient checkpointing per train.gradient_checkpointing."""
    if precision.quantize_base:
        from .gpu import load_4bit

        model = load_4bit(str(materialize_base(base)), precision, device)
        if model._supports_sdpa:  # as load_model
            model.config._attn_implementation = "sdpa"
    else:
        model = load_model(base, device=device, dtype=dtype)
    if train_cfg.gradient_checkpointing:
        # Non-reentrant: gradients reach LoRA weights inside a layer even when the layer's input
        # (frozen embeddings' output) does not require grad.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


FUSED_PROJECTIONS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}  # Phi-3


def lora_targets(model, names) -> list[str]:
    """train.target_modules as `model` names them. A family that fuses projections (Phi-3's qkv_proj and
    gate_up_proj) gets the fused module for the separate names, and a name no module has is an error:
    peft would adapt only the names it finds (on Phi-3 the defaults reach o_proj and down_proj alone)."""
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    out: list[str] = []
    for name in names:
        fused = next((f for f, separate in FUSED_PROJECTIONS.items() if name in separate and f in present), None)
        target = name if name in present else fused
        if target is None:
            raise ValueError(f"train.target_modules: this {model.config.model_type} model has no module named {name!r}")
        if target not in out:
            out.append(target)
    return out


def add_lora(model, train_cfg):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=train_cfg.lora_r, lora_alpha=train_cfg.lora_alpha, lora_dropout=train_cfg.lora_dropout,
                        target_modules=lora_targets(model, train_cfg.target_modules), task_type="CAUSAL_LM",
                        bias="none")
    return get_peft_model(model, config)


def parts(model):
    """(decoder stack, lm_head) of a causal LM, through a peft wrapper if any."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model, inner.lm_head


def count_params(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
