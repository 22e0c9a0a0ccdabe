"""The blind-review routes through the real app on a real SQLite file (the engine is a fake: review
needs no model). Restarting means a new app on the same file."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.review.store import Item, ReviewStore
from server.settings import ServerSettings
from tests.conftest import API_KEY
from tests.fakes import FakeEngine

ITEMS = [Item("7f3a9c01d2e4", 0, "Why does WHERE x = NULL return nothing?", "Use IS NULL.", reference="NULL logic"),
         Item("0b11c5e9aa70", 1, "What is a reorder level?", "The stock level that triggers reordering.")]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture()
def review_path(tmp_path):
    path = tmp_path / "review.sqlite3"
    ReviewStore(path).add_items(ITEMS)
    return path


@pytest.fixture()
def client_for(data_dir, review_path):
    clients = []

    def make(**settings) -> TestClient:
        client = TestClient(create_app(ServerSettings(review={"path": review_path}, **settings), FakeEngine()))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _items(client, reviewer="Ada", **kw):
    r = client.get("/v1/review/items", params={"reviewer": reviewer}, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def test_items_are_blind_and_ungraded_at_first(client_for):
    body = _items(client_for())
    assert (body["reviewer"], body["graded"], body["total"]) == ("Ada", 0, 2)
    first = body["data"][0]
    assert set(first) == {"id", "position", "prompt", "system", "reference", "answer", "grade"}
    assert (first["id"], first["answer"], first["reference"], first["grade"]) == (
        "7f3a9c01d2e4", "Use IS NULL.", "NULL logic", None)


def test_grade_is_saved_replaced_and_kept_per_reviewer(client_for):
    client = client_for()
    r = client.put("/v1/review/items/0b11c5e9aa70/grade", json={"reviewer": "Ada", "score": 3, "comment": "ok"})
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("item_id", "reviewer", "score", "comment")} == {
        "item_id": "0b11c5e9aa70", "reviewer": "Ada", "score": 3, "comment": "ok"}
    client.put("/v1/review/items/0b11c5e9aa70/grade", json={"reviewer": "Ada", "score": 4, "comment": "better"})
    body = _items(client)
    assert body["graded"] == 1
    assert (body["data"][1]["grade"]["score"], body["data"][1]["grade"]["comment"]) == (4, "better")
    assert _items(client, "Grace")["graded"] == 0  # another reviewer does not see Ada's grade


def test_grades_survive_a_restart(client_for, review_path):
    first = client_for()
    first.put("/v1/review/items/7f3a9c01d2e4/grade", json={"reviewer": "Ada", "score": 5, "comment": "exact"})
    first.__exit__(None, None, None)
    restarted = client_for()
    grade = _items(restarted)["data"][0]["grade"]
    assert (grade["score"], grade["comment"]) == (5, "exact")
    assert [(g.reviewer, g.score) for g in ReviewStore(review_path).grades()] == [("Ada", 5)]


@pytest.mark.parametrize("body, param", [
    ({"reviewer": "Ada", "score": 0}, "score"),
    ({"reviewer": "Ada", "score": 6}, "score"),
    ({"reviewer": "Ada", "score": "great"}, "score"),
    ({"reviewer": "", "score": 3}, "reviewer"),
    ({"reviewer": "   ", "score": 3}, "reviewer"),
    ({"score": 3}, "reviewer"),
    ({"reviewer": "Ada", "score": 3, "variant": "base"}, "variant"),
])
def test_invalid_grade_is_a_400_in_openai_shape(client_for, review_path, body, param):
    r = client_for().put("/v1/review/items/7f3a9c01d2e4/grade", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert ReviewStore(review_path).grades() == []


def test_unknown_item_is_a_404_in_openai_shape(client_for):
    r = client_for().put("/v1/review/items/nope/grade", json={"reviewer": "Ada", "score": 3})
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "The review item 'nope' does not exist.",
                                  "type": "invalid_request_error", "param": "item_id",
                                  "code": "review_item_not_found"}}


def test_blank_reviewer_query_is_a_400(client_for):
    r = client_for().get("/v1/review/items", params={"reviewer": "  "})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reviewer"


def test_api_needs_the_key_when_keys_are_configured(client_for):
    client = client_for(api_keys=[API_KEY])
    r = client.get("/v1/review/items", params={"reviewer": "Ada"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = client.put("/v1/review/items/7f3a9c01d2e4/grade", json={"reviewer": "Ada", "score": 3})
    assert r.status_code == 401
    assert _items(client, headers=AUTH)["total"] == 2


def test_page_is_public_self_contained_and_holds_no_answers(client_for):
    r = client_for(api_keys=[API_KEY]).get("/review")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert 'id="reviewer"' in page and 'id="api-key"' in page and "v1/review/items" in page
    assert not any(item.answer in page or item.prompt in page for item in ITEMS)
    assert "http://" not in page and "https://" not in page  # no CDN, nothing external
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp


def test_store_is_opened_lazily(data_dir, tmp_path):
    path = tmp_path / "never-used.sqlite3"
    with TestClient(create_app(ServerSettings(review={"path": path}), FakeEngine())) as client:
        assert client.get("/health").status_code == 200
        assert not path.exists()
        assert _items(client)["total"] == 0
        assert path.exists()


def test_default_path_is_in_the_data_dir(data_dir):
    assert ServerSettings().review.resolved_path() == data_dir / "review.sqlite3"


def test_routes_are_in_the_openapi_schema(client_for):
    paths = client_for().get("/openapi.json").json()["paths"]
    assert {"/review", "/v1/review/items", "/v1/review/items/{item_id}/grade"} <= set(paths)
    assert "put" in paths["/v1/review/items/{item_id}/grade"]
