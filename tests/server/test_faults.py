"""Fault injection on the serving side (issue 26, item 3): each fault gives the client a clear error
in OpenAI's shape, and nothing is lost or left behind.

    a database that goes away and comes back   503 database_unavailable, then answers again in the
                                               same process, its pool whole (SQLite file moved
                                               away and back; PostgreSQL refusing connections
                                               with its backends terminated)
    a query that hangs                         504 query_timeout on client-written SQL, the
                                               connection back in the pool, nothing left running
    a model file missing, cut short or foreign `hearth serve` exits non-zero at once, naming it
    a full disk under the review store         503 naming the store and what filled; earlier
                                               grades intact, the store usable once there is room

The database tests use an in-process app with a scripted engine (no model is involved in
/v1/sql/validate) and real SQLite and PostgreSQL; the model-file tests run the real CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import ROOT, free_port
from tests.fakes import FakeEngine

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "hearth_faults"
COUNT = "SELECT COUNT(*) FROM items"
# Client-written, valid, and about 2.7e10 row combinations: it runs until the statement timeout.
HANG = "SELECT COUNT(*) FROM items AS a JOIN items AS b ON a.id <> b.id JOIN items AS c ON c.id <> b.id"


def _client(databases: list[dict]) -> TestClient:
    return TestClient(create_app(ServerSettings(databases=databases), FakeEngine()))


def _validate(client: TestClient, sql: str, database: str = "db"):
    return client.post("/v1/sql/validate", json={"sql": sql, "database": database, "execute": True})


def _pool(client: TestClient, database: str = "db"):
    return client.app.state.sql.registry.get(database).engine.pool


def _assert_openai_error(r, status: int, code: str, *names: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert all(name in error["message"] for name in names), error["message"]


# -- databases ------------------------------------------------------------------------------------

@pytest.fixture()
def sqlite_db(tmp_path) -> Path:
    import sqlite3

    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(3000)])
    return path


@pytest.fixture(scope="module")
def pg_db():
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DB}")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{PG_DB}", autocommit=True) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(0, 2999) AS i")
    yield f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {PG_DB} ALLOW_CONNECTIONS true")
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def _pg_backends(state: str | None = None) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'hearth-sql'"
        args: tuple = (PG_DB,)
        if state is not None:
            sql, args = sql + " AND state = %s", (PG_DB, state)
        return admin.execute(sql, args).fetchone()[0]


def test_a_sqlite_file_moved_away_and_back(sqlite_db, tmp_path):
    with _client([{"name": "db", "url": f"sqlite:///{sqlite_db}"}]) as client:
        assert _validate(client, COUNT).json()["result"]["rows"] == [[3000]]
        sqlite_db.rename(tmp_path / "elsewhere.sqlite")
        for _ in range(3):
            _assert_openai_error(_validate(client, COUNT), 503, "database_unavailable", "'db'", str(sqlite_db))
        assert not sqlite_db.exists()  # read-only: never created empty in its place
        (tmp_path / "elsewhere.sqlite").rename(sqlite_db)
        for _ in range(6):  # more requests than the pool holds connections
            assert _validate(client, COUNT).json()["result"]["rows"] == [[3000]]
        assert _pool(client).checkedout() == 0


@pytest.mark.databases
def test_a_postgres_database_that_goes_away_and_comes_back(pg_db):
    import psycopg

    with _client([{"name": "db", "url": pg_db}]) as client, psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for _ in range(3):  # pooled connections exist
            assert _validate(client, COUNT).json()["result"]["rows"] == [[3000]]
        admin.execute(f"ALTER DATABASE {PG_DB} ALLOW_CONNECTIONS false")
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (PG_DB,))
        started = time.monotonic()
        for _ in range(3):
            _assert_openai_error(_validate(client, COUNT), 503, "database_unavailable", "'db'")
        assert time.monotonic() - started < 30  # refused at once, not after a hang per request
        admin.execute(f"ALTER DATABASE {PG_DB} ALLOW_CONNECTIONS true")
        for _ in range(6):  # the dead pooled connections were replaced, not reused
            assert _validate(client, COUNT).json()["result"]["rows"] == [[3000]]
        assert _pool(client).checkedout() == 0 and _pg_backends("active") == 0


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.databases)])
def test_a_hanging_query_is_a_504_and_its_connection_comes_back(engine, sqlite_db, request):
    url = f"sqlite:///{sqlite_db}" if engine == "sqlite" else request.getfixturevalue("pg_db")
    with _client([{"name": "db", "url": url, "statement_timeout_s": 1}]) as client:
        started = time.monotonic()
        r = _validate(client, HANG)
        assert 0.9 < time.monotonic() - started < 20  # the 1 s limit ended it, not the query
        _assert_openai_error(r, 504, "query_timeout", "'db'")
        assert _pool(client).checkedout() == 0
        if engine == "postgres":  # cancelled on the server too, not left running
            assert _pg_backends("active") == 0
        for _ in range(4):
            assert _validate(client, COUNT).json()["result"]["rows"] == [[3000]]
        assert _pool(client).checkedout() == 0


# -- model files ----------------------------------------------------------------------------------

def _serve(model: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEARTH_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "server.cli", "serve", "--port", str(free_port()),
                           "--model", str(model)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fault, expect", [
    ("missing", "does not exist"),
    ("not_a_gguf", "is not a GGUF file"),
    ("header_cut", "is truncated"),
    ("data_cut", "is truncated"),
])
def test_a_bad_model_file_stops_the_start_with_a_clear_error(fault, expect, tmp_path):
    from server.settings import embedded_model_path

    model = tmp_path / "model.gguf"
    if fault == "not_a_gguf":
        model.write_text('{"architectures": ["LlamaForCausalLM"]}\n')
    elif fault != "missing":
        real = embedded_model_path()
        keep = 4096 if fault == "header_cut" else real.stat().st_size * 3 // 4
        with open(real, "rb") as src, open(model, "wb") as dst:
            dst.write(src.read(keep))
    started = time.monotonic()
    done = _serve(model, tmp_path)
    assert done.returncode != 0, done.stderr[-2000:]
    assert str(model) in done.stderr and expect in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - started < 60  # at once: it never serves


def test_the_model_file_check_passes_real_models():
    from server.engine.gguf_file import check_gguf
    from server.settings import embedded_model_path, resolve_model_path

    check_gguf(embedded_model_path())  # the served Q8_0
    check_gguf(resolve_model_path("embedded:smollm2:Q4_1"))  # the wheel's own file


# -- a full disk under the review store -------------------------------------------------------------

_REVIEW_SCRIPT = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from fastapi.testclient import TestClient
    from server.app import create_app
    from server.review.store import Item, ReviewStore
    from server.settings import ServerSettings
    from tests.fakes import FakeEngine

    path = Path(sys.argv[1])
    store = ReviewStore(path)
    store.add_items([Item(id=f"i{n}", position=n, prompt=f"q{n}", answer=f"a{n}") for n in range(3)])
    store.put_grade("i0", "ann", 4, "kept")
    app = create_app(ServerSettings(databases=[], review={"path": str(path)}), FakeEngine())
    out = {}
    with TestClient(app) as client:
        assert client.get("/v1/review/items", params={"reviewer": "ann"}).json()["graded"] == 1  # the store is open
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        r = client.put("/v1/review/items/i1/grade", json={"reviewer": "ann", "score": 2, "comment": "x" * 4000})
        out["full"] = [r.status_code, r.json()]
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        r = client.put("/v1/review/items/i2/grade", json={"reviewer": "ann", "score": 5, "comment": "room again"})
        out["after"] = r.status_code
    out["grades"] = [[g.item_id, g.score, g.comment] for g in ReviewStore(path).grades()]
    print(json.dumps(out))
""")


def test_a_full_disk_under_the_review_store_loses_no_grade(tmp_path):
    import json
    import sqlite3

    path = tmp_path / "review.sqlite3"
    done = subprocess.run([sys.executable, "-c", _REVIEW_SCRIPT, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    status, body = out["full"]
    assert status == 503 and set(body["error"]) == {"message", "type", "param", "code"}
    message = body["error"]["message"]
    assert "not saved" in message and str(path) in message and "file-size limit" in message, message
    assert out["after"] == 200
    assert out["grades"] == [["i0", 4, "kept"], ["i2", 5, "room again"]]  # the failed one absent, none lost
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    shutil.rmtree(tmp_path, ignore_errors=True)
