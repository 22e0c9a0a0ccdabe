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


def test_question_sample_tokens_match_what_serving_scores(tmp_path, tokenizer, llama_vocab, data_dir):
    """The reverse task (question_samples): trained on the canonical SQL's reverse prompt with the
    question as the reply; sql.template_choice = model scores exactly those question tokens after
    exactly that prompt (server/services/sql_candidates.py tokenizes the reply without specials)."""
    from server.engine.template import ChatTemplate
    from server.sql.canonical import canonical_sql
    from server.sql.prompt import question_answer, question_messages
    from server.sql.sample.paths import PAIRS_DIR
    from training.sql import sql_samples
    from training.tokens import IGNORE, encode_chat

    pairs = tmp_path / "pairs.jsonl"
    rows = (PAIRS_DIR / "train.jsonl").read_text().splitlines()
    pairs.write_text(rows[200] + "\n")
    forward, reverse = sql_samples(pairs, examples_path=PAIRS_DIR / "train.jsonl", question_samples=True)
    assert (forward.get("task"), reverse["task"]) == (None, "question") and reverse["id"].endswith(":question")
    ids, labels = encode_chat(tokenizer, reverse["messages"], last_turn_only=True)
    first = next(i for i, t in enumerate(labels) if t != IGNORE)

    row = json.loads(rows[200])
    meta = llama_vocab.metadata
    template = ChatTemplate(meta["tokenizer.chat_template"], bos_token="<|im_start|>", eos_token="<|im_end|>")
    served = template.render(question_messages(canonical_sql(row["sql"])), add_generation_prompt=True)
    assert ids[:first] == llama_vocab.tokenize(served.encode(), add_bos=False, special=True)
    scored = llama_vocab.tokenize(question_answer(row["question"]).encode(), add_bos=False, special=False)
    assert [t for t in labels if t != IGNORE] == scored + [2]  # the question, then <|im_end|>
