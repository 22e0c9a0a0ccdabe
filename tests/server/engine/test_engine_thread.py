"""Every llama_decode of a served model runs on its engine thread.

With llama.cpp's OpenMP build each decoding thread keeps its own worker team; two teams on a
2-core box make libgomp throttle its spin-waits, and single-stream decode fell from 50 to 20
tok/s after one decode on another thread (scheduler.py's note). So the load-time kernel check and
embeddings go through `Scheduler.call` rather than running where they are asked for."""

from __future__ import annotations

import asyncio
import threading

import llama_cpp
import pytest

from server.engine.base import GenerationRequest, SamplingParams
from server.errors import EngineFailure

pytestmark = pytest.mark.model


def test_load_check_generation_and_embeddings_decode_on_the_engine_thread(monkeypatch):
    from server.engine.llama_engine import LlamaEngine
    from server.settings import embedded_model_path

    threads: list[str] = []
    real_decode = llama_cpp.llama_decode

    def recording_decode(ctx, batch):
        threads.append(threading.current_thread().name)
        return real_decode(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recording_decode)
    engine = LlamaEngine("thread-check", embedded_model_path(), n_ctx=256, n_slots=2, n_threads=2)
    try:
        assert engine.short_prompt_reuse and threads  # the load-time check decoded
        checked = len(threads)

        async def use() -> None:
            prompt = tuple(engine.tokenize(engine.render_chat([{"role": "user", "content": "Hi"}])))
            async for _ in engine.generate(GenerationRequest(prompt, SamplingParams(max_tokens=4, temperature=0))):
                pass
            assert len(await engine.embed(["first text", "second text"])) == 2

        asyncio.run(use())
        assert len(threads) > checked + 2  # generation steps and two embedding decodes
        assert set(threads) == {"hearth-scheduler"}
    finally:
        engine.close()


def test_call_returns_results_raises_errors_and_refuses_after_close(embedded_engine):
    from server.engine.llama_engine import LlamaEngine
    from server.settings import embedded_model_path

    scheduler = embedded_engine._scheduler
    assert scheduler.call(lambda: threading.current_thread().name) == "hearth-scheduler"
    with pytest.raises(ZeroDivisionError):
        scheduler.call(lambda: 1 / 0)
    assert scheduler.call(lambda: 2 + 2) == 4  # the engine thread survived the error

    engine = LlamaEngine("closing", embedded_model_path(), n_ctx=256, n_slots=1, n_threads=2)
    engine.close()
    with pytest.raises(EngineFailure):
        engine._scheduler.call(lambda: None)
