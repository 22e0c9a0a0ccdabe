"""The part store that lets a stopped `hearth eval` resume (training/evaluation/parts.py)."""

from __future__ import annotations

import os

from training.evaluation.parts import Parts, model_fingerprint


def test_a_stored_part_is_reused_only_under_the_same_key(tmp_path) -> None:
    calls = []

    def measure(value):
        def run():
            calls.append(value)
            return {"ex": value}
        return run

    parts = Parts(tmp_path)
    assert parts.get_or_run("sql", "Q8_0", {"model": 1}, measure(0.5)) == {"ex": 0.5}
    assert Parts(tmp_path).get_or_run("sql", "Q8_0", {"model": 1}, measure(0.9)) == {"ex": 0.5}  # resumed
    assert Parts(tmp_path).get_or_run("sql", "Q8_0", {"model": 2}, measure(0.7)) == {"ex": 0.7}  # key changed
    assert Parts(tmp_path).get_or_run("sql", "Q4_K_M", {"model": 2}, measure(0.6)) == {"ex": 0.6}  # other variant
    assert Parts(tmp_path, fresh=True).get_or_run("sql", "Q8_0", {"model": 2}, measure(0.8)) == {"ex": 0.8}
    assert calls == [0.5, 0.7, 0.6, 0.8]


def test_a_torn_part_file_is_measured_again(tmp_path) -> None:
    parts = Parts(tmp_path)
    parts.save("mc-general", "base", {"k": 1}, {"acc": 0.5})
    parts.path("mc-general", "base").write_text('{"key": "')  # as if cut off mid-write by another tool
    assert parts.load("mc-general", "base", {"k": 1}) is None


def test_a_rewritten_model_file_changes_the_fingerprint(tmp_path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(100))
    before = model_fingerprint(model)
    model.write_bytes(b"GGUF" + bytes(100))
    os.utime(model, ns=(1, 1))
    assert model_fingerprint(model) != before


def test_sql_variants_limits_which_variants_get_the_sql_run(tmp_path, monkeypatch) -> None:
    """eval.sql_variants: the variants not named keep their MC and get a note, not a Text-to-SQL run."""
    from training.evaluation import sql_accuracy, suite
    from training.evaluation.parts import Parts
    from training.evaluation.variants import Variant
    from training.recipe import EvalConfig

    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    measured = []
    monkeypatch.setattr(sql_accuracy, "evaluate_baseline", lambda items, **kw: {})
    monkeypatch.setattr(sql_accuracy, "evaluate_sql_variant",
                        lambda path, items, modes, **kw: measured.append(path) or {})
    monkeypatch.setattr(suite, "load_sql_items", lambda config: [])
    variants = [Variant("base", str(tmp_path / "a.gguf"), "gguf"), Variant("Q4_K_M", str(tmp_path / "b.gguf"), "gguf")]
    report = {"variants": {"base": {}, "Q4_K_M": {}}, "sql_records": {}}
    suite.run_sql(variants, EvalConfig(sql_variants=["base"]), report, False, Parts(tmp_path / "out"))
    assert measured == [str(tmp_path / "a.gguf")]
    assert report["variants"]["Q4_K_M"]["notes"] == ["Text-to-SQL not measured (eval.sql_variants)"]


def test_the_sql_key_holds_every_serving_setting_defaults_included(tmp_path) -> None:
    """Every sql setting is in the key, at the value the eval server runs with, so a serving default
    that changes (not only what the recipe sets) measures again."""
    from server.sql.settings import SqlSettings
    from training.evaluation import suite
    from training.evaluation.variants import Variant
    from training.recipe import EvalConfig

    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    variant = Variant("base", str(tmp_path / "a.gguf"), "gguf")
    key = suite._sql_key(variant, [], EvalConfig())["sql"]
    assert set(key) == set(SqlSettings.model_fields)
    assert key["template_shapes"] == SqlSettings().template_shapes and key["max_new_tokens"] == SqlSettings().max_new_tokens
    changed = suite._sql_key(variant, [], EvalConfig(sql_settings={"template_shapes": SqlSettings().template_shapes}))["sql"]
    assert key == changed  # a default spelled out is the same key
    other = suite._sql_key(variant, [], EvalConfig(sql_settings={"template_shapes": 12}))["sql"]
    assert other["template_shapes"] == 12 and {k for k in key if key[k] != other[k]} == {"template_shapes"}
