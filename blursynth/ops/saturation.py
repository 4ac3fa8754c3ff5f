"""Saturation masks (issue 19): the fraction of an exposure's samples that are clipped, per pixel and channel.

A real frame's sample is clipped where its code value is the maximum (255, or 65535 for 16-bit sources): the
integer accumulators count it with an indicator table (``ops.accumulate.Channel.saturation``). A synthesised
sample (``average --substeps``/``--duty-cycle``) or a composited one (``local``) has no code value: it counts
as clipped where its linear value reaches the maximum code's, 1.0 (:data:`CLIP_LEVEL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch (with the interpolation) is imported on use: ``local`` on the CPU does without it
    import torch

    from blursynth.ops.interpolate import WindowFlows

#: A synthesised sample counts as clipped where its linear value reaches the maximum code's, 1.0, less a float32
#: rounding margin (blends of two 1.0 values may land an ulp below 1); the next code below the maximum is at
#: least 1.5e-5 below 1 (16-bit, linear CRF), so no unclipped code value is counted.
CLIP_LEVEL = 1.0 - 2.0**-20


def saturated_fraction(linear: torch.Tensor, k: int, duty_cycle: float, flows: WindowFlows | None, *,
                       mode: str, occlusion: bool, gathers: int, visibility_scale: float = 0.5) -> np.ndarray:
    """The fraction of a window's M continuous-exposure samples that are clipped, per pixel and channel.

    Real frames count where they are at the maximum code value (linear 1.0); synthesised samples where they
    reach :data:`CLIP_LEVEL`. The samples are those of :func:`blursynth.ops.interpolate.interpolate_window`
    (same times, flows and warp options), synthesised again with its torch kernels
    (:func:`interpolate_pair`), since its OpenCV kernels sum them without ever holding one. Only runs when a
    saturation mask is asked for (``--sat-mask``, ``--camera``), and only for the pairs with a clipped pixel in
    either frame, and there only near those pixels (:func:`_regions`): elsewhere a sample above 1.0 could only be
    a bicubic overshoot (an interpolation artefact, not light), which is not counted.

    Args:
        linear: (N, 3, H, W) float32 linear light of the window's frames.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    import torch

    from blursynth.ops.interpolate import sample_times

    n = linear.shape[0]
    times = sample_times(n, k, duty_cycle)
    nearest = np.rint(times)
    on_frame = np.abs(times - nearest) < 1e-9
    count = torch.zeros(linear.shape[1:], dtype=torch.float32, device=linear.device)
    for j in nearest[on_frame].astype(np.int64):
        count += linear[int(j)] >= CLIP_LEVEL
    off = times[~on_frame]
    pair = np.minimum(np.floor(off).astype(np.int64), n - 2)
    clipped = [bool((linear[j] >= CLIP_LEVEL).any()) for j in range(n)]
    for i in np.unique(pair):
        if not (clipped[i] or clipped[i + 1]):  # nothing to count: see the docstring
            continue
        regions = _regions(linear[i], linear[i + 1], flows.forward[i], flows.backward[i], flows.scale)
        for box in regions if regions is not None else [None]:
            _count_pair(count, linear[i], linear[i + 1], flows, i, box, off[pair == i] - i, mode=mode,
                        occlusion=occlusion, gathers=gathers, visibility_scale=visibility_scale)
    return (count / len(times)).permute(1, 2, 0).contiguous().cpu().numpy()


