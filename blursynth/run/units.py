"""Work units: a fixed set of shard slots, committed one by one, each trusted only through its marker."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from blursynth.errors import OutputError
from blursynth.shards.markers import MarkerError, NewerFormatError, ShardMarker, read_marker, stats_path, total


@dataclass(frozen=True)
class ShardSlot:
    """Shard ``shard`` of ``split`` holds items ``first .. stop - 1`` of its unit's plan."""

    split: str
    shard: int
    first: int
    stop: int


@dataclass
class UnitResult:
    """What one unit did: status ``ok``, ``partial``, ``failed`` or ``resumed`` (all shards already done)."""

    key: str
    status: str
    path: str | None = None
    samples: int = 0
    frames: int = 0
    shards: list[ShardMarker] = field(default_factory=list)  # the markers of its committed shards
    reason: str | None = None
    resumed: bool = False
    rejections: dict[str, int] = field(default_factory=dict)  # candidate windows rejected, by reason
    skipped: list[dict] = field(default_factory=list)  # inputs skipped inside the unit ({path, reason})

    @property
    def static_windows(self) -> int:
        """Samples whose blur equals sharp, written or dropped, as its shard markers record them (run/sink.py):
        counted the same way in a fresh, a partly resumed and a resumed run."""
        return sum(int(m.sources.get(self.key, {}).get("static_windows", 0)) for m in self.shards)


def allocate_slots(split: str, count: int, shard_size: int, counters: dict[str, int]) -> tuple[ShardSlot, ...]:
    """Give ``count`` items ceil(count / shard_size) consecutive shard numbers of ``split``.

    Called in unit order, so numbering depends on the plan only, never on completion order.
    """
    slots = []
    for k in range(math.ceil(count / shard_size)):
        first = k * shard_size
        slots.append(ShardSlot(split, counters.get(split, 0), first, min(count, first + shard_size)))
        counters[split] = counters.get(split, 0) + 1
    return tuple(slots)


def load_marker(out: Path, slot: ShardSlot) -> ShardMarker | None:
    """The slot's marker, or None when the shard is not complete.

    Raises:
        OutputError: the marker is of a newer shard format (a newer blursynth wrote it): never overwritten.
    """
    path = stats_path(out, slot.split, slot.shard)
    try:
        return read_marker(path)
    except NewerFormatError as exc:
        raise OutputError(f"{path}: {exc}") from None
    except (OSError, MarkerError):
        return None  # a marker that cannot be read is not trusted: the shard is redone


def completed_markers(out: Path, slots: tuple[ShardSlot, ...]) -> tuple[dict[int, ShardMarker | None], bool]:
    """Markers per shard number, and whether the unit is finished.

    A unit is finished when every slot has a marker, or when the slots up to one marked ``final`` (the
    source's last shard, or where it ended early, e.g. a truncated file) all have markers: later slots can
    never exist.
    """
    markers = {slot.shard: load_marker(out, slot) for slot in slots}
    for slot in slots:
        marker = markers[slot.shard]
        if marker is None:
            return markers, False
        if marker.final:
            return markers, True
    return markers, True


def result_from_markers(key: str, markers: list[ShardMarker]) -> UnitResult:
    """Rebuild a finished unit's result from its markers (a resumed run reports what the first run found)."""
    status, reason, path = "ok", None, None
    for m in markers:
        entry = m.sources.get(key, {})
        if entry.get("status") in ("partial", "failed"):
            status = entry["status"]
            failure = (m.failures or [{}])[0]
            reason, path = failure.get("reason"), failure.get("path")
    recorded = total(markers)
    return UnitResult(key, status, path=path, samples=recorded.samples, shards=list(markers), reason=reason,
                      resumed=True, rejections=recorded.rejections, skipped=recorded.skipped)


def finished_unit(out: Path, key: str, slots: tuple[ShardSlot, ...],
                  progress) -> tuple[dict[int, ShardMarker | None], UnitResult | None]:
    """Every recipe's first step: read the unit's markers; if it is already finished, report it as resumed.

    Returns:
        (markers per shard number, the resumed result or None when there is work left).
    """
    markers, finished = completed_markers(out, slots)
    if not finished:
        return markers, None
    result = result_from_markers(key, [m for m in markers.values() if m is not None])
    progress.source_finished(key, "resumed", result.samples, result.reason)
    return markers, result
