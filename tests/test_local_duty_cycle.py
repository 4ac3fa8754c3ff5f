"""`blursynth local --duty-cycle TAU` (issue 18): the exposure covers the centred fraction tau of the trajectory.

Oracles, all computed here:

* Sample times: M = (N - 1) K + 1 uniform over ``[c - tau (N - 1) / 2, c + tau (N - 1) / 2]``, the middle one at
  c exactly; poses there: a translation by ``v t``, a rotation by ``theta t`` about the patch centre.
* Displacement per sample: ``v tau / K`` for a translation (so 6 px/step at tau = 0.5 needs K = 3), and the
  brute-force maximum over dense patch points of a random trajectory whose sample pairs straddle steps.
* Rendering: a uniform square sliding at 5 px per step; the mask is the mean coverage of its rendered profile
  over the M poses of the shrunk interval (off the poses even at K = 1), and the blur the matching mixture.
* End to end: tau = 1 given explicitly is the default bit for bit (arrays and meta); tau = 0.5 keeps every draw
  and the sharp frame, and its meta records the duty cycle, the rendering and the sample spacing.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from crf_oracle import CRFS
from scale_data import local_args, local_inputs
from test_golden import dataset_hashes
from test_local_substeps import BACK, COLOUR, SCENE_HW, SIDE, SPEED, X0, Y0, N, _coverage, _expected_blur, _samples

from blursynth.config import LocalConfig
from blursynth.errors import ConfigError
from blursynth.ops import composite, render, render_torch
from blursynth.recipes import trajectories
from blursynth.recipes.trajectories import Motion

PATCH = (20, 30)  # (h, w)
START = trajectories.placement(PATCH, (50.0, 40.0), 1.0, 0.0)


def _times(n: int, k: int, tau: float) -> np.ndarray:
    c = (n - 1) / 2
    return np.linspace(c - tau * c, c + tau * c, (n - 1) * k + 1)


# ======================================================================================================
# sample times and poses
# ======================================================================================================
@pytest.mark.parametrize(("n", "k", "tau"), [(5, 1, 0.5), (7, 3, 0.8), (9, 4, 0.25), (13, 32, 0.9), (3, 1, 1.0)])
def test_sample_times_cover_the_centred_fraction_of_the_trajectory(n, k, tau):
    step, frac = trajectories.exposure_times(n, k, tau)
    times = step + frac
    np.testing.assert_allclose(times, _times(n, k, tau), atol=1e-12)
    assert ((0 <= frac) & (frac < 1)).all() and ((0 <= step) & (step <= n - 1)).all()
    mid = (len(times) - 1) // 2
    assert step[mid] == (n - 1) // 2 and frac[mid] == 0.0  # exactly the sharp frame


@pytest.mark.parametrize(("kind", "motion", "oracle"), [
    ("translate", Motion(6.0, -2.0, 1.0, 0.0),
     lambda t: trajectories.placement(PATCH, (50.0 + 6.0 * t, 40.0 - 2.0 * t), 1.0, 0.0)),
    ("rotate", Motion(0.0, 0.0, 1.0, 4.0), lambda t: trajectories.placement(PATCH, (50.0, 40.0), 1.0, 4.0 * t)),
    ("scale", Motion(0.0, 0.0, 1.05, 0.0), lambda t: trajectories.placement(PATCH, (50.0, 40.0), 1.05**t, 0.0)),
])
@pytest.mark.parametrize("k", [1, 3])
def test_poses_at_the_shrunk_times_are_the_motion_at_those_times(kind, motion, oracle, k):
    n, tau = 5, 0.5
    poses = trajectories.trajectory(START, PATCH, motion, [[kind]] * (n - 1))
    sampled = trajectories.subsample(poses, k, tau)
    assert sampled.shape == ((n - 1) * k + 1, 2, 3)
    for pose, t in zip(sampled, _times(n, k, tau), strict=True):
        np.testing.assert_allclose(pose, oracle(t), atol=1e-9)
    assert np.array_equal(sampled[(len(sampled) - 1) // 2], poses[(n - 1) // 2])  # bit for bit
    assert np.array_equal(trajectories.subsample(poses, 1, 1.0), poses)


# ======================================================================================================
# displacement per sample and --substeps auto
# ======================================================================================================
def test_auto_counts_the_shorter_sample_spacing():
    six = trajectories.trajectory(START, PATCH, Motion(6.0, 0.0, 1.0, 0.0), [["translate"]] * 4)
    assert trajectories.auto_substeps([(six, PATCH)]) == (6, pytest.approx(1.0))
    assert trajectories.auto_substeps([(six, PATCH)], duty_cycle=0.5) == (3, pytest.approx(1.0))  # 6 * 0.5 / 3
    assert trajectories.auto_substeps([(six, PATCH)], duty_cycle=0.2) == (2, pytest.approx(0.6))  # 1.2 at K = 1
    assert trajectories.auto_substeps([(six, PATCH)], duty_cycle=0.1) == (1, pytest.approx(0.6))
    ks = np.array([1, 2, 3, 5])
    np.testing.assert_allclose(trajectories.substep_displacement(six, PATCH, ks, 0.5), 3.0 / ks, rtol=1e-9)
    fast = trajectories.trajectory(START, PATCH, Motion(100.0, 0.0, 1.0, 0.0), [["translate"]] * 2)
    assert trajectories.auto_substeps([(fast, PATCH)], duty_cycle=0.5) == (32, pytest.approx(50.0 / 32))  # cap


@pytest.mark.parametrize("tau", [0.37, 0.8])
def test_displacement_per_sample_is_the_brute_force_maximum_across_steps(tau):
    rng = np.random.default_rng(11)
    motion = trajectories.draw_motion(rng, trajectories.MotionRanges((2.0, 6.0), (0.95, 1.05), (-8.0, 8.0)))
    poses = trajectories.trajectory(START, PATCH, motion, trajectories.draw_steps(rng, 6))
    h, w = PATCH
    xs, ys = np.meshgrid(np.linspace(-0.5, w - 0.5, 31), np.linspace(-0.5, h - 0.5, 21))
    pts = np.stack([xs.ravel(), ys.ravel()], -1)
    for k in (1, 3, 7):
        step, frac = trajectories.exposure_times(len(poses), k, tau)
        assert len(set(step[frac > 0]) | set(step[frac == 0])) > 1  # pairs straddle the steps
        frames = [pts @ p[:, :2].T + p[:, 2] for p in trajectories.subsample(poses, k, tau)]
        brute = max(np.linalg.norm(b - a, axis=-1).max() for a, b in zip(frames, frames[1:], strict=False))
        assert trajectories.substep_displacement(poses, PATCH, [k], tau)[0] == pytest.approx(brute, rel=1e-9)


# ======================================================================================================
# render: a square sliding over a flat background, exposed for half its trajectory
# ======================================================================================================
def _render(k: int, tau: float, renderer: str):
    crf = CRFS["srgb"]
    scene = np.empty((*SCENE_HW, 3), np.uint8)
    scene[:] = BACK
    prem = composite.premultiply(np.full((SIDE, SIDE, 3), COLOUR, np.uint8), np.ones((SIDE, SIDE), np.float32), crf)
    start = np.array([[1.0, 0.0, X0], [0.0, 1.0, Y0]])
    poses = trajectories.trajectory(start, (SIDE, SIDE), Motion(SPEED, 0.0, 1.0, 0.0), [["translate"]] * (N - 1))
    layers = [(prem, trajectories.subsample(poses, k, tau))]
    if renderer == "cpu":
        return render.render_moving(scene, layers, crf, substeps=k)
    return render_torch.render_moving_torch(scene, layers, crf, "cpu", substeps=k)


@pytest.mark.parametrize("renderer", ["cpu", "torch"])
@pytest.mark.parametrize("k", [1, 8])
def test_the_mask_is_the_coverage_over_the_shrunk_interval(renderer, k):
    tau = 0.5
    blur, sharp, mask, _ = _render(k, tau, renderer)
    f = _coverage(_times(N, k, tau), 1.0)  # mean coverage over the M poses at c + tau (t - c)
    row = int(Y0 + 1)  # inside the square: no vertical interpolation
    assert np.abs(mask[row].astype(float) - 255 * f).max() <= 1.0
    assert np.abs(blur[row].astype(float) - _expected_blur(f)).max() <= 1.5
    full = _coverage(_times(N, k, 1.0), 1.0)
    assert np.abs(mask[row] - 255 * full).max() > 25  # discriminating: not the whole exposure
    assert np.array_equal(sharp, _render(1, 1.0, renderer)[1])  # the middle pose, whatever tau and K


# ======================================================================================================
# configuration, command line, end to end
# ======================================================================================================
@pytest.mark.parametrize("text", ["0", "1.5", "nan", "-0.5", "inf", "half"])
def test_bad_duty_cycle_is_one_error_line_and_writes_nothing(tmp_path, text):
    inputs = local_inputs(tmp_path)
    out = tmp_path / "out"
    assert_clean_error(invoke(*local_args(inputs, out, samples=2), "--duty-cycle", text), "--duty-cycle")
    assert not out.exists()


def test_duty_cycle_in_the_config_and_the_fingerprint():
    cfg = LocalConfig(backgrounds=("bg",), out="out", voc="voc")
    for bad in (0.0, 1.0001, math.nan, -1.0, True, "0.5"):
        with pytest.raises(ConfigError, match="--duty-cycle"):
            dataclasses.replace(cfg, duty_cycle=bad)
    assert cfg.duty_cycle == 1.0 and "duty_cycle" not in cfg.fingerprint()  # outputs made before it still resume
    assert dataclasses.replace(cfg, duty_cycle=1.0).fingerprint() == cfg.fingerprint()
    assert dataclasses.replace(cfg, duty_cycle=0.5).fingerprint()["duty_cycle"] == 0.5


def test_duty_cycle_one_is_the_default_and_a_half_only_shortens_the_exposure(tmp_path):
    inputs = local_inputs(tmp_path)
    run_ok(*local_args(inputs, tmp_path / "plain", samples=4))
    run_ok(*local_args(inputs, tmp_path / "one", samples=4), "--duty-cycle", "1")
    assert dataset_hashes(tmp_path / "plain") == dataset_hashes(tmp_path / "one")
    run_ok(*local_args(inputs, tmp_path / "half", samples=4), "--duty-cycle", "0.5")
    plain, half = _samples(tmp_path / "plain"), _samples(tmp_path / "half")
    assert sorted(plain) == sorted(half) and len(plain) == 4
    changed = swept = 0
    for name, (blur1, sharp1, mask1, meta1) in plain.items():
        blur, sharp, mask, meta = half[name]
        assert np.array_equal(sharp, sharp1)  # the sharp frame and every draw are independent of tau
        assert all(meta[key] == meta1[key] for key in ("objects", "n_frames", "center", "background"))
        assert meta1["duty_cycle"] == 1.0 and meta1["interpolation"] == "render"  # every sample records them
        k = meta["substeps"]
        assert meta["duty_cycle"] == 0.5 and meta["interpolation"] == "render"
        assert meta["sample_spacing"] == 0.5 / k and meta["exposure_samples"] == (meta["n_frames"] - 1) * k + 1
        assert meta["substep_px"] <= 1.0 and k <= meta1["substeps"]
        assert np.count_nonzero(mask) <= np.count_nonzero(mask1)  # the objects sweep half the path
        swept += np.count_nonzero(mask1) - np.count_nonzero(mask)
        changed += not np.array_equal(blur, blur1)
    assert changed == 4 and swept > 0


def test_help_lists_the_duty_cycle():
    flat = " ".join(run_ok("local", "--help").output.split())
    assert "--duty-cycle TAU" in flat and "[default: 1.0]" in flat
