"""Repeated frames: sources that show each instant several times in a regular cadence.

GIF and high-speed-camera exports repeat every frame k times; frame-rate conversion repeats one frame in
five (24 -> 30 fps) or six (25 -> 30). Averaging such a source weights instants unequally and yields windows
in which nothing moves (issue 16: a GIF repeating every frame 25 times gave 62 samples, 41 with blur ==
sharp). Exact repeats also happen at real static moments of a clean clip (examples/clips/moving_object.mp4
frames 142 and 143, after the disc has left): those are real frames and stay. The rule:

1. *probe* (every source, at planning): decode the first ``PREFIX_FRAMES`` frames. Without an exactly
   identical consecutive pair among them the source is taken as it is; this is all a normal source costs
   (videos are compared in the decoder's pixel format, without the conversion to RGB).
2. *scan* (only sources whose prefix holds a repeat): compare every consecutive pair of the whole source.
3. *decide* (:func:`find_cadence`): repeats form a cadence when at least ``MIN_SHARE`` of the frames
   (between the first and the last run) are repeats and the run lengths (frames per instant) follow a short
   periodic pattern that predicts at least ``MIN_REGULAR`` of them (at least 5 instants are needed to show
   one). Each run of identical frames is then one instant: its first frame is kept and numbered
   consecutively, the others are dropped (:func:`drop_repeats`).

Planned windows are drawn over the instants, so the decision is made before decoding (planning), and the
samples' meta records the original frame numbers (recipes/source_unit.py ``make_sample``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from blursynth.errors import SourceError

#: Frames every source decodes at planning to look for a repeat (7 pairs: a one-in-six cadence, 25 -> 30 fps, shows).
PREFIX_FRAMES = 8
#: Least share of the frames that must be exact repeats (25 -> 30 fps conversion: 1/6, less on a short clip).
MIN_SHARE = 0.12
#: Longest pattern of run lengths recognised as a cadence (24 -> 30 fps pulldown: 2, 1, 1, 1).
MAX_PERIOD = 8
#: Share of the frames (inside the first and last run) whose run length the pattern must predict.
MIN_REGULAR = 0.9
#: Fewest comparisons of run lengths that establish a pattern.
MIN_COMPARISONS = 3

#: ``frames(limit)``: the source's frames in order, at most ``limit`` (None: all), any array layout.
FrameSource = Callable[[int | None], Iterable[np.ndarray]]


@dataclass(frozen=True)
class RepeatCadence:
    """A source whose repeated frames are dropped.

    Attributes:
        num_frames: frames in the source (the probed count).
        instants: original index of each frame kept (the first of each run of identical frames), in order;
            frames the scan could not decode (a truncated file) count as instants of their own.
    """

    num_frames: int
    instants: tuple[int, ...]

    @property
    def duplicate_frames(self) -> int:
        return self.num_frames - len(self.instants)

    def end(self, position: int) -> int:
        """Original index after the last repeat of instant ``position`` (the start of the next instant)."""
        return self.instants[position + 1] if position + 1 < len(self.instants) else self.num_frames


def consecutive_repeats(frames: Iterable[np.ndarray]) -> Iterator[bool]:
    """For each consecutive pair of ``frames``: whether it is exactly identical (shape, dtype and bytes)."""
    previous = None
    for frame in frames:
        if previous is not None:
            yield frame.shape == previous.shape and frame.dtype == previous.dtype and np.array_equal(frame, previous)
        previous = frame


def run_lengths(same: Sequence[bool]) -> list[int]:
    """Lengths of the runs of identical frames that ``same`` (one flag per consecutive pair) describes."""
    runs = [1]
    for repeat in same:
        if repeat:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def find_cadence(same: Sequence[bool]) -> bool:
    """Whether the repeats ``same`` flags form a regular cadence (see the module docstring).

    The first and last runs are left out (a clip may start or end mid-cadence, or on a static stretch), and
    the repeats must lie inside the pattern: a static start followed by motion is not a cadence, nor is a
    source whose frames are all identical (one run; its windows count as static instead).
    """
    inner = run_lengths(same)[1:-1]
    frames = sum(inner)
    if not inner or frames - len(inner) < MIN_SHARE * frames:
        return False
    for period in range(1, MAX_PERIOD + 1):
        compared = inner[: len(inner) - period]
        if len(compared) < MIN_COMPARISONS:
            break
        agreeing = sum(r for r, later in zip(compared, inner[period:], strict=False) if r == later)
        if agreeing >= MIN_REGULAR * sum(compared):
            return True
    return False


def probe_repeats(frames: FrameSource, num_frames: int) -> RepeatCadence | None:
    """The source's repeat cadence, or None when it has none (the prefix holds no repeat, or the repeats
    are isolated or irregular).

    A source that cannot be decoded to its end is decided on the frames that decode; the rest count as
    instants, so decoding fails at the same place later and the source is recorded as partial.
    """
    if not any(_compared(frames(PREFIX_FRAMES))):
        return None
    same = _compared(frames(None))
    if not find_cadence(same):
        return None
    kept = [0] + [i + 1 for i, repeat in enumerate(same) if not repeat]
    instants = [i for i in kept if i < num_frames] + list(range(len(same) + 1, num_frames))
    return RepeatCadence(num_frames, tuple(instants))


def _compared(frames: Iterable[np.ndarray]) -> list[bool]:
    """:func:`consecutive_repeats` of the frames that decode; a decoding error is the reader's to report."""
    same: list[bool] = []
    try:
        same.extend(consecutive_repeats(frames))
    except SourceError:
        pass  # keep the pairs compared before the error
    return same


def drop_repeats(frames: Iterable[tuple[int, np.ndarray]],
                 cadence: RepeatCadence) -> Iterator[tuple[int, np.ndarray]]:
    """The kept frames of ``(index, frame)`` pairs, numbered by instant (0, 1, 2, ...).

    ``frames`` is closed with this generator (a consumer that stops early releases the decoder at once).
    """
    position = {original: k for k, original in enumerate(cadence.instants)}
    try:
        for index, frame in frames:
            k = position.get(index)
            if k is not None:
                yield k, frame
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
