"""`hearth export`: a Hugging Face Llama-family model directory → GGUF f16, written directly.

Why our own writer rather than llama.cpp's convert_hf_to_gguf.py: that script needs the gguf-py
bundled with the same llama.cpp checkout (PyPI's gguf 0.19.0 lacks LazyChunkedTensor), and it is
not shipped in any wheel we install. For the llama architecture the conversion is small: rename
tensors, permute the q/k projections from HF's rotate-half RoPE layout to llama.cpp's interleaved
one, write the hyper-parameters, and copy the tokenizer metadata (vocabulary, merges, special ids,
chat template) from a reference GGUF with the same vocabulary (the embedded model's by default,
checked token by token against the HF tokenizer; tokens added after it, as `hearth vocab` does,
are appended as USER_DEFINED). Other architectures are refused.

Tensor types follow llama.cpp's converter for --outtype f16: 2-D weights in f16, norms in f32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.io import atomic_path

LAYER_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF q/k rows [half0 | half1] per head → llama.cpp's interleaved pairs (as convert_hf_to_gguf)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name: str) -> str | None:
    name = hf_name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "token_embd.weight"
    if name == "norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    if name.startswith("layers."):
        _, i, rest = name.split(".", 2)
        module, _, kind = rest.rpartition(".")
        if module in LAYER_NAMES:
            return f"blk.{i}.{LAYER_NAMES[module]}.{kind}"
    return None


def copy_tokenizer_metadata(writer, reference: Path, vocab: list[str], added: dict | None = None) -> None:
    """tokenizer.* keys of `reference`, after checking its token list is `vocab` or a prefix of it.

    Tokens past the reference's must be the HF tokenizer's added tokens (`added`: id → AddedToken,
    e.g. from `hearth vocab`): they are appended with type USER_DEFINED (CONTROL if special), in
    their raw text as convert_hf_to_gguf writes them, so llama.cpp matches them in text before BPE,
    as transformers does. A new BPE token would need merges the reference lacks: refused.
    """
    from gguf import GGUFReader, GGUFValueType, TokenType

    reader = GGUFReader(str(reference))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    extra = vocab[len(tokens):]
    missing = [i for i in range(len(tokens), len(vocab)) if i not in (added or {})]
    if vocab[:len(tokens)] != tokens or missing:
        raise ValueError(f"tokenizer of {reference} differs from the model's ({len(tokens)} vs {len(vocab)} tokens); "
                         "give --tokenizer-gguf with this model's vocabulary")
    types = [int(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED)
             for i in range(len(tokens), len(vocab))]
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == GGUFValueType.ARRAY else None
        value = field.contents()
        if extra and name == "tokenizer.ggml.tokens":
            value = value + extra
        elif extra and name == "tokenizer.ggml.token_type":
            value = value + types
        elif extra and name == "tokenizer.ggml.scores":
            value = value + [0.0] * len(extra)
        writer.add_key_value(name, value, vtype, sub_type=sub)


def export_gguf(model_dir: str | Path, out: str | Path, *, tokenizer_gguf: str | Path | None = None,
                name: str | None = None) -> dict:
    """Writes `out` (f16 GGUF) atomically and returns a small report."""
    import gguf
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ValueError(f"{model_dir}: model_type {config.get('model_type')!r}; only llama-family models export")
    if tokenizer_gguf is None:
        from server.settings import embedded_model_path

        tokenizer_gguf = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = [tok for tok, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    d = config["hidden_size"]
    head_dim = config.get("head_dim") or d // n_head

    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    if not state:
        raise FileNotFoundError(f"{model_dir}: no .safetensors weights")

    with atomic_path(out) as tmp:
        w = gguf.GGUFWriter(str(tmp), "llama")
        w.add_name(name or model_dir.name)
        w.add_context_length(config.get("max_position_embeddings", 2048))
        w.add_embedding_length(d)
        w.add_block_count(config["num_hidden_layers"])
        w.add_feed_forward_length(config["intermediate_size"])
        w.add_rope_dimension_count(head_dim)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
        rope = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        w.add_rope_freq_base(float(rope))
        w.add_vocab_size(config["vocab_size"])
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        copy_tokenizer_metadata(w, Path(tokenizer_gguf), vocab, tokenizer.added_tokens_decoder)
        count = 0
        for hf_name in sorted(state):
            target = gguf_name(hf_name)
            if target is None:
                if "rotary_emb" in hf_name:
                    continue
                raise ValueError(f"unexpected tensor {hf_name}")
            if target == "output.weight" and config.get("tie_word_embeddings", False):
                continue
            t = state[hf_name].to(torch.float32).numpy()
            if target.endswith("attn_q.weight"):
                t = permute_rope(t, n_head)
            elif target.endswith("attn_k.weight"):
                t = permute_rope(t, n_kv)
            w.add_tensor(target, t.astype(np.float16 if t.ndim == 2 else np.float32))
            count += 1
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return {"path": str(out), "tensors": count, "tokenizer_from": str(tokenizer_gguf)}
