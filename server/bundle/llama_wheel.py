"""The llama-cpp-python wheel a bundle ships: portable by default, so one bundle runs on any x86-64
(or arm64) CPU instead of dying with SIGILL on a CPU older than the build machine's.

Portable means llama.cpp's runtime CPU dispatch: GGML_NATIVE=OFF, GGML_BACKEND_DL=ON and
GGML_CPU_ALL_VARIANTS=ON build the CPU backend once per instruction-set level
(libggml-cpu-x64.so, -sse42, -haswell, -skylakex, -zen4, ...) and ggml loads the best one the CPU
supports at run time. At the pinned llama-cpp-python (0.3.36) that build compiles, but the wheel
it makes does not run as is (abetlen/llama-cpp-python#2069):

- the variants are installed to `bin/` at the top of site-packages, not beside libggml.so;
- ggml only looks for them beside the executable (for a venv, the base interpreter's directory)
  and in the working directory, and llama-cpp-python never calls ggml_backend_load_all_from_path,
  so loading a model fails with "no backends are loaded".

So the built wheel is repacked: the variants move into llama_cpp/lib/, and llama_cpp/llama_cpp.py
gains a few lines (PATCH below) that load the best variant from that directory right after
libllama. The AMX variant (sapphirerapids) is dropped: on an AMX-capable Xeon VM here llama.cpp's
AMX kernels crashed every multi-token decode (the Makefile builds with -mno-amx-int8 for the same
reason); such CPUs take the AVX-512 zen4/cooperlake variant instead.

The compile takes long (one CPU backend per level), so its raw wheel is cached per version and
flags in ~/.cache/hearth/llama-cpp-python-<version>-portable-<hash>/, like the Makefile's
LLAMA_WHEELS; repacking is cheap and redone when the patch changes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("HEARTH_CACHE", Path.home() / ".cache" / "hearth")).expanduser()
# Keep in step with the Makefile's LLAMA_CMAKE_ARGS (the library only: minutes, not tens of them).
LIBRARY_ONLY = ("-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
                "-DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF")
PORTABLE = "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
DROPPED_VARIANTS = ("sapphirerapids",)  # AMX kernels: see the module docstring
VARIANT = re.compile(r"(?:^|/)libggml-cpu-([\w.]+)\.so$")
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so a repack of the same wheel gives the same bytes

# Appended to llama_cpp/llama_cpp.py in the portable wheel. `_base_path` is the directory it just
# loaded libllama.so from (llama_cpp/lib, or LLAMA_CPP_LIB_PATH).
PATCH = '''

# --- Hearth portable build (server/bundle/llama_wheel.py) ------------------------------------
# This wheel's CPU backend is one libggml-cpu-<level>.so per instruction-set level (GGML_BACKEND_DL,
# GGML_CPU_ALL_VARIANTS). ggml looks for them only beside the executable and in the working
# directory, so load the best one for this CPU from the directory libllama came from. The ggml
# functions are looked up through libllama's handle, which searches its own dependencies: a
# CDLL of lib/libggml.so would load a second copy of ggml (the wheel holds copies, not links),
# with a backend registry of its own that libllama never sees.
def _hearth_load_cpu_backend() -> None:
    ggml = _lib
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    if ggml.ggml_backend_reg_count() == 0:
        ggml.ggml_backend_load_all_from_path(str(_base_path).encode())
    if ggml.ggml_backend_reg_count() == 0:
        raise ImportError(f"llama.cpp found no CPU backend for this CPU in {_base_path} (libggml-cpu-*.so)")


_hearth_load_cpu_backend()
'''
PATCH_ID = hashlib.sha256(PATCH.encode() + repr(DROPPED_VARIANTS).encode()).hexdigest()[:12]


class WheelError(RuntimeError):
    pass


@dataclass
class LlamaWheel:
    path: Path
    kind: str  # "portable", "native" or "given"
    cmake_args: str = ""
    variants: list[str] = field(default_factory=list)
    warning: str = ""

    def manifest(self) -> dict:
        return {"file": self.path.name, "kind": self.kind, "cmake_args": self.cmake_args,
                "cpu_variants": self.variants, "patch": PATCH_ID if self.kind == "portable" else None,
                "warning": self.warning or None}


def pinned_version(src: Path) -> str:
    """llama-cpp-python's pinned version in pyproject.toml (the Makefile reads it the same way)."""
    found = re.search(r'"llama-cpp-python==([0-9.]+)"', (src / "pyproject.toml").read_text())
    if not found:
        raise WheelError(f"{src / 'pyproject.toml'} pins no llama-cpp-python==<version>")
    return found.group(1)


