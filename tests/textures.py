"""Synthetic real-looking texture shared by the test fixtures and the benchmarks (no pytest import, so a
benchmark can use it)."""

from __future__ import annotations

import cv2
import numpy as np


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-but-detailed RGB texture (sum of upsampled noise octaves), float64 in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float64)
    for cell in (2, 6, 18):
        small = rng.random((height // cell + 3, width // cell + 3, 3))
        img += cv2.resize(small, (width + 3 * cell, height + 3 * cell), interpolation=cv2.INTER_CUBIC)[
            :height, :width
        ]
    img -= img.min()
    return img / img.max()
