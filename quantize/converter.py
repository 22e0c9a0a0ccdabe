"""llama.cpp's own HF → GGUF converter (convert_hf_to_gguf.py), as installed by the Makefile.

`make install-train` unpacks vendor/llama.cpp's convert_hf_to_gguf.py, conversion/ and gguf-py/
from the llama-cpp-python sdist of the version pinned in pyproject.toml into
<venv>/share/hearth/llama.cpp-convert, with hearth-vendor.json naming that version. So the
converter and the compiled library always agree on the GGUF format, and nothing is fetched at run
time (HF_HUB_OFFLINE is set for the converter too).

It runs as a subprocess: as a script it puts its bundled gguf-py ahead of PyPI's `gguf` (0.19.0 on
PyPI lacks LazyChunkedTensor), while this process keeps PyPI's for transformers' GGUF loading.
The subprocess costs about 3 s of interpreter, torch and transformers start-up per export.
HEARTH_LLAMA_CONVERTER overrides the folder.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONVERTER_ENV = "HEARTH_LLAMA_CONVERTER"
OUTTYPES = ("f16", "bf16", "q8_0", "f32")  # what convert_hf_to_gguf.py writes itself
INSTALL_HINT = "run `make install-train` (it installs llama.cpp's converter into the venv)"


class ConverterMissing(RuntimeError):
    """No converter, or one from another llama-cpp-python version than the installed library."""


class UnsupportedArchitecture(ValueError):
    """The model's architecture is not one llama.cpp's converter knows."""


@dataclass(frozen=True)
class Converter:
    root: Path
    version: str
    sdist_sha256: str

    @property
    def script(self) -> Path:
        return self.root / "convert_hf_to_gguf.py"

    def describe(self) -> dict:
        return {"llama_cpp_python": self.version, "sdist_sha256": self.sdist_sha256, "root": str(self.root)}


def default_root() -> Path:
    return Path(os.environ.get(CONVERTER_ENV) or Path(sys.prefix) / "share" / "hearth" / "llama.cpp-convert")


def find_converter(root: str | Path | None = None) -> Converter:
    from importlib.metadata import PackageNotFoundError, version

    root = Path(root) if root else default_root()
    info = root / "hearth-vendor.json"
    if not (info.is_file() and (root / "convert_hf_to_gguf.py").is_file() and (root / "gguf-py" / "gguf").is_dir()):
        raise ConverterMissing(f"llama.cpp's converter is not installed in {root}: {INSTALL_HINT}")
    meta = json.loads(info.read_text())
    try:
        library = version("llama-cpp-python")
    except PackageNotFoundError:
        library = None
    if library != meta["llama_cpp_python"]:
        raise ConverterMissing(f"the converter in {root} is from llama-cpp-python {meta['llama_cpp_python']}, the "
                               f"installed library is {library}: {INSTALL_HINT}")
    return Converter(root, meta["llama_cpp_python"], meta.get("sdist_sha256", ""))


@lru_cache(maxsize=4)
def supported_architectures(root: Path) -> frozenset[str]:
    """The HF architectures (config.json `architectures`) the converter maps to a text model.

    Read from conversion/__init__.py's TEXT_MODEL_MAP without importing it (its import needs the
    bundled gguf-py)."""
    tree = ast.parse((root / "conversion" / "__init__.py").read_text())
    for node in tree.body:
        target = (node.target if isinstance(node, ast.AnnAssign) else
                  node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP":
            return frozenset(ast.literal_eval(node.value))
    raise RuntimeError(f"{root}/conversion/__init__.py: no TEXT_MODEL_MAP (converter layout changed?)")


def architecture(config: dict) -> str | None:
    """The architecture the converter will pick (as its get_model_architecture, text models)."""
    arch = (config.get("architectures") or [None])[0]
    sub = (config.get("text_config") or {}).get("architectures")
    return sub[0] if sub else arch


def check_supported(model_dir: Path, conv: Converter) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    arch = architecture(config)
    if arch is None:
        raise UnsupportedArchitecture(f"{model_dir}/config.json names no `architectures` (model_type "
                                      f"{config.get('model_type')!r}): llama.cpp's converter needs one")
    if arch not in supported_architectures(conv.root):
        raise UnsupportedArchitecture(
            f"{model_dir}: architecture {arch} (model_type {config.get('model_type')!r}) is not supported by "
            f"llama.cpp's converter (llama-cpp-python {conv.version}), so llama.cpp cannot serve it")
    return arch


@lru_cache(maxsize=4)
def pre_tokenizers(root: Path) -> tuple[str, ...]:
    """The BPE pre-tokenizer names (tokenizer.ggml.pre) the converter knows."""
    import re

    return tuple(sorted(set(re.findall(r'\bres = "([^"]+)"', (root / "conversion" / "base.py").read_text()))))


# The converter recognises a BPE tokenizer's pre-tokenizer by hashing its tokenization of a fixed
# text; a vocabulary it has not seen (retrained, or e.g. transformers 5 rebuilding a qwen2 model's
# tokenizer with Qwen's regex over another vocabulary) is refused. --tokenizer-pre names the
# pre-tokenizer for that case only; export_gguf then checks that llama.cpp tokenizes as transformers.
_FORCED_PRE = """
import runpy, sys
root, pre = sys.argv[1], sys.argv[2]
sys.path[:0] = [root, root + '/gguf-py']
from conversion.base import TextModel
known = TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        print(f'hearth: pre-tokenizer not recognised, using {pre!r} as asked', flush=True)
        return pre
TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [root + '/convert_hf_to_gguf.py'] + sys.argv[3:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_converter(model_dir: Path, outfile: Path, *, outtype: str, name: str, conv: Converter,
                  tokenizer_pre: str | None = None, timeout: float | None = None) -> str:
    """convert_hf_to_gguf.py model_dir → outfile; returns its log, raises with its tail on failure."""
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r}: the converter writes one of {', '.join(OUTTYPES)} "
                         "(other quantizations: `hearth quantize` on the f16 file)")
    if tokenizer_pre is not None and tokenizer_pre not in pre_tokenizers(conv.root):
        raise ValueError(f"tokenizer_pre {tokenizer_pre!r}: llama.cpp knows {', '.join(pre_tokenizers(conv.root))}")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_LOCAL_GGUF", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    args = [str(Path(model_dir).resolve()), "--outfile", str(Path(outfile).resolve()), "--outtype", outtype,
            "--model-name", name]
    cmd = ([sys.executable, str(conv.script)] if tokenizer_pre is None else
           [sys.executable, "-c", _FORCED_PRE, str(conv.root), tokenizer_pre])
    proc = subprocess.run(cmd + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout)
    log = proc.stdout
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-12:])
        if "is not supported" in log or "not supported!" in log:
            raise UnsupportedArchitecture(f"{model_dir}: llama.cpp's converter (llama-cpp-python {conv.version}) does "
                                          f"not support this model:\n{tail}")
        if "BPE pre-tokenizer was not recognized" in log:
            chkhsh = next((ln.split("chkhsh:")[1].strip() for ln in log.splitlines() if "chkhsh:" in ln), "?")
            raise ValueError(f"{model_dir}: llama.cpp's converter does not recognise this tokenizer's pre-tokenizer "
                             f"(chkhsh {chkhsh}): its vocabulary is not one llama.cpp lists. If its pre-tokenizer is "
                             "a standard one, name it with --tokenizer-pre (e.g. llama-bpe, qwen2, smollm, gpt-2); "
                             "the export then checks that llama.cpp tokenizes as transformers does")
        raise RuntimeError(f"llama.cpp's converter failed on {model_dir} (exit {proc.returncode}):\n{tail}")
    return log
