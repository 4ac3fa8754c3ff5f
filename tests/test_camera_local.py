"""Issue 19 in ``local``: ``sat_mask`` against the clipped-sample count and ``--camera rsblur``.

The oracle scene: a white background (every scene pixel at code 255, so clipped) and one moving object of one
flat colour below 255 in every channel. A sample is then clipped at a pixel exactly where the object does not
cover it; which pixels the object surely covers or surely misses in each sample is recomputed from the poses in
the meta with test_local's own geometry (``strict_coverage``), never by the renderer. Pixels that an object
edge crosses in some sample are left out (partial alpha).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest
from objects_data import Shape, write_voc
from test_local import strict_coverage

from blursynth.config import LocalConfig
from blursynth.objects.store import ObjectStore
from blursynth.recipes.local import run_local
from blursynth.recipes.trajectories import subsample

H, W = 72, 96
COLOUR = (240, 200, 30)
N = 7


@pytest.fixture(scope="module")
def white(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("white")
    (tmp / "bg").mkdir()
    assert cv2.imwrite(str(tmp / "bg" / "white.png"), np.full((H, W, 3), 255, np.uint8))
    voc = write_voc(tmp / "VOC2012", {"2008_000009": [Shape("rect", (30, 20, 60, 46), 8)]}, size=(H, W), band=1.0)
    flat = np.empty((H, W, 3), np.uint8)
    flat[:] = COLOUR
    assert cv2.imwrite(str(voc / "JPEGImages" / "2008_000009.jpg"), cv2.cvtColor(flat, cv2.COLOR_RGB2BGR))
    return SimpleNamespace(bg=tmp / "bg", voc=voc, tmp=tmp)


def run(white, name: str, **kw) -> list[dict]:
    args = dict(backgrounds=(str(white.bg),), out=str(white.tmp / name), voc=str(white.voc), moving_objects=1,
                static_objects=(0, 0), num_samples=3, frames=(N, N), translate=(7.0, 9.0), scale=(1.0, 1.0),
                rotate=(-2.0, 2.0), seed=4, device="cpu")
    args.update(kw)
    run_local(LocalConfig(**args))
    rows = []
    for path in sorted((white.tmp / name / "train").glob("*.h5")):
        with h5py.File(path, "r") as f:
            for i, meta in enumerate(f["meta"].asstr()[()]):
                rows.append({"meta": json.loads(meta), **{k: f[k][i] for k in f if k != "meta"}})
    return rows


@pytest.mark.parametrize(("substeps", "backend"), [(1, "stream"), (3, "stream"), (3, "torch")])
def test_local_sat_mask_is_the_uncovered_fraction_of_the_samples(white, substeps, backend):
    rows = run(white, f"sat{substeps}{backend}", substeps=substeps, backend=backend, sat_mask=True)
    alpha = np.array(ObjectStore(white.tmp / f"sat{substeps}{backend}" / "objects.h5")[0].alpha)
    checked = 0
    for row in rows:
        (obj,) = [o for o in row["meta"]["objects"] if o["role"] == "moving"]
        poses = np.asarray(obj["poses"], np.float64).reshape(N, 2, 3)
        poses = subsample(poses, substeps) if substeps > 1 else poses
        inside, outside = strict_coverage(alpha, poses, (H, W))
        m = len(poses)
        # a sample surely outside the object is clipped, one surely inside is not; one on an edge may be either
        low = np.rint(255.0 * outside.sum(axis=0) / m).astype(np.uint8)
        high = np.rint(255.0 * (m - inside.sum(axis=0)) / m).astype(np.uint8)
        known = low == high
        for c in range(3):
            sat = row["sat_mask"][..., c]
            np.testing.assert_array_equal(sat[known], low[known])
            assert ((low <= sat) & (sat <= high)).all()
        # fractions other than 0 and 1 pinned to within 3 samples (exactly at --substeps 1)
        edges = m - inside.sum(axis=0) - outside.sum(axis=0)
        checked += ((low > 0) & (high < 255) & (edges <= (0 if substeps == 1 else 3))).sum()
        assert (row["sat_mask"][row["mask"] == 0] == 255).all()
    assert checked > 500
    for row, plain in zip(rows, run(white, f"plain{substeps}{backend}", substeps=substeps, backend=backend),
                          strict=True):  # the mask is extra: the images are those of a run without it
        np.testing.assert_array_equal(row["blur"], plain["blur"])
        np.testing.assert_array_equal(row["sharp"], plain["sharp"])


def test_local_camera_renders_blur_and_leaves_sharp_and_mask(white):
    plain = run(white, "plain", substeps=2)
    cam = run(white, "cam", substeps=2, camera="rsblur")
    again = run(white, "cam2", substeps=2, camera="rsblur")
    other = run(white, "cam3", substeps=2, camera="rsblur", camera_jpeg=(60, 60), camera_bayer=("BGGR",),
                layout=("h5", "gopro"))  # local's GOPRO tree has no plain-mean blur/: the camera is allowed there
    for p, c, a, o in zip(plain, cam, again, other, strict=True):
        np.testing.assert_array_equal(c["sharp"], p["sharp"])
        np.testing.assert_array_equal(c["mask"], p["mask"])
        assert "camera" not in p["meta"] and "sat_mask" not in p
        assert c["meta"]["camera"]["camera"] == "rsblur" and c["meta"]["camera"]["seed"]
        assert (c["blur"] != p["blur"]).any()
        np.testing.assert_array_equal(c["blur"], a["blur"])  # same command, same bytes
        np.testing.assert_array_equal(c["sat_mask"], a["sat_mask"])
        assert o["meta"]["camera"]["jpeg_quality"] == 60 and o["meta"]["camera"]["pattern"] == "BGGR"
    tree = white.tmp / "cam3" / "train" / "local"
    assert len(list((tree / "sat_mask").glob("*.png"))) == len(list((tree / "blur_gamma").glob("*.png"))) == 3
    draws = [c["meta"]["camera"]["seed"] for c in cam]
    assert len(set(draws)) == len(draws)  # one draw per sample
