"""Seeded, deterministic mixing of domain, general and instruction (MIP) data, with a manifest.

Roles a source can play (recipe `sources[].role`):
  domain       the customer's data: every sample is used `domain_repeat` times (default once);
  general      against forgetting: sampled until general ≈ ratio × domain;
  instruction  multi-task instruction pre-training (MIP): sampled until it is `mip_fraction` of
               the final mix.

Ratios are measured in *loss tokens* (tokens that carry a training signal), not raw tokens:
a Text-to-SQL sample is ~1,200 tokens of which ~30 (the SQL) are trained, the rest being a
schema shared by every sample, so raw-token ratios would say nothing about how much the model
learns from each side. Both counts go into the manifest.

Sampling without replacement in a seeded shuffle order; when a pool is too small it is repeated
at most `max_repeat` times, and the achieved ratio (not the asked one) is reported.
"""

from __future__ import annotations

import random

from .tokens import IGNORE


def loss_tokens(sample: dict) -> int:
    return sum(1 for t in sample["labels"][1:] if t != IGNORE)


def _take(pool: list[dict], target: int, rng: random.Random, max_repeat: int) -> tuple[list[dict], int]:
    """Samples from `pool` (shuffled, cycled at most max_repeat times) until `target` loss tokens."""
    if target <= 0 or not pool:
        return [], 0
    taken, got, passes = [], 0, 0
    while got < target and passes < max_repeat:
        order = list(range(len(pool)))
        rng.shuffle(order)
        for i in order:
            if got >= target:
                break
            taken.append(pool[i])
            got += loss_tokens(pool[i])
        passes += 1
    return taken, passes


def mix(by_role: dict[str, list[dict]], *, ratio: float, mip_fraction: float, seed: int,
        domain_repeat: int = 1, max_repeat: int = 1) -> tuple[list[dict], dict]:
    """The shuffled training mix and a report of what went in.

    ratio: general loss tokens per domain loss token (1:5 → 5.0).
    mip_fraction: share of the final mix's loss tokens that are instruction pairs (0 → none).
    """
    if ratio < 0 or not 0 <= mip_fraction < 1:
        raise ValueError("ratio must be >= 0 and mip_fraction in [0, 1)")
    rng = random.Random(seed)
    domain = [s for _ in range(domain_repeat) for s in by_role.get("domain", [])]
    d_tokens = sum(loss_tokens(s) for s in domain)
    general, g_passes = _take(by_role.get("general", []), round(ratio * d_tokens), rng, max_repeat)
    g_tokens = sum(loss_tokens(s) for s in general)
    # instruction = f × (domain + general + instruction)  →  instruction = f/(1-f) × (domain + general)
    target = round(mip_fraction / (1 - mip_fraction) * (d_tokens + g_tokens))
    instruction, i_passes = _take(by_role.get("instruction", []), target, rng, max_repeat)
    i_tokens = sum(loss_tokens(s) for s in instruction)
    out = domain + general + instruction
    rng.shuffle(out)
    total = d_tokens + g_tokens + i_tokens
    report = {
        "seed": seed,
        "asked": {"ratio_general_per_domain": ratio, "mip_fraction": mip_fraction},
        "achieved": {
            "ratio_general_per_domain": round(g_tokens / d_tokens, 4) if d_tokens else None,
            "mip_fraction": round(i_tokens / total, 4) if total else 0.0,
        },
        "roles": {
            role: {"samples": len(items), "loss_tokens": sum(loss_tokens(s) for s in items),
                   "tokens": sum(len(s["input_ids"]) for s in items), "passes": passes}
            for role, items, passes in (("domain", domain, domain_repeat), ("general", general, g_passes),
                                        ("instruction", instruction, i_passes))
        },
        "sources": _by_source(out),
        "samples": len(out),
        "tokens": sum(len(s["input_ids"]) for s in out),
        "loss_tokens": total,
    }
    return out, report


def _by_source(samples: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for s in samples:
        row = out.setdefault(s["source"], {"samples": 0, "tokens": 0, "loss_tokens": 0})
        row["samples"] += 1
        row["tokens"] += len(s["input_ids"])
        row["loss_tokens"] += loss_tokens(s)
    return out


def split_validation(samples: list[dict], fraction: float, seed: int, max_samples: int = 64) -> tuple[list, list]:
    """Seeded hold-out for validation loss (early stopping): at most max_samples, at least 1."""
    if fraction <= 0 or len(samples) < 2:
        return samples, []
    order = list(range(len(samples)))
    random.Random(seed + 1).shuffle(order)
    n = max(1, min(max_samples, round(fraction * len(samples))))
    held = set(order[:n])
    return [s for i, s in enumerate(samples) if i not in held], [samples[i] for i in sorted(held)]
