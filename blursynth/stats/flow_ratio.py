"""Blurred-area ratio vs optical-flow threshold (LODE/BladeNet Sec. 3, Fig. 3).

LODE separates global-blur datasets (GOPRO, REDS: camera shake moves most pixels) from local-blur ones
(moving objects over a static background) with one curve: "the ratio of blurred area ... pixels whose
optical flow magnitude is larger than a threshold". To remove the frame-rate effect, flow is measured over
the same time span everywhere: 2 consecutive frames of 120 fps REDS, frames t -> t+2 of 240 fps GOPRO and
250 fps LODE, with DeepFlow.

Here the span is ``--span-ms`` (default 1000 * 2 / 240 ms): a source at ``fps`` is measured between frames t
and t + gap with ``gap = max(1, round(span * fps))`` (120 fps -> 1, 240 fps -> 2, 250 fps -> 2). Pair starts t
are drawn stratified over the whole source (one random start per equal slice), seeded by (seed, dataset label,
source key). A pair's curve is ``ratio(th) = mean(|flow| > th)``; a dataset's curve is the mean and standard
deviation over all its pairs. Magnitudes are in pixels of the source's own resolution, also when
``--max-side`` shrinks frames before the flow (the magnitudes are divided by the shrink factor).
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from blursynth.config.stats import StatsConfig
from blursynth.errors import InputError, SourceError
from blursynth.flow import create_flow
from blursynth.flow.base import magnitude
from blursynth.io.frames import probe_frames
from blursynth.io.images import read_frame
from blursynth.io.sources import Source, discover_sources, list_images
from blursynth.io.video import SourceInfo, probe_video, read_video
from blursynth.ops.images import to_uint8
from blursynth.run.progress import ProgressSink
from blursynth.seeding import create_rng

log = logging.getLogger("blursynth.stats")



def gap_frames(span_ms: float, fps: float) -> int:
    """Frames between the two frames of a pair: ``max(1, round(span * fps))`` (span in milliseconds)."""
    return max(1, int(round(span_ms * fps / 1000.0)))


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


# -- computing ---------------------------------------------------------------------------------------------
@dataclass
class DatasetCurve:
    """One dataset's result: its curve over the thresholds and what each source contributed."""

    label: str
    path: str
    mean: np.ndarray
    std: np.ndarray
    pairs: int
    sources: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # sources whose unit raised on every attempt


def _read_pairs(src: Source, info: SourceInfo, starts: list[int], gap: int):
    """Yield ``(t, frame_t, frame_t+gap)`` as uint8 RGB; frame folders read only the frames needed."""
    needed = sorted({t for t in starts} | {t + gap for t in starts})
    if src.kind == "frames":
        files = list_images(Path(src.path))
        frames = {i: to_uint8(read_frame(files[i], info.bit_depth)) for i in needed}
    else:
        frames, wanted = {}, set(needed)
        for index, frame in read_video(src.path, info, wanted):
            frames[index] = to_uint8(frame)
        if len(frames) < len(wanted):
            raise SourceError(src.path, f"ended before frame {needed[-1]}")
    for t in starts:
        yield t, frames[t], frames[t + gap]


def _shrink(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), size[0] / w


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


_flows = threading.local()  # OpenCV flow objects keep state, RAFT loads weights: one per thread, reused


