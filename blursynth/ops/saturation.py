"""Saturation masks (issue 19): the fraction of an exposure's samples that are clipped, per pixel and channel.

A real frame's sample is clipped where its code value is the maximum (255, or 65535 for 16-bit sources): the
integer accumulators count it with an indicator table (``ops.accumulate.Channel.saturation``). A synthesised
sample (``average --substeps``/``--duty-cycle``) or a composited one (``local``) has no code value: it counts
as clipped where its linear value reaches the maximum code's, 1.0 (:data:`CLIP_LEVEL`).
"""

from __future__ import annotations

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
    either frame: between two frames without one, a sample above 1.0 could only be a bicubic overshoot (an
    interpolation artefact, not light), which is not counted.

    Args:
        linear: (N, 3, H, W) float32 linear light of the window's frames.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    import torch

    from blursynth.ops.interpolate import _resize_flow as resize_flow
    from blursynth.ops.interpolate import interpolate_pair, sample_times

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
        fwd = torch.from_numpy(flows.forward[i]).to(linear.device)
        bwd = torch.from_numpy(flows.backward[i]).to(linear.device)
        if occlusion and flows.scale > visibility_scale:  # as interpolate_window: visibility at a lower scale
            factor = visibility_scale / flows.scale
            h, w = fwd.shape[-2:]
            size = (max(1, round(h * factor)), max(1, round(w * factor)))
            fwd, bwd = (resize_flow(x[None], *size)[0] for x in (fwd, bwd))
        local = torch.from_numpy(off[pair == i] - i).to(torch.float32)
        for start in range(0, len(local), 8):
            synth = interpolate_pair(linear[i], linear[i + 1], fwd, bwd, local[start:start + 8], mode=mode,
                                     occlusion=occlusion, gathers=gathers)
            count += (synth >= CLIP_LEVEL).sum(0)
    return (count / len(times)).permute(1, 2, 0).contiguous().cpu().numpy()
