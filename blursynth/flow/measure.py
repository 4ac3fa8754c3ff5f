"""Motion measurement that does not invent motion: which pixels' flow can be trusted, and how much of it.

A flow method always returns a vector, also where the image gives it nothing to match: on a flat patch under
sensor noise DIS reports several pixels of "motion" (median 2.4 px on a static flat grey clip with sigma = 1,
427x240), which the WILD filter, ``--max-step-px``, blur maps and ``stats`` then took for real. A pixel's
motion is used here only where it is *measurable*:

1. **Texture** (:func:`texture_basis`): the local structure tensor (Lucas & Kanade 1981; Shi & Tomasi 1994,
   "Good features to track") has, in some direction, enough gradient energy for the sensor noise that a
   displacement along it is pinned down to :data:`MOTION_TOL_PX`. Only the flow component along such
   directions is kept (:func:`visible_motion`). This is also the physics
   of blur: moving a patch along a direction in which it does not vary changes no pixel, so it makes no
   visible blur (motion along a straight edge, any motion of a flat patch). A pixel with no textured
   direction therefore counts as *not blurred*, and its (invented) flow as 0.
2. **Forward-backward consistency** (:func:`consistency_mask`): following the forward flow and then the
   backward flow must come back to the start, ``|w(x) + w_b(x + w(x))|^2 < alpha (|w|^2 + |w_b|^2) + beta``
   (Sundaram, Brox & Keutzer 2010, "Dense point trajectories by GPU-accelerated large displacement optical
   flow", ECCV, Sec. 4.1; alpha = 0.01, beta = 0.5 px^2 there). This catches occlusions and matches that
   the texture test alone would accept. Pixels whose forward match leaves the frame cannot be checked and
   are unmeasurable.

``measurable = textured AND consistent``, with both tests taken in the textured directions only (an edge is
measurable across itself). :func:`measure_pair` runs the backend both ways and returns a :class:`Measured`;
:func:`measure` does the same from flows already computed (the WILD path batches them).

The noise level is estimated from the pair itself when not given (:func:`pair_noise_sigma`), so the same
thresholds hold for clean renders, noisy high-speed footage and downsampled frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blursynth.flow.base import FlowBackend, magnitude, warp_back
from blursynth.ops.images import to_gray8

__all__ = [
    "CONSISTENCY_ALPHA", "CONSISTENCY_BETA", "MOTION_TOL_PX", "Measured", "TEXTURE_WINDOW_SIGMA",
    "consistency_mask", "estimate_noise_sigma", "match_inside", "measure", "measure_pair", "pair_noise_sigma",
    "texture_basis", "texture_mask", "visible_motion",
]

#: Sundaram et al. 2010's forward-backward tolerance: relative term and absolute term (px^2).
CONSISTENCY_ALPHA, CONSISTENCY_BETA = 0.01, 0.5
#: Gaussian window (sigma, px) of the structure tensor: about DIS's 8-px patches.
TEXTURE_WINDOW_SIGMA = 2.0
#: Noise-limited uncertainty (px, one sigma) a displacement may have to count as measured: a tenth of the
#: 1-px blur threshold of WILD and LODE. With 4.0 (4x the noise's own gradient energy) instead of the derived
#: ~22x, a smooth illumination gradient (1 level/px, sigma 1.5) passed and DIS's invented motion there
#: raised the blurred area of the low-texture clip from 0.020 (DeepFlow) to 0.070; at 0.1 px it is 0.024.
MOTION_TOL_PX = 0.1
#: Lowest noise sigma assumed (gray levels): 8-bit rounding alone gives 1/sqrt(12) ~ 0.29, and clean renders
#: or lossless files would otherwise make every faint gradient "textured".
MIN_NOISE_SIGMA = 0.5
#: Squared L2 norm of the gradient kernel used below (Sobel 3x3 scaled by 1/8: (1 + 4 + 1) * 2 / 64): white
#: noise of variance s^2 gives a derivative of variance GRAD_NOISE_GAIN * s^2 in each direction.
GRAD_NOISE_GAIN = 12.0 / 64.0
#: Immerkaer's (1996) noise operator, the difference of two Laplacians; its squared norm is 36.
_NOISE_KERNEL = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])


@dataclass(frozen=True)
class Measured:
    """One pair's flow and what of it is measurable.

    Attributes:
        flow: (2, H, W) float32 forward flow, frame 0 -> frame 1 (as the backend gave it).
        magnitude: (H, W) float32 ``|flow|`` at every pixel (the raw measure LODE's curve uses).
        measurable: (H, W) bool, textured in some direction and forward-backward consistent there.
        moving: (H, W) float32 visible motion (px): ``|flow|`` projected on the textured directions, 0 where
            not measurable. Finite and >= 0.
        measurable_fraction: ``measurable.mean()``.
        noise_sigma: the noise level (gray levels) the texture test used.
        inside: (H, W) bool, the forward match ``x + flow(x)`` lies inside frame 1 (else it cannot be checked).
    """

    flow: np.ndarray
    magnitude: np.ndarray
    measurable: np.ndarray
    moving: np.ndarray
    measurable_fraction: float
    noise_sigma: float
    inside: np.ndarray


def estimate_noise_sigma(gray: np.ndarray) -> float:
    """Sensor-noise sigma (gray levels) of one frame, robust to the image content.

    Immerkaer's operator (1996, "Fast noise variance estimation") cancels any locally planar image; the
    median absolute response (scaled by 1.4826 / 6, the MAD of a Gaussian over the kernel's norm) ignores the
    edges and texture that remain. Never below :data:`MIN_NOISE_SIGMA`.

    Shape: (H, W) uint8 -> float.
    """
    response = cv2.filter2D(gray.astype(np.float32), cv2.CV_32F, _NOISE_KERNEL)[1:-1, 1:-1]
    if response.size == 0:
        return MIN_NOISE_SIGMA
    return max(MIN_NOISE_SIGMA, float(1.4826 * np.median(np.abs(response)) / 6.0))


def pair_noise_sigma(gray0: np.ndarray, gray1: np.ndarray, flow: np.ndarray, *,
                     maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> float:
    """Sensor-noise sigma (gray levels) of a pair: the smaller of two estimates that each err only upwards.

    One frame cannot tell pixel-scale texture from noise: :func:`estimate_noise_sigma` gives 7-8 levels on a
    clean, finely textured render downsampled x3, which would declare it textureless. Two frames can: noise
    is what differs between them once the motion is compensated, so the median absolute residual of frame 1
    warped back with ``flow`` (bicubic; over sqrt(2), for two noisy frames) is the second estimate. It errs
    upwards where the flow is wrong or resampling loses fine detail (that render at 0.5 px/frame: 2.9 levels
    bicubic, 3.4 bilinear, which shrank its measured blur length from 6.0 to 5.3 px through the texture
    test); the spatial one where the image has fine texture. Never below :data:`MIN_NOISE_SIGMA`.

    Shape: (H, W) uint8 x 2, (2, H, W) -> float. ``maps``: :func:`_sample_maps` of ``flow``, when at hand.
    """
    spatial = estimate_noise_sigma(gray0)
    if maps is None:
        warped, inside = warp_back(gray1, flow, interpolation=cv2.INTER_CUBIC)
    else:
        xs, ys, inside = maps
        warped = cv2.remap(gray1.astype(np.float32), xs, ys, interpolation=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    residual = np.abs(warped[inside] - gray0[inside].astype(np.float32))
    if residual.size == 0:
        return spatial
    return max(MIN_NOISE_SIGMA, min(spatial, float(1.4826 * np.median(residual) / np.sqrt(2.0))))


def texture_basis(gray: np.ndarray, *, noise_sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which local directions carry more texture than noise: the structure tensor's eigen-analysis.

    ``J = G_w * (grad I grad I^T)`` with Sobel gradients and a normalised Gaussian window of sigma
    ``s = TEXTURE_WINDOW_SIGMA``; noise alone adds ``GRAD_NOISE_GAIN sigma^2`` to each eigenvalue. Lucas-Kanade
    over that window estimates the displacement along an eigen-direction with variance
    ``2 sigma^2 sum(w^2) / lambda = sigma^2 / (2 pi s^2 lambda)`` (temporal difference of two noisy frames;
    ``sum(w^2) = 1 / (4 pi s^2)`` for a Gaussian), so the direction is textured when
    ``lambda - GRAD_NOISE_GAIN sigma^2 >= sigma^2 / (2 pi s^2 MOTION_TOL_PX^2)`` (about 22x the noise's own
    gradient energy).

    Args:
        gray: (H, W) uint8 frame (the flow's source frame).
        noise_sigma: sensor noise in gray levels; None estimates it from ``gray``.

    Returns:
        (e1, rank): e1 (2, H, W) float32, the unit direction of strongest variation (x, y); rank (H, W) uint8,
        the number of textured directions (0 flat, 1 edge-like: only across e1, 2 both).
    """
    g = gray.astype(np.float32)
    sigma = estimate_noise_sigma(gray) if noise_sigma is None else max(float(noise_sigma), MIN_NOISE_SIGMA)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    window = (0, 0)
    a = cv2.GaussianBlur(gx * gx, window, TEXTURE_WINDOW_SIGMA)
    b = cv2.GaussianBlur(gx * gy, window, TEXTURE_WINDOW_SIGMA)
    c = cv2.GaussianBlur(gy * gy, window, TEXTURE_WINDOW_SIGMA)
    half_trace = 0.5 * (a + c)
    spread = np.sqrt(0.25 * (a - c) ** 2 + b * b)
    window_weight = 1.0 / (2.0 * np.pi * TEXTURE_WINDOW_SIGMA**2 * MOTION_TOL_PX**2)
    threshold = (window_weight + GRAD_NOISE_GAIN) * sigma * sigma
    rank = (half_trace + spread > threshold).astype(np.uint8) + (half_trace - spread > threshold)
    theta = 0.5 * np.arctan2(2.0 * b, a - c)
    return np.stack([np.cos(theta), np.sin(theta)]).astype(np.float32), rank


def texture_mask(gray: np.ndarray, *, noise_sigma: float | None = None) -> np.ndarray:
    """Pixels textured in at least one direction (see :func:`texture_basis`). Shape: (H, W) -> (H, W) bool."""
    return texture_basis(gray, noise_sigma=noise_sigma)[1] > 0


def _project(vec: np.ndarray, e1: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Squared length of ``vec`` (2, H, W) in the textured directions: all of it (rank 2), its e1 part (rank 1)
    or nothing (rank 0)."""
    full = vec[0] * vec[0] + vec[1] * vec[1]
    along = vec[0] * e1[0] + vec[1] * e1[1]
    return np.where(rank >= 2, full, np.where(rank == 1, along * along, 0.0)).astype(np.float32)


def visible_motion(flow: np.ndarray, e1: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The part of the flow that changes pixels: its length in the textured directions (px).

    Shape: (2, H, W), (2, H, W), (H, W) -> (H, W) float32, >= 0.
    """
    return np.sqrt(_project(flow, e1, rank))


def _round_trip(fwd: np.ndarray, bwd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w(x) + w_b(x + w(x))``, ``w_b(x + w(x))`` and whether ``x + w(x)`` lies inside the frame."""
    back = np.stack([warp_back(np.ascontiguousarray(bwd[k]), fwd)[0] for k in range(2)])
    return fwd + back, back, match_inside(fwd)


def _sample_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x + flow(x)`` as OpenCV remap maps (xs, ys) and whether it lies inside the frame: the same arrays
    :func:`blursynth.flow.base.warp_back` and :func:`match_inside` build, built once per pair."""
    h, w = flow.shape[1:]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[1]
    return xs, ys, (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)


def match_inside(flow: np.ndarray) -> np.ndarray:
    """Whether ``x + flow(x)`` lies inside the frame. Shape: (2, H, W) -> (H, W) bool."""
    h, w = flow.shape[1:]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[1]
    return (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)


def consistency_mask(fwd: np.ndarray, bwd: np.ndarray, *, alpha: float = CONSISTENCY_ALPHA,
                     beta: float = CONSISTENCY_BETA, e1: np.ndarray | None = None,
                     rank: np.ndarray | None = None) -> np.ndarray:
    """Forward-backward consistency (Sundaram, Brox & Keutzer 2010, Sec. 4.1).

    ``|w(x) + w_b(x + w(x))|^2 < alpha (|w(x)|^2 + |w_b(x + w(x))|^2) + beta``, with ``w_b`` sampled
    bilinearly; pixels whose match leaves the frame fail. Given a texture basis (``e1``, ``rank`` from
    :func:`texture_basis`), every length is taken in the textured directions only, so an edge is checked
    across itself (its along-edge flow is arbitrary and never used).

    Args:
        fwd: (2, H, W) flow frame 0 -> 1. bwd: (2, H, W) flow frame 1 -> 0.
        alpha: relative tolerance. beta: absolute tolerance (px^2).

    Returns:
        (H, W) bool.
    """
    residual, back, inside = _round_trip(fwd, bwd)
    if e1 is None or rank is None:
        def norm2(v: np.ndarray) -> np.ndarray:
            return v[0] * v[0] + v[1] * v[1]
    else:
        def norm2(v: np.ndarray) -> np.ndarray:
            return _project(v, e1, rank)
    return inside & (norm2(residual) < alpha * (norm2(fwd) + norm2(back)) + beta)


def measure(fwd: np.ndarray, bwd: np.ndarray, gray0: np.ndarray, gray1: np.ndarray | None = None, *,
            noise_sigma: float | None = None) -> Measured:
    """A pair's :class:`Measured` from its forward and backward flow and its frames.

    Args:
        fwd: (2, H, W) float32 flow frame 0 -> 1. bwd: (2, H, W) float32 flow frame 1 -> 0.
        gray0, gray1: (H, W) uint8 frames 0 and 1 (or RGB/uint16; converted to 8-bit gray).
        noise_sigma: sensor noise (gray levels); None estimates it from the pair (:func:`pair_noise_sigma`),
            or from frame 0 alone when ``gray1`` is not given (an overestimate on finely textured frames).
    """
    gray0 = to_gray8(gray0)
    maps = _sample_maps(fwd)
    if noise_sigma is not None:
        sigma = float(noise_sigma)
    elif gray1 is not None:
        sigma = pair_noise_sigma(gray0, to_gray8(gray1), fwd, maps=maps)
    else:
        sigma = estimate_noise_sigma(gray0)
    e1, rank = texture_basis(gray0, noise_sigma=sigma)
    # consistency_mask and visible_motion with the sampling maps and the forward flow's projection computed once:
    # the same arrays, bit for bit. (One two-channel remap of bwd is not: OpenCV's 32FC2 path differs.)
    xs, ys, inside = maps
    back = np.stack([cv2.remap(np.ascontiguousarray(bwd[k], dtype=np.float32), xs, ys, interpolation=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for k in range(2)])
    fwd2 = _project(fwd, e1, rank)
    tolerance = CONSISTENCY_ALPHA * (fwd2 + _project(back, e1, rank)) + CONSISTENCY_BETA
    consistent = _project(fwd + back, e1, rank) < tolerance
    measurable = (rank > 0) & (inside & consistent)
    moving = np.where(measurable, np.sqrt(fwd2), np.float32(0.0)).astype(np.float32)
    return Measured(flow=fwd, magnitude=magnitude(fwd), measurable=measurable, moving=moving,
                    measurable_fraction=float(measurable.mean()) if measurable.size else 0.0,
                    noise_sigma=max(sigma, MIN_NOISE_SIGMA), inside=inside)


def measure_pair(backend: FlowBackend, frame0: np.ndarray, frame1: np.ndarray, *,
                 noise_sigma: float | None = None) -> Measured:
    """Run ``backend`` both ways on one pair and measure it (:func:`measure`).

    Costs two flow computations (forward and backward). Frames: (H, W[, 3]) uint8 or uint16.
    """
    fwd = backend.pairs([frame0, frame1])[0]
    bwd = backend.pairs([frame1, frame0])[0]
    return measure(fwd, bwd, frame0, frame1, noise_sigma=noise_sigma)
