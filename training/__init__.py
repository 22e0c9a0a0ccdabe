"""Hearth domain adaptation: data → mix → train (LoRA) → merge → GGUF → quantize.

Plain functions, one concern per module (nanochat-sized). torch and transformers are imported
inside the functions that need them, so `hearth plan`/`hearth data` start fast and the server
never imports them.
"""
