"""Reloading the model registry while serving (server/reload.py): a real `hearth serve` with the embedded
model, a stream in flight across a SIGHUP reload, then a reload whose model fails to load."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import pytest
import yaml

from server.reload import RequestEpochs
from tests.conftest import start_server, stop_server

KEY = "reload-test-key-0123456789"
NAME = "assistant"
AUTH = {"Authorization": f"Bearer {KEY}"}


def write_config(path, *models: dict) -> None:
    path.write_text(yaml.safe_dump({"models": list(models), "default_model": NAME}))


def model(name: str = NAME, path: str = "embedded:smollm2", n_ctx: int = 512) -> dict:
    return {"name": name, "path": path, "n_ctx": n_ctx, "n_slots": 2, "n_threads": 2}


def wait_for(predicate, timeout: float = 300, what: str = "") -> float:
    """Polls until `predicate()` holds; returns when it did (a ceiling for a hung server, not a speed bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cards(server) -> dict[str, dict]:
    data = httpx.get(server.base_url + "/v1/models", headers=AUTH, timeout=30).json()["data"]
    return {card["id"]: card["meta"] for card in data}


def complete(server, prompt: str, max_tokens: int) -> dict:
    body = {"model": NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(server.base_url + "/v1/completions", json=body, headers=AUTH, timeout=300).json()


def test_epochs_settle_only_when_older_requests_end():
    epochs = RequestEpochs()
    epochs.open[0] += 1  # a request in flight before the reload
    swap = epochs.advance()
    epochs.open[swap] += 1  # one that began after it
    assert not epochs.settled(swap)
    del epochs.open[0]
    assert epochs.settled(swap) and not epochs.settled(swap + 1)


@pytest.mark.model
@pytest.mark.slow
def test_a_reload_with_a_stream_in_flight_loses_nothing(tmp_path):
    config = tmp_path / "hearth.yaml"
    write_config(config, model(n_ctx=512))
    server = start_server(tmp_path, "--config", str(config), "--api-keys", KEY, env={"HEARTH_DATA_DIR": str(tmp_path)})
    try:
        prompt, chunks, ended, first = "1, 2, 3, 4, 5, 6,", [], [], threading.Event()

        def stream() -> None:
            body = {"model": NAME, "prompt": prompt, "max_tokens": 200, "temperature": 0, "stream": True,
                    "stream_options": {"include_usage": True}}
            with httpx.stream("POST", server.base_url + "/v1/completions", json=body, headers=AUTH,
                              timeout=300) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        chunks.append(line.removeprefix("data: "))
                        first.set()
            ended.append(time.monotonic())

        reader = threading.Thread(target=stream)
        reader.start()
        assert first.wait(300), "the stream never started"
        write_config(config, model(n_ctx=640))  # a changed entry: the model is loaded again
        server.proc.send_signal(signal.SIGHUP)
        swapped = wait_for(lambda: cards(server)[NAME]["n_ctx"] == 640, what="the reloaded model")
        reader.join(300)
        assert ended and swapped < ended[0], "the stream ended before the reload: nothing was in flight"
        assert chunks[-1] == "[DONE]"
        events = [json.loads(c) for c in chunks[:-1]]
        text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
        reasons = [e["choices"][0]["finish_reason"] for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        assert len(reasons) == 1 and events[-1]["usage"]["completion_tokens"] > 0
        # Nothing lost: the stream that crossed the reload is the answer the new engine gives alone.
        again = complete(server, prompt, 200)
        assert again["choices"][0]["text"] == text and again["usage"] == events[-1]["usage"]
        wait_for(lambda: "closed the replaced engine of assistant" in server.log.read_text(), 60, "the old engine closed")

        # A model that fails to load leaves the old one serving; a new entry beside it loads.
        broken = tmp_path / "broken.gguf"
        broken.write_bytes(b"GGUF" + b"\0" * 64)
        write_config(config, model(path=str(broken), n_ctx=768), model(name="second", path="embedded:smollm2:Q4_1"))
        assert httpx.post(server.base_url + "/admin/reload", timeout=30).status_code == 401
        report = httpx.post(server.base_url + "/admin/reload", headers=AUTH, timeout=300).json()
        assert list(report["failed"]) == [NAME] and report["loaded"] == ["second"], report
        assert "model assistant failed to load" in server.log.read_text()
        assert {name: meta["n_ctx"] for name, meta in cards(server).items()} == {NAME: 640, "second": 512}
        short = complete(server, prompt, 8)["choices"][0]["text"]
        assert short and text.startswith(short)
        assert httpx.get(server.base_url + "/ready", timeout=30).status_code == 200
    finally:
        stop_server(server)


def test_reload_is_refused_while_the_models_load():
    from server.errors import ModelNotReady
    from server.reload import Reloader
    from server.settings import ServerSettings

    class State:
        pool, load_error = None, None
        settings = ServerSettings()

    class App:
        state = State()

    reloader = Reloader(App(), lambda: App.state.settings, load=lambda cfg: None, attach=lambda app, pool: None)
    with pytest.raises(ModelNotReady):
        asyncio.run(reloader.reload())


def test_the_admin_route_needs_a_key():
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings
    from tests.fakes import FakeEngine

    open_app = TestClient(create_app(ServerSettings(databases=[]), FakeEngine()))
    refused = open_app.post("/admin/reload")  # no key configured: admin routes stay shut
    assert refused.status_code == 401 and "need an API key" in refused.json()["error"]["message"]
    keyed = TestClient(create_app(ServerSettings(databases=[], api_keys=[KEY]), FakeEngine()))
    assert keyed.post("/admin/reload").status_code == 401
    # An app serving engines its caller built has no registry of its own to reload.
    assert keyed.post("/admin/reload", headers=AUTH).status_code == 404


def test_adapters_are_kept_with_their_base_and_made_again_on_a_new_one(tmp_path):
    # An adapter lives on its base's weights: a reload keeps it while neither changed, and makes it
    # again on the base's new engine when the base is reloaded (the old base closes its adapters).
    from server.reload import Reloader, RequestEpochs
    from server.services.models import ModelPool
    from server.settings import AdapterConfig, ModelConfig, ServerSettings
    from tests.fakes import FakeEngine

    base_file, lora = tmp_path / "base.gguf", tmp_path / "sql.gguf"
    base_file.write_bytes(b"GGUF")
    lora.write_bytes(b"GGUF")
    settings = ServerSettings(databases=[], models=[ModelConfig(name="base", path=str(base_file))],
                              adapters=[AdapterConfig(name="sql", base="base", path=str(lora), aliases=["q"])])
    made: list[tuple[str, object]] = []

    def load_adapter(acfg, base_cfg, base):
        made.append((acfg.name, base))
        return FakeEngine(name=acfg.name)

    class State:
        load_error = None
        epochs = RequestEpochs()

    class App:
        state = State()

    App.state.settings = settings
    first_base = FakeEngine(name="base")
    App.state.pool = ModelPool({"base": first_base, "sql": FakeEngine(name="sql")}, {"q": "sql"})
    attached = []
    reloader = Reloader(App(), lambda: settings, load=lambda cfg: FakeEngine(name=cfg.name),
                        attach=lambda app, pool: (attached.append(pool), setattr(app.state, "pool", pool)),
                        load_adapter=load_adapter)
    reloader._load = lambda cfg: reloader.load(cfg)  # no GGUF header check on the stand-in files
    report = asyncio.run(reloader.reload())
    assert sorted(report["kept"]) == ["base", "sql"] and not made and not report["removed"]
    assert attached[-1].get("q").name == "sql"

    base_file.write_bytes(b"GGUF2")  # the base's file changed: a new base engine, the adapter made on it
    report = asyncio.run(reloader.reload())
    new_base = App.state.pool.get("base")
    assert report["loaded"] == ["base", "sql"] and made == [("sql", new_base)] and new_base is not first_base
    assert App.state.pool.get("q").name == "sql"
