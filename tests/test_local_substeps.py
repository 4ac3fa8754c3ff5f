"""`blursynth local --substeps K|auto` (issue 18): the trajectory sampled between its frames, against oracles.

* Poses: a pure translation, rotation or scaling step sampled at s in (0, 1) is that motion by s (the step
  matrices of ``trajectories.step_matrix`` with the motion scaled), and integer times are the trajectory's own
  poses bit for bit.
* Displacement per sub-step: v / K for a translation, the chord ``2 R sin(theta / 2K)`` for a rotation about the
  patch centre, ``(f^(1/K) - 1) f^((K-1)/K) R`` for a scaling; and a brute-force maximum over dense points.
* Rendering: a uniform square sliding at 5 px per step over a flat background. Its continuous exposure is the
  box filter of its rendered (bilinear) profile over the path, integrated numerically here; K = 64 matches it,
  K = 1 shows the distinct copies (zero-coverage gaps between them).
* End to end: a run without the option is ``--substeps auto`` (the default since revision 2 of ``local``); K only
  changes the sampling (same sharp frames, same trajectory in the meta); the default agrees with K = 64 to
  >= 40 dB inside the masks, K = 1 does not. (Revision 1 and K = 1: tests/test_local_revision.py.)
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from crf_oracle import CRFS, ref_decode, ref_encode
from metric_oracle import psnr_u8
from objects_data import texture
from scale_data import local_args, local_inputs
from test_golden import dataset_hashes
from test_local_torch import _layers

from blursynth.config import LocalConfig
from blursynth.errors import ConfigError
from blursynth.ops import composite, render, render_torch
from blursynth.recipes import trajectories
from blursynth.recipes.local import run_local
from blursynth.recipes.trajectories import Motion

PATCH = (20, 30)  # (h, w)
START = trajectories.placement(PATCH, (50.0, 40.0), 1.2, 10.0)


def _single_step(kind: str, motion: Motion) -> np.ndarray:
    return trajectories.trajectory(START, PATCH, motion, [[kind]])


# ======================================================================================================
# trajectories.subsample
# ======================================================================================================
@pytest.mark.parametrize(("kind", "motion", "partial"), [
    ("translate", Motion(4.5, -2.0, 1.0, 0.0), lambda m, s: Motion(s * m.dx, s * m.dy, 1.0, 0.0)),
    ("rotate", Motion(0.0, 0.0, 1.0, 7.0), lambda m, s: Motion(0.0, 0.0, 1.0, s * m.rotate)),
    ("scale", Motion(0.0, 0.0, 1.08, 0.0), lambda m, s: Motion(0.0, 0.0, m.scale**s, 0.0)),
    ("scale", Motion(0.0, 0.0, 0.93, 0.0), lambda m, s: Motion(0.0, 0.0, m.scale**s, 0.0)),
])
def test_a_pure_step_is_sampled_as_that_motion_by_a_fraction(kind, motion, partial):
    k = 5
    sub = trajectories.subsample(_single_step(kind, motion), k)
    assert sub.shape == (k + 1, 2, 3)
    pivot = trajectories.centre_of(START, PATCH)
    for j in range(k + 1):
        expected = (trajectories.step_matrix(kind, partial(motion, j / k), pivot) @ np.vstack([START, [0, 0, 1]]))
        np.testing.assert_allclose(sub[j], expected[:2], atol=1e-9)


def test_integer_times_are_the_trajectory_itself_and_nested_samplings_agree():
    rng = np.random.default_rng(3)
    motion = trajectories.draw_motion(rng, trajectories.MotionRanges())
    poses = trajectories.trajectory(START, PATCH, motion, trajectories.draw_steps(rng, 8))
    assert np.array_equal(trajectories.subsample(poses, 1), poses)
    fine, coarse = trajectories.subsample(poses, 6), trajectories.subsample(poses, 3)
    assert fine.shape == (8 * 6 + 1, 2, 3)
    assert np.array_equal(fine[::6], poses)  # bit for bit: the sharp frame cannot depend on K
    np.testing.assert_allclose(fine[::2], coarse, atol=1e-9)
    # Constant velocity within a step: the frame-space motion between consecutive samples repeats.
    a = np.concatenate([fine, np.tile([[[0.0, 0.0, 1.0]]], (len(fine), 1, 1))], axis=1)
    moves = [a[j + 1] @ np.linalg.inv(a[j]) for j in range(len(a) - 1)]
    for step in range(8):
        for j in range(1, 6):
            np.testing.assert_allclose(moves[6 * step + j], moves[6 * step], atol=1e-9)


# ======================================================================================================
# trajectories.substep_displacement / auto_substeps
# ======================================================================================================
R = 1.2 * math.hypot(PATCH[0], PATCH[1]) / 2  # centre to a corner of the pixel-edge rectangle, scaled


@pytest.mark.parametrize(("kind", "motion", "oracle"), [
    ("translate", Motion(3.0, 4.0, 1.0, 0.0), lambda k: 5.0 / k),
    ("rotate", Motion(0.0, 0.0, 1.0, 12.0), lambda k: 2 * R * math.sin(math.radians(12.0) / (2 * k))),
    ("scale", Motion(0.0, 0.0, 1.1, 0.0), lambda k: (1.1 ** (1 / k) - 1) * 1.1 ** ((k - 1) / k) * R),
    ("scale", Motion(0.0, 0.0, 0.9, 0.0), lambda k: (1 - 0.9 ** (1 / k)) * R),
])
def test_displacement_per_substep_matches_the_geometry(kind, motion, oracle):
    poses = _single_step(kind, motion)
    ks = np.array([1, 2, 3, 7, 32])
    np.testing.assert_allclose(trajectories.substep_displacement(poses, PATCH, ks), [oracle(k) for k in ks],
                               rtol=1e-9)


def test_displacement_per_substep_is_the_brute_force_maximum():
    rng = np.random.default_rng(5)
    motion = trajectories.draw_motion(rng, trajectories.MotionRanges((2.0, 6.0), (0.95, 1.05), (-8.0, 8.0)))
    poses = trajectories.trajectory(START, PATCH, motion, trajectories.draw_steps(rng, 4))
    h, w = PATCH
    xs, ys = np.meshgrid(np.linspace(-0.5, w - 0.5, 31), np.linspace(-0.5, h - 0.5, 21))
    pts = np.stack([xs.ravel(), ys.ravel()], -1)
    for k in (1, 4, 9):
        frames = [pts @ p[:, :2].T + p[:, 2] for p in trajectories.subsample(poses, k)]
        brute = max(np.linalg.norm(b - a, axis=-1).max() for a, b in zip(frames, frames[1:], strict=False))
        assert trajectories.substep_displacement(poses, PATCH, [k])[0] == pytest.approx(brute, rel=1e-9)


def test_auto_takes_the_smallest_k_that_keeps_every_point_within_one_pixel():
    six = _single_step("translate", Motion(6.0, 0.0, 1.0, 0.0))
    assert trajectories.auto_substeps([(six, PATCH)]) == (6, pytest.approx(1.0))
    more = _single_step("translate", Motion(0.0, 6.05, 1.0, 0.0))
    turn = _single_step("rotate", Motion(0.0, 0.0, 1.0, 2.5))  # chord 2 R sin(1.25 deg) = 0.94 px at K = 1
    assert trajectories.auto_substeps([(more, PATCH)])[0] == 7
    assert trajectories.auto_substeps([(turn, PATCH), (more, PATCH)])[0] == 7  # one K for all objects
    assert trajectories.auto_substeps([(turn, PATCH)])[0] == 1
    still = np.stack([START] * 5)
    assert trajectories.auto_substeps([(still, PATCH)]) == (1, pytest.approx(0.0, abs=1e-9))
    fast = _single_step("translate", Motion(100.0, 0.0, 1.0, 0.0))
    assert trajectories.auto_substeps([(fast, PATCH)]) == (32, pytest.approx(100.0 / 32))  # the cap


# ======================================================================================================
# render: a square sliding over a flat background, against its continuous exposure
# ======================================================================================================
SIDE, SPEED, N = 3, 5.0, 5  # px, px per step, frames: the copies at K = 1 do not touch
X0, Y0 = 6.3, 4.0
SCENE_HW = (11, 40)
COLOUR, BACK = (230, 60, 140), (40, 170, 90)


def _profile(u: np.ndarray, alpha: float) -> np.ndarray:
    """The square's rendered alpha along x at patch coordinate u: bilinear samples of [0, a, ..., a, 0]."""
    return alpha * np.clip(np.minimum(u + 1.0, SIDE - u), 0.0, 1.0)


