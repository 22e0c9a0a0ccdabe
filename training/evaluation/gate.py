"""The promotion gate: may the quantized model that would be served replace what is served now?

    result = check_gate(report, recipe.gate)           # report: report_data.py's dict
    if not result.passed: print(result.explain())

Checks (settings: GateConfig in training/recipe.py; a limit of None turns its check off):

  quantization  the candidate's SQL EX (the variant to be served, e.g. Q8_0) is at most
                max_quant_drop_points below the reference's (the unquantized adapted model)
  baseline      the candidate's SQL EX is strictly above the template baseline's: a model that
                cannot beat nearest-question retrieval is not worth serving
  base          the candidate's SQL EX is at most max_base_drop_points below the base variant's (the
                un-adapted model served with the same settings; 0 by default: it must not lose). With
                sql.template_first both answer the questions a template fits alike and only the
                model's share tells them apart, so a tie is common and passes (a strict "must beat"
                failed the default recipe on the sample, 65.1% = 65.1%, 2026-12-07)
  unseen        with on_unseen_shapes, both of the above hold on the split's questions of SQL shapes
                no training pair has (`seen_shape: false`) as well: a model that only re-ranks the
                known shapes must not pass for one that generalises (skipped, and said so, for a
                split without those labels)
  general       the candidate's general multiple-choice accuracy is at most
                max_general_drop_points below the base model's (adaptation must not erase what
                the base model knew)

A number the check needs but the report lacks (a set not run, a variant not evaluated) fails the
check, naming what is missing: an unmeasured model is not promoted by default. Points are
percentage points of accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .report_data import MC_GENERAL, mc_acc, sql_ex, sql_seen


class GateFailed(Exception):
    """Raised by the pipeline's register stage when the gate fails and is enforced."""

    def __init__(self, result: "GateResult"):
        super().__init__(result.explain())
        self.result = result


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed (empty when passed)
    checks: list[str] = field(default_factory=list)  # every check's numbers, passed or not

    def explain(self) -> str:
        if self.passed:
            return "gate passed:\n" + "\n".join(f"  - {c}" for c in self.checks)
        return "gate failed:\n" + "\n".join(f"  - {r}" for r in self.reasons)

    def to_dict(self) -> dict:
        return asdict(self)


def _missing(what: str, variant: str, where: str) -> str:
    return f"no {what} for variant {variant!r} in the report ({where} not evaluated)"


def check_gate(report: dict, gate, candidate: str | None = None) -> GateResult:
    """Applies `gate` (a GateConfig) to `report`. `candidate` overrides gate.candidate."""
    name = candidate or gate.candidate
    if not name:
        raise ValueError("gate: no candidate variant (set gate.candidate or export.serve_quant)")
    split = gate.sql_split or (report.get("sql_splits") or ["sample"])[0]
    reasons, checks = [], []

    def check(ok: bool, text: str) -> None:
        checks.append(("ok: " if ok else "FAIL: ") + text)
        if not ok:
            reasons.append(text)

    cand_ex = sql_ex(report, name, split)
    if gate.max_quant_drop_points is not None:
        ref_ex = sql_ex(report, gate.reference, split)
        if cand_ex is None or ref_ex is None:
            missing = name if cand_ex is None else gate.reference
            check(False, _missing(f"SQL EX on {split!r}", missing, "Text-to-SQL"))
        else:
            drop = round(ref_ex - cand_ex, 1)
            check(drop <= gate.max_quant_drop_points,
                  f"{name} SQL EX {cand_ex}% vs {gate.reference} {ref_ex}% on {split}: a drop of {drop} points "
                  f"(allowed {gate.max_quant_drop_points})")
    def compare(other: str, label: str, allowed_drop: float | None) -> None:
        """allowed_drop None: strictly above `other`; a number: at most that many points below it."""
        def verdict(cand: float, ref: float) -> tuple[bool, str]:
            if allowed_drop is None:
                return cand > ref, "must be higher"
            return round(ref - cand, 1) <= allowed_drop, f"at most {allowed_drop} points below"

        other_ex = sql_ex(report, other, split)
        if cand_ex is None or other_ex is None:
            check(False, _missing(f"SQL EX on {split!r}", name if cand_ex is None else other, "Text-to-SQL"))
            return
        ok, rule = verdict(cand_ex, other_ex)
        check(ok, f"{name} SQL EX {cand_ex}% vs {label} {other_ex}% on {split} ({rule})")
        if not gate.on_unseen_shapes:
            return
        cand_new, other_new = sql_seen(report, name, False, split), sql_seen(report, other, False, split)
        if cand_new is None and other_new is None:  # a split without seen/unseen labels (defog, a customer's)
            checks.append(f"skipped: {split} has no questions marked as of unseen SQL shapes")
        elif cand_new is None or other_new is None:
            check(False, _missing(f"SQL EX on {split!r}'s unseen shapes", name if cand_new is None else other,
                                  "Text-to-SQL"))
        else:
            ok, rule = verdict(cand_new, other_new)
            check(ok, f"{name} SQL EX {cand_new}% vs {label} {other_new}% on {split}'s unseen SQL shapes ({rule})")

    if gate.must_beat_baseline:
        compare("baseline", "template baseline", None)
    if gate.max_base_drop_points is not None:
        compare(gate.base, f"{gate.base} (un-adapted)", gate.max_base_drop_points)
    if gate.max_general_drop_points is not None:
        cand_mc, base_mc = mc_acc(report, name, MC_GENERAL), mc_acc(report, gate.base, MC_GENERAL)
        if cand_mc is None or base_mc is None:
            missing = name if cand_mc is None else gate.base
            check(False, _missing("general multiple-choice accuracy", missing, "MC general"))
        else:
            drop = round(base_mc - cand_mc, 1)
            check(drop <= gate.max_general_drop_points,
                  f"{name} general MC {cand_mc}% vs {gate.base} {base_mc}%: a drop of {drop} points "
                  f"(allowed {gate.max_general_drop_points})")
    return GateResult(passed=not reasons, reasons=reasons, checks=checks)
