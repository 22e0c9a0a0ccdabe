"""Hearth model conversion: merge a LoRA adapter, export GGUF f16, quantize and check.

Built on training/ (recipes, I/O, model loading), which never imports this package; so
`hearth pipeline` (pipeline.py), which runs both, lives here.
"""
