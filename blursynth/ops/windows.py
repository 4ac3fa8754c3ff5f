"""Seeded planning of averaging windows over a frame sequence.

A window is ``n`` consecutive frames ``[start, start + n)``; ``n`` is odd so that the middle frame
``start + n // 2`` exists and is the sharp ground truth (Nah et al. 2017, Sec. 2). Window sizes are drawn
from a generator seeded by (global seed, source key), so the plan is a pure function of the source and the
configuration: independent of processing order, worker count and of whether the run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
