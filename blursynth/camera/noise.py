"""Poisson-Gaussian sensor noise on RAW values, with every random number drawn on the CPU.

The model is RSBlur's (Rim et al., ECCV 2022, Sec. 4; ``Uformer-RSBlur/ISP/utils.py``
``add_Poisson_noise_random``): a RAW value x in [0, 1] becomes ``beta1 * Poisson(x / beta1) + beta2 * N(0, 1)``,
so its variance is ``beta1 * x + beta2 ** 2`` (shot noise plus read noise; ``beta2`` is the read noise's
standard deviation, as in that file. ``SRN-Deblur-RSBlur``'s variant scales by ``sqrt(beta2)`` instead; we
follow the Uformer file, whose parameters RSBlur's released models were trained with).

Why not ``torch.poisson``: its samplers consume a data-dependent number of random numbers, so one rate that
differs in its last bit between CPU and CUDA would shift every later draw. Here each value gets exactly one
uniform ``u`` and one normal ``z`` from a CPU ``torch.Generator`` (the same numbers on every device), and the
Poisson count is a deterministic function of (rate, u): the exact inverse CDF for rates below
``EXACT_BELOW`` counts, and the Cornish-Fisher expansion of the Poisson quantile above it
(``k = lam + sqrt(lam) z_u + (z_u^2 - 1) / 6``, rounded; skewness-corrected, relative error of the variance
below 1e-3 there). A device can then change a count by at most one where a rate sits on a decision boundary.
"""

from __future__ import annotations

import torch

EXACT_BELOW = 40.0  # counts: exact inversion below, Cornish-Fisher above
_MAX_COUNT = 120  # the inversion's last count: P(Poisson(40) > 120) < 1e-20
_CHUNK = 4  # pmf terms between two checks of which values are still searching


def noise_draws(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, z)``: uniforms in (0, 1) and standard normals of ``shape``, float32, from a CPU generator."""
    gen = torch.Generator(device="cpu").manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    u = torch.rand(shape, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    z = torch.randn(shape, generator=gen, dtype=torch.float32)
    return u, z


def poisson_quantile(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The ``u``-quantile of Poisson(``lam``) (float, any device): exact below ``EXACT_BELOW``, see module."""
    u = u.to(device=lam.device)
    z = torch.erfinv(u.mul(2).sub_(1)).mul_(2**0.5).to(lam.dtype)
    k = torch.floor(lam + lam.clamp(min=0).sqrt() * z + (z * z - 1) / 6 + 0.5).clamp_(min=0)
    small = lam < EXACT_BELOW
    if bool(small.any()):
        k[small] = _exact_quantile(lam[small].double().clamp(min=0), u[small]).to(k.dtype)
    return k


def _exact_quantile(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Exact inverse CDF (1-D float64): the count of ``j`` with ``u > P(K <= j - 1)``, summing the pmf from 0.

    Values are dropped from the working set as their quantile is found (checked every ``_CHUNK`` terms), so the
    work per value follows its own count rather than the largest one (dark images: most rates in 20..40). Every
    value sees the same float64 operations in the same order as a loop over all values, so the result is the
    same bit for bit.
    """
    out = torch.empty_like(lam)
    idx = torch.arange(lam.numel(), device=lam.device)
    p = torch.exp(-lam)  # P(K = 0)
    cdf = p.clone()
    count = torch.zeros(lam.shape, dtype=torch.uint8, device=lam.device)  # <= _MAX_COUNT < 256
    above = torch.empty(lam.shape, dtype=torch.bool, device=lam.device)
    j = 0
    while True:
        for _ in range(_CHUNK):
            j += 1
            # bool viewed as uint8: an add without a dtype conversion (7x cheaper than a float64 count)
            count.add_(torch.gt(u, cdf, out=above).view(torch.uint8))
            p.mul_(lam).div_(j)  # P(K = j) = P(K = j - 1) * lam / j
            cdf.add_(p)
        live = torch.gt(u, cdf, out=above)
        n_live = int(live.sum())
        if n_live == 0 or j >= _MAX_COUNT:
            return out.index_copy_(0, idx, count.to(out.dtype))
        if n_live < 0.6 * live.numel():  # compact: keep only the values still searching
            out.index_copy_(0, idx, count.to(out.dtype))  # the live ones are written again later
            keep = live.nonzero().squeeze(1)  # one nonzero, then integer gathers (boolean masks redo it)
            idx, lam, u, p, cdf, count = (t.index_select(0, keep) for t in (idx, lam, u, p, cdf, count))
            above = torch.empty(lam.shape, dtype=torch.bool, device=lam.device)


def add_poisson_gaussian(raw: torch.Tensor, beta1: float, beta2: float, seed: int) -> torch.Tensor:
    """``beta1 * Poisson(raw / beta1) + beta2 * N(0, 1)`` per value (negative values: read noise only).

    Args:
        raw: RAW values (any shape, any device), nominally in [0, 1].
        beta1: shot-noise gain (variance ``beta1 * x``); beta2: read-noise standard deviation.
        seed: seeds the CPU generator of the draws (:func:`noise_draws`).
    """
    u, z = noise_draws(tuple(raw.shape), seed)
    signal = raw.clamp(min=0)
    counts = poisson_quantile(signal / beta1, u)
    return counts * beta1 + (raw - signal) + beta2 * z.to(device=raw.device, dtype=raw.dtype)
