"""server/engine/template.py: extra template variables (chat_template_kwargs, enable_thinking)."""

from __future__ import annotations

import pytest

from server.engine.template import CHATML_TEMPLATE, RESERVED_VARIABLES, ChatTemplate
from tests.quantize.test_family_pipeline import QWEN3_TEMPLATE

ASK = [{"role": "user", "content": "How many customers are in Berlin?"}]


def qwen3() -> ChatTemplate:
    return ChatTemplate(QWEN3_TEMPLATE, bos_token="", eos_token="<|im_end|>")


def test_enable_thinking_false_closes_qwen3s_think_block_in_the_generation_prompt():
    template = qwen3()
    default = template.render(ASK)
    assert default.endswith("<|im_start|>assistant\n")  # thinking on: the model opens its own block
    off = template.render(ASK, variables={"enable_thinking": False})
    assert off == default + "<think>\n\n</think>\n\n"
    assert template.render(ASK, variables={"enable_thinking": True}) == default
    # Without a generation prompt the variable changes nothing here (the template reads it only there).
    assert template.render(ASK, add_generation_prompt=False, variables={"enable_thinking": False}) == \
        template.render(ASK, add_generation_prompt=False)


def test_a_template_that_ignores_a_variable_is_unaffected():
    template = ChatTemplate(CHATML_TEMPLATE, bos_token="", eos_token="<|im_end|>")
    assert template.render(ASK, variables={"enable_thinking": False, "anything": [1, 2]}) == template.render(ASK)


def test_unknown_variables_reach_the_template():
    template = ChatTemplate("{{ greeting }}, {{ messages[0]['content'] }}{% if shout is defined and shout %}!{% endif %}",
                            bos_token="", eos_token="")
    assert template.render(ASK, variables={"greeting": "Hello", "shout": True}) == \
        "Hello, How many customers are in Berlin?!"
    assert template.render(ASK, variables={"greeting": "Hi"}) == "Hi, How many customers are in Berlin?"


@pytest.mark.parametrize("name", sorted(RESERVED_VARIABLES))
def test_variables_the_renderer_sets_cannot_be_overridden(name):
    with pytest.raises(ValueError, match=name):
        qwen3().render(ASK, variables={name: "x"})
