"""Settings precedence: CLI > env (HEARTH_*) > YAML > default; the refusal to bind publicly without keys."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from server.cli import build_settings, main
from server.settings import EMBEDDED_MODEL, ServerSettings, load_settings, resolve_model_path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("HEARTH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))


def _yaml(tmp_path, data) -> str:
    path = tmp_path / "hearth.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_defaults():
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.models[0].path == EMBEDDED_MODEL


def test_precedence_cli_over_env_over_yaml_over_default(tmp_path, monkeypatch):
    cfg = _yaml(tmp_path, {"port": 7001, "log_level": "warning", "sql": {"max_attempts": 5}})
    s = load_settings(cfg)
    assert (s.port, s.log_level, s.sql.max_attempts) == (7001, "warning", 5)
    monkeypatch.setenv("HEARTH_PORT", "7002")
    monkeypatch.setenv("HEARTH_SQL__MAX_ATTEMPTS", "2")
    s = load_settings(cfg)
    assert (s.port, s.log_level, s.sql.max_attempts) == (7002, "warning", 2)
    s = load_settings(cfg, port=7003)
    assert s.port == 7003
    assert load_settings(cfg, port=None).port == 7002  # an absent CLI flag does not override


def test_cli_flags_are_generated_from_fields(tmp_path, monkeypatch):
    cfg = _yaml(tmp_path, {"models": [{"name": "a", "path": "x.gguf", "n_ctx": 4096}]})
    monkeypatch.setenv("HEARTH_CONFIG", cfg)
    import argparse

    from server.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "9001", "--n-slots", "2", "--api-keys", "a", "b", "--stream-interval", "3"])
    s = build_settings(args)
    assert s.port == 9001 and s.api_keys == ["a", "b"] and s.stream_interval == 3
    # The model flag overrides one field of the YAML's first model and keeps the others.
    assert (s.models[0].name, s.models[0].n_ctx, s.models[0].n_slots) == ("a", 4096, 2)
    assert "Concurrent sequences batched together." in parser.format_help()


def test_unknown_keys_are_rejected(tmp_path):
    with pytest.raises(ValidationError):
        load_settings(_yaml(tmp_path, {"prot": 1}))


def test_public_bind_without_keys_is_refused():
    with pytest.raises(ValidationError, match="refusing to listen on 0.0.0.0"):
        ServerSettings(host="0.0.0.0", databases=[])
    assert ServerSettings(host="0.0.0.0", api_keys=["k"], databases=[]).host == "0.0.0.0"
    assert ServerSettings(host="0.0.0.0", allow_unauthenticated_public=True, databases=[]).host == "0.0.0.0"


def test_serve_refuses_public_bind_from_the_command_line():
    r = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0" in r.stderr


def test_model_paths(tmp_path):
    assert resolve_model_path(EMBEDDED_MODEL) == tmp_path / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    assert resolve_model_path(EMBEDDED_MODEL + ":Q4_1").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model_path(str(tmp_path)) == tmp_path / "m.gguf"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="hearth export"):
        resolve_model_path(str(hf))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model_path(str(tmp_path / "missing.gguf"))


def test_help_is_fast_and_server_never_imports_torch():
    code = ("import sys, server.cli, server.app, server.engine.llama_engine, server.services.chat; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr
    assert main(["--help"]) == 0


def test_a_removed_sql_option_loads_with_a_warning_naming_it(tmp_path):
    import warnings

    cfg = _yaml(tmp_path, {"sql": {"drafts": 1, "rerank": 0, "draft": True}})  # an older pipeline's serve.yaml
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = load_settings(cfg)
    assert settings.sql.draft is True
    said = " ".join(str(w.message) for w in caught)
    assert "sql.drafts" in said and "sql.rerank" in said and "removed" in said
    with pytest.raises(ValidationError):  # an unknown key is still an error
        load_settings(_yaml(tmp_path, {"sql": {"draftz": 1}}))


@pytest.mark.parametrize("removed", [{"template_choice": "model", "template_edits": True, "edit_penalty": 2.0},
                                     {"template_choice": "nearest"}])
def test_the_removed_template_choice_options_warn_and_are_ignored(tmp_path, removed):
    import warnings

    # A serve.yaml of the default recipe before 2026-12-07 (or after, naming the kept default).
    cfg = _yaml(tmp_path, {"sql": {"template_first": True, "template_shapes": 12, **removed}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = load_settings(cfg)
    said = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert sorted(k for k in removed if any(f"sql.{k} " in m and "removed" in m for m in said)) == sorted(removed)
    assert settings.sql.template_first is True and settings.sql.template_shapes == 12
    assert not {"template_choice", "template_edits", "edit_penalty"} & set(settings.sql.model_dump())


def test_template_options_without_templates_are_errors_naming_the_switch(tmp_path):
    with pytest.raises(ValidationError, match="template_first"):
        load_settings(_yaml(tmp_path, {"sql": {"template_first": False, "template_shapes": 4}}))
