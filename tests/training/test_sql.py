"""SQL pairs → chat samples (training/sql.py): drafts never come from the pair itself, and the
other-shape share is seeded, deterministic and really drafts from another SQL shape."""

from __future__ import annotations

import pytest

from server.sql.canonical import sql_skeleton
from server.sql.prompt import DRAFT_LABEL, DRAFTS_LABEL
from server.sql.sample.paths import PAIRS_DIR
from training.sql import sql_samples


def draft_of(sample: dict) -> str:
    user = sample["messages"][-2]["content"]
    return user.split(DRAFT_LABEL, 1)[1].strip()


def gold_of(sample: dict) -> str:
    return sample["messages"][-1]["content"].strip().strip("`").removeprefix("sql").strip()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    rows = (PAIRS_DIR / "train.jsonl").read_text().splitlines()
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("\n".join(rows[::6]) + "\n")  # 93 pairs over every shape
    return path


def samples(pairs, fraction: float, seed: int = 0) -> list[dict]:
    return sql_samples(pairs, few_shot_k=1, schema_source="ddl", examples_path=PAIRS_DIR / "train.jsonl",
                       other_shape_fraction=fraction, seed=seed)


def test_other_shape_samples_are_drafted_from_another_shape(pairs) -> None:
    out = samples(pairs, 0.5)
    chosen = [s for s in out if s["other_shape"]]
    assert 0.3 * len(out) < len(chosen) < 0.7 * len(out)
    for s in chosen:
        assert sql_skeleton(draft_of(s)) != sql_skeleton(gold_of(s)), s["id"]
    # without it, most drafts have the gold's shape (the pair's siblings with other values; the pool
    # also holds the schema's templates, as serving's does, and one of those is sometimes nearer)
    plain = samples(pairs, 0.0)
    assert not any(s["other_shape"] for s in plain)
    same = sum(sql_skeleton(draft_of(s)) == sql_skeleton(gold_of(s)) for s in plain)
    assert same > 0.75 * len(plain)


def test_the_choice_is_seeded_and_deterministic(pairs) -> None:
    ids = lambda out: [s["id"] for s in out if s["other_shape"]]  # noqa: E731
    assert ids(samples(pairs, 0.5)) == ids(samples(pairs, 0.5))
    assert ids(samples(pairs, 0.5)) != ids(samples(pairs, 0.5, seed=1))


def test_several_drafts_are_numbered_candidates_of_different_shapes(pairs) -> None:
    out = sql_samples(pairs, schema_source="ddl", examples_path=PAIRS_DIR / "train.jsonl", drafts=3)
    single = {s["id"]: draft_of(s) for s in samples(pairs, 0.0)}
    for s in out:
        user = s["messages"][-2]["content"]
        assert DRAFT_LABEL not in user
        lines = user.split(DRAFTS_LABEL, 1)[1].strip().splitlines()
        assert [line.split(". ", 1)[0] for line in lines] == ["1", "2", "3"], s["id"]
        candidates = [line.split(". ", 1)[1] for line in lines]
        assert len({sql_skeleton(c) for c in candidates}) == 3
        assert candidates[0] == single[s["id"]]  # the first is the single draft
    # the gold's shape is among the candidates far more often than it is first (that is the point)
    first = sum(sql_skeleton(single[s["id"]]) == sql_skeleton(gold_of(s)) for s in out)
    among = sum(sql_skeleton(gold_of(s)) in {sql_skeleton(line.split(". ", 1)[1]) for line in
                s["messages"][-2]["content"].split(DRAFTS_LABEL, 1)[1].strip().splitlines()} for s in out)
    assert among > first
