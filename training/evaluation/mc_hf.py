"""Multiple-choice log-likelihoods through transformers, for Hugging Face model folders.

The model loads through training/model.py (a folder as is; a GGUF or embedded:smollm2 dequantized
once and cached), in fp32 (also on a GPU: it is the reference). The choices of one item run as one batch,
right-padded: causal attention keeps every real position blind to the padding after it, so the
numbers equal one choice at a time. Torch is imported here only, never by the server.
"""

from __future__ import annotations

from .mc_tokens import split_tokens


def loglikelihoods(path: str, reqs: list[tuple[str, list[str]]], *, n_threads: int | None = None,
                   device: str = "cpu") -> list[list[float]]:
    """Summed log-probability of each continuation given its context, per request."""
    import torch

    from training.model import load_model, load_tokenizer

    if n_threads:
        torch.set_num_threads(n_threads)
    tok = load_tokenizer(path)
    # fp32 on the CPU: the reference the GGUF variants are compared with.
    model = load_model(path, device=torch.device(device), dtype=torch.float32).eval()
    encode = lambda text: tok(text, add_special_tokens=True)["input_ids"]
    out = []
    with torch.inference_mode():
        for context, conts in reqs:
            splits = [split_tokens(encode, context, c) for c in conts]
            width = max(len(w) for w, _ in splits) - 1  # inputs are whole[:-1]: the last token only scores
            ids = torch.full((len(splits), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(splits), width), dtype=torch.long)
            for i, (whole, _) in enumerate(splits):
                ids[i, : len(whole) - 1] = torch.tensor(whole[:-1])
                mask[i, : len(whole) - 1] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.double(), dim=-1).cpu()
            lps = []
            for i, (whole, n) in enumerate(splits):
                pos = torch.arange(n - 1, len(whole) - 1)
                lps.append(float(logp[i, pos, torch.tensor(whole[n:])].sum()))
            out.append(lps)
    return out
