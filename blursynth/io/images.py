"""Reading image files: stills (backgrounds, VOC/COCO photos) and the frames of image sequences.

Every image the package decodes goes through :func:`decode_image`, which refuses truncated files. OpenCV
decodes a JPEG cut short without an error: libjpeg fills the missing rows with grey and only prints
"Premature end of JPEG file" on stderr. A JPEG must therefore end with its EOI marker (``FF D9``, possibly
followed by a little padding) before it is decoded. PNGs cut short make OpenCV return nothing.

Two contracts sit on that one path: :func:`read_rgb` for stills (always 8-bit RGB) and :func:`read_frame` for
sequence frames (the sample type the whole sequence was probed with, 8 or 16 bits).
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


def decode_image(path: str | os.PathLike, flags: int) -> np.ndarray:
    """``cv2.imread(path, flags)`` (OpenCV's BGR/BGRA/gray layout) for a file that exists and is complete.

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
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SourceError(str(path), "unreadable image (decoder returned nothing; truncated or corrupt?)")
    return image


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode a still as ``(H, W, 3) uint8`` RGB, ignoring EXIF orientation (annotations are drawn on the
    stored pixel grid). OpenCV reduces 16-bit files to 8 bits.

    Raises:
        SourceError: missing, truncated or undecodable file.
    """
    bgr = decode_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frame(path: str | os.PathLike, bit_depth: int) -> np.ndarray:
    """Decode one frame of an image sequence as RGB ``(H, W, 3)``, uint8 or uint16 as ``bit_depth`` says.

    An 8-bit file in a 16-bit sequence is rescaled exactly (x257); a deeper file in an 8-bit sequence is an
    error (the sequence was probed as 8-bit from its first frame).

    Raises:
        SourceError: missing, truncated or undecodable file, or a sample type the sequence cannot hold.
    """
    img = decode_image(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if bit_depth == 16 and img.dtype == np.uint8:
        img = img.astype(np.uint16) * 257  # 8-bit frame in a 16-bit sequence: exact rescale
    elif bit_depth == 8 and img.dtype != np.uint8:
        raise SourceError(str(path), f"unexpected sample type {img.dtype} in an 8-bit sequence")
    if img.dtype not in (np.uint8, np.uint16):
        raise SourceError(str(path), f"unsupported sample type {img.dtype}")
    return img
