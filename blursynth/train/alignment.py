"""Blur/sharp alignment of every pair, without training: shifted, swapped and mismatched pairs.

A correct pair satisfies three things whatever the motion (Nah et al. 2017, Sec. 2: the blur is the average
of frames around the sharp one):

* **aligned**: the blur kernel of a window centred on the sharp frame is centre-symmetric (uniform motion),
  so its transfer function H is real, though of either sign (a box blur's sinc). Plain phase correlation
  (``cv2.phaseCorrelate``) follows those sign flips: correct 128 px pans read as 8 px shifts with a 0.16
  peak. Correlating the *squared* normalised cross-power spectrum removes the signs and peaks at twice the
  shift (measured: <= 0.5 px on every correct pair of the example clips and test pans, a doctored 6 px
  shift reads 5.8-6.3 px). Images are measured at most 256 px wide (area down-sampling). A shift counts only
  when blur moved by it matches sharp better than in place: with local blur the peak can follow an object
  whose blur centroid is off its middle pose (a ``local`` sample read 2.6 px) while the still background,
  which a real shift would move too, is aligned;
* **same content**: motion blur keeps the low frequencies, so the images low-passed with a Gaussian of
  sigma = min side / 16 correlate highly at the measured shift (> 0.99 on every correct pair measured,
  0.67 for a 26 px blur on 48 px images; different content gives ~0);
* **blurrier**: averaging frames removes high frequencies, so sharp has at least the Laplacian energy of blur
  where the two differ; blur holding clearly more (x 1.5) means blur and sharp were exchanged. A pair made
  with ``--camera`` (``meta["camera"]``, issue 19) has sensor noise in blur only, which raises blur's Laplacian
  energy far above sharp's wherever the motion is small (14.5x on a slow smooth pan, 42.6x on a dark one): both
  images are low-passed with a Gaussian of sigma = 2 px before this test, which removes the pixel noise and
  keeps the motion blur's loss of detail (measured on 64x96 pans through the camera at 240 fps: correct pairs
  0.24-0.71, as 0.32-0.70 without the camera; the same pairs swapped 1.41-4.19, so a swap is still found
  where blur spans several pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from blursynth.shards.listing import ShardEntry
from blursynth.shards.reader import ShardReader

#: Images are measured at most this size (longer side, area down-sampling): fast, and blur-insensitive.
MEASURE_SIDE = 256
#: A pair is shifted when its shift exceeds max(MIN_SHIFT_PX, SHIFT_FRACTION x min side) pixels (correct pairs:
#: the centroid of the window's motion, 0 for uniform motion; 7 a px for N = 13 at an acceleration of a px/frame^2).
MIN_SHIFT_PX, SHIFT_FRACTION = 2.0, 0.01
#: A pair is mismatched when its low-pass correlation at the best shift is below this.
MIN_CORRELATION = 0.5
#: A pair is swapped when blur has this many times the Laplacian energy of sharp where they differ (correct
#: pairs measured: <= 0.37, except an object leaving the frame mid-window: 1.41 over 0.4 % of the image).
SWAP_RATIO = 1.5
#: Gaussian sigma (full-size pixels) that low-passes both images of a camera pair before the swap test (the
#: camera's noise is in blur only: pixel scale, partly correlated over 2 px by the demosaic).
NOISE_SIGMA = 2.0
#: Fewer differing pixels than this fraction: a (nearly) static pair, or an occlusion at the border, not tested
#: for a swap.
MIN_MOVING = 0.01


@dataclass(frozen=True)
class PairAlignment:
    """What :func:`measure_pair` found for one pair (shift of blur relative to sharp, in full-size pixels)."""

    dx: float
    dy: float
    correlation: float  # low-pass NCC at the best shift (NaN for a flat image)
    hf_ratio: float  # Laplacian energy of blur / sharp where they differ (NaN for a static pair)
    limit_px: float
    shift_gain: float = 1.0  # NCC at the shift minus at zero (<= 0: the still part of the image is aligned)

    @property
    def shift(self) -> float:
        return math.hypot(self.dx, self.dy)

    def problem(self) -> str | None:
        """``mismatched`` / ``shifted`` / ``swapped`` with the figures, or None for a good pair."""
        if self.correlation < MIN_CORRELATION:
            return f"mismatched (low-pass correlation {self.correlation:.2f} < {MIN_CORRELATION})"
        if self.shift > self.limit_px and self.shift_gain > 0:
            return f"shifted by ({self.dx:+.1f}, {self.dy:+.1f}) px (limit {self.limit_px:.1f})"
        if self.hf_ratio > SWAP_RATIO:
            return (f"swapped (blur has {self.hf_ratio:.2f}x the high-frequency energy of sharp; "
                    f"expected <= {SWAP_RATIO})")
        return None


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _peak(corr: np.ndarray) -> tuple[float, float]:
    """Sub-pixel (x, y) of the maximum of a circular correlation (parabola through the neighbours)."""
    h, w = corr.shape
    y, x = np.unravel_index(int(np.argmax(corr)), corr.shape)
    offsets = []
    for axis, (i, n) in enumerate(((x, w), (y, h))):
        if axis == 0:
            a, b, c = corr[y, (i - 1) % n], corr[y, i], corr[y, (i + 1) % n]
        else:
            a, b, c = corr[(i - 1) % n, x], corr[i, x], corr[(i + 1) % n, x]
        den = a - 2 * b + c
        frac = 0.5 * (a - c) / den if den < 0 else 0.0
        pos = i + frac
        offsets.append(pos - n if pos > n / 2 else pos)
    return offsets[0], offsets[1]


def _symmetric_phase_shift(blur: np.ndarray, sharp: np.ndarray) -> tuple[float, float]:
    """Shift (x, y) of ``blur`` relative to ``sharp`` for any centre-symmetric blur kernel, in pixels.

    The cross-power spectrum of an aligned pair is H |S|^2 with H, the transfer function of a centre-symmetric
    kernel, real but of either sign (a box blur's sinc). Phase correlation of the *squared* normalised
    cross-power spectrum is blind to those sign flips and peaks at twice the shift, so |shift| < size / 4 is
    measured exactly (0.1 px on test pans, where plain phase correlation read 8 px).
    """
    h, w = blur.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    cross = np.fft.fft2((blur - blur.mean()) * window) * np.conj(np.fft.fft2((sharp - sharp.mean()) * window))
    squared = cross * cross
    corr = np.real(np.fft.ifft2(squared / (np.abs(squared) + 1e-20)))
    x2, y2 = _peak(corr)
    return x2 / 2, y2 / 2


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 1e-12 else math.nan


def _shift_gain(blur: np.ndarray, sharp: np.ndarray, ix: int, iy: int) -> float:
    """How much better blur matches sharp moved by (ix, iy) than in place (NCC, same central region, images
    lightly smoothed). A shifted pair gains; an aligned pair whose phase peak follows a *moving part* (an
    object whose blur centroid is off its middle pose, over a still, smoother background) loses, because
    moving the still part misaligns it."""
    h, w = blur.shape
    mx, my = abs(ix), abs(iy)
    if not (ix or iy) or 2 * mx >= w or 2 * my >= h:
        return 0.0
    b, s = cv2.GaussianBlur(blur, (0, 0), 1.0), cv2.GaussianBlur(sharp, (0, 0), 1.0)
    ref = s[my : h - my, mx : w - mx]
    moved = b[my + iy : h - my + iy, mx + ix : w - mx + ix]
    return _ncc(moved, ref) - _ncc(b[my : h - my, mx : w - mx], ref)


def measure_pair(blur: np.ndarray, sharp: np.ndarray, *, noisy: bool = False) -> PairAlignment:
    """Shift, low-pass correlation and high-frequency ratio of one pair.

    Args:
        blur, sharp: (H, W, 3) uint8 RGB.
        noisy: blur went through the camera (``meta["camera"]``): the high-frequency ratio is measured on both
            images low-passed with :data:`NOISE_SIGMA`, so the noise does not read as detail.
    """
    b, s = _luma(blur), _luma(sharp)
    height, width = b.shape
    factor = max(1, math.ceil(max(height, width) / MEASURE_SIDE))
    small = (max(8, width // factor), max(8, height // factor))
    b2 = cv2.resize(b, small, interpolation=cv2.INTER_AREA) if factor > 1 else b
    s2 = cv2.resize(s, small, interpolation=cv2.INTER_AREA) if factor > 1 else s
    dx, dy = _symmetric_phase_shift(b2, s2)
    sigma = min(b2.shape) / 16
    lb, ls = cv2.GaussianBlur(b2, (0, 0), sigma), cv2.GaussianBlur(s2, (0, 0), sigma)
    # the correlation where blur matches sharp best (integer shift, crops of the overlap)
    ix, iy = round(dx), round(dy)
    h2, w2 = lb.shape
    if abs(ix) < w2 // 2 and abs(iy) < h2 // 2:
        crop_b = lb[max(iy, 0) : h2 + min(iy, 0), max(ix, 0) : w2 + min(ix, 0)]
        crop_s = ls[max(-iy, 0) : h2 + min(-iy, 0), max(-ix, 0) : w2 + min(-ix, 0)]
        correlation = max(_ncc(crop_b, crop_s), _ncc(lb, ls))
    else:
        correlation = _ncc(lb, ls)
    shift_gain = _shift_gain(b2, s2, round(dx), round(dy))
    # high-frequency energy where the two differ (local blur: only the moving object differs)
    if noisy:
        b, s = cv2.GaussianBlur(b, (0, 0), NOISE_SIGMA), cv2.GaussianBlur(s, (0, 0), NOISE_SIGMA)
    moving = cv2.GaussianBlur(np.abs(b - s), (0, 0), 1.0) > 2.0 / 255
    hf_ratio = math.nan
    if moving.mean() >= MIN_MOVING:
        eb = float((cv2.Laplacian(b, cv2.CV_32F)[moving] ** 2).sum())
        es = float((cv2.Laplacian(s, cv2.CV_32F)[moving] ** 2).sum())
        hf_ratio = eb / es if es > 0 else math.inf
    limit = max(MIN_SHIFT_PX, SHIFT_FRACTION * min(height, width))
    return PairAlignment(dx * factor, dy * factor, correlation, hf_ratio, limit, shift_gain)


def check_alignment(entries: list[ShardEntry], per_shard: int = 100) -> dict:
    """Measure up to ``per_shard`` evenly spaced pairs of every shard; name the ones with a problem.

    Returns:
        ``{"checked": int, "flat": int, "problems": [{"split", "shard", "path", "index", "source", "problem"}],
        "max_shift_px": float, "min_correlation": float | None, "max_hf_ratio": float | None,
        "camera_pairs": int}`` (None: no pair could be measured). Flat pairs (no texture at all) are counted, not
        judged. ``camera_pairs``: pairs with ``meta["camera"]``, whose swap test ran on low-passed images.
    """
    checked = flat = camera_pairs = 0
    problems: list[dict] = []
    shifts, correlations, ratios = [0.0], [], []
    for entry in entries:
        with ShardReader(entry.path) as reader:
            n = len(reader)
            picks = np.unique(np.linspace(0, n - 1, min(n, per_shard)).round().astype(int)) if n else []
            for i in picks:
                i = int(i)
                try:
                    meta = reader.meta(i)
                except ValueError:
                    meta = {}
                noisy = isinstance(meta, dict) and meta.get("camera") is not None
                camera_pairs += noisy
                found = measure_pair(reader.array("blur", i), reader.array("sharp", i), noisy=noisy)
                checked += 1
                if math.isnan(found.correlation):
                    flat += 1  # a flat image: nothing to align
                    continue
                shifts.append(found.shift)
                correlations.append(found.correlation)
                if not math.isnan(found.hf_ratio):
                    ratios.append(found.hf_ratio)
                problem = found.problem()
                if problem:
                    source = meta.get("source") if isinstance(meta, dict) else None
                    problems.append({"split": entry.split, "shard": entry.shard, "path": str(entry.path),
                                     "index": i, "source": source, "problem": problem})
    return {"checked": checked, "flat": flat, "problems": problems, "max_shift_px": max(shifts),
            "min_correlation": min(correlations, default=None), "max_hf_ratio": max(ratios, default=None),
            "camera_pairs": camera_pairs}


def describe(problem: dict) -> str:
    """One line naming the pair: ``val/00003.h5[12] (source clip.mp4): shifted by ...``."""
    source = f" (source {problem['source']})" if problem.get("source") else ""
    return f"{problem['split']}/{problem['shard']:05d}.h5[{problem['index']}]{source}: {problem['problem']}"
