"""Window planning, the recipes' windows, --frames parsing and train/val split assignment."""

from __future__ import annotations

import json
import random

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import run_ok
from conftest import pan_frames, textured_image, write_video

from blursynth.config import parse_frames
from blursynth.errors import ConfigError
from blursynth.ops.splits import assign_splits
from blursynth.ops.windows import Window, odd_sizes, plan_windows
from blursynth.seeding import create_rng


def plan(num_frames, frames, key="clip.mp4", seed=0, **kw):
    return plan_windows(num_frames, frames, create_rng(seed, "windows", key), **kw)


def test_window_properties():
    w = Window(index=2, start=10, n=7)
    assert w.stop == 17
    assert w.center == 13
    assert w.frames == [10, 11, 12, 13, 14, 15, 16]
    assert Window(0, 0, 1).center == 0


def test_odd_sizes():
    np.testing.assert_array_equal(odd_sizes((7, 13)), [7, 9, 11, 13])
    np.testing.assert_array_equal(odd_sizes((9, 9)), [9])


@pytest.mark.parametrize("frames", [(7, 13), (1, 5), (9, 9), (3, 21)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_back_to_back_windows_are_odd_in_range_contiguous(frames, seed):
    num = 400
    windows = plan(num, frames, seed=seed)
    lo, hi = frames
    assert windows
    assert [w.index for w in windows] == list(range(len(windows)))
    assert windows[0].start == 0
    for w in windows:
        assert w.n % 2 == 1
        assert lo <= w.n <= hi
        assert w.stop <= num
        assert w.center == w.start + (w.n - 1) // 2
    for a, b in zip(windows, windows[1:], strict=False):
        assert b.start == a.stop  # contiguous: no gap, no overlap
    # Planning stops only when the next drawn window does not fit.
    assert num - windows[-1].stop < hi
    assert sum(w.n for w in windows) == windows[-1].stop


def test_variable_sizes_use_the_whole_range():
    windows = plan(2000, (7, 13))
    assert {w.n for w in windows} == {7, 9, 11, 13}


def test_fixed_size_tiles_the_source():
    windows = plan(40, (9, 9))
    assert [(w.start, w.n) for w in windows] == [(0, 9), (9, 9), (18, 9), (27, 9)]


def test_short_source_gives_no_windows():
    assert plan(8, (9, 9)) == []
    assert plan(9, (9, 9)) == [Window(0, 0, 9)]


@pytest.mark.parametrize("stride", [1, 3, 5])
def test_stride_smaller_than_window_overlaps(stride):
    num = 60
    windows = plan(num, (9, 9), stride=stride)
    assert [w.start for w in windows] == list(range(0, num - 9 + 1, stride))
    for a, b in zip(windows, windows[1:], strict=False):
        assert b.start - a.start == stride
        assert b.start < a.stop  # overlapping


def test_stride_larger_than_window_leaves_gaps():
    windows = plan(100, (7, 7), stride=12)
    assert [w.start for w in windows] == [0, 12, 24, 36, 48, 60, 72, 84]
    for a, b in zip(windows, windows[1:], strict=False):
        assert b.start - a.stop == 5


def test_stride_with_variable_sizes():
    num = 300
    windows = plan(num, (7, 13), stride=4)
    assert len({w.n for w in windows}) > 1
    for i, w in enumerate(windows):
        assert w.start == 4 * i
        assert w.stop <= num
        assert w.n in (7, 9, 11, 13)
    # Some later window ends before an earlier one (the case accumulators must handle).
    assert any(b.stop < a.stop for a, b in zip(windows, windows[1:], strict=False))


def test_max_windows_spreads_over_the_source():
    full = plan(300, (3, 3))
    assert len(full) == 100
    kept = plan(300, (3, 3), max_windows=7)
    assert len(kept) == 7
    assert [w.index for w in kept] == list(range(7))
    assert kept[0].start == full[0].start == 0
    assert kept[-1].start == full[-1].start == 297  # the last window is kept, not only the first ones
    starts = [w.start for w in kept]
    assert starts == sorted(starts)
    gaps = np.diff(starts) // 3  # distance in windows
    assert gaps.min() >= 16 and gaps.max() <= 17  # (100 - 1) / 6 = 16.5 windows apart
    full_by_start = {w.start: w.n for w in full}
    assert all(full_by_start[w.start] == w.n for w in kept)  # subset of the full plan


def test_max_windows_with_variable_sizes_is_a_subset():
    full = plan(500, (7, 13), key="v")
    kept = plan(500, (7, 13), key="v", max_windows=5)
    assert len(kept) == 5
    assert (kept[0].start, kept[0].n) == (full[0].start, full[0].n)
    assert (kept[-1].start, kept[-1].n) == (full[-1].start, full[-1].n)
    assert {(w.start, w.n) for w in kept} <= {(w.start, w.n) for w in full}


def test_max_windows_larger_than_plan_changes_nothing():
    assert plan(100, (7, 13), max_windows=1000) == plan(100, (7, 13))


def test_plan_is_deterministic_for_the_same_seed_and_key():
    a = plan(1000, (7, 13), key="a/clip.mp4", seed=5)
    b = plan(1000, (7, 13), key="a/clip.mp4", seed=5)
    assert a == b
    # Planning other sources in between does not change it (one generator per source).
    plan(1000, (7, 13), key="other.mp4", seed=5)
    assert plan(1000, (7, 13), key="a/clip.mp4", seed=5) == a


def test_plan_differs_for_other_keys_and_seeds():
    a = [w.n for w in plan(1000, (7, 13), key="a.mp4", seed=5)]
    b = [w.n for w in plan(1000, (7, 13), key="b.mp4", seed=5)]
    c = [w.n for w in plan(1000, (7, 13), key="a.mp4", seed=6)]
    assert a != b
    assert a != c


def test_create_rng_is_stable_and_key_sensitive():
    x = create_rng(0, "windows", "k").integers(0, 2**62, size=4)
    y = create_rng(0, "windows", "k").integers(0, 2**62, size=4)
    z = create_rng(0, "windows", "k2").integers(0, 2**62, size=4)
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x, z)


# -- --frames -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected", [("9", (9, 9)), ("7-13", (7, 13)), ("1", (1, 1)), (" 7 - 13 ", (7, 13))]
)
def test_parse_frames_accepts(text, expected):
    assert parse_frames(text) == expected


