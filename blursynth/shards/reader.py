"""Reading what the writer produced: the list of complete shards of an output, and one shard's contents.

Only shards with a commit marker (``NNNNN_stats.json``) are complete; ``.h5`` files without one and
``*.partial`` files are never read as data (docs/shard-format.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from blursynth.errors import InputError
from blursynth.shards.files import PARTIAL, read_json
from blursynth.shards.manifest import SPLITS

IMAGE_KEYS = ("blur", "sharp")


@dataclass(frozen=True)
class ShardEntry:
    """A complete shard: ``split``, ``shard`` number, its ``.h5`` path (None for a count-0 marker), marker."""

    split: str
    shard: int
    path: Path | None
    marker: dict

    @property
    def count(self) -> int:
        return int(self.marker.get("count", 0))


@dataclass
class ShardListing:
    """Complete shards plus what a reader must ignore: unreadable markers, orphan ``.h5`` and partial files."""

    shards: list[ShardEntry] = field(default_factory=list)
    bad_markers: list[dict] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)


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
                marker = read_json(marker_path)
                shard = int(marker["shard"])
                int(marker.get("count", 0))
                file = marker.get("file")
                if file is not None and not (isinstance(file, str) and file and "/" not in file):
                    raise ValueError(f"file {file!r} is not a file name")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                listing.bad_markers.append({"path": str(marker_path), "reason": f"unreadable marker ({exc})"})
                continue
            path = folder / file if file else None
            if path is not None:
                marked.add(path.name)
            listing.shards.append(ShardEntry(split, shard, path, marker))
        listing.orphans += [str(p) for p in sorted(folder.glob("*.h5")) if p.name not in marked]
        listing.partials += [str(p) for p in sorted(folder.rglob(f"*{PARTIAL}*"))]
    listing.shards.sort(key=lambda s: (SPLITS.index(s.split), s.shard))
    return listing


@dataclass
class Shard:
    """A shard read into memory: ``attrs``, per-sample ``meta`` dicts and every array dataset by name."""

    path: Path
    attrs: dict
    meta: list[dict]
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, index: int) -> dict:
        """Sample ``index``: ``{"blur", "sharp", ("mask", "blur_map", ...), "meta"}``."""
        return {name: arr[index] for name, arr in self.arrays.items()} | {"meta": self.meta[index]}


def read_shard(path: str | os.PathLike) -> Shard:
    """Read a whole shard (for inspection; training reads lazily through ``blursynth.data``).

    Raises:
        InputError: the file is missing, not HDF5 or not a blursynth shard.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "blursynth-shard":
                raise InputError(f"{path}: not a blursynth shard (format attribute {f.attrs.get('format')!r})")
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            meta = [json.loads(m) for m in f["meta"].asstr()[:]]
            arrays = {name: f[name][:] for name in f if name != "meta"}
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: unreadable shard ({exc})") from None
    return Shard(path, attrs, meta, arrays)
