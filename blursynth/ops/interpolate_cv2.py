"""The CPU kernels of continuous-exposure interpolation (issue 18): the method of
:mod:`blursynth.ops.interpolate` with OpenCV's ``remap`` instead of ``torch.nn.functional.grid_sample``.

On 2 CPU cores a 720p three-channel bicubic gather costs ~57 ms with ``grid_sample`` and ~4.7 ms with
``cv2.remap``, so the 84 full-resolution gathers of a 7-frame window at K = 8 drop from ~5 s to ~0.4 s
(54 with ``gathers=1``, :func:`accumulate_pair_aligned`). The method is the same (tests compare the paths):

* ``cv2.remap(src, x + flow)`` with ``BORDER_REPLICATE`` is ``grid_sample(align_corners=True,
  padding_mode="border")`` at pixel coordinates ``x + flow`` (both use the a = -0.75 cubic kernel, and the
  bicubic taps are clamped to the border in both); OpenCV rounds the fractional position to 1/32 px
  (``INTER_TAB_SIZE``), a shift of at most 1/64 px.
* ``cv2.resize(INTER_LINEAR)`` is ``F.interpolate(bilinear, align_corners=False)`` (pixel centres aligned).
* The time-t flows and the visibility weights are computed at the visibility resolution, where the two
  weights are normalised once (``a0 = w0 / (w0 + w1)``, the torch path divides after upsampling both); the
  full-resolution blend is then ``acc += W1 + a0 (W0 - W1)``: three in-place passes per sample.

Images are (H, W, C) float32 numpy arrays, flows (h, w, 2) float32 (``[..., 0] = u`` along x).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from blursynth.flow.measure import CONSISTENCY_ALPHA, CONSISTENCY_BETA
from blursynth.ops.images import work_array

#: Fixed-point iterations of the flow inversion at time t (as :data:`blursynth.ops.interpolate.INVERSION_STEPS`).
INVERSION_STEPS = 2
#: Residual (px) below which the inversion counts as settled (as in :mod:`blursynth.ops.interpolate`).
CONVERGED_PX = 0.5
#: Weight left to each warp where visibility rejects both.
FALLBACK = 1e-4

_INTER = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def base_grid(h: int, w: int) -> np.ndarray:
    """Pixel coordinates (x, y) of every pixel. Shape: (h, w, 2) float32."""
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    return grid


def warp(image: np.ndarray, flow: np.ndarray, base: np.ndarray, mode: str = "bilinear",
         out: np.ndarray | None = None) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)``, clamped to the border. Shapes: (H, W[, C]), (H, W, 2) -> (H, W[, C])."""
    return cv2.remap(image, cv2.add(base, flow), None, _INTER[mode], dst=out, borderMode=cv2.BORDER_REPLICATE)


def resize_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """A (h', w', 2) flow resized (bilinear, pixel centres aligned) to (h, w) and rescaled to the new pixel size."""
    fx, fy = w / flow.shape[1], h / flow.shape[0]
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    if fx == fy:  # (a scalar cv2.multiply would scale the first channel only)
        return np.multiply(out, np.float32(fx), out=out) if fx != 1.0 else out
    out[..., 0] *= fx
    out[..., 1] *= fy
    return out


