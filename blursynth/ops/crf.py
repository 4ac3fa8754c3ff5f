"""Camera response functions (CRF) and their lookup tables.

Nah et al. 2017 (Sec. 2, Eq. 2-3) synthesise a blurry image as B = g((1/M) sum_i g^-1(S_hat[i])) with the CRF
approximated by g(x) = x^(1/gamma), gamma = 2.2. We invert the CRF with an integer lookup table: code value
v of a b-bit image maps to round(g^-1(v / (2^b - 1)) * Q), where Q (the "full scale") is chosen so that the
sum of up to n_max frames fits in int32. Integer sums are exact and associative, so the streaming CPU path,
the batched torch path and a resumed run produce the same sums whatever the summation order. The forward
CRF is applied once per window, in float32, and the result is **rounded** (never truncated) to uint8.

Precision: the table rounds each linear value to 1/q, so the mean of a window is off by at most 0.5/q.
The forward gamma curve is steepest where it matters least; at the darkest mean that can still round to a
non-zero code, m = (0.5/255)^2.2 ~ 1.1e-6, its slope is 255/2.2 * m^(1/2.2 - 1) ~ 2e5 codes per unit, so with
q ~ 1.65e8 (N_max = 13) the error is ~6e-4 of a code value: far below the 1-LSB rounding step.

One forward CRF (g) and one inverse (g^-1), in the forms the pipeline needs:

* float64 reference: :meth:`CRF.from_linear`, :meth:`CRF.to_linear` (tables, thresholds, tests);
* fast 8-bit forms: :meth:`CRF.decode` (a float32 table lookup) and :meth:`CRF.encode` (float32 OpenCV/numpy,
  rounded half to even), with their torch twins :meth:`CRF.decode_torch` and :meth:`CRF.encode_torch`; used
  by compositing (``ops/render*.py``), and :meth:`CRF.encode` is also :func:`encode_sum`'s float estimate;
* exact integer forms for window sums: :meth:`CRF.inverse_lut` and :func:`encode_sum`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from blursynth.errors import ConfigError
from blursynth.ops.images import work_array

if TYPE_CHECKING:  # imported on use by the torch paths only
    import torch

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class CRF:
    """A camera response model.

    Attributes:
        name: ``gamma``, ``srgb`` or ``linear``.
        gamma: exponent of the ``gamma`` model (ignored by the others).
    """

    name: str
    gamma: float = 2.2

    # -- float64 reference (numpy), used to build the tables and by tests --------------------------------
    def to_linear(self, x: np.ndarray) -> np.ndarray:
        """g^-1: encoded values in [0, 1] to linear light in [0, 1] (float64)."""
        x = np.asarray(x, dtype=np.float64)
        if self.name == "gamma":
            return np.power(x, self.gamma)
        if self.name == "srgb":
            return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))
        return x.copy()

    def from_linear(self, y: np.ndarray) -> np.ndarray:
        """g: linear light in [0, 1] to encoded values in [0, 1] (float64)."""
        y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
        if self.name == "gamma":
            return np.power(y, 1.0 / self.gamma)
        if self.name == "srgb":
            return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1.0 / 2.4) - 0.055)
        return y.copy()

    # -- fast 8-bit forms (float32), numpy and torch ------------------------------------------------------
    def decode(self, image: np.ndarray) -> np.ndarray:
        """g^-1 of 8-bit code values by table lookup: uint8 ``(..., 3)`` -> float32 linear light in [0, 1]."""
        return cv2.LUT(image, linear_table(self))

    def decode_torch(self, image: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` on a uint8 tensor (any device): the same float32 values."""
        import torch

        table = torch.tensor(linear_table(self), device=image.device)  # a copy: the table is read-only
        return table[image.long()]

    def encode(self, linear: np.ndarray, scale: float = 1.0, scratch: dict | None = None) -> np.ndarray:
        """g back to 8-bit code values: ``round(255 * g(scale * linear))``, half to even, clipped to [0, 255].

        float32 with OpenCV kernels (~4 ms for 1280x720 on one core). Exact for every code value: encoding the
        decoded value (or the mean of up to 23 copies of it) gives the code back (tests/test_crf.py).

        Args:
            linear: float linear light (negative values encode to 0), or non-negative integers (the exact
                window sums of :func:`encode_sum`, which ``scale`` brings to [0, 1]).
            scale: factor applied before g; for the gamma curve it is folded into the final rounding pass
                (``255 (S / nq)^(1/g) == S^(1/g) * 255 / (nq)^(1/g)``), so one pow and one fused pass remain.
            scratch: dict in which the work arrays are kept between calls (saves ~5 ms of page faults per
                1280x720 window); the result then lives in it and is overwritten by the next call.

        Returns:
            uint8 array of the shape of ``linear`` (at most 4 channels, as OpenCV requires).
        """
        scratch = {} if scratch is None else scratch
        out = work_array(scratch, "code", linear.shape, np.uint8)
        if linear.dtype.kind in "iu" and self.name == "linear":  # sums of a non-negative table: no clip needed
            return cv2.convertScaleAbs(linear, dst=out, alpha=255.0 * scale)
        x = work_array(scratch, "x", linear.shape, np.float32)
        if linear.dtype.kind in "iu":
            np.copyto(x, linear, casting="unsafe")
        else:  # pow and convertScaleAbs would take |y|
            cv2.max(np.asarray(linear, dtype=np.float32), 0.0, dst=x)
        if self.name == "gamma":
            cv2.pow(x, 1.0 / self.gamma, dst=x)
            return cv2.convertScaleAbs(x, dst=out, alpha=255.0 * scale ** (1.0 / self.gamma))
        if self.name == "linear":
            return cv2.convertScaleAbs(x, dst=out, alpha=255.0 * scale)
        if scale != 1.0:  # sRGB: IEC 61966-2-1, in float32 numpy
            x *= np.float32(scale)
        np.clip(x, 0.0, 1.0, out=x)
        low = np.multiply(x, np.float32(12.92), out=work_array(scratch, "low", x.shape, np.float32))
        dark = np.less_equal(x, np.float32(0.0031308), out=work_array(scratch, "dark", x.shape, np.bool_))
        np.power(x, np.float32(1 / 2.4), out=x)  # numpy's float32 pow: OpenCV's differs in the last bit
        x *= np.float32(1.055)
        x -= np.float32(0.055)
        np.copyto(x, low, where=dark)
        return cv2.convertScaleAbs(x, dst=out, alpha=255.0)

    def from_linear_torch(self, linear: torch.Tensor) -> torch.Tensor:
        """g on a float32 tensor of linear light (clipped to [0, 1]); ``linear`` is left as it is."""
        import torch

        y = linear.clamp(0.0, 1.0)
        if self.name == "gamma":
            return y.pow_(1.0 / self.gamma)
        if self.name == "srgb":
            return torch.where(y <= 0.0031308, y * 12.92, y.pow(1.0 / 2.4).mul_(1.055).sub_(0.055))
        return y

    def encode_torch(self, linear: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` on a float32 tensor (any device): ``round(255 * g(linear))`` as uint8, half to even.

        Bytes may differ from :meth:`encode` in the last bit of pow on a few values; both are exact for
        every code value.
        """
        import torch

        return torch.round(self.from_linear_torch(linear).mul_(255.0)).clamp_(0, 255).to(torch.uint8)

    # -- lookup tables ------------------------------------------------------------------------------------
    def full_scale(self, bit_depth: int, n_max: int) -> int:
        """Integer value that linear 1.0 maps to, so that n_max frames sum within int32."""
        if n_max < 1:
            raise ConfigError(f"window size must be at least 1, got {n_max}")
        if self.name == "linear":
            # Identity table: the sum of raw code values is exact and needs no extra precision.
            q = (1 << bit_depth) - 1
        else:
            q = INT32_MAX // n_max
        if q * n_max > INT32_MAX or q < (1 << bit_depth) - 1:
            raise ConfigError(f"window of {n_max} frames is too long for {bit_depth}-bit int32 accumulation")
        return q

    def inverse_lut(self, bit_depth: int, n_max: int) -> tuple[np.ndarray, int]:
        """Integer table for g^-1.

        Args:
            bit_depth: bits per sample of the decoded frames (8 or 16).
            n_max: the largest number of frames that will be summed.

        Returns:
            (lut, q): ``lut`` int32 of shape (2**bit_depth,), ``lut[v] = round(g^-1(v / vmax) * q)``.
        """
        vmax = (1 << bit_depth) - 1
        q = self.full_scale(bit_depth, n_max)
        codes = np.arange(vmax + 1, dtype=np.float64) / vmax
        lut = np.rint(self.to_linear(codes) * q).astype(np.int64)
        return lut.astype(np.int32), q


def create_crf(name: str, gamma: float = 2.2) -> CRF:
    """Factory for camera response models: ``gamma`` (default 2.2), ``srgb`` (IEC 61966-2-1) or ``linear``."""
    if name not in ("gamma", "srgb", "linear"):
        raise ConfigError(f"--crf: expected gamma, srgb or linear, got {name!r}")
    if name == "gamma" and not gamma > 0:
        raise ConfigError(f"--gamma: expected a positive exponent, got {gamma}")
    return CRF(name=name, gamma=float(gamma))


@functools.lru_cache(maxsize=16)
def linear_table(crf: CRF) -> np.ndarray:
    """g^-1 of every 8-bit code value: ``(256,) float32`` in [0, 1] (read-only; the table of :meth:`CRF.decode`)."""
    table = crf.to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=256)
def rounding_thresholds(crf: CRF, n: int, q: int) -> np.ndarray:
    """Integer decision thresholds of the forward CRF for a sum of ``n`` frames.

    Returns:
        int64 (257,) ``T`` with ``T[0] = -1``, ``T[256] = +inf`` (int32 max) and, for k in 1..255,
        ``T[k] = ceil(n q g^-1((k - 0.5) / 255))``: the encoded value of a sum S is k exactly when
        ``T[k] <= S < T[k + 1]``, i.e. round-half-up of 255 g(S / (n q)) evaluated exactly.
    """
    k = np.arange(1, 256, dtype=np.float64)
    t = np.ceil(n * q * crf.to_linear((k - 0.5) / 255.0) - 1e-9)
    out = np.empty(257, dtype=np.int64)
    out[0], out[256] = -1, INT32_MAX
    out[1:256] = np.minimum(t, INT32_MAX)
    return out


@functools.lru_cache(maxsize=256)
def estimate_table(crf: CRF, n: int, q: int) -> tuple[np.ndarray, int] | None:
    """A table that estimates the encoded value of a sum of ``n`` frames from a root of it, within one code.

    ``j = round(255 (S / (n q))^(1/r))``, with r = 2 (one ``cv2.sqrt``) or 4 (two), in float32 (a conversion,
    the roots, ``cv2.convertScaleAbs``) cuts [0, n q] into 256 intervals of S. The curves we re-apply are close
    to linear in such a root (``255 u^(r/gamma)`` rises at most ~1.5 codes per step of j for gamma <= 2.2 and
    r = 2), so the exact codes of each interval span at most 3 values and ``table[j]``, the middle one, is within
    one code of every S in it; :func:`encode_sum`'s exact correction then fixes the rest. Interval ends are
    widened by 1e-3 of a step (float32 rounding is ~5e-5 of a step). ~0.6 ms per 1280x720 window where
    ``cv2.pow`` takes ~4 ms.

    Returns:
        (uint8 (256,) table, r), or None where no root keeps every interval within 3 codes (the float
        estimate, :meth:`CRF.encode`, is used then). The linear curve needs neither.
    """
    if crf.name == "linear":
        return None
    t = rounding_thresholds(crf, n, q)[1:256]
    top = n * q
    j = np.arange(256, dtype=np.float64)
    for root in (2, 4):
        step = top ** (1.0 / root) / 255.0  # S^(1/root) per step of j
        lo = np.clip(np.floor((np.maximum(j - 0.5 - 1e-3, 0.0) * step) ** root), 0, top)
        hi = np.clip(np.ceil(((j + 0.5 + 1e-3) * step) ** root), 0, top)
        code_lo = np.searchsorted(t, lo, side="right")  # codes rise with S: the ends bound the interval's codes
        code_hi = np.searchsorted(t, hi, side="right")
        if np.all(code_hi - code_lo <= 2):
            table = ((code_lo + code_hi) // 2).astype(np.uint8)
            table.setflags(write=False)
            return table, root
    return None


def encode_sum(sums, n: int, q: int, crf: CRF, scratch: dict | None = None, out: np.ndarray | None = None):
    """Turn an exact integer sum of n linearised frames into the encoded uint8 image.

    Args:
        sums: integer array (numpy int32, the CPU path) or tensor (any device, the torch path) of shape
            (..., H, W, 3): the sum of ``n`` frames mapped through ``inverse_lut``.
        n: number of frames summed.
        q: the full scale returned by ``inverse_lut``.
        crf: the camera response to re-apply.
        scratch: optional dict in which the CPU path keeps its work arrays between calls (reusing them
            avoids ~5 ms of page faults per 1280x720 window).
        out: optional uint8 array of ``sums``' shape that the CPU path writes into (e.g. a strip of the
            window's image, ops/window_sum.py); else a fresh array.

    Returns:
        uint8 array or tensor of the same shape: round(255 * g(sums / (n q))), rounded half up and decided
        exactly in integers (see :func:`rounding_thresholds`), so both paths return identical bytes.
    """
    if isinstance(sums, np.ndarray):
        return _encode_numpy(sums, n, q, crf, {} if scratch is None else scratch, out)
    if out is not None:
        raise ValueError("out: only for numpy sums (the torch path returns a tensor)")
    return _encode_torch(sums, n, q, crf)


def _encode_numpy(sums: np.ndarray, n: int, q: int, crf: CRF, scratch: dict, out: np.ndarray | None) -> np.ndarray:
    shape = sums.shape
    flat = np.ascontiguousarray(sums).reshape(-1, shape[-2] * shape[-1]) if sums.ndim >= 2 else sums[None]
    estimate = estimate_table(crf, n, q)
    if estimate is not None:  # within one code of exact, from a root of the sum (see estimate_table)
        table, root = estimate
        x = work_array(scratch, "sum_x", flat.shape, np.float32)
        np.copyto(x, flat, casting="unsafe")
        for _ in range(root // 2):
            cv2.sqrt(x, dst=x)
        j = cv2.convertScaleAbs(x, dst=work_array(scratch, "sum_j", flat.shape, np.uint8),
                                alpha=255.0 / (n * q) ** (1.0 / root))
        est = cv2.LUT(j, table, dst=work_array(scratch, "sum_est", flat.shape, np.uint8))
    else:  # float32 estimate, within one code of exact
        est = crf.encode(flat, 1.0 / (n * q), scratch)
    # Exact correction of the estimate: v = e - [S < T[e]] + [S >= T[e + 1]], with the thresholds gathered by
    # cv2.LUT (0.5 ms per pass) and the two steps applied where the comparisons hold (saturating).
    t = _thresholds32(crf, n, q)
    bound = work_array(scratch, "sum_bound", flat.shape, np.int32)
    below = cv2.compare(flat, cv2.LUT(est, t[:256], dst=bound), cv2.CMP_LT,
                        dst=work_array(scratch, "sum_lt", flat.shape, np.uint8))
    above = cv2.compare(flat, cv2.LUT(est, t[1:], dst=bound), cv2.CMP_GE,
                        dst=work_array(scratch, "sum_ge", flat.shape, np.uint8))
    if out is None:
        result = est.copy()  # a fresh array: it is handed to the caller
    else:
        if not out.flags.c_contiguous or out.shape != shape or out.dtype != np.uint8:
            raise ValueError(f"out: expected a C-contiguous uint8 array of shape {shape}")
        result = out.reshape(flat.shape)
        np.copyto(result, est)
    cv2.add(result, 1, dst=result, mask=above)
    cv2.subtract(result, 1, dst=result, mask=below)
    return result.reshape(shape)


@functools.lru_cache(maxsize=256)
def _thresholds32(crf: CRF, n: int, q: int) -> np.ndarray:
    t = rounding_thresholds(crf, n, q).astype(np.int32)
    t.setflags(write=False)
    return t


def _encode_torch(sums: torch.Tensor, n: int, q: int, crf: CRF) -> torch.Tensor:
    import torch

    t = torch.from_numpy(rounding_thresholds(crf, n, q)[1:256]).to(sums.device)
    return torch.bucketize(sums.to(torch.int64), t, right=True).to(torch.uint8)
