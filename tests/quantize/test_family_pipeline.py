"""Every family through the whole pipeline, offline: data → LoRA → merge → export → quantize → serve.

For each of llama, qwen2, qwen3, mistral, gemma2, gemma3 and phi3 a tiny random model is built from
a transformers config (2 layers of width 256, so every weight row is a whole number of 256-wide
K-quant blocks and Q4_K_M quantizes without fallbacks). Its tokenizer is trained here on the sample
SQL pairs (1,024 tokens, so every stage is cheap): a byte-level BPE with the family's pre-tokenizer
as llama.cpp names it (llama-bpe, qwen2, gpt-2; named to the converter, which cannot recognise a new
vocabulary by its hash: the recipe's export.tokenizer_pre), or for gemma2 a SentencePiece model as
Gemma's (its converter reads tokenizer.model only). Each has the family's special tokens, BOS/EOS
as the family sets them, and a chat template in the family's style (Llama 3's headers and date
line, ChatML with Qwen's default system prompt, Qwen3's think block, Mistral's [INST] with the
system in the last user turn, Gemma's turns with the system folded into the first, Phi-3's role
tags). Llama has Llama 3's rope scaling, qwen2 q/k/v biases, qwen3 q/k norms, gemma2/3 a 16-token
sliding window (shorter than the checked texts) and gemma2 attention and final soft-capping; norms
and biases are randomised too. `hearth pipeline` then runs its own stages on 6 sample SQL pairs:
data, 3 LoRA steps, merge, export through llama.cpp's converter, Q8_0 and Q4_K_M, register.

Checked per family:
- the LoRA adapter covers every linear layer of the family (phi3's fused qkv_proj and gate_up_proj
  too), and training's loss (shared-prefix KV cache, lm_head on labelled positions) is the model's
  own loss on the same samples;
- llama.cpp's next-token log-probabilities from the merged model's F16 GGUF agree with
  transformers' on the merged folder: max |Δ log p| < LOGPROB_BOUND over every position and the
  whole vocabulary, on a SQL text and on a rendered conversation;
- llama.cpp tokenizes a text sample (and the family's special tokens) as transformers does;
- the GGUF's tokenizer.chat_template is the HF tokenizer's, and the server's template renderer
  (server/engine/template.py) gives the same prompt as transformers' apply_chat_template;
- Q8_0 and Q4_K_M are written without fallbacks, smaller than F16 and close to it.
Then one `hearth serve --config` process serves the seven Q8_0 files (the registered serve.yaml
entries merged, as the pipeline's header says) and /v1/models, /v1/chat/completions and /v1/sql
answer for each: chat prompt tokens equal transformers' count for the same messages, and /v1/sql
(templates off, so the model writes) returns a well-formed answer whose status says what happened.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train

# max |log p_transformers - log p_llama.cpp| (F16 GGUF of the merged model, f32 transformers): measured 0.0065
# (gemma3) to 0.0153 (mistral) on this box; f16 weights of width 256 set the floor
LOGPROB_BOUND = 0.03
SQL_TEXT = "SELECT c.company_name, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.customer_id GROUP BY 1"
SAMPLE = "Question: How many orders were shipped to Berlin in 2024?\n  Größe → 東京 🦙 3.14"
CHAT = [{"role": "system", "content": "You write SQL for the sales database."},
        {"role": "user", "content": "How many customers are in Berlin?"},
        {"role": "assistant", "content": "SELECT COUNT(*) FROM customers WHERE city = 'Berlin';"},
        {"role": "user", "content": "And in Paris?"}]
COMMON = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5)

LLAMA3_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
QWEN2_TEMPLATE = """{%- for message in messages %}
    {%- if loop.first and messages[0]['role'] != 'system' %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
QWEN3_TEMPLATE = """{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""
MISTRAL_TEMPLATE = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token }}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""
GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") + message['content'] | trim + '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\\n' }}
{%- endif -%}
"""
PHI3_TEMPLATE = """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"""


# Pre-tokenizer regexes as transformers' tokenizer.json files write them, by llama.cpp's name for each
# (src/llama-vocab.cpp reimplements each by that name; the GGUF records only the name).
PRE_TOKENIZERS = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                 r"|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)"
             r"|\s+",
    "gpt-2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
}
VOCAB = 1024  # byte-level BPE trained on the sample SQL pairs: 256 bytes, the specials, ~750 merges


