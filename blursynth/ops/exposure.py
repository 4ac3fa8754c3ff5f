"""Continuous-exposure window averaging for ``average --substeps`` / ``--duty-cycle`` (issue 18).

:class:`ExposureAccumulator` has the interface of the accumulators in :mod:`blursynth.ops.accumulate`
(``push`` one decoded frame at a time, in order; ``extend`` with windows chosen online; ``finish``) and returns
the same ``(window, [encoded image per channel])`` pairs, so the planned and the flow-selected runners use it
unchanged. Instead of the N frames of a window it averages the window's M = (N - 1) K + 1 continuous-exposure
samples (:func:`blursynth.ops.interpolate.interpolate_window`): real frames at integer times, frames
synthesised from bidirectional optical flow in between.

* Flow is computed once per pair of consecutive frames and direction, on 8-bit gray frames, and kept while a
  pending window still needs it (overlapping windows share it); the pair's measurement
  (:func:`blursynth.flow.measure.measure`: textured and forward-backward consistent pixels) gives the p99
  displacement that ``auto`` turns into K and that every sample records.
* Only the frames of windows not yet emitted are held (decoded, not linearised), so memory does not grow
  with the video's length.
* A window whose K resolves to 1 at duty cycle 1 is averaged in exact integers like the plain accumulators,
  so ``--substeps auto`` on a still scene gives the plain average byte for byte.
* ``interpolation``: how the flow-based synthesis trades accuracy for speed (:data:`INTERPOLATIONS`).
* ``interpolator``: a user-supplied frame interpolator (``--interpolator FILE``: TorchScript, or a
  ``torch.export`` ``.pt2``; nothing is downloaded) replaces the flow-based synthesis; flow still measures
  the motion (``auto``, meta). It is called as ``model(frame0, frame1, t)`` on frames as the camera encoded
  them (code values scaled to [0, 1], shape (B, 3, H, W) float32, ``t`` shape (B,) in (0, 1)) and returns the
  frames at times ``t`` in the same encoding, which are rounded to the source's code values and linearised
  like decoded frames (REDS quantised its interpolated frames to 8 bits the same way before averaging).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from blursynth.errors import InputError, SourceError
from blursynth.flow.base import FlowBackend, opencv_failure
from blursynth.flow.measure import measure, pair_noise_sigma, to_gray8
from blursynth.ops.accumulate import Channel, Emitted, lookup, window_output
from blursynth.ops.interpolate import (
    WindowFlows,
    compute_window_flows,
    interpolate_window,
    sample_times,
)
from blursynth.ops.saturation import saturated_fraction
from blursynth.ops.windows import Window

#: Largest K that ``--substeps auto`` picks (the issue's cap): 32 keeps 31 synthesised samples per pair.
AUTO_CAP = 32
#: ``--interpolation`` presets of the flow-based synthesis (``interpolate_window`` options and the flow's
#: resolution), measured on the oracle scenes and at 720p in docs/continuous-exposure.md:
#: quality: full-resolution flow, bicubic warps of both frames, visibility-weighted occlusion handling (what
#: an accurate flow such as RAFT pays off with); balanced (default): flow at half resolution, one bicubic
#: gather per sample of the nearer frame blended with the other aligned to it; fast: the same, bilinear.
INTERPOLATIONS: dict[str, dict] = {
    "quality": {"flow_scale": 1.0, "mode": "bicubic", "occlusion": True, "gathers": 2},
    "balanced": {"flow_scale": 0.5, "mode": "bicubic", "occlusion": False, "gathers": 1},
    "fast": {"flow_scale": 0.5, "mode": "bilinear", "occlusion": False, "gathers": 1},
}
DEFAULT_INTERPOLATION = "balanced"


def _reason(exc: BaseException, *, last: bool = False, limit: int = 160) -> str:
    """One short line out of a foreign exception's message (its first line, or its last for a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = (lines[-1] if last else lines[0]) if lines else type(exc).__name__
    text = text.split(". ")[0] if len(text) > limit else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_interpolator(path: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A frame interpolator from ``path`` on ``device``, checked on a tiny pair: TorchScript (``torch.jit.save``)
    or, for a ``.pt2`` file, ``torch.export.save`` with dynamic batch, height and width.

    Raises:
        InputError: the file cannot be read as TorchScript, or the model fails or returns another shape.
    """
    try:
        if str(path).endswith(".pt2"):  # torch.export (the successor of TorchScript), dynamic batch and size
            model = torch.export.load(str(path)).module().to(torch.device(device))
        else:
            model = torch.jit.load(str(path), map_location=torch.device(device)).eval()
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a TorchScript or torch.export interpolator ({_reason(exc)})") from None
    probe = torch.full((1, 3, 16, 16), 0.5, device=torch.device(device))
    try:
        with torch.no_grad():
            out = model(probe, probe, torch.full((1,), 0.5, device=probe.device))
    except Exception as exc:  # noqa: BLE001 - any failure of foreign code is the file's fault
        raise InputError(f"{path}: the interpolator fails on a 16x16 pair ({_reason(exc, last=True)})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 3, 16, 16):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"{path}: the interpolator must return (B, 3, H, W) frames, got {got}")
    return model


#: Shortest side (px) below which the flow is computed at the frames' own size rather than reduced.
MIN_FLOW_SIDE = 32

#: Bins per pixel of :func:`motion_histogram`: the p99 is known to 1/128 px (K is its ceiling).
BINS_PER_PX = 64


def motion_histogram(moving: np.ndarray, scale: float, cap: int) -> np.ndarray:
    """Counts of a pair's measurable motion in bins of 1/64 frame pixel (the last bin holds everything beyond
    ``2 cap`` px). Summed over a window's pairs, it gives the window's p99 (:func:`histogram_p99`) without
    sorting a million values per window, and overlapping windows reuse each pair's histogram."""
    bins = 2 * cap * BINS_PER_PX + 1
    index = np.minimum(moving * (BINS_PER_PX / scale), bins - 1).astype(np.int64)
    return np.bincount(index, minlength=bins)


