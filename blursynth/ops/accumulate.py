"""Window averaging in linear light: a CPU streaming path and a torch batched path.

Both consume frames in order, one ``push`` per decoded frame, and return the windows that the frame
completes, encoded back to uint8 by :func:`blursynth.ops.crf.encode_sum`. Frames are linearised with an
integer lookup table and summed in exact integers, so both paths produce the same sums; the forward CRF is
the same torch function, so on the same device they produce the same bytes.

* :class:`StreamingAccumulator`: where no two windows share a frame (the GOPRO/LODE default) it holds the
  window's frames as decoded and, when the last one arrives, sums and encodes them in cache-sized strips
  (:mod:`blursynth.ops.window_sum`); otherwise it keeps one running int32 sum per output, adds each frame once
  (``cv2.LUT``) and subtracts frames leaving the window (or restarts the sum when that is cheaper). No window
  is ever recomputed from scratch, and only the frames of the current window are held.
* :class:`TorchAccumulator` uploads frames in batches, looks them up on the device, takes an int64 prefix
  sum along time and reads every window as ``P[stop] - P[start]``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from blursynth.errors import ConfigError
from blursynth.ops.crf import CRF
from blursynth.ops.images import work_array
from blursynth.ops.window_sum import holds_window, lookup, window_output, window_outputs
from blursynth.ops.windows import Window

if TYPE_CHECKING:  # torch is imported on use: a CPU streaming run never pays its ~1.3 s import
    import torch

Emitted = list[tuple[Window, list[np.ndarray]]]

#: ``Channel.output`` values: ``code`` (the window's mean re-encoded to uint8 by the CRF), ``mean`` (the mean
#: linear light itself, float32 in [0, 1]: the input of the camera pipeline, issue 19) and ``saturation``
#: (float32 fraction of the window's samples at the source's maximum code value, per pixel and channel).
OUTPUTS = ("code", "mean", "saturation")


@dataclass(frozen=True)
class Channel:
    """One averaged output: a CRF with its inverse table for the source's bit depth.

    Attributes:
        crf: camera response re-applied after averaging.
        lut: int32 (2**bits,) inverse table from :meth:`CRF.inverse_lut`.
        q: full scale of the table.
        output: what the window's sum becomes (:data:`OUTPUTS`). A ``saturation`` channel's table is the
            indicator of the maximum code value (q = 1), so its window mean is the clipped fraction; the
            integer accumulators need nothing else, and it costs nothing when not asked for.
    """

    crf: CRF
    lut: np.ndarray
    q: int
    output: str = "code"

    @classmethod
    def create(cls, crf: CRF, bit_depth: int, n_max: int, output: str = "code") -> Channel:
        lut, q = crf.inverse_lut(bit_depth, n_max)
        return cls(crf, lut, q, output)

    @classmethod
    def saturation(cls, bit_depth: int) -> Channel:
        """The clipped-sample counter: 1 at the maximum code value (255, or 65535 for 16-bit), else 0."""
        vmax = (1 << bit_depth) - 1
        lut = (np.arange(vmax + 1) == vmax).astype(np.int32)
        return cls(CRF("linear"), lut, 1, "saturation")


class StreamingAccumulator:
    """Running integer sums on the CPU.

    All arrays are allocated once and reused: a fresh 11 MB int32 array per frame costs more in page
    faults than the lookup itself (measured 2.4 vs 0.5 ms per 1280x720 frame). When no two windows share
    a frame (the GOPRO/LODE default) the window's frames are held as decoded and summed, when the last one
    arrives, in cache-sized strips (:func:`blursynth.ops.window_sum.window_outputs`); otherwise running sums
    are kept, and the linearised frames of the current windows in a small pool so that frames leaving a
    window can be subtracted.

    Args:
        windows: the plan, sorted by start.
        channels: outputs to produce for every window.
    """

    #: The runner runs its OpenCV and torch kernels on one thread each (:func:`single_threaded_kernels`).
    own_threads = True

    def __init__(self, windows: Sequence[Window], channels: Sequence[Channel], *, disjoint: bool | None = None) -> None:
        self.windows = list(windows)
        self.channels = list(channels)
        self._next = 0  # first window not emitted yet
        self._lo = 0  # the sums cover the added frames in [lo, hi)
        self._hi = 0
        self._sums: list[np.ndarray] | None = None
        self._empty = True
        self._buf: dict[int, list[np.ndarray]] = {}
        self._held: list[np.ndarray] = []  # disjoint windows: the current window's frames, as pushed
        self._pool: list[list[np.ndarray]] = []
        self._encode_scratch: dict = {}
        planned = all(b.start >= a.stop for a, b in zip(self.windows, self.windows[1:], strict=False))
        if disjoint and not planned:
            raise ValueError("disjoint=True but the planned windows overlap")
        self._disjoint = planned if disjoint is None else bool(disjoint)

    def extend(self, windows: Sequence[Window]) -> None:
        """Append windows decided while frames stream in (online selection, e.g. the WILD flow filter).

        They must come in start order and start at or after the next frame to be pushed; with
        ``disjoint=True`` they must not overlap the windows before them.
        """
        for w in windows:
            last = self.windows[-1] if self.windows else None
            if w.start < self._hi or (last is not None and w.start < last.start):
                raise ValueError(f"window {w} starts before frames already pushed or before window {last}")
            if self._disjoint and last is not None and w.start < last.stop:
                raise ValueError(f"window {w} overlaps {last} in a disjoint accumulator")
            self.windows.append(w)

    def _is_needed(self, index: int) -> bool:
        for w in self.windows[self._next :]:
            if w.start > index:
                return False
            if index < w.stop:
                return True
        return False

    def push(self, index: int, frame: np.ndarray) -> Emitted:
        """Add frame ``index`` (frames must come in order) and return the windows it completes."""
        if index != self._hi:
            raise ValueError(f"frames must be pushed in order: expected {self._hi}, got {index}")
        if self._next < len(self.windows):
            self._advance(self.windows[self._next].start)
        self._hi = index + 1
        if self._is_needed(index):
            if self._disjoint and holds_window(self.windows[self._next].n, frame, len(self.channels)):
                self._held.append(frame)
            elif self._disjoint:  # a window too long to hold: frames go straight into running sums
                if self._sums is None:
                    self._sums = [np.empty(frame.shape, np.int32) for _ in self.channels]
                self._add_direct(frame)
            else:
                if self._sums is None:
                    self._sums = [np.empty(frame.shape, np.int32) for _ in self.channels]
                linear = self._pool.pop() if self._pool else [np.empty(frame.shape, np.int32) for _ in self.channels]
                for c, ch in enumerate(self.channels):
                    lookup(frame, ch.lut, out=linear[c])
                self._buf[index] = linear
                self._add(linear)
        return self._emit()

    def finish(self) -> Emitted:
        """Nothing is pending at the end of a complete source; windows past a truncation are dropped."""
        return []

    def _add_direct(self, frame: np.ndarray) -> None:
        for c, ch in enumerate(self.channels):
            if self._empty:
                lookup(frame, ch.lut, out=self._sums[c])
            else:
                looked_up = work_array(self._encode_scratch, f"frame{c}", frame.shape, np.int32)
                np.add(self._sums[c], lookup(frame, ch.lut, out=looked_up), out=self._sums[c])
        self._empty = False

    def _add(self, linear: list[np.ndarray]) -> None:
        for c, lin in enumerate(linear):
            if self._empty:
                np.copyto(self._sums[c], lin)
            else:
                np.add(self._sums[c], lin, out=self._sums[c])
        self._empty = False

    def _advance(self, start: int) -> None:
        """Drop the frames before ``start`` from the sums."""
        if start <= self._lo:
            return
        self._lo = start
        if self._disjoint:  # every frame held or summed so far belongs to windows already emitted
            self._held = []
            self._empty = True
            return
        drop = [i for i in self._buf if i < start]
        keep = [i for i in self._buf if i >= start]
        if len(drop) > len(keep):  # cheaper to restart the sums from the frames we keep
            self._empty = True
            for i in keep:
                self._add(self._buf[i])
        else:
            for i in drop:
                for c in range(len(self.channels)):
                    np.subtract(self._sums[c], self._buf[i][c], out=self._sums[c])
        for i in drop:
            self._pool.append(self._buf.pop(i))

    def _emit(self) -> Emitted:
        out: Emitted = []
        while self._next < len(self.windows) and self.windows[self._next].stop <= self._hi:
            w = self.windows[self._next]
            self._advance(w.start)
            if self._held:
                if len(self._held) != w.n:
                    raise RuntimeError(f"window {w}: {len(self._held)} frames held, expected {w.n}")
                out.append((w, window_outputs(self._held, self.channels, self._encode_scratch)))
                self._held = []
                self._next += 1
                continue
            encoded = []
            for c, ch in enumerate(self.channels):
                total = self._sums[c]
                tail = [self._buf[i][c] for i in self._buf if i >= w.stop]
                if tail:  # a longer earlier window already pulled in frames past this one's end
                    total = total.copy()
                    for lin in tail:
                        np.subtract(total, lin, out=total)
                encoded.append(window_output(total, w.n, ch, self._encode_scratch))
            out.append((w, encoded))
            self._next += 1
        return out


class TorchAccumulator:
    """Batched prefix sums on a torch device.

    Args:
        windows: the plan, sorted by start.
        channels: outputs to produce for every window.
        device: torch device (``cpu``, ``cuda``, ``cuda:1``).
        batch_frames: frames uploaded per batch.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        channels: Sequence[Channel],
        *,
        device: torch.device | str,
        batch_frames: int = 16,
        online: bool = False,
    ) -> None:
        import torch

        device = torch.device(device)
        self.windows = list(windows)
        self.channels = list(channels)
        self.online = online
        self.device = device
        self.batch_frames = max(1, int(batch_frames))
        self._luts = [torch.from_numpy(ch.lut.astype(np.int64)).to(device) for ch in self.channels]
        self._pending: list[np.ndarray] = []
        self._base = 0  # index of the first pending frame
        self._carry: list[torch.Tensor | None] = [None] * len(self.channels)  # P[base]
        self._prefix: list[dict[int, torch.Tensor]] = [{} for _ in self.channels]
        self._bounds = {w.start for w in self.windows} | {w.stop for w in self.windows}
        self._next = 0
        last = max((w.stop for w in self.windows), default=0)
        self._last_needed = None if online else last

    def extend(self, windows: Sequence[Window]) -> None:
        """Append windows decided while frames stream in (requires ``online=True``); they must come in start
        order and start at or after the next frame to be pushed."""
        if not self.online:
            raise ValueError("extend() needs TorchAccumulator(..., online=True)")
        for w in windows:
            nxt = self._base + len(self._pending)
            if w.start < nxt or (self.windows and w.start < self.windows[-1].start):
                raise ValueError(f"window {w} starts before frame {nxt}, which was already pushed")
            self.windows.append(w)
            self._bounds.update((w.start, w.stop))

    def push(self, index: int, frame: np.ndarray) -> Emitted:
        """Add frame ``index`` (frames must come in order) and return the windows completed so far."""
        if self._last_needed is not None and index >= self._last_needed:
            return []
        if index != self._base + len(self._pending):
            raise ValueError(f"frames must be pushed in order: expected {self._base + len(self._pending)}")
        self._pending.append(frame)
        if len(self._pending) >= self.batch_frames or index + 1 == self._last_needed:
            return self._flush()
        return []

    def finish(self) -> Emitted:
        return self._flush() if self._pending else []

    def _flush(self) -> Emitted:
        import torch

        batch = torch.from_numpy(np.stack(self._pending))
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        idx = batch.to(torch.int64)
        n = len(self._pending)
        for c, lut in enumerate(self._luts):
            prefix = lut[idx].cumsum(0)  # (B, H, W, 3) int64: sum of frames base..base+k
            carry = self._carry[c]
            if carry is None:
                carry = torch.zeros(prefix.shape[1:], dtype=torch.int64, device=self.device)
            if self._base in self._bounds:
                self._prefix[c][self._base] = carry
            prefix += carry
            for k in range(n):
                if self._base + k + 1 in self._bounds:
                    self._prefix[c][self._base + k + 1] = prefix[k].clone()
            self._carry[c] = prefix[-1].clone()
        self._base += n
        self._pending = []
        return self._emit()

    def _emit(self) -> Emitted:
        ready = []
        while self._next < len(self.windows) and self.windows[self._next].stop <= self._base:
            ready.append(self.windows[self._next])
            self._next += 1
        if not ready:
            return []
        import torch

        encoded: list[list[np.ndarray]] = [[] for _ in ready]
        for c, ch in enumerate(self.channels):
            table = self._prefix[c]
            sums = torch.stack([table[w.stop] - table[w.start] for w in ready])
            for j, w in enumerate(ready):
                out = window_output(sums[j], w.n, ch)
                encoded[j].append(out if isinstance(out, np.ndarray) else out.cpu().numpy())
            # Boundaries no later window needs can go.
            keep_from = self.windows[self._next].start if self._next < len(self.windows) else self._base
            for b in [b for b in table if b < keep_from]:
                del table[b]
        return list(zip(ready, encoded, strict=True))


