"""The promotion gate on hand-made reports: each check passes, fails with a reason, or names what is missing."""

from __future__ import annotations

import pytest

from server.cli import main
from training.evaluation.gate import GateFailed, check_gate
from training.recipe import GateConfig

from .reports import make_report


def test_a_good_candidate_passes_every_check() -> None:
    result = check_gate(make_report(), GateConfig(), "Q8_0")
    assert result.passed and result.reasons == []
    assert len(result.checks) == 6 and all(c.startswith("ok: ") for c in result.checks)
    assert "drop of 0.5 points" in result.checks[0]


def test_quantization_drop_beyond_the_limit_fails() -> None:
    result = check_gate(make_report(q8=58.0), GateConfig(), "Q8_0")  # 2 points below adapted, 1 allowed
    assert not result.passed
    assert result.reasons == ["Q8_0 SQL EX 58.0% vs adapted 60.0% on sample: a drop of 2.0 points (allowed 1.0)"]
    assert check_gate(make_report(q8=58.0), GateConfig(max_quant_drop_points=2.0), "Q8_0").passed
    assert check_gate(make_report(q8=58.0), GateConfig(max_quant_drop_points=None), "Q8_0").passed  # check off


def test_not_beating_the_baseline_fails_and_a_tie_is_not_a_win() -> None:
    result = check_gate(make_report(adapted=40.0, q8=40.0, baseline=40.0), GateConfig(), "Q8_0")
    assert not result.passed
    assert result.reasons == ["Q8_0 SQL EX 40.0% vs template baseline 40.0% on sample (must be higher)"]
    assert check_gate(make_report(adapted=40.0, q8=40.0, baseline=40.0), GateConfig(must_beat_baseline=False),
                      "Q8_0").passed


def test_losing_to_the_un_adapted_base_fails_and_a_tie_passes() -> None:
    # sql.template_first: both answer the questions a template fits with the same templates, so a tie
    # is common (the default recipe on the sample, 2026-12-07); the adapter must only not lose.
    assert check_gate(make_report(q8=59.5, base=59.5), GateConfig(), "Q8_0").passed
    result = check_gate(make_report(q8=59.5, base=60.0), GateConfig(), "Q8_0")
    assert result.reasons == ["Q8_0 SQL EX 59.5% vs base (un-adapted) 60.0% on sample (at most 0.0 points below)",
                              "Q8_0 SQL EX 54.5% vs base (un-adapted) 55.0% on sample's unseen SQL shapes "
                              "(at most 0.0 points below)"]
    assert check_gate(make_report(q8=59.5, base=60.0), GateConfig(max_base_drop_points=0.5), "Q8_0").passed
    assert check_gate(make_report(adapted=50.0, q8=50.0, base=60.0), GateConfig(max_base_drop_points=None),
                      "Q8_0").passed  # check off


def test_the_replaced_strict_base_key_fails_with_its_replacement_named() -> None:
    with pytest.raises(ValueError, match="must_beat_base was replaced by gate.max_base_drop_points"):
        GateConfig(must_beat_base=True)


def _unseen(report: dict, variant: str, ex: float | None) -> dict:
    summary = (report["baseline"]["sql"]["sample"] if variant == "baseline"
               else report["variants"][variant]["sql"]["sample"]["constrained"])
    if ex is None:
        summary.pop("by_seen_shape")
    else:
        summary["by_seen_shape"]["False"]["ex_pct"] = ex
    return report


def test_winning_overall_is_not_enough_the_unseen_shapes_must_not_be_lost() -> None:
    # Better overall (59.5 > 20.0) by re-ranking known shapes, but worse on new ones.
    report = _unseen(_unseen(make_report(), "Q8_0", 5.3), "base", 6.7)
    result = check_gate(report, GateConfig(), "Q8_0")
    assert result.reasons == ["Q8_0 SQL EX 5.3% vs base (un-adapted) 6.7% on sample's unseen SQL shapes "
                              "(at most 0.0 points below)"]
    assert "ok: Q8_0 SQL EX 59.5% vs base (un-adapted) 20.0% on sample (at most 0.0 points below)" in result.checks
    assert check_gate(report, GateConfig(on_unseen_shapes=False), "Q8_0").passed
    assert not check_gate(_unseen(make_report(), "baseline", 60.0), GateConfig(), "Q8_0").passed


