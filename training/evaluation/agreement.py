"""How much reviewers agree on ordinal 1-5 grades: exact agreement, weighted kappa, Krippendorff's alpha.

    exact_agreement(units)        share of reviewer pairs (on the same item) giving the same score,
                                  and the share within one point
    weighted_kappa(a, b)          Cohen's kappa for two reviewers, quadratic (or linear) weights:
                                  1 - sum(w * observed) / sum(w * expected by chance)
    krippendorff_alpha(units)     any number of reviewers, missing grades allowed:
                                  1 - D_observed / D_expected over the coincidence matrix, with
                                  the ordinal (rank-based) or interval (squared difference) metric

`units` maps an item to the scores it received (one per reviewer). Items with fewer than two
scores carry no information about agreement and are left out. Each statistic is None when it is
undefined (no pairable data, or no variation at all, where chance agreement is already perfect).
Formulas: Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011); Cohen (1968).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Literal, Mapping, Sequence

Units = Mapping[str, Sequence[int]]


def _pairable(units: Units) -> dict[str, list[int]]:
    return {u: list(v) for u, v in units.items() if len(v) >= 2}


def exact_agreement(units: Units) -> dict:
    """{"pairs": n, "exact": share equal, "within_one": share |a-b| <= 1} over all reviewer pairs."""
    diffs = [abs(a - b) for scores in _pairable(units).values() for a, b in combinations(scores, 2)]
    if not diffs:
        return {"pairs": 0, "exact": None, "within_one": None}
    return {"pairs": len(diffs), "exact": sum(d == 0 for d in diffs) / len(diffs),
            "within_one": sum(d <= 1 for d in diffs) / len(diffs)}


def weighted_kappa(a: Sequence[int], b: Sequence[int],
                   weights: Literal["quadratic", "linear"] = "quadratic") -> float | None:
    """Cohen's weighted kappa of two reviewers' scores on the same items (a[i] and b[i])."""
    if len(a) != len(b):
        raise ValueError(f"both reviewers must grade the same items ({len(a)} != {len(b)} scores)")
    n = len(a)
    if n == 0:
        return None
    power = 2 if weights == "quadratic" else 1
    # The weight's scale cancels in the ratio, so raw |i-j|^p serves (no division by (k-1)^p).
    observed = sum(abs(x - y) ** power for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(ca * cb * abs(x - y) ** power for x, ca in count_a.items() for y, cb in count_b.items()) / n**2
    if expected == 0:
        return None
    return 1 - observed / expected


def _coincidences(units: Units) -> Counter:
    """o[c, k]: each ordered pair of scores within an item, weighted 1 / (m_u - 1)."""
    o: Counter = Counter()
    for scores in _pairable(units).values():
        m = len(scores)
        for i, c in enumerate(scores):
            for j, k in enumerate(scores):
                if i != j:
                    o[c, k] += 1 / (m - 1)
    return o


def krippendorff_alpha(units: Units, level: Literal["ordinal", "interval"] = "ordinal") -> float | None:
    o = _coincidences(units)
    n_c: Counter = Counter()
    for (c, _), value in o.items():
        n_c[c] += value
    n = sum(n_c.values())
    if n <= 1:
        return None
    values = sorted(n_c)

    def delta(c: int, k: int) -> float:
        if level == "interval":
            return float((c - k) ** 2)
        lo, hi = min(c, k), max(c, k)  # ordinal: ranks between c and k, halving the ends
        between = sum(n_c[g] for g in values if lo <= g <= hi)
        return (between - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum(value * delta(c, k) for (c, k), value in o.items()) / n
    expected = sum(n_c[c] * n_c[k] * delta(c, k) for c in values for k in values) / (n * (n - 1))
    if expected == 0:
        return None
    return 1 - observed / expected


def agreement_report(grades: Mapping[str, Mapping[str, int]]) -> dict:
    """grades[item][reviewer] = score → every statistic above, plus quadratic kappa per reviewer pair."""
    units = {item: list(by_reviewer.values()) for item, by_reviewer in grades.items()}
    reviewers = sorted({r for by_reviewer in grades.values() for r in by_reviewer})
    pairs = []
    for r1, r2 in combinations(reviewers, 2):
        shared = [item for item, by in grades.items() if r1 in by and r2 in by]
        a = [grades[item][r1] for item in shared]
        b = [grades[item][r2] for item in shared]
        pairs.append({"reviewers": [r1, r2], "items": len(shared),
                      "exact": sum(x == y for x, y in zip(a, b)) / len(shared) if shared else None,
                      "kappa_quadratic": weighted_kappa(a, b) if shared else None})
    return {
        "items_with_several_grades": len(_pairable(units)),
        **exact_agreement(units),
        "krippendorff_alpha_ordinal": krippendorff_alpha(units, "ordinal"),
        "krippendorff_alpha_interval": krippendorff_alpha(units, "interval"),
        "pairwise": pairs,
    }
