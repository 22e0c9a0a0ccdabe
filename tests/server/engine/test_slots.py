"""Slot placement rules (pure functions, no model)."""

from __future__ import annotations

import pytest

from server.engine.slots import Slot, common_prefix, compact_choices


@pytest.mark.parametrize("busy, idle, expected", [
    ((), (0, 1, 2, 3), (0, 1, 2, 3)),  # nothing runs: any slot (LRU decides)
    ((1,), (0, 2, 3), (0, 2)),  # next to the running one
    ((0, 3), (1, 2), (1, 2)),  # a hole inside the run costs nothing
    ((0, 1), (2, 3), (2,)),
    ((2, 3), (0, 1), (1,)),
    ((0, 2), (1, 3), (1,)),
])
def test_compact_choices_table(busy, idle, expected):
    slots = [Slot(seq_id=i) for i in range(4)]
    for i in busy:
        slots[i].job = object()
    chosen = compact_choices(slots, [slots[i] for i in idle])
    assert tuple(s.seq_id for s in chosen) == expected


@pytest.mark.parametrize("a, b, limit, expected", [
    ([1, 2, 3], [1, 2, 4], 10, 2),
    ([1, 2, 3], [1, 2, 3], 2, 2),  # capped: one prompt token must stay to decode
    ([], [1], 5, 0),
    ([5], [1], 5, 0),
])
def test_common_prefix_table(a, b, limit, expected):
    assert common_prefix(a, b, limit) == expected
