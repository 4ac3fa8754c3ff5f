"""Public reader API: a torch ``Dataset`` over blursynth shards.

>>> from blursynth.data import ShardDataset
>>> ds = ShardDataset("out/", split="train", crop=256, augment=True)
>>> item = ds[0]        # {"blur": (3, 256, 256) float32 in [0, 1], "sharp": ..., "meta": JSON string}
>>> loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=4, shuffle=True)

Shards are read through ``shards.reader.ShardReader``: each file is opened lazily, once per process (a reader
pickled into a DataLoader worker reopens its file there), so the dataset is safe with ``num_workers > 0``.
Only complete shards are read: a folder is resolved through its commit markers
(``shards.listing.shard_files``); an explicit ``.h5`` path is read as given.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np
import torch

from blursynth.errors import ConfigError, InputError
from blursynth.shards.listing import shard_files
from blursynth.shards.reader import ShardReader

KEYS = ("blur", "sharp", "mask", "blur_map")


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

    Attributes:
        files: the shard files, in reading order; ``lengths``: samples per file; ``sizes``: ``(h, w)`` per file.
        Samples are numbered file after file, each file's in stored order. The settings are read-only: build
        another dataset for other crops.
    """

    def __init__(self, paths, split: str | None = None, crop: int | tuple[int, int] | None = None,
                 keys: Sequence[str] = ("blur", "sharp"), augment: bool = False, random_crop: bool = True) -> None:
        self.files = shard_files(paths, split)
        self.keys = tuple(keys)
        if not self.keys or any(k not in KEYS for k in self.keys):
            raise ConfigError(f"keys: expected some of blur, sharp, mask, blur_map, got {keys!r}")
        if isinstance(crop, int):
            crop = (crop, crop)
        if crop is not None and (crop[0] < 1 or crop[1] < 1):
            raise ConfigError(f"crop: expected a positive size, got {crop}")
        self.crop = crop
        self.augment = augment
        self.random_crop = random_crop
        self._readers = [ShardReader(path) for path in self.files]
        self.lengths: list[int] = []
        self.sizes: list[tuple[int, int]] = []
        for reader in self._readers:
            with reader:  # probed and closed: items reopen lazily, in whichever process reads them
                missing = [k for k in self.keys if k not in reader]
                if missing:
                    raise InputError(f"{reader.path}: shard has no {missing[0]!r} dataset")
                self.lengths.append(len(reader))
                self.sizes.append(reader.image_size)
            h, w = self.sizes[-1]
            if crop is not None and (h < crop[0] or w < crop[1]):
                raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the {h}x{w} images of {reader.path}")
        self._ends = list(itertools.accumulate(self.lengths))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def locate(self, index: int) -> tuple[int, int]:
        """``(file number, sample number in that file)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        fi = bisect.bisect_right(self._ends, index)
        return fi, index - (self._ends[fi - 1] if fi else 0)

    def _box(self, h: int, w: int) -> tuple[slice, ...]:
        if self.crop is None:
            return ()
        ch, cw = self.crop
        if self.random_crop:
            y0 = int(torch.randint(0, h - ch + 1, (1,)))
            x0 = int(torch.randint(0, w - cw + 1, (1,)))
        else:
            y0, x0 = (h - ch) // 2, (w - cw) // 2
        return np.s_[y0 : y0 + ch, x0 : x0 + cw]

    def __getitem__(self, index: int) -> dict:
        fi, i = self.locate(index)
        reader = self._readers[fi]
        h, w = self.sizes[fi]
        box = self._box(h, w)
        flips = rot = 0
        if self.augment:
            flips = int(torch.randint(0, 4, (1,)))
            side = self.crop or (h, w)
            rot = int(torch.randint(0, 4, (1,))) if side[0] == side[1] else 0
        item = {}
        for key in self.keys:
            arr = reader.array(key, i, box)
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
        item["meta"] = reader.meta_text(i)
        item["index"] = index
        return item

    def meta(self, index: int) -> dict:
        """The parsed meta of sample ``index``."""
        fi, i = self.locate(index)
        return self._readers[fi].meta(i)

    def open_files(self) -> int:
        """How many shard files this process holds open (they open on first read and stay open)."""
        return sum(reader.is_open for reader in self._readers)

    def close(self) -> None:
        """Close every open file (reading again reopens them)."""
        for reader in self._readers:
            reader.close()
