"""Reading one shard: a lazy, picklable :class:`ShardReader`, and :func:`read_shard` (a whole shard in memory).

Every reader of shard contents goes through :class:`ShardReader` (the torch dataset, inspect, train-check,
export, the validator), so HDF5 is opened in one place. Which shards are complete is decided by their
markers (``shards/listing.py``), never by the ``.h5`` files present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from blursynth.errors import InputError
from blursynth.shards.markers import FORMAT, version_problem


class UnreadableShard(InputError):
    """The file cannot be opened as HDF5 (missing, truncated, not HDF5). ``reason`` is HDF5's message."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: unreadable shard ({reason})")


class UnsupportedShard(InputError):
    """A shard whose ``version`` attribute this blursynth cannot read (a newer format): refused, not misread."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class DatasetInfo:
    """How a dataset is stored: what the format contract (docs/shard-format.md) is checked against."""

    dtype: np.dtype
    shape: tuple[int, ...]
    chunks: tuple[int, ...] | None


class ShardReader:
    """One shard file, opened on first use and kept open until :meth:`close`.

    The open handle belongs to the process that opened it: a reader pickled into a DataLoader worker (or
    used after a fork) leaves the handle behind and opens the file again in the new process, so the reader is
    safe with ``num_workers > 0``. Used as a context manager it closes on exit; it reopens if used again.

    Args:
        path: the ``.h5`` file.

    Raises (on first use):
        UnreadableShard: the file cannot be opened.
        UnsupportedShard: its ``version`` attribute is a newer shard format than this blursynth reads.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_file": None, "_pid": None}  # h5py handles do not cross processes

    def __enter__(self) -> ShardReader:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> ShardReader:
        """Open the file now (in this process), so that an unreadable file is reported here."""
        self._h5()
        return self

    @property
    def is_open(self) -> bool:
        return self._file is not None and self._pid == os.getpid()

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def _h5(self) -> h5py.File:
        if self._pid != os.getpid():
            self._file, self._pid = None, os.getpid()  # a handle inherited through fork is not ours to use
        if self._file is None:
            try:
                f = h5py.File(self.path, "r")
            except OSError as exc:
                raise UnreadableShard(self.path, str(exc)) from None
            version = f.attrs.get("version")
            problem = version_problem(int(version) if isinstance(version, np.integer) else version)
            if problem is not None:
                f.close()
                raise UnsupportedShard(self.path, problem)
            self._file = f
        return self._file

    # -- structure -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Samples in the shard (the length of ``blur``)."""
        return int(self._h5()["blur"].shape[0])

    def __contains__(self, name: str) -> bool:
        return name in self._h5()

    @property
    def names(self) -> tuple[str, ...]:
        """The file's top-level dataset names (``blur``, ``sharp``, ``meta``, ``mask``, ``blur_map``...)."""
        return tuple(self._h5())

    @property
    def attrs(self) -> dict:
        """File attributes as Python values (``format``, ``version``, ``split``, ``shard``, ``count``...)."""
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self._h5().attrs.items()}

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images."""
        shape = self._h5()["blur"].shape
        return int(shape[1]), int(shape[2])

    def sample_datasets(self) -> tuple[str, ...]:
        """The per-sample image datasets: ``blur``, ``sharp``, then every other dataset with one entry per
        sample (``mask``, ``blur_map``, ``measurable``, ``blur_linear``...), by name. ``meta`` is not one."""
        f = self._h5()
        n = len(self)
        others = sorted(k for k in f if k not in ("blur", "sharp", "meta") and isinstance(f[k], h5py.Dataset)
                        and f[k].ndim >= 3 and f[k].shape[0] == n)
        return ("blur", "sharp", *others)

    def info(self, name: str) -> DatasetInfo:
        dset = self._h5()[name]
        return DatasetInfo(dset.dtype, tuple(dset.shape), dset.chunks)

    # -- contents ------------------------------------------------------------------------------------------
    def array(self, name: str, index: int | slice = slice(None), region: tuple[slice, ...] = ()) -> np.ndarray:
        """``name[index]``, optionally only ``region`` of each image (HDF5 reads just that part's chunks).

        Shape:
            ``(H, W, 3)`` images, ``(H, W)`` maps; with a slice index a leading sample axis.
        """
        return self._h5()[name][(index, *region)]

    def meta_text(self, index: int) -> str:
        """Sample ``index``'s meta as stored: one JSON object."""
        return self._h5()["meta"].asstr()[index]

    def meta_texts(self) -> list[str]:
        return list(self._h5()["meta"].asstr()[:])

    def meta(self, index: int) -> dict:
        return json.loads(self.meta_text(index))

    def metas(self) -> list[dict]:
        """Every sample's meta, parsed."""
        return [json.loads(text) for text in self.meta_texts()]


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
        with ShardReader(path) as reader:
            attrs = reader.attrs
            if attrs.get("format") != FORMAT:
                raise InputError(f"{path}: not a blursynth shard (format attribute {attrs.get('format')!r})")
            meta = reader.metas()
            arrays = {name: reader.array(name) for name in reader.names if name != "meta"}
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: unreadable shard ({exc})") from None
    return Shard(path, attrs, meta, arrays)