@pytest.mark.parametrize("text", ["8", "13-7", "0", "-3", "abc", "7-12", "6-13", "", "7-", "1.5"])
def test_parse_frames_rejects(text):
    with pytest.raises(ConfigError):
        parse_frames(text)


# -- recipes, checked on the samples they produce ------------------------------------------------------------
#: What each paper prescribes: N odd in this range, frames shrunk by this factor (area) before averaging.
PAPERS = {
    "gopro": ((7, 13), 1),  # Nah et al. 2017, Sec. 2: "averaged varying number (7 - 13) of successive frames"
    "lode": ((7, 13), 1),  # LODE/BladeNet, Sec. 3: "an odd number randomly sampled from 7 to 13"
    "wild": ((7, 23), 3),  # Noroozi et al. 2017, Sec. 2: "downsample ... by a factor of 3", "between 7 and 23"
}


@pytest.mark.parametrize("recipe", sorted(PAPERS))
def test_recipe_samples_follow_the_papers(recipe, tmp_path):
    """Back-to-back windows of odd N over the paper's range, the middle frame as ground truth, gamma 2.2.

    The pan is slow enough (0.3 px/frame after x3) that the WILD flow filter keeps every window.
    """
    (lo, hi), factor = PAPERS[recipe]
    num, height, width = 200, 96, 144
    frames = pan_frames(textured_image(height + 8, width + 200, seed=2), num, height, width, 0.9)
    clip = write_video(tmp_path / "pan.mkv", frames)
    run_ok("average", "--recipe", recipe, clip, tmp_path / "out", "-q")
    rows = []
    for path in sorted((tmp_path / "out").glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            rows += [(json.loads(m), f["blur"][i], f["sharp"][i]) for i, m in enumerate(f["meta"].asstr()[()])]
    rows.sort(key=lambda r: r[0]["frames"][0])
    sizes = [meta["n_frames"] for meta, _, _ in rows]
    assert all(n % 2 == 1 and lo <= n <= hi for n in sizes)
    assert len(set(sizes)) > 1  # drawn from the range, not one fixed N
    starts = [meta["frames"][0] for meta, _, _ in rows]
    stops = [meta["frames"][-1] + 1 for meta, _, _ in rows]
    assert starts == [0] + stops[:-1]  # back-to-back from the first frame
    assert num - stops[-1] < lo  # no window lost at the end
    small = np.stack([cv2.resize(f, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
                      for f in frames])
    for meta, blur, sharp in rows:
        assert meta["center"] == meta["frames"][0] + meta["n_frames"] // 2
        np.testing.assert_array_equal(sharp, small[meta["center"]])
        linear = (small[meta["frames"]].astype(np.float64) / 255) ** 2.2
        oracle = np.rint(linear.mean(axis=0) ** (1 / 2.2) * 255)
        assert np.abs(blur.astype(np.float64) - oracle).max() <= 1


# -- splits -----------------------------------------------------------------------------------------------
KEYS = [f"seq{i:02d}.mp4" for i in range(20)]


def test_assign_splits_is_deterministic_and_covers_every_source_once():
    a = assign_splits(KEYS, 0.25, seed=3)
    b = assign_splits(list(KEYS), 0.25, seed=3)
    assert a == b
    assert set(a) == set(KEYS)
    assert set(a.values()) == {"train", "val"}


@pytest.mark.parametrize("fraction, n_val", [(0.0, 0), (0.1, 2), (0.25, 5), (0.5, 10), (0.99, 19), (0.01, 1)])
def test_assign_splits_fraction(fraction, n_val):
    split = assign_splits(KEYS, fraction, seed=0)
    assert sum(v == "val" for v in split.values()) == n_val
    assert sum(v == "train" for v in split.values()) == len(KEYS) - n_val


def test_assign_splits_small_inputs():
    assert assign_splits(["only"], 0.5, seed=0) == {"only": "train"}
    two = assign_splits(["a", "b"], 0.1, seed=0)
    assert sorted(two.values()) == ["train", "val"]
    assert assign_splits([], 0.5, seed=0) == {}


def test_assign_splits_is_independent_of_input_order():
    ref = assign_splits(KEYS, 0.3, seed=11)
    for s in range(5):
        shuffled = list(KEYS)
        random.Random(s).shuffle(shuffled)
        assert assign_splits(shuffled, 0.3, seed=11) == ref


def test_assign_splits_depends_on_seed_and_hash_not_on_position():
    vals = {
        frozenset(k for k, v in assign_splits(KEYS, 0.25, seed=s).items() if v == "val") for s in range(6)
    }
    assert len(vals) > 1
    # Not simply the first or last keys in sort order.
    val = {k for k, v in assign_splits(KEYS, 0.25, seed=0).items() if v == "val"}
    assert val != set(KEYS[:5]) and val != set(KEYS[-5:])


def test_assign_splits_keeps_a_source_in_one_split_when_more_sources_arrive():
    """Ranking is per key: a val source stays val while other keys are added, as long as n_val is the same."""
    base = assign_splits(KEYS[:10], 0.1, seed=2)  # one val source out of 10
    more = assign_splits(KEYS[:10] + ["extra.mp4"], 0.1, seed=2)  # still round(1.1) = 1
    val_base = [k for k, v in base.items() if v == "val"]
    val_more = [k for k, v in more.items() if v == "val"]
    assert len(val_base) == len(val_more) == 1
    if val_more[0] != "extra.mp4":
        assert val_more == val_base
