"""Worker side of every executor but the serial one: progress events and log records go to the driver.

Workers batch ``ProgressSink`` events (every ``FLUSH_SECONDS``) and log records and hand them to a ``send``
function (their pipe, or a Ray actor); the driver replays them on its own sink and handlers, so the bar
and the log lines look the same with any executor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from blursynth.run.progress import ProgressSink

FLUSH_SECONDS = 0.2  # progress events are batched this long in workers


class ForwardingProgress(ProgressSink):
    """Progress sink of a worker: batches events and hands them to ``send`` (at most every FLUSH_SECONDS)."""

    def __init__(self, send: Callable[[list], None]) -> None:
        self._send = send
        self._frames = self._samples = 0
        self._events: list = []
        self._last = time.monotonic()

    def source_started(self, key: str, frames: int) -> None:
        self._events.append(("source_started", (key, frames)))
        self.flush()

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        self._frames += frames
        self._samples += samples
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        self._pending_advance()
        self._events.append(("source_finished", (key, status, samples, reason)))
        self.flush()

    def _pending_advance(self) -> None:
        if self._frames or self._samples:
            self._events.append(("advance", (self._frames, self._samples)))
            self._frames = self._samples = 0

    def flush(self) -> None:
        self._pending_advance()
        self._last = time.monotonic()
        if self._events:
            events, self._events = self._events, []
            self._send(events)


def apply_events(progress: ProgressSink, events: list) -> None:
    """Replay a worker's progress events on the driver's sink."""
    for method, args in events:
        getattr(progress, method)(*args)


class _ForwardingLog(logging.Handler):
    """Sends a worker's log records to the driver, which emits them with its own handlers."""

    def __init__(self, send: Callable[[int, str], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break a unit
            pass


def route_logs(level: int, send: Callable[[int, str], None]) -> None:
    root = logging.getLogger("blursynth")
    root.handlers[:] = [_ForwardingLog(send)]
    root.setLevel(level)
    root.propagate = False
