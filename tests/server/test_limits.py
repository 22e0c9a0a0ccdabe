"""Per-key limits: requests and tokens per minute, concurrent requests; 429 in OpenAI's shape with
Retry-After; metrics by key id; one key's flood does not starve another (real model)."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from server.errors import RateLimited
from server.limits import KeyLimiter, LimitSettings
from server.settings import ServerSettings
from tests.conftest import start_server, stop_server
from tests.fakes import FakeEngine

KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"
ID_A, ID_B = (hashlib.sha256(k.encode()).hexdigest()[:12] for k in (KEY_A, KEY_B))
BODY = {"messages": [{"role": "user", "content": "hi"}]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**settings) -> tuple[KeyLimiter, Clock]:
    clock = Clock()
    return KeyLimiter(LimitSettings(**settings), clock=clock), clock


# --- the limiter, on a clock the test moves -----------------------------------------------------
def test_requests_per_minute_is_any_60_s_and_retry_after_says_when_the_oldest_leaves():
    lim, clock = limiter(requests_per_minute=3)
    for t in (0, 10, 20):
        clock.now = 1000 + t
        lim.release(lim.admit("k"))
    clock.now = 1030
    with pytest.raises(RateLimited) as refused:
        lim.admit("k")
    assert refused.value.retry_after == 30  # the request at +0 leaves the window at +60
    assert "3 requests per minute" in refused.value.message
    clock.now = 1060
    lim.admit("k")  # +0 has left; refusals were not counted
    with pytest.raises(RateLimited):
        lim.admit("k")
    lim.admit("other")  # per key


def test_tokens_per_minute_refuses_the_next_request_once_the_last_60_s_reach_it():
    lim, clock = limiter(tokens_per_minute=100)
    lease = lim.admit("k")
    lim.charge("k", 60)
    lim.charge("k", 50)  # a request may run past the limit; the next one waits
    lim.release(lease)
    clock.now += 10
    with pytest.raises(RateLimited) as refused:
        lim.admit("k")
    assert refused.value.retry_after == 50 and "100 tokens per minute" in refused.value.message
    clock.now += 50
    lim.admit("k")


def test_concurrent_requests_are_counted_until_released():
    lim, _ = limiter(concurrent_streams=2)
    first, second = lim.admit("k"), lim.admit("k")
    with pytest.raises(RateLimited) as refused:
        lim.admit("k")
    assert refused.value.retry_after == 1
    lim.release(first)
    lim.release(first)  # twice is once
    third = lim.admit("k")
    with pytest.raises(RateLimited):
        lim.admit("k")
    lim.release(second)
    lim.release(third)


def test_per_key_overrides_by_key_id_inherit_what_they_leave_out():
    settings = LimitSettings(requests_per_minute=10, concurrent_streams=2,
                             per_key=[{"key_id": ID_A, "requests_per_minute": 0, "tokens_per_minute": 500}])
    assert settings.for_key(ID_A) == (0, 500, 2)
    assert settings.for_key(ID_B) == (10, 0, 2)
    with pytest.raises(ValidationError, match="never the key"):
        LimitSettings(per_key=[{"key_id": KEY_A}])  # a key where its id belongs
    with pytest.raises(ValidationError, match="twice"):
        LimitSettings(per_key=[{"key_id": ID_A}, {"key_id": ID_A}])


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEARTH_LIMITS__REQUESTS_PER_MINUTE", "7")
    monkeypatch.setenv("HEARTH_LIMITS__PER_KEY", f'[{{"key_id": "{ID_A}", "concurrent_streams": 1}}]')
    limits = ServerSettings(databases=[]).limits
    assert limits.for_key(ID_A) == (7, 0, 1) and limits.for_key(ID_B) == (7, 0, 0)


# --- over HTTP (fake engine: these test the plumbing) ---------------------------------------------
def app_client(engine=None, **limits) -> TestClient:
    settings = ServerSettings(databases=[], api_keys=[KEY_A, KEY_B], limits=limits)
    return TestClient(create_app(settings, engine or FakeEngine()))


def post(client, key, body=BODY):
    return client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def test_over_the_request_limit_is_a_429_in_openai_shape_with_retry_after():
    with app_client(requests_per_minute=2) as client:
        assert [post(client, KEY_A).status_code for _ in range(2)] == [200, 200]
        r = post(client, KEY_A)
        assert r.status_code == 429
        assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "rate_limit_error",
                                      "param": None, "code": "rate_limit_exceeded"}}
        assert ID_A in r.json()["error"]["message"] and KEY_A not in r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert post(client, KEY_B).status_code == 200  # the other key has its own minute
        assert post(client, "wrong-key").status_code == 401  # an unknown key is not limited, it is refused
        assert client.get("/health").status_code == 200  # probes are never limited
        metrics = client.get("/metrics").text
    assert f'hearth_key_rate_limited_total{{key_id="{ID_A}",limit="requests"}} 1.0' in metrics
    assert f'hearth_key_requests_total{{key_id="{ID_A}"}} 2.0' in metrics
    assert f'hearth_key_requests_total{{key_id="{ID_B}"}} 1.0' in metrics
    assert KEY_A not in metrics and KEY_B not in metrics


def test_tokens_are_charged_to_the_key_that_used_them():
    # FakeEngine tokens are characters: the prompt alone is past 20 tokens.
    with app_client(tokens_per_minute=20) as client:
        assert post(client, KEY_A).status_code == 200
        r = post(client, KEY_A)
        assert r.status_code == 429 and "20 tokens per minute" in r.json()["error"]["message"]
        assert post(client, KEY_B).status_code == 200
        used = client.app.state.limits.state(ID_A).tokens.spent(time.monotonic())
        metrics = client.get("/metrics").text
    assert used > 20
    assert f'hearth_key_tokens_total{{key_id="{ID_A}"}} {float(used)}' in metrics


def test_a_stream_holds_its_key_slot_until_its_last_chunk():
    engine = FakeEngine(reply="one two three four five six seven eight", delay_s=0.1)
    with app_client(engine, concurrent_streams=1) as client:
        streamed = {}

        def stream():
            streamed["r"] = post(client, KEY_A, {**BODY, "stream": True})

        thread = threading.Thread(target=stream)
        thread.start()
        state = client.app.state.limits.state(ID_A)
        deadline = time.time() + 10
        while not engine.requests and time.time() < deadline:  # the stream has started generating
            time.sleep(0.01)
        r = post(client, KEY_A)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "1 concurrent requests" in r.json()["error"]["message"]
        assert state.in_flight == 1
        assert post(client, KEY_B).status_code == 200
        thread.join(timeout=30)
        assert streamed["r"].status_code == 200 and streamed["r"].text.rstrip().endswith("data: [DONE]")
        assert state.in_flight == 0
        assert post(client, KEY_A).status_code == 200


# --- fairness, on the real model ------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.slow
def test_one_key_flooding_does_not_starve_another(tmp_path, data_dir):
    # A real `hearth serve` with 4 slots and a queue of 2, no limits configured. Key A sends 10
    # requests at once: 4 run, some wait, the rest are refused (queue full). Key B, arriving behind
    # that flood, is still served (a key with nothing in the engine is not refused for a full
    # queue), and it takes the first slot that frees rather than waiting behind A's queued requests.
    server = start_server(tmp_path, "--api-keys", KEY_A, KEY_B, "--n-slots", "4", "--n-ctx", "1024",
                          "--max-queue", "2", env={"HEARTH_DATA_DIR": str(data_dir)})
    long_body = {"messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                 "max_tokens": 12, "temperature": 0}
    results: dict[str, list] = {"a": [], "b": []}

    def send(who, key, body):
        r = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=600,
                       headers={"Authorization": f"Bearer {key}"})
        results[who].append((r.status_code, r.json(), time.perf_counter()))

    try:
        flood = [threading.Thread(target=send, args=("a", KEY_A, long_body)) for _ in range(10)]
        for t in flood:
            t.start()
        deadline = time.time() + 120
        while not (server.metric("hearth_slots_in_use") == 4 and server.metric("hearth_queue_depth") >= 1
                   and len(results["a"]) >= 1) and time.time() < deadline:
            time.sleep(0.02)
        assert results["a"] and results["a"][0][0] == 429, "the flood should fill the slots and the queue"
        send("b", KEY_B, {**long_body, "max_tokens": 2})
        for t in flood:
            t.join(timeout=600)
        metrics = server.metrics()
    finally:
        stop_server(server)
    [(b_status, b_body, b_done)] = results["b"]
    assert b_status == 200, b_body
    statuses = [status for status, _, _ in results["a"]]
    assert len(statuses) == 10 and set(statuses) == {200, 429} and statuses.count(200) >= 6
    assert {body["error"]["code"] for status, body, _ in results["a"] if status == 429} == {"queue_full"}
    # B ran beside A's requests, not after all of them.
    assert b_done < max(done for status, _, done in results["a"] if status == 200)
    assert f'hearth_key_requests_total{{key_id="{ID_A}"}} 10.0' in metrics
    assert f'hearth_key_requests_total{{key_id="{ID_B}"}} 1.0' in metrics
