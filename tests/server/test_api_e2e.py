"""End to end: a real `hearth serve` process, the real embedded model, the official openai client."""

from __future__ import annotations

import base64
import json
import time

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import API_KEY

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_models_lists_the_embedded_model(openai_client):
    models = openai_client.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["smollm2-135m-instruct"]
    # Serving memory by its parts (issue 22): SmolLM2-135M's f16 KV cache is 22.5 KiB a token
    # (30 layers x 3 KV heads x (64 + 64) x 2 bytes), for n_ctx cells in each slot.
    meta = models.data[0].model_extra["meta"]
    memory = meta["memory"]
    assert memory["quant"] in ("Q8_0", "Q4_1") and memory["weights_bytes"] == meta["size_bytes"]
    assert memory["kv_cache_bytes"] == memory["n_ctx"] * memory["n_slots"] * 22.5 * 1024
    assert memory["n_ctx"] == meta["n_ctx"] and memory["total_bytes"] == memory["weights_bytes"] + memory["kv_cache_bytes"]


def test_chat_completion(openai_client):
    out = openai_client.chat.completions.create(
        model=MODEL,
        messages=QUESTION, max_tokens=16, temperature=0
    )
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 10
    assert 0 < out.usage.completion_tokens <= 16
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_chat_stream_matches_non_stream_and_reports_usage(openai_client):
    kwargs = dict(messages=QUESTION, max_tokens=20, temperature=0)
    whole = openai_client.chat.completions.create(model=MODEL, **kwargs).choices[0].message.content
    chunks = list(openai_client.chat.completions.create(model=MODEL, **kwargs, stream=True,
                                                        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_stream_ends_with_done(live_server):
    body = {"messages": QUESTION, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", live_server.base_url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"


def test_sampling_parameters_and_seed(openai_client):
    kwargs = dict(messages=[{"role": "user", "content": "Write a short poem about bread."}], max_tokens=24,
                  temperature=0.9, top_p=0.9, seed=1234, presence_penalty=0.5, frequency_penalty=0.5)
    a = openai_client.chat.completions.create(model=MODEL, **kwargs).choices[0].message.content
    b = openai_client.chat.completions.create(model=MODEL, **kwargs).choices[0].message.content
    assert a == b  # same seed, same output
    c = openai_client.chat.completions.create(model=MODEL, **{**kwargs, "seed": 99}).choices[0].message.content
    assert isinstance(c, str) and c


def test_stop_sequence(openai_client):
    out = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        max_tokens=40, temperature=0, stop=["5"],
    )
    assert "5" not in out.choices[0].message.content
    assert out.choices[0].finish_reason == "stop"


def test_logprobs(openai_client):
    out = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=5, temperature=0,
                                                logprobs=True, top_logprobs=3)
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens
    for item in content:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        # Greedy decoding picks the most likely token.
        assert abs(item.top_logprobs[0].logprob - item.logprob) < 1e-4


def test_json_schema_output_parses(openai_client):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    out = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give the biggest city of France and its population as JSON."}],
        max_tokens=60, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(out.choices[0].message.content)
    assert set(data) == {"city", "population"}
    assert isinstance(data["population"], int)


def test_json_object_output_parses(openai_client):
    out = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
        max_tokens=80, temperature=0, response_format={"type": "json_object"},
    )
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)
    else:  # cut by max_tokens: still a JSON prefix, starting an object
        assert out.choices[0].message.content.lstrip().startswith("{")


def test_forced_tool_call(openai_client):
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False}}}
    out = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}], max_tokens=40, temperature=0,
        tools=[tool], tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert out.choices[0].finish_reason == "tool_calls"


def test_tool_choice_auto_is_a_clear_400(openai_client):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(model=MODEL, messages=QUESTION, tools=[tool], max_tokens=5)
    assert err.value.body["code"] == "unsupported_parameter"
    assert err.value.body["param"] == "tool_choice"


