"""Clips that make a flow method invent motion, with the true motion known (no pytest import, so the
benchmarks can use them too).

- :func:`flat_noise_frames`: a static flat grey scene under sigma = 1 sensor noise. Nothing moves; DIS
  (OpenCV MEDIUM preset) reports a median 2.4 px there at 427x240 (issue 16: 12.4 px on 1280x720).
- :func:`low_texture_frames`: what a ~1000 fps lab camera sees: a large smooth illumination gradient, a flat
  wall and a small textured object creeping 0.3 px per frame, sigma = 1.5 noise. Raw DIS flow exceeds 1 px on
  ~60% of the frame while DeepFlow gives ~0.1 px; the true blurred area at 1 px is 0.
"""

from __future__ import annotations

import cv2
import numpy as np
from textures import textured_image


def add_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Independent Gaussian noise per frame and pixel, rounded to uint8."""
    rng = np.random.default_rng(seed)
    noisy = images.astype(np.float64) + rng.normal(0.0, sigma, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def flat_noise_frames(n: int, height: int, width: int, *, level: float = 128.0, sigma: float = 1.0,
                      seed: int = 0, rgb: bool = True) -> np.ndarray:
    """A static flat grey clip with sensor noise: (n, H, W, 3) (or (n, H, W)) uint8."""
    shape = (n, height, width, 3) if rgb else (n, height, width)
    if rgb:  # the same noise in every channel, as a monochrome sensor gives
        gray = add_noise(np.full((n, height, width), level), sigma, seed)
        return np.repeat(gray[..., None], 3, axis=-1)
    return add_noise(np.full(shape, level), sigma, seed)


#: Object side (px) and speed (px/frame) of :func:`low_texture_frames`, at the size it is rendered.
OBJECT_SIDE, OBJECT_SPEED = 30, 0.3


def low_texture_frames(n: int, height: int = 240, width: int = 427, *, sigma: float = 1.5, seed: int = 0,
                       speed: float = OBJECT_SPEED, rgb: bool = True) -> np.ndarray:
    """Low-texture high-fps content: smooth gradient + flat wall + a small textured object moving ``speed``
    px/frame to the right (from x = 0.47 W, y = 0.42 H). (n, H, W, 3) or (n, H, W) uint8."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy, spread = 0.35 * width, 0.42 * height, 0.21 * width
    background = 60.0 + 120.0 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * spread**2))
    background[:, int(0.7 * width):] = 90.0  # a flat wall
    obj = textured_image(OBJECT_SIDE, OBJECT_SIDE, seed=9)[..., 0].astype(np.float32) * 200 + 20
    ones = np.ones((OBJECT_SIDE, OBJECT_SIDE), np.float32)
    clean = np.empty((n, height, width))
    for i in range(n):
        m = np.float32([[1, 0, 0.47 * width + speed * i], [0, 1, 0.42 * height]])
        placed = cv2.warpAffine(obj, m, (width, height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(ones, m, (width, height), flags=cv2.INTER_LINEAR)
        clean[i] = background * (1 - alpha) + placed
    gray = add_noise(clean, sigma, seed)
    return np.repeat(gray[..., None], 3, axis=-1) if rgb else gray
