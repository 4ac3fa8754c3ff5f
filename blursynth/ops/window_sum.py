"""A whole window summed and encoded in horizontal strips that stay in the CPU's cache (the CPU streaming path).

Where no two windows share a frame (the GOPRO/LODE default) the streaming accumulator holds a window's frames
(uint8 or uint16, as decoded) and, once the last one arrives, computes every output strip by strip: for each
strip of rows, each frame is looked up into an int32 strip (``cv2.LUT``), added to the strip's sum, and the sum
is encoded (or divided) into that strip of the output. The int32 sum and every work array of the encoding are
a few hundred KB and never leave the L2 cache; only the uint8 frames are read from memory, once, and the
output written once. Summing whole frames instead moves an 11 MB int32 sum through memory twice per frame at
1280x720, which is what bounded the loop when a decoder shares the memory bus (issue 20).

The integer sums are the same whatever the order of the additions, so the bytes are those of summing whole
frames (tests/test_accumulate.py compares both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from blursynth.ops.crf import encode_sum
from blursynth.ops.images import work_array

if TYPE_CHECKING:
    from blursynth.ops.accumulate import Channel

#: int32 bytes of one strip of the running sum. The encoding keeps ~4 arrays of this size (sum, looked-up
#: frame, thresholds, float estimate), ~1 MB in all with the uint8 ones: about one core's L2 cache. Smaller
#: strips spend more in per-call overhead (~45 strips of 16 rows per 1280x720 frame here).
STRIP_BYTES = 1 << 20


def lookup(frame: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Map a frame through an integer table. Shape (H, W, 3) uint8/uint16 -> int32, into ``out`` if given."""
    if frame.dtype != np.uint8:
        return np.take(lut, frame, out=out)
    if frame.ndim == 3 and frame.shape[0] and frame.flags.c_contiguous and (out is None or out.flags.c_contiguous):
        # As one (H, W * C) channel: cv2.LUT on a 3-channel image is ~1.6x slower per value.
        flat = cv2.LUT(frame.reshape(frame.shape[0], -1), lut,
                       dst=None if out is None else out.reshape(frame.shape[0], -1))
        return flat.reshape(frame.shape)
    return cv2.LUT(frame, lut, dst=out)  # ~0.9 ms for a 1280x720 RGB frame


def window_output(total, n: int, ch: Channel, scratch: dict | None = None, out: np.ndarray | None = None):
    """A window's integer sum (numpy array or torch tensor) as the channel's output: uint8 code values
    (:func:`encode_sum`) or, for ``mean``/``saturation`` channels, the float32 mean ``total / (n q)``
    (a numpy array either way for those); written into ``out`` when given (numpy sums only)."""
    if ch.output == "code":
        return encode_sum(total, n, ch.q, ch.crf, scratch=scratch, out=out)
    if not isinstance(total, np.ndarray):
        total = total.cpu().numpy()
    return np.divide(total, np.float32(n * ch.q), out=out, dtype=np.float32)  # float32: no 8-byte frame copy


def strip_rows(shape: tuple[int, ...]) -> int:
    """Rows per strip for frames of ``shape`` (H, W[, C]): at least one, at most H."""
    row_bytes = 4 * math.prod(shape[1:])
    return max(1, min(int(shape[0]), STRIP_BYTES // max(1, row_bytes)))


def window_outputs(frames: Sequence[np.ndarray], channels: Sequence[Channel], scratch: dict) -> list[np.ndarray]:
    """Every channel's output for the window made of ``frames`` (all of one shape and dtype, in any order).

    Args:
        frames: the window's frames, (H, W, C) uint8 or uint16.
        channels: the outputs (``Channel.output``: ``code`` -> uint8 via :func:`encode_sum`; ``mean`` and
            ``saturation`` -> float32 ``sum / (n q)``).
        scratch: dict in which the strip work arrays are kept between windows.

    Returns:
        One fresh array of the frames' shape per channel.
    """
    n = len(frames)
    if n == 0:
        raise ValueError("a window needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError(f"frames of one window differ in shape: {sorted({f.shape for f in frames})}")
    if any(ch.lut.dtype != np.int32 for ch in channels):  # cv2.LUT would silently write a new array
        raise TypeError("window_outputs needs int32 lookup tables")
    frames = [np.ascontiguousarray(f) for f in frames]
    outs = [np.empty(shape, np.uint8 if ch.output == "code" else np.float32) for ch in channels]
    rows = strip_rows(shape)
    for r0 in range(0, shape[0], rows):
        r1 = min(shape[0], r0 + rows)
        strip_shape = (r1 - r0, *shape[1:])
        total = work_array(scratch, "strip_sum", strip_shape, np.int32)
        looked_up = work_array(scratch, "strip_lut", strip_shape, np.int32)
        for ch, out in zip(channels, outs, strict=True):
            lookup(frames[0][r0:r1], ch.lut, out=total)
            for f in frames[1:]:
                np.add(total, lookup(f[r0:r1], ch.lut, out=looked_up), out=total)
            window_output(total, n, ch, scratch, out=out[r0:r1])
    return outs


#: A disjoint window's decoded frames are held (and summed in strips, ops/window_sum.py) while they take at
#: most this many bytes, or at most twice the bytes of the running int32 sums (sum and scratch) they replace;
#: longer windows are summed frame by frame into running sums by the streaming accumulator (same bytes). 13
#: frames of 720p take 36 MB.
HOLD_BYTES = 64 << 20


def holds_window(n: int, frame: np.ndarray, channels: int) -> bool:
    """Whether a disjoint window of ``n`` frames like ``frame`` is held and summed in strips."""
    held = n * frame.nbytes
    return held <= HOLD_BYTES or held <= 2 * 8 * frame.size * channels
