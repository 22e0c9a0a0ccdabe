"""`hearth <verb>`: one CLI for the whole appliance, like `vllm serve` or `llamafactory-cli train`.

Flags are generated from the settings fields, so their help text is written once (on the
Field). Verbs from other packages are imported only when used: `hearth serve` never imports
torch, and `hearth --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import UnionType
from typing import Any, Sequence, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

# verb → (module, help). Modules expose `add_arguments(parser)` and `run(args) -> int`.
VERBS: dict[str, tuple[str, str]] = {
    "serve": ("server.cli", "Serve the OpenAI-compatible API and Text-to-SQL endpoint."),
    "doctor": ("server.doctor", "Check this machine, the settings, models and databases before serving."),
    "bundle": ("server.bundle.cli", "Build one tarball that installs Hearth on a machine with no network."),
    "sample": ("server.sql.sample.__main__", "Build the embedded sample database (SQLite, PostgreSQL, MariaDB)."),
    "plan": ("training.cli", "Recommend a training recipe for the data and this hardware."),
    "data": ("training.cli", "Clean, mix and tokenize the training data; write its manifest."),
    "train": ("training.cli", "Train a LoRA (or full) domain adapter from a recipe."),
    "vocab": ("training.vocab", "Add domain tokens to the base tokenizer; report the tokens-per-character gain."),
    "merge": ("quantize.cli", "Merge a LoRA adapter into its base model."),
    "export": ("quantize.cli", "Convert a Hugging Face model directory to GGUF."),
    "quantize": ("quantize.cli", "Quantize a GGUF and check it against the unquantized model."),
    "eval": ("training.evaluation.cli", "Evaluate model variants (Text-to-SQL, multiple choice, open-ended); report and gate."),
    "pipeline": ("quantize.pipeline", "Run data → train → merge → export → quantize → eval → register from a recipe."),
}

# ServerSettings fields that have flags (nested sections are set via YAML or HEARTH_X__Y env vars).
SERVER_FLAGS = ("host", "port", "api_keys", "api_keys_file", "allow_unauthenticated_public", "cors_origins",
                "log_level", "default_model", "stream_interval", "drain_timeout_s", "vllm_metrics")
# ModelConfig fields: `--model` is the path and `--model-name` the name; the rest keep their names.
MODEL_FLAG_NAMES = {"path": "model", "name": "model-name"}


def add_fields(parser: argparse.ArgumentParser, model: type[BaseModel], names: Sequence[str] | None = None,
               rename: dict[str, str] | None = None, dest_prefix: str = "") -> None:
    """One flag per pydantic field, help from the field's description. Defaults stay None so that
    an absent flag never overrides env or YAML."""
    rename = rename or {}
    for name, field in model.model_fields.items():
        if names is not None and name not in names:
            continue
        flag = "--" + rename.get(name, name.replace("_", "-"))
        help_ = field.description or ""
        annotation = field.annotation
        # An optional field (`list[str] | None`, `int | None`) takes its flag from the type it holds.
        inner = [a for a in get_args(annotation) if a is not type(None)] \
            if get_origin(annotation) in (Union, UnionType) else [annotation]
        kwargs: dict[str, Any] = {"dest": dest_prefix + name, "default": None, "help": help_}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(inner[0]) is list:
            kwargs.update(nargs="+", metavar=name.upper().rstrip("S"))
        elif inner[0] in (int, float):
            kwargs["type"] = inner[0]
        parser.add_argument(flag, **kwargs)


def add_arguments(parser: argparse.ArgumentParser, verb: str = "serve") -> None:
    from .settings import ModelConfig, ServerSettings

    parser.add_argument("--config", default=None, help="YAML settings file (also HEARTH_CONFIG).")
    add_fields(parser, ServerSettings, SERVER_FLAGS)
    group = parser.add_argument_group("model (overrides the first entry of the model registry)")
    add_fields(group, ModelConfig, rename=MODEL_FLAG_NAMES, dest_prefix="model__")


def build_settings(args: argparse.Namespace):
    from .settings import ModelConfig, load_settings

    server = {k: getattr(args, k) for k in SERVER_FLAGS}
    model_flags = {k[len("model__"):]: v for k, v in vars(args).items() if k.startswith("model__") and v is not None}
    settings = load_settings(args.config, **server)
    if model_flags:
        first = settings.models[0].model_dump() | model_flags
        settings = load_settings(args.config, **server, models=[ModelConfig(**first), *settings.models[1:]])
    return settings


def run(args: argparse.Namespace, verb: str = "serve") -> int:
    from .app import create_app
    from .drain import serve
    from .engine.gguf_file import check_gguf

    settings = build_settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for model in settings.models:  # a missing, foreign or cut-short file stops the start, not the first request
        try:
            check_gguf(model.resolved_path())
        except ValueError as exc:  # BadModelFile, or a path that names no model file
            print(f"hearth serve: model {model.name!r}: {exc}", file=sys.stderr)
            return 1
    app = create_app(settings)
    # A reload (SIGHUP, POST /admin/reload) reads the flags, env and YAML again, as here.
    app.state.reloader.source = lambda: build_settings(args)
    # SIGTERM/SIGINT drain (server/drain.py): /ready 503, in-flight requests get drain_timeout_s to
    # finish, then exit 0. A stop (systemd, Kubernetes) never waits on a long generation past that.
    return serve(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth: an on-premise LLM appliance.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_) in VERBS.items():
        sub.add_parser(verb, help=help_, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    verb = argv[0]
    module_name = VERBS[verb][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"hearth {verb}: not available in this install ({exc}). "
              "Install the matching extra, e.g. pip install -e '.[train]'.", file=sys.stderr)
        return 2
    verb_parser = argparse.ArgumentParser(prog=f"hearth {verb}", description=VERBS[verb][1])
    module.add_arguments(verb_parser, verb)
    args = verb_parser.parse_args(argv[1:])
    try:
        return module.run(args, verb)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"hearth {verb}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
