"""The bundle's SBOM (CycloneDX JSON), made by CycloneDX's own tool, cyclonedx-py (PyPI
`cyclonedx-bom`), from an environment installed exactly as install.sh will install it.

That install is also the bundle's first check: a lock that misses a dependency, or a wheel that
does not fit this interpreter, fails here, on the build machine, rather than at the customer's.
The environment has no pip (--without-pip), so the SBOM lists what Hearth runs on, nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class SbomError(RuntimeError):
    pass


def tool() -> str:
    found = shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent)) or shutil.which("cyclonedx-py")
    if not found:
        raise SbomError("cyclonedx-py is not installed: pip install cyclonedx-bom (it is in Hearth's dev extra)")
    return found


def install_check(root: Path, venv: Path) -> None:
    """install.sh's pip step, into a fresh venv, offline. The host's pip configuration (extra
    indexes, find-links) is ignored, as install.sh ignores it: the wheelhouse alone must do."""
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter under this venv
    run = subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    if run.returncode != 0:
        raise SbomError(f"could not create a venv with {base}: {run.stderr}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    run = subprocess.run(
        ["nice", "-n", "10", sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--find-links", str(root / "wheelhouse"), "--require-hashes", "--only-binary",
         ":all:", "--no-compile", "-r", str(root / "requirements.lock")],
        capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise SbomError(f"the wheelhouse does not install offline with its lock:\n{run.stderr[-3000:]}")


def write(root: Path, src: Path, out: Path) -> dict:
    """Install the wheelhouse into a temporary venv and describe it; returns the SBOM."""
    with tempfile.TemporaryDirectory(prefix="hearth-sbom-") as tmp:
        venv = Path(tmp) / "venv"
        install_check(root, venv)
        run = subprocess.run(
            [tool(), "environment", "--pyproject", str(src / "pyproject.toml"), "--of", "JSON",
             "--output-reproducible", "-o", str(out), str(venv / "bin" / "python")],
            capture_output=True, text=True)
    if run.returncode != 0:
        raise SbomError(f"cyclonedx-py failed:\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())
