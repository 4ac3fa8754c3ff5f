"""Which objects each split may use, and the store a worker process opens once for a whole run.

Objects are split by source image, as backgrounds are split by group, so val objects are unseen in train.
The split is a pure function of the store and the seed, so every worker recomputes it instead of receiving it.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from blursynth.objects.store import ObjectStore
from blursynth.ops.splits import assign_splits


def object_splits(store: ObjectStore, seed: int, val_fraction: float) -> dict[str, np.ndarray]:
    """Bank indices usable by each split: whole source images go to one split (as backgrounds do).

    With too few source images to give both splits an object, both use the whole bank.
    """
    sources = sorted({r["source"] for r in store.records})
    split_of = assign_splits(sources, val_fraction, seed + 1) if val_fraction > 0 else dict.fromkeys(sources, "train")
    out = {s: np.array([i for i, r in enumerate(store.records) if split_of[r["source"]] == s], dtype=np.int64)
           for s in ("train", "val")}
    if val_fraction > 0 and (not len(out["train"]) or not len(out["val"])):
        everything = np.arange(len(store.records), dtype=np.int64)
        out = {"train": everything, "val": everything}
    return out


def open_store(path: str, seed: int, val_fraction: float) -> tuple[ObjectStore, dict[str, np.ndarray]]:
    """The store and its per-split object indices, opened once per process for all the units it runs.

    Units of one run share the store's patch cache this way. A store rebuilt at the same path (``--overwrite``)
    has another modification time or size, so it is opened afresh.
    """
    stat = os.stat(path)
    return _open_store(path, stat.st_mtime_ns, stat.st_size, seed, val_fraction)


@functools.lru_cache(maxsize=1)  # one run at a time per process: an old store's cache is let go
def _open_store(path: str, mtime_ns: int, size: int, seed: int, val_fraction: float
                ) -> tuple[ObjectStore, dict[str, np.ndarray]]:
    store = ObjectStore(path)
    return store, object_splits(store, seed, val_fraction)
