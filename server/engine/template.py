"""The model's chat template, rendered the way the model was trained to see conversations.

By default this is the Jinja template stored in the GGUF (`tokenizer.chat_template`), rendered in
a sandbox by llama-cpp-python's formatter, so that served prompts match the training prompts that
`training/` builds with the same template. A model registry entry may override it with a file.
"""

from __future__ import annotations

from typing import Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

# Used only when a GGUF carries no template at all (rare for chat models).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


class ChatTemplate:
    def __init__(self, template: str, *, bos_token: str, eos_token: str):
        self.source = template
        self._with_prompt = Jinja2ChatFormatter(template, eos_token, bos_token, add_generation_prompt=True)
        self._without_prompt = Jinja2ChatFormatter(template, eos_token, bos_token, add_generation_prompt=False)

    def render(self, messages: Sequence[dict], *, add_generation_prompt: bool = True) -> str:
        formatter = self._with_prompt if add_generation_prompt else self._without_prompt
        return formatter(messages=list(messages)).prompt
