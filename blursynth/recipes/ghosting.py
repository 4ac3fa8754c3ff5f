"""Ghosting guard of the frame-averaging recipes: how far consecutive frames move, measured where it shows.

Averaging N frames gives N sharp copies instead of a smear wherever the picture moves more than about one
pixel between frames (Nah et al. 2017 note it for fast motion at 240 fps; REDS interpolated its 120 fps
footage to 1920 fps for this reason, Nah et al., NTIRE 2019). GOPRO and LODE stay faithful to their papers
and average the real frames; this guard only measures the inter-frame displacement and says when it is
large enough to ghost.

Cost: nothing is decoded for it. Planning already decodes the first frames of every source to look for
repeated frames (io/repeats.py, ``PREFIX_FRAMES``); :class:`PairSampler` watches those frames pass and keeps
a few pairs of consecutive, distinct frames as small gray images (longest side :data:`MEASURE_SIDE`). Each
pair is measured both ways (:func:`blursynth.flow.measure.measure_pair`, DIS): only *measurable* motion
counts (textured and forward-backward consistent), so flat areas and sensor noise, where a flow method
invents motion, never raise the figure. The figure is the 99th percentile of the measurable pixels' motion
over the sampled pairs, in pixels of the frames that are averaged (after ``--downsample``); a source with no
measurable pixel moves by 0 (nothing visible can ghost).

Limitation: the pairs come from the start of the source (the frames the repeat probe decodes; sources with
a repeat cadence are scanned entirely, and their pairs then spread over the whole source).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from blursynth.io.video import SourceInfo
from blursynth.ops.images import to_gray8

log = logging.getLogger("blursynth.average")

#: Pairs of consecutive frames measured per source.
SAMPLE_PAIRS = 3
#: Longest side (px) of the frames the pairs are measured at.
MEASURE_SIDE = 320
#: Displacement between consecutive frames (px, p99 of measurable motion) above which averages ghost.
GHOSTING_PX = 1.0
#: Percentile of the measurable pixels' motion that is reported.
PERCENTILE = 99.0


def probe_luma(frame: np.ndarray, info: SourceInfo) -> np.ndarray | None:
    """(H, W) uint8 luma of a decoded frame, RGB or in the decoder's own layout (``read_video(native=True)``).

    Planar and semi-planar YUV (``(H * 3 / 2, W)`` for yuv420p, ``(H * 2, W)`` for yuv422p, ...) keep the luma
    plane first; deeper formats (``yuv420p10le``) are shifted to 8 bits. None where the layout is not
    understood (the source is then not measured).
    """
    if frame.ndim == 3 and frame.shape[2] >= 3:
        return to_gray8(np.ascontiguousarray(frame[..., :3]))
    if frame.ndim != 2 or frame.shape[0] < info.height or frame.shape[1] != info.width:
        return None
    plane = frame[: info.height]
    if plane.dtype == np.uint8:
        return np.ascontiguousarray(plane)
    if plane.dtype != np.uint16:
        return None
    match = re.search(r"p(\d+)(?:le|be)$", info.pix_fmt or "")
    bits = int(match.group(1)) if match else 16
    return np.clip(plane >> max(0, bits - 8), 0, 255).astype(np.uint8)


def _reduce(gray: np.ndarray, side: int) -> np.ndarray:
    """``gray`` shrunk (area interpolation) so that its longest side is at most ``side``."""
    h, w = gray.shape
    scale = side / max(h, w)
    if scale >= 1.0:
        return gray
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


class PairSampler:
    """Keeps up to ``pairs`` pairs of consecutive, distinct frames, spread over the frames it watches.

    A pair starts at evenly spaced positions; an exact repeat of the start frame is skipped (the pair ends at
    the next frame that differs), so a source that shows every instant twice still yields real motion.

    Args:
        info: the source's probe (size and pixel format of native frames).
        pairs: most pairs kept. side: longest side of the kept gray frames.
    """

    def __init__(self, info: SourceInfo, *, pairs: int = SAMPLE_PAIRS, side: int = MEASURE_SIDE) -> None:
        self.info, self.max_pairs, self.side = info, pairs, side
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.watched = 0  # frames seen by sampling passes
        self.failed = False  # a frame's layout was not understood

    @property
    def scale(self) -> float:
        """Full-resolution pixels per pixel of the kept frames."""
        longest = max(self.info.width, self.info.height)
        return longest / min(longest, self.side)

    def watch(self, frames: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
        """Pass ``frames`` (``count`` of them, or fewer) through unchanged, keeping pairs as they go by.

        Only a pass made while no pair is kept yet samples (the repeat probe's full scan after a prefix of
        repeats); later passes go through untouched.
        """
        if self.pairs or count < 2:
            yield from frames
            return
        starts = set(np.linspace(0, count - 2, self.max_pairs).round().astype(int).tolist())
        pending: tuple[np.ndarray, np.ndarray] | None = None  # (frame as decoded, its reduced luma)
        for position, frame in enumerate(frames):
            self.watched += 1
            if pending is not None and not np.array_equal(frame, pending[0]):
                luma = self._luma(frame)
                if luma is not None:
                    self.pairs.append((pending[1], luma))
                pending = None
            if pending is None and position in starts and len(self.pairs) < self.max_pairs:
                luma = self._luma(frame)
                pending = None if luma is None else (frame, luma)
            yield frame

    def _luma(self, frame: np.ndarray) -> np.ndarray | None:
        gray = probe_luma(frame, self.info)
        if gray is None:
            self.failed = True
            return None
        return _reduce(gray, self.side)


def displacement_p99(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, backend=None) -> float | None:
    """The 99th percentile of the measurable motion (px) over ``pairs`` of (H, W) uint8 frames.

    Returns 0.0 when no pixel is measurable (flat or noise-only frames: nothing that could ghost) and None
    when there is no pair.
    """
    from blursynth.flow import create_flow
    from blursynth.flow.measure import measure_pair

    pairs = list(pairs)
    if not pairs:
        return None
    backend = backend or create_flow("dis")
    moving = [m.moving[m.measurable] for m in (measure_pair(backend, a, b) for a, b in pairs)]
    values = np.concatenate(moving) if moving else np.zeros(0, np.float32)
    return float(np.percentile(values, PERCENTILE)) if values.size else 0.0


def source_displacement(sampler: PairSampler, downsample: int = 1) -> float | None:
    """The sampled pairs' p99 displacement in pixels of the averaged frames (after ``downsample``).

    0.0 when every watched frame repeated the first (nothing moves); None when nothing could be measured.
    """
    p99 = displacement_p99(sampler.pairs)
    if p99 is None:
        return 0.0 if sampler.watched >= 2 and not sampler.failed else None
    return round(p99 * sampler.scale / max(1, downsample), 3)


def warn_ghosting(path: str, displacement: float | None, *, threshold: float = GHOSTING_PX) -> bool:
    """Log one warning when ``displacement`` (px per frame) exceeds ``threshold``; whether it did."""
    if displacement is None or displacement <= threshold:
        return False
    log.warning(
        "%s: consecutive frames move up to %.1f px (p99 of measurable motion, sampled pairs) > %g px: "
        "averages show staircase copies (ghosting) instead of a smooth smear; use --substeps auto "
        "(sub-frame samples from optical flow), a higher-frame-rate source, fewer frames per window "
        "(--frames) or a larger --downsample",
        path, displacement, threshold,
    )
    return True
