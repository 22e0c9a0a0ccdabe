"""`hearth export --lora`: a trained peft LoRA adapter → a GGUF LoRA adapter, via llama.cpp's converter.

The server applies such a file on top of its base model's GGUF at load time (one llama_model, one
context per adapter: server/engine/adapters.py), so several domain adapters share one copy of the
base weights. The conversion is llama.cpp's own convert_lora_to_gguf.py from the same
llama-cpp-python sdist as the compiled library (quantize/converter.py; the Makefile installs it).
It needs the base model's config.json only, never its weights: `base` is a Hugging Face folder,
a GGUF or `embedded:smollm2` (materialized as training does, training/model.py), or, by default,
the folder the adapter was trained on (adapter_config.json's base_model_name_or_path).

What llama.cpp's LoRA adapters cannot hold is refused before anything is written, naming it:
full copies of modules (peft's modules_to_save, e.g. embeddings grown by `hearth vocab`: merge and
export the model instead), DoRA, rsLoRA and per-module alphas (llama.cpp scales every tensor by
alpha / rank). As `hearth export`: atomic (a temporary file renamed onto `out` once checked), and
a manifest `<out stem>-export.json` beside it with size, sha256, the adapter's rank and alpha, the
converter's version and the source files' sha256.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

from training.io import atomic_path, sha256_file, write_json

from .converter import INSTALL_HINT, OUTTYPES, Converter, ConverterMissing, check_supported, find_converter
from .export import manifest_path, source_files

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


class LoraExportError(ValueError):
    """The adapter cannot become a llama.cpp LoRA adapter; the message says why."""


def adapter_config(adapter_dir: Path) -> dict:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json (a peft LoRA adapter folder is needed, "
                                "e.g. <run>/adapter written by `hearth train`)")
    return json.loads(path.read_text())


def safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header (8-byte length, then JSON), without loading any weight."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return [k for k in header if k != "__metadata__"]


def check_adapter(adapter_dir: Path) -> dict:
    """The adapter's config, refused (LoraExportError naming the problem) where llama.cpp cannot serve it."""
    config = adapter_config(adapter_dir)
    where = f"{adapter_dir}"
    if config.get("peft_type", "LORA") != "LORA":
        raise LoraExportError(f"{where}: a {config['peft_type']} adapter; llama.cpp serves LoRA adapters only")
    if config.get("use_dora"):
        raise LoraExportError(f"{where}: a DoRA adapter (use_dora); llama.cpp's LoRA adapters have no magnitude "
                              "vectors: merge and export the model instead (hearth merge, hearth export)")
    if config.get("use_rslora"):
        raise LoraExportError(f"{where}: an rsLoRA adapter (use_rslora, scale alpha/sqrt(r)); llama.cpp scales by "
                              "alpha/r: merge and export the model instead (hearth merge, hearth export)")
    if config.get("alpha_pattern"):
        raise LoraExportError(f"{where}: per-module alphas (alpha_pattern {sorted(config['alpha_pattern'])}); "
                              "llama.cpp applies one alpha to every tensor")
    weights = next((adapter_dir / n for n in ADAPTER_WEIGHTS if (adapter_dir / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{adapter_dir}: no {' or '.join(ADAPTER_WEIGHTS)}")
    if weights.suffix == ".safetensors":
        # the converter skips peft's copies of base weights (.base_layer.) and keeps norms (mergekit)
        full = [n for n in safetensors_names(weights)
                if ".lora_" not in n and ".base_layer." not in n and "_layernorm" not in n and ".norm" not in n]
        if full:
            raise LoraExportError(
                f"{where}: the adapter holds full module weights besides LoRA A/B ({', '.join(full[:3])}"
                f"{', ...' if len(full) > 3 else ''}; peft's modules_to_save, e.g. embeddings grown by `hearth vocab`), "
                "which a llama.cpp LoRA adapter cannot carry: merge and export the model instead "
                "(hearth merge, hearth export)")
    return config


def resolve_base(adapter_dir: Path, base: str | Path | None, config: dict) -> Path:
    """The base model's HF folder (config.json is what the converter reads)."""
    if base is None:
        named = config.get("base_model_name_or_path")
        if not named or not (Path(named) / "config.json").is_file():
            raise LoraExportError(
                f"{adapter_dir}: its base model ({named!r} in adapter_config.json) is not a local Hugging Face "
                "folder: name the base it was trained on with --base (a folder, a GGUF or embedded:smollm2)")
        return Path(named)
    from training.model import materialize_base

    path = materialize_base(str(base))  # a folder as is; a GGUF (or embedded:smollm2) dequantized once, cached
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json (the base model's Hugging Face folder is needed)")
    return path


def lora_converter(conv: Converter) -> Path:
    script = conv.root / "convert_lora_to_gguf.py"
    if not script.is_file():
        raise ConverterMissing(f"llama.cpp's LoRA converter is not installed in {conv.root}: {INSTALL_HINT}")
    return script


def run_lora_converter(adapter_dir: Path, base_dir: Path, outfile: Path, *, outtype: str, conv: Converter,
                       timeout: float | None = None) -> str:
    """convert_lora_to_gguf.py adapter_dir → outfile; returns its log, raises naming the problem on failure."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_LOCAL_GGUF", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(lora_converter(conv)), str(adapter_dir.resolve()), "--base", str(base_dir.resolve()),
           "--outfile", str(Path(outfile).resolve()), "--outtype", outtype]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout)
    log = proc.stdout
    if proc.returncode != 0:
        lines = log.strip().splitlines()
        errors = [ln.split(":", 2)[-1].strip() for ln in lines if ln.startswith("ERROR:")]
        if not errors:  # an exception: its last line names it
            errors = [next((ln for ln in reversed(lines) if ln.strip() and not ln.startswith(" ")), "no output")]
        tail = "\n".join(lines[-12:])
        raise LoraExportError(f"llama.cpp's LoRA converter (llama-cpp-python {conv.version}) failed on {adapter_dir} "
                              f"(exit {proc.returncode}): {'; '.join(errors)}\n{tail}")
    return log


def gguf_adapter_info(path: Path) -> dict:
    """The adapter keys and tensor count of a written GGUF LoRA file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str):
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    return {"type": value("general.type"), "adapter_type": value("adapter.type"),
            "alpha": value("adapter.lora.alpha"), "architecture": value("general.architecture"),
            "tensors": len(reader.tensors)}


def _modules(target) -> list[str] | str | None:
    return target if isinstance(target, str) or target is None else sorted(target)  # peft allows a regex


def export_lora(adapter_dir: str | Path, out: str | Path, *, base: str | Path | None = None,
                outtype: str = "f16") -> dict:
    """Writes the GGUF LoRA adapter `out` atomically (and its manifest beside it); returns the manifest."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r}: the LoRA converter writes one of {', '.join(OUTTYPES)}")
    config = check_adapter(adapter_dir)  # refused here: nothing written
    base_dir = resolve_base(adapter_dir, base, config)
    conv = find_converter()
    arch = check_supported(base_dir, conv)
    weights = next(adapter_dir / n for n in ADAPTER_WEIGHTS if (adapter_dir / n).is_file())
    names = safetensors_names(weights) if weights.suffix == ".safetensors" else None
    n_pairs = None if names is None else sum(1 for n in names if ".lora_A." in n or ".lora_embedding_A" in n)
    tied = json.loads((base_dir / "config.json").read_text()).get("tie_word_embeddings")
    if tied and names is not None and any("lm_head.lora_" in n for n in names):
        # the converter writes output.weight's A/B, which llama.cpp cannot find in a tied model's GGUF
        raise LoraExportError(f"{adapter_dir}: the adapter adapts lm_head, but the base ties it to the token "
                              "embeddings (tie_word_embeddings), so its GGUF has no output matrix to adapt: train "
                              "without lm_head in target_modules, or merge and export the model instead")
    t0 = time.perf_counter()
    with atomic_path(out) as tmp:
        run_lora_converter(adapter_dir, base_dir, tmp, outtype=outtype, conv=conv)
        info = gguf_adapter_info(tmp)
        if info["type"] != "adapter" or info["adapter_type"] != "lora":
            raise LoraExportError(f"{adapter_dir}: the converter wrote general.type={info['type']!r}, "
                                  f"adapter.type={info['adapter_type']!r}, not a LoRA adapter")
        if n_pairs is not None and info["tensors"] != 2 * n_pairs:
            raise LoraExportError(f"{adapter_dir}: {n_pairs} LoRA A/B pairs in the adapter, {info['tensors']} tensors "
                                  "in the GGUF (each pair must give one .lora_a and one .lora_b)")
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    manifest = {"path": str(out), "bytes": size, "sha256": digest, "outtype": outtype, "kind": "lora",
                "architecture": arch, "seconds": round(time.perf_counter() - t0, 2), "tensors": info["tensors"],
                "lora": {"r": config.get("r"), "alpha": config.get("lora_alpha"),
                         "rank_pattern": config.get("rank_pattern") or None,
                         "target_modules": _modules(config.get("target_modules"))},
                "base": {"dir": str(base_dir.resolve()), "config_sha256": sha256_file(base_dir / "config.json")},
                "converter": conv.describe(),
                "source": {"dir": str(adapter_dir.resolve()), "files": source_files(adapter_dir)}}
    write_json(manifest_path(out), manifest)
    return manifest
