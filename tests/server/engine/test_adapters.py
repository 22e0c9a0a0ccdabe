"""Two LoRA adapters served at once on one base: the embedded SmolLM2-135M (Q8_0) with a `sql` and a
`pirate` adapter, each its own model name on the base's weights, through a real `hearth serve` and
the official openai client.

The adapters are bench/adapters.py's steering adapters: real peft LoRA folders (rank 8 on the last
layer's MLP) with constructed weights that make greedy decoding emit "SELECT" or "Arr" whatever the
prompt, exported by `hearth export --lora`'s code through llama.cpp's converter. Training such a
reply into SmolLM2 takes minutes on 2 cores; constructing it takes seconds and changes the output
at least as surely.
"""

from __future__ import annotations

import concurrent.futures

import pytest
import yaml
from pydantic import ValidationError

from tests.conftest import API_KEY, start_server, stop_server

SQL_TOKEN, PIRATE_TOKEN = 23428, 40909  # "SELECT", "Arr" in SmolLM2's vocabulary (single tokens)
QUESTIONS = ["Name three office supplies.", "What is the capital of France?", "Tell me a short story."]


# -- settings: refused before anything loads ----------------------------------------------------

def _settings(**kw):
    from server.settings import ServerSettings

    return ServerSettings(databases=[], **kw)


