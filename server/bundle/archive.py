"""SHA256SUMS and the tarball.

SHA256SUMS lists every file of the bundle in `sha256sum -c` format (install.sh checks it before it
touches anything). The tarball is written under a temporary name beside --out and renamed at the
end, so a crash or Ctrl-C never leaves a half-written bundle under the real name.
"""

from __future__ import annotations

import os
import sys
import tarfile
import time
from pathlib import Path

from ..digest import sha256_file as sha256

SUMS = "SHA256SUMS"


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != SUMS)


def write_sums(root: Path) -> Path:
    out = root / SUMS
    out.write_text("".join(f"{sha256(p)}  {p.relative_to(root).as_posix()}\n" for p in files(root)))
    return out


def verify_sums(root: Path) -> list[str]:
    """The files whose sha256 differs from SHA256SUMS, or that are missing (the Python twin of
    install.sh's `sha256sum -c`, for checking a bundle on a machine without coreutils)."""
    bad = []
    for line in (root / SUMS).read_text().splitlines():
        digest, name = line.split("  ", 1)
        path = root / name
        if not path.is_file() or sha256(path) != digest:
            bad.append(name)
    return bad


class Progress:
    """Bytes written so far, on one stderr line, at most every half second."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done, self.shown = max(total, 1), label, 0, 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.shown > 0.5 or self.done >= self.total:
            self.shown = now
            print(f"\r  {self.label}: {self.done / 2**20:.0f}/{self.total / 2**20:.0f} MiB "
                  f"({100 * self.done / self.total:.0f}%)", end="", file=sys.stderr, flush=True)


class _Counting:
    def __init__(self, f, progress: Progress):
        self.f, self.progress = f, progress

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.progress.add(len(data))
        return data


def write_tarball(root: Path, out: Path, top: str, level: int = 6) -> int:
    """root's files as <top>/... in a gzip tarball at out, atomically. Returns its size."""
    paths = [root / SUMS, *files(root)]
    progress = Progress(sum(p.stat().st_size for p in paths), f"writing {out.name}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=level) as tar:
            for path in paths:
                info = tar.gettarinfo(str(path), f"{top}/{path.relative_to(root).as_posix()}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(path, "rb") as f:
                    tar.addfile(info, _Counting(f, progress))
        print(file=sys.stderr)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out.stat().st_size
