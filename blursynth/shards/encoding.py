"""Per-sample arrays as files of the exported trees: 8-bit images as PNG, every other array as ``.npy``.

* ``uint8`` ``(H, W, 3)`` (RGB, stored BGR as every PNG reader expects) and ``(H, W)`` (masks, ``measurable``)
  are PNGs (:mod:`blursynth.shards.png`, zlib level 3), bit-exact.
* Anything else (``blur_map`` float16 ``(H, W)``, arrays later formats add) is a NumPy ``.npy`` file: exact
  (no scale, no clipping, the dtype kept), read back with ``numpy.load``. A 16-bit PNG would need a scale and
  a cap on the blur length; ``.npy`` needs neither.

In LMDB databases the values are the same bytes (PNG or ``.npy``) under the same keys.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from blursynth.shards.files import PARTIAL
from blursynth.shards.png import encode_png


def is_png(array: np.ndarray) -> bool:
    """Whether ``array`` is written as a PNG: uint8, ``(H, W)`` or ``(H, W, 3)``."""
    return array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3))


def suffix(array: np.ndarray) -> str:
    """``.png`` or ``.npy`` (see the module docstring)."""
    return ".png" if is_png(array) else ".npy"


def encode_array(array: np.ndarray) -> bytes:
    """The file bytes of one per-sample array."""
    if is_png(array):
        return encode_png(array)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write under a temporary name and rename: a crash never leaves a truncated file under its final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL + path.suffix)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_array(path_stem: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path_stem`` + its suffix; returns the path."""
    path = path_stem.with_name(path_stem.name + suffix(array))
    write_file(path, encode_array(array))
    return path
