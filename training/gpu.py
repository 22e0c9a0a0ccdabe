"""CUDA-only training code: autocast with loss scaling, and the 4-bit (QLoRA) base.

Imported only when a run's device is CUDA (training/precision.py `amp_for`, training/model.py
`load_model` with quantize_base): a CPU run never imports this module or bitsandbytes
(tests/training/test_precision.py checks sys.modules after a CPU training run).
"""

from __future__ import annotations

import torch


class CudaAmp:
    """Autocast in the precision's half dtype; for fp16, a GradScaler around backward and the step."""

    def __init__(self, precision):  # training/precision.py Precision (not imported: precision imports this)
        self.dtype = getattr(torch, precision.autocast)
        self.scaler = torch.amp.GradScaler("cuda") if precision.loss_scaling else None

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype)

    def backward(self, loss) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer, params, clip: float) -> None:
        if self.scaler is None:
            torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            return
        self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)      # skipped when a gradient overflowed to inf/nan
        self.scaler.update()             # halve the scale after an overflow, grow it after 2000 clean steps


def load_4bit(path: str, precision, device):
    """The base model with its linear layers in 4-bit NF4 (bitsandbytes, double quantization: about
    4.13 bits per weight with the quantization constants), computing in the autocast dtype, ready
    for LoRA: norms in fp32 and the input embeddings' output requiring grad (peft's
    prepare_model_for_kbit_training), so gradients reach adapters behind frozen 4-bit layers."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = getattr(torch, precision.autocast or "bfloat16")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    index = device.index if device.index is not None else torch.cuda.current_device()
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, dtype=compute,
                                                 device_map={"": index})
    # Gradient checkpointing is the recipe's own switch (training/model.py), not turned on here.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
