"""Progress display: a rich progress bar on a terminal, plain log lines otherwise, nothing with -q."""

from __future__ import annotations

import logging
import os
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


#: Seconds between the periodic progress lines of a run whose stderr is not a terminal (CI, nohup, Slurm);
#: ``BLURSYNTH_PROGRESS_INTERVAL`` overrides it.
PROGRESS_INTERVAL_S = 10.0


def progress_interval() -> float:
    """The interval of :class:`LogProgress`'s periodic lines (``BLURSYNTH_PROGRESS_INTERVAL`` or the default)."""
    text = os.environ.get("BLURSYNTH_PROGRESS_INTERVAL")
    try:
        return max(0.0, float(text)) if text else PROGRESS_INTERVAL_S
    except ValueError:
        return PROGRESS_INTERVAL_S


class LogProgress(ProgressSink):
    """Plain INFO-level lines for logs (shown by default when stderr is not a terminal, and with -v).

    One line per finished source, and about every :data:`PROGRESS_INTERVAL_S` seconds one line with the
    samples and frames done so far, their rates and the time left. Rates count this run's work only: a
    resumed source reports what it already held, without a rate.
    """

    def __init__(self, interval: float | None = None) -> None:
        self._interval = progress_interval() if interval is None else interval
        self._total = 0
        self._done = 0
        self._frames = self._samples = 0
        self._total_frames = 0
        self._total_samples: int | None = None
        self._resumed = 0  # samples held by resumed sources
        self._t0 = self._last = time.perf_counter()

    def start(self, total_sources: int, total_frames: int, total_samples: int | None = None) -> None:
        self._total = total_sources
        self._total_frames, self._total_samples = total_frames, total_samples
        self._t0 = self._last = time.perf_counter()
        planned = total_samples if total_samples is not None else "?"
        if total_frames:
            log.info("processing %d sources, %d frames, %s samples planned", total_sources, total_frames, planned)
        else:
            log.info("processing %d units, %s samples planned", total_sources, planned)

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        self._frames += frames
        self._samples += samples
        now = time.perf_counter()
        if now - self._last >= self._interval:
            self._last = now
            log.info("%s", self.status_line(now - self._t0))

    def status_line(self, elapsed: float) -> str:
        """``progress: 3/10 sources, 120 samples (4.1/s), 2400/9000 frames (83/s), ETA 1m20s``."""
        elapsed = max(1e-9, elapsed)
        parts = [f"{self._done}/{self._total} {'sources' if self._total_frames else 'units'}"]
        planned = f"/{self._total_samples}" if self._total_samples is not None else ""
        parts.append(f"{self._samples + self._resumed}{planned} samples ({self._samples / elapsed:.1f}/s)")
        eta = None
        if self._total_frames:
            parts.append(f"{self._frames}/{self._total_frames} frames ({self._frames / elapsed:.0f}/s)")
            if self._frames:
                eta = max(0, self._total_frames - self._frames) * elapsed / self._frames
        elif self._total_samples is not None and self._samples:
            eta = max(0, self._total_samples - self._resumed - self._samples) * elapsed / self._samples
        parts.append(f"ETA {_duration(eta)}" if eta is not None else "ETA ?")
        return "progress: " + ", ".join(parts)

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        self._done += 1
        extra = f" ({reason})" if reason else ""
        if status == "resumed":  # nothing was made now: no rate
            self._resumed += samples
            log.info("[%d/%d] %s: resumed, %d samples already done%s", self._done, self._total, key, samples, extra)
            return
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        rate = f"{self._frames / elapsed:.0f} frames/s" if self._frames else f"{self._samples / elapsed:.1f} samples/s"
        emit = log.warning if status in ("failed", "partial") else log.info
        emit("[%d/%d] %s: %s, %d samples, %s%s", self._done, self._total, key, status, samples, rate, extra)

    def close(self) -> None:
        if self._total and self._done == self._total and not self._samples and self._resumed:
            log.info("resumed %d samples, nothing left to do", self._resumed)


def _duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


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
