"""Pairs measured ahead in worker threads (issue 20): the same windows, bytes and rejection counts as measuring
them one at a time, and never a pair skipped that the sampler needs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import invoke
from conftest import motion_frames, textured_image, write_video

from blursynth.ops.windows import WindowSampler
from blursynth.recipes import wild, wild_pairs
from blursynth.recipes.wild_pairs import may_need_pair

H, W = 120, 180  # -> 40 x 60 after x3


@pytest.mark.parametrize("stride,max_windows", [(None, None), (None, 3), (4, None), (11, 5)])
def test_may_need_pair_never_misses_a_pair_the_sampler_needs(stride, max_windows):
    """Against the sequential rule (needs_pair once frame j is pushed), over random verdict sequences."""
    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(40):
        n = int(rng.integers(20, 90))
        p_bad = float(rng.choice([0.02, 0.15, 0.5]))
        sampler = WindowSampler(n, (3, 9), seed=trial, key="k", stride=stride, max_windows=max_windows)
        for j in range(n):
            verdict = "bad" if j > 0 and rng.random() < p_bad else None
            ahead = may_need_pair(sampler, j, fed=False)  # pair j - 1's verdict not known yet
            sampler.push(j, verdict)
            needed = sampler.needs_pair(j)
            assert ahead or not needed, (trial, j)
            assert may_need_pair(sampler, j, fed=True) == needed
            checked += needed
    assert checked > 500


def _arrays_and_counts(out: Path) -> tuple[dict, dict]:
    arrays = {}
    for path in sorted(out.glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            for k in f:
                arrays[f"{path.name}/{k}"] = f[k][()]
    counts = {p.name: (json.loads(p.read_text())["rejections"], json.loads(p.read_text())["resume"])
              for p in sorted(out.glob("*/*_stats.json"))}
    return arrays, counts


@pytest.fixture(scope="module")
def near_threshold_clip(tmp_path_factory):
    """Steps around the 1-px threshold (at the x3 scale) and a scene cut: kept, rejected and unreliable pairs."""
    steps = [0.0] * 6 + [2.7, 3.3, 2.9, 3.1] * 4 + [1.5] * 8 + [0.3] * 10
    a = motion_frames(textured_image(H + 8, W + int(sum(steps)) + 8, seed=11), steps, H, W)
    b = motion_frames(textured_image(H + 8, W + 40, seed=12), [0.3] * 20, H, W)
    return write_video(tmp_path_factory.mktemp("near") / "near.mkv", np.concatenate([a, b]))


@pytest.mark.parametrize("extra", [("--frames", "7"), ("--frames", "7", "--max-per-source", "2"),
                                   ("--stride", "4", "--frames", "5")])
def test_threaded_pairs_give_the_sequential_bytes(near_threshold_clip, tmp_path, monkeypatch, extra):
    pools = []

    def counted_pool(*args, **kwargs):
        pools.append(wild_pairs.PairPool(*args, **kwargs))
        return pools[-1]

    def run(out: Path) -> tuple[dict, dict]:
        result = invoke("average", "--recipe", "wild", near_threshold_clip, str(out), "-q", *extra)
        assert result.exit_code == 0, result.output
        return _arrays_and_counts(out)

    monkeypatch.setattr(wild, "PairPool", counted_pool)
    got = run(tmp_path / "threaded")
    assert len(pools) == 1  # the run went through the worker threads
    monkeypatch.setattr(wild, "PairPool", lambda *a, **k: None)  # the sequential path, one pair at a time
    want = run(tmp_path / "sequential")
    assert got[1] == want[1]
    assert sorted(got[0]) == sorted(want[0]) and got[0]
    for k in want[0]:
        np.testing.assert_array_equal(got[0][k], want[0][k], err_msg=k)
    reasons = {r for rej, _ in want[1].values() for r in rej}
    if len(extra) == 2:  # the fixture exercises both reasons
        assert {"flow_threshold", "unreliable_flow"} <= reasons
