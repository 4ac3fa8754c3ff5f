"""The camera model: settings, per-sample draws and the pipeline (RSBlur, Rim et al., ECCV 2022).

Facts from RSBlur's published code (``Uformer-RSBlur/dataset/dataset_RealisticDeblur.py``, ``Uformer-RSBlur/ISP/``),
re-implemented here; docs/realism.md cites each stage. One torch implementation serves generation (a sample's
linear mean, before the output CRF) and the reader (stored blur, linearised with the dataset's CRF), on the CPU
or CUDA. Every random choice comes from a CPU ``torch.Generator`` seeded by the draw's ``seed``, so the same
``params`` give the same result on any device (within float rounding: 1 LSB).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from blursynth.camera.compression import compress
from blursynth.camera.config import CameraConfig
from blursynth.camera.isp import apply_matrix, demosaic_malvar, gain_map, mosaic
from blursynth.camera.matrices import camera_matrices
from blursynth.camera.noise import add_poisson_gaussian
from blursynth.seeding import derive_seed

BORDER = 4  # px added on every side before the mosaic, cropped after (RSBlur cuts crops 8 px larger)


def draw_camera(cfg: CameraConfig, seed: int) -> dict:
    """Every random choice of one sample, from ``torch.Generator("cpu").manual_seed(seed)``.

    All values are drawn in a fixed order whatever the switched-off stages (so switching one off does not
    change the others); a stage that is off gives None. The noise itself is drawn later from ``seed`` too
    (:func:`apply_camera`), so the dict (stored in the sample's meta) fully determines the output.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))

    def choice(options):
        return options[int(torch.randint(len(options), (), generator=gen))]

    alpha = uniform(*cfg.alpha)
    matrix = choice(cfg.matrix_names)
    pattern = choice(cfg.patterns)
    red_gain, blue_gain = uniform(*cfg.red_gain), uniform(*cfg.blue_gain)
    lo, hi = cfg.noise_range
    beta1, beta2 = uniform(lo * cfg.beta1, hi * cfg.beta1), uniform(lo * cfg.beta2, hi * cfg.beta2)
    quality = int(torch.randint(cfg.jpeg[0], cfg.jpeg[1] + 1, (), generator=gen)) if cfg.jpeg else None
    return {"camera": "rsblur", "seed": int(seed), "alpha": alpha if cfg.saturation else None, "matrix": matrix,
            "pattern": pattern if cfg.mosaic else None, "red_gain": red_gain, "blue_gain": blue_gain,
            "beta1": beta1 if cfg.noise else None, "beta2": beta2 if cfg.noise else None,
            "jpeg_quality": quality, "h264_crf": cfg.h264_crf}


def apply_camera(linear: torch.Tensor, params: dict, cfg: CameraConfig | None = None,
                 sat: torch.Tensor | None = None) -> torch.Tensor:
    """The camera pipeline on one image's linear light (the draw ``params`` decides every stage).

    saturation (``+ alpha * sat``, clip to 1) -> linear sRGB -> XYZ -> camera RGB -> Bayer mosaic -> inverse
    white balance -> Poisson-Gaussian noise -> white balance -> Malvar demosaic -> camera RGB -> XYZ -> linear
    sRGB, clipped to [0, 1]. Values that reached 1 after the saturation stage stay 1 (RSBlur: "don't add noise
    on saturated region"). Borders: reflect-padded to an even size plus ``BORDER`` px a side, cropped back.

    Args:
        linear: ``(3, H, W)`` float linear light (the dataset's CRF already inverted), any device.
        params: a :func:`draw_camera` dict. cfg: accepted for symmetry with :func:`draw_camera`; the draw
            already records which stages are on.
        sat: ``(3, H, W)`` saturated fraction in [0, 1] (stored ``sat_mask / 255``), or None (no saturation).

    Returns:
        ``(3, H, W)`` float32 linear light in [0, 1], on ``linear``'s device.
    """
    x = linear.to(torch.float32)
    if params.get("alpha") is not None and sat is not None:
        x = x + params["alpha"] * sat.to(device=x.device, dtype=torch.float32)
    x = x.clamp(0.0, 1.0)
    saturated = x >= 1.0
    h, w = x.shape[-2:]
    pad = (BORDER, BORDER + w % 2, BORDER, BORDER + h % 2)  # left, right, top, bottom
    xp = F.pad(x[None], pad, mode="reflect" if min(h, w) > BORDER + 1 else "replicate")[0]
    srgb2cam, cam2srgb = (torch.tensor(m) for m in camera_matrices(params["matrix"]))
    cam = apply_matrix(xp, srgb2cam)
    gains = (float(params["red_gain"]), 1.0, float(params["blue_gain"]))
    hp, wp = cam.shape[-2:]
    pattern = params.get("pattern")
    if pattern is not None:
        g = gain_map(pattern, gains, hp, wp, cam.device)
        raw = mosaic(cam, pattern) / g  # inverse white balance: the RAW the sensor saw
    else:
        g = torch.tensor(gains, device=cam.device)[:, None, None]
        raw = cam / g
    if params.get("beta1") is not None:
        raw = add_poisson_gaussian(raw, params["beta1"], params["beta2"], derive_seed(params["seed"], "noise"))
    raw = raw * g
    cam = demosaic_malvar(raw, pattern) if pattern is not None else raw
    out = apply_matrix(cam, cam2srgb)[:, BORDER : BORDER + h, BORDER : BORDER + w]
    return torch.where(saturated, torch.ones_like(out), out).clamp_(0.0, 1.0)


def _chw(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    a = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def render_camera(linear, crf, params: dict, cfg: CameraConfig | None = None, sat=None) -> np.ndarray:
    """The camera, the output CRF and the compression: what a sample stores as ``blur``.

    Args:
        linear: ``(H, W, 3)`` float32 numpy or ``(3, H, W)`` tensor of linear light.
        crf: a ``blursynth.ops.crf.CRF`` (``crf.encode`` gives the uint8 code values).
        params, cfg, sat: as :func:`apply_camera` (``sat`` as numpy ``(H, W, 3)`` or a ``(3, H, W)`` tensor).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    out = apply_camera(_chw(linear), params, cfg, None if sat is None else _chw(sat))
    code = crf.encode(out.permute(1, 2, 0).contiguous().cpu().numpy())
    return compress(code, params)
