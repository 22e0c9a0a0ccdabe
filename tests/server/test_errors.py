"""The error tree, its one table, and the HTTP shape of every error path (fake engine)."""

from __future__ import annotations

import inspect

import pytest
from fastapi.testclient import TestClient

from server import errors
from server.app import create_app
from server.errors import ERROR_TABLE, HearthError, describe
from server.settings import ServerSettings
from tests.fakes import FakeEngine

ALL_ERRORS = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, HearthError)]


def test_every_error_class_has_a_row():
    assert set(ALL_ERRORS) == set(ERROR_TABLE)


@pytest.mark.parametrize(
    "cls, status, type_, code",
    [
        (errors.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
        (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
        (errors.AuthenticationFailed, 401, "authentication_error", "invalid_api_key"),
        (errors.Overloaded, 429, "rate_limit_error", "queue_full"),
        (errors.DatabaseUnavailable, 503, "service_unavailable", "database_unavailable"),
        (errors.QueryTimeout, 504, "timeout_error", "query_timeout"),
        (errors.EngineFailure, 500, "server_error", "engine_failure"),
    ],
)
def test_table_rows(cls, status, type_, code):
    kind = describe(cls("x"))
    assert (kind.status, kind.type, kind.code) == (status, type_, code)


def test_subclass_without_row_takes_parent_row():
    class Custom(errors.ModelNotFound):
        pass

    assert describe(Custom("x")).code == "model_not_found"


def _client(engine) -> TestClient:
    return TestClient(create_app(ServerSettings(databases=[]), engine), raise_server_exceptions=False)


@pytest.mark.parametrize("exc, status, code, header", [
    (errors.Overloaded("busy", retry_after=3), 429, "queue_full", "3"),
    (errors.EngineFailure("boom"), 500, "engine_failure", None),
    (errors.ContextLengthExceeded("too long", param="messages"), 400, "context_length_exceeded", None),
])
def test_engine_errors_reach_the_client_in_openai_shape(exc, status, code, header):
    client = _client(FakeEngine(fail_with=exc))
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == status
    body = r.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert r.headers.get("retry-after") == header


def test_unexpected_exception_is_500_with_error_id_and_no_traceback(caplog):
    client = _client(FakeEngine(fail_with=RuntimeError("secret internal detail")))
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 500
    message = r.json()["error"]["message"]
    assert "secret internal detail" not in message and "Traceback" not in r.text
    assert "error id" in message
    error_id = message.split("error id ")[1].rstrip(").")
    assert error_id in caplog.text  # the same id is in the server log, with the traceback


def test_error_mid_stream_is_an_sse_error_event_then_done():
    class FailsLater(FakeEngine):
        async def generate(self, request):
            from server.engine.base import TokenEvent

            yield TokenEvent(text="partial")
            raise errors.EngineFailure("decode failed")

    client = _client(FailsLater())
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
    events = [ln for ln in r.text.split("\n\n") if ln]
    assert r.status_code == 200
    assert '"code": "engine_failure"' in events[-2]
    assert events[-1] == "data: [DONE]"


def test_wrong_method_is_405_in_openai_shape():
    r = _client(FakeEngine()).get("/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_not_ready_is_503_until_models_load():
    app = create_app(ServerSettings(databases=[]))  # no engine given, lifespan not started: still loading
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/health").status_code == 200
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"
