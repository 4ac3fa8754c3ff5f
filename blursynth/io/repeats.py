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
3. *decide* (:func:`find_cadence`): repeats form a cadence when at least ``MIN_SHARE`` of the pairs are
   repeats and, for some period of p frames seen at least ``MIN_PERIODS`` times, every phase of the period
   is clearly a repeat or clearly a new instant, and the new-instant phases are too clean to be chance.
   Exact repeats (only those) are then dropped: each run of identical frames is one instant, its first
   frame kept and numbered consecutively (:func:`drop_repeats`).

Planned windows are drawn over the instants, so the decision is made before decoding (planning), and the
samples' meta records the original frame numbers (recipes/source_unit.py ``make_sample``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from blursynth.errors import SourceError

#: Frames every source decodes at planning to look for a repeat (7 pairs: a one-in-six cadence, 25 -> 30 fps, shows).
PREFIX_FRAMES = 8
#: Least share of the consecutive pairs that must be exact repeats (25 -> 30 fps conversion: 1/6).
MIN_SHARE = 0.12
#: Longest cadence recognised, in frames (every frame shown up to this many times).
MAX_PERIOD = 64
#: A phase of the period at which the picture repeats: at least this share of its pairs are exact repeats.
REPEAT_PHASE = 0.5
#: A phase at which a new instant starts: at most this share of its pairs are repeats (static moments).
CHANGE_PHASE = 0.2
#: Fewest whole periods that establish a cadence.
MIN_PERIODS = 3
#: Largest probability that the new-instant phases are free of repeats by chance (repeats at random).
CHANCE = 1e-6

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


def find_cadence(same: Sequence[bool]) -> bool:
    """Whether the repeats ``same`` flags (one per consecutive pair) form a regular cadence.

    A cadence of period p frames has, at each phase of the period, either a repeat (most pairs exact
    repeats, ``REPEAT_PHASE``) or a new instant (few repeats, ``CHANGE_PHASE``), and at least one phase of
    each kind. Phases rather than run lengths, so that a lossy re-encode that broke some repeats (an encoder
    refining a repeated frame, so it no longer decodes identically) still shows its cadence. Isolated
    repeats, a static start or a static stretch inside a moving clip give no phase of new instants
    or no phase of repeats; nor does a clip whose frames are all identical (its windows count as static).
    """
    flags = np.asarray(same, dtype=bool)
    share = flags.mean() if len(flags) else 0.0
    if share < MIN_SHARE:
        return False
    for period in range(2, MAX_PERIOD + 1):
        rows = len(flags) // period
        if rows < MIN_PERIODS:
            break
        rates = flags[: rows * period].reshape(rows, period).mean(axis=0)
        change = rates <= CHANGE_PHASE
        if not (change | (rates >= REPEAT_PHASE)).all() or change.all() or not change.any():
            continue
        # Repeats that fell at random (a static stretch of a lossy clip) can leave phases clean by chance:
        # so few repeats at the new-instant phases must be unlikely under the overall share of repeats.
        pairs = rows * int(change.sum())
        if _chance(int(round(rates[change].sum() * rows)), pairs, share) <= CHANCE:
            return True
    return False


def _chance(repeats: int, pairs: int, share: float) -> float:
    """Chernoff bound on the probability of at most ``repeats`` repeats among ``pairs`` pairs that are each
    a repeat with probability ``share``: exp(-pairs * KL(repeats / pairs || share))."""
    a = repeats / pairs
    if a >= share:
        return 1.0
    kl = (a * math.log(a / share) if a else 0.0) + (1.0 - a) * math.log((1.0 - a) / (1.0 - share))
    return math.exp(-pairs * kl)


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
