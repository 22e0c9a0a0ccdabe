"""`hearth bundle`: one tarball, built here, that installs Hearth on a machine with no network.

    hearth-bundle-<version>/
      install.sh           checks SHA256SUMS, makes a venv, installs offline, config, models, doctor
      SHA256SUMS           every other file's sha256 (`sha256sum -c`)
      bundle.json          what was built, for which Python and CPU, and any warning
      requirements.lock    every wheel pinned by sha256 (`pip install --require-hashes`)
      wheelhouse/          Hearth, llama-cpp-python (portable unless told otherwise), their dependencies
      models/              the GGUF models and adapters given (none for the embedded model: its wheel)
      serve.yaml           settings naming them; installed as <conf-dir>/hearth.yaml
      sbom.cdx.json        CycloneDX SBOM of the installed environment, by cyclonedx-py
      deploy/              the deploy assets (systemd unit and examples, container, Kubernetes, Helm)

The wheels fit this interpreter's Python version and this platform: build the bundle with the
Python the target has (3.11 here). Progress goes to stderr; the tarball's path to stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import archive, llama_wheel, payload, sbom, wheelhouse

SRC = Path(__file__).resolve().parents[2]  # the checkout this module runs from
STEPS = 7


def add_arguments(parser: argparse.ArgumentParser, verb: str = "bundle") -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="Tarball to write (default: ./hearth-bundle-<version>-py<X.Y>-<arch>.tar.gz).")
    parser.add_argument("--model", action="append", default=None, metavar="GGUF",
                        help="Model to ship and serve: a GGUF file, or embedded:smollm2[:QUANT] (the default; "
                             "served from its wheel, nothing copied). Repeat for several.")
    parser.add_argument("--adapter", action="append", default=None, metavar="GGUF",
                        help="GGUF LoRA adapter to ship, served as its own model on the first --model. Repeatable.")
    parser.add_argument("--config", type=Path, default=None,
                        help="serve.yaml to start from; its model and adapter files are shipped too.")
    parser.add_argument("--with-train", action="store_true",
                        help="Add the train extra (torch, transformers, peft: several hundred MiB more).")
    parser.add_argument("--llama-wheel", type=Path, default=None,
                        help="A prebuilt llama-cpp-python wheel to ship instead of building one.")
    parser.add_argument("--portable", action=argparse.BooleanOptionalAction, default=True,
                        help="Build llama.cpp with runtime CPU dispatch (default), or --no-portable / --native: "
                             "the Makefile's build for this CPU only.")
    parser.add_argument("--native", dest="portable", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, default=SRC, help=argparse.SUPPRESS)


def step(n: int, text: str) -> float:
    print(f"[{n}/{STEPS}] {text}", file=sys.stderr, flush=True)
    return time.monotonic()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def source_commit(src: Path) -> dict:
    def git(*args: str) -> str:
        run = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True)
        return run.stdout.strip() if run.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "modified": bool(git("status", "--porcelain", "--untracked-files=no"))}


def copy_deploy(src: Path, dest: Path) -> None:
    # deploy/bundle holds install.sh, which goes to the top of the bundle instead.
    shutil.copytree(src / "deploy", dest, ignore=shutil.ignore_patterns("bundle", "__pycache__"))
    shutil.copy2(src / "deploy" / "bundle" / "install.sh", dest.parent / "install.sh")


def run(args: argparse.Namespace, verb: str = "bundle") -> int:
    try:
        return build(args)
    except (llama_wheel.WheelError, wheelhouse.WheelhouseError, sbom.SbomError) as exc:
        print(f"hearth bundle: {exc}", file=sys.stderr)
        return 1


def build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    src = args.src.resolve()
    if not (src / "pyproject.toml").is_file() or not (src / "deploy" / "bundle" / "install.sh").is_file():
        raise FileNotFoundError(f"{src} is not a Hearth checkout (pyproject.toml, deploy/): `hearth bundle` "
                                "runs from the source tree")
    extras = ["serve", "train"] if args.with_train else ["serve"]
    # Check the models and config first: a typo should cost seconds, not a llama.cpp build.
    files = payload.build(args.config, args.model, args.adapter)
    pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"

    t = step(1, "llama-cpp-python wheel")
    wheel = llama_wheel.choose(src, args.llama_wheel, args.portable, log)
    log(f"  {wheel.kind}: {wheel.path} ({', '.join(wheel.variants) or 'no CPU variants'}) [{time.monotonic() - t:.0f} s]")
    if wheel.warning:
        log(f"  WARNING: {wheel.warning}")

    with tempfile.TemporaryDirectory(prefix=".hearth-bundle-", dir=(args.out or Path.cwd()).resolve().parent) as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        t = step(2, f"wheelhouse of Hearth[{','.join(extras)}] for Python {pyver}")
        wheels = wheelhouse.collect(src, extras, wheel.path, root / "wheelhouse", log)
        wheelhouse.write_lock(wheels, root / "requirements.lock")
        size = sum(w.stat().st_size for w in wheels)
        log(f"  {len(wheels)} wheels, {size / 2**20:.0f} MiB, locked in requirements.lock [{time.monotonic() - t:.0f} s]")
        version = next(wheelhouse.project(w)[1] for w in wheels if w.name.startswith("hearth-"))

        t = step(3, "models, adapters and serve.yaml")
        shipped = payload.write(files, root, log)
        log(f"  {len(shipped)} file(s); models: {[m['path'] for m in files.config['models']]} [{time.monotonic() - t:.0f} s]")

        step(4, "deploy assets and install.sh")
        copy_deploy(src, root / "deploy")
        manifest = {
            "hearth": version, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": source_commit(src), "python": pyver, "python_full": platform.python_version(),
            "machine": platform.machine(), "libc": " ".join(platform.libc_ver()), "extras": extras,
            "llama_cpp_python": wheel.manifest(), "models": shipped, "wheels": len(wheels),
            "sbom": "sbom.cdx.json", "warnings": [wheel.warning] if wheel.warning else [],
        }
        (root / "bundle.json").write_text(json.dumps(manifest, indent=1) + "\n")

        t = step(5, "SBOM (installs the wheelhouse offline into a scratch venv first)")
        bom = sbom.write(root, src, root / "sbom.cdx.json")
        log(f"  CycloneDX {bom.get('specVersion')}: {len(bom.get('components', []))} components [{time.monotonic() - t:.0f} s]")

        step(6, "SHA256SUMS")
        archive.write_sums(root)

        t = step(7, "tarball")
        top = f"hearth-bundle-{version}"
        out = (args.out or Path(f"hearth-bundle-{version}-py{pyver.replace('.', '')}-{platform.machine()}.tar.gz")).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        nbytes = archive.write_tarball(root, out, top)
    log(f"done: {out} ({nbytes / 2**20:.0f} MiB) in {time.monotonic() - started:.0f} s")
    for warning in manifest["warnings"]:
        log(f"WARNING: {warning}")
    print(out)
    return 0