def _thread_flow(cfg: StatsConfig, device: str):
    key = (cfg.flow, device, cfg.raft_model, cfg.raft_weights)
    cache = getattr(_flows, "cache", None)
    if cache is None:
        cache = _flows.cache = {}
    if key not in cache:
        cache[key] = create_flow(cfg.flow, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
    return cache[key]


def measure_source(unit: StatsUnit, out=None, progress: ProgressSink | None = None) -> dict:
    """Measure one source's pairs: ``{"entry": what the JSON records, "curves": (pairs, thresholds)}``.

    A source that cannot be used (undecodable, too short, no frame rate) gives no curve and an entry with
    ``status: failed``; the run goes on.
    """
    from blursynth.device import resolve_device_name

    cfg, src = unit.config, unit.source
    progress = progress or ProgressSink()
    device = resolve_device_name(cfg.device)
    thresholds = np.asarray(cfg.thresholds, dtype=np.float64)
    entry = {"key": src.key, "path": src.path, "kind": src.kind}
    progress.source_started(unit.key, 0)

    def flow_curve(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
        mag = magnitude(_thread_flow(cfg, device)(a, b))
        if scale != 1.0:
            mag = mag / np.float32(scale)
        return ratio_curve(mag, thresholds)

    results: list[np.ndarray] = []
    try:
        info = probe_video(src.path) if src.kind == "video" else probe_frames(src.path, None)
        # NAME=PATH@FPS first, then the video's own rate, then --fps
        fps = unit.fps or (info.fps if src.kind == "video" else None) or cfg.fps
        if not fps:
            raise SourceError(src.path, "frame folder without a frame rate: pass --fps or NAME=PATH@FPS")
        gap = gap_frames(cfg.span_ms, fps)
        starts = pair_starts(info.num_frames, gap, cfg.pairs_per_source,
                             create_rng(cfg.seed, "stats", unit.label, src.key))
        entry.update(fps=fps, gap=gap, frames=info.num_frames, width=info.width, height=info.height)
        if not starts:
            raise SourceError(src.path, f"{info.num_frames} frames: too short for a pair {gap} frames apart")
        threads = 1 if cfg.flow == "raft" else cfg.threads
        with ThreadPoolExecutor(max_workers=threads) as pool:
            try:
                futures = []
                for _t, a, b in _read_pairs(src, info, starts, gap):
                    a, scale = _shrink(a, cfg.max_side)
                    b, _ = _shrink(b, cfg.max_side)
                    futures.append(pool.submit(flow_curve, a, b, scale))
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
        entry.update(status="ok", pairs=len(futures))
        progress.source_finished(unit.key, "ok", len(futures))
    except SourceError as exc:
        log.warning("skipping %s: %s", exc.path, exc.reason)
        entry.update(status="failed", reason=exc.reason, failed_path=exc.path, pairs=0)
        progress.source_finished(unit.key, "failed", 0, exc.reason)
        results = []
    curves = np.stack(results) if results else np.zeros((0, len(thresholds)))
    return {"entry": entry, "curves": curves}


def compute_curves(cfg: StatsConfig, progress: ProgressSink | None = None) -> list[DatasetCurve]:
    """Measure every dataset's blurred-area-ratio curve, one work unit per source (see ``--executor``).

    Raises:
        InputError: a SOURCE path does not exist or holds no source, or no pair could be measured at all.
        ConfigError, MissingDependencyError: bad settings, or a flow backend that cannot be created.
    """
    from blursynth.run.executors import run_units
    from blursynth.run.preflight import preflight

    device = preflight(device=cfg.device, out=None, executor=cfg.executor, ray_address=cfg.ray_address, flow=cfg)
    progress = progress or ProgressSink()
    units: list[StatsUnit] = []
    for spec in cfg.datasets:
        if not Path(spec.path).exists():
            raise InputError(f"{spec.path}: no such file or directory (SOURCE {spec.label})")
        units += [StatsUnit(spec.label, spec.fps, src, cfg) for src in discover_sources([spec.path])]
    keys = [u.key for u in units]
    progress.start(len(units), 0, len(units) * cfg.pairs_per_source)
    try:
        outcomes = run_units(measure_source, units, keys, None, progress, cfg.executor_options(device))
    finally:
        progress.close()
    curves, errors = [], []
    for spec in cfg.datasets:
        per_pair, entries, spec_errors = [], [], []
        for unit, outcome in zip(units, outcomes, strict=True):
            if unit.label != spec.label:
                continue
            if outcome.ok:
                entries.append(outcome.result["entry"])
                per_pair += list(outcome.result["curves"])
            else:  # raised on every attempt (see --retries)
                src = unit.source
                entries.append({"key": src.key, "path": src.path, "kind": src.kind, "status": "error",
                                "reason": outcome.error, "attempts": outcome.attempts, "pairs": 0})
                spec_errors.append({"source": unit.key, "reason": outcome.error, "attempts": outcome.attempts})
        if not per_pair:
            log.warning("%s: no pair could be measured", spec.label)
        stack = np.stack(per_pair) if per_pair else np.zeros((0, len(cfg.thresholds)))
        curves.append(DatasetCurve(
            spec.label, spec.path,
            stack.mean(axis=0) if per_pair else np.full(len(cfg.thresholds), np.nan),
            stack.std(axis=0) if per_pair else np.full(len(cfg.thresholds), np.nan),
            len(per_pair), entries, errors=spec_errors,
        ))
        errors += spec_errors
    if not any(c.pairs for c in curves):
        if errors:
            from blursynth.run.job import units_failed

            raise units_failed(errors, len(units))
        failed = [e for c in curves for e in c.sources if e.get("status") == "failed"]
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise InputError(f"{first['failed_path']}: {first['reason']}{more}")
        raise InputError("no pair could be measured")
    return curves
