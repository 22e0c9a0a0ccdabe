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



# -- the long prompt rule and the cache's own cells -------------------------------------------------

from server.engine.slots import CPU_FA_TILE_ROWS, SPLIT_KV_FREE_END, last_chunk_end, tiled_chunk_end  # noqa: E402


@pytest.mark.parametrize("pos, boundary, expected", [
    (0, None, 0), (127, None, 0), (128, None, 128), (300, None, 256),
    (100, 150, 0), (149, 150, 128), (150, 150, 150), (277, 150, 150), (278, 150, 278),
])
def test_last_chunk_end_table(pos, boundary, expected):
    assert last_chunk_end(pos, boundary, 128) == expected


@pytest.mark.parametrize("pos, end, expected", [
    (0, 64, 64), (0, 128, 128), (0, 150, 86), (0, 191, 127), (0, 192, 128), (0, 1300, 128),
    (1172, 1300, 1300), (1100, 1300, 1228), (1236, 1300, 1300),
])
def test_tiled_chunk_end_table(pos, end, expected):
    assert tiled_chunk_end(pos, end, 128) == expected


def chunks(start: int, end: int, boundary, block: int, long: bool) -> list[tuple[int, int]]:
    """The prefill chunks from `start` to `end`, as the scheduler cuts them."""
    out, pos = [], start
    while pos < end:
        stop = tiled_chunk_end(pos, end, block) if long else chunk_end(pos, boundary, block)
        out.append((pos, min(end, stop)))
        pos = min(end, stop)
    return out


@pytest.mark.parametrize("block", [128, 200, 512])
def test_a_long_prompts_chunks_all_take_the_tiled_kernel(block):
    for start in range(0, 400, 7):
        for end in range(start + CPU_FA_TILE_ROWS, 1400, 13):
            cut = chunks(start, end, None, block, True)
            assert cut[0][0] == start and cut[-1][1] == end
            assert all(CPU_FA_TILE_ROWS <= b - a <= block for a, b in cut), (start, end, cut)


def kernels(cut: list[tuple[int, int]], tiled_rows_alike: bool) -> list:
    """What computes each cell, as far as its bits go: the tiled kernel (its chunk matters unless
    `tiled_rows_alike`, as on a CPU build where the check holds), the per-row kernel (any cut
    alike), or the split-KV path of a lone row past SPLIT_KV_FREE_END."""
    out = []
    for a, b in cut:
        if b - a >= CPU_FA_TILE_ROWS:
            out += [("tile",) if tiled_rows_alike else ("tile", a, b)] * (b - a)
        elif b - a == 1 and b > SPLIT_KV_FREE_END:
            out.append(("split", a))
        else:
            out += ["row"] * (b - a)
    return out


@pytest.mark.parametrize("cpu_rules", [False, True])
def test_hits_are_computed_like_misses_everywhere(cpu_rules):
    # For many pairs of prompts (a cached one, then a new one sharing a prefix), the cells a hit
    # reuses plus the tail it computes come from the same kernels, cut alike where that matters,
    # as a miss of the new prompt: what reusable_length promises, with the CPU build's rules
    # (short and long prompts) or without. A cache's cells past its prefill were decoded one row
    # at a time: by the per-row kernel below SPLIT_KV_FREE_END, by whichever path past it.
    import random

    rng = random.Random(7)
    block, gains = 128, 0
    for _ in range(20000):
        n2 = rng.randrange(2, 1400)
        b2 = rng.choice([None, rng.randrange(1, n2)])
        # Often a prompt much like it (the same schema, another question), sometimes any other.
        n1 = max(2, n2 + rng.randrange(-60, 60)) if rng.random() < 0.7 else rng.randrange(2, 1400)
        b1 = rng.choice([b2, b2, None, rng.randrange(1, n1)])
        if b1 is not None and b1 >= n1:
            b1 = None
        generated = rng.choice([0, rng.randrange(1, 300)])
        most = min(n1 + generated, n2 - 1)  # a repeat, or the next turn of a conversation
        match = rng.choice([most, rng.randrange(0, most + 1)])
        long1, long2 = cpu_rules and n1 >= CPU_FA_TILE_ROWS, cpu_rules and n2 >= CPU_FA_TILE_ROWS
        short1, short2 = cpu_rules and not long1, cpu_rules and not long2
        decoded = ["row" if p < SPLIT_KV_FREE_END else ("decode", p) for p in range(n1, n1 + generated)]
        cached = kernels(chunks(0, n1, b1, block, long1), cpu_rules) + decoded
        miss = kernels(chunks(0, n2, b2, block, long2), cpu_rules)
        if short1 and short2:  # the scheduler's short prompt rule
            r = match
        else:
            r = reusable_length(match, b2, b1, block, long=long2, cached_long=long1, cached_prefilled=n1, length=n2)
        assert 0 <= r <= match
        hit = cached[:r] + kernels(chunks(r, n2, b2, block, long2), cpu_rules)
        assert hit == miss, (n1, b1, n2, b2, match, generated, r)
        gains += r > reusable_length(match, b2, b1, block)
    assert gains > 1000 if cpu_rules else gains == 0  # the long prompt rule reuses more


@pytest.mark.parametrize("match, boundary, cached, long, cached_long, prefilled, length, expected", [
    (1267, 24, 24, True, True, 1283, 1286, 1222),  # both long: all but the last 64 tokens
    (1200, 24, 24, True, True, 1283, 1320, 1200),  # at any length, not only a chunk end
    (1200, 24, None, True, True, 1283, 1320, 1200),  # whatever the boundaries
    (1320, None, None, True, True, 1300, 1500, 1300),  # not into the cache's decoded cells
    (50, None, None, True, False, 60, 200, 0),  # a short prompt's cells (per-row) for a long one
    (30, 30, 30, False, True, 300, 60, 0),  # and the other way round
    (500, None, None, False, False, 300, 600, 256),  # otherwise: within the cache's whole blocks
    (500, 200, 200, False, False, 450, 600, 328),
])
def test_reusable_length_long_prompts_table(match, boundary, cached, long, cached_long, prefilled, length, expected):
    assert reusable_length(match, boundary, cached, 128, long=long, cached_long=cached_long,
                           cached_prefilled=prefilled, length=length) == expected
