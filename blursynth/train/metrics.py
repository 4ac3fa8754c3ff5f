"""PSNR and SSIM on [0, 1] tensors, per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB per image of (B, C, H, W) tensors in [0, 1]; with ``mask`` (B, 1, H, W), inside it only.

    Images with no mask pixel get NaN; identical images get +inf.
    """
    diff = (x.float().clamp(0, 1) - y.float().clamp(0, 1)) ** 2
    if mask is None:
        mse = diff.flatten(1).mean(dim=1)
    else:
        weight = (mask > 0.5).float().expand_as(diff)
        total = weight.flatten(1).sum(dim=1)
        mse = (diff * weight).flatten(1).sum(dim=1) / total.clamp(min=1)
        mse = torch.where(total > 0, mse, torch.full_like(mse, math.nan))
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32, device=device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per image, mean over
    channels and valid window positions. Shape: (B, C, H, W) -> (B,)."""
    x, y = x.float().clamp(0, 1), y.float().clamp(0, 1)
    c = x.shape[1]
    w = _gaussian_window(device=x.device).expand(c, 1, 11, 11)
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(dim=1)
