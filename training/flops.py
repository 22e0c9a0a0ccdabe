"""The FLOP count of training work: the rule the planner's time estimate rests on.

FLOPs per token are 2·N for a forward pass without gradients (the prompt under
`train.prompt_grad: false`), 4·N for LoRA with gradients (backward through frozen weights, no
weight gradients) and 6·N for full training, N = non-embedding parameters; attention adds 4·A per
layer per attended position forward (QK and AV, A = heads × head_dim), times 2 or 3 likewise;
lm_head runs on the labelled tokens only (training/loop.py); gradient checkpointing adds the
forward of the differentiated tokens again (+2·N). The count is linear in tokens and in N;
training/calibrate.py measures the rate in the same units, with the same rule.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass


@dataclass
class Work:
    """What a set of micro-batches computes, in the units the time rule counts."""

    forward_tokens: int = 0    # token positions run without gradients (the prompt, prompt_grad false)
    grad_tokens: int = 0       # token positions run with gradients
    forward_attended: int = 0  # Σ positions attended by the forward-only tokens
    grad_attended: int = 0     # Σ positions attended by the tokens with gradients
    label_tokens: int = 0      # positions through lm_head
    passes: int = 0            # decoder passes (each costs the fixed per-layer overhead, per layer)

    def __add__(self, other: Work) -> Work:
        return Work(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def scaled(self, factor: float) -> Work:
        return Work(*(round(a * factor) for a in astuple(self)))


def _attended(start: int, n: int) -> int:
    """Σ of attended positions for n causal tokens at positions start .. start+n-1."""
    return n * start + n * (n + 1) // 2


def batch_work(batch, prompt_grad: bool = True) -> Work:
    """The Work of one micro-batch as training/loop.py runs it (padding included: it is computed)."""
    from .tokens import IGNORE

    rows, width, p = len(batch.rows), max(len(r) for r in batch.rows), len(batch.prefix)
    labels = batch.n_labels
    if batch.kind != "prefix" or not batch.prefix:  # packed rows, one pass
        return Work(grad_tokens=rows * width, grad_attended=rows * _attended(0, width), label_tokens=labels, passes=1)
    if prompt_grad:  # the prefix once, then every suffix on its cache, all differentiated
        return Work(grad_tokens=p + rows * width, grad_attended=_attended(0, p) + rows * _attended(p, width),
                    label_tokens=labels, passes=2)
    # _answer_loss: prefix and each row's prompt without gradients, then each answer on its own
    starts = [max(next((j for j, t in enumerate(lab) if t != IGNORE), len(lab)) - 1, 0) for lab in batch.labels]
    context = max(starts)
    answers = [(s, len(r) - s) for r, s in zip(batch.rows, starts) if s < len(r) - 1]
    return Work(forward_tokens=p + rows * context, forward_attended=_attended(0, p) + rows * _attended(p, context),
                grad_tokens=sum(n for _, n in answers), grad_attended=sum(_attended(p + s, n) for s, n in answers),
                label_tokens=labels, passes=1 + (1 if context else 0) + len(answers))


def model_shape(config: dict) -> dict:
    d, layers, ff = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or d // heads
    per_layer = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d + 3 * d * ff
    embed = config["vocab_size"] * d
    embed_params = embed * (1 if config.get("tie_word_embeddings", True) else 2)  # input table (+ untied lm_head)
    return {"hidden": d, "layers": layers, "body_params": per_layer * layers, "vocab": config["vocab_size"],
            "attn_width": heads * head_dim, "kv_width": kv * head_dim, "ff": ff, "embed_params": embed_params,
            "total_params": per_layer * layers + embed_params}


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_params(shape: dict, r: int, targets=LORA_TARGETS) -> int:
    """Trainable parameters of rank-r LoRA: r·(in + out) per adapted linear, per layer."""
    d, a, kv, ff = shape["hidden"], shape["attn_width"], shape["kv_width"], shape["ff"]
    sizes = {"q_proj": d + a, "k_proj": d + kv, "v_proj": d + kv, "o_proj": a + d,
             "gate_proj": d + ff, "up_proj": d + ff, "down_proj": ff + d}
    return shape["layers"] * r * sum(sizes[t] for t in targets if t in sizes)


def train_flops(shape: dict, work: Work, method: str, recompute: bool = False) -> float:
    """FLOPs of `work` by the module docstring's rule; `recompute` (gradient checkpointing) runs the
    differentiated tokens' forward (2 per weight) once more during backward."""
    k = (4 if method == "lora" else 6) + (2 if recompute else 0)
    attn = 2 * shape["layers"] * shape["attn_width"]  # per attended position, per FLOP unit of k
    return (2 * (work.forward_tokens * shape["body_params"] + work.forward_attended * attn)
            + k * (work.grad_tokens * shape["body_params"] + work.grad_attended * attn)
            + k * work.label_tokens * shape["vocab"] * shape["hidden"])
