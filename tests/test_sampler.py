"""Online window selection (WindowSampler) and accumulators that learn windows while frames stream in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blursynth.ops.accumulate import Channel, StreamingAccumulator, TorchAccumulator
from blursynth.ops.crf import create_crf
from blursynth.ops.windows import Window, WindowSampler, max_windows_bound


def run_sampler(verdicts: dict[int, str], num_frames: int = 80, frames=(7, 11), **kw) -> tuple[list, WindowSampler]:
    """Feed frames 0..num_frames-1; ``verdicts[i]`` is the reason pair (i - 1, i) is bad."""
    s = WindowSampler(num_frames, frames, seed=kw.pop("seed", 0), key=kw.pop("key", "clip"), **kw)
    kept = []
    for i in range(num_frames):
        kept += s.push(i, verdicts.get(i))
    return kept, s


def pairs_of(w: Window) -> range:
    """Frames i whose incoming pair (i - 1, i) lies inside the window."""
    return range(w.start + 1, w.stop)


def test_all_good_pairs_tile_the_source_back_to_back():
    kept, s = run_sampler({})
    wins = [a.window for a in kept]
    assert wins[0].start == 0
    assert all(b.start == a.stop for a, b in zip(wins, wins[1:], strict=False))
    assert all(w.n in (7, 9, 11) for w in wins)
    assert 80 - wins[-1].stop < 7  # nothing that could still hold a window is left
    assert [w.index for w in wins] == list(range(len(wins)))
    assert s.done and not any(a.rejections for a in kept)


def test_no_kept_window_contains_a_bad_pair_and_rejections_are_counted():
    bad = {20: "flow_threshold", 21: "flow_threshold", 45: "unreliable_flow", 60: "max_step"}
    kept, s = run_sampler(bad)
    for a in kept:
        assert not set(pairs_of(a.window)) & set(bad), a.window
    total: dict[str, int] = {}
    for a in kept:
        for k, v in a.rejections.items():
            total[k] = total.get(k, 0) + v
    for k, v in s.rejections.items():
        total[k] = total.get(k, 0) + v
    assert set(total) == {"flow_threshold", "unreliable_flow", "max_step"}
    # After a bad pair (i-1, i) the next candidate starts at frame i, the first start that can be valid.
    after = [a.window.start for a in kept if a.window.start >= 21]
    assert after and after[0] == 21  # pairs (19,20) and (20,21) bad: frame 21 starts the next window


def test_window_size_depends_only_on_seed_key_and_start():
    a, _ = run_sampler({30: "flow_threshold"}, seed=5)
    b, _ = run_sampler({50: "flow_threshold"}, seed=5)
    size_a = {x.window.start: x.window.n for x in a}
    size_b = {x.window.start: x.window.n for x in b}
    common = set(size_a) & set(size_b)
    assert common and all(size_a[k] == size_b[k] for k in common)
    c, _ = run_sampler({}, seed=6)
    d, _ = run_sampler({}, seed=5)
    assert [x.window for x in c] != [x.window for x in d]


def test_resuming_from_an_accepted_state_continues_identically():
    bad = {13: "flow_threshold", 44: "flow_threshold", 45: "flow_threshold"}
    full, _ = run_sampler(bad, num_frames=100)
    cut = full[3]
    s = WindowSampler(100, (7, 11), seed=0, key="clip", start=cut.next_start, index=cut.next_index)
    rest = []
    for i in range(100):
        rest += s.push(i, bad.get(i))
    assert [a.window for a in rest] == [a.window for a in full[4:]]
    assert [a.rejections for a in rest] == [a.rejections for a in full[4:]]


def test_overlapping_stride_reuses_known_verdicts():
    bad = {30: "flow_threshold"}
    kept, _ = run_sampler(bad, frames=(9, 9), stride=3)
    wins = [a.window for a in kept]
    assert all(w.n == 9 for w in wins)
    assert not any(w.start < 30 <= w.stop - 1 for w in wins)  # no window holds pair (29, 30)
    assert [w.start for w in wins if w.stop <= 30] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert wins[len([w for w in wins if w.stop <= 30])].start == 30


def test_max_windows_spreads_over_the_source():
    kept, s = run_sampler({}, num_frames=300, frames=(7, 7), max_windows=4)
    starts = [a.window.start for a in kept]
    assert starts == [0, 75, 150, 225]
    assert s.done


def test_single_frame_windows_and_the_tail_redraw():
    kept, _ = run_sampler({}, num_frames=10, frames=(1, 1))
    assert [a.window.start for a in kept] == list(range(10))
    kept, _ = run_sampler({}, num_frames=12, frames=(7, 11))
    assert kept[-1].window.stop <= 12


def test_bound_is_never_exceeded():
    rng = np.random.default_rng(0)
    for trial in range(20):
        num, stride = int(rng.integers(5, 120)), [None, 1, 3, 12][trial % 4]
        bad = {int(i): "flow_threshold" for i in rng.integers(1, num, size=int(rng.integers(0, 8)))}
        kept, _ = run_sampler(bad, num_frames=num, frames=(5, 9), stride=stride, seed=trial)
        assert len(kept) <= max_windows_bound(num, (5, 9), stride=stride)
    assert max_windows_bound(6, (7, 9)) == 0
    assert max_windows_bound(100, (7, 9), max_windows=3) == 3


def test_frames_must_arrive_in_order():
    s = WindowSampler(20, (7, 7), seed=0, key="k")
    s.push(0)
    with pytest.raises(ValueError, match="in order"):
        s.push(2)


# -- accumulators learning windows online ----------------------------------------------------------------
def _online_vs_planned(acc_online, acc_planned, frames, windows, lag):
    decided, got = [], {}
    for i in range(len(frames)):
        new = [w for w in windows if w.stop - 1 == i]  # decided when the window's last frame arrives
        acc_online.extend(sorted(new, key=lambda w: w.start))
        decided += new
        if i - lag >= 0:
            for w, enc in acc_online.push(i - lag, frames[i - lag]):
                got[w.index] = enc
    for j in range(max(0, len(frames) - lag), len(frames)):
        for w, enc in acc_online.push(j, frames[j]):
            got[w.index] = enc
    for w, enc in acc_online.finish():
        got[w.index] = enc
    expected = {}
    for i, f in enumerate(frames):
        for w, enc in acc_planned.push(i, f):
            expected[w.index] = enc
    for w, enc in acc_planned.finish():
        expected[w.index] = enc
    assert sorted(got) == sorted(expected) == [w.index for w in windows]
    for k in got:
        for a, b in zip(got[k], expected[k], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("overlap", [False, True])
def test_streaming_accumulator_extend_matches_planned(overlap):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8)
    if overlap:
        windows = [Window(0, 2, 7), Window(1, 5, 9), Window(2, 20, 7), Window(3, 22, 11)]
    else:
        windows = [Window(0, 2, 7), Window(1, 9, 9), Window(2, 25, 11)]
    ch = [Channel.create(create_crf("gamma", 2.2), 8, 11)]
    online = StreamingAccumulator([], ch, disjoint=not overlap)
    _online_vs_planned(online, StreamingAccumulator(windows, ch), frames, windows, lag=10)


def test_torch_accumulator_extend_matches_planned(device):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8)
    windows = [Window(0, 0, 7), Window(1, 5, 9), Window(2, 20, 7), Window(3, 29, 11)]
    ch = [Channel.create(create_crf("gamma", 2.2), 8, 11)]
    online = TorchAccumulator([], ch, device=torch.device(device), batch_frames=4, online=True)
    _online_vs_planned(online, StreamingAccumulator(windows, ch), frames, windows, lag=10)


def test_extend_refuses_windows_in_the_past():
    ch = [Channel.create(create_crf("gamma", 2.2), 8, 7)]
    acc = StreamingAccumulator([], ch, disjoint=True)
    frame = np.zeros((2, 2, 3), np.uint8)
    for i in range(5):
        acc.push(i, frame)
    with pytest.raises(ValueError, match="before"):
        acc.extend([Window(0, 3, 7)])
    acc.extend([Window(0, 5, 7)])
    with pytest.raises(ValueError, match="overlaps"):
        acc.extend([Window(1, 8, 7)])
    with pytest.raises(ValueError, match="online=True"):
        TorchAccumulator([], ch, device=torch.device("cpu")).extend([Window(0, 0, 7)])
