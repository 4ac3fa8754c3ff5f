"""Small per-frame conversions shared by the recipes: bit depth, grayscale and area downsampling."""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

from blursynth.errors import ConfigError


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """uint8 frames pass through; uint16 frames are rounded: round(v / 257) == (v + 128) // 257."""
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype != np.uint16:
        raise TypeError(f"expected uint8 or uint16 frames, got {frame.dtype}")
    return ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)


def to_gray8(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB of any supported depth, or (H, W) gray -> (H, W) uint8 luma (BT.601 weights)."""
    frame = to_uint8(frame)
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def work_array(scratch: dict, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
    """The uninitialised array ``scratch[name]`` of this shape and dtype, made once and reused by later calls:
    a fresh 11 MB array per 1280x720 frame costs more in page faults than most single passes over it.

    One flat buffer per name, as large as the largest request so far, of which a C-contiguous view of
    ``shape`` is returned, so work done in strips of varying height (ops/window_sum.py) costs no new
    allocation for a short last strip either. The view is overwritten by the next request of the same name.
    """
    size = math.prod(shape)
    buf = scratch.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = scratch[name] = np.empty(size, dtype)
    return buf.reshape(-1)[:size].reshape(shape)


def downsampled_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """(width, height) after dividing by ``factor``, rounded to the nearest pixel (1280x720 / 3 -> 427x240)."""
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def downsample(frame: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a frame by an integer ``factor`` with area interpolation (box filter; no aliasing).

    Noroozi et al. 2017, Sec. 2 downsample every frame by 3 "to reduce the magnitude of relative motion
    across frames"; it also removes a little of the blur already in each frame. The frame is shrunk in its
    coded (gamma) domain, as the paper's frames were, before linearisation. Works for uint8 and uint16.
    """
    if factor == 1:
        return frame
    if factor < 1:
        raise ConfigError(f"--downsample: expected an integer factor >= 1, got {factor}")
    h, w = frame.shape[:2]
    return cv2.resize(frame, downsampled_size(w, h, factor), interpolation=cv2.INTER_AREA)


def downsample_frames(frames: Iterator[tuple[int, np.ndarray]], factor: int) -> Iterator[tuple[int, np.ndarray]]:
    """Downsample ``(index, frame)`` pairs as they are decoded (inside the prefetch thread: cv2 releases the
    GIL, so shrinking overlaps with the main thread's work)."""
    for index, frame in frames:
        yield index, downsample(frame, factor)