@dataclass(frozen=True)
class Family:
    config: str  # transformers config class
    model: str  # transformers model class
    template: str
    specials: tuple[str, ...]  # the tokenizer's special tokens (ids 0..), those the template uses among them
    bos: str | None
    eos: str
    pre: str | None  # byte-level BPE with this pre-tokenizer (PRE_TOKENIZERS; named to the converter, since a
    # trained vocabulary has no hash it knows), or None: SentencePiece (tokenizer.model), as Gemma's
    extra: dict = field(default_factory=dict)  # config beyond COMMON
    tie: bool = False


FAMILIES = {
    "llama": Family("LlamaConfig", "LlamaForCausalLM", LLAMA3_TEMPLATE,
                    ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
                    "<|begin_of_text|>", "<|eot_id|>", "llama-bpe", tie=True,
                    # Llama 3.2's rope: theta 500k and the llama3 frequency scaling (rope_freqs in the GGUF), with a
                    # short original context so that the scaling changes the checked positions
                    extra={"rope_theta": 500000.0, "rope_scaling": {
                        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 256}}),
    "qwen2": Family("Qwen2Config", "Qwen2ForCausalLM", QWEN2_TEMPLATE, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                    None, "<|im_end|>", "qwen2", extra={"rope_theta": 1000000.0}),  # q/k/v biases, untied head
    "qwen3": Family("Qwen3Config", "Qwen3ForCausalLM", QWEN3_TEMPLATE,
                    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"), None, "<|im_end|>", "qwen2",
                    extra={"head_dim": 64, "rope_theta": 1000000.0}, tie=True),  # q/k norms
    "mistral": Family("MistralConfig", "MistralForCausalLM", MISTRAL_TEMPLATE, ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
                      "<s>", "</s>", "llama-bpe", extra={"sliding_window": None, "rope_theta": 1000000.0}),
    # Gemma: embeddings scaled by sqrt(width), (1 + w) norms, sandwich norms, local and global layers with
    # a 16-token window (shorter than the checked texts, so the window is exercised). Gemma 2 also soft-caps
    # attention and final logits, and its converter reads a SentencePiece tokenizer.model only.
    "gemma2": Family("Gemma2Config", "Gemma2ForCausalLM", GEMMA_TEMPLATE,
                     ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"), "<bos>",
                     "<end_of_turn>", None, extra={"head_dim": 64, "query_pre_attn_scalar": 64, "sliding_window": 16,
                                                   "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
                     tie=True),
    "gemma3": Family("Gemma3TextConfig", "Gemma3ForCausalLM", GEMMA_TEMPLATE,
                     ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"), "<bos>", "<end_of_turn>",
                     "gpt-2", extra={"head_dim": 64, "query_pre_attn_scalar": 64, "sliding_window": 16}, tie=True),
    "phi3": Family("Phi3Config", "Phi3ForCausalLM", PHI3_TEMPLATE,  # fused qkv_proj and gate_up_proj
                   ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), None, "<|endoftext|>",
                   "gpt-2"),
}


def train_tokenizer(spec: Family, out: Path):
    """A byte-level BPE with the family's pre-tokenizer and special tokens, trained on the sample pairs."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from server.sql.sample.paths import PAIRS_DIR
    from training.vocab import read_texts

    if spec.pre is None:
        return sentencepiece_tokenizer(spec, out, read_texts(PAIRS_DIR / "train.jsonl"))
    bpe = Tokenizer(models.BPE(ignore_merges=spec.pre == "llama-bpe"))  # as Llama 3's (and llama.cpp's llama-bpe)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRE_TOKENIZERS[spec.pre]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=list(spec.specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(read_texts(PAIRS_DIR / "train.jsonl"), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=spec.bos, eos_token=spec.eos)
    tok.chat_template = spec.template
    tok.save_pretrained(out)
    return tok


def sentencepiece_tokenizer(spec: Family, out: Path, texts: list[str]):
    """Gemma's kind of SentencePiece BPE: byte fallback, no prefix space, pad/eos/bos/unk at ids 0-3 and the
    other specials as control pieces (parsed as special tokens by transformers and llama.cpp alike)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    raw = out / "spm"
    raw.mkdir(parents=True)
    pad, eos, bos, unk, *control = spec.specials
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(raw / "tokenizer"), vocab_size=VOCAB, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece=pad,
        eos_piece=eos, bos_piece=bos, unk_piece=unk, control_symbols=control, split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        normalization_rule_name="identity", minloglevel=2)
    (raw / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
    tok = AutoTokenizer.from_pretrained(str(raw))  # converted to a tokenizers pipeline (needs protobuf)
    tok.bos_token, tok.eos_token = spec.bos, spec.eos
    tok.chat_template = spec.template
    tok.save_pretrained(out)
    shutil.copy(raw / "tokenizer.model", out / "tokenizer.model")
    shutil.rmtree(raw)
    return tok


def make_family(family: str, out: Path, seed: int = 0) -> Path:
    """A random-initialised model of `family` with its tokenizer and chat template, saved into `out`."""
    import torch
    import transformers

    spec = FAMILIES[family]
    tok = train_tokenizer(spec, out)
    if family == "phi3":  # the converter reads a Phi-3 vocabulary from tokenizer.model unless it is GPT-2 style
        cfg = json.loads((out / "tokenizer_config.json").read_text())
        (out / "tokenizer_config.json").write_text(json.dumps(cfg | {"tokenizer_class": "GPT2Tokenizer"}))
    torch.manual_seed(seed)
    ids = {f"{k}_token_id": tok.convert_tokens_to_ids(t) if t else None
           for k, t in (("bos", spec.bos), ("eos", spec.eos), ("pad", spec.eos))}
    config = getattr(transformers, spec.config)(**{**COMMON, **spec.extra}, **ids, vocab_size=len(tok),
                                                tie_word_embeddings=spec.tie)
    model = getattr(transformers, spec.model)(config)
    with torch.no_grad():  # larger random weights than the default init, so outputs depend on them; norms
        for p in model.parameters():  # and biases off their init too, so their conversion is checked
            p.normal_(0, 0.08) if p.dim() == 2 else p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out)
    return out


