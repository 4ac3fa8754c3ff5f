"""Progress events from the library to whoever displays them (the CLI renders them with rich).

The library never prints: it calls these hooks and logs warnings through ``logging``.
"""

from __future__ import annotations


class ProgressSink:
    """No-op progress receiver; subclass and override what you display."""

    def start(self, total_sources: int, total_frames: int, total_samples: int | None = None) -> None:
        """A run begins: the number of work units, frames to decode and samples planned."""

    def source_started(self, key: str, frames: int) -> None:
        """A unit begins decoding ``frames`` frames of source ``key``."""

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        """``frames`` more frames decoded, ``samples`` more samples written."""

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        """A unit ended with ``status`` ``ok``, ``partial``, ``failed``, ``skipped`` or ``resumed``."""

    def close(self) -> None:
        """The run ended (successfully or not)."""
