"""Turning a stream of token bytes into text: UTF-8 reassembly and stop strings.

A token can end in the middle of a multi-byte UTF-8 character, so pieces are buffered until they
decode. Stop strings can span tokens, so text that might be the start of a stop string is held
back until it either completes the stop (generation ends, the stop is not returned) or diverges.
"""

from __future__ import annotations

import codecs
from typing import Sequence


class IncrementalText:
    """Feed token bytes, get back the text that is safe to emit now."""

    def __init__(self, stop: Sequence[str] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._held = ""  # decoded text not yet emitted because it may begin a stop string
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """Returns newly emittable text; sets `stopped` when a stop string completed."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(piece)
        if not self._stop:
            out, self._held = self._held, ""
            return out
        cut = _first_stop(self._held, self._stop)
        if cut is not None:
            self.stopped = True
            out, self._held = self._held[:cut], ""
            return out
        keep = _longest_stop_prefix_suffix(self._held, self._stop)
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return out

    def flush(self) -> str:
        """At the end of generation: whatever was held back is real text after all."""
        if self.stopped:
            return ""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _longest_stop_prefix_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
