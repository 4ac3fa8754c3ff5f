"""Progress display: a rich progress bar on a terminal, plain log lines otherwise, nothing with -q."""

from __future__ import annotations

import logging
import sys
import time

from blursynth.run.progress import ProgressSink

log = logging.getLogger("blursynth.progress")


class RichProgress(ProgressSink):
    """Sources done, frames decoded (with frames/s) and samples written, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._t0 = time.perf_counter()
        self._frames = 0
        self._samples = 0
        self._frame_task = None

    def start(self, total_sources: int, total_frames: int, total_samples: int | None = None) -> None:
        self._progress.start()
        self._sources = self._progress.add_task("units" if not total_frames else "sources", total=total_sources,
                                                rate="")
        if total_frames:  # commands that synthesise (local) decode no frames: no frame bar
            self._frame_task = self._progress.add_task("frames", total=total_frames, rate="")
        self._sample_task = self._progress.add_task("samples", total=total_samples, rate="")

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        if frames and self._frame_task is not None:
            self._frames += frames
            self._progress.update(self._frame_task, advance=frames, rate=f"{self._frames / elapsed:.0f} frames/s")
        if samples:
            self._samples += samples
            self._progress.update(self._sample_task, advance=samples, rate=f"{self._samples / elapsed:.1f} samples/s")

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        self._progress.update(self._sources, advance=1, rate=key[-40:])

    def close(self) -> None:
        self._progress.stop()


class LogProgress(ProgressSink):
    """One INFO-level line per finished source (shown with -v, or by default when not on a terminal)."""

    def __init__(self) -> None:
        self._total = 0
        self._done = 0
        self._frames = 0
        self._samples = 0
        self._t0 = time.perf_counter()

    def start(self, total_sources: int, total_frames: int, total_samples: int | None = None) -> None:
        self._total = total_sources
        planned = total_samples if total_samples is not None else "?"
        if total_frames:
            log.info("processing %d sources, %d frames, %s samples planned", total_sources, total_frames, planned)
        else:
            log.info("processing %d units, %s samples planned", total_sources, planned)

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        self._frames += frames
        self._samples += samples

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        self._done += 1
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        rate = f"{self._frames / elapsed:.0f} frames/s" if self._frames else f"{self._samples / elapsed:.1f} samples/s"
        extra = f" ({reason})" if reason else ""
        emit = log.warning if status in ("failed", "partial") else log.info
        emit("[%d/%d] %s: %s, %d samples, %s%s", self._done, self._total, key, status, samples, rate, extra)


def create_progress(verbosity: int) -> ProgressSink:
    if verbosity < 0:
        return ProgressSink()
    if sys.stderr.isatty():
        return RichProgress()
    logging.getLogger("blursynth.progress").setLevel(logging.INFO)
    return LogProgress()


def split_counts(summary) -> str:
    """``train 14, val 6``: samples per split of a finished run (splits without samples left out)."""
    counts = {s: sum(m["count"] for m in summary.shards if m["split"] == s) for s in ("train", "val")}
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)


def raise_for_errors(summary) -> None:
    """Exit with status 1 and a one-line summary when work units raised on every attempt (the manifest is
    then ``incomplete``; the same command retries them)."""
    if summary.errors:
        from blursynth.run.job import units_failed

        raise units_failed(summary.errors, len(summary.results))
