"""The bundle's wheelhouse: Hearth's own wheel and every dependency of the chosen extras, as wheels
for this Python and platform, and requirements.lock, which pins each of them by the sha256 of the
file actually in the wheelhouse (`pip install --require-hashes` refuses anything else).

Downloads go to a cache (~/.cache/hearth/wheelhouse) that is tried first with --no-index: once it
holds what the extras need, a bundle is made without asking PyPI anything. Hearth's own wheel is
built from a copy of the source tree, so the checkout gets no build/ or *.egg-info from it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..digest import sha256_file as sha256

from .llama_wheel import CACHE

WHEEL_CACHE = CACHE / "wheelhouse"
# What setuptools needs to build Hearth's wheel (pyproject.toml: packages.find, package-data, readme).
SOURCE = ("pyproject.toml", "README.md", "server", "training", "quantize")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
# Never cached: Hearth changes with every checkout, and the llama-cpp-python wheel is chosen per
# bundle (portable, native or given), all under one file name.
NOT_CACHED = ("hearth-", "llama_cpp_python-")


class WheelhouseError(RuntimeError):
    pass


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def hearth_wheel(src: Path, out: Path) -> Path:
    """Hearth's wheel, built without build isolation (this venv's setuptools) from a copy of src."""
    with tempfile.TemporaryDirectory(prefix="hearth-src-") as tmp:
        for name in SOURCE:
            path = src / name
            if path.is_dir():
                shutil.copytree(path, Path(tmp) / name, ignore=SKIP)
            elif path.is_file():
                shutil.copy2(path, Path(tmp) / name)
        run = pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), tmp)
        if run.returncode != 0:
            raise WheelhouseError(f"building Hearth's wheel failed:\n{run.stderr[-3000:]}")
    found = sorted(out.glob("hearth-*.whl"))
    if len(found) != 1:
        raise WheelhouseError(f"expected one hearth-*.whl in {out}, found {[p.name for p in found]}")
    return found[0]


def collect(src: Path, extras: list[str], llama: Path, dest: Path, log) -> list[Path]:
    """Fill dest with Hearth's wheel, the given llama-cpp-python wheel and every other dependency of
    `extras`, resolved for this interpreter. Returns the wheels."""
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="hearth-links-") as tmp:
        links = Path(tmp)
        shutil.copy2(llama, links / llama.name)  # the only llama-cpp-python pip may pick
        own = hearth_wheel(src, links)
        want = f"{own}[{','.join(extras)}]"
        # llama-cpp-python has no wheel on PyPI: only the one in `links` may satisfy it, never a
        # compile from the sdist.
        common = ["--find-links", str(links), "--find-links", str(WHEEL_CACHE), "--only-binary", "llama-cpp-python"]
        run = pip("wheel", "--quiet", "--no-index", "--only-binary", ":all:", *common, "-w", str(dest), want)
        if run.returncode != 0:
            log(f"fetching the wheels of {want.rsplit('/', 1)[-1]} from PyPI into {WHEEL_CACHE} (once)")
            WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
            fetch = pip("wheel", "--quiet", *common, "-w", str(WHEEL_CACHE), want)
            for name in NOT_CACHED:
                for stale in WHEEL_CACHE.glob(f"{name}*.whl"):
                    stale.unlink()
            if fetch.returncode != 0:
                raise WheelhouseError(f"collecting the dependencies of {extras} failed:\n{fetch.stderr[-3000:]}")
            shutil.rmtree(dest)
            dest.mkdir()
            run = pip("wheel", "--quiet", "--no-index", "--only-binary", ":all:", *common, "-w", str(dest), want)
            if run.returncode != 0:
                raise WheelhouseError(f"the wheelhouse is incomplete even after fetching:\n{run.stderr[-3000:]}")
    wheels = sorted(dest.glob("*.whl"))
    names = [w.name for w in wheels]
    if sum(n.startswith("llama_cpp_python-") for n in names) != 1 or sum(n.startswith("hearth-") for n in names) != 1:
        raise WheelhouseError(f"the wheelhouse must hold exactly one Hearth and one llama-cpp-python wheel: {names}")
    return wheels


def project(wheel: Path) -> tuple[str, str]:
    """(normalized name, version) from a wheel file name (name-version[-build]-py-abi-platform.whl)."""
    name, version = wheel.name.split("-")[:2]
    return name.lower().replace("_", "-").replace(".", "-"), version


def write_lock(wheels: list[Path], lock: Path) -> None:
    """One `name==version --hash=sha256:...` per wheel, from the files themselves."""
    lines = ["# Every wheel in wheelhouse/, pinned by the sha256 of that file. Install with", "#   pip install "
             "--no-index --find-links wheelhouse --require-hashes --only-binary :all: -r requirements.lock"]
    seen: set[str] = set()
    for wheel in sorted(wheels, key=lambda w: project(w)[0]):
        name, version = project(wheel)
        if name in seen:
            raise WheelhouseError(f"two wheels of {name} in the wheelhouse")
        seen.add(name)
        lines.append(f"{name}=={version} --hash=sha256:{sha256(wheel)}")
    lock.write_text("\n".join(lines) + "\n")
