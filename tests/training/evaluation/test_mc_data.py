"""The project's own general-ability set: valid, balanced, no duplicates."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from training.evaluation.mc import load_mc

GENERAL = Path(__file__).resolve().parents[3] / "training" / "evaluation" / "data" / "general_mc.jsonl"


def test_general_set_is_valid_and_balanced():
    items = load_mc(GENERAL)  # validates every line, ids unique
    assert len(items) >= 250
    assert all(len(it["choices"]) == 4 and it["status"] == "approved" for it in items)
    assert all(len({c.strip().lower() for c in it["choices"]}) == 4 for it in items)
    norm = [re.sub(r"\W+", " ", it["question"].lower()).strip() for it in items]
    assert len(set(norm)) == len(norm), [q for q, n in Counter(norm).items() if n > 1]
    positions = Counter(it["answer"] for it in items)
    assert set(positions) == {0, 1, 2, 3}
    assert max(positions.values()) - min(positions.values()) <= 0.05 * len(items), positions
    subjects = Counter(it["subject"] for it in items)
    assert len(subjects) >= 8 and min(subjects.values()) >= 25, subjects
    for subject in subjects:  # balanced inside each subject too, so per-subject acc is not position bias
        pos = Counter(it["answer"] for it in items if it["subject"] == subject)
        assert len(pos) == 4 and max(pos.values()) - min(pos.values()) <= 2, (subject, pos)


def test_general_set_arithmetic_answers_are_right():
    checked = 0
    for it in load_mc(GENERAL):
        m = re.fullmatch(r"What is ([\d.\s+\-×÷]+)\?", it["question"])
        if it["subject"] == "arithmetic" and m:
            expected = eval(m.group(1).replace("×", "*").replace("÷", "/"))  # digits and operators only
            assert float(it["choices"][it["answer"]]) == expected, it
            checked += 1
    assert checked >= 15
