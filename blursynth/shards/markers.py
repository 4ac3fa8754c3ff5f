"""Commit markers (``NNNNN_stats.json``): the typed record of a complete shard, and the counters they carry.

A marker is written last, after its shard's HDF5 file is renamed into place (``shards/writer.py``), and it is
the only thing readers and resume trust (docs/shard-format.md). It is parsed and validated here, once, so
listing, resume, validation, export and reports read the same fields with the same types; a marker that
does not parse is "unreadable" everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from blursynth.shards.files import read_json

FORMAT = "blursynth-shard"
#: The shard format this blursynth writes and the newest it reads (markers' ``version``, the HDF5 ``version``
#: attribute). Older versions are read; a newer one is refused (:func:`check_version`), never guessed at.
FORMAT_VERSION = 1
MARKER_FORMAT = FORMAT + "-stats"


def shard_name(shard: int) -> str:
    return f"{shard:05d}"


def stats_path(out: str | os.PathLike, split: str, shard: int) -> Path:
    """Where the marker of shard ``shard`` of ``split`` lives."""
    return Path(out) / split / f"{shard_name(shard)}_stats.json"


def h5_path(out: str | os.PathLike, split: str, shard: int) -> Path:
    return Path(out) / split / f"{shard_name(shard)}.h5"


class MarkerError(ValueError):
    """A marker file that cannot be read or does not hold a valid marker."""


class NewerFormatError(MarkerError):
    """A marker or shard written by a newer blursynth, in a format version this one does not know."""


def version_problem(version) -> str | None:
    """Why a shard format ``version`` (a marker's field, an HDF5 attribute) cannot be read, or None.

    Versions 1 .. :data:`FORMAT_VERSION` are read; a missing version is an early version 1 file.
    """
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"shard format version {version!r} is not a version number"
    if version > FORMAT_VERSION:
        return (f"shard format version {version} is newer than this blursynth reads ({FORMAT_VERSION}); "
                "upgrade blursynth")
    return None


def check_version(version) -> None:
    """Raise for a format version that cannot be read (see :func:`version_problem`).

    Raises:
        NewerFormatError: a newer version. MarkerError: not a version number.
    """
    problem = version_problem(version)
    if problem is not None:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        raise (NewerFormatError if newer else MarkerError)(problem)


def _int(data: Mapping, key: str, default: int | None = None, *, optional: bool = False) -> int | None:
    value = data.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MarkerError(f"{key} {value!r} is not an integer")
    return value


def _typed(data: Mapping, key: str, kind: type, default):
    value = data.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise MarkerError(f"{key} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


@dataclass(frozen=True)
class ShardMarker:
    """The content of one ``NNNNN_stats.json``.

    Attributes:
        shard, split: the shard's number and split.
        file: the ``.h5`` file name next to the marker; None when the shard has no HDF5 file (count 0, or
            ``--layout gopro`` only).
        layouts, count, height, width: what was written (one resolution per shard).
        sources: per source key, ``{"status", "samples", "path"[, "reason"][, "static_windows"]}``.
        failures: ``{source, path, reason[, item]}`` records of what the shard lost.
        windows: ``[first, stop)`` window indices of the source held by the shard.
        final: the source's last shard: the last of its planned shards, or the one where the source ended
            early (later reserved shards never come). Markers written before issue 17 left it false on a
            planned last shard; resume treats a unit whose shards all have markers as finished either way.
        rejections: candidate windows rejected, by reason (online selection only; None: not tracked).
        resume: the window sampler's state after the shard's last window (online selection only).
        skipped: ``{path, reason}`` records of inputs skipped while the shard was written.
    """

    shard: int
    split: str | None = None
    file: str | None = None
    layouts: tuple[str, ...] = ()
    count: int = 0
    height: int | None = None
    width: int | None = None
    sources: dict[str, dict] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    windows: list[int] | None = None
    final: bool = False
    rejections: dict[str, int] | None = None
    resume: dict | None = None
    skipped: list[dict] | None = None
    format: str = MARKER_FORMAT
    version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data) -> ShardMarker:
        """Parse a marker read from JSON; only ``shard`` is required (older or minimal markers list less).

        Raises:
            NewerFormatError: written in a newer format version than :data:`FORMAT_VERSION`.
            MarkerError: not an object, another ``format``, a field of the wrong type, or ``file`` not a plain
                file name.
        """
        if not isinstance(data, dict):
            raise MarkerError(f"a {type(data).__name__}, not an object")
        fmt = data.get("format", MARKER_FORMAT)
        if fmt != MARKER_FORMAT:
            raise MarkerError(f"format {fmt!r} is not a blursynth shard marker ({MARKER_FORMAT!r})")
        check_version(data.get("version"))
        if "shard" not in data:
            raise MarkerError("no 'shard' field")
        file = data.get("file")
        if file is not None and not (isinstance(file, str) and file and "/" not in file):
            raise MarkerError(f"file {file!r} is not a file name")
        rejections = _typed(data, "rejections", dict, None)
        if rejections is not None:
            rejections = {str(k): _int(rejections, k) for k in rejections}
        return cls(
            shard=_int(data, "shard"),
            split=_typed(data, "split", str, None),
            file=file,
            layouts=tuple(_typed(data, "layouts", list, [])),
            count=_int(data, "count", 0),
            height=_int(data, "height", optional=True),
            width=_int(data, "width", optional=True),
            sources=_typed(data, "sources", dict, {}) or {},
            failures=_typed(data, "failures", list, []) or [],
            windows=_typed(data, "windows", list, None),
            final=bool(data.get("final", False)),
            rejections=rejections,
            resume=_typed(data, "resume", dict, None),
            skipped=_typed(data, "skipped", list, None),
            format=_typed(data, "format", str, MARKER_FORMAT),
            version=_int(data, "version", 1),  # no version: an early version 1 marker
        )

    def to_dict(self) -> dict:
        """The JSON object as written: fixed keys first, then the optional ones that are set."""
        data = {"format": self.format, "version": self.version, "split": self.split, "shard": self.shard,
                "file": self.file, "layouts": list(self.layouts), "count": self.count, "height": self.height,
                "width": self.width, "sources": self.sources, "failures": self.failures}
        if self.windows is not None:
            data["windows"] = list(self.windows)
        data["final"] = self.final
        for key in ("rejections", "resume", "skipped"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def read_marker(path: str | os.PathLike) -> ShardMarker:
    """The marker at ``path``.

    Raises:
        FileNotFoundError: there is none (the shard is not complete).
        MarkerError: the file cannot be read or parsed.
    """
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise MarkerError(str(exc)) from None
    return ShardMarker.from_dict(data)


def sum_counts(*counters: Mapping[str, int] | None) -> dict[str, int]:
    """Per-reason counters added up, by reason: the one place rejections and skip counts are summed."""
    total: dict[str, int] = {}
    for counter in counters:
        for reason, count in (counter or {}).items():
            total[reason] = total.get(reason, 0) + int(count)
    return dict(sorted(total.items()))


@dataclass
class MarkerTotals:
    """What a set of markers records together: samples, rejections, failures and skipped inputs."""

    samples: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def total(markers: Iterable[ShardMarker]) -> MarkerTotals:
    """Add up ``markers`` (in the given order: failures and skipped records keep it)."""
    markers = list(markers)
    return MarkerTotals(
        samples=sum(m.count for m in markers),
        rejections=sum_counts(*(m.rejections for m in markers)),
        failures=[f for m in markers for f in m.failures],
        skipped=[s for m in markers for s in m.skipped or ()],
    )
