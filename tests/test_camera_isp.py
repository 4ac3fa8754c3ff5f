"""The camera model's building blocks against analytic oracles: the Malvar-He-Cutler demosaic (exact on constant
colours and linear ramps, its PSNR on textures), the colour matrices (white to white, the published values) and
the Poisson-Gaussian noise (mean, variance beta1 x + beta2^2, P(K = 0) = exp(-lambda), CPU draws)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from textures import textured_image

from blursynth.camera.isp import _MALVAR, PATTERNS, apply_matrix, demosaic_malvar, gain_map, mosaic
from blursynth.camera.matrices import CAMERA_MATRICES, SRGB_TO_XYZ, camera_matrices
from blursynth.camera.noise import EXACT_BELOW, add_poisson_gaussian, noise_draws, poisson_quantile
from blursynth.ops.crf import create_crf

SRGB = create_crf("srgb")


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def correlated_image(height: int, width: int, seed: int) -> np.ndarray:
    """Natural-image statistics: a detailed luminance texture times a smooth chroma field (the channels of a
    photograph are strongly correlated, which is what a demosaic relies on). float64 sRGB in [0, 1]."""
    lum = textured_image(height, width, seed=seed).mean(axis=2, keepdims=True)
    chroma = cv2.GaussianBlur(textured_image(height, width, seed=seed + 1), (0, 0), 8)
    return np.clip(lum * (0.5 + chroma), 0, 1)


# -- mosaic and demosaic ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", PATTERNS)
def test_mosaic_takes_each_sites_own_colour(pattern):
    image = torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(0))
    cfa = mosaic(image, pattern)[0]
    for y in range(6):
        for x in range(8):
            channel = "RGB".index(pattern[2 * (y % 2) + x % 2])
            assert cfa[y, x] == image[channel, y, x]
    gains = gain_map(pattern, (2.0, 1.0, 3.0), 6, 8, "cpu")[0]
    assert {float(gains[y, x]) for y in range(2) for x in range(2)} == {2.0, 1.0, 3.0}
    assert float(gains[pattern.index("R") // 2, pattern.index("R") % 2]) == 2.0


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("size", [(8, 10), (7, 9)])
def test_malvar_is_exact_on_a_constant_colour(pattern, size):
    rgb = torch.tensor([0.7, 0.3, 0.55])
    image = rgb[:, None, None].expand(3, *size).clone()
    out = demosaic_malvar(mosaic(image, pattern), pattern)
    assert out.shape == image.shape
    assert torch.allclose(out, image, atol=1e-6)  # borders included: reflect padding keeps the sites


@pytest.mark.parametrize("pattern", PATTERNS)
def test_malvar_is_exact_on_linear_ramps(pattern):
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    image = torch.stack([0.1 + 0.01 * yy + 0.02 * xx, 0.5 - 0.015 * yy + 0.005 * xx, 0.2 + 0.02 * yy - 0.01 * xx])
    out = demosaic_malvar(mosaic(image, pattern), pattern)
    inner = np.s_[:, 2:-2, 2:-2]  # the 5x5 filters reach 2 px: the reflect-padded border is not a ramp
    assert torch.allclose(out[inner], image[inner], atol=1e-5)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_malvar_matches_the_papers_filters_pixel_by_pixel(pattern):
    """Reference: each missing colour is the paper's 5x5 filter (Fig. 2) at that site, computed in a loop."""
    cfa = np.random.default_rng(2).random((10, 12))
    padded = np.pad(cfa, 2, mode="reflect")
    kernels = _MALVAR.numpy()  # G at R/B, R/B along the row, R/B along the column, R at B / B at R
    expected = np.zeros((3, 10, 12))
    r_row = pattern.index("R") // 2
    for y in range(10):
        for x in range(12):
            here = pattern[2 * (y % 2) + x % 2]
            patch = padded[y : y + 5, x : x + 5]
            f = [(k * patch).sum() for k in kernels]
            if here == "G":
                in_r_row = y % 2 == r_row
                rgb = (f[1] if in_r_row else f[2], cfa[y, x], f[2] if in_r_row else f[1])
            elif here == "R":
                rgb = (cfa[y, x], f[0], f[3])
            else:
                rgb = (f[3], f[0], cfa[y, x])
            expected[:, y, x] = rgb
    out = demosaic_malvar(torch.from_numpy(cfa)[None], pattern).numpy()
    assert np.allclose(out, expected, atol=1e-12)


