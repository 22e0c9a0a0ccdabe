"""The training recipe: one pydantic-settings model, read from YAML.

Precedence, highest first (as in server/settings.py): CLI (`--set train.lr=1e-4`, and the verbs'
own flags) > environment (HEARTH_ prefix, `__` between levels: HEARTH_TRAIN__LR=1e-4) > the YAML
recipe > the defaults below. Each option is documented once, on its Field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from server.sql.settings import SqlSettings

EMBEDDED = "embedded:smollm2"

# Keys a recipe may still name that were removed or renamed, and what to do instead.
_QUESTION_SAMPLES = {
    "question_samples": "question_samples was removed (2026-12-07): the reverse task (the SQL in, its question "
    "out) only served sql.template_choice: model, which lost to the nearest fitting template on every split "
    "(served Q8_0 EX 62.8 vs 65.1 on the sample, 64.1 vs 68.6 paraphrased; training/EXPERIMENTS.md). Delete "
    "it from the recipe."}
_MUST_BEAT_BASE = {
    "must_beat_base": "gate.must_beat_base was replaced by gate.max_base_drop_points (2026-12-07): 0 = the "
    "candidate's SQL EX must not be below the un-adapted base's (a tie passes), null = no check. A strict "
    "'must beat' failed every run whose questions the templates answer alike for both."}


def _refuse_removed(data: Any, removed: dict[str, str]) -> Any:
    """A recipe that still names a removed or renamed key fails with what to do instead, not with
    pydantic's bare "extra inputs are not permitted"."""
    for key in removed.keys() & (data.keys() if isinstance(data, dict) else set()):
        raise ValueError(removed[key])
    return data


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of this input in the manifest.")
    kind: Literal["corpus", "chat", "sql", "replay"] = Field(
        description="corpus: folder/file of .txt .md .html .jsonl; chat: JSONL messages or prompt/response; "
                    "sql: JSONL question/sql/database pairs; replay: the base model's answers to general prompts.")
    path: str | None = Field(None, description="File or folder (replay: cache file, default <out_dir>/replay.jsonl).")
    role: Literal["domain", "general", "instruction"] = Field("domain", description="Role in the mix (training/mix.py).")
    schema_source: Literal["live", "ddl"] = Field("live", description="sql: introspect the configured database (as served) or use the sample DDL.")
    examples_path: str | None = Field(None, description="sql: file serving retrieves examples from (default: path).")
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard of word 5-shingles above which a sample is a near duplicate (1 = off).")
    limit: int | None = Field(None, ge=1, description="Use only the first N samples (after cleaning).")
    replay_prompts: int | None = Field(None, ge=1, description="replay: how many of the project's general prompts to answer.")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return _refuse_removed(data, _QUESTION_SAMPLES)


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(5.0, ge=0, description="General loss tokens per domain loss token (1:5 → 5).")
    mip_fraction: float = Field(0.0, ge=0, lt=1, description="Share of the mix's loss tokens that are instruction pairs (MIP).")
    domain_repeat: int = Field(1, ge=1, description="Times each domain sample appears in the mix.")
    max_repeat: int = Field(1, ge=1, description="Max passes over a general/instruction pool that is too small.")
    seed: int = Field(0, description="Seed of every shuffle (mix, validation split, batch order).")
    min_chars: int = Field(16, ge=0, description="Drop samples shorter than this (characters).")
    max_chars: int = Field(20000, ge=1, description="Drop samples longer than this (characters, after chunking).")
    chunk_chars: int = Field(4000, ge=64, description="Cut corpus documents at paragraphs into pieces of at most this.")
    val_fraction: float = Field(0.05, ge=0, lt=0.5, description="Held-out share of the mix for validation loss (at most 64 samples).")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = Field("lora", description="LoRA adapter (keeps the chat model's behaviour) or full fine-tuning.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (costs ~2 s/step on 2 CPU cores; 0 by default).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get adapters.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW), after linear warmup, cosine decay to 10%.")
    warmup_steps: int = Field(5, ge=0, description="Linear warmup, in optimizer steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training mix.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(8, ge=1, description="Samples per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    seq_len: int = Field(2048, ge=16, description="Max tokens of one sample / packed row.")
    share_prefix: bool = Field(True, description="Compute a prompt prefix shared by a batch (the schema) once.")
    prompt_grad: bool = Field(True, description="Backpropagate through the prompt of shared-prefix batches. False: the prompt "
                              "(schema, question, drafts) runs once without gradients and only the answer tokens are "
                              "differentiated (training/loop.py _answer_loss): same loss, a fraction of the compute.")
    grad_clip: float = Field(1.0, gt=0, description="Gradient norm clip.")
    eval_every: int = Field(20, ge=1, description="Validation loss every N optimizer steps.")
    save_every: int = Field(20, ge=1, description="Checkpoint every N optimizer steps (atomic; --resume continues from it).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    patience: int | None = Field(3, ge=1, description="Early stop after N evaluations without a better validation loss (None: never).")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: all cores this process may use).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA if present (bf16), else CPU (fp32).")
    seed: int = Field(0, description="Seed of the adapter initialisation.")
    gradient_checkpointing: bool = Field(False, description="Keep only each layer's input for backward and recompute the "
                                         "rest (activation memory ~layers x smaller; +2·N FLOPs per token, ~50% more for LoRA). Needs "
                                         "share_prefix: false (a shared-prefix KV cache cannot be recomputed).")
    quantize_base: Literal["nf4"] | None = Field(None, description="QLoRA: the frozen base in 4-bit NF4 (bitsandbytes, "
                                                 "CUDA only; method lora). Weights take ~0.26x their bf16 memory.")

    @model_validator(mode="after")
    def _check_memory_options(self) -> "TrainConfig":
        if self.gradient_checkpointing and self.share_prefix:
            raise ValueError("train.gradient_checkpointing recomputes each layer during backward, which the shared-"
                             "prefix KV cache of share_prefix: true cannot go through: set train.share_prefix: false")
        if self.quantize_base and self.method != "lora":
            raise ValueError(f"train.quantize_base: {self.quantize_base} freezes a 4-bit base for LoRA: set "
                             f"train.method: lora (it is {self.method})")
        return self


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quant_types: list[str] = Field(default_factory=lambda: ["Q8_0", "Q4_K_M"], description="llama.cpp quantizations to produce.")
    check_prompts: int = Field(8, ge=1, description="Held-out prompts used to compare each quantization with f16.")
    serve_quant: str = Field("Q8_0", description="Quantization registered for `hearth serve`.")
    tokenizer_pre: str | None = Field(None, description="BPE pre-tokenizer name (e.g. llama-bpe, qwen2) for a vocabulary "
                                      "llama.cpp's converter does not recognise (as `hearth export --tokenizer-pre`).")


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: list[str] = Field(default_factory=lambda: ["sample"],
                           description="Text-to-SQL sets: sample, defog, defog_basic, defog_advanced, defog_idk, "
                                       "or a pairs .jsonl file (question/sql/database lines; see `databases`).")
    sql_limit: int | None = Field(40, ge=1, description="Questions per SQL set, spread over categories (None: all); "
                                                         "~3 s each per GGUF variant on 2 cores with SmolLM2-135M.")
    sql_variants: list[str] | None = Field(None, description="Variants whose Text-to-SQL accuracy is measured, by name "
                                           "(base, adapted, Q8_0...; None: every GGUF variant). MC runs on all.")
    sql_modes: list[Literal["constrained", "unconstrained"]] = Field(
        default_factory=lambda: ["constrained"], description="Decoding modes scored (constrained: as served by default).")
    databases: str | None = Field(None, description="Hearth settings YAML whose `databases:` the pairs files run on.")
    mc: list[str] = Field(default_factory=lambda: ["general"],
                          description="Multiple-choice sets: general (the bundled set) or .jsonl files.")
    mc_limit: int | None = Field(100, ge=1, description="Questions per multiple-choice set (None: all).")
    open_ended: bool = Field(False, description="Generate open-ended answers of every variant for blind review.")
    review_db: str | None = Field(None, description="Blind-review store (SQLite) answers are exported to and grades read from.")
    review_key: str | None = Field(None, description="Blind id → variant key of review_db (default: <review_db stem>.key.json beside it).")
    n_ctx: int = Field(4096, ge=512, description="Context of the evaluation server (defog's largest schema is ~1,600 tokens).")
    sql_settings: dict[str, Any] = Field(
        default_factory=dict, description="The evaluation server's `sql:` settings (server/settings.py SqlSettings), "
        "over the recipe's serve.sql; on the command line --sql-setting KEY=VALUE, e.g. template_first=false.")
    defog_dir: str | None = Field(None, description="defog sql-eval data folder (default ../shared/data/defog).")

    @field_validator("sql_settings")
    @classmethod
    def _known_sql_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        SqlSettings(**value)  # unknown keys and bad values fail here, before any model loads
        return value


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enforce: bool = Field(True, description="Register only when the gate passes (false: register anyway, reasons printed).")
    candidate: str | None = Field(None, description="Variant to be served (default: export.serve_quant, e.g. Q8_0).")
    reference: str = Field("adapted", description="Unquantized variant the candidate's SQL accuracy is compared with.")
    base: str = Field("base", description="Variant the general multiple-choice accuracy is compared with.")
    sql_split: str | None = Field(None, description="SQL set the SQL checks read (None: the first set the "
                                  "evaluation measured, i.e. the first of eval.sql, such as your own pairs file).")
    max_quant_drop_points: float | None = Field(
        1.0, ge=0, description="Candidate SQL EX at most this many points below the reference (None: no check).")
    must_beat_baseline: bool = Field(True, description="Candidate SQL EX strictly above the template baseline's.")
    max_base_drop_points: float | None = Field(
        0.0, ge=0, description="Candidate SQL EX at most this many points below the base variant's (the un-adapted "
        "model served with the same settings; 0: it must not lose to it, a tie passes, because with "
        "sql.template_first both answer the questions templates fit alike; None: no check).")
    on_unseen_shapes: bool = Field(True, description="must_beat_baseline and max_base_drop_points also hold on the "
                                   "split's questions of SQL shapes no training pair has (seen_shape: false); "
                                   "skipped for a split without those labels.")
    max_general_drop_points: float | None = Field(
        2.0, ge=0, description="General MC accuracy at most this many points below the base (None: no check).")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return _refuse_removed(data, _MUST_BEAT_BASE)


class ServeConfig(BaseModel):
    """What the pipeline writes into the run's serve.yaml besides the model, and what training and
    evaluation assume of serving: one declaration of each option, the server's own."""
    model_config = ConfigDict(extra="forbid")

    sql: SqlSettings = Field(default_factory=SqlSettings, description="The served `sql:` settings (server/settings.py "
                             "SqlSettings). Training builds its prompts with them (few_shot_k, draft, max_prompt_tables, "
                             "schema_templates), and every evaluation of the run serves with them.")


class VocabConfig(BaseModel):
    """`hearth vocab`: domain tokens added to the base tokenizer. The pipeline does not run it; point
    `base_model` at the folder it writes (training/README.md, "Vocabulary expansion")."""
    model_config = ConfigDict(extra="forbid")

    n_tokens: int = Field(64, ge=1, le=4096, description="Domain tokens to add (the best by count × tokens saved).")
    min_count: int = Field(5, ge=1, description="Ignore strings seen fewer times in the domain texts.")
    min_pieces: int = Field(2, ge=2, description="Only strings the base tokenizer splits into at least this many tokens.")
    heldout_every: int = Field(10, ge=2, description="Without --heldout, every N-th domain text is held out of mining "
                                                     "and training, for the tokens-per-character figure.")
    train_steps: int = Field(40, ge=0, description="Steps training only the new embedding rows (0: mean init only; "
                                                   "~2.5 s each for SmolLM2-135M on 2 cores, batch 8).")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate of the new rows.")
    batch_size: int = Field(8, ge=1, description="Texts per step of the embedding phase.")
    seq_len: int = Field(128, ge=8, description="Tokens kept per text in the embedding phase.")
    out: str | None = Field(None, description="Expanded base model folder (default <HEARTH_DATA_DIR or var>/vocab/<name>).")


class Recipe(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARTH_", env_nested_delimiter="__", extra="forbid")

    name: str = Field("domain", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run and served model name.")
    base_model: str = Field(EMBEDDED, description="HF model directory, a GGUF file (dequantized), or embedded:smollm2.")
    out_dir: str | None = Field(None, description="Run folder (default var/runs/<name>).")
    sources: list[Source] = Field(default_factory=list, description="Inputs (see Source).")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    vocab: VocabConfig = Field(default_factory=VocabConfig)

    @model_validator(mode="after")
    def _check(self) -> "Recipe":
        if not any(s.role == "domain" for s in self.sources) and self.sources:
            raise ValueError("sources: at least one source needs role: domain")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources: names must be unique, got {names}")
        return self

    def run_dir(self) -> Path:
        return Path(self.out_dir or f"var/runs/{self.name}")

    def served_sql(self) -> dict:
        """The `sql:` settings the run is served and evaluated with: those serve.sql sets, and a token
        budget that fits the longest trained answer. {} without a sql source (the server's defaults)."""
        src = next((s for s in self.sources if s.kind == "sql"), None)
        if src is None:
            return {}
        served = self.serve.sql.model_dump(exclude_unset=True)
        budget = self.answer_token_budget(src.name)
        if budget and "max_new_tokens" not in served:
            served["max_new_tokens"] = budget
        return served

    def answer_token_budget(self, source: str) -> int | None:
        """sql.max_new_tokens for a source whose longest trained answer would not fit serving's
        default budget (with 25% room), from the prepared data's manifest; None when it fits. A
        budget shorter than a trained answer cuts the query mid-way: unclosed '(' at serving."""
        manifest = self.run_dir() / "data" / "manifest.json"
        if not manifest.exists():
            return None
        longest = json.loads(manifest.read_text())["sources"].get(source, {}).get("longest_answer_tokens", 0)
        need = -(-int(longest * 1.25) // 32) * 32  # rounded up to 32 tokens
        return need if need > SqlSettings.model_fields["max_new_tokens"].default else None

    def eval_config(self, **overrides) -> "EvalConfig":
        """The eval settings, served as the run is (served_sql, under eval.sql_settings), then
        `overrides` (command-line flags; their sql_settings over all the others)."""
        sql = merge_sql_settings(self.served_sql(), self.eval.sql_settings, overrides.pop("sql_settings", {}))
        return EvalConfig(**(self.eval.model_dump() | overrides | {"sql_settings": sql}))

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings, file_secret_settings):
        return init_settings, env_settings  # the YAML is merged into init below, under the CLI


def merge_sql_settings(*layers: dict) -> dict:
    """`sql:` settings layers, later over earlier. A layer that turns sql.template_first off drops
    the template options of the layers below (they would act on nothing, which SqlSettings rejects)."""
    out: dict = {}
    for layer in layers:
        if layer.get("template_first") is False:
            out = {k: v for k, v in out.items() if k != "template_shapes"}
        out |= layer
    SqlSettings(**out)
    return out


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        tree = tree.setdefault(k, {})
    tree[keys[-1]] = value


def _deep_merge(low: dict, high: dict) -> dict:
    out = dict(low)
    for k, v in high.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_recipe(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Recipe:
    """Recipe from YAML plus CLI overrides ("train.lr=1e-4" strings, values parsed as YAML).

    Environment variables sit between the two: pydantic-settings gives init values priority over
    env, so only the CLI goes into init, and YAML values that env also sets are dropped here.
    """
    import os

    file_values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"recipe {p} does not exist")
        file_values = yaml.safe_load(p.read_text()) or {}
        if not isinstance(file_values, dict):
            raise ValueError(f"recipe {p}: expected a mapping at the top level")
    cli: dict = {}
    if isinstance(overrides, dict):
        cli = overrides
    else:
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
            key, value = item.split("=", 1)
            _set_path(cli, key.strip(), yaml.safe_load(value))
    # env > YAML: remove from the YAML layer every key an HEARTH_* variable sets.
    for var in os.environ:
        if var.startswith("HEARTH_"):
            keys = var[len("HEARTH_"):].lower().split("__")
            node = file_values
            for k in keys[:-1]:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(keys[-1], None)
    return Recipe(**_deep_merge(file_values, cli))
