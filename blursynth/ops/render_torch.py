"""The torch twin of :func:`blursynth.ops.render.render_moving`: all N frames of a cluster at once, on any device.

Same model as ``ops/render.py``: per frame ``S = P + (1 - A) S`` over the scene in linear light, objects in
z-order, premultiplied patches resampled bilinearly with zero padding; ``blur = g(mean)``, ``sharp = g(middle
frame)``, ``mask = round(255 f)`` (>= 1 where f > 0). On a GPU the N frames of a cluster are one batched
``grid_sample`` per object instead of N OpenCV warps.

Bytes differ slightly from the OpenCV path (``grid_sample`` interpolates at full float precision where
``warpAffine`` snaps positions to 1/32 px): a few LSB on object edges, identical elsewhere. The backend is
therefore part of an output's fingerprint. Everything else (mask == 0 exactly where blur == sharp == scene)
holds the same way: a sample point whose four neighbours are all padding is exactly 0.

With ``substeps`` > 1 (continuous exposure, issue 18) a cluster has M = (N - 1) K + 1 samples; they are
composited in batches of at least N samples and about :data:`BATCH_PIXELS` sample pixels, so memory stays
bounded whatever K; K = 1 is one batch of the N frames, computed exactly as before (with ``--duty-cycle``
tau < 1 and K = 1 it is one batch of N poses between the frames).

``mean_out`` and ``sat_out`` (issue 19's camera and ``sat_mask``) are filled as by the CPU renderer.
"""

from __future__ import annotations

import numpy as np

from blursynth.ops import composite
from blursynth.ops.crf import CRF
from blursynth.ops.render import Layers
from blursynth.ops.saturation import CLIP_LEVEL

#: A batch holds about this many sample pixels (at least the N trajectory frames): ~0.3 GB of working memory.
BATCH_PIXELS = 1 << 22


def _grid(poses: np.ndarray, box: composite.Box, patch_size: tuple[int, int], device):
    """Sampling grids ``(N, bh, bw, 2)`` for ``grid_sample(align_corners=True)``: frame pixel -> patch."""
    import torch

    x0, y0, x1, y1 = box
    h, w = patch_size
    a = poses[:, :, :2]  # (N, 2, 2)
    inv = np.linalg.inv(a)
    t = poses[:, :, 2]
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float64, device=device),
                            torch.arange(x0, x1, dtype=torch.float64, device=device), indexing="ij")
    pts = torch.stack([xs, ys], dim=-1)  # (bh, bw, 2)
    inv_t = torch.as_tensor(inv, device=device)
    shift = torch.as_tensor(t, device=device)
    uv = torch.einsum("nij,hwj->nhwi", inv_t, pts) - torch.einsum("nij,nj->ni", inv_t, shift)[:, None, None, :]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64, device=device)
    return (uv * scale - 1.0).to(torch.float32)


def _composite(scene_box, members: list[int], layers: Layers, box: composite.Box, first: int, last: int, device):
    """Samples ``first`` to ``last - 1`` of a cluster: frames ``(c, 3, bh, bw)`` and uncovered ``(c, 1, bh, bw)``."""
    import torch
    import torch.nn.functional as F

    x0, y0, x1, y1 = box
    frames = scene_box.unsqueeze(0).repeat(last - first, 1, 1, 1)
    uncovered = torch.ones((last - first, 1, y1 - y0, x1 - x0), dtype=torch.float32, device=device)
    for i in members:
        prem, poses = layers[i]
        patch = torch.from_numpy(np.ascontiguousarray(prem)).to(device).permute(2, 0, 1)
        grid = _grid(poses[first:last], box, prem.shape[:2], device)
        layer = F.grid_sample(patch.unsqueeze(0).expand(last - first, -1, -1, -1), grid, mode="bilinear",
                              padding_mode="zeros", align_corners=True)
        keep = 1.0 - layer[:, 3:4]
        frames = layer[:, :3] + keep * frames
        uncovered = uncovered * keep
    return frames, uncovered


def render_moving_torch(scene: np.ndarray, layers: Layers, crf: CRF, device: str = "cpu", *, substeps: int = 1,
                        mean_out: np.ndarray | None = None, sat_out: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """Same arguments and results as :func:`blursynth.ops.render.render_moving`, computed on ``device``."""
    import torch

    height, width = scene.shape[:2]
    n = len(layers[0][1])
    mid = (n - 1) // 2
    frames_per_step = (n - 1) // substeps + 1  # the trajectory's N
    _, groups = composite.swept_boxes(layers, (height, width))
    blur, sharp = scene.copy(), scene.copy()
    mask = np.zeros((height, width), np.uint8)
    if mean_out is not None:
        mean_out[:] = crf.decode(scene)
    if sat_out is not None:
        np.equal(scene, 255, out=sat_out, casting="unsafe")
    with torch.no_grad():
        for box, members in groups:
            x0, y0, x1, y1 = box
            codes = torch.from_numpy(np.ascontiguousarray(scene[y0:y1, x0:x1])).to(device)
            base = crf.decode_torch(codes).permute(2, 0, 1)
            batch = max(frames_per_step, BATCH_PIXELS // ((y1 - y0) * (x1 - x0)))
            clipped = torch.zeros_like(base) if sat_out is not None else None
            if n <= batch:  # all samples at once (always so with K = 1: the frames exactly as before)
                frames, uncovered = _composite(base, members, layers, box, 0, n, device)
                sharp[y0:y1, x0:x1] = crf.encode_torch(frames[mid]).permute(1, 2, 0).cpu().numpy()
                mean, cover = frames.mean(dim=0), (1.0 - uncovered).sum(dim=0)[0]
                if clipped is not None:
                    clipped += (frames >= CLIP_LEVEL).sum(dim=0)
            else:
                total = torch.zeros_like(base)
                cover = torch.zeros(base.shape[1:], dtype=torch.float32, device=device)
                for first in range(0, n, batch):
                    last = min(n, first + batch)
                    frames, uncovered = _composite(base, members, layers, box, first, last, device)
                    if first <= mid < last:
                        sharp[y0:y1, x0:x1] = crf.encode_torch(frames[mid - first]).permute(1, 2, 0).cpu().numpy()
                    total += frames.sum(dim=0)
                    cover += (1.0 - uncovered).sum(dim=0)[0]
                    if clipped is not None:
                        clipped += (frames >= CLIP_LEVEL).sum(dim=0)
                mean = total / n
            if mean_out is not None:
                mean_out[y0:y1, x0:x1] = mean.permute(1, 2, 0).cpu().numpy()
            if sat_out is not None:
                sat_out[y0:y1, x0:x1] = (clipped / n).permute(1, 2, 0).cpu().numpy()
            blur[y0:y1, x0:x1] = crf.encode_torch(mean).permute(1, 2, 0).cpu().numpy()
            mask[y0:y1, x0:x1] = composite.coverage_mask(cover.cpu().numpy(), n)
    return blur, sharp, mask, [list(box) for box, _ in groups]
