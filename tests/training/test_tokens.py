"""Speed tricks must not change the maths: packed rows and shared prefixes give the same loss and
gradients as computing every sample on its own; labels cover the answers only."""

from __future__ import annotations

import pytest
import torch

from training.loop import batch_loss
from training.tokens import IGNORE, Batch, encode_chat, make_batches, pack

pytestmark = pytest.mark.train


def _samples(tokenizer, n=6):
    head = "Schema: CREATE TABLE t (a INT, b TEXT); " * 6  # a long prompt prefix shared by every sample
    out = []
    for i in range(n):
        msgs = [{"role": "user", "content": head + f"Question {i}: how many rows have a > {i * 3}?"},
                {"role": "assistant", "content": f"SELECT COUNT(*) FROM t WHERE a > {i * 3}" + " AND b = 'x'" * (i % 3)}]
        ids, labels = encode_chat(tokenizer, msgs, last_turn_only=True)
        out.append({"input_ids": ids, "labels": labels, "source": "s", "id": str(i)})
    return out


def _single(sample) -> Batch:
    return Batch("packed", [sample["input_ids"]], [sample["labels"]], [list(range(len(sample["input_ids"])))])


def _loss_and_grads(model, batches, prompt_grad=True):
    model.zero_grad()
    total, count = 0.0, 0
    for b in batches:
        loss, n = batch_loss(model, b, torch.device("cpu"), 2, prompt_grad)
        loss.backward()
        total, count = total + float(loss.detach()), count + n
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return total, count, grads


@pytest.fixture
def model(tiny_model):
    from training.model import load_model

    torch.manual_seed(0)
    return load_model(str(tiny_model))


def test_labels_cover_the_answer_and_im_end(tokenizer):
    s = _samples(tokenizer, 1)[0]
    trained = [t for t in s["labels"] if t != IGNORE]
    assert tokenizer.decode(trained) == "SELECT COUNT(*) FROM t WHERE a > 0<|im_end|>"


def test_packed_rows_equal_separate_samples(model, tokenizer):
    samples = _samples(tokenizer)
    ref = _loss_and_grads(model, [_single(s) for s in samples])
    packed = pack(samples, seq_len=4 * max(len(s["input_ids"]) for s in samples))
    assert len(packed) < len(samples)
    got = _loss_and_grads(model, packed)
    assert got[1] == ref[1]
    assert got[0] == pytest.approx(ref[0], rel=1e-4)
    for k in ref[2]:
        torch.testing.assert_close(got[2][k], ref[2][k], rtol=1e-3, atol=1e-5)


def test_shared_prefix_equals_separate_samples(model, tokenizer):
    samples = _samples(tokenizer)
    ref = _loss_and_grads(model, [_single(s) for s in samples])
    batches = make_batches(samples, batch_size=3, seq_len=4096, seed=0, share_prefix=True, min_prefix=32)
    assert {b.kind for b in batches} == {"prefix"} and all(len(b.prefix) > 50 for b in batches)
    assert sum(b.computed_tokens for b in batches) < 0.6 * sum(b.sample_tokens for b in batches)
    got = _loss_and_grads(model, batches)
    assert got[1] == ref[1]
    assert got[0] == pytest.approx(ref[0], rel=1e-4)
    for k in ref[2]:
        torch.testing.assert_close(got[2][k], ref[2][k], rtol=1e-3, atol=1e-5)


def test_answer_only_gradients_keep_the_loss_and_the_output_path(model, tokenizer):
    """train.prompt_grad=False: the same loss; the final norm's gradient (which only the answer
    positions' values reach) is the full one; earlier layers' gradients lose the prompt's part."""
    samples = _samples(tokenizer)
    ref = _loss_and_grads(model, [_single(s) for s in samples])
    batches = make_batches(samples, batch_size=3, seq_len=4096, seed=0, share_prefix=True, min_prefix=32)
    got = _loss_and_grads(model, batches, prompt_grad=False)
    assert got[1] == ref[1]
    assert got[0] == pytest.approx(ref[0], rel=1e-4)
    norm = next(k for k in ref[2] if k.endswith("model.norm.weight"))
    torch.testing.assert_close(got[2][norm], ref[2][norm], rtol=1e-3, atol=1e-5)
    first = next(k for k in ref[2] if ".layers.0." in k and k.endswith("v_proj.weight"))
    assert not torch.allclose(got[2][first], ref[2][first], rtol=1e-3, atol=1e-5)
    assert got[2][first].abs().sum() > 0  # still trained, through the answer tokens' own values


def test_batches_are_deterministic(tokenizer):
    samples = _samples(tokenizer)
    a = make_batches(samples, batch_size=2, seq_len=4096, seed=5)
    b = make_batches(samples, batch_size=2, seq_len=4096, seed=5)
    assert [x.rows for x in a] == [x.rows for x in b]


def test_a_served_prompt_longer_than_seq_len_is_kept_whole_and_others_are_dropped(tokenizer):
    from training.tokens import encode_samples

    long_prompt = "Schema: CREATE TABLE T (A INT, B TEXT); " * 40  # far past seq_len below
    msgs = [{"role": "user", "content": long_prompt + "Question: how many rows?"},
            {"role": "assistant", "content": "SELECT COUNT(*) FROM T"}]
    served = {"messages": msgs, "source": "sql", "id": "a", "verbatim": True}
    chat = {"messages": msgs, "source": "chat", "id": "b"}
    out, stats = encode_samples(tokenizer, [served, chat], seq_len=64)
    assert [s["id"] for s in out] == ["a"]
    assert stats == {"too_long_for_seq_len": 1, "longer_than_seq_len_kept": 1}
    assert len(out[0]["input_ids"]) > 64 and out[0]["labels"][-2] != IGNORE  # the answer is all there
    rows = pack(out, 64)  # a row of its own
    assert len(rows) == 1 and rows[0].rows[0] == out[0]["input_ids"]
