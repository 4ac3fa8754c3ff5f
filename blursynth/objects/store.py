"""The object bank: ``OUT/objects.h5``, written once per output, read lazily by every worker.

The only form the bank takes, in a run and in tests. Why a file and not a list of patches in memory: all of
VOC 2012 trainval is on the order of a gigabyte of patches. Built once by the driver and stored next to the
shards, the bank is

* read lazily: a worker holds only the patches it is using (a small LRU cache), whatever the bank size;
* shared by workers on other machines through the output folder (issue 7's executors), never pickled;
* reused by a resumed run instead of re-reading VOC/COCO (tens of seconds for VOC 2012);
* part of the record: the exact pixels every sample was cut from stay next to the samples.

Layout (HDF5, every patch's pixels concatenated in bank order; lzf-compressed, alpha is mostly 0 and 1)::

    rgb      (P, 3) uint8      straight RGB of all patches, row-major per patch
    alpha    (P,)   float32    coverage in [0, 1]
    offset   (K+1,) int64      patch k is pixels offset[k] .. offset[k+1]-1
    shape    (K, 2) int32      (h, w) of patch k
    meta     (K,)   str        JSON {source, instance_id, class_name, bbox, area}; source: the image relative
                               to its dataset's root (version 2; version 1 held the path as given)
    attrs    format="blursynth-objects", version, count, skipped (JSON list), fingerprint (JSON)

Written as ``objects.h5.partial`` and renamed, like shards: an interrupted build is never trusted.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from blursynth import interrupt
from blursynth.errors import InputError, OutputError
from blursynth.objects.patch import Candidate, ObjectPatch, iter_patches, no_usable_object, skip_counts
from blursynth.shards.files import PARTIAL, create_h5, fsync_path, write_failure

log = logging.getLogger("blursynth.objects")

STORE_NAME = "objects.h5"
FORMAT = "blursynth-objects"
VERSION = 2  # 2 (issue 18): objects keyed relative to their dataset root; a version-1 store is rebuilt
_CHUNK = 1 << 15


def write_store(path: str | os.PathLike, sources: Iterable[tuple[str, Iterable[Candidate | dict]]], *,
                min_area: float, fingerprint: dict) -> tuple[int, list[dict]]:
    """Cut the objects of one or more datasets and write them to ``path`` (atomically).

    Args:
        path: the store file to create.
        sources: ``(name, candidates)`` per dataset, in bank order (VOC first, then COCO). An object seen
            before under the same name (same source image and instance id, e.g. from overlapping VOC splits)
            is kept once; the keys of two datasets (paths relative to each root) are never taken for one
            another.
        min_area: smallest object kept (see :func:`~blursynth.objects.patch.cut_patch`).
        fingerprint: settings the store was built with; a later run reuses the store only if they match.

    Returns:
        (number of objects, skip records).

    Raises:
        InputError: not a single usable object in any dataset (nothing is left on disk).
    """
    path = Path(path)
    partial = path.with_name(path.name + PARTIAL)
    partial.unlink(missing_ok=True)
    skipped: list[dict] = []
    seen: set[tuple[str, str, int]] = set()
    count = 0
    raw = None
    try:
        f, raw = create_h5(partial)  # write errors are kept from HDF5 (see GuardedFile)
        with f:
            rgb = f.create_dataset("rgb", shape=(0, 3), maxshape=(None, 3), dtype=np.uint8, chunks=(_CHUNK, 3),
                                   compression="lzf")
            alpha = f.create_dataset("alpha", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(_CHUNK,),
                                     compression="lzf")
            offsets, shapes, metas = [0], [], []
            names = []
            for name, items in sources:
                names.append(name)
                before = count
                for item in iter_patches(items, min_area=min_area):
                    if isinstance(item, dict):
                        skipped.append(item)
                        continue
                    if (name, *item.key) in seen:
                        continue
                    seen.add((name, *item.key))
                    n = item.alpha.size
                    start = offsets[-1]
                    with interrupt.deferred():  # HDF5 writes are never torn (see interrupt.deferred)
                        rgb.resize(start + n, axis=0)
                        alpha.resize(start + n, axis=0)
                        rgb[start:] = item.rgb.reshape(-1, 3)
                        alpha[start:] = item.alpha.reshape(-1)
                    raw.check()
                    interrupt.check()
                    offsets.append(start + n)
                    shapes.append(item.alpha.shape)
                    metas.append(json.dumps({"source": item.source, "instance_id": item.instance_id,
                                             "class_name": item.class_name, "bbox": list(item.bbox),
                                             "area": item.area}, sort_keys=True))
                    count += 1
                log.info("%s: %d objects", name, count - before)
            if not count:
                raise no_usable_object(" and ".join(names), skipped)
            with interrupt.deferred():
                f.create_dataset("offset", data=np.asarray(offsets, dtype=np.int64))
                f.create_dataset("shape", data=np.asarray(shapes, dtype=np.int32).reshape(-1, 2))
                f.create_dataset("meta", data=metas, dtype=h5py.string_dtype("utf-8"))
                f.attrs.update(format=FORMAT, version=VERSION, count=count, skipped=json.dumps(skipped),
                               fingerprint=json.dumps(fingerprint, sort_keys=True))
                f.close()
        raw.sync_close()
        interrupt.check()
        os.replace(partial, path)
        fsync_path(path.parent)
    except OSError as exc:
        if raw is not None:
            raw.close()
        partial.unlink(missing_ok=True)
        if raw is not None and raw.error is None and exc.filename != str(partial):
            raise  # not a write of the store (reading an input goes wrong elsewhere)
        raise OutputError(f"{path}: cannot write ({write_failure(exc)})") from None
    except BaseException:
        if raw is not None:
            raw.close()
        partial.unlink(missing_ok=True)
        raise
    return count, skipped


def store_matches(path: str | os.PathLike, fingerprint: dict) -> bool:
    """Whether ``path`` is a complete store built with ``fingerprint`` (so it can be reused)."""
    try:
        with h5py.File(path, "r") as f:
            return (f.attrs.get("format") == FORMAT and f.attrs.get("version") == VERSION
                    and json.loads(f.attrs["fingerprint"]) == json.loads(json.dumps(fingerprint, sort_keys=True)))
    except (OSError, KeyError, ValueError):
        return False


class ObjectStore:
    """Read-only, lazily opened view of a store file; safe to pickle (the file is reopened per process).

    Args:
        path: the ``objects.h5`` file.
        cache_bytes: patches kept decoded (least recently used first out).

    Attributes:
        records: per object ``{source, instance_id, class_name, bbox, area, shape}`` (small; loaded at once).
        skipped: skip records of the build.
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = 256 << 20) -> None:
        self.path = str(path)
        self.cache_bytes = cache_bytes
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise InputError(f"{self.path}: not a blursynth object store")
                shapes = f["shape"][:]
                self._offsets = f["offset"][:]
                self.records = [json.loads(m) | {"shape": [int(h), int(w)]}
                                for m, (h, w) in zip(f["meta"].asstr()[:], shapes, strict=True)]
                self.skipped = json.loads(f.attrs.get("skipped", "[]"))
        except (OSError, KeyError) as exc:
            raise InputError(f"{self.path}: unreadable object store ({exc})") from None
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._cache: OrderedDict[int, ObjectPatch] = OrderedDict()
        self._cached = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, _cache=OrderedDict(), _cached=0)
        return state

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def __getitem__(self, index: int) -> ObjectPatch:
        index = int(index)
        patch = self._cache.get(index)
        if patch is not None:
            self._cache.move_to_end(index)
            return patch
        rec = self.records[index]
        f = self._open()
        a, b = int(self._offsets[index]), int(self._offsets[index + 1])
        h, w = rec["shape"]
        patch = ObjectPatch(rgb=f["rgb"][a:b].reshape(h, w, 3), alpha=f["alpha"][a:b].reshape(h, w),
                            source=rec["source"], instance_id=int(rec["instance_id"]),
                            class_name=rec["class_name"], bbox=tuple(rec["bbox"]), area=float(rec["area"]))
        self._cache[index] = patch
        self._cached += (b - a) * 7
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.alpha.size * 7
        return patch

    def class_counts(self) -> dict[str, int]:
        """Number of objects per class name, sorted by name."""
        return dict(sorted(Counter(r["class_name"] for r in self.records).items()))

    def skip_counts(self) -> dict[str, int]:
        """Skip records of the build per kind (see :func:`~blursynth.objects.patch.skip_counts`)."""
        return skip_counts(self.skipped)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