def histogram_p99(histograms: Sequence[np.ndarray]) -> float:
    """The 99th percentile (frame px per frame, bin centre) of the motion counted in ``histograms``; 0 when
    nothing is measurable (the rank rule of ``ops.interpolate.displacement_p99``)."""
    counts = np.sum(histograms, axis=0) if histograms else np.zeros(1, np.int64)
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = min(total - 1, int(np.ceil(0.99 * total)) - 1)
    index = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
    return 0.0 if index == 0 and counts[0] > rank else (index + 0.5) / BINS_PER_PX


class ExposureAccumulator:
    """Averages each window's continuous-exposure samples; see the module docstring.

    Args:
        windows: the plan, sorted by start (may be empty and grow with :meth:`extend`).
        channels: outputs to produce for every window (the CRF channel, and the linear one of the GOPRO tree).
        substeps: K >= 1, or ``"auto"`` (per window, the smallest K keeping the p99 displacement per sub-step
            at most 1 px, capped at ``cap``).
        duty_cycle: tau in (0, 1]: the exposure covers ``[c - tau (N - 1) / 2, c + tau (N - 1) / 2]``.
        flow: a flow backend (``blursynth.flow.create_flow``), created by the caller on the unit's device.
        device: torch device the interpolation runs on.
        interpolation: a preset of :data:`INTERPOLATIONS` (flow resolution, warps, occlusion handling).
        cap: largest K of ``auto``.
        interpolator: a learned frame interpolator (:func:`load_interpolator`) instead of the flow-based
            synthesis, loaded from ``interpolator_path`` (named in errors; its file name goes to the meta).
        source: the source's path, named when its frames are too small for the flow.
        flow_backward: a second instance of the flow backend, for the backward flows in a thread of their own.
    """

    #: OpenCV keeps its thread pool here (unlike the plain accumulators, whose runner pins kernels to one
    #: thread: :func:`blursynth.ops.accumulate.single_threaded_kernels`). The synthesis worker is the
    #: bottleneck (its bicubic gathers are most of a window's wall time on one thread) and its ``remap``,
    #: ``resize`` and blends split rows over the pool with the same bytes: at 720p, N = 7, K = 8 on 2 cores,
    #: 1.25-1.3x the input frames/s of pinned kernels (docs/continuous-exposure.md). Process workers still
    #: cap the pool (``--workers``: one thread each).
    own_threads = False

    def __init__(self, windows: Sequence[Window], channels: Sequence[Channel], *, substeps: int | str,
                 duty_cycle: float, flow: FlowBackend, device: str | torch.device = "cpu",
                 interpolation: str = DEFAULT_INTERPOLATION, cap: int = AUTO_CAP,
                 interpolator: torch.nn.Module | None = None, interpolator_path: str = "model",
                 source: str = "", flow_backward: FlowBackend | None = None) -> None:
        self.windows = list(windows)
        self.channels = list(channels)
        self.substeps = substeps
        self.duty_cycle = float(duty_cycle)
        self.flow = flow
        self.flow_backward = flow_backward
        self.device = torch.device(device)
        options = dict(INTERPOLATIONS[interpolation])
        self.flow_scale = float(options.pop("flow_scale"))
        self.warp_options = options
        self.cap = int(cap)
        self.interpolator = interpolator
        self.interpolator_path = str(interpolator_path)
        self.source = source
        self.method = f"flow-{interpolation}" if interpolator is None else f"learned:{Path(interpolator_path).name}"
        self._next = 0
        self._hi = 0
        self._frames: dict[int, np.ndarray] = {}
        self._gray: dict[int, np.ndarray] = {}
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._meta: dict[int, dict] = {}
        self._noise_sigma: float | None = None
        self._queue: deque[tuple[Window, Future]] = deque()
        self._worker: ThreadPoolExecutor | None = None
        self._linear: np.ndarray | None = None  # the worker's linearised window and work arrays, reused
        self._scratch: dict = {}
        sample_times(3, 1 if substeps == "auto" else substeps, duty_cycle)  # checks the options once

    def extend(self, windows: Sequence[Window]) -> None:
        """Append windows decided while frames stream in; they start at or after the next frame to push."""
        for w in windows:
            if w.start < self._hi or (self.windows and w.start < self.windows[-1].start):
                raise ValueError(f"window {w} starts before frames already pushed or before an earlier window")
            self.windows.append(w)

    def push(self, index: int, frame: np.ndarray) -> Emitted:
        """Add frame ``index`` (frames must come in order) and return the windows completed so far, in order.

        The flows of a pair are computed here as soon as both frames are in; a complete window's samples are
        synthesised in a worker thread (:meth:`_synthesize`), so the next window's flows overlap them. At most
        one window waits in the worker: a second one makes ``push`` wait for the first.
        """
        if index != self._hi:
            raise ValueError(f"frames must be pushed in order: expected {self._hi}, got {index}")
        self._hi = index + 1
        pending = self.windows[self._next:]
        if any(w.start <= index < w.stop for w in pending):
            self._frames[index] = frame
            if any(w.start < index < w.stop for w in pending):  # the pair (index - 1, index) is needed
                self._pair(index - 1)
        while self._next < len(self.windows) and self.windows[self._next].stop <= self._hi:
            w = self.windows[self._next]
            self._queue.append((w, self._submit(w)))
            self._next += 1
            self._forget()
        return self._collect(wait=len(self._queue) > 1)

    def finish(self) -> Emitted:
        """The windows still in the worker; windows past a truncation are dropped."""
        return self._collect(wait=True, everything=True)

    def _collect(self, *, wait: bool, everything: bool = False) -> Emitted:
        out: Emitted = []
        while self._queue and (self._queue[0][1].done() or wait):
            w, future = self._queue.popleft()
            out.append((w, future.result()))  # a failure in the worker is raised here
            wait = everything
        return out

    def take_meta(self, w: Window) -> dict:
        """The continuous-exposure fields of window ``w``'s sample meta (once)."""
        return self._meta.pop(w.index)

    def _forget(self) -> None:
        """Drop frames and pair flows no pending window needs."""
        first = self.windows[self._next].start if self._next < len(self.windows) else self._hi
        for table in (self._frames, self._gray, self._pairs):
            for i in [i for i in table if i < first]:
                del table[i]

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward and backward flow of frames (i, i + 1) at the flow's resolution, and the histogram of their
        measurable motion (:func:`motion_histogram`)."""
        if i not in self._pairs:
            gray = np.stack([self._gray_of(i), self._gray_of(i + 1)])
            if min(gray.shape[1:]) * self.flow_scale < MIN_FLOW_SIDE:  # too small to shrink for the flow
                self.flow_scale = 1.0
            try:
                flows = compute_window_flows(None, self.flow, gray=gray, flow_scale=self.flow_scale,
                                             backward=self.flow_backward)
            except cv2.error as exc:  # the backend refuses these frames (DIS: both sides under 12 px)
                h, w = gray.shape[1:]
                raise SourceError(self.source, f"optical flow failed on {w}x{h} frames ({opencv_failure(exc)}); "
                                  "sub-frame samples need it") from None
            fwd, bwd = flows.forward[0], flows.backward[0]
            if self._noise_sigma is None:  # once per source: the sensor's noise does not change between pairs
                self._noise_sigma = pair_noise_sigma(flows.gray[0], flows.gray[1], fwd)
            m = measure(fwd, bwd, flows.gray[0], flows.gray[1], noise_sigma=self._noise_sigma)
            self._pairs[i] = (fwd, bwd, motion_histogram(m.moving[m.measurable], self.flow_scale, self.cap))
        return self._pairs[i]

    def _gray_of(self, i: int) -> np.ndarray:
        if i not in self._gray:
            self._gray[i] = to_gray8(self._frames[i])
        return self._gray[i]

    def _submit(self, w: Window) -> Future:
        """Decide K and the meta of window ``w`` from its pairs' motion; hand its synthesis to the worker."""
        n = w.n
        p99 = histogram_p99([self._pair(i)[2] for i in range(w.start, w.stop - 1)]) if n > 1 else 0.0
        if self.substeps == "auto":  # consecutive samples are tau / K frames apart
            k = int(min(self.cap, max(1, np.ceil(self.duty_cycle * p99 - 1e-9))))
        else:
            k = int(self.substeps)
        m = (n - 1) * k + 1
        spacing = self.duty_cycle * (n - 1) / (m - 1) if m > 1 else 1.0  # frame units between samples
        self._meta[w.index] = {
            "substeps": k, "exposure_samples": m, "duty_cycle": self.duty_cycle,
            "interpolation": self.method if (k > 1 or self.duty_cycle < 1.0) and n > 1 else "none",
            "interpolation_flow": self.flow.name, "frame_displacement_p99": round(p99, 4),
            "substep_px": round(p99 * spacing, 4), "sample_spacing": spacing,
        }
        frames = [self._frames[i] for i in range(w.start, w.stop)]
        flows = None
        if n > 1 and (k > 1 or self.duty_cycle < 1.0) and self.interpolator is None:
            flows = WindowFlows(forward=np.stack([self._pair(i)[0] for i in range(w.start, w.stop - 1)]),
                                backward=np.stack([self._pair(i)[1] for i in range(w.start, w.stop - 1)]),
                                gray=np.zeros((0, 1, 1), np.uint8), backend=self.flow.name, scale=self.flow_scale)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exposure")
        return self._worker.submit(self._synthesize, frames, k, flows)

    def _synthesize(self, frames: list[np.ndarray], k: int, flows: WindowFlows | None) -> list[np.ndarray]:
        """The encoded mean of one window's samples, one image per channel (runs in the worker thread)."""
        if (k == 1 and self.duty_cycle == 1.0) or len(frames) == 1:  # the plain average, in exact integers
            return [self._exact(frames, ch) for ch in self.channels]
        if self.interpolator is not None:
            return self._learned(frames, k)
        encoded = []
        n = len(frames)
        if self._linear is None or self._linear.shape[0] < n or self._linear.shape[1:] != frames[0].shape:
            self._linear = np.empty((n, *frames[0].shape), np.float32)  # reused: no page faults per window
        buffer = self._linear[:n]
        saturated = None
        for ch in self.channels:
            if ch.output == "saturation":  # counted on the first channel's samples, below
                encoded.append(None)
                continue
            table = (ch.lut / ch.q).astype(np.float32)  # g^-1 as float: the integer table over its full scale
            for j, f in enumerate(frames):
                lookup(f, table, out=buffer[j])
            linear = torch.from_numpy(buffer).to(self.device).permute(0, 3, 1, 2)  # channels-last, no copy
            if saturated is None and any(c.output == "saturation" for c in self.channels):
                saturated = saturated_fraction(linear, k, self.duty_cycle, flows, **self.warp_options)
            mean = interpolate_window(linear, k, duty_cycle=self.duty_cycle, flows=flows, reduce="mean",
                                      scratch=self._scratch, **self.warp_options)
            mean = mean.permute(1, 2, 0).contiguous().cpu().numpy()
            if ch.output == "mean":
                encoded.append(mean.copy())
            else:
                encoded.append(ch.crf.encode(mean, scratch=self._scratch).copy())
        return [saturated if out is None else out for out in encoded]

    def _learned(self, frames: list[np.ndarray], k: int) -> list[np.ndarray]:
        """The window's mean through the learned interpolator: its frames, rounded to code values, are
        linearised like decoded ones and summed as they come (never all M held)."""
        n = len(frames)
        times = sample_times(n, k, self.duty_cycle)
        nearest = np.rint(times)
        on_frame = np.abs(times - nearest) < 1e-9
        vmax = float(np.iinfo(frames[0].dtype).max)
        totals = [np.zeros(frames[0].shape, np.int64) for _ in self.channels]

        def add(code: np.ndarray) -> None:
            for total, ch in zip(totals, self.channels, strict=True):
                total += lookup(code, ch.lut)

        for i in nearest[on_frame]:
            add(frames[int(i)])
        off = times[~on_frame]
        pair = np.minimum(np.floor(off).astype(np.int64), n - 2)
        with torch.no_grad():
            for i in np.unique(pair):
                ends = [torch.from_numpy(frames[j]).to(self.device).permute(2, 0, 1).float().div_(vmax)
                        for j in (i, i + 1)]
                local = torch.from_numpy(off[pair == i] - i).float().to(self.device)
                for start in range(0, len(local), 8):
                    t = local[start:start + 8]
                    out = self._call(ends[0].expand(len(t), -1, -1, -1), ends[1].expand(len(t), -1, -1, -1), t)
                    for code in out.clamp(0.0, 1.0).mul_(vmax).round_().permute(0, 2, 3, 1).cpu().numpy():
                        add(code.astype(frames[0].dtype))
        # M can exceed the frames the integer tables were sized for: summed in int64, encoded from the float mean
        means = [(total / (len(times) * ch.q)).astype(np.float32) for total, ch in zip(totals, self.channels,
                                                                                       strict=True)]
        return [m if ch.output != "code" else ch.crf.encode(m).copy()
                for m, ch in zip(means, self.channels, strict=True)]

    def _call(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The learned interpolator on one batch; a failure or a wrong shape stops the run with one line (the
        model is at fault, not the source: no retry helps)."""
        size = f"{a.shape[-1]}x{a.shape[-2]}"
        try:
            out = self.interpolator(a, b, t)
        except Exception as exc:  # noqa: BLE001 - foreign code
            raise InputError(f"{self.interpolator_path}: the interpolator fails on {size} frames "
                             f"({_reason(exc, last=True)})") from None
        if not isinstance(out, torch.Tensor) or out.shape != a.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"{self.interpolator_path}: the interpolator returned {got} for {tuple(a.shape)} frames")
        return out

    @staticmethod
    def _exact(frames: list[np.ndarray], ch: Channel) -> np.ndarray:
        total = lookup(frames[0], ch.lut).copy()
        for f in frames[1:]:
            total += lookup(f, ch.lut)
        return window_output(total, len(frames), ch)