@dataclass
class Run:
    family: str
    name: str  # the recipe's: run, GGUF general.name and served model name
    base: Path
    dir: Path
    report: dict

    def gguf(self, qtype: str) -> Path:
        return self.dir / "gguf" / f"{self.name}-{qtype}.gguf"

    @property
    def merged(self) -> Path:
        return self.dir / "merged"


def run_pipeline(family: str, root: Path, pairs: Path) -> Run:
    """`hearth pipeline`'s stages on `family`'s tiny model (eval left out: a random model has no accuracy)."""
    from quantize.pipeline import pipeline
    from training.recipe import load_recipe

    base = make_family(family, root / "base")
    # llama.cpp gives a model whose general.name holds "phi3" Phi-3's token attributes, looking up "<s>",
    # "</s>" and "<unk>", which this vocabulary lacks (a real Phi-3's has them): the phi3 run has a neutral name.
    name = "phi" if family == "phi3" else family
    recipe = load_recipe(None, {
        "name": name, "base_model": str(base), "out_dir": str(root / "run"),
        "sources": [{"name": "sql", "kind": "sql", "path": str(pairs), "role": "domain", "schema_source": "ddl"}],
        "serve": {"sql": {"max_prompt_tables": 2}},  # a schema of 2 tables: short prompts, cheap steps
        "data": {"ratio": 0, "val_fraction": 0.25},
        "train": {"max_steps": 3, "batch_size": 2, "eval_every": 3, "save_every": 3, "lora_r": 4, "lr": 5e-3,
                  "warmup_steps": 0, "patience": None, "threads": 1},  # one thread: no spinning on a busy box
        "export": {"quant_types": ["Q8_0", "Q4_K_M"], "check_prompts": 2,
                   "tokenizer_pre": FAMILIES[family].pre},
        "gate": {"enforce": False},
    })
    report = pipeline(recipe, stages=("data", "train", "merge", "export", "quantize", "register"), progress=False)
    return Run(family, name, base, root / "run", report)


class Runs:
    """Each family's pipeline, run once, on first use."""

    def __init__(self, root: Path):
        from tests.training.conftest import sql_pairs

        self.root = root
        self.pairs = sql_pairs(root / "pairs.jsonl", 6)
        self._runs: dict[str, Run] = {}

    def __getitem__(self, family: str) -> Run:
        if family not in self._runs:
            self._runs[family] = run_pipeline(family, self.root / family, self.pairs)
        return self._runs[family]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> Runs:
    return Runs(tmp_path_factory.mktemp("families"))


def hf_tokenizer(run: Run):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(run.merged))


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_covers_every_linear_layer_and_changes_the_model(runs, family):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = runs[family]
    base = AutoModelForCausalLM.from_pretrained(str(run.base), dtype=torch.float32)
    linear = {name for name, m in base.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in name}
    keys = load_file(str(run.dir / "adapter" / "adapter_model.safetensors"))
    adapted = {k.removeprefix("base_model.model.").split(".lora_A")[0] for k in keys if ".lora_A" in k}
    assert adapted == linear, (family, sorted(linear - adapted))
    merge = json.loads((run.merged / "merge.json").read_text())
    assert merge["max_abs_diff_merged_vs_adapter"] < 1e-3 < merge["max_abs_diff_merged_vs_base"], merge
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows)


