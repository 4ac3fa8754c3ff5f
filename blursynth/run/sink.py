"""UnitSink: writes one unit's samples into its shard slots and commits each shard when it is full.

Every recipe hands its samples here (by index in the unit's plan), so the commit rules are the same
everywhere: a shard is committed when its last slot item arrives, with ``final: true`` when it is the unit's
last shard; when the source ends early (a truncated file, or an online selection that found fewer windows
than the reserved bound) the shard in progress is committed ``final`` too, so a resume does not wait for
shards that can never exist.

Samples whose blur equals their sharp frame exactly (a window in which nothing moved: a static scene, or
repeats that were not a cadence; with ``--camera``, the blur the window had before the camera, which the recipe
records in ``Sample.static``) are counted here, for every recipe that asks (``static``), and optionally
dropped: ``static_windows`` in the shard marker's source entry, the unit's result and the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blursynth.errors import OutputError
from blursynth.run.progress import ProgressSink
from blursynth.run.units import ShardSlot, UnitResult
from blursynth.sample import Sample
from blursynth.shards.manifest import load_manifest
from blursynth.shards.markers import MarkerError, read_marker, stats_path, sum_counts
from blursynth.shards.names import sequence_names
from blursynth.shards.writer import ShardWriter

log = logging.getLogger(__name__)


class UnitSink:
    """Shard writing for one unit.

    Args:
        out: output root.
        key, source_path: the unit's source (named in markers).
        slots: the shards still to write, in order (items ``slot.first .. slot.stop - 1`` each).
        result: the unit's result, updated as shards are committed.
        layouts, compression, extra_datasets: passed to :class:`ShardWriter`.
        progress: receives one ``advance(samples=1)`` per sample.
        track_rejections: markers carry a ``rejections`` counter (online selection) even when empty.
        static: ``"count"`` samples whose blur equals sharp, ``"drop"`` them too (their items are left out of
            their shard, which is still committed), or None (not checked).
    """

    def __init__(self, out: str | Path, key: str, source_path: str, slots: Sequence[ShardSlot], result: UnitResult,
                 *, layouts: tuple[str, ...], compression: str | None, extra_datasets: tuple[str, ...] = (),
                 progress: ProgressSink | None = None, track_rejections: bool = False,
                 static: str | None = None) -> None:
        self.out = Path(out)
        self.key = key
        self.source_path = source_path
        self.slots = list(slots)
        self.result = result
        self.layouts, self.compression, self.extra_datasets = layouts, compression, extra_datasets
        self.progress = progress or ProgressSink()
        self.track_rejections = track_rejections
        self.static = static
        self._static = 0  # static samples of the shard in progress
        self.writer: ShardWriter | None = None
        self.current: ShardSlot | None = None
        self._rejections: dict[str, int] = {}
        self._resume: dict | None = None
        self._skipped: list[dict] = []
        self._failures: list[dict] = []  # items lost in the shard in progress
        self._indices: list[int] = []  # items written to the shard in progress
        self._seq_names: dict[str, str] | None = None

    def skip(self, record: dict) -> None:
        """Record an input skipped inside the unit (``{path, reason}``); stored in the next shard's marker."""
        self._skipped.append(record)
        self.result.skipped.append(record)

    def fail(self, index: int, path: str, reason: str) -> None:
        """Item ``index`` cannot be produced: record it in its shard's marker (status ``partial``).

        When it was the shard's last item the shard is committed now (with no sample at all, an empty marker),
        so a resume knows the shard is finished and still reports the loss.
        """
        slot = self.slot_for(index)
        if self.current is not None and slot.shard != self.current.shard:
            self.commit(final=False, status="ok")
        self._failures.append({"source": self.key, "path": path, "reason": reason, "item": index})
        if index == slot.stop - 1:
            if self.writer is None:
                self.writer, self.current = self._open(slot), slot
            self.commit(final=self._is_last(slot), status="partial")

    def slot_for(self, index: int) -> ShardSlot:
        for slot in self.slots:
            if slot.first <= index < slot.stop:
                return slot
        raise ValueError(f"item {index} belongs to no shard still to write")

    def add(self, index: int, sample: Sample, *, rejections: dict[str, int] | None = None,
            resume: dict | None = None) -> None:
        """Write item ``index`` of the unit; commit its shard when this was the shard's last item.

        Args:
            rejections: counters to attribute to this item's shard (online selection).
            resume: state a resumed run continues from when this item is the last of a committed shard.
        """
        slot = self.slot_for(index)
        if self.current is not None and slot.shard != self.current.shard:
            self.commit(final=False, status="ok")
        if self.writer is None:
            self.writer = self._open(slot)
            self.current = slot
        self._rejections = sum_counts(self._rejections, rejections)
        self._resume = resume
        static = self.static is not None and (is_static(sample) if sample.static is None else sample.static)
        if static:
            self._static += 1
        if not (static and self.static == "drop"):
            self.writer.add(sample)
            self._indices.append(index)
            self.result.samples += 1
            self.progress.advance(samples=1)
        if index == slot.stop - 1:
            self.commit(final=self._is_last(slot), status="ok")

    def _is_last(self, slot: ShardSlot) -> bool:
        """Whether ``slot`` is the unit's last shard: the last still to write, and no later shard of the same
        source is complete already (a resume that redoes an earlier shard; a unit's shards are numbered
        consecutively, so the next number tells)."""
        if slot != self.slots[-1]:
            return False
        try:
            following = read_marker(stats_path(self.out, slot.split, slot.shard + 1))
        except (OSError, MarkerError):
            return True
        return self.key not in following.sources

    def _open(self, slot: ShardSlot) -> ShardWriter:
        return ShardWriter(self.out, slot.split, slot.shard, layouts=self.layouts, compression=self.compression,
                           capacity=slot.stop - slot.first, extra_datasets=self.extra_datasets,
                           sequence_names=self._gopro_names() if "gopro" in self.layouts else None)

    def _gopro_names(self) -> dict[str, str]:
        """GOPRO folder names of the run's sources (``shards/names.py``): a function of every source key the
        manifest lists (written before any unit runs), so every unit and ``export`` name them alike."""
        if self._seq_names is None:
            try:
                manifest = load_manifest(self.out, writing=False) or {}
            except OutputError:
                manifest = {}
            keys = {str(e["key"]) for e in manifest.get("sources", []) if isinstance(e, dict) and "key" in e}
            self._seq_names = sequence_names(keys | {self.key})
            if self.key in self._seq_names.renamed:
                log.warning("%s: another source has the same GOPRO folder name; its samples are written to %s",
                            self.key, self._seq_names[self.key])
        return self._seq_names

    def commit(self, final: bool, status: str, reason: str | None = None, path: str | None = None,
               rejections: dict[str, int] | None = None) -> None:
        """Close the open shard (or, with nothing open and ``final``, write an empty final marker)."""
        if self.writer is None:
            if not final:
                return
            used = {m.shard for m in self.result.shards}
            slot = next((s for s in self.slots if s.shard not in used), None)
            if slot is None:  # every reserved shard is already complete: nothing to mark
                self.result.rejections = sum_counts(self.result.rejections, rejections)
                return
            self.writer, self.current = self._open(slot), slot
        self._rejections = sum_counts(self._rejections, rejections)
        failures = list(self._failures)
        if reason is not None:
            failures.append({"source": self.key, "path": path or self.source_path, "reason": reason})
        if failures and status == "ok":
            status = "partial"
        entry = {"status": status, "samples": self.writer.count, "path": self.source_path}
        if self._static:
            entry["static_windows"] = self._static
        if failures:
            entry["reason"] = reason if reason is not None else failures[0]["reason"]
        first = self._indices[0] if self._indices else self.current.first
        stats = {
            "sources": {self.key: entry},
            "failures": failures,
            "windows": [first, (self._indices[-1] + 1) if self._indices else first],
            "final": final,
        }
        if self.track_rejections:
            stats["rejections"] = self._rejections
        if self._resume is not None:
            stats["resume"] = self._resume
        if self._skipped:
            stats["skipped"] = self._skipped
        self.result.shards.append(self.writer.close(stats))
        self.result.rejections = sum_counts(self.result.rejections, self._rejections)
        self.writer, self.current = None, None
        self._rejections, self._resume, self._skipped = {}, None, []
        self._failures, self._indices, self._static = [], [], 0

    def abort(self) -> None:
        """Drop the shard in progress (errors, Ctrl-C)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer, self.current = None, None


def is_static(sample: Sample) -> bool:
    """Whether the sample's blur equals its sharp frame exactly (nothing moved in its window).

    The first rows are compared first: a window with motion almost always differs there already.
    """
    blur, sharp = sample.blur, sample.sharp
    if blur.shape != sharp.shape or blur.dtype != sharp.dtype:
        return False
    return bool(np.array_equal(blur[:1], sharp[:1]) and np.array_equal(blur, sharp))
