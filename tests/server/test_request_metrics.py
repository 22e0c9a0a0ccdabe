"""Request metrics (server/middleware.py): a stream counts until its last byte, by route and status."""

from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.fakes import FakeEngine

DELAY_S = 0.05  # per word of the fake reply; 5 words


def _client():
    app = create_app(ServerSettings(databases=[]), FakeEngine(delay_s=DELAY_S))
    return app, TestClient(app)


def _sample(app, name, labels):
    return app.state.metrics.registry.get_sample_value(name, labels)


def test_stream_latency_covers_the_whole_stream():
    app, client = _client()
    with client:
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            text = "".join(r.iter_text())
        assert text.endswith("data: [DONE]\n\n")
        labels = {"route": "/v1/chat/completions"}
        total = _sample(app, "hearth_request_seconds_sum", labels)
        assert total is not None and total >= 5 * DELAY_S * 0.9
        assert _sample(app, "hearth_requests_total",
                       {"route": "/v1/chat/completions", "method": "POST", "status": "200"}) == 1
        assert _sample(app, "hearth_requests_in_flight", {}) == 0


def test_errors_and_unmatched_paths_are_counted():
    app, client = _client()
    with client:
        assert client.post("/v1/chat/completions", json={"model": "fake"}).status_code == 400
        assert client.get("/nowhere").status_code == 404
        assert _sample(app, "hearth_requests_total",
                       {"route": "/v1/chat/completions", "method": "POST", "status": "400"}) == 1
        assert _sample(app, "hearth_requests_total", {"route": "unmatched", "method": "GET", "status": "404"}) == 1