def _reference_loss(model, ids: list[int], labels: list[int]) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    from training.tokens import IGNORE

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    target = torch.tensor(labels[1:])
    keep = target != IGNORE
    return float(F.cross_entropy(logits[keep], target[keep], reduction="sum")), int(keep.sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_training_loss_is_the_models_own_loss(runs, family):
    """batch_loss on the model as training loads it (shared-prefix KV cache, lm_head on the labelled
    positions only, packed rows) gives the loss of transformers' own forward pass on each whole sample,
    for every family (gemma2: attention and final soft-capping included)."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.io import read_jsonl
    from training.loop import batch_loss
    from training.model import load_model
    from training.tokens import make_batches

    run = runs[family]
    model = load_model(str(run.merged)).eval()
    reference = AutoModelForCausalLM.from_pretrained(str(run.merged), dtype=torch.float32).eval()
    samples = read_jsonl(run.dir / "data" / "train.jsonl")
    batches = make_batches(samples, batch_size=2, seq_len=2048, seed=0)
    assert {b.kind for b in batches} >= {"prefix"}
    pad = hf_tokenizer(run).pad_token_id or 0
    for b in batches[:2]:
        with torch.no_grad():
            loss, n = batch_loss(model, b, torch.device("cpu"), pad)
        ref, m = 0.0, 0
        for i, (row, labels) in enumerate(zip(b.rows, b.labels)):
            if b.kind == "prefix":
                r, k = _reference_loss(reference, b.prefix + row, [-100] * len(b.prefix) + labels)
                ref, m = ref + r, m + k
                continue
            starts = [j for j, p in enumerate(b.positions[i]) if p == 0] + [len(row)]
            for s, e in zip(starts, starts[1:]):  # one packed sample after another
                r, k = _reference_loss(reference, row[s:e], labels[s:e])
                ref, m = ref + r, m + k
        assert n == m and float(loss) == pytest.approx(ref, rel=1e-4), (family, b.kind, float(loss), ref)


FIGURES: dict[str, dict] = {}


@pytest.mark.parametrize("family", FAMILIES)
def test_merged_model_logits_match_llama_cpp(runs, family):
    import torch
    from transformers import AutoModelForCausalLM

    from quantize.quant import next_token_logprobs

    run = runs[family]
    if family == "llama":  # Llama 3's rope scaling travels as a tensor of frequency factors
        from gguf import GGUFReader

        assert "rope_freqs.weight" in {t.name for t in GGUFReader(run.gguf("F16")).tensors}
    tok = hf_tokenizer(run)
    chat = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    model = AutoModelForCausalLM.from_pretrained(str(run.merged), dtype=torch.float32).eval()
    worst = 0.0
    for text, (tokens, logp) in zip((SQL_TEXT, chat), next_token_logprobs(run.gguf("F16"), [SQL_TEXT, chat])):
        assert tokens == tok(text, add_special_tokens=False)["input_ids"]
        assert len(tokens) > 16  # longer than the gemma families' sliding window
        with torch.no_grad():
            ref = torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1).numpy()
        worst = max(worst, float(np.abs(ref - logp).max()))
        ours, theirs = logp.argmax(-1), ref.argmax(-1)
        rows = np.arange(len(tokens))  # a different top-1 only where transformers itself has a near-tie
        assert (ref[rows, theirs] - ref[rows, ours]).max() < 2 * LOGPROB_BOUND
    FIGURES.setdefault(family, {})["max_dlogp_f16"] = worst
    print(f"{family}: max |Δ log p| {worst:.2e} (F16 GGUF vs transformers, merged model)")
    assert worst < LOGPROB_BOUND, (family, worst)


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_and_chat_template_survive_export(runs, family):
    from llama_cpp import llama_model_default_params
    from llama_cpp._internals import LlamaModel

    from server.engine.template import ChatTemplate

    run = runs[family]
    tok = hf_tokenizer(run)
    params = llama_model_default_params()
    params.vocab_only = True
    for qtype in ("F16", "Q8_0"):  # the served file too: quantizing keeps the tokenizer metadata
        vocab = LlamaModel(path_model=str(run.gguf(qtype)), params=params, verbose=False)
        try:
            text = SAMPLE + "".join(FAMILIES[family].specials)
            assert vocab.tokenize(text.encode(), False, True) == tok.encode(text, add_special_tokens=False)
            assert vocab.metadata()["tokenizer.chat_template"] == tok.chat_template == FAMILIES[family].template
            served = ChatTemplate(vocab.metadata()["tokenizer.chat_template"],
                                  bos_token=vocab.token_get_text(vocab.token_bos()),
                                  eos_token=vocab.token_get_text(vocab.token_eos()))
        finally:
            vocab.close()
        for messages, prompt in ((CHAT, True), (CHAT[:3], False), (CHAT[1:2], True)):
            expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
            assert served.render(messages, add_generation_prompt=prompt) == expected, (family, messages, prompt)


@pytest.mark.parametrize("family", FAMILIES)
def test_q8_0_and_q4_k_m_quantize_fully_and_stay_close(runs, family):
    run = runs[family]
    manifest = json.loads((run.dir / "gguf" / f"{run.name}-quantize.json").read_text())["outputs"]
    sizes = {q: run.gguf(q).stat().st_size for q in ("F16", "Q8_0", "Q4_K_M")}
    assert sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["F16"]
    # mean KL(F16 || quant) per position on held-out texts: a random model's flat distributions make Q4_K_M's
    # 0.08-0.12 nats large next to a trained model's, so the bound only separates it from a broken file
    for qtype, bound in (("Q8_0", 0.01), ("Q4_K_M", 0.3)):
        out = manifest[qtype]
        assert out["bytes"] == sizes[qtype] and out["fallbacks"]["by_type"] == {}, (family, qtype, out["fallbacks"])
        assert out["check"]["mean_kl"] < bound, (family, qtype, out["check"])
        FIGURES.setdefault(family, {})[qtype] = {"bytes": sizes[qtype], "mean_kl": out["check"]["mean_kl"],
                                                 "top1": out["check"]["top1_agreement"]}
    FIGURES[family]["F16_bytes"] = sizes["F16"]
    print(f"{family}: {json.dumps(FIGURES[family])}")


def test_served_families_answer_chat_and_sql(runs, tmp_path, data_dir):
    """One `hearth serve --config` with every family's registered Q8_0: models, chat and /v1/sql answer."""
    import httpx
    import openai
    import yaml

    from server.protocol.sql import SqlResponse
    from tests.conftest import start_server, stop_server

    models, sql = [], {}
    for family in FAMILIES:
        registered = yaml.safe_load((runs[family].dir / "serve.yaml").read_text())
        assert registered["models"] == [{"name": runs[family].name, "path": str(runs[family].gguf("Q8_0").resolve())}]
        assert registered["sql"]["max_prompt_tables"] == 2  # served as trained
        models += [m | {"n_ctx": 2048, "n_slots": 1, "n_threads": 1, "max_queue": 4} for m in registered["models"]]
        sql |= registered["sql"]
    config = tmp_path / "hearth.yaml"
    # Templates off: the model writes the SQL (a random model's SQL is wrong; the answer must still be well-formed).
    config.write_text(yaml.safe_dump({"models": models, "sql": sql | {
        "template_first": False, "max_attempts": 1, "max_new_tokens": 24}}))
    server = start_server(tmp_path, "--config", str(config), env={"HEARTH_DATA_DIR": str(data_dir)})
    try:
        listed = httpx.get(server.base_url + "/v1/models").json()["data"]
        assert [m["id"] for m in listed] == [runs[f].name for f in FAMILIES]
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
        for family in FAMILIES:
            tok = hf_tokenizer(runs[family])
            messages = CHAT[:2]
            name = runs[family].name
            reply = client.chat.completions.create(model=name, messages=messages, max_tokens=8, temperature=0)
            expected = tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]
            assert reply.model == name and reply.choices[0].message.role == "assistant"
            assert reply.choices[0].finish_reason in ("stop", "length")
            assert reply.usage.prompt_tokens == len(expected), family  # the same prompt, token for token
            assert 0 < reply.usage.completion_tokens <= 8

            r = httpx.post(server.base_url + "/v1/sql", timeout=120,
                           json={"question": "How many customers are there in each country?", "model": name})
            assert r.status_code == 200, (family, r.text)
            answer = SqlResponse.model_validate(r.json())
            assert answer.model == name and answer.attempts and answer.attempts[0].source == "model"
            assert answer.usage.prompt_tokens > 200  # the schema is in the prompt
            if answer.status == "ok":
                assert answer.validation.valid and answer.sql
            else:
                assert answer.status in ("rejected", "execution_error", "unanswerable", "timeout"), answer.status
                assert answer.attempts[0].error or answer.status == "unanswerable"
            print(f"{family}: chat {reply.usage.prompt_tokens} prompt tokens; /v1/sql {answer.status}")
    finally:
        stop_server(server)
