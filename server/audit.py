"""The audit log: one JSON line for every Text-to-SQL answer, saying what ran, for whom.

    POST /v1/sql                      every answer, and every request that failed with an error
    POST /v1/sql/validate             when `execute` is true (the caller's own SQL, run or refused)

A line (keys in this order; `null` where there is nothing to say):

    {"time": "2026-12-07T06:10:00.123Z", "request_id": "sql-…", "route": "/v1/sql",
     "key_id": "3f2a9c1b0d4e", "client": "10.0.0.7", "database": "sales", "model": "…",
     "question": "…", "sql": "SELECT …", "status": "ok", "row_count": 12, "attempts": 1,
     "durations_ms": {"generation": …, "validation": …, "execution": …, "total": …}, "error": null}

`request_id` is the answer's `id` (else the request's X-Request-Id header, else a new id);
`key_id` is the API key's id (server/keys.py), never the key; `sql` is the final SQL, the one that
ran (or would have, with `execute` false; on /v1/sql/validate a refused statement as sent);
`status` is the answer's (validate: "ok" or "rejected"), or "error" with
`error: {"status": 503, "code": "database_unavailable"}` when the client got an error instead.

Each line is appended with one os.write() of the whole line to a file opened with O_APPEND, under
a lock that every thread takes, so lines never interleave, and a failed or short write is cut
off again (ftruncate) so that no half line stays. A line that cannot be written is the client's
error (503 audit_log_unavailable): no answer leaves the server off the record. Before a line would
take the file past `max_bytes`, the file is rotated: audit.jsonl → audit.jsonl.1 → … →
audit.jsonl.<backups>, the oldest deleted. A file moved or deleted by someone else (logrotate) is
noticed at the next line, which starts a new file. One process per file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import AuditLogFailed, HearthError, describe
from .paths import data_dir

log = logging.getLogger("hearth.audit")

FILE_MODE = 0o640  # questions and SQL are the company's business: not world-readable


class AuditSettings(BaseModel):
    """The Text-to-SQL audit log (HEARTH_AUDIT__*)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Write one JSON line per /v1/sql answer (and executed /v1/sql/validate).")
    path: Path | None = Field(
        None, description="The log file; default: audit.jsonl in the data directory (HEARTH_DATA_DIR, else ./var).")
    max_bytes: int = Field(100 * 2**20, ge=1, description="Rotate before a line would take the file past this size.")
    backups: int = Field(5, ge=0, description="Rotated files kept (audit.jsonl.1 newest); 0 keeps none. The log "
                                              "takes at most (backups + 1) x max_bytes.")
    fsync: bool = Field(False, description="fsync after every line: each answer is on disk before it is sent "
                                           "(slower; without it a power cut may lose the last lines).")

    def resolved_path(self) -> Path:
        return Path(self.path).expanduser() if self.path is not None else data_dir() / "audit.jsonl"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends records as JSON lines (thread-safe). Disabled: write() does nothing."""

    def __init__(self, settings: AuditSettings, metrics=None):
        self.settings = settings
        self.enabled = settings.enabled
        self.path = settings.resolved_path()
        self.metrics = metrics
        self._lock = threading.Lock()
        self._fd: int | None = None

    # -- writing ---------------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> None:
        """Appends `record` as one line; AuditLogFailed if it could not be."""
        if not self.enabled:
            return
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        try:
            with self._lock:
                self._append(line)
        except OSError as exc:
            log.error("audit log %s: %s", self.path, exc)
            self._count("failed")
            raise AuditLogFailed(f"The audit log could not be written ({exc.strerror or exc}); the answer was "
                                 "withheld. Tell the administrator.") from exc
        self._count("written")

    def _append(self, line: bytes) -> None:
        fd = self._open()
        size = os.fstat(fd).st_size
        if size and size + len(line) > self.settings.max_bytes:
            self._rotate()
            fd, size = self._open(), 0
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            if self.settings.fsync:
                os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)  # no half line stays for a reader to trip on
            except OSError:
                pass
            raise

    def _open(self) -> int:
        """The open file, reopened when the path no longer names it (moved, deleted)."""
        if self._fd is not None:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            self._close_fd()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        return self._fd

    def _rotate(self) -> None:
        self._close_fd()
        backups = self.settings.backups
        if backups == 0:
            self.path.unlink(missing_ok=True)
            return
        self._backup(backups).unlink(missing_ok=True)
        for n in range(backups - 1, 0, -1):
            if self._backup(n).exists():
                os.replace(self._backup(n), self._backup(n + 1))
        os.replace(self.path, self._backup(1))

    def _backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.audit_records.labels(outcome).inc()

    def close(self) -> None:
        with self._lock:
            self._close_fd()

    # -- what the SQL routes record -------------------------------------------------------

    def sql_request(self, request, route: str, body) -> "AuditEntry":
        """`async with audit.sql_request(request, route, body) as entry: entry.answer = ...`:
        records the answer, or the error the block raised."""
        return AuditEntry(self, request, route, body)


class AuditEntry:
    def __init__(self, log_: AuditLog, request, route: str, body):
        self.log = log_
        self.request = request
        self.route = route
        self.body = body
        self.answer = None

    async def __aenter__(self) -> "AuditEntry":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if not self.log.enabled or (exc is not None and not isinstance(exc, Exception)):
            return  # off, or cancelled: nothing was answered
        if exc is None and self.route == "/v1/sql/validate" and not self.body.execute:
            return  # nothing ran
        record = self.record(exc)
        # Off the event loop: a slow disk must not stall every other request.
        await asyncio.to_thread(self.log.write, record)

    def record(self, exc: BaseException | None) -> dict[str, Any]:
        request, body, answer = self.request, self.body, self.answer
        client = request.client.host if request.client else None
        rec: dict[str, Any] = {
            # The answer's id; else the proxy's X-Request-Id; else one of our own.
            "time": now_iso(), "request_id": request.headers.get("x-request-id") or f"req-{uuid.uuid4().hex[:24]}",
            "route": self.route,
            "key_id": getattr(request.state, "key_id", None), "client": client,
            "database": body.database, "model": getattr(body, "model", None),
            "question": getattr(body, "question", None), "sql": None, "status": "error", "row_count": None,
            "attempts": None, "durations_ms": None, "error": None,
        }
        if exc is not None:
            kind = describe(exc) if isinstance(exc, HearthError) else None
            rec["error"] = {"status": kind.status if kind else 500, "code": kind.code if kind else "internal_error"}
            if self.route == "/v1/sql/validate":
                rec["sql"] = body.sql
            return rec
        timings = answer.timings
        rec["durations_ms"] = {"generation": timings.generation_ms, "validation": timings.validation_ms,
                               "execution": timings.execution_ms, "total": timings.total_ms}
        rec["database"] = answer.database
        rec["row_count"] = answer.result.row_count if answer.result is not None else None
        if self.route == "/v1/sql":
            rec.update(request_id=answer.id, model=answer.model, sql=answer.sql, status=answer.status,
                       attempts=len(answer.attempts))
        else:  # the caller's SQL: what ran when it passed, what was refused when not
            valid = answer.validation.valid
            rec.update(sql=answer.validation.sql if valid else body.sql, status="ok" if valid else "rejected")
        return rec