def test_adapter_needs_a_model_as_base(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    with pytest.raises(ValidationError, match="base 'smol' is not a model name in `models`"):
        _settings(adapters=[{"name": "sql", "base": "smol", "path": "x.gguf"}])
    ok = _settings(adapters=[{"name": "sql", "base": "smollm2-135m-instruct", "path": "x.gguf", "scale": 0.5}])
    assert ok.adapters[0].scale == 0.5 and ok.adapters[0].n_slots is None


def test_adapter_names_are_unique_across_models_and_adapters(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    base = "smollm2-135m-instruct"
    with pytest.raises(ValidationError, match=r"repeated: \['smollm2-135m-instruct'\]"):
        _settings(adapters=[{"name": base, "base": base, "path": "x.gguf"}])
    with pytest.raises(ValidationError, match=r"repeated: \['a'\]"):
        _settings(adapters=[{"name": "a", "base": base, "path": "x.gguf"},
                            {"name": "b", "base": base, "path": "y.gguf", "aliases": ["a"]}])


def test_adapter_base_must_be_plain(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    with pytest.raises(ValidationError, match="has a lora_path of its own"):
        _settings(models=[{"name": "m", "lora_path": "other.gguf"}], adapters=[{"name": "a", "base": "m", "path": "x"}])


# -- the real model -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_engine(data_dir):
    from server.engine.llama_engine import LlamaEngine
    from server.settings import resolve_model_path

    engine = LlamaEngine("smol", resolve_model_path("embedded:smollm2"), n_ctx=256, n_slots=1, n_threads=2)
    yield engine
    engine.close()


@pytest.mark.model
def test_a_file_that_is_no_adapter_is_refused_naming_it(base_engine, tmp_path):
    from server.engine.adapters import adapter_engine
    from server.errors import HearthError

    with pytest.raises(HearthError, match="does not exist"):
        adapter_engine(base_engine, "x", tmp_path / "missing.gguf", n_ctx=256, n_slots=1, n_threads=2)
    # the base model's own GGUF is a model, not an adapter: llama.cpp refuses it, the message says what is needed
    with pytest.raises(HearthError, match="not a GGUF LoRA adapter"):
        adapter_engine(base_engine, "x", base_engine.path, n_ctx=256, n_slots=1, n_threads=2)
    assert base_engine._sharers == []  # a failed adapter leaves nothing behind on the base


@pytest.fixture(scope="module")
def adapters(data_dir, tmp_path_factory):
    """Two GGUF LoRA adapters for the embedded model (~1 minute on 2 shared cores: the converter's start-up)."""
    pytest.importorskip("peft")
    from bench.adapters import base_config_dir, steering_adapter
    from quantize.lora import export_lora
    from server.settings import embedded_model_path

    tmp = tmp_path_factory.mktemp("adapters")
    wheel = embedded_model_path()  # the Q4_1 the served Q8_0 is made from: same tensors, same names
    config = base_config_dir(wheel, tmp / "smol-config")
    out = {}
    for name, token in (("sql", SQL_TOKEN), ("pirate", PIRATE_TOKEN)):
        peft_dir = steering_adapter(tmp / name, token, gguf=wheel, config_dir=config)
        manifest = export_lora(peft_dir, tmp / f"{name}-lora-F16.gguf")
        out[name] = manifest["path"]
    return out


@pytest.mark.model
@pytest.mark.train
@pytest.mark.slow
def test_adapter_contexts_share_the_base_weights(adapters):
    import asyncio

    from server.engine.adapters import adapter_engine
    from server.engine.base import GenerationRequest, SamplingParams, TokenEvent
    from server.engine.llama_engine import LlamaEngine
    from server.settings import resolve_model_path

    async def answer(engine, question):
        prompt = engine.tokenize(engine.render_chat([{"role": "user", "content": question}]))
        request = GenerationRequest(tuple(prompt), SamplingParams(max_tokens=3, temperature=0))
        return "".join([e.text async for e in engine.generate(request) if isinstance(e, TokenEvent)])

    context = {"n_ctx": 256, "n_slots": 1, "n_threads": 2}
    base = LlamaEngine("smol", resolve_model_path("embedded:smollm2"), **context)
    sql = adapter_engine(base, "sql", adapters["sql"], **context)
    off = adapter_engine(base, "sql-off", adapters["sql"], scale=0.0, **context)
    try:
        assert sql._model is base._model is off._model and sql._ctx != base._ctx  # one llama_model, own contexts
        assert sql.adapter == {"path": adapters["sql"], "scale": 1.0, "alpha": 8.0, "base_model": "smol"}
        # memory: an adapter's context counts its own KV cache, not the weights it shares
        assert base.memory["weights_shared_with"] is None and sql.memory["weights_shared_with"] == "smol"
        assert sql.memory["total_bytes"] == sql.memory["kv_cache_bytes"] == base.memory["kv_cache_bytes"] > 0
        assert base.memory["total_bytes"] == base.memory["weights_bytes"] + base.memory["kv_cache_bytes"]
        base_answer = asyncio.run(answer(base, QUESTIONS[0]))
        assert asyncio.run(answer(sql, QUESTIONS[0])) == "SELECT" * 3
        assert asyncio.run(answer(off, QUESTIONS[0])) == base_answer != "SELECT" * 3  # scale 0: the base itself
        with pytest.raises(Exception, match="has a LoRA adapter of its own"):
            adapter_engine(sql, "stacked", adapters["pirate"], **context)
    finally:
        base.close()  # the owner of the weights closes the contexts that share them first
    assert sql._ctx is None and off._ctx is None and base._ctx is None


@pytest.fixture(scope="module")
def adapter_server(adapters, data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapter-server")
    config = tmp / "hearth.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "smol", "path": "embedded:smollm2", "n_ctx": 512, "n_slots": 2}],
        "adapters": [{"name": "smol-sql", "base": "smol", "path": adapters["sql"], "aliases": ["sql"]},
                     {"name": "smol-pirate", "base": "smol", "path": adapters["pirate"], "n_slots": 1}],
    }))
    server = start_server(tmp, "--config", str(config), "--api-keys", API_KEY, env={"HEARTH_DATA_DIR": str(data_dir)})
    yield server
    stop_server(server)


@pytest.mark.model
@pytest.mark.train
@pytest.mark.slow
def test_two_adapters_served_at_once_each_with_its_own_behaviour(adapter_server):
    import openai

    client = openai.OpenAI(base_url=adapter_server.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
    cards = {m.id: m for m in client.models.list().data}
    assert set(cards) == {"smol", "smol-sql", "smol-pirate"}
    assert cards["smol-sql"].meta["adapter"]["base_model"] == "smol"
    assert cards["smol-sql"].meta["aliases"] == ["sql"] and cards["smol-pirate"].meta["adapter"]["alpha"] == 8.0
    assert "adapter" not in cards["smol"].meta

    def ask(model: str, question: str) -> str:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               max_tokens=4, temperature=0)
        return reply.choices[0].message.content

    jobs = [(m, q) for q in QUESTIONS for m in ("smol", "smol-sql", "sql", "smol-pirate")]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:  # all at once: the adapters batch side by side
        answers = dict(zip(jobs, pool.map(lambda job: ask(*job), jobs)))
    for q in QUESTIONS:
        assert answers["smol-sql", q] == answers["sql", q] == "SELECT" * 4
        assert answers["smol-pirate", q] == "Arr" * 4
        assert not answers["smol", q].startswith(("SELECT", "Arr")) and answers["smol", q]
    with pytest.raises(openai.NotFoundError):
        ask("smol-french", QUESTIONS[0])
