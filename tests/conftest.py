"""Shared fixtures: the real embedded model, a real `hearth serve` on loopback, and a fake engine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """HEARTH_DATA_DIR for the whole session: the sample database is built here once."""
    path = tmp_path_factory.mktemp("hearth-data")
    os.environ["HEARTH_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def embedded_engine():
    from server.engine.llama_engine import LlamaEngine
    from server.settings import embedded_model_path

    engine = LlamaEngine("smollm2", embedded_model_path(), n_ctx=1024, n_slots=4, n_threads=2, max_queue=2)
    yield engine
    engine.close()


class RunningServer:
    def __init__(self, base_url: str, proc: subprocess.Popen, log: Path):
        self.base_url = base_url
        self.proc = proc
        self.log = log

    def metrics(self) -> str:
        return httpx.get(self.base_url + "/metrics").text

    def metric(self, name: str, labels: str = "") -> float:
        for line in self.metrics().splitlines():
            if line.startswith(name + labels + " ") or (not labels and line.startswith(name + "{")):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


def _die_with_parent() -> None:
    # If pytest itself is killed (a CI timeout), the server must not live on and load the cores.
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(tmp: Path, *args: str, env: dict | None = None, wait_ready: bool = True) -> RunningServer:
    port = free_port()
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600  # a ceiling for a hung start, not a speed bound: ready is polled
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(base + ("/ready" if wait_ready else "/health"), timeout=1)
            if r.status_code == 200:
                return RunningServer(base, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready:\n{log.read_text()[-3000:]}")


def stop_server(server: RunningServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, data_dir):
    """`hearth serve` with the embedded model and an API key, as a user would start it."""
    tmp = tmp_path_factory.mktemp("live")
    server = start_server(
        tmp, "--api-keys", API_KEY, "--n-slots", "4", "--n-ctx", "1024", "--max-queue", "4",
        env={"HEARTH_DATA_DIR": str(data_dir)},
    )
    yield server
    stop_server(server)


@pytest.fixture()
def openai_client(live_server):
    import openai

    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