def test_demosaic_is_batched_like_one_image_at_a_time():
    images = torch.rand(2, 3, 12, 14, generator=torch.Generator().manual_seed(1))
    batched = demosaic_malvar(mosaic(images, "GRBG"), "GRBG")
    for i in range(2):
        assert torch.allclose(batched[i], demosaic_malvar(mosaic(images[i], "GRBG"), "GRBG"), atol=1e-6)


# measured (docs/realism.md): 43.0 dB with correlated channels, 26.0 dB on independent per-channel noise
@pytest.mark.parametrize(("make", "floor"), [(correlated_image, 42.5), (textured_image, 25.5)])
def test_mosaic_demosaic_psnr_on_textures(make, floor):
    image = make(240, 320, seed=3)
    lin = chw(SRGB.to_linear(image))
    for pattern in PATTERNS:
        out = demosaic_malvar(mosaic(lin, pattern), pattern).clamp(0, 1).permute(1, 2, 0).double().numpy()
        value = psnr(SRGB.from_linear(out)[4:-4, 4:-4], image[4:-4, 4:-4])  # sRGB code values, as stored
        assert floor < value < floor + 2.0, (pattern, value)


# -- colour matrices -------------------------------------------------------------------------------------------
def test_realblur_camera_matrix_is_the_published_one():
    assert CAMERA_MATRICES["sony_a7r3"] == pytest.approx(
        [0.6640, -0.1847, -0.0503, -0.5238, 1.3010, 0.2474, -0.0993, 0.1673, 0.6527])
    assert len(CAMERA_MATRICES) >= 6 and all(len(v) == 9 for v in CAMERA_MATRICES.values())
    white = SRGB_TO_XYZ @ np.ones(3)
    assert white == pytest.approx([0.95047, 1.0, 1.08883], abs=1e-4)  # D65


@pytest.mark.parametrize("name", sorted(CAMERA_MATRICES))
def test_matrices_map_white_to_white_and_invert(name):
    srgb2cam, cam2srgb = camera_matrices(name)
    assert srgb2cam @ np.ones(3) == pytest.approx(np.ones(3), abs=1e-12)
    assert srgb2cam @ cam2srgb == pytest.approx(np.eye(3), abs=1e-12)
    xyz2cam = np.reshape(CAMERA_MATRICES[name], (3, 3))
    scale = (srgb2cam @ np.linalg.inv(SRGB_TO_XYZ)) / xyz2cam  # the normalisation is a per-row scale
    assert np.allclose(scale, scale[:, :1], rtol=1e-9)
    image = torch.rand(3, 4, 5, dtype=torch.float64)
    back = apply_matrix(apply_matrix(image, torch.tensor(srgb2cam)), torch.tensor(cam2srgb))
    assert torch.allclose(back, image, atol=1e-12)


# -- noise -----------------------------------------------------------------------------------------------------
BETA1, BETA2 = 8.8915e-05, 2.9430e-05


@pytest.mark.parametrize("x", [0.0, 2e-4, 1e-3, 3.5e-3, 0.02, 0.2, 0.8])
def test_noise_variance_on_flat_raw_patches(x):
    raw = torch.full((256, 256), x)
    noisy = add_poisson_gaussian(raw, BETA1, BETA2, seed=int(x * 1e6) + 7).double()
    expected = BETA1 * x + BETA2**2
    assert float(noisy.var()) == pytest.approx(expected, rel=0.10)
    assert abs(float(noisy.mean()) - x) < 4 * (expected / raw.numel()) ** 0.5 + 1e-9