def test_completions_with_echo_and_logprobs(openai_client):
    out = openai_client.completions.create(model=MODEL, prompt="The capital of France is",
                                           max_tokens=5, temperature=0, echo=True, logprobs=2)
    assert out.choices[0].text.startswith("The capital of France is")
    assert len(out.choices[0].logprobs.tokens) == out.usage.completion_tokens
    streamed = list(openai_client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=5,
                                                     temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == out.choices[0].text[len("The capital of France is"):]


def test_embeddings(openai_client):
    out = openai_client.embeddings.create(model=MODEL,
                                          input=["a cat sat on the mat", "a kitten sat on a rug", "stock markets fell"])
    vecs = [d.embedding for d in out.data]
    assert len(vecs) == 3 and len(vecs[0]) == 576
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731 - vectors are L2-normalised
    assert abs(dot(vecs[0], vecs[0]) - 1) < 1e-6
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])
    b64 = openai_client.embeddings.create(model=MODEL, input="a cat sat on the mat", encoding_format="base64")
    raw = np.frombuffer(base64.b64decode(b64.data[0].embedding), dtype="<f4")
    assert np.allclose(raw, vecs[0], atol=1e-6)


# -- errors, each with its status and OpenAI's shape --------------------------------------------


def _assert_error_shape(body: dict, code: str | None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code


def test_bad_api_key_is_401(live_server):
    client = openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert err.value.status_code == 401
    r = httpx.get(live_server.base_url + "/v1/models")
    assert r.status_code == 401
    _assert_error_shape(r.json(), "invalid_api_key")


def test_health_and_ready_are_public(live_server):
    assert httpx.get(live_server.base_url + "/health").json() == {"status": "ok"}
    assert httpx.get(live_server.base_url + "/ready").status_code == 200


def test_unknown_model_is_404(openai_client):
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.chat.completions.create(model="gpt-5", messages=QUESTION)
    _assert_error_shape(err.value.response.json(), "model_not_found")
    assert err.value.body["param"] == "model"


def test_too_long_prompt_is_400_context_length_exceeded(openai_client):
    long = "word " * 1500  # > n_ctx=1024 tokens
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=10)
    _assert_error_shape(err.value.response.json(), "context_length_exceeded")
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=1020)
    assert err.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "body, param",
    [
        ('{"messages": [', None),  # malformed JSON
        ('{"messages": []}', "messages"),
        ('{"messages": [{"role": "wizard", "content": "x"}]}', "messages.0.role"),
        ('{"messages": [{"role": "user", "content": "x"}], "temperature": 7}', "temperature"),
        ('{"messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        ('[1, 2]', None),
    ],
)
def test_malformed_bodies_are_400(live_server, body, param):
    r = httpx.post(live_server.base_url + "/v1/chat/completions", content=body,
                   headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_unknown_route_is_404_in_openai_shape(live_server):
    r = httpx.get(live_server.base_url + "/v1/nothing-here", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 404
    _assert_error_shape(r.json(), "not_found")


def test_client_disconnect_stops_generation(live_server):
    before = live_server.metric("hearth_completion_tokens_total")
    body = {"messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}],
            "max_tokens": 900, "temperature": 0, "stream": True}
    with httpx.stream("POST", live_server.base_url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i > 6:
                break  # hang up mid-stream
    deadline = time.time() + 10
    while time.time() < deadline and live_server.metric("hearth_slots_in_use") > 0:
        time.sleep(0.1)
    assert live_server.metric("hearth_slots_in_use") == 0
    time.sleep(1.0)
    # Well under the 900 tokens asked for were generated: the slot was freed, not run to the end.
    assert live_server.metric("hearth_completion_tokens_total") - before < 300


def test_metrics_exposes_the_documented_series(live_server, openai_client):
    openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=3)
    text = live_server.metrics()
    for series in ("hearth_requests_total", "hearth_request_seconds_bucket", "hearth_time_to_first_token_seconds",
                   "hearth_prompt_tokens_total", "hearth_completion_tokens_total",
                   "hearth_decode_tokens_per_second", "hearth_requests_in_flight", "hearth_queue_depth",
                   "hearth_slots_in_use", "hearth_prefix_cache_hit_rate", "hearth_model_load_seconds"):
        assert series in text, series
    assert 'route="/v1/chat/completions"' in text
