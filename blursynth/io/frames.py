"""Frame folders: one image sequence per folder, natural sort order (GOPRO_Large_all, REDS train_sharp).

Frames are decoded by :func:`blursynth.io.images.read_frame` (truncated files are refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from blursynth.errors import SourceError
from blursynth.io.images import decode_image, read_frame
from blursynth.io.sources import list_images
from blursynth.io.video import SourceInfo


def probe_frames(folder: str, fps: float | None = None) -> SourceInfo:
    """Check a frame folder: every image readable from its header and all of the same size.

    Reading headers only (Pillow opens lazily) keeps this fast even for thousands of frames.

    Raises:
        SourceError: no images, an image whose header cannot be read, or mixed sizes (naming the file).
    """
    files = list_images(Path(folder))
    if not files:
        raise SourceError(folder, "contains no image files")
    size = None
    total = 0
    for f in files:
        try:
            with Image.open(f) as im:
                this = im.size
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise SourceError(str(f), f"unreadable image ({type(exc).__name__}: {exc})") from None
        if size is None:
            size = this
        elif this != size:
            raise SourceError(
                str(f), f"frame size {this[0]}x{this[1]} differs from {size[0]}x{size[1]} of {files[0].name}"
            )
        total += f.stat().st_size
    # Pillow reports 16-bit RGB PNGs as 8-bit "RGB": decode the first frame to learn the real sample type.
    deep = decode_image(files[0], cv2.IMREAD_UNCHANGED).dtype == np.uint16
    return SourceInfo(
        width=size[0],
        height=size[1],
        num_frames=len(files),
        fps=fps,
        bit_depth=16 if deep else 8,
        pix_fmt="rgb48" if deep else "rgb24",
        codec=files[0].suffix.lower().lstrip("."),
        size_bytes=total,
    )


def read_frames(folder: str, info: SourceInfo) -> Iterator[tuple[int, np.ndarray]]:
    """Read a frame folder in natural order, checking every frame's size."""
    for index, path in enumerate(list_images(Path(folder))):
        img = read_frame(path, info.bit_depth)
        if img.shape[:2] != (info.height, info.width):
            raise SourceError(
                str(path), f"frame size {img.shape[1]}x{img.shape[0]} differs from {info.width}x{info.height}"
            )
        yield index, np.ascontiguousarray(img)
