"""One slow lane for requests over the answering limits, so that one client cannot starve the rest.

A message longer than `max_message_chars`, or a history over `max_history_turns` or
`max_history_chars`, is not answered, but triage still reads all of it (up to
`max_read_chars` of the message, every user turn of the history): that is up to half a
second of pure-Python work each. Sent back to back by one client, such requests keep a
worker thread busy all the time, and because Python threads share one interpreter lock, every
other request waits for that lock over and over: on 2 cores one such client made the others'
p95 three to nine times slower (tests/test_load.py).

So the page serves oversize requests in one lane: one at a time, and after each the lane stays
closed for `oversize_pause` times as long as the request took. Together they then use at most
1 / (1 + oversize_pause) of the process's time, whoever sends them. Requests within the limits
never touch the lane. A waiting request holds one of the page's concurrency slots while it
sleeps (no CPU); a public deployment should also cap request bodies at its reverse proxy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from assistant.config import Settings


def _chars(history: Sequence[Any]) -> int:
    """Characters of the history's string contents (a cheap estimate: malformed entries count 0)."""
    contents = (t.get("content") for t in history if isinstance(t, dict))
    return sum(len(c) for c in contents if isinstance(c, str))


class OversizeLane:
    """Serialises and paces requests over the answering limits (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.max_message = settings.max_message_chars
        self.max_turns = settings.max_history_turns
        self.max_history = settings.max_history_chars
        self.pause = settings.oversize_pause
        self._lock = threading.Lock()
        self._open_at = 0.0  # time.monotonic() when the lane takes the next request

    def oversize(self, message: Any, history: Any) -> bool:
        """The request is over an answering limit (only its size is looked at, not its shape)."""
        if isinstance(message, str | bytes) and len(message) > self.max_message:
            return True
        if isinstance(history, Sequence) and not isinstance(history, str | bytes):
            return len(history) > self.max_turns or _chars(history) > self.max_history
        return isinstance(history, str | bytes) and len(history) > self.max_history

    @contextmanager
    def admit(self, message: Any, history: Any = None) -> Iterator[None]:
        """Run the block at once for a request within the limits, else in the lane."""
        if self.pause <= 0 or not self.oversize(message, history):
            yield
            return
        with self._lock:
            wait = self._open_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            start = time.monotonic()
            try:
                yield
            finally:
                done = time.monotonic()
                self._open_at = done + self.pause * (done - start)
