"""`hearth vocab`: mining, mean-initialised rows, the tokens-per-character gain, training only the new
rows, and the expanded tokenizer through GGUF export into llama.cpp (tiny model, then the real one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.train

DOMAIN = "SELECT o.customer_id, oi.unit_price FROM order_items oi JOIN orders o ON o.order_id = oi.order_id"


def fresh_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def sample_texts(split: str) -> list[str]:
    from server.sql.sample.paths import PAIRS_DIR
    from training.vocab import read_texts

    return read_texts(PAIRS_DIR / f"{split}.jsonl")


def test_mining_picks_frequent_badly_split_strings(tokenizer):
    from training.vocab import mine

    texts = [DOMAIN] * 6 + ["We have many customers and customers like us."] * 20 + ["x.rare_column_name y"] * 2
    chosen = {c["token"]: c for c in mine(texts, tokenizer, 50, min_count=5)}
    # ".customer_id" is 4 tokens ('.', 'customer', '_', 'id') seen 6 times: 18 tokens saved.
    assert chosen[".customer_id"] == {"token": ".customer_id", "count": 6, "pieces": 4, "saved": 18}
    assert " order_items" in chosen and ".unit_price" in chosen
    assert " customers" not in chosen            # frequent, but already one token
    assert ".rare_column_name" not in chosen     # badly split, but seen twice only
    ranked = mine(texts, tokenizer, 3, min_count=5)
    assert [c["saved"] for c in ranked] == sorted((c["saved"] for c in chosen.values()), reverse=True)[:3]
    # Every token is one start character (space or dot) and a word: none can start inside another,
    # which is what keeps transformers' and llama.cpp's added-token matching identical.
    assert all(c[0] in " ." and " " not in c[1:] and "." not in c[1:] for c in chosen)


def test_tokens_per_char_falls_on_heldout_sql(tokenizer_dir):
    from tokenizers import AddedToken

    from training.vocab import mine, pieces, tokens_per_char

    tok = fresh_tokenizer(tokenizer_dir)
    chosen = mine(sample_texts("train"), tok, 64)
    heldout = sample_texts("test")  # other questions and SQL than the mined ones
    before = tokens_per_char(tok, heldout)
    tok.add_tokens([AddedToken(c["token"], normalized=False, special=False) for c in chosen])
    after = tokens_per_char(tok, heldout)
    assert after < 0.85 * before, (before, after)  # measured: 0.325 → 0.247 tokens/char (-24%)
    assert all(tok.decode(pieces(tok, t)) == t for t in heldout)  # nothing lost in the text


@pytest.mark.parametrize("tie", [True, False])
def test_new_rows_are_the_mean_of_their_old_pieces(tokenizer_dir, tmp_path, tie):
    import torch

    from tests.training.conftest import make_tiny_model
    from training.model import load_model
    from training.vocab import add_tokens, pieces

    model = load_model(str(make_tiny_model(tokenizer_dir, tmp_path / "m", tie=tie)))
    tok = fresh_tokenizer(tokenizer_dir)
    old_emb = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    strings = [".customer_id", " order_items"]
    old_pieces = [pieces(tok, s) for s in strings]
    ids = add_tokens(model, tok, strings)
    assert ids == [49152, 49153] and len(tok) == model.config.vocab_size == 49154
    emb, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert (out.data_ptr() == emb.data_ptr()) == tie
    assert torch.equal(emb[:49152], old_emb) and torch.equal(out[:49152], old_out)
    for i, p in zip(ids, old_pieces):
        assert torch.allclose(emb[i], old_emb[p].mean(0)) and torch.allclose(out[i], old_out[p].mean(0))
        assert not torch.allclose(emb[i], old_emb[p[0]])
    assert tok.convert_ids_to_tokens(pieces(tok, "SELECT o.customer_id FROM order_items")) == [
        "SELECT", "Ġo", ".customer_id", "ĠFROM", " order_items"]


def test_training_moves_only_the_new_rows(tokenizer_dir, tmp_path):
    import torch

    from tests.training.conftest import make_tiny_model
    from training.model import load_model
    from training.vocab import add_tokens, nats_per_char, train_new_rows

    torch.manual_seed(0)
    model = load_model(str(make_tiny_model(tokenizer_dir, tmp_path / "m", tie=False)))
    tok = fresh_tokenizer(tokenizer_dir)
    ids = add_tokens(model, tok, [".customer_id", " order_items", ".unit_price"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    texts = [DOMAIN, DOMAIN.lower().replace("select", "SELECT"), "FROM order_items oi WHERE oi.unit_price > 3"] * 2
    start = nats_per_char(model, tok, texts)
    report = train_new_rows(model, tok, texts, min(ids), steps=8, lr=1e-2, batch_size=len(texts), seq_len=64)
    assert nats_per_char(model, tok, texts) < start  # the same 6 texts every step: the loss must fall
    assert report["loss_last"][0] < report["loss_first"][0]
    for name, p in model.named_parameters():
        if name.endswith(("embed_tokens.weight", "lm_head.weight")):
            assert torch.equal(p[:min(ids)], before[name][:min(ids)]), name  # old rows bit-identical
            assert not torch.allclose(p[min(ids):], before[name][min(ids):]), name
        else:
            assert torch.equal(p, before[name]), name
        assert not p.requires_grad


@pytest.fixture(scope="module")
def expanded_tiny(tiny_model, tmp_path_factory):
    """`hearth vocab` on the tiny model: mined on the sample's train pairs, measured on its test pairs."""
    from server.cli import main
    from server.sql.sample.paths import PAIRS_DIR

    out = tmp_path_factory.mktemp("vocab") / "expanded"
    rc = main(["vocab", str(PAIRS_DIR / "train.jsonl"), "--base", str(tiny_model), "--heldout",
               str(PAIRS_DIR / "test.jsonl"), "--n-tokens", "32", "--train-steps", "3", "--out", str(out)])
    assert rc == 0
    return out