def test_a_split_without_unseen_labels_skips_the_unseen_checks_and_says_so() -> None:
    report = make_report()
    for name in ("Q8_0", "base", "baseline"):
        _unseen(report, name, None)
    result = check_gate(report, GateConfig(), "Q8_0")
    assert result.passed and sum(c.startswith("skipped: sample has no questions") for c in result.checks) == 2
    result = check_gate(_unseen(make_report(), "base", None), GateConfig(), "Q8_0")  # one side only: missing
    assert result.reasons == ["no SQL EX on 'sample''s unseen shapes for variant 'base' in the report "
                              "(Text-to-SQL not evaluated)"]


def test_general_knowledge_loss_fails() -> None:
    result = check_gate(make_report(base_mc=0.60, q8_mc=0.55), GateConfig(), "Q8_0")
    assert not result.passed
    assert result.reasons == ["Q8_0 general MC 55.0% vs base 60.0%: a drop of 5.0 points (allowed 2.0)"]
    assert "gate failed" in result.explain() and "general MC 55.0%" in result.explain()


def test_several_failures_are_all_reported() -> None:
    result = check_gate(make_report(q8=30.0, baseline=35.0, q8_mc=0.30), GateConfig(), "Q8_0")
    assert len(result.reasons) == 3


def test_missing_numbers_fail_and_say_what_is_missing() -> None:
    report = make_report()
    del report["variants"]["adapted"]
    del report["baseline"]
    report["variants"]["Q8_0"].pop("mc")
    result = check_gate(report, GateConfig(), "Q8_0")
    assert not result.passed and len(result.reasons) == 3
    assert "no SQL EX on 'sample' for variant 'adapted'" in result.reasons[0]
    assert "variant 'baseline'" in result.reasons[1]
    assert "no general multiple-choice accuracy for variant 'Q8_0'" in result.reasons[2]


def test_candidate_comes_from_the_gate_settings() -> None:
    assert not check_gate(make_report(q4=50.0), GateConfig(candidate="Q4_K_M")).passed
    assert check_gate(make_report(q4=50.0, base_mc=0.48), GateConfig(candidate="Q4_K_M", reference="Q8_0",
                                                       max_quant_drop_points=10.0), None).passed


def _run_with_report(tmp_path, report: dict, enforce: bool = True):
    from training.io import write_json
    from training.recipe import load_recipe

    run = tmp_path / "run"
    write_json(run / "eval" / "report.json", report)
    (run / "serve.yaml").write_text("models: []\n")  # registered by an earlier run
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nout_dir: {run}\ngate:\n  enforce: {str(enforce).lower()}\n")
    return run, recipe, load_recipe(recipe)


def test_register_refuses_and_unregisters_when_the_gate_fails(tmp_path, capsys) -> None:
    from quantize.pipeline import check_registration

    run, recipe_path, recipe = _run_with_report(tmp_path, make_report(q8=50.0))
    with pytest.raises(GateFailed, match="drop of 10.0 points"):
        check_registration(recipe)
    assert not (run / "serve.yaml").exists()
    assert main(["pipeline", str(recipe_path), "--stages", "register"]) == 1
    err = capsys.readouterr()
    assert "gate failed" in err.out and "not registered, the promotion gate failed" in err.err
    assert not (run / "serve.yaml").exists() and not (run / "stages" / "register.json").exists()


def test_register_goes_ahead_when_the_gate_passes_or_is_not_enforced(tmp_path) -> None:
    from quantize.pipeline import check_registration

    run, _, recipe = _run_with_report(tmp_path, make_report())
    assert check_registration(recipe)["passed"] is True
    run, _, recipe = _run_with_report(tmp_path, make_report(q8=50.0), enforce=False)
    result = check_registration(recipe)
    assert result["passed"] is False and result["enforced"] is False and (run / "serve.yaml").exists()


def _renamed(report: dict, old: str, new: str) -> dict:
    """The report as if the evaluation had measured the set `new` (a user's pairs file) first."""
    for v in report["variants"].values():
        v["sql"][new] = v["sql"].pop(old)
    report["baseline"]["sql"][new] = report["baseline"]["sql"].pop(old)
    report["sql_splits"] = [new] + [s for s in report["sql_splits"] if s != old]
    return report


def test_the_gate_judges_the_first_set_the_evaluation_measured() -> None:
    # A model trained on a customer's pairs, evaluated on their own held-out pairs: no 'sample' set.
    report = _renamed(make_report(), "sample", "acme_pairs")
    result = check_gate(report, GateConfig(), "Q8_0")
    assert result.passed and all("on acme_pairs" in c for c in result.checks[:5] if "SQL EX" in c)
    # Named explicitly, a set that was not measured is reported missing.
    missing = check_gate(report, GateConfig(sql_split="sample"), "Q8_0")
    assert not missing.passed and "no SQL EX on 'sample'" in missing.reasons[0]
