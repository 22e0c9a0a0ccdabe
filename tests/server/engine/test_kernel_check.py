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
