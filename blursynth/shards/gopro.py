"""The GOPRO_Large folder tree: ``<root>/<split>/<seq>/{blur,blur_gamma,sharp[,mask]}/NNNNNN.png``.

Written by two commands: ``average --layout gopro`` (while averaging, ``shards/writer.py``) and ``export
--layout gopro`` (from finished shards, ``shards/export.py``). They name sequences and frames alike and write
the same PNGs; what ``blur/`` holds differs and is chosen explicitly with :class:`BlurFolder`:

* ``LINEAR_MEAN``: the plain mean of code values (GOPRO_Large's own ``blur/``), which only a run that
  averages can produce (``Sample.extras["blur_linear"]``);
* ``GAMMA_LINK``: a hard link to ``blur_gamma/``, the average with the configured CRF: the one blurry image
  the shards keep, put where most GOPRO loaders look.
"""

from __future__ import annotations

import enum
import os
import shutil
from pathlib import Path

import numpy as np

from blursynth.shards.png import encode_png, write_png

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}


class BlurFolder(enum.Enum):
    """What ``blur/`` of a GOPRO tree holds (see the module docstring)."""

    LINEAR_MEAN = "linear-mean"
    GAMMA_LINK = "gamma-link"


def gopro_dir_name(source_key: str) -> str:
    """GOPRO_Large has one folder per sequence: nested keys become ``a__b``, video extensions are dropped."""
    stem, ext = os.path.splitext(source_key)
    base = stem if ext.lower() in VIDEO_EXTENSIONS else source_key
    return base.replace("/", "__")


def sample_name(meta: dict) -> tuple[str, str]:
    """(sequence folder, frame name) of a sample: the frame is ``meta["name"]`` (synthesised samples) or the
    sharp frame's 6-digit index, identical across the folders of the sequence."""
    seq = gopro_dir_name(str(meta.get("source", "sample")))
    frame = str(meta["name"]) if "name" in meta else f"{int(meta.get('center', 0)):06d}"
    return seq, frame


def write_gopro_sample(root: str | os.PathLike, split: str, meta: dict, *, blur_gamma: np.ndarray,
                       sharp: np.ndarray, blur: BlurFolder, blur_linear: np.ndarray | None = None,
                       mask: np.ndarray | None = None) -> list[Path]:
    """Write one sample's PNGs (each under a temporary name, then renamed).

    Args:
        root: the tree's root (OUT, or the export's DEST).
        blur_gamma, sharp: ``(H, W, 3)`` uint8 RGB.
        blur: what ``blur/`` holds; with ``LINEAR_MEAN`` it is ``blur_linear`` (no ``blur/`` without one).
        mask: ``(H, W)`` uint8, written to ``mask/`` when given.

    Returns:
        The files written, hard links included.
    """
    seq, frame = sample_name(meta)
    folder = Path(root) / split / seq
    written = []

    def put(kind: str, image: np.ndarray) -> Path:
        target = folder / kind / f"{frame}.png"
        write_png(target, encode_png(image))
        written.append(target)
        return target

    gamma = put("blur_gamma", blur_gamma)
    if blur is BlurFolder.GAMMA_LINK:
        link = folder / "blur" / f"{frame}.png"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        try:
            os.link(gamma, link)
        except OSError:  # file systems without hard links: a copy
            shutil.copyfile(gamma, link)
        written.append(link)
    elif blur_linear is not None:
        put("blur", blur_linear)
    put("sharp", sharp)
    if mask is not None:
        put("mask", mask)
    return written
