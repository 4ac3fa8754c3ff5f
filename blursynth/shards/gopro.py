"""The GOPRO_Large folder tree: ``<root>/<train|test>/<seq>/<folder>/NNNNNN.png``, written by one function.

``average --layout gopro`` (while averaging, ``shards/writer.py``) and ``export --layout gopro`` (from finished
shards, ``shards/export.py``) both call :func:`write_gopro_sample`, so a folder means the same in either tree:

* ``blur_gamma/``: the shards' ``blur``, the average with the configured CRF (GOPRO_Large's ``blur_gamma``);
* ``blur/``: GOPRO_Large's ``blur/``, the plain mean of code values (the linear-CRF average, ``blur_linear``:
  averaged by ``--layout gopro``, kept in the shards by ``average --keep-plain-mean``). Without it there is
  no ``blur/``, unless the CRF average is asked for there explicitly (:attr:`BlurFolder.GAMMA`, ``export
  --gopro-blur gamma``: a hard link to ``blur_gamma/``, a copy where links are not supported);
* ``sharp/``: the middle frame;
* every other per-sample array in a sibling folder named after it (``mask/``, ``blur_map/``, ``measurable/``,
  and ``blur_linear/`` when ``blur/`` holds the CRF average), encoded as ``shards/encoding.py`` says.

The split ``val`` is written as ``test/``: GOPRO_Large has ``train/`` and ``test/``, and loaders of it
(DeepDeblur-PyTorch) read those two names only. ``export --val-name`` chooses another name.
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from blursynth.shards.encoding import write_array
from blursynth.shards.names import SequenceNames, frame_name, sequence_names

#: What the split folders of a GOPRO tree are called (the split ``val`` is GOPRO_Large's ``test``).
GOPRO_SPLITS = {"train": "train", "val": "test"}
#: The array holding the plain mean of code values (``Sample.extras`` and the optional shard dataset).
PLAIN_MEAN = "blur_linear"


class BlurFolder(enum.Enum):
    """What ``blur/`` of a GOPRO tree holds (see the module docstring)."""

    PLAIN = "plain"  # the plain mean of code values when there is one, else no blur/
    GAMMA = "gamma"  # the CRF average (a hard link to blur_gamma/)


def gopro_folders(names: list[str] | tuple[str, ...], blur: BlurFolder) -> dict[str, str]:
    """Array name -> folder of the tree, for a sample holding the arrays ``names`` (``blur``, ``sharp``...)."""
    folders = {}
    for name in names:
        if name == "blur":
            folders[name] = "blur_gamma"
        elif name == PLAIN_MEAN and blur is BlurFolder.PLAIN:
            folders[name] = "blur"
        else:
            folders[name] = name
    return folders


def sample_folder(root: str | os.PathLike, split: str, meta: dict, *, split_names: Mapping[str, str] = GOPRO_SPLITS,
                  seq_names: SequenceNames | None = None) -> tuple[Path, str]:
    """(sequence folder, frame name) of a sample in the tree rooted at ``root``."""
    names = seq_names if seq_names is not None else sequence_names(())
    seq = names[str(meta.get("source", "sample"))]
    return Path(root) / split_names.get(split, split) / seq, frame_name(meta)


def write_gopro_sample(folder: Path, frame: str, arrays: Mapping[str, np.ndarray], *, blur: BlurFolder) -> list[Path]:
    """Write one sample's files into the sequence ``folder`` (each under a temporary name, then renamed).

    Args:
        folder: ``<root>/<split folder>/<seq>`` (:func:`sample_folder`).
        frame: the file name without suffix.
        arrays: the sample's per-sample arrays by shard name: ``blur`` and ``sharp`` ``(H, W, 3)`` uint8 RGB,
            and any of ``blur_linear``, ``mask``, ``blur_map``, ``measurable``...
        blur: what ``blur/`` holds.

    Returns:
        The files written, hard links included.
    """
    written = [write_array(folder / kind / frame, arrays[name])
               for name, kind in gopro_folders(tuple(arrays), blur).items()]
    if blur is BlurFolder.GAMMA:
        gamma = folder / "blur_gamma" / f"{frame}.png"
        link = folder / "blur" / gamma.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        try:
            os.link(gamma, link)
        except OSError:  # file systems without hard links: a copy
            shutil.copyfile(gamma, link)
        written.append(link)
    return written
