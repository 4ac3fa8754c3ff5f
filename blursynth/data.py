"""Public reader API: a torch ``Dataset`` over blursynth shards.

>>> from blursynth.data import ShardDataset
>>> ds = ShardDataset("out/", split="train", crop=256, augment=True)
>>> item = ds[0]        # {"blur": (3, 256, 256) float32 in [0, 1], "sharp": ..., "meta": JSON string}
>>> loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=4, shuffle=True)

The camera model on the fly (issue 19, docs/realism.md): ``camera="rsblur"`` (or a ``CameraConfig``) sends each
item's blur through RSBlur's pipeline again with a fresh draw, seeded by ``camera_seed(seed, epoch, index)``:

>>> ds = ShardDataset("out/", split="train", crop=256, camera="rsblur", seed=0)
>>> for epoch in range(100):
...     ds.set_epoch(epoch)      # as DistributedSampler.set_epoch: other draws every epoch
...     for batch in torch.utils.data.DataLoader(ds, batch_size=8, num_workers=4, shuffle=True): ...

The draws never depend on the worker id or a global RNG, so 0, 1 or N workers give the same data. Call
``set_epoch`` before each epoch's iterator is made (workers receive a copy of the dataset then; with
``persistent_workers=True`` they would keep the epoch they started with). Two pitfalls: without ``set_epoch``
every epoch repeats epoch 0's draws (the same noise on the same item, every epoch), and ``seed=None`` means
seed 0 for the camera (a warning says so), so two datasets concatenated with the same seed (or none) share
their draws at equal indices: give each its own seed.

Shards are read through ``shards.reader.ShardReader``: each file is opened lazily, once per process (a reader
pickled into a DataLoader worker reopens its file there), so the dataset is safe with ``num_workers > 0``.
Only complete shards are read: a folder is resolved through its commit markers
(``shards.listing.shard_files``); an explicit ``.h5`` path is read as given.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
from collections.abc import Sequence

import numpy as np
import torch

from blursynth.camera import CameraConfig, camera_config, camera_seed
from blursynth.errors import ConfigError, InputError
from blursynth.ops.crf import CRF, create_crf
from blursynth.seeding import derive_seed
from blursynth.shards.listing import shard_files
from blursynth.shards.reader import ShardReader

KEYS = ("blur", "sharp", "mask", "blur_map")
SAT_MASK = "sat_mask"
logger = logging.getLogger(__name__)


class ShardDataset(torch.utils.data.Dataset):
    """Samples of one or many shards as float tensors.

    Args:
        paths: output folder(s) and/or ``.h5`` shard file(s).
        split: ``train`` or ``val`` when ``paths`` holds output folders (None: every split).
        crop: None (whole images), an int (square) or ``(h, w)``; images smaller than the crop are an error.
        keys: datasets to return, in ``blur``, ``sharp``, ``mask``, ``blur_map``. ``mask`` is scaled to [0, 1].
        augment: random horizontal/vertical flips and (for square crops) 90-degree rotations.
        random_crop: random crop position (training); False takes the centre crop (evaluation).
        camera: None, ``"none"``, ``"rsblur"`` or a ``blursynth.camera.CameraConfig``: the camera model applied
            to the blur on the fly (after the crop; the sharp image is never touched). The stored blur is
            linearised with the dataset's own CRF (its meta's ``crf``/``gamma``), goes through the camera and is
            re-encoded with that CRF; the shards' ``sat_mask`` feeds the saturation stage (without it, a
            warning and no saturation). A dataset whose blur already went through a camera is refused.
        seed: seeds the camera draws, ``camera_seed(seed, epoch, index)``; None means 0 for the camera (with a
            warning when ``camera`` is set). The draws are keyed by (seed, epoch, index) alone: call
            :meth:`set_epoch` at every epoch or each epoch repeats the same draws, and two datasets (e.g. in a
            ``ConcatDataset``) with the same seed share draws at equal indices, so give them different seeds.
            When given, the random crop and the flips are drawn from ``(seed, epoch, index)`` too; None keeps
            torch's global RNG there.

    Items are dicts: every key as a ``(C, H, W)`` float32 tensor (``C`` = 3 for images, 1 for maps), plus
    ``meta`` (the sample's JSON string, so the default collate works), ``index`` and, with a camera,
    ``camera`` (the item's draw as a JSON string).

    Attributes:
        files: the shard files, in reading order; ``lengths``: samples per file; ``sizes``: ``(h, w)`` per file.
        Samples are numbered file after file, each file's in stored order. The settings are read-only: build
        another dataset for other crops.
    """

    def __init__(self, paths, split: str | None = None, crop: int | tuple[int, int] | None = None,
                 keys: Sequence[str] = ("blur", "sharp"), augment: bool = False, random_crop: bool = True,
                 camera: str | CameraConfig | None = None, seed: int | None = None) -> None:
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
        self.seed = seed
        self.epoch = 0
        self.camera = camera_config(camera) if isinstance(camera, str) else camera
        if self.camera is not None and not isinstance(self.camera, CameraConfig):
            raise ConfigError(f"camera: expected none, rsblur or a CameraConfig, got {camera!r}")
        self._crfs: list[CRF | None] = [None] * len(self.files)
        self._has_sat = [False] * len(self.files)
        if self.camera is not None:
            self._probe_camera_inputs()
            if seed is None:
                logger.warning("ShardDataset(camera=...): seed=None draws the camera from seed 0; pass seed= (a "
                               "different one per dataset that is concatenated) and call set_epoch(e) every epoch")

    def _probe_camera_inputs(self) -> None:
        """Each shard's CRF and ``sat_mask``; refuse blur that already went through a camera."""
        missing_sat = []
        for fi, reader in enumerate(self._readers):
            with reader:
                if reader.info("blur").dtype != np.uint8:
                    raise InputError(f"{reader.path}: camera needs 8-bit blur, got {reader.info('blur').dtype}")
                metas = [json.loads(t) for t in reader.meta_texts()]
                self._has_sat[fi] = SAT_MASK in reader
            if any("camera" in m for m in metas):
                raise ConfigError(f"{reader.path}: the blur already went through a camera (its meta has 'camera'); "
                                  "read it with camera=None")
            if metas:
                if "crf" not in metas[0]:
                    raise InputError(f"{reader.path}: sample meta has no 'crf', so the blur cannot be linearised")
                gamma = metas[0].get("gamma")
                self._crfs[fi] = create_crf(metas[0]["crf"], 2.2 if gamma is None else gamma)
            if not self._has_sat[fi]:
                missing_sat.append(reader.path)
        if missing_sat and self.camera.saturation:
            logger.warning("%s%s: no %r dataset, so the camera's saturation stage is skipped (make the shards with "
                           "--camera rsblur or --sat-mask to record it)", missing_sat[0],
                           f" and {len(missing_sat) - 1} more shard(s)" if len(missing_sat) > 1 else "", SAT_MASK)

    def set_epoch(self, epoch: int) -> None:
        """Draw the camera (and, with a seed, the crops and flips) of ``epoch``: call before each epoch's
        iterator is made; without it every epoch repeats epoch 0's draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def locate(self, index: int) -> tuple[int, int]:
        """``(file number, sample number in that file)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        fi = bisect.bisect_right(self._ends, index)
        return fi, index - (self._ends[fi - 1] if fi else 0)

    def _box(self, h: int, w: int, gen: torch.Generator | None) -> tuple[slice, ...]:
        if self.crop is None:
            return ()
        ch, cw = self.crop
        if self.random_crop:
            y0 = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            x0 = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        else:
            y0, x0 = (h - ch) // 2, (w - cw) // 2
        return np.s_[y0 : y0 + ch, x0 : x0 + cw]

    def __getitem__(self, index: int) -> dict:
        fi, i = self.locate(index)
        reader = self._readers[fi]
        h, w = self.sizes[fi]
        gen = None
        if self.seed is not None:  # crops and flips of (seed, epoch, index), never of the worker
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "augment", self.epoch, index))
        box = self._box(h, w, gen)
        flips = rot = 0
        if self.augment:
            flips = int(torch.randint(0, 4, (1,), generator=gen))
            side = self.crop or (h, w)
            rot = int(torch.randint(0, 4, (1,), generator=gen)) if side[0] == side[1] else 0
        item = {}
        for key in self.keys:
            arr = reader.array(key, i, box)
            if key == "blur" and self.camera is not None:
                arr, item["camera"] = self._camera(fi, i, index, arr, box)
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

    def _camera(self, fi: int, i: int, index: int, blur: np.ndarray, box: tuple) -> tuple[np.ndarray, str]:
        """The camera on one (cropped) stored blur: ``(uint8 (h, w, 3), the draw as JSON)``."""
        from blursynth.camera import draw_camera, render_camera

        params = draw_camera(self.camera, camera_seed(0 if self.seed is None else self.seed, self.epoch, index))
        sat = None
        if self._has_sat[fi] and self.camera.saturation:
            sat = self._readers[fi].array(SAT_MASK, i, box).astype(np.float32) / np.float32(255)
        crf = self._crfs[fi]
        return render_camera(crf.decode(blur), crf, params, self.camera, sat), json.dumps(params)

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
