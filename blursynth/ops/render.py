"""Rendering a local-blur sample on the CPU: static objects pasted into the scene, moving ones averaged.

The model (LODE/BladeNet Sec. 4.1, in linear light): frame k shows the scene with every moving object at pose
k composited over it in z-order (``ops/composite.py``); ``blur = g(mean of the N frames)``, ``sharp = g(frame
(N - 1) / 2)``, both rounded, and ``mask = round(255 * fraction of the exposure a moving object covers the
pixel)``, at least 1 wherever that fraction is not 0.

Only the boxes the moving objects sweep are composited, frame by frame only the box the objects cover in that
frame; the rest of both images is the scene, copied once. ``CRF.encode`` of the decoded scene (or the mean of
up to 23 copies of it) gives the scene back exactly, so ``mask == 0`` exactly where blur and sharp are the
scene itself. ``ops/render_torch.py`` is the torch twin of :func:`render_moving` (same arguments and results).

Continuous exposure (``--substeps K``, issue 18): the poses are then the trajectory sampled K times per step,
M = (N - 1) K + 1 equally weighted samples, and "frame" above reads "sample"; the middle sample is still the
middle frame. With ``--duty-cycle`` tau < 1 the M poses are spread over the centred fraction tau of the
trajectory (``trajectories.subsample``); nothing changes here, the middle pose is still the sharp frame.
A cluster of one object (the common case) is then accumulated without compositing every sample:
the mean of ``P + (1 - A) S`` over the samples is ``S + mean(P) - mean(A) S``, so only the warped patches are
summed (one warp and one add per sample). K = 1 keeps the frame-by-frame loop, so its bytes are those of
earlier versions.
"""

from __future__ import annotations

import cv2
import numpy as np

from blursynth.ops import composite
from blursynth.ops.crf import CRF
from blursynth.ops.saturation import CLIP_LEVEL

#: Per moving object, in z-order (last on top): premultiplied patch ``(h, w, 4) float32``, poses ``(N, 2, 3)``.
Layers = list[tuple[np.ndarray, np.ndarray]]


def paste_static(scene: np.ndarray, premultiplied: np.ndarray, pose: np.ndarray, crf: CRF) -> None:
    """Composite one object onto ``scene`` (uint8, in place) in linear light and re-encode its box."""
    box = composite.warped_box(pose, premultiplied.shape[:2], scene.shape[:2])
    if box is None:
        return
    x0, y0, x1, y1 = box
    region = crf.decode(scene[y0:y1, x0:x1])
    composite.over(region, composite.warp(premultiplied, pose, box))
    scene[y0:y1, x0:x1] = crf.encode(region)


