"""PNG files of the exported trees (GOPRO, BasicSR): one encoder, one crash-safe writer."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from blursynth.errors import OutputError
from blursynth.shards.files import PARTIAL

#: zlib level of every PNG blursynth writes (recorded in BasicSR's LMDB ``meta_info.txt``).
PNG_LEVEL = 3


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB ``(H, W, 3)`` or single-channel ``(H, W)`` uint8 image (stored as BGR/gray)."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise OutputError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: Path, data: bytes) -> None:
    """Write under a temporary name and rename: a crash never leaves a truncated PNG under its final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL + ".png")
    tmp.write_bytes(data)
    os.replace(tmp, path)
