"""API keys: kept as SHA-256 digests, matched in constant time, named by a key id.

An entry of `api_keys` or of the keys file is either the key itself or `sha256:<64 hex digits>`,
the SHA-256 of the key's UTF-8 bytes (`printf %s "$KEY" | sha256sum`, or `python -m server.keys`),
so the file on disk need not hold a usable key. Either way the server keeps only digests: a
presented key is hashed once and its digest compared with every stored digest by
hmac.compare_digest, all of them always, so the time taken says nothing about which key matched.
(A digest protects a long random key, not a guessable one: see deploy/README.md, API keys.)

A key id is the first KEY_ID_HEX hex digits of the key's digest. Logs, /metrics, the audit log
and per-key limits name a key by it, never by the key; IT finds it at the start of the key's
digest line (or with `python -m server.keys`).

Standard library only: the engine's scheduler imports `current_key_id` from here.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from contextvars import ContextVar
from typing import Iterable, Sequence

DIGEST_PREFIX = "sha256:"
KEY_ID_HEX = 12
# The key id of every request when no key is configured (one tenant: the whole loopback).
ANONYMOUS = "anonymous"

# The key id of the request being served, set by server.limits.KeyLimitsMiddleware for the
# request's task (and the tasks it starts). The scheduler reads it to take turns between keys.
current_key_id: ContextVar[str] = ContextVar("hearth_key_id", default=ANONYMOUS)


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(digest: bytes) -> str:
    return digest.hex()[:KEY_ID_HEX]


def parse_entry(entry: str, where: str = "key entry") -> bytes:
    """The digest an entry stands for: `sha256:<hex>` as given, anything else hashed."""
    if not entry.lower().startswith(DIGEST_PREFIX):
        return digest_of(entry)
    # A digest line may end with a comment: `sha256:<hex>  # billing app`.
    hex_digits, *rest = entry[len(DIGEST_PREFIX):].lower().split(None, 1) or [""]
    if rest and not rest[0].startswith("#"):
        raise ValueError(f"{where}: after a 'sha256:' digest only a '# comment' may follow")
    if len(hex_digits) != 64 or any(c not in "0123456789abcdef" for c in hex_digits):
        # The entry itself stays out of the message: it may be a key after all.
        raise ValueError(f"{where}: a 'sha256:' entry needs exactly 64 hex digits after the prefix")
    return bytes.fromhex(hex_digits)


class KeyRing:
    """The accepted keys, as digests. Empty: no key configured (every request is accepted)."""

    def __init__(self, entries: Iterable[str] = ()):
        self._digests = [parse_entry(e, f"API key entry {i + 1}") for i, e in enumerate(entries)]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    @property
    def ids(self) -> list[str]:
        return [key_id(d) for d in self._digests]

    def match(self, key: str) -> str | None:
        """The key id of `key` if it is one of the accepted keys, else None (constant time)."""
        given = digest_of(key)
        found = None
        for digest in self._digests:
            if hmac.compare_digest(given, digest):
                found = digest
        return key_id(found) if found is not None else None

    def identify(self, authorization: str | None) -> str | None:
        """The key id of an `Authorization: Bearer <key>` header; ANONYMOUS when no key is
        configured; None when the header names no accepted key."""
        if not self._digests:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.match(token.strip())


def digest_line(key: str) -> str:
    return f"{DIGEST_PREFIX}{digest_of(key).hex()}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m server.keys [KEY ...]`: each key's keys-file line and key id. With no
    argument, reads keys from stdin, one a line (so that they stay out of the shell history)."""
    keys = list(sys.argv[1:] if argv is None else argv) or [ln.strip() for ln in sys.stdin if ln.strip()]
    for key in keys:
        print(f"{digest_line(key)}  # key id {key_id(digest_of(key))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
