"""Atomic file writes and content hashes, shared by training/ and quantize/.

A kill -9 (or a full disk) in the middle of a write must never leave a half-written file under
the final name: every output is written to a temporary name in the same folder, fsynced, then
renamed (rename is atomic within one filesystem), and the folder is fsynced so the rename itself
survives a power cut.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


# A write that failed for want of room (a full disk, a quota, the process's file-size limit).
FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class DiskFull(OSError):
    """Writing an output ran out of room; the message names the output, and nothing partial is left."""


def _what_filled(folder: Path, written: Path, said: int | None) -> str | None:
    """What ran out of room for `written` (a file or a folder of them) in `folder`, if anything did;
    `said`: the errno the writer reported, if any."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        files = [written] if written.is_file() else [f for f in written.rglob("*") if f.is_file()]
        if said == errno.EFBIG or any(f.stat().st_size >= limit for f in files):
            return f"the process's file-size limit ({limit} bytes, ulimit -f) was reached"
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    return f"the disk is full ({free} bytes free)" if free < (1 << 20) else None


@contextmanager
def _naming_full_disk(path: Path, tmp: Path) -> Iterator[None]:
    """Re-raises a failure while writing `path` (through `tmp`) for want of room as DiskFull naming
    both. Writers report it their own way (OSError without a file name, torch's "file write
    failed", safetensors' "File too large (os error 27)", a converter's exit status), so the cause
    is read from the errno or the system's words for it, else from the file-size limit and the
    free space."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, DiskFull):
            raise
        # A writer that removes its own partial file (safetensors) leaves only its message.
        said = next((e for e in sorted(FULL_ERRNOS) if os.strerror(e) in str(exc)), None)
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            said = exc.errno
        what = _what_filled(path.parent, tmp, said)
        if what is None and said is None:
            raise
        code = said or errno.ENOSPC
        raise DiskFull(code, f"no room to write {path}: {what or os.strerror(code)} "
                       f"({type(exc).__name__}: {str(exc)[-300:]}); the partial output was removed") from exc


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    For writers that want a file name (llama.cpp's quantizer, GGUFWriter, torch.save).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming_full_disk(path, tmp_path):
            yield tmp_path
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: not JSON ({exc})") from None
    return rows


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields a temporary folder beside `path`; on success it replaces `path` as a whole.

    Used for checkpoints and merged models: a reader sees the old folder or the new one, never a
    mix. (The swap is two renames; a crash between them leaves `path` missing and `path.old`
    present, which `latest_checkpoint` and the stage skip logic treat as absent.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _naming_full_disk(path, tmp):
            yield tmp
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb+") as fh:
                        os.fsync(fh.fileno())
        old = path.with_name(path.name + ".old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, default=str))
