"""SQL pairs → chat samples (training/sql.py): the prompt follows serving's own settings (the
recipe's serve.sql), and drafts come from the other pairs, never from the pair itself."""

from __future__ import annotations

import pytest

from server.sql.settings import SqlSettings
from server.sql.canonical import sql_skeleton
from server.sql.prompt import DRAFT_LABEL
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


def samples(pairs, **serving) -> list[dict]:
    return sql_samples(pairs, serving=SqlSettings(**serving), schema_source="ddl",
                       examples_path=PAIRS_DIR / "train.jsonl")


def test_most_drafts_have_the_gold_shape_but_never_come_from_the_pair_itself(pairs) -> None:
    out = samples(pairs)
    # the pair's siblings with other values; the pool also holds the schema's templates, as
    # serving's does, and one of those is sometimes nearer
    same = sum(sql_skeleton(draft_of(s)) == sql_skeleton(gold_of(s)) for s in out)
    assert same > 0.75 * len(out)
    # a pool holding only the pairs themselves: every draft then comes from another pair
    own = sql_samples(pairs, serving=SqlSettings(schema_templates=False), schema_source="ddl", examples_path=pairs)
    exact = sum(draft_of(s) == gold_of(s) for s in own)
    assert exact < len(own)


def test_the_prompt_follows_the_serving_settings(pairs) -> None:
    plain, shots, bare = samples(pairs)[0], samples(pairs, few_shot_k=2)[0], samples(pairs, draft=False)[0]
    assert len(plain["messages"]) == 2 and DRAFT_LABEL in plain["messages"][0]["content"]
    assert len(shots["messages"]) == 2 + 2 * 2  # two example turns (question, SQL) before the question
    assert all(m["content"].split("Question: ")[-1] != plain["messages"][0]["content"].split("Question: ")[-1]
               for m in shots["messages"][:-2] if m["role"] == "user")  # never the pair itself
    assert DRAFT_LABEL not in bare["messages"][-2]["content"]
