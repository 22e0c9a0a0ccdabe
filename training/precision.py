"""Numeric precision of one training process, as a pure function of what the device can do.

  - CPU: fp32 throughout. bf16 matmuls are slower than fp32 on AVX2/AVX-512 CPUs without AMX,
    and a CPU has memory enough for fp32 at the sizes it can train in reasonable time.
  - CUDA with bf16 (Ampere and later, compute capability >= 8.0): frozen weights stored in bf16
    (half the memory), autocast computes matmuls in bf16, trainable weights (LoRA, or the whole
    model for full training) kept in fp32 for AdamW. bf16 has fp32's exponent range: no loss scaling.
  - CUDA without bf16 (Volta, Turing): the same in fp16, whose 5-bit exponent lets small gradients
    underflow to zero, so the loss is scaled up before backward and the gradients scaled down
    before the step (torch.amp.GradScaler, which also skips a step whose gradients overflowed).
  - QLoRA (`train.quantize_base: nf4`): the frozen base in 4-bit NF4 with double quantization
    (bitsandbytes, CUDA only), computed in the autocast dtype above.

This module never imports torch at import time and never imports training/gpu.py: a CPU run's
`Amp` is plain backward/clip/step. train.py asks training/gpu.py for the CUDA version only when the
device is CUDA, so bitsandbytes and the GPU module stay out of a CPU process.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    frozen_dtype: str            # storage of weights that get no gradient ("float32", "bfloat16", "float16")
    trainable_dtype: str         # storage of weights AdamW updates (always fp32: its moments and small updates)
    autocast: str | None         # dtype autocast computes in; None: no autocast
    loss_scaling: bool           # GradScaler (fp16 only)
    quantize_base: str | None    # "nf4": frozen base in 4-bit (bitsandbytes)

    def describe(self) -> str:
        parts = [f"frozen {self.quantize_base or self.frozen_dtype}", f"trainable {self.trainable_dtype}",
                 f"autocast {self.autocast or 'off'}"]
        return ", ".join(parts + (["loss scaling"] if self.loss_scaling else []))


class QloraUnavailable(RuntimeError):
    """QLoRA was asked for where it cannot run (no CUDA device, or bitsandbytes not installed)."""


def choose(device_type: str, *, bf16: bool = False, method: str = "lora", quantize_base: str | None = None,
           has_bitsandbytes: bool | None = None) -> Precision:
    """The precision for a device of `device_type` ("cpu" or "cuda") with (`bf16`) or without bf16.

    `method`: "full" keeps every weight trainable, so nothing is stored in half precision.
    `quantize_base` "nf4" needs CUDA and bitsandbytes (`has_bitsandbytes`, default: whether it is
    installed, looked up without importing it); else QloraUnavailable says which is missing.
    """
    if quantize_base is not None:
        if method != "lora":
            raise ValueError(f"train.quantize_base: {quantize_base} trains LoRA adapters on a frozen 4-bit base: "
                             f"set train.method: lora (it is {method})")
        if device_type != "cuda":
            raise QloraUnavailable(f"train.quantize_base: {quantize_base} (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit "
                                   f"kernels run on CUDA only, and this run's device is {device_type}. Unset "
                                   f"quantize_base to train LoRA on the full-precision base.")
        if has_bitsandbytes is None:
            has_bitsandbytes = importlib.util.find_spec("bitsandbytes") is not None
        if not has_bitsandbytes:
            raise QloraUnavailable(f"train.quantize_base: {quantize_base} (QLoRA) needs the bitsandbytes package, which "
                                   f"is not installed: pip install bitsandbytes (CUDA builds only)")
    if device_type != "cuda":
        return Precision("float32", "float32", None, False, None)
    half = "bfloat16" if bf16 else "float16"
    return Precision(half if method == "lora" else "float32", "float32", half, not bf16, quantize_base)


class Amp:
    """A step's precision machinery without autocast or loss scaling (the CPU's, and fp32 anywhere).

    training/gpu.py's CudaAmp has the same three methods with autocast and, for fp16, a GradScaler."""

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss) -> None:
        loss.backward()

    def step(self, optimizer, params, clip: float) -> None:
        """Clip the gradient norm to `clip` and take the optimizer step."""
        import torch

        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()


def amp_for(precision: Precision, device_type: str):
    """The step machinery: the plain one on the CPU, training/gpu.py's on CUDA (imported only then)."""
    if device_type != "cuda" or precision.autocast is None:
        return Amp()
    from .gpu import CudaAmp

    return CudaAmp(precision)
