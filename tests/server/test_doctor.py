"""`hearth doctor` (server/doctor.py): against the real PostgreSQL and MariaDB (writable and read-only
accounts made here), a missing model, a port in use, and one full run with the embedded model."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import struct

import pytest

from server import cli, doctor
from server.embedded import wheel_model_path
from server.engine.gguf_file import kv_bytes_per_token, read_metadata
from server.settings import ModelConfig
from server.sql.settings import DatabaseConfig
from tests.conftest import free_port

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SUFFIX = os.getpid()
SCHEMA, PG_RO, PG_RW = f"hearth_doctor_{SUFFIX}", f"hearth_doctor_ro_{SUFFIX}", f"hearth_doctor_rw_{SUFFIX}"
MY_RO, MY_RW = f"hd_ro_{SUFFIX}", f"hd_rw_{SUFFIX}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("HEARTH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def postgres_accounts():
    """A table, a SELECT-only role and a role that may INSERT and UPDATE it."""
    psycopg = pytest.importorskip("psycopg")
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    statements = [f"CREATE SCHEMA {SCHEMA}", f"CREATE TABLE {SCHEMA}.orders (id int)",
                  f"CREATE ROLE {PG_RO} LOGIN", f"CREATE ROLE {PG_RW} LOGIN",
                  f"GRANT USAGE ON SCHEMA {SCHEMA} TO {PG_RO}, {PG_RW}", f"GRANT SELECT ON {SCHEMA}.orders TO {PG_RO}",
                  f"GRANT SELECT, INSERT, UPDATE ON {SCHEMA}.orders TO {PG_RW}"]
    for statement in statements:
        admin.execute(statement)
    yield {user: f"postgresql://{user}@127.0.0.1:5432/test" for user in ("postgres", PG_RO, PG_RW)}
    for statement in (f"DROP SCHEMA {SCHEMA} CASCADE", f"DROP ROLE {PG_RO}", f"DROP ROLE {PG_RW}"):
        admin.execute(statement)
    admin.close()


@pytest.fixture(scope="module")
def mariadb_accounts():
    pymysql = pytest.importorskip("pymysql")
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)
    with admin.cursor() as cur:
        for statement in (f"CREATE USER '{MY_RO}'@'%'", f"CREATE USER '{MY_RW}'@'%'",
                          f"GRANT SELECT ON test.* TO '{MY_RO}'@'%'",
                          f"GRANT SELECT, INSERT, UPDATE, DELETE ON test.* TO '{MY_RW}'@'%'"):
            cur.execute(statement)
    yield {user: f"mariadb://{user}@127.0.0.1:3306/test" for user in ("root", MY_RO, MY_RW)}
    with admin.cursor() as cur:
        cur.execute(f"DROP USER '{MY_RO}'@'%', '{MY_RW}'@'%'")
    admin.close()


def database(url: str):
    return doctor.check_database(DatabaseConfig(name="shop", url=url))


# --- databases: the account must be read-only ------------------------------------------------------
@pytest.mark.databases
def test_a_writable_postgresql_account_is_caught(postgres_accounts):
    rw = database(postgres_accounts[PG_RW])
    assert rw.status == "warn" and "WRITABLE" in rw.detail
    assert rw.data["writes"] == [f"INSERT on 1 table(s) (e.g. {SCHEMA}.orders)", f"UPDATE on 1 table(s) (e.g. {SCHEMA}.orders)"]
    admin = database(postgres_accounts["postgres"])
    assert admin.status == "warn" and "superuser" in admin.data["writes"]
    ro = database(postgres_accounts[PG_RO])
    assert (ro.status, ro.data["writes"]) == ("ok", []), ro


@pytest.mark.databases
def test_a_writable_mariadb_account_is_caught(mariadb_accounts):
    rw = database(mariadb_accounts[MY_RW])
    assert rw.status == "warn" and rw.data["writes"] == ["DELETE, INSERT, UPDATE on test.*"]
    root = database(mariadb_accounts["root"])
    assert root.status == "warn" and root.data["writes"][0].startswith("ALL PRIVILEGES, GRANT OPTION on *.*")
    ro = database(mariadb_accounts[MY_RO])
    assert (ro.status, ro.data["writes"], ro.data["dialect"]) == ("ok", [], "mariadb"), ro


@pytest.mark.databases
def test_an_unreachable_database_fails():
    check = database(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    assert check.status == "fail" and "unavailable" in check.detail


def test_grants_that_reach_the_database_are_read():
    grants = [
        "GRANT USAGE ON *.* TO `hearth`@`%`",
        "GRANT SELECT ON `shop`.* TO `hearth`@`%`",
        "GRANT SELECT (`id`), UPDATE (`note`) ON `shop`.`orders` TO `hearth`@`%`",
        "GRANT INSERT ON `other`.* TO `hearth`@`%`",
        "GRANT DELETE ON `sh%`.* TO `hearth`@`%`",
        "GRANT `reporting` TO `hearth`@`%`",
    ]
    assert doctor.mysql_writes(grants, "shop") == ["UPDATE on shop.orders", "DELETE on sh%.*"]
    assert doctor.mysql_writes(grants[:2], "shop") == []
    literal = ["GRANT DELETE ON `sh\\_%`.* TO `h`@`%`"]  # \_ is a literal underscore
    assert doctor.mysql_writes(literal, "shop") == [] and doctor.mysql_writes(literal, "sh_op") == ["DELETE on sh\\_%.*"]


def test_a_sqlite_file_anyone_can_write_is_caught(tmp_path):
    path = tmp_path / "shop.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id int)").connection.close()
    path.chmod(0o666)
    check = database(f"sqlite:///{path}")
    assert check.status == "warn" and any("every user" in w for w in check.data["writes"])


# --- model files -------------------------------------------------------------------------------------
def tiny_gguf(path):
    """A GGUF header with one string key and no tensors."""
    key, value = b"general.architecture", b"llama"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                     + struct.pack("<IQ", 8, len(value)) + value)
    return path


def test_a_model_is_checked_against_its_manifest(tmp_path):
    gguf = tiny_gguf(tmp_path / "shop-Q8_0.gguf")
    manifest = tmp_path / "shop-Q8_0-export.json"
    cfg = ModelConfig(name="shop", path=str(gguf))
    assert doctor.model_file(cfg)[1].status == "warn"  # no manifest: nothing to check against
    manifest.write_text(json.dumps({"path": str(gguf), "sha256": doctor.sha256_file(gguf)}))
    info, check = doctor.model_file(cfg)
    assert check.status == "ok" and info.meta["general.architecture"] == "llama"
    manifest.write_text(json.dumps({"path": str(gguf), "sha256": "0" * 64}))
    assert doctor.model_file(cfg)[1].status == "fail"
    (tmp_path / "shop-quantize.json").write_text(json.dumps({"outputs": {"Q8_0": {"path": f"/elsewhere/{gguf.name}",
                                                                                  "sha256": doctor.sha256_file(gguf)}}}))
    manifest.unlink()
    assert doctor.model_file(cfg)[1].status == "ok"  # hearth quantize's manifest, written on another machine


def test_the_embedded_model_matches_its_wheel_and_sizes_its_cache():
    info, check = doctor.model_file(ModelConfig())
    assert check.status == "ok" and "RECORD" in check.detail
    # deploy/README.md: SmolLM2-135M, 30 layers x 3 KV heads x 64 = 22.5 KiB per token.
    assert kv_bytes_per_token(read_metadata(wheel_model_path())) == 22.5 * 1024
    assert info.to_write > 0  # the Q8_0 conversion is not made yet in this test's data dir


def test_build_features_parse_llama_cpp_system_info():
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | OPENMP = 1 | CUDA : ARCHS = 890 | USE_GRAPHS = 1 |"
    assert doctor.build_features(info) == {"SSE3", "AVX", "OPENMP"}


def test_a_public_address_without_keys_fails_but_the_other_checks_run():
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    settings, refused = doctor.load(parser.parse_args(["--host", "0.0.0.0"]))
    assert refused and doctor.check_api_keys(settings, refused).status == "fail"
    settings, refused = doctor.load(parser.parse_args(["--host", "0.0.0.0", "--api-keys", "short"]))
    assert not refused and doctor.check_api_keys(settings, refused).status == "warn"
    settings, refused = doctor.load(parser.parse_args([]))
    assert doctor.check_api_keys(settings, refused).status == "ok"


# --- the verb ----------------------------------------------------------------------------------------
def run_doctor(capsys, *argv: str) -> tuple[int, dict[str, dict], str]:
    rc = cli.main(["doctor", "--json", *argv])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["ok"] is (rc == 0)
    return rc, {c["name"]: c for c in report["checks"]}, out.err


@pytest.mark.databases
def test_doctor_fails_on_a_missing_model_and_a_port_in_use(capsys, tmp_path, monkeypatch, postgres_accounts):
    monkeypatch.setenv("HEARTH_DATABASES", json.dumps([{"name": "pg", "url": postgres_accounts[PG_RW]}]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, checks, err = run_doctor(capsys, "--no-completion", "--model", str(tmp_path / "missing.gguf"),
                                     "--port", str(port))
    assert rc == 1
    assert checks["model:smollm2-135m-instruct"]["status"] == "fail" and "does not exist" in checks["model:smollm2-135m-instruct"]["detail"]
    assert checks["port"]["status"] == "fail" and "in use" in checks["port"]["detail"]
    assert checks["database:pg"]["status"] == "warn" and "WARNING database:pg" in err
    assert checks["cpu"]["status"] == "ok" and checks["completion"]["status"] == "skip"


@pytest.mark.model
def test_doctor_passes_on_the_default_install_and_completes(capsys):
    rc, checks, _ = run_doctor(capsys, "--port", str(free_port()))
    assert rc == 0, {n: c["detail"] for n, c in checks.items() if c["status"] != "ok"}
    assert checks["completion"]["status"] == "ok" and checks["completion"]["data"]["tokens"] > 0
    assert checks["memory"]["data"]["models"]["smollm2-135m-instruct"]["kv_cache_bytes"] == 2048 * 8 * 22.5 * 1024
    assert {c["status"] for c in checks.values()} == {"ok"}