def render_moving(scene: np.ndarray, layers: Layers, crf: CRF, *, substeps: int = 1,
                  mean_out: np.ndarray | None = None, sat_out: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """Average the frames of objects moving over a still scene.

    Args:
        scene: ``(H, W, 3) uint8`` what every frame shows where no moving object is.
        layers: per moving object, in z-order (last on top): its premultiplied patch ``(h, w, 4) float32``
            and its poses ``(M, 2, 3)`` (all objects share M), M = (N - 1) ``substeps`` + 1.
        crf: the camera response.
        substeps: samples per trajectory step in the poses (``trajectories.subsample``); the middle pose is
            the sharp frame either way.
        mean_out: ``(H, W, 3) float32`` filled with the exposure's mean linear light (the camera's input).
        sat_out: ``(H, W, 3) float32`` filled with the fraction of the samples that are clipped: composited
            values at the maximum code's linear value (``ops.saturation.CLIP_LEVEL``), scene pixels at 255.

    Returns:
        ``blur``, ``sharp`` ``(H, W, 3) uint8``, ``mask`` ``(H, W) uint8`` and the composited boxes
        ``[[x0, y0, x1, y1], ...]``.
    """
    height, width = scene.shape[:2]
    n = len(layers[0][1])
    mid = (n - 1) // 2
    boxes, groups = composite.swept_boxes(layers, (height, width))
    blur, sharp = scene.copy(), scene.copy()
    mask = np.zeros((height, width), np.uint8)
    if mean_out is not None:
        mean_out[:] = crf.decode(scene)
    if sat_out is not None:
        np.equal(scene, 255, out=sat_out, casting="unsafe")
    for (x0, y0, x1, y1), members in groups:
        base = crf.decode(scene[y0:y1, x0:x1])
        count = None if sat_out is None else (base >= CLIP_LEVEL).astype(np.float32) * np.float32(n)
        if substeps > 1 and len(members) == 1:
            acc, cover = _sum_one_object(base, (x0, y0), layers[members[0]], boxes[members[0]], mid,
                                         sharp, crf, count)
            blur[y0:y1, x0:x1] = crf.encode(acc)
            mask[y0:y1, x0:x1] = composite.coverage_mask(cover, n)
            _fill(mean_out, sat_out, (x0, y0, x1, y1), acc, count, n)
            continue
        acc = base * np.float32(n)
        cover = np.zeros(base.shape[:2], np.float32)
        for k in range(n):
            fb = composite.union(boxes[i][k] for i in members)
            if fb is None:
                continue
            fx0, fy0, fx1, fy1 = fb
            local = np.s_[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
            frame = base[local].copy()
            uncovered = np.ones(frame.shape[:2], np.float32)
            for i in members:
                b = boxes[i][k]
                if b is None:
                    continue
                sub = np.s_[b[1] - fy0 : b[3] - fy0, b[0] - fx0 : b[2] - fx0]
                composite.over(frame[sub], composite.warp(layers[i][0], layers[i][1][k], b), uncovered[sub])
            if k == mid:
                sharp[fy0:fy1, fx0:fx1] = crf.encode(frame)
            if count is not None:
                _count_clipped(count[local], frame, base[local])
            frame -= base[local]  # exactly 0 where nothing covers the pixel
            acc[local] += frame
            cover[local] += 1.0 - uncovered
        blur[y0:y1, x0:x1] = crf.encode(acc / np.float32(n))
        mask[y0:y1, x0:x1] = composite.coverage_mask(cover, n)
        _fill(mean_out, sat_out, (x0, y0, x1, y1), acc / np.float32(n), count, n)
    return blur, sharp, mask, [list(box) for box, _ in groups]


def _count_clipped(count: np.ndarray, frame: np.ndarray, base: np.ndarray) -> None:
    """One sample's clipped pixels into ``count`` (which starts at N times the scene's clipped pixels)."""
    count += frame >= CLIP_LEVEL
    count -= base >= CLIP_LEVEL


def _fill(mean_out: np.ndarray | None, sat_out: np.ndarray | None, box: tuple[int, int, int, int],
          mean: np.ndarray, count: np.ndarray | None, n: int) -> None:
    """A cluster's mean and clipped fraction into the full-frame outputs, where asked for."""
    x0, y0, x1, y1 = box
    if mean_out is not None:
        mean_out[y0:y1, x0:x1] = mean
    if sat_out is not None:
        sat_out[y0:y1, x0:x1] = count / np.float32(n)


def _sum_one_object(base: np.ndarray, origin: tuple[int, int], layer: tuple[np.ndarray, np.ndarray],
                    boxes: list[composite.Box | None], mid: int, sharp: np.ndarray, crf: CRF,
                    count: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One object alone in its cluster: the mean ``S + mean(P) - mean(A) S`` over all samples from the summed
    warps, and the summed coverage; writes the sharp frame (sample ``mid``) into ``sharp`` as the frame loop
    does. With ``count`` (the clipped-sample count, ``sat_out``) every sample is composited to be counted.

    Returns:
        the mean linear exposure ``(bh, bw, 3)`` and the coverage sum ``(bh, bw)``, both float32.
    """
    x0, y0 = origin
    prem, poses = layer
    total = np.zeros((*base.shape[:2], 4), np.float32)  # sum of premultiplied colour and of alpha
    for k, b in enumerate(boxes):
        if b is None:
            continue
        warped = composite.warp(prem, poses[k], b)
        local = np.s_[b[1] - y0 : b[3] - y0, b[0] - x0 : b[2] - x0]
        cv2.add(total[local], warped, dst=total[local])
        if k == mid or count is not None:
            frame = base[local].copy()
            composite.over(frame, warped)
            if k == mid:
                sharp[b[1] : b[3], b[0] : b[2]] = crf.encode(frame)
            if count is not None:
                _count_clipped(count[local], frame, base[local])
    n = np.float32(len(poses))
    cover = np.ascontiguousarray(total[..., 3])
    mean = base + (total[..., :3] - cover[..., None] * base) / n
    return mean, cover
