"""Training prompts are the served prompts, token for token.

A SQL pair goes through training/sql.py (server.sql.prompt.sql_messages + sql_answer, rendered by
the HF tokenizer's chat template); the same question goes through what POST /v1/sql does (the
GGUF's template rendered by server/engine/template.py, tokenized by llama.cpp). The trained prompt
(everything before the first trained token) must equal the served prompt's tokens, and the
trained tokens must be the SQL followed by <|im_end|>.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def llama_vocab():
    from llama_cpp import Llama

    from server.settings import embedded_model_path

    llm = Llama(model_path=str(embedded_model_path()), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def text_of(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)


@pytest.mark.parametrize("k, draft", [(0, False), (3, False), (3, True)])
def test_sql_sample_tokens_match_serving(tmp_path, tokenizer, llama_vocab, data_dir, k, draft):
    from server.engine.template import ChatTemplate
    from server.sql.prompt import sql_messages
    from server.sql.retrieval import ExampleIndex, load_examples, prune_tables
    from server.sql.sample.paths import PAIRS_DIR
    from server.sql.baseline import TemplateBaseline
    from server.sql.canonical import canonical_sql
    from server.sql.prompt import DRAFT_LABEL
    from training.sql import load_database, sql_samples
    from training.tokens import IGNORE, encode_chat

    pairs = tmp_path / "pairs.jsonl"
    rows = (PAIRS_DIR / "train.jsonl").read_text().splitlines()
    pairs.write_text("\n".join(rows[100:103]) + "\n")
    from server.sql.settings import SqlSettings

    sample = sql_samples(pairs, serving=SqlSettings(few_shot_k=k, draft=draft), examples_path=PAIRS_DIR / "train.jsonl")[0]
    ids, labels = encode_chat(tokenizer, sample["messages"], last_turn_only=True)
    first = next(i for i, t in enumerate(labels) if t != IGNORE)

    # What the server does for the same question (SqlService.generate → LlamaEngine.render_chat).
    row = json.loads(rows[100])
    schema, values = load_database("sample")
    index = ExampleIndex(load_examples(PAIRS_DIR / "train.jsonl", "sqlite"))
    shots = [ex for ex in index.nearest(row["question"], k + 1) if ex.question != row["question"]][:k]
    # The server's drafter (SqlService.examples), leaving the pair out as it leaves out its shots.
    baseline = TemplateBaseline(load_examples(PAIRS_DIR / "train.jsonl", "sqlite"), values)
    draft_sql = baseline.answer(row["question"], leave_out=row["question"]).sql if draft else None
    served = sql_messages(schema, row["question"], tables=prune_tables(schema, row["question"], 12), examples=shots,
                          draft=draft_sql)
    assert (DRAFT_LABEL in text_of(sample["messages"])) == draft
    meta = llama_vocab.metadata
    template = ChatTemplate(meta["tokenizer.chat_template"], bos_token="<|im_start|>", eos_token="<|im_end|>")
    text = template.render(served, add_generation_prompt=True)
    served_ids = llama_vocab.tokenize(text.encode(), add_bos=False, special=True)

    assert ids[:first] == served_ids
    answer = [t for t in labels if t != IGNORE]
    target = canonical_sql(row["sql"])  # what training teaches: the canonical spelling
    assert tokenizer.decode(answer) == target + "<|im_end|>"
    assert llama_vocab.tokenize(target.encode(), add_bos=False, special=True) + [2] == answer


# -- Qwen3: a template with a think block --------------------------------------------------------
# The tiny qwen3 of tests/quantize/test_family_pipeline.py: its trained tokenizer and Qwen3's chat
# template (the one that test proves the GGUF carries, and llama.cpp tokenizes as transformers
# does). Qwen3 renders the final assistant turn after an empty think block, which its generation
# prompt holds only with enable_thinking=False: training (training/sql.py, training/tokens.py) and
# serving (/v1/sql generation) both render with server.sql.prompt.
# TEMPLATE_KWARGS, so the served prompt is continued with exactly the trained tokens: the SQL, no
# think block (which the SQL grammar could not write).

QWEN3_OPEN_ANSWER = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def qwen3_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from tests.quantize.test_family_pipeline import FAMILIES, train_tokenizer

    out = tmp_path_factory.mktemp("qwen3-tokenizer")
    train_tokenizer(FAMILIES["qwen3"], out)
    return AutoTokenizer.from_pretrained(str(out))  # as hearth train loads a base folder's tokenizer


def qwen3_engine(tokenizer, reply: str):
    """The server's side with the qwen3 tokenizer: the template rendered by server/engine/template.py
    (as LlamaEngine.render_chat does, template_kwargs included), text tokenized by the tokenizer."""
    from server.engine.template import ChatTemplate
    from tests.fakes import FakeEngine

    class Qwen3Engine(FakeEngine):
        def __init__(self):
            super().__init__(n_ctx=8192, reply=reply)
            self.template = ChatTemplate(tokenizer.chat_template, bos_token=tokenizer.bos_token or "",
                                         eos_token=tokenizer.eos_token)

        def tokenize(self, text, *, add_special=False, parse_special=True):
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        def detokenize(self, tokens):
            return tokenizer.decode(list(tokens))

        def render_chat(self, messages, *, add_generation_prompt=True, template_kwargs=None):
            super().render_chat(messages, add_generation_prompt=add_generation_prompt, template_kwargs=template_kwargs)
            return self.template.render(messages, add_generation_prompt=add_generation_prompt, variables=template_kwargs)

    return Qwen3Engine()


def test_qwen3_sql_samples_continue_the_served_prompts(tmp_path, qwen3_tokenizer, data_dir):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings
    from server.sql.canonical import canonical_sql
    from server.sql.sample.paths import PAIRS_DIR
    from server.sql.settings import SqlSettings
    from training.sql import sql_samples
    from training.tokens import IGNORE, encode_chat, encode_samples

    tok = qwen3_tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    rows = (PAIRS_DIR / "train.jsonl").read_text().splitlines()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(rows[100] + "\n")
    row = json.loads(rows[100])
    target = canonical_sql(row["sql"])
    sql = dict(few_shot_k=0, draft=False, template_first=False)  # the prompt: instructions, schema, question
    (forward,) = sql_samples(pairs, serving=SqlSettings(**sql), examples_path=PAIRS_DIR / "train.jsonl")
    ((f_ids, f_labels),) = [(s["input_ids"], s["labels"]) for s in encode_samples(tok, [forward], seq_len=8192)[0]]

    # Generation: what POST /v1/sql prefills (SqlService.complete_sql) is the trained prompt, and the
    # trained tokens follow it at once: the SQL and <|im_end|>, no think block.
    engine = qwen3_engine(tok, reply=target)
    with TestClient(create_app(ServerSettings(sql=sql), engine)) as client:
        r = client.post("/v1/sql", json={"question": row["question"], "database": "sample", "execute": False})
    assert r.status_code == 200, r.text
    served = list(engine.requests[0].prompt_tokens)
    assert tok.decode(served).endswith(QWEN3_OPEN_ANSWER)
    first = next(i for i, t in enumerate(f_labels) if t != IGNORE)
    assert f_ids[:first] == served
    answer = [t for t in f_labels if t != IGNORE]
    assert f_ids[first:first + len(answer)] == answer
    assert tok.decode(answer) == target + "<|im_end|>"
    assert engine.tokenize(target) + [im_end] == answer  # spelled as a continuation of the prompt is

    # What the template's default (thinking on) would have trained: the think block as the answer's
    # start, after a prompt that ends at "<|im_start|>assistant\n" (the mismatch this guards against).
    ids, labels = encode_chat(tok, forward["messages"], last_turn_only=True)
    assert tok.decode([t for t in labels if t != IGNORE]).startswith("<think>\n\n</think>\n\n")