def _coverage(times: np.ndarray, alpha: float) -> np.ndarray:
    """Mean coverage over the given times (frame units) of every pixel column of the scene."""
    x = np.arange(SCENE_HW[1], dtype=np.float64)
    return _profile(x[None, :] - X0 - SPEED * times[:, None], alpha).mean(axis=0)


def _render(substeps: int, alpha: float, renderer: str, monkeypatch):
    crf = CRFS["srgb"]
    scene = np.empty((*SCENE_HW, 3), np.uint8)
    scene[:] = BACK
    prem = composite.premultiply(np.full((SIDE, SIDE, 3), COLOUR, np.uint8), np.full((SIDE, SIDE), alpha,
                                                                                     np.float32), crf)
    start = np.array([[1.0, 0.0, X0], [0.0, 1.0, Y0]])
    poses = trajectories.trajectory(start, (SIDE, SIDE), Motion(SPEED, 0.0, 1.0, 0.0), [["translate"]] * (N - 1))
    layers = [(prem, trajectories.subsample(poses, substeps))]
    if renderer == "cpu":
        return render.render_moving(scene, layers, crf, substeps=substeps)
    if renderer == "torch-batched":  # 40 samples per batch: the chunked path
        (x0, y0, x1, y1), _ = composite.swept_boxes(layers, SCENE_HW)[1][0]
        monkeypatch.setattr(render_torch, "BATCH_PIXELS", 40 * (x1 - x0) * (y1 - y0))
    return render_torch.render_moving_torch(scene, layers, crf, "cpu", substeps=substeps)


