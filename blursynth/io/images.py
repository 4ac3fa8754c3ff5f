"""Reading still images (backgrounds, VOC/COCO photos) as 8-bit RGB, refusing truncated files.

OpenCV decodes a JPEG cut short without an error: libjpeg fills the missing rows with grey and only prints
"Premature end of JPEG file" on stderr. A JPEG must therefore end with its EOI marker (``FF D9``, possibly
followed by a little padding) before it is decoded. PNGs cut short make OpenCV return nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from blursynth.errors import SourceError

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_TAIL = 4096


def jpeg_is_complete(path: str | os.PathLike) -> bool:
    """False for a JPEG whose end-of-image marker is missing from its last 4 KiB; True for other files."""
    with open(path, "rb") as f:
        if f.read(2) != _JPEG_SOI:
            return True
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _TAIL))
        return _JPEG_EOI in f.read()


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image as ``(H, W, 3) uint8`` RGB, ignoring EXIF orientation (annotations are drawn on the
    stored pixel grid). OpenCV reduces 16-bit files to 8 bits.

    Raises:
        SourceError: missing, truncated or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(str(path), "image file is missing")
    try:
        complete = jpeg_is_complete(path)
    except OSError as exc:
        raise SourceError(str(path), f"cannot read ({exc.strerror or exc})") from None
    if not complete:
        raise SourceError(str(path), "truncated JPEG (no end-of-image marker)")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise SourceError(str(path), "unreadable image (decoder returned nothing; truncated or corrupt?)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
