"""Keys at rest as sha256 digests: accepted like plain keys, compared in constant time, named by id."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from server import keys as keys_module
from server.app import create_app
from server.keys import ANONYMOUS, KeyRing, digest_line
from server.settings import ServerSettings
from tests.conftest import ROOT
from tests.fakes import FakeEngine

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _client(**settings) -> TestClient:
    return TestClient(create_app(ServerSettings(databases=[], **settings), FakeEngine()))


def test_a_keys_file_of_digests_accepts_the_keys_and_holds_none_of_them(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        "# billing and reporting\n"
        f"sha256:{sha256_hex('billing-key')}  # billing app\n"
        f"SHA256:{sha256_hex('reporting-key').upper()}\n"
        "plain-key\n"
    )
    client = _client(api_keys_file=keys_file)
    for key in ("billing-key", "reporting-key", "plain-key"):
        r = client.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, key
    for wrong in ("billing", "billing-key2", f"sha256:{sha256_hex('billing-key')}", sha256_hex("billing-key")):
        # Presenting the digest is not presenting the key.
        r = client.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401, wrong
        assert r.json()["error"]["code"] == "invalid_api_key"
    ring = client.app.state.api_keys
    assert len(ring) == 3 and "plain-key" not in repr(vars(ring))  # plain keys are kept as digests too


@pytest.mark.parametrize("entry", ["sha256:abc", f"sha256:{'g' * 64}", f"sha256:{'a' * 64} trailing"])
def test_a_malformed_digest_entry_stops_the_start_without_echoing_it(tmp_path, entry):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"good-key\n{entry}\n")
    with pytest.raises(ValueError, match="API key entry 2") as raised:
        create_app(ServerSettings(databases=[], api_keys_file=keys_file), FakeEngine())
    assert entry not in str(raised.value)


def test_match_compares_every_digest_in_constant_time(monkeypatch):
    ring = KeyRing(["k0", digest_line("k1"), "k2", "k3"])
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    for key in ("k0", "k3", "nope"):
        calls.clear()
        ring.match(key)
        # Every stored digest, whichever matched (no early exit), and only fixed-length digests.
        assert len(calls) == 4, key
        assert all(len(a) == len(b) == 32 for a, b in calls)


def test_key_ids_are_a_prefix_of_the_digest_and_name_the_same_key_either_way():
    plain, stored = KeyRing(["team-key"]), KeyRing([digest_line("team-key")])
    assert plain.match("team-key") == stored.match("team-key") == sha256_hex("team-key")[:12]
    assert plain.match("other") is None
    assert plain.identify("Bearer team-key") == sha256_hex("team-key")[:12]
    assert plain.identify("Basic team-key") is None and plain.identify(None) is None
    assert KeyRing().identify(None) == ANONYMOUS


def test_the_helper_prints_the_keys_file_line_and_id():
    out = subprocess.run([sys.executable, "-m", "server.keys"], input="s3cret\n", capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out == f"sha256:{sha256_hex('s3cret')}  # key id {sha256_hex('s3cret')[:12]}\n"
    assert KeyRing([out.strip()]).match("s3cret") == sha256_hex("s3cret")[:12]  # its line works as is
