"""Graceful drain (server/drain.py): on SIGTERM/SIGINT, /ready turns 503, new requests get 503
shutting_down with Retry-After, /health stays 200, requests in flight (streams too) finish, and the
process exits 0 when the last one ends or drain_timeout_s passes.

The first tests drive the pieces in-process (fake engine, no signals); the last two send real
signals to a real `hearth serve` with the embedded model.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from server.app import create_app
from server.drain import CUT_GRACE_S, RETRY_AFTER_S, Drain, DrainingServer, DrainMiddleware
from server.settings import ServerSettings
from tests.conftest import API_KEY, start_server
from tests.fakes import FakeEngine

MODEL = "smollm2-135m-instruct"
STORY = [{"role": "user", "content": "Tell me a very long story about a dragon."}]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def assert_shutting_down(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == str(RETRY_AFTER_S)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "service_unavailable" and body["error"]["code"] == "shutting_down"
    assert body["error"]["message"] and body["error"]["param"] is None


# --- in process ----------------------------------------------------------------------------------
def test_while_draining_probes_answer_and_new_requests_get_503(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    app = create_app(ServerSettings(databases=[], cors_origins=["https://app.example"]), FakeEngine())
    client = TestClient(app)
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    assert client.get("/ready").status_code == 200
    assert client.post("/v1/chat/completions", json=chat).status_code == 200

    app.state.drain.begin()
    assert_shutting_down(client.get("/ready"))
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200
    r = client.post("/v1/chat/completions", json=chat, headers={"Origin": "https://app.example"})
    assert_shutting_down(r)
    assert r.headers["connection"] == "close"  # a keep-alive client reconnects through the balancer
    assert r.headers["access-control-allow-origin"] == "https://app.example"  # a browser can read why
    assert_shutting_down(client.get("/v1/models"))
    refused = [ln for ln in client.get("/metrics").text.splitlines()
               if ln.startswith("hearth_requests_total{") and 'status="503"' in ln]
    assert refused, "refusals are counted like any other request"


def test_middleware_counts_requests_until_their_last_chunk():
    inside, release = asyncio.Event(), asyncio.Event()
    seen = []

    async def streaming_app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        inside.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"last"})

    async def scenario():
        drain = Drain(timeout_s=30)
        app = DrainMiddleware(streaming_app, drain)
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        stream = asyncio.create_task(app({"type": "http", "path": "/v1/chat/completions"}, receive, send))
        await inside.wait()
        assert drain.in_flight == 1  # headers and a chunk are out, the stream is not over
        drain.begin()
        assert not drain.finished()
        refused = []

        async def send_refused(message):
            refused.append(message)

        await app({"type": "http", "path": "/v1/completions", "method": "POST", "headers": []}, receive,
                  send_refused)
        assert refused[0]["status"] == 503 and seen == ["/v1/chat/completions"]  # never reached the app
        assert drain.in_flight == 1
        release.set()
        await stream
        assert drain.in_flight == 0 and drain.finished()
        assert sent[-1] == {"type": "http.response.body", "body": b"last"}

    asyncio.run(scenario())


def test_signals_start_the_drain_and_a_second_one_cuts_it(monkeypatch):
    drain = Drain(timeout_s=30)
    server = DrainingServer(uvicorn.Config(lambda *a: None), drain)

    def tick() -> bool:
        return asyncio.run(server.on_tick(1))

    drain.in_flight = 1
    assert not tick() and not drain.draining
    server.handle_exit(signal.SIGTERM, None)
    assert drain.draining and drain.deadline - drain.started == pytest.approx(30)
    assert not tick()  # one request in flight, 30 s left: keep serving
    assert server._captured_signals == []  # uvicorn would re-raise these at exit: status 143, not 0
    server.handle_exit(signal.SIGINT, None)  # Ctrl+C again: stop waiting
    assert tick() and server.should_exit

    drain = Drain(timeout_s=30)
    server = DrainingServer(uvicorn.Config(lambda *a: None), drain)
    server.handle_exit(signal.SIGINT, None)
    assert tick(), "nothing in flight: exit at the next tick"

    drain = Drain(timeout_s=0.2)
    server = DrainingServer(uvicorn.Config(lambda *a: None), drain)
    drain.in_flight = 1
    server.handle_exit(signal.SIGTERM, None)
    assert not tick()
    time.sleep(0.25)
    assert tick(), "the timeout passed: cut the rest"


def test_drain_timeout_is_a_setting_and_a_flag(monkeypatch):
    from server import cli

    monkeypatch.setenv("HEARTH_DRAIN_TIMEOUT_S", "7.5")
    assert ServerSettings(databases=[]).drain_timeout_s == 7.5
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args(["--drain-timeout-s", "2"]).drain_timeout_s == 2.0
    with pytest.raises(ValueError):
        ServerSettings(databases=[], drain_timeout_s=-1)


# --- a real `hearth serve`, real signals -----------------------------------------------------------
def _serve(tmp_path, data_dir, drain_timeout_s: float):
    # One decode thread: on a shared 2-core box, two ggml threads stall each other under contention.
    return start_server(tmp_path, "--api-keys", API_KEY, "--n-slots", "2", "--n-ctx", "1024", "--n-threads", "1",
                        "--drain-timeout-s", str(drain_timeout_s), env={"HEARTH_DATA_DIR": str(data_dir)})


class StreamReader(threading.Thread):
    """Reads a streamed chat completion with the official client; records every chunk's arrival."""

    def __init__(self, base_url: str, max_tokens: int):
        super().__init__(daemon=True)
        import openai

        self.client = openai.OpenAI(base_url=base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
        self.max_tokens = max_tokens
        self.content: list[str] = []
        self.finish_reason = None
        self.usage = None
        self.error: BaseException | None = None
        self.streaming = threading.Event()  # set at the first content chunk

    def run(self) -> None:
        try:
            stream = self.client.chat.completions.create(
                model=MODEL, messages=STORY, max_tokens=self.max_tokens, temperature=0, stream=True,
                stream_options={"include_usage": True})
            for chunk in stream:
                if chunk.usage is not None:
                    self.usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        self.content.append(choice.delta.content)
                        self.streaming.set()
                    if choice.finish_reason is not None:
                        self.finish_reason = choice.finish_reason
        except BaseException as exc:  # noqa: BLE001 (a cut stream is an expected outcome in one test)
            self.error = exc
        finally:
            self.streaming.set()


def _poll_ready_503(base_url: str, within_s: float = 2.0) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    while True:
        r = httpx.get(base_url + "/ready", timeout=5)
        if r.status_code == 503 or time.monotonic() - started > within_s:
            return r, time.monotonic() - started
        time.sleep(0.02)


@pytest.mark.model
@pytest.mark.slow
def test_sigterm_drains_an_in_flight_stream_then_exits_0(tmp_path, data_dir):
    server = _serve(tmp_path, data_dir, drain_timeout_s=60)
    try:
        reader = StreamReader(server.base_url, max_tokens=200)
        reader.start()
        assert reader.streaming.wait(60) and reader.error is None and reader.finish_reason is None
        server.proc.send_signal(signal.SIGTERM)
        signalled_at = len(reader.content)

        ready, waited = _poll_ready_503(server.base_url)
        assert_shutting_down(ready)
        assert waited < 1.0, f"/ready took {waited:.2f} s to turn 503"
        body = {"model": MODEL, "messages": STORY, "max_tokens": 5}
        assert_shutting_down(httpx.post(server.base_url + "/v1/chat/completions", json=body, headers=AUTH, timeout=5))
        assert httpx.get(server.base_url + "/health", timeout=5).status_code == 200
        assert reader.is_alive(), "the stream ended before the checks: nothing was in flight to drain"

        reader.join(60)
        assert not reader.is_alive() and reader.error is None, reader.error
        assert reader.finish_reason in ("stop", "length") and reader.usage is not None
        assert len(reader.content) > signalled_at, "no token arrived after SIGTERM"
        if reader.finish_reason == "length":
            assert reader.usage.completion_tokens == 200
        assert server.proc.wait(timeout=20) == 0
        log = server.log.read_text()
        assert "drained in" in log and "still in flight" not in log
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


@pytest.mark.model
@pytest.mark.slow
def test_drain_timeout_cuts_a_long_stream_and_still_exits_0(tmp_path, data_dir):
    timeout_s = 1.0
    server = _serve(tmp_path, data_dir, drain_timeout_s=timeout_s)
    try:
        reader = StreamReader(server.base_url, max_tokens=900)
        reader.start()
        assert reader.streaming.wait(60) and reader.error is None
        server.proc.send_signal(signal.SIGINT)  # Ctrl+C drains too
        signalled = time.monotonic()
        assert_shutting_down(_poll_ready_503(server.base_url)[0])
        assert server.proc.wait(timeout=timeout_s + CUT_GRACE_S + 15) == 0
        took = time.monotonic() - signalled
        assert timeout_s - 0.2 <= took <= timeout_s + CUT_GRACE_S + 8, f"exited {took:.1f} s after the signal"
        reader.join(10)
        assert reader.finish_reason is None and reader.error is not None, "the 900-token stream was not cut"
        log = server.log.read_text()
        assert "still in flight: cutting them" in log
        assert "Exception in ASGI application" not in log  # cut as a disconnect, not a cancellation
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