def _expected_blur(f: np.ndarray) -> np.ndarray:
    lc, lb = ref_decode("srgb", np.asarray(COLOUR) / 255), ref_decode("srgb", np.asarray(BACK) / 255)
    return 255 * ref_encode("srgb", f[:, None] * lc + (1 - f[:, None]) * lb)


@pytest.mark.parametrize("renderer", ["cpu", "torch", "torch-batched"])
@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_many_substeps_give_the_continuous_exposure(renderer, alpha, monkeypatch):
    blur, sharp, mask, _ = _render(64, alpha, renderer, monkeypatch)
    fine = np.linspace(0.0, N - 1, 400_001)  # the continuous exposure, numerically
    f = _coverage(fine, alpha)
    row = Y0 + 1  # a row inside the square: no vertical interpolation
    assert np.abs(mask[int(row)].astype(float) - 255 * f).max() <= 1.5
    assert np.abs(blur[int(row)].astype(float) - _expected_blur(f)).max() <= 1.5
    span = (np.arange(SCENE_HW[1]) > X0) & (np.arange(SCENE_HW[1]) < X0 + SPEED * (N - 1))
    assert (mask[int(row)][span] > 0).all()  # one smear, no gaps
    # The sharp frame is the middle pose, whatever K.
    s1 = _render(1, alpha, renderer, monkeypatch)[1]
    assert np.array_equal(sharp, s1)


@pytest.mark.parametrize("renderer", ["cpu", "torch"])
def test_one_substep_keeps_the_distinct_copies(renderer, monkeypatch):
    blur, _, mask, _ = _render(1, 1.0, renderer, monkeypatch)
    row = int(Y0 + 1)
    discrete = _coverage(np.arange(N, dtype=np.float64), 1.0)
    assert np.abs(mask[row].astype(float) - 255 * discrete).max() <= 1.0
    span = (np.arange(SCENE_HW[1]) > X0) & (np.arange(SCENE_HW[1]) < X0 + SPEED * (N - 1))
    assert (mask[row][span] == 0).sum() >= N - 2  # gaps between the copies: the staircase
    continuous = _coverage(np.linspace(0.0, N - 1, 40_001), 1.0)
    assert np.abs(mask[row].astype(float) - 255 * continuous).max() > 30  # 0 vs 0.15 in the gaps


@pytest.mark.parametrize("centres", [[(60.0, 50.0), (140.0, 70.0)], [(60.0, 50.0), (75.0, 60.0)]],
                         ids=["apart", "overlapping"])
