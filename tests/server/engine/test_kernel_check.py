"""The load-time check that short-prompt prefix reuse rests on (real model, real kernels)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.model


def test_short_prompts_cut_anywhere_decode_identically_here(embedded_engine):
    from server.engine.kernel_check import short_prompt_cuts_are_exact

    assert embedded_engine.short_prompt_reuse  # a CPU build where the check passed
    assert embedded_engine._scheduler.short_prompt_reuse
    tokens = embedded_engine.tokenize(embedded_engine.render_chat([{"role": "user", "content": "Who wrote Hamlet?"}]))

    def check() -> bool:  # on the engine thread, between steps: nothing else uses the context
        assert embedded_engine.stats().slots_in_use == 0
        try:
            return short_prompt_cuts_are_exact(embedded_engine._ctx, embedded_engine.n_vocab, tokens, seq_id=3)
        finally:
            embedded_engine._scheduler.slots[3].cached = []  # the check emptied that stream

    assert embedded_engine._scheduler.call(check)


def test_a_failed_check_keeps_reuse_to_whole_blocks(monkeypatch):
    from server.engine import llama_engine
    from server.settings import embedded_model_path

    monkeypatch.setattr(llama_engine, "short_prompt_cuts_are_exact", lambda *a, **k: False)
    engine = llama_engine.LlamaEngine("check", embedded_model_path(), n_ctx=256, n_slots=1, n_threads=2)
    try:
        assert not engine.short_prompt_reuse
        assert not engine._scheduler.short_prompt_reuse
    finally:
        engine.close()



def long_probe(engine) -> list[int]:
    text = engine.render_chat([{"role": "user", "content": "Name every table of the shop. " * 40}])
    tokens = engine.tokenize(text)[:300]
    assert len(tokens) == 300
    return tokens


def test_a_long_prompt_cut_two_ways_into_tiled_chunks_decodes_identically_here(embedded_engine):
    from server.engine.kernel_check import long_prompt_cuts, long_prompt_cuts_are_exact

    assert embedded_engine.long_prompt_reuse and embedded_engine._scheduler.long_prompt_reuse
    assert long_prompt_cuts(300, 128) == ([128, 236], [101, 202])  # chunks of 128, 108, 64 against 101, 101, 98
    tokens = long_probe(embedded_engine)

    def check() -> bool:  # on the engine thread, between steps: nothing else uses the context
        assert embedded_engine.stats().slots_in_use == 0
        try:
            return long_prompt_cuts_are_exact(embedded_engine._ctx, embedded_engine.n_vocab, tokens, 128, seq_id=3)
        finally:
            embedded_engine._scheduler.slots[3].cached = []  # the check emptied that stream

    assert embedded_engine._scheduler.call(check)


def test_a_chunk_under_the_tile_size_among_them_decodes_differently(embedded_engine):
    # What the check would catch: the same 300 tokens with their last 36 rows in a chunk of their
    # own (the per-row kernel) end on other logits.
    import numpy as np

    from server.engine.kernel_check import cut_logits

    tokens = long_probe(embedded_engine)

    def differ() -> bool:
        try:
            a = cut_logits(embedded_engine._ctx, embedded_engine.n_vocab, tokens, [128, 236], seq_id=3)
            b = cut_logits(embedded_engine._ctx, embedded_engine.n_vocab, tokens, [128, 264], seq_id=3)
            return not np.array_equal(a, b)
        finally:
            embedded_engine._scheduler.slots[3].cached = []

    assert embedded_engine._scheduler.call(differ)


def test_a_failed_long_check_keeps_long_prompts_to_whole_blocks(monkeypatch):
    from server.engine import llama_engine
    from server.settings import embedded_model_path

    monkeypatch.setattr(llama_engine, "long_prompt_cuts_are_exact", lambda *a, **k: False)
    engine = llama_engine.LlamaEngine("check", embedded_model_path(), n_ctx=256, n_slots=1, n_threads=2)
    try:
        assert engine.short_prompt_reuse and engine._scheduler.short_prompt_reuse
        assert not engine.long_prompt_reuse
        assert not engine._scheduler.long_prompt_reuse
    finally:
        engine.close()