def cpu_args() -> str:
    """The Makefile's LLAMA_CPU_ARGS: on x86, no AMX kernels (see the module docstring)."""
    return "-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8" if platform.machine() == "x86_64" else ""


def flags_key(args: str) -> str:
    # The Makefile hashes `echo '<flags>'`, newline included; the same here so that the native
    # cache directory this module looks for is the one `make install` filled.
    return hashlib.sha256((args + "\n").encode()).hexdigest()[:12]


def native_dir(version: str) -> Path:
    return CACHE / f"llama-cpp-python-{version}-{flags_key(f'{LIBRARY_ONLY} {cpu_args()} ')}"


def portable_args() -> str:
    return f"{PORTABLE} {LIBRARY_ONLY}"


def portable_dir(version: str) -> Path:
    return CACHE / f"llama-cpp-python-{version}-portable-{flags_key(portable_args())}"


def sdist(version: str) -> str:
    """The sdist `make install-convert` caches (and checks against its sha256), else PyPI's."""
    cached = CACHE / f"llama-cpp-python-{version}-sdist" / f"llama_cpp_python-{version}.tar.gz"
    return str(cached) if cached.is_file() else f"llama-cpp-python=={version}"


def one_wheel(folder: Path, version: str) -> Path | None:
    found = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl")) if folder.is_dir() else []
    return found[0] if found else None


NINJA_STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")