def _count_pair(count: torch.Tensor, frame0: torch.Tensor, frame1: torch.Tensor, flows: WindowFlows, i: int,
                box: Region | None, local: np.ndarray, *, mode: str, occlusion: bool, gathers: int,
                visibility_scale: float) -> None:
    """Add the clipped samples of pair ``i`` at times ``local`` (in (0, 1)) to ``count``, in ``box`` only."""
    import torch

    from blursynth.ops.interpolate import _resize_flow as resize_flow
    from blursynth.ops.interpolate import interpolate_pair

    fwd, bwd = flows.forward[i], flows.backward[i]
    y0, y1, x0, x1 = box.crop if box is not None else (0, frame0.shape[-2], 0, frame0.shape[-1])
    if box is not None:
        fy0, fy1, fx0, fx1 = (round(v * flows.scale) for v in box.crop)
        fwd, bwd = fwd[:, fy0:fy1, fx0:fx1], bwd[:, fy0:fy1, fx0:fx1]
    fwd = torch.from_numpy(np.ascontiguousarray(fwd)).to(frame0.device)
    bwd = torch.from_numpy(np.ascontiguousarray(bwd)).to(frame0.device)
    if occlusion and flows.scale > visibility_scale:  # as interpolate_window: visibility at a lower scale
        factor = visibility_scale / flows.scale
        h, w = fwd.shape[-2:]
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        fwd, bwd = (resize_flow(x[None], *size)[0] for x in (fwd, bwd))
    times = torch.from_numpy(local).to(torch.float32)
    oy0, oy1, ox0, ox1 = box.inner if box is not None else (y0, y1, x0, x1)
    for start in range(0, len(times), 8):
        synth = interpolate_pair(frame0[:, y0:y1, x0:x1], frame1[:, y0:y1, x0:x1], fwd, bwd, times[start:start + 8],
                                 mode=mode, occlusion=occlusion, gathers=gathers)
        inner = synth[:, :, oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0]  # read nothing beyond the crop
        count[:, oy0:oy1, ox0:ox1] += (inner >= CLIP_LEVEL).sum(0)


@dataclass(frozen=True)
class Region:
    """Where a pair's synthesised samples can be clipped (``inner``) and the crop that computes them (``crop``),
    both ``(y0, y1, x0, x1)`` in frame pixels."""

    inner: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]


#: Side (px) of the blocks in which :func:`_regions` looks for clipped pixels.
BLOCK = 16


def _regions(frame0: torch.Tensor, frame1: torch.Tensor, fwd: np.ndarray, bwd: np.ndarray,
             scale: float) -> list[Region] | None:
    """The parts of the frame a pair's clipped samples can reach, or None when they are most of the frame.

    A synthesised sample at x reads its frames within 2 d + 2 px of x (d: the pair's largest flow magnitude; two
    warps with one gather, the bicubic support), so it can reach 1.0 only within that distance of a clipped pixel
    of either frame. Those neighbourhoods, in blocks of :data:`BLOCK` px, are split into connected parts
    (``inner``, disjoint); each one's crop adds as much again, so that the flows resized and the visibility
    computed inside it are those of the whole frame at ``inner``; crop corners fall on the flow's grid.
    """
    import cv2

    height, width = frame0.shape[-2:]
    step = round(1 / scale) if scale < 1 else 1
    if abs(step * scale - 1) > 1e-9 or fwd.shape[-2] * step != height or fwd.shape[-1] * step != width:
        return None  # the flow's grid is not a whole fraction of the frame's: no exact crop
    hit = ((frame0 >= CLIP_LEVEL) | (frame1 >= CLIP_LEVEL)).any(dim=0).cpu().numpy()
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    blocks = np.zeros((rows * BLOCK, cols * BLOCK), np.uint8)
    blocks[:height, :width] = hit
    blocks = blocks.reshape(rows, BLOCK, cols, BLOCK).max(axis=(1, 3))
    reach = int(np.ceil(max(np.abs(fwd).max(initial=0.0), np.abs(bwd).max(initial=0.0)) * 1.415 / scale))
    margin = 2 * reach + 4
    grow = -(-margin // BLOCK)
    blocks = cv2.dilate(blocks, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(blocks, connectivity=8)
    pad = margin + reach + 8 * step

    def outward(lo: int, hi: int, size: int) -> tuple[int, int]:
        return max(0, lo - pad) // step * step, min(size, -(-(hi + pad) // step) * step)

    regions, area = [], 0
    for x, y, w, h, _ in stats[1:count]:
        inner = (y * BLOCK, min(height, (y + h) * BLOCK), x * BLOCK, min(width, (x + w) * BLOCK))
        crop = (*outward(inner[0], inner[1], height), *outward(inner[2], inner[3], width))
        regions.append(Region(inner, crop))
        area += (crop[1] - crop[0]) * (crop[3] - crop[2])
    return None if area > 0.5 * height * width else regions