@contextlib.contextmanager
def single_threaded_kernels():
    """Run OpenCV and torch CPU kernels on one thread inside the block.

    The decoder already keeps both cores busy (FFmpeg frame threads); letting cv2/torch spawn their own
    thread pools on top oversubscribes the CPU and measurably slows the whole pipeline.
    """
    torch = sys.modules.get("torch")  # only if something already imported it
    cv_threads = cv2.getNumThreads()
    torch_threads = torch.get_num_threads() if torch is not None else None
    cv2.setNumThreads(1)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv_threads)
        if torch is not None:
            torch.set_num_threads(torch_threads)


def create_accumulator(
    backend: str,
    windows: Sequence[Window],
    channels: Sequence[Channel],
    *,
    device: torch.device | str,
    batch_frames: int = 16,
    online: bool = False,
    disjoint: bool | None = None,
):
    """``stream`` (CPU running sums), ``torch`` (batched on ``device``) or ``auto`` (torch on CUDA).

    With ``online=True`` windows may be appended with ``extend`` while frames stream in; ``disjoint`` then
    promises that no two of them will share a frame (lets the streaming path keep no frames).
    """
    if backend == "auto":
        backend = "torch" if str(device).startswith("cuda") else "stream"
    if backend == "stream":
        return StreamingAccumulator(windows, channels, disjoint=disjoint)
    if backend == "torch":
        return TorchAccumulator(windows, channels, device=device, batch_frames=batch_frames, online=online)
    raise ConfigError(f"--backend: expected auto, stream or torch, got {backend!r}")