def build_raw(version: str, log) -> Path:
    """Compile the portable wheel once (tens of minutes on 2 cores) into the cache, niced, showing
    the compile's progress on one line."""
    out = portable_dir(version) / "raw"
    if (wheel := one_wheel(out, version)) is not None:
        return wheel
    part = out.with_name("raw.part")
    shutil.rmtree(part, ignore_errors=True)
    log(f"compiling llama-cpp-python {version} portable ({portable_args()}): one CPU backend per "
        f"instruction-set level, tens of minutes, once; cached in {out.parent}")
    env = os.environ | {"CMAKE_ARGS": portable_args(),
                        "CMAKE_BUILD_PARALLEL_LEVEL": str(len(os.sched_getaffinity(0)))}
    cmd = ["nice", "-n", "10", sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-cache-dir",
           "--no-binary", "llama-cpp-python", "-w", str(part), sdist(version)]
    tail: list[str] = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail = (tail + [line])[-60:]
            if step := NINJA_STEP.match(line):
                print(f"\r  compiling: step {step.group(1)} of {step.group(2)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if proc.returncode != 0:
        raise WheelError("the portable llama-cpp-python build failed:\n" + "".join(tail)[-3000:])
    wheel = one_wheel(part, version)
    if wheel is None:
        raise WheelError(f"pip wheel made no llama_cpp_python-{version} wheel in {part}")
    shutil.rmtree(out, ignore_errors=True)
    part.rename(out)
    return out / wheel.name


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(raw: Path, dest: Path) -> tuple[Path, list[str]]:
    """The raw wheel with its CPU variants moved into llama_cpp/lib, the AMX one dropped and the
    loader patch appended; RECORD rewritten to match. Returns (wheel, variants kept)."""
    with zipfile.ZipFile(raw) as z:
        names = z.namelist()
        files = {n: z.read(n) for n in names if not n.endswith("/")}
    record = next((n for n in files if n.endswith(".dist-info/RECORD")), None)
    target = "llama_cpp/llama_cpp.py"
    if record is None or target not in files:
        raise WheelError(f"{raw.name} is not a llama-cpp-python wheel (no RECORD or {target})")
    out: dict[str, bytes] = {}
    kept: set[str] = set()
    for name, data in files.items():
        if name == record:
            continue
        match = VARIANT.search(name)
        if match:
            if match.group(1) in DROPPED_VARIANTS:
                continue
            kept.add(match.group(1))
            name = f"llama_cpp/lib/{Path(name).name}"
        out[name] = data
    if not kept:
        raise WheelError(f"{raw.name} holds no libggml-cpu-<level>.so: it was not built with "
                         "GGML_BACKEND_DL=ON and GGML_CPU_ALL_VARIANTS=ON")
    out[target] = out[target] + PATCH.encode()
    rows = [[n, _record_hash(d), str(len(d))] for n, d in out.items()] + [[record, "", ""]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    out[record] = text.getvalue().encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / raw.name
    tmp = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in out.items():
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.external_attr = (0o755 if name.endswith(".so") or ".so." in name else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    tmp.replace(wheel)
    return wheel, sorted(kept)


def portable_wheel(version: str, log) -> LlamaWheel:
    raw = build_raw(version, log)
    dest = raw.parent.parent / f"repacked-{PATCH_ID}"
    wheel = one_wheel(dest, version)
    if wheel is None:
        wheel, _ = repack(raw, dest)
    with zipfile.ZipFile(wheel) as z:
        variants = sorted(m.group(1) for n in z.namelist() if (m := VARIANT.search(n)))
    return LlamaWheel(wheel, "portable", portable_args(), variants)


def native_wheel(version: str, why: str) -> LlamaWheel:
    folder = native_dir(version)
    wheel = one_wheel(folder, version)
    if wheel is None:
        raise WheelError(f"{why}; and no native wheel in {folder} to fall back to (run `make install`)")
    return LlamaWheel(wheel, "native", f"{LIBRARY_ONLY} {cpu_args()}".strip(), [],
                      f"NATIVE llama.cpp build (GGML_NATIVE, this build machine's CPU): {why}. It may crash "
                      "with SIGILL on a CPU that lacks an instruction set of the build machine; `hearth "
                      "doctor` checks that before the service starts.")


def choose(src: Path, given: Path | None, portable: bool, log) -> LlamaWheel:
    """--llama-wheel PATH, else the portable build (falling back to the native wheel, loudly, when
    it cannot be built), else with --native the Makefile's native wheel."""
    version = pinned_version(src)
    if given is not None:
        if not given.is_file() or not given.name.startswith(f"llama_cpp_python-{version}-"):
            raise WheelError(f"--llama-wheel {given}: not a llama_cpp_python-{version}-*.whl file "
                             f"(pyproject.toml pins {version})")
        with zipfile.ZipFile(given) as z:
            variants = sorted(m.group(1) for n in z.namelist() if (m := VARIANT.search(n)))
            patched = b"_hearth_load_cpu_backend" in z.read("llama_cpp/llama_cpp.py")
        if variants and not patched:  # a GGML_BACKEND_DL build as pip made it: it cannot load its variants
            given, variants = repack(given, CACHE / f"llama-cpp-python-given-{sha12(given)}")
            log(f"  repacked {given.name} so that it loads its CPU variants: {given}")
        if variants:
            return LlamaWheel(given, "portable", "", variants)
        return LlamaWheel(given, "given", "", [], "a prebuilt wheel without runtime CPU dispatch (--llama-wheel): "
                          "it runs only on CPUs with every instruction set it was built for; `hearth doctor` checks")
    if not portable:
        return native_wheel(version, "--native was asked for")
    try:
        return portable_wheel(version, log)
    except WheelError as exc:
        log(f"WARNING: {exc}\nWARNING: falling back to the native wheel")
        return native_wheel(version, f"the portable build failed ({str(exc).splitlines()[0]})")
