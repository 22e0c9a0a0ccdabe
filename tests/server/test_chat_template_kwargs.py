"""POST /v1/chat/completions accepts vLLM's `chat_template_kwargs`: extra chat-template variables
({"enable_thinking": false} for Qwen3), passed through to the template renderer whatever their
names; a non-object, or a variable the renderer sets itself, is a 400 in OpenAI's error shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.engine.template import ChatTemplate
from server.settings import ServerSettings
from tests.fakes import FakeEngine
from tests.quantize.test_family_pipeline import QWEN3_TEMPLATE

ASK = [{"role": "user", "content": "How many customers are in Berlin?"}]


class TemplateEngine(FakeEngine):
    """The fake engine (character tokens) with a real chat template: Qwen3's, rendered by
    server/engine/template.py as LlamaEngine.render_chat renders it."""

    def __init__(self):
        super().__init__(n_ctx=4096)
        self.template = ChatTemplate(QWEN3_TEMPLATE, bos_token="", eos_token="<|im_end|>")

    def render_chat(self, messages, *, add_generation_prompt: bool = True, template_kwargs=None) -> str:
        super().render_chat(messages, add_generation_prompt=add_generation_prompt, template_kwargs=template_kwargs)
        return self.template.render(messages, add_generation_prompt=add_generation_prompt, variables=template_kwargs)


@pytest.fixture()
def client():
    engine = TemplateEngine()
    with TestClient(create_app(ServerSettings(databases=[]), engine), raise_server_exceptions=False) as c:
        c.engine = engine
        yield c


def prompt_of(client) -> str:
    return client.engine.detokenize(client.engine.requests[-1].prompt_tokens)


def test_enable_thinking_false_reaches_the_template(client):
    r = client.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert prompt_of(client).endswith("<|im_start|>assistant\n")
    assert set(map(repr, client.engine.template_kwargs)) == {"None"}

    r = client.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4,
                                                  "chat_template_kwargs": {"enable_thinking": False}})
    assert r.status_code == 200, r.text
    assert prompt_of(client).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert client.engine.template_kwargs[-1] == {"enable_thinking": False}


def test_unknown_keys_are_passed_through_as_template_variables(client):
    kwargs = {"enable_thinking": True, "reasoning_effort": "low", "nested": {"a": [1, 2]}}
    r = client.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4, "stream": True,
                                                  "chat_template_kwargs": kwargs})
    assert r.status_code == 200, r.text
    assert client.engine.template_kwargs and all(k == kwargs for k in client.engine.template_kwargs)
    assert prompt_of(client).endswith("<|im_start|>assistant\n")  # thinking on: no closed block


@pytest.mark.parametrize("value", ["enable_thinking=false", ["enable_thinking"], 1, True])
def test_a_non_object_is_a_400_in_openai_shape(client, value):
    r = client.post("/v1/chat/completions", json={"messages": ASK, "chat_template_kwargs": value})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "chat_template_kwargs"
    assert "chat_template_kwargs" in error["message"]
    assert client.engine.requests == []


@pytest.mark.parametrize("name", ["messages", "add_generation_prompt", "bos_token", "tools"])
def test_a_variable_the_server_sets_is_a_400(client, name):
    r = client.post("/v1/chat/completions", json={"messages": ASK, "chat_template_kwargs": {name: "x"}})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "chat_template_kwargs"
    assert name in error["message"]
    assert client.engine.requests == []


def test_null_and_empty_object_mean_no_variables(client):
    for value in (None, {}):
        r = client.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4, "chat_template_kwargs": value})
        assert r.status_code == 200, r.text
        assert prompt_of(client).endswith("<|im_start|>assistant\n")
    assert set(map(repr, client.engine.template_kwargs)) == {"None"}
