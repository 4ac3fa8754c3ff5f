"""Flow-aware averaging: the WILD recipe (Noroozi et al. 2017) and the flow options of every recipe.

Windows cannot be planned up front here: whether a window is usable depends on the optical flow between its
frames. A unit therefore decodes its source once and, frame by frame,

1. shrinks the frame (``--downsample``, area interpolation; x3 for WILD) in the decode thread;
2. computes the flow of the pair it closes, once per pair (never per candidate window) and both ways, with
   the backend chosen by ``--flow``; keeps only the measurable motion (:mod:`blursynth.flow.measure`: textured
   for the noise level and forward-backward consistent) and measures the pair's statistic (``--flow-stat``)
   and frame-matching error on it;
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

import cv2
import numpy as np

from blursynth.device import resolve_device_name
from blursynth.errors import SourceError
from blursynth.flow import create_flow, flow_statistic, match_error
from blursynth.flow.base import opencv_failure
from blursynth.flow.measure import Measured, measure
from blursynth.ops.images import to_gray8, to_uint8
from blursynth.ops.windows import Accepted, Window, WindowSampler
from blursynth.recipes.source_unit import (
    AverageUnit,
    commit_failed_source,
    create_unit_accumulator,
    exposure_meta,
    make_sample,
    open_sink,
    read_source,
)
from blursynth.recipes.wild_pairs import PairPool, may_need_pair
from blursynth.run.progress import ProgressSink
from blursynth.run.sink import UnitSink
from blursynth.run.units import ShardSlot, UnitResult
from blursynth.shards.markers import ShardMarker

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
    moving: np.ndarray | None  # visible motion (px), 0 where not measurable; kept only for blur maps
    measurable: np.ndarray | None


def pair_step(m: Measured, stat: str) -> float:
    """The pair's ``--flow-stat`` over its measurable pixels (0 when none is: nothing visibly moves).

    Unmeasurable pixels are left out rather than counted as 0, so a small textured object moving over a
    textureless scene weighs as much as it would over a textured one.
    """
    values = m.moving[m.measurable]
    return flow_statistic(values, stat) if values.size else 0.0


def claimed_match_error(m: Measured, gray0: np.ndarray, gray1: np.ndarray) -> float:
    """Frame-matching error of the motion the pair is judged on: the flow where measurable, none elsewhere.

    It tells whether that claim explains frame t + 1: motion the method could not verify (an occlusion, a
    fast object it lost) shows up as error instead of passing as stillness. Pixels whose flow leaves the
    frame (content panning out) are left out, as the plain match error leaves them out.
    """
    return match_error(gray0, gray1, np.where(m.measurable, m.flow, np.float32(0.0)), where=m.inside)


#: (index, frame, what the flow backend reads, 8-bit gray): each frame is converted once, not once per pair.
_Decoded = tuple[int, np.ndarray, np.ndarray, np.ndarray]


class FlowSelector:
    """Online window selection over one source: flow per pair, verdicts, the sampler and the delayed accumulator.

    Frames go in with :meth:`add` (in order); kept windows come out as samples in ``sink``. Frames are measured
    in batches of the backend's ``batch_size`` (the previous batch's last frame opens the first pair), and fed
    to the accumulator ``lag = N_max - 1`` frames late through a delay line: by then every window that can
    contain the frame has been decided, so the accumulator knows the window before its first frame arrives.
    :meth:`drain` pushes what the delay line still holds once the source ends (completely or not).

    Args:
        unit: the source (``unit.config.uses_flow``).
        sink: where samples go; each carries the rejections since the previous kept window and the sampler
            state after it (``resume``), so a resumed run continues exactly there.
        state: the sampler state to start from (``next_start``, ``next_index``; see :func:`resume_state`).
        device: resolved torch device for RAFT and the torch accumulator.
    """

    def __init__(self, unit: AverageUnit, sink: UnitSink, state: dict, device: str) -> None:
        cfg = unit.config
        self.unit, self.cfg, self.sink = unit, cfg, sink
        n_max = cfg.frames[1]
        self.sampler = WindowSampler(unit.info.num_frames, cfg.frames, seed=cfg.seed, key=unit.source.key,
                                     stride=cfg.stride, max_windows=cfg.max_per_source,
                                     start=int(state["next_start"]), index=int(state["next_index"]))
        self.flow = create_flow(cfg.flow, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
        self.flow_method = self.flow.name if cfg.flow != "raft" else f"raft_{cfg.raft_model}"
        self.judge = PairJudge(cfg.flow_threshold, cfg.max_step_px, cfg.max_match_error)
        disjoint = cfg.stride is None or cfg.stride >= n_max
        self.acc = create_unit_accumulator(unit, [], device, online=True, disjoint=disjoint)
        self.lag = n_max - 1  # every window containing frame i is decided once frame i + n_max - 1 has arrived
        self.delay: deque[tuple[int, np.ndarray]] = deque()
        self.pairs: dict[int, _Pair] = {}  # pair j (frames j, j + 1) -> measurements, while a window may use it
        self.pending: dict[int, dict] = {}  # window index -> what the sample needs besides the average
        self.sharp: dict[int, np.ndarray] = {}
        self.centers: set[int] = set()  # middle frames of kept windows not yet through the delay line
        self.batch: list[_Decoded] = []
        self.prev: _Decoded | None = None  # last frame of the previous batch
        self.frame_shape: tuple[int, int] = (0, 0)
        # One pair at a time (batch_size 1: the OpenCV methods) runs ahead in worker threads (wild_pairs).
        self.pool = None if self.flow.batch_size > 1 else PairPool(lambda: create_flow(cfg.flow, device=device))
        #: Frames not yet fed: (frame index, frame, (previous frame, this frame), future of their pair or None).
        self.waiting: deque[tuple[int, np.ndarray, tuple[_Decoded, _Decoded] | None, object]] = deque()

    @property
    def done(self) -> bool:
        """No further window can be kept (the source is exhausted or ``--max-per-source`` is reached)."""
        return self.sampler.done

    @property
    def rejections(self) -> dict[str, int]:
        """Candidates rejected since the last kept window (stored in the final marker)."""
        return self.sampler.rejections

    def add(self, index: int, frame: np.ndarray) -> None:
        """Frame ``index`` was decoded (and downsampled); measured once the batch is full."""
        self.frame_shape = frame.shape[:2]
        gray = to_gray8(frame)
        decoded = (index, frame, to_uint8(frame) if self.flow.wants_rgb else gray, gray)
        if self.pool is None:
            self.batch.append(decoded)
            if len(self.batch) >= self.flow.batch_size:
                self.flush()
            return
        pair, future = None, None
        if self.prev is not None:  # frame index closes pair index - 1: start it now if it may matter
            pair = (self.prev, decoded)
            if may_need_pair(self.sampler, self.prev[0], fed=not self.waiting):
                future = self.pool.submit(self.prev[2], decoded[2], self.prev[3], gray)
        self.prev = decoded
        self.waiting.append((index, frame, pair, future))
        while len(self.waiting) > 1:  # the previous frame's pair is done or nearly so; this one runs meanwhile
            self._resolve()

    def _resolve(self) -> None:
        """Feed the oldest waiting frame with its pair's verdict (measured in order of need, as in flush)."""
        index, frame, pair, future = self.waiting.popleft()
        if self.sampler.done:  # the sequential path stops reading here
            if future is not None:
                future.cancel()
            return
        verdict = None
        if pair is not None and self.sampler.needs_pair(index - 1):
            if future is None:  # may_need_pair never says no to a needed pair; kept for safety
                future = self.pool.submit(pair[0][2], pair[1][2], pair[0][3], pair[1][3])
            verdict = self._measure(index - 1, future.result(), pair[0][3], pair[1][3])
        elif future is not None:
            future.cancel()
        self._feed(index, frame, verdict)

    def close(self) -> None:
        """Stop the worker threads (what is queued is dropped)."""
        self.waiting.clear()
        if self.pool is not None:
            self.pool.close()

    def flush(self) -> None:
        """Measure the pairs the batch closes, judge them and feed its frames to the sampler.

        Flow is computed, forward and backward, only for the pairs the sampler can still use (those from the
        current candidate's start on; the verdict of an earlier pair is ignored); frame 0 closes no pair.
        """
        while self.waiting:
            self._resolve()
        if not self.batch:
            return
        seq = ([self.prev] if self.prev is not None else []) + self.batch
        first = next((p for p in range(len(seq) - 1) if self.sampler.needs_pair(seq[p][0])), None)
        verdicts: dict[int, str | None] = {}
        if first is not None:
            inputs = [flow_in for _, _, flow_in, _ in seq[first:]]
            flows, backward = self.flow.pairs(inputs), self.flow.backward_pairs(inputs)
            for k, (fwd, bwd) in enumerate(zip(flows, backward, strict=True)):
                (j, _, _, gray0), gray1 = seq[first + k], seq[first + k + 1][3]
                verdicts[j] = self._measure(j, measure(fwd, bwd, gray0, gray1), gray0, gray1)
        for index, frame, _, _ in self.batch:
            self._feed(index, frame, verdicts.get(index - 1))
        self.prev = self.batch[-1]
        self.batch = []

    def drain(self) -> None:
        """The source ended: average what the delay line holds and emit the last windows."""
        while self.waiting:
            self._resolve()
        self._push_delayed(0)
        self._emit(self.acc.finish())

    def _measure(self, j: int, m: Measured, gray0: np.ndarray, gray1: np.ndarray) -> str | None:
        """Record pair ``j``'s statistic and frame-matching error on its measurable motion; return its verdict."""
        step = pair_step(m, self.cfg.flow_stat)
        err = claimed_match_error(m, gray0, gray1)
        keep = self.cfg.blur_map
        self.pairs[j] = _Pair(step, err, m.moving if keep else None, m.measurable if keep else None)
        return self.judge(step, err)

    def _feed(self, index: int, frame: np.ndarray, reason: str | None) -> None:
        """Give frame ``index`` (and its pair's verdict) to the sampler, then the delay line."""
        accepted = self.sampler.push(index, reason)
        for a in accepted:
            self._accept(a)
        self.acc.extend([a.window for a in accepted])
        for j in [j for j in self.pairs if j < self.sampler.start]:  # no candidate can contain them any more
            del self.pairs[j]
        self.delay.append((index, frame))
        self._push_delayed(self.lag)

    def _accept(self, a: Accepted) -> None:
        """Note what the kept window's sample records besides its average (flow metadata, blur map)."""
        w = a.window
        inside = [self.pairs[j] for j in range(w.start, w.stop - 1)]
        meta = {
            "downsample": self.cfg.downsample,
            "flow_method": self.flow_method,
            "flow_stat": self.cfg.flow_stat,
            "max_step_px": round(max((p.step for p in inside), default=0.0), 4),
            "match_error": round(max((p.error for p in inside), default=0.0), 4),
            "pair_steps": [round(p.step, 4) for p in inside],
            "pair_match_errors": [round(p.error, 4) for p in inside],
        }
        maps = None
        if self.cfg.blur_map:
            total = np.zeros(self.frame_shape, np.float32)
            measurable = np.zeros(self.frame_shape, bool)
            for p in inside:
                total += p.moving
                measurable |= p.measurable
            total *= self.cfg.duty_cycle  # the exposure covers tau of the window's motion
            maps = {"blur_map": total.astype(np.float16), "measurable": measurable.astype(np.uint8)}
            # LODE's definition (Sec. 3, Fig. 3): blurred pixels over all pixels; unmeasurable ones count as sharp.
            meta["blurred_area_ratio"] = round(float(np.mean(total > BLURRED_PX)), 6)
            meta["measurable_fraction"] = round(float(measurable.mean()), 6)
            meta["mean_blur_px"] = round(float(total.mean()), 4)
        self.pending[w.index] = {"meta": meta, "maps": maps, "rejections": a.rejections,
                                 "resume": {"next_start": a.next_start, "next_index": a.next_index}}
        self.centers.add(w.center)

    def _push_delayed(self, keep: int) -> None:
        """Push frames to the accumulator until the delay line holds ``keep``."""
        while len(self.delay) > keep:
            i, frame = self.delay.popleft()
            if i in self.centers:
                self.centers.discard(i)
                self.sharp[i] = to_uint8(frame)
            self._emit(self.acc.push(i, frame))

    def _emit(self, emitted: list[tuple[Window, list[np.ndarray]]]) -> None:
        """Turn the windows the accumulator completed into samples."""
        for w, encoded in emitted:
            p = self.pending.pop(w.index)
            sample = make_sample(self.unit, w, encoded, self.sharp.pop(w.center), exposure_meta(self.unit, self.acc, w))
            sample.meta.update(p["meta"])
            if p["maps"] is not None:
                sample.extras.update(p["maps"])
            self.sink.add(w.index, sample, rejections=p["rejections"], resume=p["resume"])


