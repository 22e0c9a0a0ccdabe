"""Bearer API keys: from settings or a keys file, 401 in OpenAI's shape, probes public."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.fakes import FakeEngine

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def _client(**settings) -> TestClient:
    return TestClient(create_app(ServerSettings(databases=[], **settings), FakeEngine()))


def test_no_keys_configured_means_open_on_loopback():
    assert _client().post("/v1/chat/completions", json=BODY).status_code == 200


def test_keys_from_settings_and_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nfile-key\n\n")
    client = _client(api_keys=["k1", "k2"], api_keys_file=keys_file)
    for key in ("k1", "k2", "file-key"):
        r = client.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, key
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic k1"}, {"Authorization": "k1"}):
        r = client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.json()["error"]["code"] == "invalid_api_key"


def test_probes_and_metrics_need_no_key():
    client = _client(api_keys=["k1"])
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/models").status_code == 401
