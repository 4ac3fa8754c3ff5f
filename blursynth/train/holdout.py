"""Which samples ``train-check`` trains on and which it measures: held-out windows of the train split.

The verdict is about *learnability*: does a model trained on ``train`` restore windows from the same
distribution? So the measured windows are held out of ``train`` itself, never only ``val``, whose sources
(and so motion) the model never saw: a dataset of two valid pans, one per split in different directions,
used to fail on val alone. ``val`` is measured beside it as generalisation (a warning, not a failure).

Rule: per train shard (one source's windows in time order) a seeded block of ``ceil(holdout * n)``
consecutive windows at a random position (``seeding.create_rng(seed, "holdout", split, shard)``), so the
held-out windows are spread over the sources and not biased to their ends. A training window that shares a
frame with a held-out window of its source (``meta["frames"]``; overlapping recipes such as ``--stride`` <
N) is dropped, so no held-out frame is ever trained on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from blursynth.errors import InputError
from blursynth.seeding import create_rng
from blursynth.shards.listing import ShardEntry, list_shards
from blursynth.shards.reader import ShardReader


@dataclass
class CheckSplits:
    """Datasets of one check: ``train`` (random crops), ``heldout`` and ``val`` (centre crops; val may be None).

    ``heldout_index`` / ``dropped``: positions (in the train shards' sample numbering) held out, and training
    windows left out because they share frames with a held-out one.
    """

    train: object
    heldout: object
    val: object | None
    heldout_index: list[int]
    dropped: list[int]
    how: str


def _frames(text: str) -> tuple[str | None, frozenset[int]]:
    try:
        meta = json.loads(text)
    except ValueError:
        return None, frozenset()
    frames = meta.get("frames") if isinstance(meta, dict) else None
    ok = isinstance(frames, list) and all(isinstance(f, int) for f in frames)
    return (meta.get("source") if isinstance(meta, dict) else None), frozenset(frames if ok else ())


def choose_heldout(entries: list[ShardEntry], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(held-out positions, dropped training positions) over the samples of ``entries`` numbered in order.

    Raises:
        InputError: no shard has two samples (nothing can be held out and trained on).
    """
    heldout: list[int] = []
    windows: list[tuple[str | None, frozenset[int]]] = []
    position = 0
    for entry in entries:
        with ShardReader(entry.path) as reader:
            n = len(reader)
            windows += [_frames(t) for t in reader.meta_texts()]
        k = max(1, math.ceil(holdout * n)) if n > 1 else 0
        k = min(k, n - 1)
        if k:
            start = int(create_rng(seed, "holdout", entry.split, entry.shard).integers(0, n - k + 1))
            heldout += range(position + start, position + start + k)
        position += n
    held = set(heldout)
    taken: dict[str | None, set[int]] = {}
    for i in heldout:
        source, frames = windows[i]
        taken.setdefault(source, set()).update(frames)
    dropped = [i for i, (source, frames) in enumerate(windows)
               if i not in held and source is not None and frames & taken.get(source, set())]
    return heldout, dropped


def eval_side(entries: list[ShardEntry], eval_crop: int | None) -> int | None:
    """The evaluation centre crop: ``eval_crop`` reduced to the smallest image side, a multiple of 4."""
    if eval_crop is None:
        return None
    side = min(eval_crop, *(min(e.marker.height, e.marker.width) for e in entries))
    return side - side % 4


def check_splits(out: Path, holdout: float, keys: tuple[str, ...], crop: int | None = None,
                 eval_crop: int | None = None, seed: int = 0) -> CheckSplits:
    """Training, held-out and val datasets of ``out`` (see the module docstring for the rule).

    Raises:
        InputError: no train samples, too few to hold some out, or images smaller than ``crop``.
    """
    import torch

    from blursynth.data import ShardDataset

    listing = list_shards(out)
    train_shards, val_shards = listing.with_samples("train"), listing.with_samples("val")
    if not train_shards:
        raise InputError(f"{out}: no train samples to train on")
    for entry in train_shards if crop is not None else ():
        h, w = entry.marker.height, entry.marker.width  # the validator checked them against the file
        if h < crop or w < crop:
            raise InputError(f"{entry.path}: {w}x{h} images are smaller than the {crop}px crop; "
                             "pass a smaller --crop")
    heldout, dropped = choose_heldout(train_shards, holdout, seed)
    train = ShardDataset([e.path for e in train_shards], keys=keys, crop=crop)
    keep = sorted(set(range(len(train))) - set(heldout) - set(dropped))
    if not heldout or not keep:
        raise InputError(f"{out}: too few train samples ({len(train)}) to hold some out and train on the rest")
    side = eval_side(train_shards, eval_crop)
    evaluation = ShardDataset([e.path for e in train_shards], keys=keys, crop=side, random_crop=False)
    val = None
    if val_shards:
        val = ShardDataset([e.path for e in val_shards], keys=keys, crop=eval_side(val_shards, eval_crop),
                           random_crop=False)
    how = f"held-out train windows (seeded block of {holdout:.0%} of every train shard)"
    return CheckSplits(torch.utils.data.Subset(train, keep), torch.utils.data.Subset(evaluation, heldout), val,
                       heldout, dropped, how)
