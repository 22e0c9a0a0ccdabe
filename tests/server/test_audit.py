"""The Text-to-SQL audit log: one whole JSON line per answer, rotated by size, never a key."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.audit import AuditLog, AuditSettings
from server.settings import ServerSettings
from tests.conftest import ROOT
from tests.fakes import FakeEngine

KEY = "audit-test-key-42"
KEY_ID = hashlib.sha256(KEY.encode()).hexdigest()[:12]
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "How many customers per segment?"
SEGMENT_SQL = "SELECT segment, COUNT(*) FROM customers GROUP BY segment ORDER BY segment"


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the file ---------------------------------------------------------------------------------------
def test_lines_are_whole_and_none_is_lost_under_threads(tmp_path):
    log = AuditLog(AuditSettings(path=tmp_path / "a" / "audit.jsonl", max_bytes=10**9))
    filler = "x" * 5000  # lines far past PIPE_BUF: whole lines come from the lock and one write each

    def writer(n):
        for i in range(100):
            log.write({"writer": n, "i": i, "filler": filler})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    got = lines(tmp_path / "a" / "audit.jsonl")
    assert sorted((r["writer"], r["i"]) for r in got) == [(n, i) for n in range(8) for i in range(100)]
    assert oct((tmp_path / "a" / "audit.jsonl").stat().st_mode & 0o777) == oct(0o640)


def test_rotates_by_size_and_keeps_the_configured_backups(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditSettings(path=path, max_bytes=250, backups=2))
    for i in range(12):
        log.write({"i": i, "pad": "y" * 60})  # about 80 bytes a line: 3 lines a file
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 250 for p in tmp_path.iterdir())
    # Newest in the live file, then .1, then .2; the oldest lines were dropped, none is cut.
    numbers = [r["i"] for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl") for r in lines(tmp_path / name)]
    assert numbers == list(range(12))[-len(numbers):] and len(numbers) >= 7


def test_a_file_moved_away_is_followed_by_a_new_one(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditSettings(path=path))
    log.write({"i": 1})
    os.rename(path, tmp_path / "audit.jsonl.old")  # logrotate without copytruncate
    log.write({"i": 2})
    log.close()
    assert lines(tmp_path / "audit.jsonl.old") == [{"i": 1}] and lines(path) == [{"i": 2}]


def test_a_full_disk_leaves_no_half_line_and_refuses(tmp_path):
    # A real short write: RLIMIT_FSIZE (ulimit -f) in a child process, SIGXFSZ ignored so the
    # write returns short / EFBIG as on a full disk instead of killing the process.
    script = f"""
import resource, signal
from server.audit import AuditLog, AuditSettings
from server.errors import AuditLogFailed
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
log = AuditLog(AuditSettings(path={str(tmp_path / 'audit.jsonl')!r}))
try:
    for i in range(100):
        log.write({{"i": i, "pad": "z" * 150}})
except AuditLogFailed as exc:
    print("refused at", i, exc.message)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused at "), out.stdout
    refused_at = int(out.stdout.split()[2])
    text = (tmp_path / "audit.jsonl").read_text()
    assert text.endswith("\n") and [r["i"] for r in lines(tmp_path / "audit.jsonl")] == list(range(refused_at))
    assert "the answer was withheld" in out.stdout


def test_turned_off_it_writes_nothing(tmp_path):
    log = AuditLog(AuditSettings(enabled=False, path=tmp_path / "audit.jsonl"))
    log.write({"i": 1})
    assert not (tmp_path / "audit.jsonl").exists()


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARTH_AUDIT__ENABLED", "false")
    monkeypatch.setenv("HEARTH_AUDIT__MAX_BYTES", "4096")
    monkeypatch.setenv("HEARTH_AUDIT__PATH", str(tmp_path / "x.jsonl"))
    audit = ServerSettings(databases=[]).audit
    assert (audit.enabled, audit.max_bytes, audit.resolved_path()) == (False, 4096, tmp_path / "x.jsonl")


# --- what /v1/sql records ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sql_app(data_dir, tmp_path_factory):
    """One app for the module (its first /v1/sql reads the sample database's values: seconds); each
    test gives it a fresh audit log and the model reply it wants."""
    engine = FakeEngine(n_ctx=8192)
    settings = ServerSettings(api_keys=[KEY], sql={"template_first": False},
                              audit={"path": tmp_path_factory.mktemp("unused") / "audit.jsonl"})
    with TestClient(create_app(settings, engine)) as client:
        yield client, engine