def resume_state(unit: AverageUnit, markers: dict[int, ShardMarker | None]) -> tuple[list[ShardSlot], dict]:
    """Slots still to write and the sampler state to start from (after the last complete shard)."""
    state = {"next_start": 0, "next_index": 0}
    for k, slot in enumerate(unit.slots):
        if markers[slot.shard] is None:
            if k > 0:
                state = markers[unit.slots[k - 1].shard].resume or state
            return list(unit.slots[k:]), state
    return [], state


def run_flow_unit(unit: AverageUnit, out: Path, markers: dict[int, ShardMarker | None],
                  progress: ProgressSink) -> UnitResult:
    """Produce the samples of one source with online, flow-filtered window selection.

    ``markers``: the marker of every slot's shard, None where it is still to be written; the run continues
    from the sampler state stored in the last complete one.
    """
    key = unit.source.key
    todo, state = resume_state(unit, markers)
    done = [markers[s.shard] for s in unit.slots if s not in todo and markers[s.shard] is not None]

    result = UnitResult(key, "ok", shards=list(done))
    extras = ("blur_map", "measurable") if unit.config.blur_map and "h5" in unit.config.layout else ()
    sink = open_sink(unit, out, todo, result, progress, extra_datasets=extras, track_rejections=True)
    selector = FlowSelector(unit, sink, state, resolve_device_name(unit.config.device))
    frames = read_source(unit)
    # Unlike the planned path (single_threaded_kernels), OpenCV keeps its thread pool here: flow (DIS ~30 ms
    # per 427x240 pair on one core) dominates decoding, and two threads take ~15% off it beside the decoder.
    progress.source_started(key, unit.info.num_frames)
    try:
        try:
            with contextlib.closing(frames):
                for index, frame in frames:
                    result.frames += 1
                    progress.advance(frames=1)
                    selector.add(index, frame)
                    if selector.done:
                        break
                selector.flush()
        except SourceError as exc:  # keep the windows whose frames all arrived
            selector.drain()
            commit_failed_source(sink, result, exc, rejections=selector.rejections)
        except cv2.error as exc:  # the backend refuses these frames (DIS: both sides under 12 px): no retry helps
            w, h, k = unit.info.width, unit.info.height, unit.config.downsample
            size = f"{w}x{h} frames" + (f", {w // k}x{h // k} after downsampling by {k}" if k > 1 else "")
            why = f"optical flow failed on {size} ({opencv_failure(exc)})"
            commit_failed_source(sink, result, SourceError(unit.source.path, why), rejections=selector.rejections)
        else:
            selector.drain()
            sink.commit(final=True, status="ok", rejections=selector.rejections)
    except BaseException:
        sink.abort()
        raise
    finally:
        selector.close()
    add_rejections_note(result)
    progress.source_finished(key, result.status, result.samples, result.reason)
    return result


def add_rejections_note(result: UnitResult) -> None:
    if result.rejections:
        log.info("%s: rejected candidate windows: %s", result.key,
                 ", ".join(f"{k} {v}" for k, v in sorted(result.rejections.items())))
