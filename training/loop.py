"""One training step's loss, and evaluation, for the two batch shapes of training/tokens.py.

The vocabulary is 49,152 tokens wide, so full fp32 logits for a batch of 8 × 1,200 tokens
take 1.9 GB and ~20% of the step's FLOPs, while only the ~30 SQL tokens per sample carry loss.
`_token_loss` runs lm_head on the labelled positions only.
"""

from __future__ import annotations

from .tokens import IGNORE, Batch


def _token_loss(lm_head, hidden, labels, softcap: float | None = None):
    """Summed cross-entropy of next-token predictions where labels (shifted by one) are set.

    `softcap`: the model's final_logit_softcapping (Gemma 2), applied as its own forward applies it."""
    import torch
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = targets != IGNORE
    if not keep.any():
        return hidden.sum() * 0.0, 0
    logits = lm_head(hidden[:, :-1][keep]).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


def _softcap(decoder) -> float | None:
    return getattr(decoder.config, "final_logit_softcapping", None)


def batch_loss(model, batch: Batch, device, pad_id: int, prompt_grad: bool = True):
    """(summed loss, number of loss tokens) of one micro-batch; differentiable.

    `prompt_grad=False` (train.prompt_grad) applies to shared-prefix batches: see _answer_loss."""
    import torch

    from .model import parts

    decoder, lm_head = parts(model)
    width = max(len(r) for r in batch.rows)
    ids = torch.full((len(batch.rows), width), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    for i, (row, lab) in enumerate(zip(batch.rows, batch.labels)):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, :len(lab)] = torch.tensor(lab)
    ids, labels = ids.to(device), labels.to(device)
    if batch.kind == "prefix" and batch.prefix and not prompt_grad:
        return _answer_loss(decoder, lm_head, batch, ids, labels, device)
    if batch.kind == "prefix" and batch.prefix:
        from transformers import DynamicCache

        p = len(batch.prefix)
        cache = DynamicCache(config=decoder.config)
        prefix = torch.tensor([batch.prefix], device=device)
        decoder(input_ids=prefix, cache=cache, use_cache=True)
        cache.batch_repeat_interleave(len(batch.rows))  # autograd flows back into the one prefix pass
        # Suffixes are right-padded and attention is causal, so no real token ever sees a pad:
        # no attention mask is needed.
        positions = torch.arange(p, p + width, device=device).unsqueeze(0).expand(len(batch.rows), -1)
        hidden = decoder(input_ids=ids, cache=cache, position_ids=positions, use_cache=True).last_hidden_state
    else:
        positions = torch.zeros_like(ids)
        for i, pos in enumerate(batch.positions or [list(range(len(r))) for r in batch.rows]):
            positions[i, :len(pos)] = torch.tensor(pos)
            # Padding continues counting so it forms its own segment of the block-diagonal mask.
            positions[i, len(pos):] = torch.arange(width - len(pos))
        hidden = decoder(input_ids=ids, position_ids=positions.to(device), use_cache=False).last_hidden_state
    return _token_loss(lm_head, hidden, labels, _softcap(decoder))


def _answer_loss(decoder, lm_head, batch: Batch, ids, labels, device):
    """batch_loss with the prompt computed once without gradients: only the answer tokens are
    differentiated.

    A Text-to-SQL sample is ~1,600 tokens of prompt (schema, question, drafts) and ~40 of answer,
    and backpropagating through the prompt is most of a step's compute, even with the schema
    shared. Here the shared prefix and every row's own prompt run under no_grad (one batched pass),
    then each row's answer runs with gradients on top of that row's cached keys and values. The
    loss and the forward values are the same as batch_loss's; the gradient leaves out how the
    adapter changes the prompt's keys and values (the answer's own path through every layer, its
    attention over the prompt included, is still trained). Serving computes the prompt with the
    adapter, as training's forward pass does."""
    import torch
    from transformers import DynamicCache

    p = len(batch.prefix)
    # A row's answer starts at its first labelled token; the position before it predicts that
    # token, so the differentiated part starts one earlier.
    starts = [max(next((j for j, t in enumerate(lab) if t != IGNORE), len(lab)) - 1, 0) for lab in batch.labels]
    context = max(starts)
    with torch.no_grad():
        cache = DynamicCache(config=decoder.config)
        decoder(input_ids=torch.tensor([batch.prefix], device=device), cache=cache, use_cache=True)
        cache.batch_repeat_interleave(len(batch.rows))
        if context:
            positions = torch.arange(p, p + context, device=device).unsqueeze(0).expand(len(batch.rows), -1)
            decoder(input_ids=ids[:, :context], cache=cache, position_ids=positions, use_cache=True)
    total, count = None, 0
    for i, (row, start) in enumerate(zip(batch.rows, starts)):
        if start >= len(row) - 1:
            continue  # nothing labelled in this row
        own = DynamicCache(config=decoder.config)
        for layer, kv in enumerate(cache.layers):  # this row's prompt: shared prefix + its own part
            own.update(kv.keys[i:i + 1, :, :p + start], kv.values[i:i + 1, :, :p + start], layer)
        positions = torch.arange(p + start, p + len(row), device=device).unsqueeze(0)
        hidden = decoder(input_ids=ids[i:i + 1, start:len(row)], cache=own, position_ids=positions,
                         use_cache=True).last_hidden_state
        loss, n = _token_loss(lm_head, hidden, labels[i:i + 1, start:len(row)], _softcap(decoder))
        total, count = (loss if total is None else total + loss), count + n
    if total is None:
        return torch.zeros((), device=device, requires_grad=True), 0
    return total, count


def loss_module(model, device, pad_id: int, prompt_grad: bool = True):
    """`model` inside an nn.Module whose forward(batch) is batch_loss, for DistributedDataParallel.

    DDP all-reduces gradients only for work done through its own forward, and batch_loss calls the
    decoder and lm_head directly, so under several processes the loss itself is the module's forward.
    """
    import torch

    class StepLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, batch: Batch):
            return batch_loss(self.model, batch, device, pad_id, prompt_grad)

    return StepLoss()


def loss_sums(model, batches: list[Batch], device, pad_id: int) -> tuple[float, int]:
    """(summed loss, loss tokens) over `batches`, without gradients."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            loss, n = batch_loss(model, b, device, pad_id)
            total += float(loss)
            count += n
    model.train()
    return total, count


def evaluate(model, batches: list[Batch], device, pad_id: int) -> float | None:
    """Mean loss per loss token over `batches` (validation loss)."""
    if not batches:
        return None
    total, count = loss_sums(model, batches, device, pad_id)
    return total / max(count, 1)
