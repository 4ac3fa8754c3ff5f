"""The image-signal-processor stages of the camera model, in torch (CPU and CUDA, batched or not).

Images are ``(..., 3, H, W)`` float tensors (``...`` = no batch or ``N``), mosaics ``(..., 1, H, W)``. A Bayer
pattern is named by its top-left 2x2 block read row by row (``RGGB``: R at (0, 0), G at (0, 1) and (1, 0), B at
(1, 1)), the names RSBlur uses (``Uformer-RSBlur/ISP/utils.py`` ``mosaic_bayer``). Every function works for any
H and W, odd included: the pattern is tiled from the top-left pixel, and the demosaic's reflect padding keeps
each border pixel's neighbours on the same colour sites (mirroring ``i -> -i`` keeps the parity of an index).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from blursynth.camera.config import PATTERNS

CHANNEL = {"R": 0, "G": 1, "B": 2}

# Malvar, He and Cutler, "High-quality linear interpolation for demosaicing of Bayer-patterned color images",
# ICASSP 2004, Fig. 2: the four 5x5 gradient-corrected filters (x 1/8). Each sums to 8 (a constant is kept)
# and is symmetric (a linear ramp is kept).
_MALVAR = torch.tensor([
    # G at R or B sites
    [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]],
    # R (B) at a G site whose row holds R (B): the missing colour's neighbours are left and right
    [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]],
    # R (B) at a G site whose column holds R (B): neighbours above and below
    [[0, 0, -1, 0, 0], [0, -1, 4, -1, 0], [0.5, 0, 5, 0, 0.5], [0, -1, 4, -1, 0], [0, 0, -1, 0, 0]],
    # R at B sites, B at R sites
    [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]],
], dtype=torch.float64) / 8.0


def check_pattern(pattern: str) -> str:
    if pattern not in PATTERNS:
        raise ValueError(f"Bayer pattern: expected one of {', '.join(PATTERNS)}, got {pattern!r}")
    return pattern


@functools.lru_cache(maxsize=64)
def _site_masks(pattern: str, height: int, width: int) -> torch.Tensor:
    """``(5, H, W)`` float32 masks (CPU): R sites, B sites, G sites in R rows, G sites in B rows, one-hot colour
    index unused; built once per (pattern, size)."""
    check_pattern(pattern)
    yy = torch.arange(height)[:, None] % 2
    xx = torch.arange(width)[None, :] % 2
    site = 2 * yy + xx  # 0..3: position in the 2x2 block
    colour = torch.tensor([CHANNEL[c] for c in pattern])[site]  # (H, W) channel index per site
    r_row = pattern.index("R") // 2  # block row that holds R
    red, blue, green = colour == 0, colour == 2, colour == 1
    g_rrow = green & (yy == r_row)
    g_brow = green & (yy != r_row)
    return torch.stack([red, blue, g_rrow, g_brow, green]).float()


def site_masks(pattern: str, height: int, width: int, device, dtype=torch.float32) -> torch.Tensor:
    return _site_masks(pattern, height, width).to(device=device, dtype=dtype)


def mosaic(image: torch.Tensor, pattern: str) -> torch.Tensor:
    """Sample an RGB image on a Bayer pattern: ``(..., 3, H, W)`` -> ``(..., 1, H, W)``."""
    h, w = image.shape[-2:]
    m = site_masks(pattern, h, w, image.device, image.dtype)
    onehot = torch.stack([m[0], m[4], m[1]])  # (3, H, W): R, G, B sites
    return (image * onehot).sum(dim=-3, keepdim=True)


def gain_map(pattern: str, gains: tuple[float, float, float], height: int, width: int, device,
             dtype=torch.float32) -> torch.Tensor:
    """``(1, H, W)`` per-site gains of a mosaic (``gains`` = (red, green, blue))."""
    m = site_masks(pattern, height, width, device, dtype)
    return (gains[0] * m[0] + gains[1] * m[4] + gains[2] * m[1])[None]


def demosaic_malvar(cfa: torch.Tensor, pattern: str) -> torch.Tensor:
    """Malvar-He-Cutler (ICASSP 2004) demosaic: ``(..., 1, H, W)`` -> ``(..., 3, H, W)``.

    The four 5x5 filters (``_MALVAR``) share their taps, so they are evaluated from five neighbour sums of the
    reflect-padded mosaic (left+right and up+down at distances 1 and 2, the four diagonals) instead of a
    ``conv2d`` (2x faster on one CPU thread, the same values within float rounding). Each site keeps its own
    value for its colour and takes the filtered values for the other two.
    """
    shape = cfa.shape
    h, w = shape[-2:]
    x = cfa.reshape(-1, 1, h, w)
    mode = "reflect" if min(h, w) > 2 else "replicate"
    p = F.pad(x, (2, 2, 2, 2), mode=mode)

    def at(dy: int, dx: int) -> torch.Tensor:
        return p[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]

    h1, v1 = at(0, -1) + at(0, 1), at(-1, 0) + at(1, 0)
    h2, v2 = at(0, -2) + at(0, 2), at(-2, 0) + at(2, 0)
    d4 = at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)
    g_at_rb = (4 * x + 2 * (h1 + v1) - (h2 + v2)) / 8
    along_row = (5 * x - d4 - h2 + 0.5 * v2 + 4 * h1) / 8
    along_col = (5 * x - d4 - v2 + 0.5 * h2 + 4 * v1) / 8
    cross = (6 * x + 2 * d4 - 1.5 * (h2 + v2)) / 8
    red, blue, g_rrow, g_brow, green = site_masks(pattern, h, w, x.device, x.dtype)
    out = torch.empty(x.shape[0], 3, h, w, device=x.device, dtype=x.dtype)
    out[:, 0:1] = x * red + along_row * g_rrow + along_col * g_brow + cross * blue
    out[:, 1:2] = x * green + g_at_rb * (red + blue)
    out[:, 2:3] = x * blue + along_row * g_brow + along_col * g_rrow + cross * red
    return out.reshape(*shape[:-3], 3, h, w)


def apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``out[i] = sum_j matrix[i, j] * image[j]`` per pixel: ``(..., 3, H, W)`` -> ``(..., 3, H, W)``."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(device=image.device, dtype=image.dtype), image)