def test_vocab_verb_writes_the_expanded_model(expanded_tiny):
    report = json.loads((expanded_tiny / "vocab_report.json").read_text())
    config = json.loads((expanded_tiny / "config.json").read_text())
    assert report["added"] == 32 and config["vocab_size"] == 49152 + 32 == report["vocab_size"]
    assert report["tokens"][0]["token"] == ".customer_id" and report["tokens"][0]["id"] == 49152
    h = report["heldout"]
    assert h["tokens_per_char_after"] < 0.85 * h["tokens_per_char_before"]
    assert report["train"]["steps"] == 3
    tok = fresh_tokenizer(expanded_tiny)
    assert tok("o.customer_id")["input_ids"][1:] == [49152]
    assert not [p.name for p in expanded_tiny.parent.iterdir() if p.name.startswith(".")]  # atomic: no temp left


def _check_gguf(hf_dir, gguf, texts, *, max_kl: float):
    """llama.cpp tokenizes like transformers (new tokens included) and gives the same distributions."""
    import torch
    from gguf import GGUFReader, TokenType
    from llama_cpp import llama_model_default_params
    from llama_cpp._internals import LlamaModel
    from transformers import AutoModelForCausalLM

    from quantize.quant import next_token_logprobs

    def vocab_params():
        params = llama_model_default_params()
        params.vocab_only = True  # the tokenizer only: no weights, no context
        return params

    tok = fresh_tokenizer(hf_dir)
    report = json.loads((hf_dir / "vocab_report.json").read_text())
    fields = GGUFReader(str(gguf)).fields
    types = fields["tokenizer.ggml.token_type"].contents()
    assert len(fields["tokenizer.ggml.tokens"].contents()) == len(types) == len(tok)
    for t in report["tokens"]:
        assert fields["tokenizer.ggml.tokens"].contents()[t["id"]] == t["token"]
        assert types[t["id"]] == TokenType.USER_DEFINED
    vocab = LlamaModel(path_model=str(gguf), params=vocab_params(), verbose=False)
    try:
        for t in report["tokens"]:  # each domain string is its one new token
            assert vocab.tokenize(t["token"].encode(), False, False) == [t["id"]]
        for text in texts:
            ids = vocab.tokenize(text.encode(), False, False)
            assert ids == tok(text)["input_ids"], text
            assert vocab.detokenize(ids).decode() == text
    finally:
        vocab.close()
    prompts = [t for t in texts if any(i >= report["first_id"] for i in tok(t)["input_ids"])][:6]
    assert prompts
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    kls, agree, n = [], 0, 0
    for tokens, logp in next_token_logprobs(gguf, prompts):
        assert tokens == tok(tok.decode(tokens))["input_ids"] and max(tokens) >= report["first_id"]
        with torch.no_grad():
            ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
        kls.append((np.exp(ref) * (ref - logp)).sum(-1))
        agree += int((ref.argmax(-1) == logp.argmax(-1)).sum())
        n += len(tokens)
    kl = float(np.concatenate(kls).mean())
    print(f"transformers vs llama.cpp f16 on {n} positions: mean KL {kl:.2e}, top-1 {agree / n:.3f}")
    assert kl < max_kl and agree / n >= 0.95


def test_expanded_tokenizer_survives_gguf_export(expanded_tiny, tmp_path):
    from quantize.export import export_gguf

    gguf = tmp_path / "tiny-vocab-F16.gguf"
    export_gguf(expanded_tiny, gguf)
    _check_gguf(expanded_tiny, gguf, sample_texts("test")[::7], max_kl=1e-3)  # odd step: questions and SQL


def test_export_refuses_a_vocabulary_it_cannot_write(expanded_tiny, tmp_path):
    """A token that is not an added token (a new BPE entry would need merges) is refused."""
    from quantize.export import export_gguf

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in expanded_tiny.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tj = json.loads((broken / "tokenizer.json").read_text())
    moved = tj["added_tokens"].pop()
    tj["model"]["vocab"][moved["content"]] = moved["id"]
    (broken / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(ValueError, match="differs from the model"):
        export_gguf(broken, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*tmp"))


@pytest.mark.slow
@pytest.mark.model
def test_real_smollm2_expanded_through_gguf(tmp_path, data_dir):
    """The embedded SmolLM2-135M expanded (and its rows trained a few steps), exported to f16 GGUF:
    llama.cpp must tokenize and score it as transformers does (~2 minutes)."""
    from quantize.export import export_gguf
    from training.recipe import VocabConfig
    from training.vocab import expand

    out = tmp_path / "smol-vocab"
    heldout = sample_texts("test")[1::2]  # the SQL (texts alternate question, SQL)
    report = expand("embedded:smollm2", sample_texts("train"), heldout[::4], out,
                    VocabConfig(n_tokens=48, train_steps=4, batch_size=8), eval_texts=12)
    h = report["heldout"]
    print(json.dumps(h, indent=1))
    assert h["token_reduction"] > 0.15
    # Mean rows are a rough start: their loss per character may rise a little; training brings it down.
    assert h["nats_per_char_trained"] < h["nats_per_char_mean_init"]
    gguf = tmp_path / "smol-vocab-F16.gguf"
    export_gguf(out, gguf)
    _check_gguf(out, gguf, heldout[::9], max_kl=0.01)  # f16 weights: as test_real_model's bound
