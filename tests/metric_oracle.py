"""Our own float64 image metrics: the oracles that `inspect`'s, `train-check`'s and the trainer's metrics are
tested against (written from the definitions, sharing no code with blursynth)."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def own_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR of [0, 1] arrays; ``mask`` (same shape, bool) selects the pixels (NaN when it selects none)."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        if not mask.any():
            return math.nan
        d = d[mask]
    mse = d.mean()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def own_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of (C, H, W) [0, 1] arrays: 11 x 11 Gaussian window (sigma 1.5), valid positions, mean."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    w = np.outer(g, g)

    def filt(a):
        return np.einsum("cijkl,kl->cij", sliding_window_view(a, (11, 11), axis=(-2, -1)), w)

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def psnr_u8(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """:func:`own_psnr` of uint8 images (peak 255)."""
    return own_psnr(np.asarray(a, np.float64) / 255, np.asarray(b, np.float64) / 255, mask)


def ssim_u8(x: np.ndarray, y: np.ndarray) -> float:
    """:func:`own_ssim` of (H, W, 3) uint8 images."""
    return own_ssim(*(np.asarray(a, np.float64).transpose(2, 0, 1) / 255 for a in (x, y)))