def test_substep_renderers_agree(device, centres):
    """The summing path of the CPU renderer (one object per cluster), its compositing path (overlapping
    objects) and the torch twin give the same samples within 1 LSB."""
    crf = CRFS["gamma2.2"]
    scene = texture(120, 160, 3)
    layers = [(prem, trajectories.subsample(poses, 6)) for prem, poses in _layers(crf, 7, 7, centres)]
    results = [render.render_moving(scene, layers, crf, substeps=6),
               render.render_moving(scene, layers, crf),  # same samples, frame-by-frame compositing
               render_torch.render_moving_torch(scene, layers, crf, device, substeps=6)]
    b0, s0, m0, r0 = results[0]
    for b, s, m, r in results[1:]:
        assert r == r0
        for x, y in ((b, b0), (s, s0), (m, m0)):
            diff = np.abs(x.astype(int) - y.astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert np.array_equal(results[0][1], results[1][1])  # the sharp frame is composited the same way
    for b, s, m, _ in results:  # 43 samples: where no object passes, blur and sharp are the scene, exactly
        still = m == 0
        assert np.array_equal(b[still], scene[still]) and np.array_equal(s[still], scene[still])
        assert (m > 0).sum() > 500


# ======================================================================================================
# configuration, command line, end to end
# ======================================================================================================
@pytest.mark.parametrize("text", ["0", "-2", "2.5", "fast", ""])
def test_bad_substeps_is_one_error_line(tmp_path, text):
    assert_clean_error(invoke("local", "--voc", tmp_path, "--bg", tmp_path, tmp_path / "out", "--substeps", text),
                       "--substeps")


def test_substeps_in_the_config_and_the_fingerprint(tmp_path):
    cfg = LocalConfig(backgrounds=("bg",), out="out", voc="voc")
    for bad in (0, True, 2.0, "8", "AUTO"):
        with pytest.raises(ConfigError, match="--substeps"):
            dataclasses.replace(cfg, substeps=bad)
    assert cfg.substeps == "auto" and cfg.fingerprint()["substeps"] == "auto"  # the default, fingerprinted
    assert dataclasses.replace(cfg, substeps="auto").fingerprint() == cfg.fingerprint()
    assert dataclasses.replace(cfg, substeps=1).fingerprint()["substeps"] == 1
    assert dataclasses.replace(cfg, substeps=8).fingerprint()["substeps"] == 8


def test_a_run_without_the_option_is_substeps_auto(tmp_path):
    inputs = local_inputs(tmp_path)
    run_ok(*local_args(inputs, tmp_path / "plain", samples=4))
    run_ok(*local_args(inputs, tmp_path / "auto", samples=4), "--substeps", "auto")
    assert dataset_hashes(tmp_path / "plain") == dataset_hashes(tmp_path / "auto")


def _samples(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, dict]]:
    found = {}
    for shard in sorted(out.glob("*/*.h5")):
        with h5py.File(shard, "r") as f:
            for i, text in enumerate(f["meta"].asstr()[()]):
                meta = json.loads(text)
                found[meta["sample"]] = (f["blur"][i], f["sharp"][i], f["mask"][i], meta)
    return found


def test_substeps_only_change_how_finely_the_trajectory_is_sampled(tmp_path):
    inputs = local_inputs(tmp_path)
    base = LocalConfig(backgrounds=(str(inputs["bg"]),), out="", voc=str(inputs["voc"]), num_samples=6,
                       shard_size=3, seed=7, frames=(7, 9), backend="stream", translate=(4.0, 8.0))
    runs = {}
    for k in (1, 8, 64, "default"):  # the default is auto
        out = tmp_path / f"out_{k}"
        run_local(dataclasses.replace(base, out=str(out)) if k == "default" else
                  dataclasses.replace(base, out=str(out), substeps=k))
        runs[k] = _samples(out)
    assert sorted(runs[1]) == sorted(runs[8]) and len(runs[1]) == 6
    drawn = ("objects", "n_frames", "center", "background", "seed")
    for name, (blur1, sharp1, mask1, meta1) in runs[1].items():
        assert meta1["substeps"] == 1 and meta1["exposure_samples"] == meta1["n_frames"]
        _, sharp8, mask8, meta8 = runs[8][name]
        assert np.array_equal(sharp1, sharp8)  # the sharp frame and every draw are independent of K
        assert all(meta1[key] == meta8[key] for key in drawn)
        assert meta8["substeps"] == 8 and meta8["substep_px"] > 0
        assert meta8["exposure_samples"] == (meta8["n_frames"] - 1) * 8 + 1
        # a point's motion over a step is at most the sum of its motions over the step's 8 sub-steps
        assert meta8["substep_px"] < meta1["substep_px"] <= 8 * meta8["substep_px"] + 1e-3
        # the default (auto) vs 64: the same continuous exposure inside the masks; K = 1's copies differ from it
        blur64, _, mask64, _ = runs[64][name]
        blur_auto, sharp_auto, mask_auto, meta_auto = runs["default"][name]
        assert np.array_equal(sharp1, sharp_auto)
        assert meta_auto["substep_px"] <= 1.0 or meta_auto["substeps"] == trajectories.AUTO_SUBSTEPS_CAP
        inside = (mask64 > 0) | (mask_auto > 0)
        assert psnr_u8(blur_auto, blur64, inside) >= 40.0, (name, meta_auto["substeps"])
        assert psnr_u8(blur1, blur64, inside) < psnr_u8(blur_auto, blur64, inside) - 6.0
        assert ((mask1 > 0) <= (mask64 > 0)).all()  # the frames' footprint lies within the swept one
