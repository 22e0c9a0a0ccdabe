"""fill_batch: the rows a llama_batch gets from the scheduler's per-slot token lists."""

import llama_cpp
import pytest

from server.engine.batch import fill_batch
from server.engine.slots import Slot


@pytest.fixture
def batch():
    b = llama_cpp.llama_batch_init(16, 0, 1)
    yield b
    llama_cpp.llama_batch_free(b)


def rows(batch) -> list[tuple[int, int, int, bool]]:
    return [(batch.seq_id[j][0], batch.pos[j], batch.token[j], bool(batch.logits[j])) for j in range(batch.n_tokens)]


def test_entries_go_in_seq_id_order_at_each_slots_next_positions(batch):
    decoding = Slot(seq_id=3, cached=[5, 6, 7])
    prefilling = Slot(seq_id=1, cached=[9])
    # Listed out of order, as the scheduler builds them (decodes first, then prompt chunks).
    fill_batch(batch, [(decoding, [8], True), (prefilling, [10, 11, 12], False)])
    assert rows(batch) == [
        (1, 1, 10, False), (1, 2, 11, False), (1, 3, 12, False),
        (3, 3, 8, True),
    ]
    assert prefilling.cached == [9, 10, 11, 12] and decoding.cached == [5, 6, 7, 8]


def test_a_slot_that_wants_logits_gets_its_last_rows_index(batch):
    a, b = Slot(seq_id=0), Slot(seq_id=2, batch_index=-1)
    fill_batch(batch, [(b, [4, 4], True), (a, [1, 2, 3], True)])
    assert (a.batch_index, b.batch_index) == (2, 4)
    assert [bool(batch.logits[j]) for j in range(batch.n_tokens)] == [False, False, True, False, True]


def test_refilling_starts_from_an_empty_batch(batch):
    s = Slot(seq_id=0)
    fill_batch(batch, [(s, [1, 2, 3], False)])
    fill_batch(batch, [(s, [4], True)])
    assert rows(batch) == [(0, 3, 4, True)]
