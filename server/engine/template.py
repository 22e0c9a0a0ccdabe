"""The model's chat template, rendered the way the model was trained to see conversations.

By default this is the Jinja template stored in the GGUF (`tokenizer.chat_template`), rendered in
a sandbox by llama-cpp-python's formatter, so that served prompts match the training prompts that
`training/` builds with the same template. A model registry entry may override it with a file.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

# Used only when a GGUF carries no template at all (rare for chat models).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


# Variables the renderer sets itself (llama_cpp's Jinja2ChatFormatter.__call__); extra template
# variables (vLLM's chat_template_kwargs, e.g. enable_thinking) may not use these names.
RESERVED_VARIABLES = frozenset({
    "messages", "add_generation_prompt", "bos_token", "eos_token", "raise_exception", "strftime_now",
    "functions", "function_call", "tools", "tool_choice",
})


class ChatTemplate:
    def __init__(self, template: str, *, bos_token: str, eos_token: str):
        self.source = template
        self._with_prompt = Jinja2ChatFormatter(template, eos_token, bos_token, add_generation_prompt=True)
        self._without_prompt = Jinja2ChatFormatter(template, eos_token, bos_token, add_generation_prompt=False)

    def render(self, messages: Sequence[dict], *, add_generation_prompt: bool = True,
               variables: Mapping[str, Any] | None = None) -> str:
        """The conversation as the template spells it. `variables` are extra template variables
        (chat_template_kwargs), e.g. {"enable_thinking": False} for Qwen3's empty think block
        after the generation prompt; a template that does not read one is unaffected by it."""
        formatter = self._with_prompt if add_generation_prompt else self._without_prompt
        extra = dict(variables or {})
        clash = sorted(RESERVED_VARIABLES.intersection(extra))
        if clash:
            raise ValueError(f"template variable(s) {', '.join(clash)} are set by the server and cannot be passed")
        return formatter(messages=list(messages), **extra).prompt
