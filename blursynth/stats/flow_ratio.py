"""Blurred-area ratio vs optical-flow threshold (LODE/BladeNet Sec. 3, Fig. 3): the definitions.

LODE separates global-blur datasets (GOPRO, REDS: camera shake moves most pixels) from local-blur ones
(moving objects over a static background) with one curve: "the ratio of blurred area ... pixels whose
optical flow magnitude is larger than a threshold". To remove the frame-rate effect, flow is measured over
the same time span everywhere: 2 consecutive frames of 120 fps REDS, frames t -> t+2 of 240 fps GOPRO and
250 fps LODE, with DeepFlow.

Here the span is ``--span-ms`` (default 1000 * 2 / 240 ms): a source at ``fps`` is measured between frames t
and t + gap with ``gap = max(1, round(span * fps))`` (120 fps -> 1, 240 fps -> 2, 250 fps -> 2). A source too
slow for the span (``gap`` clamped to 1 frame, e.g. 10 fps -> 100 ms) or whose rate rounds far off is measured
over another span than asked: :func:`measured_span_ms` is what each source really got, and the outputs carry
it, because curves over different spans are not comparable (more time, more motion). Pair starts t are drawn
stratified over the whole source (one random start per equal slice), seeded by (seed, dataset label, source
key). A pair's curve is ``ratio(th) = mean(motion > th)`` over every pixel of the frame (LODE's denominator),
where ``motion`` is a pixel's visible motion if it is measurable and 0 if not, or with ``--raw-flow`` its flow
magnitude as the backend gives it (stats/source_pairs.py); a dataset's curve is the mean and standard
deviation over all its pairs.
"""

from __future__ import annotations

import math

import numpy as np

#: Measured spans further apart than this (largest / smallest) make datasets' curves not comparable.
SPAN_TOLERANCE = 1.10


def gap_frames(span_ms: float, fps: float) -> int:
    """Frames between the two frames of a pair: ``max(1, round(span * fps))`` (span in milliseconds)."""
    return max(1, int(round(span_ms * fps / 1000.0)))


def measured_span_ms(gap: int, fps: float) -> float:
    """The time a pair ``gap`` frames apart really spans at ``fps`` (ms): what its curve measures."""
    return 1000.0 * gap / fps


def spans_differ(spans_ms: list[float], tolerance: float = SPAN_TOLERANCE) -> bool:
    """Whether the largest span exceeds the smallest by more than ``tolerance`` (1.10: 10 %)."""
    return bool(spans_ms) and max(spans_ms) > tolerance * min(spans_ms)


def span_text(spans_ms: list[float]) -> str:
    """``8.33 ms`` or ``8.33-41.7 ms`` (3 significant digits); empty without a span."""
    if not spans_ms:
        return ""
    lo, hi = min(spans_ms), max(spans_ms)
    return f"{lo:.3g} ms" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g}-{hi:.3g} ms"


def pair_starts(num_frames: int, gap: int, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` distinct starts t (t + gap < num_frames), one drawn uniformly in each of ``count`` equal slices."""
    available = num_frames - gap
    if available <= 0 or count <= 0:
        return []
    k = min(count, available)
    edges = np.linspace(0, available, k + 1)
    starts = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        a, b = int(math.ceil(lo)), max(int(math.ceil(hi)), int(math.ceil(lo)) + 1)
        starts.append(int(rng.integers(a, min(b, available))) if b > a + 1 else a)
    return sorted(set(starts))


def ratio_curve(mag: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of pixels whose magnitude exceeds each threshold. Shape: (H, W), (T,) -> (T,) float64."""
    flat = np.sort(mag, axis=None)
    return 1.0 - np.searchsorted(flat, thresholds, side="right") / flat.size
