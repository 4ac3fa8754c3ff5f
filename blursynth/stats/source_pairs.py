"""One source of ``blursynth stats``: decode the frames of its pairs, measure the flow, one curve per pair.

The work unit of ``stats`` (:class:`StatsUnit`, run by any executor). A source damaged part-way (a download cut
short, a corrupt packet) keeps its decodable prefix, as in ``average`` (recipes/source_unit.py commits the
samples decoded before the failure): the pairs whose two frames both decoded are measured and the source is
recorded ``partial``, with the reason and the number of frames that decoded.

A pixel's motion is its *visible* motion (:func:`blursynth.flow.measure.measure_pair`): the flow where it is
measurable (textured for the noise level, forward-backward consistent), projected on the directions the image
varies in, and 0 elsewhere. A flow method always returns a vector, also on a flat noisy patch (DIS: ~12 px on
a static grey clip with sigma = 1 noise, issue 16), but moving such a patch changes no pixel: it is not blur.
The ratio keeps LODE's denominator, every pixel of the frame, and each pair's ``measurable_fraction`` is kept
beside it so that a low ratio from unmeasurable content can be told from a static scene. ``--raw-flow`` counts
every pixel's flow magnitude as the backend gives it (the paper's curve, DeepFlow in OpenCV; one flow per pair
instead of two) and measures no fraction.

Magnitudes are in pixels of the source's own resolution, also when ``--max-side`` shrinks frames before the
flow (the magnitudes are divided by the shrink factor).
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blursynth.config.stats import StatsConfig
from blursynth.errors import SourceError
from blursynth.flow import create_flow
from blursynth.flow.base import magnitude
from blursynth.flow.measure import measure_pair
from blursynth.io.frames import probe_frames
from blursynth.io.images import read_frame
from blursynth.io.sources import Source, list_images
from blursynth.io.video import SourceInfo, probe_video, read_video
from blursynth.io.video_seek import read_video_seeking
from blursynth.ops.images import to_uint8
from blursynth.run.progress import ProgressSink
from blursynth.seeding import create_rng
from blursynth.stats.flow_ratio import gap_frames, measured_span_ms, pair_starts, ratio_curve

log = logging.getLogger("blursynth.stats")

#: Read a video's measured frames by seeking to the keyframe before each (io/video_seek.py; the same frames, bit
#: for bit); False decodes every frame up to the last one measured (benchmarks/bench_stats.py compares both).
SEEK_FRAMES = True


@dataclass(frozen=True)
class StatsUnit:
    """One source of one dataset: the work unit of ``stats`` (picklable, shipped to workers)."""

    label: str
    fps: float | None  # NAME=PATH@FPS
    source: Source
    config: StatsConfig

    @property
    def key(self) -> str:
        return f"{self.label}:{self.source.key}"


def _read_needed_frames(src: Source, info: SourceInfo, needed: list[int],
                        on_frame=None) -> tuple[dict[int, np.ndarray], SourceError | None]:
    """The ``needed`` frames as uint8 RGB, read in order up to the first that cannot be decoded;
    ``on_frame(frames, index)`` is called as each one arrives.

    Frame folders read only the needed files; videos seek to the keyframe before each needed frame where that is
    safe (:func:`~blursynth.io.video_seek.read_video_seeking`, the same frames as decoding all). A failure does
    not raise: the frames read before it are returned with the error, so the caller can keep the pairs that lie
    in the decodable prefix.

    Returns:
        ``({index: (H, W, 3) uint8}, None)``, or the frames before the failure and its ``SourceError``.
    """
    frames: dict[int, np.ndarray] = {}
    try:
        if src.kind == "frames":
            files = list_images(Path(src.path))
            for i in sorted(needed):
                frames[i] = to_uint8(read_frame(files[i], info.bit_depth))
                if on_frame:
                    on_frame(frames, i)
        else:
            read = read_video_seeking if SEEK_FRAMES else read_video
            for index, frame in read(src.path, info, set(needed)):
                frames[index] = to_uint8(frame)
                if on_frame:
                    on_frame(frames, index)
    except SourceError as exc:
        return frames, exc
    missing = sorted(set(needed) - set(frames))
    if missing:  # the decoder stopped without an error: still a truncated source
        return frames, SourceError(src.path, f"ended before frame {missing[0]}")
    return frames, None


def _decodable_frames(src: Source, info: SourceInfo, needed: list[int], frames: dict[int, np.ndarray]) -> int:
    """How many frames precede the failure: the length of the decodable prefix.

    A video is decoded a second time to count them (only a damaged source pays for this pass: the first one
    converted the needed frames only, and ``read_video`` reports the count in words alone). In a frame folder
    the failure is at the first needed frame that did not read; the frames between needed ones are not read,
    so their files are not checked.
    """
    if src.kind == "frames":
        return min((i for i in needed if i not in frames), default=info.num_frames)
    count = 0
    try:
        for _ in read_video(src.path, info):
            count += 1
    except SourceError:
        pass
    return count


def _shrink(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), size[0] / w


_flows = threading.local()  # OpenCV flow objects keep state, RAFT loads weights: one per thread, reused


def _thread_flow(cfg: StatsConfig, device: str):
    key = (cfg.flow, device, cfg.raft_model, cfg.raft_weights)
    cache = getattr(_flows, "cache", None)
    if cache is None:
        cache = _flows.cache = {}
    if key not in cache:
        cache[key] = create_flow(cfg.flow, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
    return cache[key]


def _usable_pairs(src: Source, info: SourceInfo, starts: list[int], gap: int, entry: dict, on_frame=None):
    """The decoded frames and the starts whose two frames decoded; a damaged source is recorded in ``entry``.
    ``on_frame`` as in :func:`_read_needed_frames`.

    Raises:
        SourceError: not one pair lies in the decodable prefix.
    """
    needed = sorted(set(starts) | {t + gap for t in starts})
    frames, failure = _read_needed_frames(src, info, needed, on_frame)
    usable = [t for t in starts if t in frames and t + gap in frames]
    if failure is None:
        return frames, usable
    decoded = _decodable_frames(src, info, needed, frames)
    # Only the prefix counts, also where seeking read a frame past a damaged stretch it did not decode.
    usable = [t for t in usable if t + gap < decoded]
    entry.update(frames_decoded=decoded, pairs_planned=len(starts))
    if not usable:
        raise SourceError(failure.path, f"{failure.reason}; no pair {gap} frames apart in the {decoded} "
                                        "decodable frames")
    entry.update(status="partial", reason=failure.reason, failed_path=failure.path)
    log.warning("%s: %s: measuring the %d decodable frames (%d of %d pairs)", failure.path, failure.reason,
                decoded, len(usable), len(starts))
    return frames, usable


def measure_source(unit: StatsUnit, out=None, progress: ProgressSink | None = None) -> dict:
    """Measure one source's pairs: ``{"entry": what the JSON records, "curves": (pairs, thresholds),
    "measurable": (pairs,)}`` (each pair's measurable fraction, NaN with ``--raw-flow``).

    A source that cannot be used (undecodable, too short, no frame rate) gives no curve and an entry with
    ``status: failed``; one damaged part-way gives the curves of the pairs in its decodable prefix and
    ``status: partial``. The run goes on either way.
    """
    from blursynth.device import resolve_device_name

    cfg, src = unit.config, unit.source
    progress = progress or ProgressSink()
    device = resolve_device_name(cfg.device)
    thresholds = np.asarray(cfg.thresholds, dtype=np.float64)
    entry = {"key": src.key, "path": src.path, "kind": src.kind}
    progress.source_started(unit.key, 0)

    def flow_curve(a: np.ndarray, b: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
        backend = _thread_flow(cfg, device)
        if cfg.raw_flow:
            motion, fraction = magnitude(backend(a, b)), math.nan
        else:
            measured = measure_pair(backend, a, b)
            motion, fraction = measured.moving, measured.measurable_fraction
        if scale != 1.0:
            motion = motion / np.float32(scale)
        return ratio_curve(motion, thresholds), fraction

    results: list[tuple[np.ndarray, float]] = []
    try:
        info = probe_video(src.path) if src.kind == "video" else probe_frames(src.path, None)
        # NAME=PATH@FPS first, then --fps, then a video's own rate: as in `average`, a rate the user gives
        # overrides the container's (high-speed exports often state 25 or 30 fps); the container's is kept.
        own = info.fps if src.kind == "video" else None
        fps = unit.fps or cfg.fps or own
        if not fps:
            raise SourceError(src.path, "frame folder without a frame rate: pass --fps or NAME=PATH@FPS")
        if own and fps != own:
            entry["container_fps"] = own
        gap = gap_frames(cfg.span_ms, fps)
        starts = pair_starts(info.num_frames, gap, cfg.pairs_per_source,
                             create_rng(cfg.seed, "stats", unit.label, src.key))
        entry.update(fps=fps, gap=gap, span_ms=measured_span_ms(gap, fps), frames=info.num_frames,
                     width=info.width, height=info.height)
        if not starts:
            raise SourceError(src.path, f"{info.num_frames} frames: too short for a pair {gap} frames apart")
        threads = 1 if cfg.flow == "raft" else cfg.threads
        with ThreadPoolExecutor(max_workers=threads) as pool:
            try:
                planned, submitted, scale = set(starts), {}, 1.0

                def pair_ready(frames: dict[int, np.ndarray], index: int) -> None:
                    # A pair's flow starts as soon as its second frame is read: flow and decoding overlap.
                    nonlocal scale
                    t = index - gap
                    if t in planned and t in frames:
                        a, scale = _shrink(frames[t], cfg.max_side)
                        b, _ = _shrink(frames[index], cfg.max_side)
                        submitted[t] = pool.submit(flow_curve, a, b, scale)

                _, starts = _usable_pairs(src, info, starts, gap, entry, pair_ready)
                futures = [submitted[t] for t in starts]  # a pair past a damaged prefix is computed, not used
                entry.update(flow_scale=scale, starts=starts)
                for fut in futures:
                    try:
                        results.append(fut.result())
                    except cv2.error as exc:  # e.g. DIS refuses frames smaller than its patches
                        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
                        raise SourceError(src.path, f"optical flow failed ({first})") from None
                    progress.advance(samples=1)
            except BaseException:  # Ctrl-C, a failed pair: do not compute the queued pairs first
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        entry.setdefault("status", "ok")
        entry.update(pairs=len(futures), measurable_fraction=_mean_or_none([f for _, f in results]))
        progress.source_finished(unit.key, entry["status"], len(futures), entry.get("reason"))
    except SourceError as exc:
        log.warning("skipping %s: %s", exc.path, exc.reason)
        entry.update(status="failed", reason=exc.reason, failed_path=exc.path, pairs=0)
        progress.source_finished(unit.key, "failed", 0, exc.reason)
        results = []
    curves = np.stack([c for c, _ in results]) if results else np.zeros((0, len(thresholds)))
    return {"entry": entry, "curves": curves, "measurable": np.array([f for _, f in results], np.float64)}


def _mean_or_none(values: list[float]) -> float | None:
    """Mean of the finite values (None without any: ``--raw-flow`` measures no fraction)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
