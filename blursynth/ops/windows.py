"""Seeded planning of averaging windows over a frame sequence.

A window is ``n`` consecutive frames ``[start, start + n)``; ``n`` is odd so that the middle frame
``start + n // 2`` exists and is the sharp ground truth (Nah et al. 2017, Sec. 2). Window sizes are drawn
from a generator seeded by (global seed, source key), so the plan is a pure function of the source and the
configuration: independent of processing order, worker count and of whether the run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blursynth.seeding import create_rng


@dataclass(frozen=True)
class Window:
    """Frames ``start .. start + n - 1`` of one source; ``index`` is the window's rank in the plan."""

    index: int
    start: int
    n: int

    @property
    def stop(self) -> int:
        return self.start + self.n

    @property
    def center(self) -> int:
        return self.start + self.n // 2

    @property
    def frames(self) -> list[int]:
        return list(range(self.start, self.stop))


def odd_sizes(frames: tuple[int, int]) -> np.ndarray:
    """All odd window sizes in the inclusive range ``frames``."""
    lo, hi = frames
    return np.arange(lo, hi + 1, 2, dtype=np.int64)


def plan_windows(
    num_frames: int,
    frames: tuple[int, int],
    rng: np.random.Generator,
    *,
    stride: int | None = None,
    max_windows: int | None = None,
) -> list[Window]:
    """Plan the windows of one source.

    Args:
        num_frames: frames in the source.
        frames: inclusive odd (min, max) window size; each window draws its size uniformly from the odd values.
        rng: generator seeded from (global seed, source key).
        stride: frames between consecutive window starts. None: back-to-back, non-overlapping windows
            (the next window starts right after the previous one ends). Smaller than the window size gives
            overlapping windows, larger leaves gaps.
        max_windows: keep at most this many windows, evenly spread over the whole source (not just the
            first ones, which would bias a dataset towards the beginning of every clip).

    Returns:
        Windows sorted by start, indices 0..k-1.
    """
    sizes = odd_sizes(frames)
    windows: list[Window] = []
    start = 0
    while True:
        n = int(sizes[rng.integers(len(sizes))]) if len(sizes) > 1 else int(sizes[0])
        if start + n > num_frames:
            # The drawn size overruns the source: redraw among the sizes that still fit, so a clip is not
            # dropped (or its tail wasted) just because a long window was drawn last.
            fitting = sizes[sizes <= num_frames - start]
            if len(fitting) == 0:
                break
            n = int(fitting[rng.integers(len(fitting))])
        windows.append(Window(len(windows), start, n))
        start += n if stride is None else stride
    if max_windows is not None and len(windows) > max_windows:
        keep = np.unique(np.round(np.linspace(0, len(windows) - 1, max_windows)).astype(np.int64))
        windows = [Window(i, windows[k].start, windows[k].n) for i, k in enumerate(keep)]
    return windows


def max_windows_bound(
    num_frames: int, frames: tuple[int, int], *, stride: int | None = None, max_windows: int | None = None
) -> int:
    """The most windows any selection over ``num_frames`` frames can produce (for reserving shard numbers)."""
    lo = frames[0]
    if num_frames < lo:
        return 0
    bound = num_frames // lo if stride is None else (num_frames - lo) // stride + 1
    return bound if max_windows is None else min(bound, max_windows)


@dataclass(frozen=True)
class Accepted:
    """A window the sampler kept, with what a resumed run needs to continue right after it.

    Attributes:
        window: the window.
        next_start, next_index: the sampler's state just after accepting it.
        rejections: candidate windows rejected (by reason) since the previous accepted window.
    """

    window: Window
    next_start: int
    next_index: int
    rejections: dict[str, int]


