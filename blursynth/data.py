"""Public reader API: a torch ``Dataset`` over blursynth shards.

>>> from blursynth.data import ShardDataset
>>> ds = ShardDataset("out/", split="train", crop=256, augment=True)
>>> item = ds[0]        # {"blur": (3, 256, 256) float32 in [0, 1], "sharp": ..., "meta": JSON string}
>>> loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=4, shuffle=True)

HDF5 files are opened lazily, once per process (the handle is dropped when the dataset is pickled into a
DataLoader worker), so the dataset is safe with ``num_workers > 0``. Only complete shards are read: a folder is
resolved through its commit markers (``shards.reader.list_shards``); an explicit ``.h5`` path is read as given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from blursynth.errors import ConfigError, InputError
from blursynth.shards.reader import list_shards


def shard_files(paths: str | os.PathLike | Iterable[str | os.PathLike], split: str | None = None) -> list[Path]:
    """Expand output folders (complete shards of ``split``, or of every split) and shard files, in order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            listing = list_shards(p)
            if listing.bad_markers:  # do not silently drop data: a damaged marker needs a look (validator)
                bad = listing.bad_markers[0]
                raise InputError(f"{bad['path']}: {bad['reason']}")
            files += [s.path for s in listing.shards if s.path is not None and s.count
                      and (split is None or s.split == split)]
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"{where}: no complete shard" + (f" in split {split!r}" if split else ""))
    return files


class ShardDataset(torch.utils.data.Dataset):
    """Samples of one or many shards as float tensors.

    Args:
        paths: output folder(s) and/or ``.h5`` shard file(s).
        split: ``train`` or ``val`` when ``paths`` holds output folders (None: every split).
        crop: None (whole images), an int (square) or ``(h, w)``; images smaller than the crop are an error.
        keys: datasets to return, in ``blur``, ``sharp``, ``mask``, ``blur_map``. ``mask`` is scaled to [0, 1].
        augment: random horizontal/vertical flips and (for square crops) 90-degree rotations.
        random_crop: random crop position (training); False takes the centre crop (evaluation).

    Items are dicts: every key as a ``(C, H, W)`` float32 tensor (``C`` = 3 for images, 1 for maps), plus
    ``meta`` (the sample's JSON string, so the default collate works) and ``index``.
    """

    def __init__(self, paths, split: str | None = None, crop: int | tuple[int, int] | None = None,
                 keys: Sequence[str] = ("blur", "sharp"), augment: bool = False, random_crop: bool = True) -> None:
        self.files = shard_files(paths, split)
        self.keys = tuple(keys)
        if not self.keys or any(k not in ("blur", "sharp", "mask", "blur_map") for k in self.keys):
            raise ConfigError(f"keys: expected some of blur, sharp, mask, blur_map, got {keys!r}")
        if isinstance(crop, int):
            crop = (crop, crop)
        if crop is not None and (crop[0] < 1 or crop[1] < 1):
            raise ConfigError(f"crop: expected a positive size, got {crop}")
        self.crop = crop
        self.augment = augment
        self.random_crop = random_crop
        self._index: list[tuple[int, int]] = []
        for fi, path in enumerate(self.files):
            try:
                with h5py.File(path, "r") as f:
                    missing = [k for k in self.keys if k not in f]
                    if missing:
                        raise InputError(f"{path}: shard has no {missing[0]!r} dataset")
                    n = int(f["blur"].shape[0])
                    h, w = int(f["blur"].shape[1]), int(f["blur"].shape[2])
            except OSError as exc:
                raise InputError(f"{path}: unreadable shard ({exc})") from None
            if crop is not None and (h < crop[0] or w < crop[1]):
                raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the {h}x{w} images of {path}")
            self._index += [(fi, i) for i in range(n)]
        self._handles: dict[int, h5py.File] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_handles={}, _pid=None)  # h5py handles do not cross processes
        return state

    def _file(self, fi: int) -> h5py.File:
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if fi not in self._handles:
            self._handles[fi] = h5py.File(self.files[fi], "r")
        return self._handles[fi]

    def __getitem__(self, index: int) -> dict:
        fi, i = self._index[index]
        f = self._file(fi)
        h, w = int(f["blur"].shape[1]), int(f["blur"].shape[2])
        if self.crop is None:
            box = np.s_[:, :]
        else:
            ch, cw = self.crop
            if self.random_crop:
                y0 = int(torch.randint(0, h - ch + 1, (1,)))
                x0 = int(torch.randint(0, w - cw + 1, (1,)))
            else:
                y0, x0 = (h - ch) // 2, (w - cw) // 2
            box = np.s_[y0 : y0 + ch, x0 : x0 + cw]
        flips = rot = 0
        if self.augment:
            flips = int(torch.randint(0, 4, (1,)))
            square = (self.crop or (h, w))[0] == (self.crop or (h, w))[1]
            rot = int(torch.randint(0, 4 if square else 1, (1,))) if square else 0
        item = {}
        for key in self.keys:
            arr = f[key][(i, *box)] if self.crop is not None else f[key][i]
            if arr.ndim == 2:
                arr = arr[..., None]
            if flips & 1:
                arr = arr[:, ::-1]
            if flips & 2:
                arr = arr[::-1]
            if rot:
                arr = np.rot90(arr, rot, axes=(0, 1))
            t = torch.from_numpy(np.ascontiguousarray(arr).transpose(2, 0, 1).copy())
            item[key] = t.float() / 255.0 if arr.dtype == np.uint8 else t.float()
        item["meta"] = f["meta"].asstr()[i]
        item["index"] = index
        return item

    def meta(self, index: int) -> dict:
        """The parsed meta of sample ``index``."""
        fi, i = self._index[index]
        return json.loads(self._file(fi)["meta"].asstr()[i])

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles = {}