@pytest.fixture()
def sql_client(sql_app, tmp_path):
    client, engine = sql_app

    def make(reply=SEGMENT_SQL, **audit) -> TestClient:
        engine.reply = reply
        client.app.state.audit = AuditLog(AuditSettings(path=tmp_path / "audit.jsonl", **audit), client.app.state.metrics)
        return client

    yield make
    client.app.state.audit.close()


def test_every_sql_answer_is_one_line_naming_the_key_by_id(sql_client, tmp_path):
    client = sql_client()
    r = client.post("/v1/sql", json={"question": QUESTION}, headers={**AUTH, "X-Request-Id": "proxy-1"})
    assert r.status_code == 200
    answer = r.json()
    [line] = lines(tmp_path / "audit.jsonl")
    assert list(line) == ["time", "request_id", "route", "key_id", "client", "database", "model", "question", "sql",
                          "status", "row_count", "attempts", "durations_ms", "error"]
    assert line["request_id"] == answer["id"] and line["route"] == "/v1/sql"
    assert line["key_id"] == KEY_ID and KEY not in (tmp_path / "audit.jsonl").read_text()
    assert line["database"] == "sample" and line["question"] == QUESTION and line["model"] == answer["model"]
    assert line["sql"] == answer["sql"] and line["sql"].endswith("LIMIT 1000")
    assert line["status"] == "ok" and line["row_count"] == answer["result"]["row_count"] >= 3
    assert line["attempts"] == 1 and line["error"] is None
    assert line["durations_ms"]["total"] == answer["timings"]["total_ms"] > 0
    assert line["time"].endswith("Z")


def test_a_rejected_answer_and_an_error_are_on_record_too(sql_client, tmp_path):
    client = sql_client(reply="DELETE FROM orders")
    assert client.post("/v1/sql", json={"question": "Delete the orders", "max_attempts": 1},
                       headers=AUTH).json()["status"] == "rejected"
    r = client.post("/v1/sql", json={"question": QUESTION, "database": "nope"}, headers=AUTH)
    assert r.status_code == 404
    rejected, failed = lines(tmp_path / "audit.jsonl")
    assert rejected["status"] == "rejected" and rejected["sql"] is None and rejected["row_count"] is None
    assert failed["status"] == "error" and failed["database"] == "nope"
    assert failed["error"] == {"status": 404, "code": "database_not_found"} and failed["request_id"].startswith("req-")


def test_validate_is_recorded_when_it_executes(sql_client, tmp_path):
    client = sql_client()
    client.post("/v1/sql/validate", json={"sql": "SELECT COUNT(*) FROM orders"}, headers=AUTH)
    client.post("/v1/sql/validate", json={"sql": "SELECT COUNT(*) FROM orders", "execute": True}, headers=AUTH)
    client.post("/v1/sql/validate", json={"sql": "DROP TABLE orders", "execute": True}, headers=AUTH)
    ran, refused = lines(tmp_path / "audit.jsonl")
    assert ran["route"] == "/v1/sql/validate" and ran["sql"] == "SELECT COUNT(*) FROM orders LIMIT 1000"
    assert ran["status"] == "ok" and ran["row_count"] == 1 and ran["question"] is None
    assert refused["status"] == "rejected" and refused["sql"] == "DROP TABLE orders"


def test_no_line_no_answer(sql_client, tmp_path):
    (tmp_path / "audit.jsonl").mkdir()  # a path that cannot be written
    r = sql_client().post("/v1/sql", json={"question": QUESTION}, headers=AUTH)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "audit_log_unavailable" and "withheld" in r.json()["error"]["message"]


def test_turned_off_the_answers_still_come(sql_client, tmp_path):
    r = sql_client(enabled=False).post("/v1/sql", json={"question": QUESTION}, headers=AUTH)
    assert r.status_code == 200 and not (tmp_path / "audit.jsonl").exists()


@pytest.mark.model
def test_the_real_model_path_is_recorded(data_dir, tmp_path, embedded_engine):
    # The shipped defaults (templates first, then the model): the real engine behind the route.
    settings = ServerSettings(api_keys=[KEY], audit={"path": tmp_path / "audit.jsonl"})
    with TestClient(create_app(settings, embedded_engine)) as client:
        answer = client.post("/v1/sql", json={"question": "How many customers are there?"}, headers=AUTH).json()
    [line] = lines(tmp_path / "audit.jsonl")
    assert (line["request_id"], line["sql"], line["status"]) == (answer["id"], answer["sql"], answer["status"])
    assert line["key_id"] == KEY_ID and line["model"] == embedded_engine.name