class WindowSampler:
    """Online window selection over per-pair verdicts (the WILD filter, Noroozi et al. 2017, Sec. 2).

    Frames arrive in order with the verdict of the pair they close: ``push(i, reason)`` where ``reason`` is
    None when the pair (i - 1, i) is usable and otherwise says why not. A candidate window starts at
    ``start`` with a size drawn from a generator seeded by (seed, source key, start), so a window depends on
    its own frames only: never on processing order, on earlier rejections or on where a resumed run began.
    A candidate is kept when every consecutive pair inside it is usable. When a pair inside it is not, the
    candidate is rejected (counted by the pair's reason) and the next candidate starts right after that pair,
    the first start that can be valid. After a kept window the next candidate starts ``stride`` frames later
    (back-to-back when None).

    With ``max_windows`` the source is cut into ``max_windows`` equal spans and each search starts no
    earlier than its span, so the kept windows spread over the whole source instead of its beginning.

    Args:
        num_frames: frames in the source (windows never run past it).
        frames: inclusive odd (min, max) window size.
        seed, key: global seed and source key.
        stride: frames between a kept window's start and the next candidate (None: back-to-back).
        max_windows: keep at most this many windows.
        start, index: resume state (see :class:`Accepted`).
    """

    def __init__(self, num_frames: int, frames: tuple[int, int], *, seed: int, key: str,
                 stride: int | None = None, max_windows: int | None = None, start: int = 0, index: int = 0) -> None:
        self.num_frames = int(num_frames)
        self.sizes = odd_sizes(frames)
        self.seed, self.key = seed, key
        self.stride = stride
        self.max_windows = max_windows
        self.index = int(index)
        self.start = int(start)
        self.n = 0
        self.done = False
        self.rejections: dict[str, int] = {}
        self._bad: dict[int, str] = {}  # pair j (frames j, j+1) -> reason, for pairs >= start
        self._seen = -1  # last frame pushed
        self._draw()

    def anchor(self, index: int) -> int:
        """The earliest start of window ``index`` when ``max_windows`` spreads windows over the source."""
        if self.max_windows is None:
            return 0
        return int(index * self.num_frames // self.max_windows)

    def _draw(self) -> None:
        """Draw the size of the candidate at ``self.start``, or finish when no window fits any more."""
        if self.max_windows is not None and self.index >= self.max_windows:
            self.done = True
            return
        self.start = max(self.start, self.anchor(self.index))
        fitting = self.sizes[self.sizes <= self.num_frames - self.start]
        if len(fitting) == 0:
            self.done = True
            return
        rng = create_rng(self.seed, "window", self.key, self.start)
        n = int(self.sizes[rng.integers(len(self.sizes))])
        if n > self.num_frames - self.start:  # near the end: redraw among the sizes that still fit
            n = int(fitting[rng.integers(len(fitting))])
        self.n = n

    def push(self, index: int, reason: str | None = None) -> list[Accepted]:
        """Frame ``index`` arrived; ``reason`` is the verdict of pair (index - 1, index) (ignored for frame 0).

        Returns:
            The windows this frame completes and that pass.
        """
        if index != self._seen + 1:
            raise ValueError(f"frames must be pushed in order: expected {self._seen + 1}, got {index}")
        self._seen = index
        if index > 0 and reason is not None and index - 1 >= self.start:
            self._bad[index - 1] = reason
        return self._settle()

    def needs_pair(self, j: int) -> bool:
        """Whether the verdict of pair (j, j + 1) can still matter (pairs before the candidate never do)."""
        return not self.done and j >= self.start

    def _settle(self) -> list[Accepted]:
        kept: list[Accepted] = []
        while not self.done:
            last_pair = self.start + self.n - 2  # pairs start .. start + n - 2 lie inside the candidate
            bad = [j for j in self._bad if self.start <= j <= min(last_pair, self._seen - 1)]
            if bad:
                j = max(bad)  # every start up to j would contain this pair
                reason = self._bad[j]
                self.rejections[reason] = self.rejections.get(reason, 0) + 1
                self.start = j + 1
                self._draw()
            elif self.start + self.n - 1 <= self._seen:
                w = Window(self.index, self.start, self.n)
                self.index += 1
                self.start = w.stop if self.stride is None else w.start + self.stride
                self._draw()
                kept.append(Accepted(w, self.start, self.index, self.rejections))
                self.rejections = {}
            else:
                break
            self._bad = {j: r for j, r in self._bad.items() if j >= self.start}
        return kept