@pytest.mark.parametrize("lam", [0.3, 2.0, 7.5, EXACT_BELOW - 1])
def test_small_counts_are_exactly_poisson(lam):
    u, _ = noise_draws((200_000,), seed=3)
    k = poisson_quantile(torch.full((200_000,), lam, dtype=torch.float64), u)
    assert torch.equal(k, k.round()) and float(k.min()) >= 0
    n = k.numel()
    for value in (0, 1, round(lam)):
        p = float(np.exp(-lam) * lam**value / math.factorial(value))
        observed = float((k == value).double().mean())
        assert abs(observed - p) < 5 * (p * (1 - p) / n) ** 0.5 + 1e-6, (value, observed, p)


def test_large_counts_have_poisson_mean_variance_and_skew():
    lam = 400.0
    u, _ = noise_draws((400_000,), seed=4)
    k = poisson_quantile(torch.full((400_000,), lam, dtype=torch.float64), u).double()
    assert float(k.mean()) == pytest.approx(lam, abs=0.2)
    assert float(k.var()) == pytest.approx(lam, rel=0.02)
    skew = float(((k - k.mean()) ** 3).mean() / k.var() ** 1.5)
    assert skew == pytest.approx(lam**-0.5, abs=0.02)  # Poisson's skewness, which a plain Gaussian lacks


def test_noise_draws_come_from_the_seed_alone():
    raw = torch.full((3, 20, 30), 0.1)
    a = add_poisson_gaussian(raw, BETA1, BETA2, seed=11)
    assert torch.equal(a, add_poisson_gaussian(raw.clone(), BETA1, BETA2, seed=11))
    assert not torch.equal(a, add_poisson_gaussian(raw, BETA1, BETA2, seed=12))
    # the draws do not depend on the values: a brighter image gets the same uniforms and normals
    u1, z1 = noise_draws((3, 20, 30), seed=11)
    u2, z2 = noise_draws((3, 20, 30), seed=11)
    assert torch.equal(u1, u2) and torch.equal(z1, z2)


def test_noise_on_the_device_matches_the_cpu(device):
    raw = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(5)) * 0.05
    cpu = add_poisson_gaussian(raw, BETA1, BETA2, seed=9)
    other = add_poisson_gaussian(raw.to(device), BETA1, BETA2, seed=9).cpu()
    # a count may move by one where a rate sits on a decision boundary
    assert float((cpu - other).abs().max()) <= BETA1 * 1.01


def _summed_inverse_cdf(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The oracle: the exact inversion over every value at once (the loop before issue 19's review), float64."""
    p = torch.exp(-lam)
    cdf, count = p.clone(), torch.zeros_like(lam)
    for j in range(1, 121):
        count += (u > cdf).double()
        p = p * lam / j
        cdf = cdf + p
    return count


def test_dark_content_quantiles_equal_the_full_inversion_value_by_value():
    # dark RAW: rates 0..40 counts (linear 0.002-0.007 at beta1 ~ 1e-4), where the compacted loop does the work
    n = 60_000
    lam = torch.linspace(0.0, EXACT_BELOW - 1e-3, n, dtype=torch.float64)
    u, _ = noise_draws((n,), seed=21)
    u[:8] = torch.tensor([1e-12, 1 - 1e-12, 0.5, 0.999999, 1e-6, 0.25, 0.75, 0.9])  # the tails and the middle
    k = poisson_quantile(lam, u).double()
    assert torch.equal(k, _summed_inverse_cdf(lam, u))
    # and each count is the u-quantile: P(K <= k - 1) < u <= P(K <= k) (torch's regularised gamma as the CDF)
    sample = torch.arange(0, n, 97)
    ks, ls, us = k[sample], lam[sample], u[sample]
    upper = torch.special.gammaincc(ks + 1, ls)
    lower = torch.where(ks > 0, torch.special.gammaincc(ks.clamp(min=1), ls), torch.zeros_like(ls))
    assert bool((lower < us + 1e-12).all() and (us <= upper + 1e-12).all())
