"""Slot placement rules (pure functions, no model)."""

from __future__ import annotations

import pytest

from server.engine.slots import Slot, chunk_end, common_prefix, compact_choices, reusable_length


@pytest.mark.parametrize("busy, idle, final, expected", [
    ((), (0, 1, 2, 3), 1, (0, 1, 2, 3)),  # nothing runs: any slot (LRU decides)
    ((1,), (0, 2, 3), 2, (0, 2)),  # next to the running one
    ((0, 3), (1, 2), 3, (1, 2)),  # a hole inside the run costs nothing
    ((0, 1), (2, 3), 3, (2,)),
    ((2, 3), (0, 1), 3, (1,)),
    ((0, 2), (1, 3), 3, (1,)),
    ((1,), (0, 2, 3), 3, (0, 2, 3)),  # two more will come: 1-3 is still a run of three
    ((3,), (0, 1, 2), 3, (1, 2)),  # but 0 would leave a run of four
    ((0,), (1, 2, 3), 4, (1, 2, 3)),  # every slot will be busy: any will do
    ((0, 3), (1, 2), 2, (1, 2)),  # no choice fits: the shortest run, as before
])
def test_compact_choices_table(busy, idle, final, expected):
    slots = [Slot(seq_id=i) for i in range(4)]
    for i in busy:
        slots[i].job = object()
    chosen = compact_choices(slots, [slots[i] for i in idle], final)
    assert tuple(s.seq_id for s in chosen) == expected


@pytest.mark.parametrize("a, b, limit, expected", [
    ([1, 2, 3], [1, 2, 4], 10, 2),
    ([1, 2, 3], [1, 2, 3], 2, 2),  # capped: one prompt token must stay to decode
    ([], [1], 5, 0),
    ([5], [1], 5, 0),
])
def test_common_prefix_table(a, b, limit, expected):
    assert common_prefix(a, b, limit) == expected


@pytest.mark.parametrize("pos, boundary, expected", [
    (0, None, 128), (100, None, 128), (128, None, 256),
    (0, 300, 128), (256, 300, 300),  # the last block before the boundary ends at it
    (300, 300, 428), (428, 300, 556),  # and blocks restart from it
    (0, 100, 100), (100, 100, 228),
    (0, 128, 128), (128, 128, 256),  # a boundary on a block edge changes nothing
])
def test_chunk_end_table(pos, boundary, expected):
    assert chunk_end(pos, boundary, 128) == expected


@pytest.mark.parametrize("match, boundary, cached, expected", [
    (1313, None, None, 1280),  # no boundary: whole blocks
    (1313, 1250, 1250, 1250),  # the shared prefix, all of it
    (1249, 1250, 1250, 1152),  # short of the boundary: whole blocks
    (1400, 1250, 1250, 1378),  # past it: blocks counted from it
    (1313, 1250, None, 1152),  # cut differently: only blocks below both
    (1313, None, 1250, 1152),
    (1313, 1250, 1300, 1152),
    (1313, 200, 328, 128),  # 328 ends a chunk in both, but 200 and 256 split them differently
    (90, 1250, 1250, 0),
])
def test_reusable_length_table(match, boundary, cached, expected):
    assert reusable_length(match, boundary, cached, 128) == expected
