"""Which shards of an output are complete: the ones with a readable commit marker.

``.h5`` files without a marker and ``*.partial`` files are never read as data (docs/shard-format.md); they
are listed so that the validator and ``inspect`` can say what they ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from blursynth.errors import InputError
from blursynth.shards.files import PARTIAL
from blursynth.shards.manifest import SPLITS
from blursynth.shards.markers import MarkerError, NewerFormatError, ShardMarker, read_marker


@dataclass(frozen=True)
class ShardEntry:
    """A complete shard: ``split`` (its folder), ``shard`` number, its ``.h5`` path (None without a file)."""

    split: str
    shard: int
    path: Path | None
    marker: ShardMarker

    @property
    def count(self) -> int:
        return self.marker.count


@dataclass
class ShardListing:
    """Complete shards plus what a reader must ignore: unreadable markers, orphan ``.h5`` and partial files.

    ``bad_markers`` are ``{path, reason[, newer]}``: ``newer`` is True for a marker of a newer format version
    (its reason names the version), which readers refuse rather than skip.
    """

    shards: list[ShardEntry] = field(default_factory=list)
    bad_markers: list[dict] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)

    def raise_for_bad_markers(self) -> None:
        """Refuse a folder with a damaged or newer-version marker (data is never dropped silently: the
        validator says what is wrong); a newer version is named first.

        Raises:
            InputError: ``<marker>: <reason>``.
        """
        if self.bad_markers:
            bad = next((b for b in self.bad_markers if b.get("newer")), self.bad_markers[0])
            raise InputError(f"{bad['path']}: {bad['reason']}")

    def with_samples(self, split: str | None = None) -> list[ShardEntry]:
        """Shards that hold samples in an HDF5 file (of ``split``, or of every split)."""
        return [s for s in self.shards if s.path is not None and s.count and split in (None, s.split)]


def list_shards(out: str | os.PathLike) -> ShardListing:
    """The complete shards of an output folder, by split then shard number."""
    out = Path(out)
    listing = ShardListing()
    for split in SPLITS:
        folder = out / split
        if not folder.is_dir():
            continue
        marked = set()
        for marker_path in sorted(folder.glob("*_stats.json")):
            try:
                marker = read_marker(marker_path)
            except NewerFormatError as exc:  # never misread: said as it is, and refused by every reader
                listing.bad_markers.append({"path": str(marker_path), "reason": str(exc), "newer": True})
                continue
            except (OSError, MarkerError) as exc:
                listing.bad_markers.append({"path": str(marker_path), "reason": f"unreadable marker ({exc})"})
                continue
            path = folder / marker.file if marker.file else None
            if path is not None:
                marked.add(path.name)
            listing.shards.append(ShardEntry(split, marker.shard, path, marker))
        listing.orphans += [str(p) for p in sorted(folder.glob("*.h5")) if p.name not in marked]
        listing.partials += [str(p) for p in sorted(folder.rglob(f"*{PARTIAL}*"))]
    listing.shards.sort(key=lambda s: (SPLITS.index(s.split), s.shard))
    return listing


def shard_files(paths: str | os.PathLike | Iterable[str | os.PathLike], split: str | None = None) -> list[Path]:
    """Expand output folders (complete shards of ``split``, or of every split) and shard files, in order.

    Raises:
        InputError: a path does not exist, a folder has a damaged marker (data is never dropped silently:
            the validator says what is wrong), or nothing is left.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            listing = list_shards(p)
            listing.raise_for_bad_markers()
            files += [s.path for s in listing.with_samples(split)]
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"{where}: no complete shard" + (f" in split {split!r}" if split else ""))
    return files
