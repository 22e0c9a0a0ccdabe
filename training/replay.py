"""The offline default general corpus: a replay set of the base model's own answers.

No general corpus can be downloaded on an appliance. Training on the base model's answers to a
spread of general prompts (below) pulls the adapted model back towards its original behaviour on
everything that is not the domain, which is what the general share of the mix is for
(self-distillation / "replay" against forgetting). It teaches nothing new, so it is a floor:
any general corpus the customer brings (kind: corpus or chat, role: general) can replace it.

Answers are generated greedily with llama.cpp on the base GGUF (about 60-100 tok/s on 2 cores,
so 120 prompts × ≤160 tokens take 3-5 minutes), once, and cached as chat JSONL.
"""

from __future__ import annotations

from pathlib import Path

from .io import read_jsonl, write_jsonl

TOPICS = [
    "photosynthesis", "the water cycle", "compound interest", "how vaccines work", "the French Revolution",
    "black holes", "recycling plastics", "the immune system", "machine learning", "climate change",
    "the printing press", "volcanoes", "healthy sleep", "time management", "public speaking",
    "the stock market", "electric cars", "the Roman Empire", "gravity", "honeybees",
    "writing a resume", "learning a language", "the internet", "renewable energy", "the human heart",
    "inflation", "the moon landing", "composting", "password security", "team meetings",
]
TASKS = [
    "Explain {t} in simple terms.",
    "Give three short facts about {t}.",
    "Write a two-sentence summary of {t} for a child.",
    "What are common misconceptions about {t}?",
]
PLAIN = [
    "What is 17 times 23?", "Translate 'good morning' into French and Spanish.",
    "Write a haiku about autumn.", "List the days of the week in order.",
    "Write a polite email declining a meeting invitation.", "What is the capital of Japan?",
    "Give me a recipe idea for a quick vegetarian dinner.", "How do I convert Celsius to Fahrenheit?",
    "Suggest a name for a bakery.", "Explain the difference between weather and climate.",
    "Write a Python function that reverses a string.", "What does HTTP stand for?",
]


def general_prompts() -> list[str]:
    """The project's general prompts, in a fixed order (topics × tasks, then plain questions)."""
    return [task.format(t=t) for t in TOPICS for task in TASKS] + PLAIN


def generate(gguf: str | Path, out: str | Path, *, n_prompts: int | None = None, max_tokens: int = 160,
             n_threads: int | None = None) -> Path:
    """Writes {"messages": [user, assistant]} rows for the first n_prompts prompts (cached: rows
    already in `out` are kept, missing ones are generated)."""
    import os

    from llama_cpp import Llama

    prompts = general_prompts()[:n_prompts]
    out = Path(out)
    done = {r["messages"][0]["content"]: r for r in read_jsonl(out)} if out.exists() else {}
    todo = [p for p in prompts if p not in done]
    if todo:
        llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=n_threads or len(os.sched_getaffinity(0)),
                    verbose=False, seed=0)
        for prompt in todo:
            reply = llm.create_chat_completion([{"role": "user", "content": prompt}], temperature=0.0,
                                               max_tokens=max_tokens)
            text = reply["choices"][0]["message"]["content"].strip()
            done[prompt] = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
                            "finish_reason": reply["choices"][0]["finish_reason"]}
        del llm
    write_jsonl(out, [done[p] for p in prompts])
    return out
