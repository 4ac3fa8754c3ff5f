"""Repeated frames, static windows and ``--fps`` on videos (issue 16, section 2).

Fixtures: a lossless clip whose every frame is repeated k times (a GIF or high-speed export), a frame-rate
conversion cadence, a static noisy scene with one isolated exact repeat (every frame must stay), a clip that
starts with identical frames (windows with blur == sharp) and a 25 fps clip given ``--fps 1000``.
Expectations come from the clip's construction: the deduplicated clip must give the same samples as a clip
holding only the distinct frames, and the meta must name the original frame numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_clean_error, cut, invoke, run_ok
from conftest import textured_image, write_frame_folder, write_video
from test_cli import all_samples, make_frames, manifest
from test_golden import dataset_hashes

from blursynth.io.repeats import PREFIX_FRAMES, RepeatCadence, drop_repeats, find_cadence, probe_repeats

K = 5  # every frame shown K times


def flags(runs: list[int]) -> list[bool]:
    """Consecutive-pair repeat flags of a clip made of runs of identical frames with these lengths."""
    same: list[bool] = []
    for r in runs:
        same += [False] + [True] * (r - 1)
    return same[1:]


def static_start(n_static: int = 14, n_moving: int = 14) -> np.ndarray:
    """``n_static`` identical frames (nothing moves), then a pan of ``n_moving`` frames."""
    moving = make_frames(n_moving + 1)
    return np.concatenate([np.repeat(moving[:1], n_static, axis=0), moving[1:]])


# -- the rule ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("runs", [
    [25] * 10,  # a GIF export repeating every frame 25 times
    [4] * 12,
    [2, 1, 1, 1] * 20,  # 24 -> 30 fps pulldown
    [2, 1, 1, 1, 1] * 20,  # 25 -> 30 fps
    [3, 2] * 10,  # 3:2 pulldown of whole frames
    [7] + [5] * 20 + [2],  # the clip starts and ends mid-cadence
])
def test_regular_repeats_are_a_cadence(runs):
    assert find_cadence(flags(runs))


def test_a_lossy_reencode_that_broke_some_repeats_is_still_a_cadence():
    """An encoder refining some repeated frames (H.264: they no longer decode identically) breaks runs."""
    same = np.array(flags([5] * 30))
    broken = same & (np.random.default_rng(0).random(len(same)) < 0.25)
    assert broken.sum() > 20 and find_cadence(same & ~broken)


@pytest.mark.parametrize("share", [0.15, 0.3, 0.5, 0.7, 0.9])
def test_repeats_at_random_are_not_a_cadence(share):
    """A static stretch of a lossy clip repeats frames irregularly: no period may be found by chance."""
    rng = np.random.default_rng(1)
    assert not any(find_cadence(rng.random(n) < share) for n in (30, 60, 100, 300, 1000) for _ in range(20))


@pytest.mark.parametrize("runs", [
    [1] * 142 + [2],  # examples/clips/moving_object.mp4: frames 142 and 143 identical at the end
    [1] * 50 + [2] + [1] * 50,  # one isolated repeat in the middle
    [1] * 40 + [200] + [1] * 40,  # a long static stretch inside a moving clip
    [14] + [1] * 14,  # a static start, then motion
    [100],  # every frame identical: static windows, not a cadence
    [1, 3, 1, 1, 6, 1, 2, 1, 1, 1, 4, 1, 1, 9, 1],  # irregular repeats
    [3, 3],  # too short to show a pattern
])
def test_isolated_or_irregular_repeats_are_not_a_cadence(runs):
    assert not find_cadence(flags(runs))


def test_a_prefix_without_repeats_is_not_scanned():
    """Normal sources cost only the prefix: the full pass is never requested."""
    calls = []

    def frames(limit):
        calls.append(limit)
        return iter(make_frames(PREFIX_FRAMES if limit else 40))

    assert probe_repeats(frames, 40) is None
    assert calls == [PREFIX_FRAMES]


def test_a_scan_cut_short_keeps_the_undecoded_frames_as_instants():
    from blursynth.errors import SourceError

    distinct = make_frames(20)

    def frames(limit):
        def gen():
            yield from np.repeat(distinct, 3, axis=0)[: limit or 60]
            if limit is None:
                raise SourceError("x.mkv", "decoding failed at frame 60")
        return gen()

    cadence = probe_repeats(frames, 70)
    assert cadence == RepeatCadence(70, tuple(range(0, 60, 3)) + tuple(range(60, 70)))
    assert cadence.duplicate_frames == 40
    kept = list(drop_repeats(((i, None) for i in range(70)), cadence))
    assert [k for k, _ in kept] == list(range(30))


# -- average: planned and flow-selected windows --------------------------------------------------------
def test_every_frame_repeated_counts_once(tmp_path):
    distinct = make_frames(21)
    clip = write_video(tmp_path / "gif.mkv", np.repeat(distinct, K, axis=0))
    ref = write_video(tmp_path / "ref" / "gif.mkv", distinct)  # same key, so the same seeded plan
    out, out_ref = tmp_path / "out", tmp_path / "out_ref"
    result = run_ok("average", clip, out, "--frames", "7")
    run_ok("average", ref, out_ref, "--frames", "7")
    warnings = [line for line in result.stderr.splitlines() if "repeat" in line]
    assert len(warnings) == 1 and "gif.mkv" in warnings[0] and "84" in warnings[0], result.stderr
    assert "static" not in result.output

    samples, expected = all_samples(out), all_samples(out_ref)
    assert len(samples) == len(expected) == 3
    for (_, center), s in samples.items():
        meta = s["meta"]
        start = meta["frames"][0] // K
        assert meta["frames"] == [K * i for i in range(start, start + 7)]  # original frame numbers
        assert center == K * (start + 3) and meta["n_frames"] == 7
        assert meta["duplicate_frames"] == 7 * (K - 1)
        assert meta["exposure"] == pytest.approx(7 * K / 240) and meta["time"] == pytest.approx(center / 240)
        ref_sample = expected[("gif.mkv", center // K)]
        np.testing.assert_array_equal(s["blur"], ref_sample["blur"])
        np.testing.assert_array_equal(s["sharp"], distinct[center // K])
        assert not np.array_equal(s["blur"], s["sharp"])
    m = manifest(out)
    entry = m["sources"][0]
    assert entry["frames"] == 21 * K
    assert entry["duplicate_frames"] == 21 * (K - 1) and m["totals"]["duplicate_frames"] == 21 * (K - 1)
    assert "duplicate_frames" not in manifest(out_ref)["sources"][0]


def test_flow_selected_windows_drop_repeats_too(tmp_path):
    distinct = make_frames(24)
    clip = write_video(tmp_path / "gif.mkv", np.repeat(distinct, 3, axis=0))
    out = tmp_path / "out"
    run_ok("average", clip, out, "--frames", "7", "--max-step-px", "50", "--max-match-error", "255")
    samples = all_samples(out)
    assert samples
    for s in samples.values():
        frames = s["meta"]["frames"]
        assert all(f % 3 == 0 for f in frames) and np.all(np.diff(frames) == 3), frames
        assert s["meta"]["duplicate_frames"] == 2 * len(frames)
        np.testing.assert_array_equal(s["sharp"], distinct[s["meta"]["center"] // 3])
    assert manifest(out)["totals"]["duplicate_frames"] == 48


def test_flow_selected_windows_over_repeats_resume_byte_for_byte(tmp_path):
    clip = write_video(tmp_path / "gif.mkv", np.repeat(make_frames(40), 3, axis=0))
    out = tmp_path / "out"
    args = ("average", clip, out, "--frames", "7", "--max-step-px", "50", "--max-match-error", "255",
            "--shard-size", "2")
    run_ok(*args)
    before = dataset_hashes(out)
    markers = sorted((out / "train").glob("*_stats.json"))
    assert len(markers) >= 2
    markers[-1].unlink()
    run_ok(*args)
    assert dataset_hashes(out) == before


def test_frame_folder_with_a_pulldown_cadence(tmp_path):
    distinct = make_frames(80)
    runs = [2, 1, 1, 1] * 20
    shown = np.concatenate([np.repeat(distinct[i : i + 1], r, axis=0) for i, r in enumerate(runs)])
    folder = write_frame_folder(tmp_path / "walk", shown)
    out = tmp_path / "out"
    run_ok("average", folder, out, "--frames", "7", "--fps", "30")
    originals = np.cumsum([0] + runs[:-1])  # the first frame of each instant
    for s in all_samples(out).values():
        first = int(np.searchsorted(originals, s["meta"]["frames"][0]))
        assert s["meta"]["frames"] == [int(originals[i]) for i in range(first, first + 7)]
        np.testing.assert_array_equal(s["sharp"], distinct[first + 3])
    assert manifest(out)["sources"][0]["duplicate_frames"] == 20


def test_static_scene_with_one_isolated_repeat_keeps_every_frame(tmp_path):
    """A static camera (sensor noise makes every frame differ) with one exact repeat inside the probed
    prefix: the full scan runs, finds no cadence, and every frame is averaged as before."""
    scene = textured_image(24, 32, seed=4)
    rng = np.random.default_rng(0)
    frames = np.clip(scene[None].astype(np.int16) + rng.normal(0, 2, (28, 24, 32, 3)).round(), 0, 255)
    frames = frames.astype(np.uint8)
    frames[5] = frames[4]
    clip = write_video(tmp_path / "static.mkv", frames)
    out = tmp_path / "out"
    result = run_ok("average", clip, out, "--frames", "7")
    assert "repeat" not in result.stderr
    samples = all_samples(out)
    assert sorted(s["meta"]["frames"][0] for s in samples.values()) == [0, 7, 14, 21]
    for s in samples.values():
        assert s["meta"]["frames"] == list(range(s["meta"]["frames"][0], s["meta"]["frames"][0] + 7))
        assert "duplicate_frames" not in s["meta"]
    assert "duplicate_frames" not in manifest(out)["sources"][0]


def test_a_repeated_clip_too_short_after_dropping_repeats_is_a_clean_error(tmp_path):
    clip = write_video(tmp_path / "short.mkv", np.repeat(make_frames(12), K, axis=0))
    result = invoke("average", clip, tmp_path / "out", "--frames", "21")
    line = assert_clean_error(result, "short.mkv")
    assert "12 frames after dropping repeats < 21" in line


def test_a_truncated_repeated_clip_keeps_its_decodable_part(tmp_path):
    clip = write_video(tmp_path / "cut.mkv", np.repeat(make_frames(40), 3, axis=0))
    cut(clip, 0.5)
    out = tmp_path / "out"
    run_ok("average", clip, out, "--frames", "7")
    entry = manifest(out)["sources"][0]
    assert entry["status"] == "partial" and entry["duplicate_frames"] > 0, entry
    for s in all_samples(out).values():
        assert all(f % 3 == 0 for f in s["meta"]["frames"])


# -- static windows ------------------------------------------------------------------------------------
def test_static_windows_are_counted_and_kept_by_default(tmp_path):
    clip = write_video(tmp_path / "still.mkv", static_start())
    out = tmp_path / "out"
    result = run_ok("average", clip, out, "--frames", "7")
    samples = all_samples(out)
    static = [c for (_, c), s in samples.items() if np.array_equal(s["blur"], s["sharp"])]
    assert sorted(static) == [3, 10] and len(samples) == 4
    assert "2 static window(s) (blur == sharp) kept" in result.output
    m = manifest(out)
    assert m["totals"]["static_windows"] == 2 and m["sources"][0]["static_windows"] == 2
    assert "duplicate_frames" not in m["sources"][0]  # a static start is not a cadence


def test_drop_static_leaves_them_out_and_resumes(tmp_path):
    clip = write_video(tmp_path / "still.mkv", static_start())
    out = tmp_path / "out"
    args = ("average", clip, out, "--frames", "7", "--drop-static", "--shard-size", "1")
    result = run_ok(*args)
    assert "wrote 2 samples" in result.output and "2 static window(s) (blur == sharp) dropped" in result.output
    assert sorted(c for _, c in all_samples(out)) == [17, 24]
    m = manifest(out)
    assert m["totals"]["static_windows"] == 2 and m["totals"]["samples"] == 2 and len(m["shards"]) == 2
    before = dataset_hashes(out)
    markers = sorted((out / "train").glob("*_stats.json"))
    assert len(markers) == 4  # the shards of dropped windows are committed empty
    markers[-1].unlink()
    rerun = run_ok(*args)
    assert "2 static window(s)" in rerun.output
    assert dataset_hashes(out) == before
    assert manifest(out)["totals"]["static_windows"] == 2


def test_flow_selected_windows_count_static_ones(tmp_path):
    clip = write_video(tmp_path / "still.mkv", static_start())
    out = tmp_path / "out"
    run_ok("average", clip, out, "--frames", "7", "--max-step-px", "50", "--max-match-error", "255")
    samples = all_samples(out)
    static = sum(np.array_equal(s["blur"], s["sharp"]) for s in samples.values())
    assert static >= 1
    assert manifest(out)["totals"]["static_windows"] == static


# -- --fps on a video ----------------------------------------------------------------------------------
def test_fps_overrides_the_container_rate(tmp_path):
    clip = write_video(tmp_path / "slowmo.mkv", make_frames(21), fps=25)
    out = tmp_path / "out"
    result = run_ok("average", clip, out, "--frames", "7", "--fps", "1000")
    assert "100 fps" not in result.stderr
    for (_, center), s in all_samples(out).items():
        meta = s["meta"]
        assert meta["fps"] == 1000 and meta["container_fps"] == 25
        assert meta["time"] == pytest.approx(center / 1000) and meta["exposure"] == pytest.approx(7 / 1000)
    entry = manifest(out)["sources"][0]
    assert entry["fps"] == 1000 and entry["container_fps"] == 25 and "warning" not in entry


def test_without_fps_a_video_keeps_its_container_rate(tmp_path):
    clip = write_video(tmp_path / "clip.mkv", make_frames(21), fps=240)
    out = tmp_path / "out"
    run_ok("average", clip, out, "--frames", "7")
    for s in all_samples(out).values():
        assert s["meta"]["fps"] == 240 and "container_fps" not in s["meta"]
    assert "container_fps" not in manifest(out)["sources"][0]
