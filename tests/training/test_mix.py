"""Mixing: ratios in loss tokens, MIP fraction, determinism, manifest of a real `hearth data` run."""

from __future__ import annotations

import json

import pytest

from training.mix import loss_tokens, mix, split_validation


def _pool(source: str, n: int, trained: int) -> list[dict]:
    return [{"input_ids": list(range(trained + 5)), "labels": [-100] * 5 + list(range(trained)), "source": source,
             "id": f"{source}{i}"} for i in range(n)]


def test_ratio_and_mip_fraction_achieved():
    # domain: 20 samples × 10 loss tokens = 200
    pools = {"domain": _pool("d", 20, 10), "general": _pool("g", 500, 10), "instruction": _pool("i", 100, 10)}
    out, report = mix(pools, ratio=5.0, mip_fraction=0.1, seed=3)
    roles = report["roles"]
    assert roles["domain"]["loss_tokens"] == 200
    assert roles["general"]["loss_tokens"] == 1000  # 5 × 200 exactly
    assert report["achieved"]["ratio_general_per_domain"] == 5.0
    assert report["achieved"]["mip_fraction"] == pytest.approx(0.1, abs=0.01)
    assert sum(loss_tokens(s) for s in out) == report["loss_tokens"]


def test_mix_is_deterministic_and_seed_dependent():
    pools = {"domain": _pool("d", 30, 4), "general": _pool("g", 300, 4)}
    a, _ = mix(pools, ratio=5, mip_fraction=0, seed=1)
    b, _ = mix(pools, ratio=5, mip_fraction=0, seed=1)
    c, _ = mix(pools, ratio=5, mip_fraction=0, seed=2)
    assert [s["id"] for s in a] == [s["id"] for s in b]
    assert [s["id"] for s in a] != [s["id"] for s in c]


def test_small_general_pool_reports_the_achieved_ratio():
    out, report = mix({"domain": _pool("d", 10, 10), "general": _pool("g", 3, 10)}, ratio=5, mip_fraction=0, seed=0)
    assert report["achieved"]["ratio_general_per_domain"] == pytest.approx(0.3)
    _, report = mix({"domain": _pool("d", 10, 10), "general": _pool("g", 3, 10)}, ratio=5, mip_fraction=0, seed=0,
                    max_repeat=100)
    assert report["achieved"]["ratio_general_per_domain"] == pytest.approx(5.0)


def test_validation_split_is_disjoint_and_seeded():
    pool = _pool("d", 100, 3)
    train, val = split_validation(pool, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90
    assert not {s["id"] for s in train} & {s["id"] for s in val}
    assert [s["id"] for s in val] == [s["id"] for s in split_validation(pool, 0.1, seed=0)[1]]


@pytest.mark.train
def test_hearth_data_writes_manifest(tmp_path, tiny_model, data_dir):
    """`hearth data` on a corpus + chat + SQL pairs: files, hashes, counts and ratio in the manifest."""
    from server.cli import main
    from tests.training.conftest import sql_pairs
    from training.io import sha256_file

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"doc{i}.md").write_text(f"# Policy {i}\n\n" + f"Orders from region {i} ship within {i + 2} days. " * 8)
    (corpus / "dup.md").write_text((corpus / "doc0.md").read_text())
    chat = tmp_path / "general.jsonl"
    chat.write_text("".join(json.dumps({"prompt": f"Say {i}", "response": f"Number {i} is {'odd' if i % 2 else 'even'}."})
                            + "\n" for i in range(40)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: t
base_model: {tiny_model}
out_dir: {tmp_path / 'run'}
sources:
  - {{name: docs, kind: corpus, path: {corpus}, role: domain}}
  - {{name: sql, kind: sql, path: {sql_pairs(tmp_path / 'pairs.jsonl', 8)}, role: domain, schema_source: ddl}}
  - {{name: general, kind: chat, path: {chat}, role: general}}
data: {{ratio: 0.2, val_fraction: 0.1, seed: 7}}
train: {{seq_len: 2048}}
""")
    assert main(["data", str(recipe)]) == 0
    data = tmp_path / "run" / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["sources"]["docs"]["cleaning"]["exact_duplicates"] == 1
    assert manifest["sources"]["sql"]["samples"] == 8
    assert manifest["files"]["train.jsonl"] == sha256_file(data / "train.jsonl")
    achieved = manifest["mix"]["achieved"]["ratio_general_per_domain"]
    assert 0.15 <= achieved <= 0.25
    assert manifest["split"]["train"] + manifest["split"]["val"] == manifest["mix"]["samples"]
    first = (data / "train.jsonl").read_bytes()
    assert main(["data", str(recipe)]) == 0  # same inputs, same seed: byte-identical output
    assert (data / "train.jsonl").read_bytes() == first


def test_a_mix_short_of_its_ratio_is_an_error_that_says_what_to_change():
    from training.prepare import check_mix, describe_mix
    from training.recipe import DataConfig

    _, short = mix({"domain": _pool("d", 10, 10), "general": _pool("g", 3, 10)}, ratio=5, mip_fraction=0, seed=0)
    with pytest.raises(ValueError, match=r"asks 5 .* give 0\.3 .*set data\.ratio to 0\.3"):
        check_mix(short, DataConfig(ratio=5))
    assert "asked 5, achieved 0.3 (3 general samples, 1 pass(es)" in describe_mix(short)
    _, met = mix({"domain": _pool("d", 10, 10), "general": _pool("g", 3, 10)}, ratio=5, mip_fraction=0, seed=0,
                 max_repeat=100)
    check_mix(met, DataConfig(ratio=5, max_repeat=100))  # met by repetition: no error
    _, none = mix({"domain": _pool("d", 10, 10)}, ratio=0, mip_fraction=0, seed=0)
    check_mix(none, DataConfig(ratio=0))
