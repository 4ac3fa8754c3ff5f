"""The torch renderer of `blursynth local` against the OpenCV one, and the backend in the fingerprint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from objects_data import texture

from blursynth.ops import composite
from blursynth.ops.crf import create_crf
from blursynth.ops.render import render_moving
from blursynth.ops.render_torch import render_moving_torch
from blursynth.recipes.trajectories import MotionRanges, draw_motion, draw_steps, placement, trajectory
from blursynth.seeding import create_rng


def _layers(crf, seed: int, n: int, centres):
    rng = create_rng(seed, "layers")
    layers = []
    for k, centre in enumerate(centres):
        h, w = 50 + 10 * k, 40 + 7 * k
        yy, xx = np.mgrid[0:h, 0:w]
        alpha = np.clip(min(h, w) / 2 - 2 - np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2), 0, 1).astype(np.float32)
        poses = trajectory(placement((h, w), centre, 1.2), (h, w), draw_motion(rng, MotionRanges()),
                           draw_steps(rng, n - 1))
        layers.append((composite.premultiply(texture(h, w, seed + k), alpha, crf), poses))
    return layers


@pytest.mark.parametrize("crf_name", ["gamma", "srgb", "linear"])
@pytest.mark.parametrize("centres", [[(60.0, 50.0), (140.0, 70.0)], [(60.0, 50.0), (75.0, 60.0)],
                                     [(2.0, 3.0), (158.0, 117.0)]], ids=["apart", "overlapping", "edges"])
def test_torch_renderer_matches_opencv(device, crf_name, centres):
    crf = create_crf(crf_name, 2.2)
    scene = texture(120, 160, 3)
    layers = _layers(crf, 7, 11, centres)
    b1, s1, m1, r1 = render_moving(scene, layers, crf)
    b2, s2, m2, r2 = render_moving_torch(scene, layers, crf, device)
    assert r1 == r2
    for a, b in ((b1, b2), (s1, s2), (m1, m2)):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1  # OpenCV snaps positions to 1/32 px, grid_sample does not
        assert (diff > 0).mean() < 0.01
    still = m2 == 0
    assert np.array_equal(b2[still], s2[still]) and np.array_equal(b2[still], scene[still])
    assert (m2 > 0).sum() > 500 and not np.array_equal(b2[~still], s2[~still])


def test_backend_is_resolved_into_the_fingerprint(tmp_path):
    import cv2
    from objects_data import Shape, write_voc

    from blursynth.config import LocalConfig
    from blursynth.recipes.local import run_local

    voc = write_voc(tmp_path / "VOC2012", {"2007_000001": [Shape("disc", (60.3, 45.7, 20.0), 8)]}, size=(96, 128))
    bg = tmp_path / "bg"
    bg.mkdir()
    for i in range(2):
        cv2.imwrite(str(bg / f"{i}.png"), texture(80, 100, i))
    outs = {}
    for backend in ("auto", "torch"):
        out = tmp_path / f"out_{backend}"
        run_local(LocalConfig(backgrounds=(str(bg),), out=str(out), voc=str(voc), num_samples=3, device="cpu",
                              backend=backend))
        outs[backend] = json.loads((out / "manifest.json").read_text())["fingerprint"]["backend"]
    assert outs == {"auto": "stream", "torch": "torch"}  # no GPU here: auto renders with OpenCV