def _norm2(v: np.ndarray) -> np.ndarray:
    """Squared length of (h, w, 2) vectors (numpy's reduction over a last axis of 2 is ~20x slower)."""
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def occlusion_masks(fwd: np.ndarray, bwd: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft forward-backward occlusion masks (Sundaram et al. 2010, Sec. 4.1), as
    :func:`blursynth.ops.interpolate.occlusion_masks`. Shapes: (h, w, 2) x 2 -> (h, w) x 2 in [0, 1]."""
    h, w = fwd.shape[:2]

    def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        back = warp(b, a, base)
        r2 = _norm2(a + back)
        tol = CONSISTENCY_ALPHA * (_norm2(a) + _norm2(back)) + CONSISTENCY_BETA
        occ = np.clip((r2 - tol) / tol, 0.0, 1.0)
        pos = base + a
        outside = (pos[..., 0] < 0) | (pos[..., 0] > w - 1) | (pos[..., 1] < 0) | (pos[..., 1] > h - 1)
        occ[outside] = 1.0
        return occ.astype(np.float32, copy=False)

    return one(fwd, bwd), one(bwd, fwd)


def _settled(ft: np.ndarray, back: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """How far the inversion ``ft = -s F(x + ft)`` settled, from ``back`` = (F, occlusion)(x + ft): 1 at a
    residual up to CONVERGED_PX, 0 at twice it; and the gathered occlusion. (h, w, 2), (h, w, 3) -> (h, w) x 2.
    """
    bx, by, occ = cv2.split(back)  # plane-wise OpenCV arithmetic: ~3x numpy's on interleaved channels
    fx, fy = cv2.split(ft)
    n = cv2.magnitude(cv2.scaleAdd(bx, s, fx), cv2.scaleAdd(by, s, fy))
    return np.clip(cv2.addWeighted(n, -1.0 / CONVERGED_PX, n, 0.0, 2.0), 0.0, 1.0), occ


def time_flows(fwd: np.ndarray, bwd: np.ndarray, t: float, base: np.ndarray, masks: tuple | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Flows from time t to frames 0 and 1 and the normalised weight of frame 0's warp, at the flow's
    resolution (:func:`blursynth.ops.interpolate._visibility`; ``masks`` None: the Super SloMo blend alone
    and the temporal weights).

    Args:
        fwd, bwd: (h, w, 2) flows 0 -> 1 and 1 -> 0.
        t: time in (0, 1).
        base: :func:`base_grid` of (h, w).
        masks: None, or (h, w, 3) ``fwd`` and (h, w, 3) ``bwd`` with their :func:`occlusion_masks` as a
            third channel (one gather serves the inversion's residual and the occlusion).

    Returns:
        (h, w, 2) x 2 and (h, w) or None.
    """
    ft0 = cv2.addWeighted(bwd, t * t, fwd, -(1 - t) * t, 0.0)  # Jiang et al. 2018, Eq. 4
    ft1 = cv2.addWeighted(fwd, (1 - t) * (1 - t), bwd, -t * (1 - t), 0.0)
    if masks is None:
        return ft0, ft1, None
    step0, step1 = np.multiply(fwd, np.float32(-t)), np.multiply(bwd, np.float32(t - 1))  # gathers are linear
    for _ in range(INVERSION_STEPS):
        ft0, ft1 = warp(step0, ft0, base), warp(step1, ft1, base)
    back0, back1 = warp(masks[0], ft0, base), warp(masks[1], ft1, base)
    (settled0, covered), (settled1, uncovered) = _settled(ft0, back0, t), _settled(ft1, back1, 1 - t)
    # covered (uncovered): the frame-0 (frame-1) source is hidden in the other frame
    w0 = (1 - t) * (settled0 * (1 - covered * settled1) + FALLBACK)
    w1 = t * (settled1 * (1 - uncovered * settled0) + FALLBACK)
    return ft0, ft1, np.divide(w0, w0 + w1, dtype=np.float32)


@lru_cache(maxsize=4)  # one per (flow size, frame size): the grids are built once per video
def upsampler(low: tuple[int, int], full: tuple[int, int]):
    """A function turning a (h, w, 2) flow into the (H, W, 2) gather map ``x + flow`` upsampled (bilinear,
    pixel centres aligned) and rescaled to (H, W): as ``base_grid(H, W) + resize_flow(flow, H, W)``, with
    the grid and the scale folded in at the low resolution (exact for the bilinear interpolant of a linear
    function) and the few border rows and columns where ``cv2.resize`` clamps corrected."""
    (h, w), (hh, ww) = low, full
    if (h, w) == (hh, ww):
        grid = base_grid(h, w)
        return lambda flow, out: cv2.add(grid, flow, dst=out)
    fx, fy = ww / w, hh / h
    scale = np.array([fx, fy], np.float32)
    grid = base_grid(h, w) * scale + (scale - 1) / 2  # x_low f + (f - 1) / 2: the full-res pixel's x
    fixes = []
    for c, (size, n, f) in enumerate(((ww, w, fx), (hh, h, fy))):
        src = (np.arange(size) + 0.5) / f - 0.5  # where cv2.resize samples the low-res grid
        corr = (f * (src - np.clip(src, 0, n - 1))).astype(np.float32)
        idx = np.flatnonzero(corr)
        fixes.append((c, idx, corr[idx]))

    def upsample(flow: np.ndarray, out: np.ndarray) -> np.ndarray:
        low = cv2.addWeighted(flow, fx, grid, 1.0, 0.0) if fx == fy else flow * scale + grid
        cv2.resize(low, (ww, hh), dst=out, interpolation=cv2.INTER_LINEAR)
        for c, idx, corr in fixes:
            if c == 0:
                out[:, idx, 0] += corr
            else:
                out[idx, :, 1] += corr[:, None]
        return out

    return upsample


def visibility_inputs(fwd: np.ndarray, bwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``masks`` argument of :func:`time_flows`: each flow with its occlusion mask as a third channel."""
    occ0, occ1 = occlusion_masks(fwd, bwd, base_grid(*fwd.shape[:2]))
    return cv2.merge([fwd, occ0]), cv2.merge([bwd, occ1])


def window_sum(image, whole: np.ndarray, flows, off: np.ndarray, pair: np.ndarray, *, mode: str, occlusion: bool,
               visibility_scale: float, gathers: int, scratch: dict | None = None) -> np.ndarray:
    """The sum of a window's samples: its real frames ``whole`` and the samples synthesised at times ``off``
    (:func:`accumulate_window`; ``flows`` a :class:`blursynth.ops.interpolate.WindowFlows`).
    Shape: (H, W, 3) float32, ``scratch["total"]`` when a scratch dict is given."""
    first = image(0)
    acc = work_array({} if scratch is None else scratch, "total", (*first.shape[:2], 3))
    acc.fill(0.0)
    for j in whole:  # in place (a view of frames channels-last in memory: no copy)
        np.add(acc, image(int(j)), out=acc)
    accumulate_window(acc, image, flows.forward, flows.backward, flows.scale, off, pair, mode=mode,
                      occlusion=occlusion, visibility_scale=visibility_scale, gathers=gathers, scratch=scratch)
    return acc


def accumulate_window(acc: np.ndarray, image, forward: np.ndarray, backward: np.ndarray, scale: float,
                      off: np.ndarray, pair: np.ndarray, *, mode: str, occlusion: bool, visibility_scale: float,
                      gathers: int, scratch: dict | None = None) -> None:
    """Add a window's synthesised samples to ``acc`` in place (:func:`blursynth.ops.interpolate.interpolate_window`).

    Bilinear samples are made and summed on four-channel copies of the frames (RGB plus a constant channel):
    OpenCV's four-channel float bilinear ``remap`` is vectorised and costs about 60 % of the three-channel one
    on one core (2.9 against 4.6 ms per 1280x720 gather), more than the extra channel costs the blend and the
    sum. Bicubic ones stay three-channel (12.4 against 10.1 ms). The samples' sum is added to ``acc`` at the end.

    Args:
        acc: (H, W, 3) float32 running sum.
        image: i -> (H, W, 3) float32 frame i (a view is enough: converted once per pair here).
        forward, backward: (N - 1, 2, h, w) flows at ``scale`` times the frames' resolution.
        off, pair: the fractional sample times (frame units) and the pair index of each.
        mode, occlusion, visibility_scale, gathers: as ``interpolate_window``.
        scratch: dict keeping the full-resolution work arrays between calls (None: fresh ones).
    """
    pool = {} if scratch is None else scratch
    h, w = acc.shape[:2]
    four = mode == "bilinear"
    sums = work_array(pool, "sums", (h, w, 4)) if four else acc
    if four:
        sums.fill(0.0)
    frames: dict[int, np.ndarray] = {}

    def frame(i: int) -> np.ndarray:
        if i not in frames:  # zero-copy where the frames are channels-last in memory
            frames[i] = np.ascontiguousarray(image(i), dtype=np.float32)
            if four:  # frames i and i + 1 are in use together: two slots, by parity
                slot = work_array(pool, f"frame{i % 2}", (h, w, 4))
                frames[i] = cv2.cvtColor(frames[i], cv2.COLOR_RGB2RGBA, dst=slot)
        return frames[i]

    for i in np.unique(pair):
        for stale in [j for j in frames if j < i]:  # its slot is about to be reused
            del frames[stale]
        fwd = np.ascontiguousarray(forward[i].transpose(1, 2, 0), dtype=np.float32)
        bwd = np.ascontiguousarray(backward[i].transpose(1, 2, 0), dtype=np.float32)
        masks = None
        if occlusion:
            if scale > visibility_scale:  # the time-t flows and weights at a lower scale
                lh, lw = fwd.shape[:2]
                factor = visibility_scale / scale
                fwd, bwd = (resize_flow(x, max(1, round(lh * factor)), max(1, round(lw * factor))) for x in (fwd, bwd))
            masks = visibility_inputs(fwd, bwd)
        times = off[pair == i] - i
        if gathers == 1:
            accumulate_pair_aligned(sums, frame(i), frame(i + 1), fwd, bwd, times, mode=mode, scratch=pool)
        else:
            accumulate_pair(sums, frame(i), frame(i + 1), fwd, bwd, times, mode=mode, masks=masks, scratch=pool)
    if four:
        cv2.add(acc, cv2.cvtColor(sums, cv2.COLOR_RGBA2RGB, dst=work_array(pool, "sums3", (h, w, 3))), dst=acc)


def accumulate_pair_aligned(acc: np.ndarray, i0: np.ndarray, i1: np.ndarray, fwd: np.ndarray, bwd: np.ndarray,
                            times, *, mode: str = "bicubic", scratch: dict | None = None) -> None:
    """:func:`accumulate_pair` with one full-resolution gather per sample and no visibility weights: a sample
    at t <= 1/2 is ``((1 - t) I0 + t J1)(x + Ft0)``, ``J1(y) = I1(y + F01(y))`` frame 1 aligned to frame 0
    along the frame-0 point's own motion (once per pair); one at t > 1/2 likewise on frame 1's grid. With
    DIS as accurate as the two-gather temporal blend (docs/continuous-exposure.md)."""
    pool = {} if scratch is None else scratch
    h, w, c = acc.shape
    to_map = upsampler(tuple(fwd.shape[:2]), (h, w))
    inter, border = _INTER[mode], cv2.BORDER_REPLICATE
    gather = work_array(pool, "map0", (h, w, 2))
    blend, warped = work_array(pool, "warped0", (h, w, c)), work_array(pool, "warped1", (h, w, c))
    aligned: dict[int, np.ndarray] = {}
    for t in (float(x) for x in times):
        side = 0 if t <= 0.5 else 1
        near, far, flow = (i0, i1, fwd) if side == 0 else (i1, i0, bwd)
        if side not in aligned:
            aligned[side] = cv2.remap(far, to_map(flow, gather), None, inter, borderMode=border,
                                      dst=work_array(pool, f"aligned{side}", (h, w, c)))
        s = t if side == 0 else 1 - t  # the far frame's weight
        cv2.addWeighted(near, 1 - s, aligned[side], s, 0.0, dst=blend)
        if side == 0:  # Jiang et al. 2018, Eq. 4
            ft = cv2.addWeighted(bwd, t * t, fwd, -(1 - t) * t, 0.0)
        else:
            ft = cv2.addWeighted(fwd, (1 - t) * (1 - t), bwd, -t * (1 - t), 0.0)
        cv2.remap(blend, to_map(ft, gather), None, inter, dst=warped, borderMode=border)
        cv2.accumulate(warped, acc)


def accumulate_pair(acc: np.ndarray, i0: np.ndarray, i1: np.ndarray, fwd: np.ndarray, bwd: np.ndarray,
                    times, *, mode: str = "bicubic", masks: tuple | None = None, scratch: dict | None = None) -> None:
    """Add the synthesised samples between ``i0`` and ``i1`` at fractional ``times`` to ``acc`` in place.

    Args:
        acc: (H, W, C) float32 running sum.
        i0, i1: (H, W, C) float32 frames at times 0 and 1 (C = 3, or 4: see :func:`accumulate_window`).
        fwd, bwd: (h, w, 2) float32 flows 0 -> 1, 1 -> 0 in pixels of their own resolution (time-t flows
            and weights are computed there and upsampled).
        times: fractional times in (0, 1).
        mode: ``bilinear`` or ``bicubic`` full-resolution warps.
        masks: :func:`visibility_inputs` of the pair (visibility-weighted blending), None for the plain
            temporal blend.
        scratch: dict keeping the full-resolution work arrays between calls (None: fresh ones).
    """
    pool = {} if scratch is None else scratch
    h, w, c = acc.shape
    low = base_grid(*fwd.shape[:2])
    to_map = upsampler(tuple(fwd.shape[:2]), (h, w))
    inter = _INTER[mode]
    map0, map1 = work_array(pool, "map0", (h, w, 2)), work_array(pool, "map1", (h, w, 2))
    warped0, warped1 = work_array(pool, "warped0", (h, w, c)), work_array(pool, "warped1", (h, w, c))
    for t in (float(x) for x in times):
        ft0, ft1, a0 = time_flows(fwd, bwd, t, low, masks)
        cv2.remap(i0, to_map(ft0, map0), None, inter, dst=warped0, borderMode=cv2.BORDER_REPLICATE)
        cv2.remap(i1, to_map(ft1, map1), None, inter, dst=warped1, borderMode=cv2.BORDER_REPLICATE)
        if a0 is None:  # (1 - t) W0 + t W1
            cv2.scaleAdd(warped0, 1.0 - t, acc, dst=acc)
            cv2.scaleAdd(warped1, t, acc, dst=acc)
            continue
        weight = cv2.merge([a0] * c)
        if weight.shape[:2] != (h, w):
            weight = cv2.resize(weight, (w, h), dst=work_array(pool, "weight", (h, w, c)),
                                interpolation=cv2.INTER_LINEAR)
        cv2.subtract(warped0, warped1, dst=warped0)  # a0 W0 + (1 - a0) W1 = W1 + a0 (W0 - W1)
        cv2.accumulate(warped1, acc)
        cv2.accumulateProduct(warped0, weight, acc)
