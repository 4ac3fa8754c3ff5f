"""The optical-flow interface and the measurements every backend shares.

A flow field is ``(2, H, W)`` float32 in pixels, forward: a point at ``(x, y)`` in frame t is at
``(x + u, y + v)`` in frame t + 1 (``flow[0] = u``, ``flow[1] = v``). Backends take uint8 frames, RGB
``(H, W, 3)`` or gray ``(H, W)``, and convert to what their method needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np

from blursynth.errors import ConfigError
from blursynth.flow.names import FLOW_STAT_NAMES
from blursynth.ops.images import to_gray8, to_uint8

#: Statistics of a pair's flow magnitude that a window filter can threshold. ``p99`` ignores the 1% of
#: pixels where flow is least reliable (occlusion borders, specularities, flat sky) yet still sees any
#: moving region larger than 1% of the frame; ``max`` is strict and noise-prone; ``mean`` misses small
#: fast objects.
FLOW_STATS = FLOW_STAT_NAMES


class FlowBackend:
    """Base class: subclasses implement :meth:`_pair` (gray or RGB uint8 in, (2, H, W) float32 out).

    Attributes:
        name: the name :func:`blursynth.flow.create_flow` knows it by (recorded in sample meta).
        batch_size: consecutive pairs the backend prefers to receive at once (1 for OpenCV methods).
        wants_rgb: whether :meth:`_pair` takes RGB (else grayscale) frames.
    """

    name = "base"
    batch_size = 1
    wants_rgb = False

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
        """Forward flow from ``frame0`` to ``frame1``. Shape: (H, W[, 3]) x 2 -> (2, H, W) float32."""
        return self.pairs([frame0, frame1])[0]

    def pairs(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Flow of every consecutive pair of ``frames``. Shape: k x (H, W[, 3]) -> (k - 1, 2, H, W)."""
        if len(frames) < 2:
            h, w = frames[0].shape[:2] if frames else (0, 0)
            return np.zeros((0, 2, h, w), np.float32)
        prepared = [self._prepare(f) for f in frames]
        return np.stack([self._pair(a, b) for a, b in zip(prepared, prepared[1:], strict=False)])

    def backward_pairs(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Flow of every consecutive pair, backward (frame i + 1 -> frame i): the forward-backward check's other
        half (:mod:`blursynth.flow.measure`). Shape: k x (H, W[, 3]) -> (k - 1, 2, H, W)."""
        return self.pairs(list(frames)[::-1])[::-1]

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if self.wants_rgb:
            frame = to_uint8(frame)
            if frame.ndim == 2:
                return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            return frame
        return to_gray8(frame)

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def opencv_failure(exc: cv2.error) -> str:
    """The readable part of an OpenCV exception: ``The input image must have either width or height >= 12``
    out of ``OpenCV(5.1.0) /io/.../dis_flow.cpp:1725: error: (-201:...) The input ... in function 'calc'``."""
    text = " ".join(str(exc).split())
    found = re.search(r"error: \([^)]*\) (.*?)(?: in function .*)?$", text)
    return (found.group(1) if found else text).strip() or "OpenCV error"


def hw_to_chw(flow_hw2: np.ndarray) -> np.ndarray:
    """OpenCV's (H, W, 2) layout -> our (2, H, W) float32."""
    return np.ascontiguousarray(np.moveaxis(flow_hw2, -1, 0), dtype=np.float32)


def magnitude(flow: np.ndarray) -> np.ndarray:
    """Per-pixel displacement length. Shape: (2, H, W) -> (H, W) float32."""
    return cv2.magnitude(np.ascontiguousarray(flow[0]), np.ascontiguousarray(flow[1]))


def flow_statistic(mag: np.ndarray, stat: str) -> float:
    """One number per pair: ``p99`` (99th percentile), ``max`` or ``mean`` of the magnitude (pixels)."""
    if stat == "p99":
        flat = mag.reshape(-1)
        k = min(flat.size - 1, int(np.ceil(0.99 * flat.size)) - 1)
        return float(np.partition(flat, k)[k])  # the 99th percentile as an order statistic (no interpolation)
    if stat == "max":
        return float(mag.max())
    if stat == "mean":
        return float(mag.mean())
    raise ConfigError(f"--flow-stat: expected one of {', '.join(FLOW_STATS)}, got {stat!r}")


def warp_back(image: np.ndarray, flow: np.ndarray, *, interpolation: int = cv2.INTER_LINEAR
              ) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (frame t + 1) at ``x + flow(x)``: aligned with frame t where the flow is right.

    ``interpolation``: an OpenCV flag (bilinear by default; bicubic keeps fine detail at sub-pixel shifts).

    Returns:
        (warped float32 (H, W), valid bool (H, W)): ``valid`` is False where ``x + flow`` leaves the frame.
    """
    h, w = image.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[1]
    warped = cv2.remap(image.astype(np.float32), xs, ys, interpolation=interpolation,
                       borderMode=cv2.BORDER_REPLICATE)
    valid = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return warped, valid


def match_error(gray0: np.ndarray, gray1: np.ndarray, flow: np.ndarray, *, where: np.ndarray | None = None) -> float:
    """Frame-matching error of a flow field (Noroozi et al. 2017, Sec. 2: "L2 norm on the grayscale domain").

    Frame t + 1 is warped back onto frame t with the flow; the error is the root-mean-square difference in
    8-bit gray levels over the pixels whose match lies inside the frame (and, given ``where`` (H, W) bool,
    are selected by it). A correct flow on a clean video gives about 1-3 levels (interpolation and
    compression noise); occlusions and a wrong flow raise it.
    """
    warped, valid = warp_back(gray1, flow)
    if where is not None:
        valid &= where
    if not valid.any():
        return float("inf")
    diff = warped[valid] - gray0[valid].astype(np.float32)
    return float(np.sqrt(np.mean(diff * diff)))
