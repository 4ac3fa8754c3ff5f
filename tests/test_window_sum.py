"""ops/window_sum.py: a disjoint window summed and encoded in cache-sized strips gives the bytes of summing
whole frames (integer sums are exact in any order), for every output kind, depth and strip height."""

from __future__ import annotations

import numpy as np
import pytest

import blursynth.ops.accumulate as accumulate
import blursynth.ops.window_sum as window_sum
from blursynth.ops.accumulate import Channel, StreamingAccumulator
from blursynth.ops.crf import create_crf, rounding_thresholds
from blursynth.ops.window_sum import lookup, strip_rows, window_outputs
from blursynth.ops.windows import Window


def frames_of(n: int, shape=(37, 23, 3), bits: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    vmax = (1 << bits) - 1
    out = rng.integers(0, vmax + 1, size=(n, *shape)).astype(np.uint8 if bits == 8 else np.uint16)
    out[:, 0, 0] = 0
    out[:, 0, 1] = vmax
    return list(out)


def whole_frame(frames, channels):
    """The reference, independent of the encoder: whole-frame int64 sums through numpy indexing; a code is the
    number of decision thresholds at or below the sum (``searchsorted``), a mean the float32 quotient."""
    outs = []
    n = len(frames)
    for ch in channels:
        total = sum(ch.lut.astype(np.int64)[f] for f in frames)
        if ch.output == "code" and ch.crf.name != "linear":
            t = rounding_thresholds(ch.crf, n, ch.q)[1:256]
            outs.append(np.searchsorted(t, total, side="right").astype(np.uint8))
        elif ch.output == "code":  # the identity table: round half up of 255 S / (n q)
            outs.append(((2 * 255 * total + n * ch.q) // (2 * n * ch.q)).astype(np.uint8))
        else:
            outs.append(np.divide(total.astype(np.int32), np.float32(n * ch.q), dtype=np.float32))
    return outs


def all_channels(bits: int, n_max: int) -> list[Channel]:
    return [Channel.create(create_crf("gamma"), bits, n_max), Channel.create(create_crf("srgb"), bits, n_max),
            Channel.create(create_crf("linear"), bits, n_max), Channel.create(create_crf("gamma"), bits, n_max, "mean"),
            Channel.saturation(bits)]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("strip_bytes", [1, 4 * 23 * 3 * 5, 1 << 20])  # one row, 5 rows (37 = 7 x 5 + 2), all
def test_strips_give_the_bytes_of_whole_frames(monkeypatch, bits, strip_bytes):
    monkeypatch.setattr(window_sum, "STRIP_BYTES", strip_bytes)
    frames = frames_of(9, bits=bits, seed=bits)
    channels = all_channels(bits, 13)
    got = window_outputs(frames, channels, {})
    want = whole_frame(frames, channels)
    for g, w, ch in zip(got, want, channels, strict=True):
        assert g.dtype == (np.uint8 if ch.output == "code" else np.float32) and g.shape == frames[0].shape
        np.testing.assert_array_equal(g, w)


def test_strip_scratch_is_reused_and_outputs_are_fresh(monkeypatch):
    monkeypatch.setattr(window_sum, "STRIP_BYTES", 4 * 23 * 3 * 8)
    scratch: dict = {}
    channels = all_channels(8, 7)[:1]
    first = window_outputs(frames_of(7, seed=1), channels, scratch)[0]
    keep = first.copy()
    buffers = {k: v.__array_interface__["data"][0] for k, v in scratch.items()}
    window_outputs(frames_of(7, seed=2), channels, scratch)
    assert {k: v.__array_interface__["data"][0] for k, v in scratch.items()} == buffers
    np.testing.assert_array_equal(first, keep)  # the first window's image is not overwritten


def test_window_outputs_rejects_empty_and_mixed_windows():
    ch = all_channels(8, 7)[:1]
    with pytest.raises(ValueError, match="at least one frame"):
        window_outputs([], ch, {})
    with pytest.raises(ValueError, match="differ in shape"):
        window_outputs([np.zeros((4, 5, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], ch, {})


def test_lookup_of_every_layout_matches_indexing():
    rng = np.random.default_rng(5)
    lut = rng.integers(0, 2**30, 256).astype(np.int32)
    frame = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    for f in (frame, frame[:, ::2], frame[..., 0], np.ascontiguousarray(frame[..., :2])):
        np.testing.assert_array_equal(lookup(f, lut), lut[f])
        out = np.empty(f.shape, np.int32)
        assert lookup(f, lut, out=out) is not None
        np.testing.assert_array_equal(out, lut[f])
    lut16 = rng.integers(0, 2**30, 65536).astype(np.int32)
    frame16 = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    np.testing.assert_array_equal(lookup(frame16, lut16), lut16[frame16])


def test_strip_rows_fit_the_budget():
    assert strip_rows((720, 1280, 3)) == window_sum.STRIP_BYTES // (4 * 1280 * 3)
    assert strip_rows((3, 10**7, 3)) == 1  # a row larger than the budget is still one strip
    assert strip_rows((5, 2, 3)) == 5


def test_streaming_accumulator_holds_only_the_current_window():
    ch = all_channels(8, 9)[:1]
    windows = [Window(0, 0, 7), Window(1, 10, 9)]
    acc = StreamingAccumulator(windows, ch)
    frames = frames_of(19, seed=3)
    emitted = {}
    for i, f in enumerate(frames):
        for w, enc in acc.push(i, f):
            emitted[w.index] = enc
        assert len(acc._held) <= 9
        if i in (7, 8, 9):  # between the windows nothing is held
            assert acc._held == []
    np.testing.assert_array_equal(emitted[0][0], whole_frame(frames[0:7], ch)[0])
    np.testing.assert_array_equal(emitted[1][0], whole_frame(frames[10:19], ch)[0])


def test_prefetch_depth_holds_a_burst_of_frames_within_a_memory_budget():
    from blursynth.io.video import SourceInfo
    from blursynth.recipes.source_unit import PREFETCH_BYTES, prefetch_depth

    def info(w, h, bits=8):
        return SourceInfo(width=w, height=h, num_frames=100, fps=240.0, bit_depth=bits, pix_fmt="yuv420p",
                          codec="h264", size_bytes=1)

    assert prefetch_depth(info(1280, 720)) == PREFETCH_BYTES // (1280 * 720 * 3) >= 13  # a whole GOPRO window
    assert prefetch_depth(info(3840, 2160)) == 4  # at least 4
    assert prefetch_depth(info(320, 240)) == 32  # at most 32
    assert prefetch_depth(info(1280, 720, 16)) == PREFETCH_BYTES // (1280 * 720 * 6)
    assert prefetch_depth(info(3840, 2160), downsample=3) == PREFETCH_BYTES // (1280 * 720 * 3)


@pytest.mark.parametrize("shape", [(37, 23), (37, 23, 4), (5, 7, 1), (1, 9, 3)])
def test_strips_of_other_layouts(monkeypatch, shape):
    monkeypatch.setattr(window_sum, "STRIP_BYTES", 100)
    frames = frames_of(7, shape=shape, seed=7)
    frames[2] = frames[2][::-1]  # a non-contiguous frame
    channels = all_channels(8, 13)
    for g, w in zip(window_outputs(frames, channels, {}), whole_frame(frames, channels), strict=True):
        np.testing.assert_array_equal(g, w)


def test_window_outputs_needs_int32_tables():
    ch = Channel.create(create_crf("gamma"), 8, 7)
    bad = Channel(ch.crf, ch.lut.astype(np.int64), ch.q)
    with pytest.raises(TypeError, match="int32"):
        window_outputs(frames_of(3), [bad], {})


def test_long_windows_are_summed_frame_by_frame_with_the_same_bytes(monkeypatch):
    """A disjoint window too long to hold within the budget goes into running sums instead: same bytes."""
    ch = all_channels(8, 13)
    windows = [Window(0, 0, 13), Window(1, 13, 3), Window(2, 20, 11)]
    frames = frames_of(31, seed=9)
    assert window_sum.holds_window(13, frames[0], len(ch))
    monkeypatch.setattr(accumulate, "holds_window", lambda n, frame, _: n * frame.nbytes <= 5 * frame.nbytes)
    acc = StreamingAccumulator(windows, ch)
    emitted = {}
    for i, f in enumerate(frames):
        for w, enc in acc.push(i, f):
            emitted[w.index] = enc
        assert len(acc._held) <= 3  # only the 3-frame window is held
    for w in windows:
        for g, r in zip(emitted[w.index], whole_frame(frames[w.start : w.stop], ch), strict=True):
            np.testing.assert_array_equal(g, r)


def test_hold_budget():
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert window_sum.holds_window(13, frame, 1)  # 36 MB
    assert window_sum.holds_window(23, frame, 1)  # 64 MB: WILD's longest window at full size
    assert not window_sum.holds_window(65, frame, 1)  # 180 MB: summed frame by frame
    big = np.zeros((2160, 3840, 3), np.uint8)
    assert window_sum.holds_window(13, big, 1)  # 13 bytes per value <= the 16 the running sums take
    assert not window_sum.holds_window(17, big, 1)
