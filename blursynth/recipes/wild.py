"""Flow-aware averaging: the WILD recipe (Noroozi et al. 2017) and the flow options of every recipe.

Windows cannot be planned up front here: whether a window is usable depends on the optical flow between its
frames. A unit therefore decodes its source once and, frame by frame,

1. shrinks the frame (``--downsample``, area interpolation; x3 for WILD) in the decode thread;
2. computes the flow of the pair it closes, once per pair (never per candidate window), with the backend
   chosen by ``--flow``; measures the pair's statistic (``--flow-stat``) and frame-matching error;
3. judges the pair (unreliable flow, over ``--flow-threshold``, over ``--max-step-px``) and hands the verdict
   to :class:`~blursynth.ops.windows.WindowSampler`, which keeps or rejects candidate windows online;
4. feeds the frame, ``N_max - 1`` frames late, to the same accumulator as the planned recipes: by then every
   window that can contain the frame has been decided, so the accumulator learns windows before their first
   frame arrives (``extend``) and averages exactly as for GOPRO/LODE.

Shard numbers are reserved for the most windows the source could yield (``max_windows_bound``), filled in
order; the last shard is committed ``final``. Each marker stores the sampler state after its last window, so
a resumed run continues from there and writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blursynth.config import AverageConfig
from blursynth.device import resolve_device_name
from blursynth.errors import SourceError
from blursynth.flow import create_flow, flow_statistic, magnitude, match_error
from blursynth.io.frames import read_frames
from blursynth.io.prefetch import prefetch
from blursynth.io.video import read_video
from blursynth.ops.accumulate import (
    Channel,
    create_accumulator,
)
from blursynth.ops.crf import create_crf
from blursynth.ops.images import downsample_frames, to_gray8, to_uint8
from blursynth.ops.windows import Accepted, WindowSampler
from blursynth.run.progress import ProgressSink
from blursynth.run.sink import UnitSink
from blursynth.run.units import UnitResult, finished_unit

log = logging.getLogger("blursynth.wild")

#: Rejection reasons, in the order a pair is judged.
UNRELIABLE, OVER_THRESHOLD, OVER_MAX_STEP = "unreliable_flow", "flow_threshold", "max_step"

#: A pixel counts as blurred when its integrated blur length exceeds this many pixels (blurred_area_ratio).
BLURRED_PX = 1.0


@dataclass(frozen=True)
class PairJudge:
    """Verdict on one consecutive pair from its flow statistic and frame-matching error.

    Attributes:
        flow_threshold: the WILD filter (Noroozi et al.: flow "no more than 1 pixel").
        max_step_px: the ghosting guard of any recipe.
        max_match_error: above this RMS gray-level error the flow is not trusted (the pair is rejected).
    """

    flow_threshold: float | None = None
    max_step_px: float | None = None
    max_match_error: float | None = None

    def __call__(self, step: float, error: float) -> str | None:
        if self.max_match_error is not None and not error <= self.max_match_error:  # also catches NaN/inf
            return UNRELIABLE
        if self.flow_threshold is not None and step > self.flow_threshold:
            return OVER_THRESHOLD
        if self.max_step_px is not None and step > self.max_step_px:
            return OVER_MAX_STEP
        return None


@dataclass
class _Pair:
    step: float
    error: float
    mag: np.ndarray | None


def resume_state(unit, markers: dict) -> tuple[list, dict]:
    """Slots still to write and the sampler state to start from (after the last complete shard)."""
    state = {"next_start": 0, "next_index": 0}
    for k, slot in enumerate(unit.slots):
        if markers[slot.shard] is None:
            if k > 0:
                state = markers[unit.slots[k - 1].shard].get("resume") or state
            return list(unit.slots[k:]), state
    return [], state


def run_flow_unit(unit, out: str | Path, progress: ProgressSink | None = None) -> UnitResult:
    """Produce the samples of one source with online, flow-filtered window selection."""
    from blursynth.recipes.average import make_sample

    progress = progress or ProgressSink()
    out = Path(out)
    cfg: AverageConfig = unit.config
    key, info = unit.source.key, unit.info
    markers, resumed = finished_unit(out, key, unit.slots, progress)
    if resumed is not None:
        return resumed
    todo, state = resume_state(unit, markers)
    done = [markers[s.shard] for s in unit.slots if s not in todo and markers[s.shard] is not None]

    n_max = cfg.frames[1]
    sampler = WindowSampler(info.num_frames, cfg.frames, seed=cfg.seed, key=key, stride=cfg.stride,
                            max_windows=cfg.max_per_source, start=int(state["next_start"]),
                            index=int(state["next_index"]))
    device = resolve_device_name(cfg.device)
    flow = create_flow(cfg.flow, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
    judge = PairJudge(cfg.flow_threshold, cfg.max_step_px, cfg.max_match_error)
    crf = create_crf(cfg.crf, cfg.gamma)
    channels = [Channel.create(crf, info.bit_depth, n_max)]
    if "gopro" in cfg.layout:
        channels.append(Channel.create(create_crf("linear"), info.bit_depth, n_max))
    disjoint = cfg.stride is None or cfg.stride >= n_max
    acc = create_accumulator(cfg.backend, [], channels, device=device, batch_frames=cfg.batch_frames,
                             online=True, disjoint=disjoint)

    result = UnitResult(key, "ok", shards=list(done))
    extras = ("blur_map",) if cfg.blur_map and "h5" in cfg.layout else ()
    sink = UnitSink(out, key, unit.source.path, todo, result, layouts=cfg.layout, compression=cfg.compression,
                    extra_datasets=extras, progress=progress, track_rejections=True)
    lag = n_max - 1  # every window containing frame i is decided once frame i + n_max - 1 has arrived
    delay: deque[tuple[int, np.ndarray]] = deque()
    pairs: dict[int, _Pair] = {}
    pending: dict[int, dict] = {}  # window index -> what the sample needs besides the average
    sharp: dict[int, np.ndarray] = {}
    centers: set[int] = set()

    def accept(a: Accepted) -> None:
        w = a.window
        inside = [pairs[j] for j in range(w.start, w.stop - 1)]
        extra_meta = {
            "downsample": cfg.downsample,
            "flow_method": flow.name if cfg.flow != "raft" else f"raft_{cfg.raft_model}",
            "flow_stat": cfg.flow_stat,
            "max_step_px": round(max((p.step for p in inside), default=0.0), 4),
            "match_error": round(max((p.error for p in inside), default=0.0), 4),
            "pair_steps": [round(p.step, 4) for p in inside],
            "pair_match_errors": [round(p.error, 4) for p in inside],
        }
        blur_map = None
        if cfg.blur_map:
            total = np.zeros(frame_shape, np.float32)
            for p in inside:
                total += p.mag
            blur_map = total.astype(np.float16)
            extra_meta["blurred_area_ratio"] = round(float(np.mean(total > BLURRED_PX)), 6)
            extra_meta["mean_blur_px"] = round(float(total.mean()), 4)
        pending[w.index] = {"meta": extra_meta, "blur_map": blur_map, "rejections": a.rejections,
                            "resume": {"next_start": a.next_start, "next_index": a.next_index}}
        centers.add(w.center)

    def handle(emitted) -> None:
        for w, encoded in emitted:
            p = pending.pop(w.index)
            sample = make_sample(unit, w, encoded, sharp.pop(w.center))
            sample.meta.update(p["meta"])
            if p["blur_map"] is not None:
                sample.extras["blur_map"] = p["blur_map"]
            sink.add(w.index, sample, rejections=p["rejections"], resume=p["resume"])

    def push_delayed(keep: int) -> None:
        while len(delay) > keep:
            i, f = delay.popleft()
            if i in centers:
                centers.discard(i)
                sharp[i] = to_uint8(f)
            handle(acc.push(i, f))

    def feed(index: int, frame: np.ndarray, reason: str | None) -> None:
        accepted = sampler.push(index, reason)
        for a in accepted:
            accept(a)
        acc.extend([a.window for a in accepted])
        for j in [j for j in pairs if j < sampler.start]:
            del pairs[j]
        delay.append((index, frame))
        push_delayed(lag)

    # (index, frame, what the flow backend reads, 8-bit gray): each frame is converted once, not per pair.
    batch: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    prev: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def process() -> None:
        nonlocal prev
        seq = ([prev] if prev is not None else []) + batch
        first_pair = seq[0][0]
        flows = None
        if len(seq) > 1 and any(sampler.needs_pair(j) for j in range(first_pair, seq[-1][0])):
            flows = flow.pairs([flow_in for _, _, flow_in, _ in seq])
        offset = 1 if prev is not None else 0
        for k, (index, frame, _, gray) in enumerate(batch):
            reason = None
            if flows is not None and index > 0:
                uv = flows[k + offset - 1]
                mag = magnitude(uv)
                step = flow_statistic(mag, cfg.flow_stat)
                err = match_error(seq[k + offset - 1][3], gray, uv)
                pairs[index - 1] = _Pair(step, err, mag if cfg.blur_map else None)
                reason = judge(step, err)
            feed(index, frame, reason)
        prev = batch[-1]
        batch.clear()

    frame_shape = (0, 0)
    reader = read_video if unit.source.kind == "video" else read_frames
    frames = prefetch(downsample_frames(reader(unit.source.path, info), cfg.downsample), depth=4)
    # Unlike the planned path (single_threaded_kernels), OpenCV keeps its thread pool here: flow (DIS ~30 ms
    # per 427x240 pair on one core) dominates decoding, and two threads take ~15% off it beside the decoder.
    progress.source_started(key, info.num_frames)
    try:
        try:
            with contextlib.closing(frames):
                for index, frame in frames:
                    frame_shape = frame.shape[:2]
                    gray = to_gray8(frame)
                    batch.append((index, frame, to_uint8(frame) if flow.wants_rgb else gray, gray))
                    result.frames += 1
                    progress.advance(frames=1)
                    if len(batch) >= flow.batch_size:
                        process()
                    if sampler.done:
                        break
                if batch:
                    process()
        except SourceError as exc:  # keep the windows whose frames all arrived
            push_delayed(0)
            handle(acc.finish())
            result.status, result.reason = ("partial" if result.samples else "failed"), str(exc.reason)
            result.path = exc.path
            log.warning("%s: %s", exc.path, exc.reason)
            sink.commit(final=True, status=result.status, reason=exc.reason, path=exc.path,
                        rejections=sampler.rejections)
        else:
            push_delayed(0)
            handle(acc.finish())
            sink.commit(final=True, status="ok", rejections=sampler.rejections)
    except BaseException:
        sink.abort()
        raise
    add_rejections_note(result)
    progress.source_finished(key, result.status, result.samples, result.reason)
    return result


def add_rejections_note(result: UnitResult) -> None:
    if result.rejections:
        log.info("%s: rejected candidate windows: %s", result.key,
                 ", ".join(f"{k} {v}" for k, v in sorted(result.rejections.items())))
