"""Hearth model conversion: merge a LoRA adapter, export GGUF f16, quantize and check."""
