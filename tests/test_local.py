"""`blursynth local` (local blur synthesis, LODE/BladeNet Sec. 4.1) end to end, against analytic oracles.

Inputs are written under tmp_path: textured background PNGs in three sub-folders ("sequences"), a
format-faithful VOC 2012 root (palette PNGs with a 255 void band, see ``objects_data``), a COCO JSON, and for
the physics oracles a *uniform* setup: a grey background and a VOC image that is one flat colour, so that an
object's rendered colour is known exactly wherever its alpha is 1 (and the background wherever it is 0).

Geometry is recomputed from the poses stored in the meta with our own code (inverse affine mapping of pixel
centres, ``cv2.warpAffine`` of the patch alpha read from ``OUT/objects.h5``), never by re-running the recipe.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import run_ok
from objects_data import Shape, texture, write_coco, write_voc

from blursynth.config import LocalConfig
from blursynth.objects.store import ObjectStore
from blursynth.recipes.local import run_local
from blursynth.recipes.trajectories import MotionRanges, draw_motion
from blursynth.seeding import create_rng

H, W = 96, 128  # background size
CROP = (88, 120)
VOC_IMAGES = {
    "2008_000001": [Shape("rect", (20, 20, 52, 50), 8), Shape("disc", (92, 50, 17.0), 12)],  # cat, dog
    "2008_000002": [Shape("disc", (40, 45, 18.0), 15), Shape("rect", (70, 20, 112, 62), 7)],  # person, car
    "2008_000003": [Shape("rect", (30, 30, 84, 72), 3)],  # bird
}
VOC_CLASSES = {"cat", "dog", "person", "car", "bird"}
COCO_CLASSES = {"person", "car", "dog"}
COCO_USABLE = {11, 12, 13, 21}  # 14 is a crowd region, 15 tiny, 16 truncated (see objects_data.write_coco)

BG_GREY = 90
OBJ_COLOUR = (240, 200, 30)
UNIFORM_RECT = Shape("rect", (40, 30, 76, 62), 8)  # 36 x 32 px, 43 x 38 once scaled by 1.2


# -- helpers -----------------------------------------------------------------------------------------------


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_backgrounds(root: Path, groups: int = 3, per_group: int = 2) -> Path:
    for g in range(groups):
        for i in range(per_group):
            write_png(root / f"seq{g:03d}" / f"{i:08d}.png", texture(H, W, seed=50 + 10 * g + i))
    return root


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load(out: Path) -> list[dict]:
    """Every sample of OUT, train then val, in shard order: meta, blur, sharp, mask and the shard file."""
    rows = []
    for split in ("train", "val"):
        for path in sorted((out / split).glob("*.h5")):
            with h5py.File(path, "r") as f:
                metas = [json.loads(m) for m in f["meta"].asstr()[()]]
                blur, sharp, mask = f["blur"][()], f["sharp"][()], f["mask"][()]
            for i, meta in enumerate(metas):
                rows.append({"meta": meta, "blur": blur[i], "sharp": sharp[i], "mask": mask[i],
                             "shard": f"{split}/{path.name}"})
    return rows


def read_h5(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in ("blur", "sharp", "mask")}
        data["meta"] = list(f["meta"].asstr()[()])
        data["attrs"] = dict(f.attrs)
    return data


def background_crop(meta: dict, bg_root: Path) -> np.ndarray:
    """The raw background pixels of a sample: key is "<input folder name>/<relative path>"."""
    bg = meta["background"]
    name, rel = bg["key"].split("/", 1)
    assert name == bg_root.name
    image = read_rgb(bg_root / rel)
    assert list(image.shape[:2]) == bg["size"]
    y0, x0, h, w = bg["crop"]
    return image[y0 : y0 + h, x0 : x0 + w]


def lin(v):
    return (np.asarray(v, np.float64) / 255.0) ** 2.2


def pose_of(row) -> np.ndarray:
    return np.asarray(row, np.float64).reshape(2, 3)


def patch_points(patch_size) -> np.ndarray:
    """Patch coordinates ``(5, 2)`` of its corner pixel centres and its centre (pixel centres at integers)."""
    h, w = patch_size
    return np.array([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1], [(w - 1) / 2, (h - 1) / 2]])


def on_frame(pose: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Frame coordinates of patch points under a 2x3 pose: ``A p + t``."""
    return pts @ np.asarray(pose)[:, :2].T + np.asarray(pose)[:, 2]


def centre_on_frame(pose: np.ndarray, patch_size) -> np.ndarray:
    return on_frame(pose, patch_points(patch_size))[-1]


def tracked_points(o: dict) -> np.ndarray:
    """Where a moving object's corners and centre are in every frame, from its recorded start, scale and
    per-step motion alone: ``(N, 5, 2)``.

    Independent of the recipe's matrices: points are complex numbers ``z = x - i y`` (y flipped to point up),
    so that a rotation counter-clockwise on screen by d degrees (OpenCV's sign) is ``z * exp(i d)``. Frame 0
    puts the patch centre at ``start``, scaled by ``scale`` about it; each step then applies its kinds in the
    recorded order, scale and rotation about the centre as it was at the start of the step.
    """
    local = patch_points(o["patch_size"])
    rel = (local[:, 0] - local[-1, 0]) - 1j * (local[:, 1] - local[-1, 1])
    z = complex(o["start"][0], -o["start"][1]) + o["scale"] * rel
    frames = [z]
    for step in o["steps"]:
        pivot = z[-1]
        for s in step:
            if s["kind"] == "translate":
                z = z + complex(s["dx"], -s["dy"])
            elif s["kind"] == "scale":
                z = pivot + s["factor"] * (z - pivot)
            else:
                z = pivot + np.exp(1j * math.radians(s["degrees"])) * (z - pivot)
        frames.append(z)
    return np.stack([np.stack([f.real, -f.imag], axis=-1) for f in frames])


def warp_alpha(alpha: np.ndarray, pose: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The patch alpha under ``pose`` on the frame grid (our own resampling, borders are 0)."""
    return cv2.warpAffine(alpha.astype(np.float32), np.asarray(pose, np.float64), (hw[1], hw[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def strict_coverage(alpha: np.ndarray, poses: np.ndarray, hw: tuple[int, int]):
    """Per frame, which frame pixels are surely inside the opaque interior and surely outside the object.

    A frame pixel's centre is mapped back into the patch with the inverse pose; bilinear sampling (to within
    OpenCV's 1/32 px) reads the 2 x 2 patch pixels around it (3 x 3 when the position is that close to a pixel
    centre), so "inside" asks alpha == 1 on all of them and "outside" alpha == 0 (the patch is 0 beyond its
    border).

    Returns:
        ``inside``, ``outside``: ``(N, H, W) bool``.
    """
    pad = 2
    inside_p = np.pad(alpha == 1.0, pad, constant_values=False)
    outside_p = np.pad(alpha == 0.0, pad, constant_values=True)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    inside, outside = [], []
    for pose in poses:
        a, t = pose[:, :2], pose[:, 2]
        inv = np.linalg.inv(a)
        u = inv[0, 0] * (xx - t[0]) + inv[0, 1] * (yy - t[1]) + pad
        v = inv[1, 0] * (xx - t[0]) + inv[1, 1] * (yy - t[1]) + pad
        # The patch pixels bilinear sampling may read: floor(u') and floor(u') + 1 for |u' - u| <= 1/32.
        ulo, uhi = np.floor(u - 1 / 16).astype(int), np.floor(u + 1 / 16).astype(int) + 1
        vlo, vhi = np.floor(v - 1 / 16).astype(int), np.floor(v + 1 / 16).astype(int) + 1
        ins = np.ones(hw, bool)
        outs = np.ones(hw, bool)
        for uu in (ulo, ulo + 1, uhi):
            for vv in (vlo, vlo + 1, vhi):
                valid = (uu >= 0) & (vv >= 0) & (uu < inside_p.shape[1]) & (vv < inside_p.shape[0])
                uc, vc = np.clip(uu, 0, inside_p.shape[1] - 1), np.clip(vv, 0, inside_p.shape[0] - 1)
                ins &= valid & inside_p[vc, uc]
                outs &= ~valid | outside_p[vc, uc]
        inside.append(ins)
        outside.append(outs)
    return np.stack(inside), np.stack(outside)


# -- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inputs")
    bg = write_backgrounds(tmp / "bg")
    voc = write_voc(tmp / "VOC2012", VOC_IMAGES, size=(H, W))
    return SimpleNamespace(bg=bg, voc=voc, tmp=tmp)


def base_config(inputs, out: Path, **kw) -> LocalConfig:
    args = dict(backgrounds=(str(inputs.bg),), out=str(out), voc=str(inputs.voc), num_samples=40,
                static_objects=(0, 2), crop=CROP, shard_size=5, seed=3)
    args.update(kw)
    return LocalConfig(**args)


@pytest.fixture(scope="module")
def main(inputs, tmp_path_factory):
    """40 samples, 2 moving and 0-2 static objects each, random crops of textured backgrounds."""
    cfg = base_config(inputs, tmp_path_factory.mktemp("main") / "out")
    run_local(cfg)
    return SimpleNamespace(cfg=cfg, out=Path(cfg.out), rows=load(Path(cfg.out)))


@pytest.fixture(scope="module")
def uniform(tmp_path_factory):
    """A uniform grey background and a VOC root whose only image is one flat colour (object and all)."""
    tmp = tmp_path_factory.mktemp("uniform")
    bg = tmp / "plain"
    write_png(bg / "grey.png", np.full((H, W, 3), BG_GREY, np.uint8))
    # A 1 px void band: a crisp edge, so that pixels a 4 px/step object sweeps are surely in or out each frame.
    voc = write_voc(tmp / "VOC2012", {"2008_000009": [UNIFORM_RECT]}, size=(H, W), band=1.0)
    flat = np.empty((H, W, 3), np.uint8)
    flat[:] = OBJ_COLOUR
    assert cv2.imwrite(str(voc / "JPEGImages" / "2008_000009.jpg"), cv2.cvtColor(flat, cv2.COLOR_RGB2BGR))
    return SimpleNamespace(bg=bg, voc=voc, tmp=tmp)


def uniform_run(uniform, name: str, **kw) -> SimpleNamespace:
    args = dict(backgrounds=(str(uniform.bg),), out=str(uniform.tmp / name), voc=str(uniform.voc),
                moving_objects=1, static_objects=(0, 0))
    args.update(kw)
    cfg = LocalConfig(**args)
    run_local(cfg)
    store = ObjectStore(Path(cfg.out) / "objects.h5")
    assert len(store) == 1
    patch = store[0]
    colour = patch.rgb[patch.alpha > 0]
    assert (colour == colour[0]).all(), "the flat JPEG must decode to one colour"
    assert (patch.alpha == 1.0).sum() > 400, "the object needs an opaque interior"
    return SimpleNamespace(cfg=cfg, rows=load(Path(cfg.out)), alpha=np.array(patch.alpha),
                           obj=colour[0].astype(np.float64))


@pytest.fixture(scope="module")
def translating(uniform):
    """Pure translation at 4 px/step, N = 9 frames (``--substeps 1``, revision 1's discrete exposure; the default
    continuous one is tested in test_local_substeps.py and test_local_revision.py): coverage of every pixel is
    known from the poses."""
    return uniform_run(uniform, "translate", num_samples=6, translate=(4.0, 4.0), scale=(1.0, 1.0),
                       rotate=(0.0, 0.0), frames=(9, 9), seed=5, substeps=1)


# -- 1. mask semantics on textured data ---------------------------------------------------------------------
def test_blur_equals_sharp_exactly_where_the_mask_is_zero(main):
    rows = main.rows
    assert len(rows) == 40
    differ = total = 0
    for r in rows:
        blur, sharp, mask = r["blur"], r["sharp"], r["mask"]
        assert blur.shape == sharp.shape == (*CROP, 3) and mask.shape == CROP
        assert blur.dtype == sharp.dtype == mask.dtype == np.uint8
        still = mask == 0
        np.testing.assert_array_equal(blur[still], sharp[still], err_msg=r["meta"]["sample"])
        assert mask.any(), r["meta"]["sample"]
        # Outside the composited regions nothing at all is touched.
        inside = np.zeros(CROP, bool)
        for x0, y0, x1, y1 in r["meta"]["regions"]:
            inside[y0:y1, x0:x1] = True
        assert not mask[~inside].any()
        assert r["meta"]["mask_fraction"] == pytest.approx(np.count_nonzero(mask) / mask.size)
        moving = mask > 0
        differ += int((blur[moving] != sharp[moving]).any(axis=-1).sum())
        total += int(moving.sum())
    assert differ / total > 0.5, f"only {differ}/{total} pixels of mask > 0 differ between blur and sharp"


# -- 2. static objects --------------------------------------------------------------------------------------
def test_static_objects_are_pasted_and_not_blurred(inputs, tmp_path):
    cfg = base_config(inputs, tmp_path / "out", num_samples=10, static_objects=(2, 2))
    run_local(cfg)
    store = ObjectStore(tmp_path / "out" / "objects.h5")
    rows = load(tmp_path / "out")
    in_footprint = differs = 0
    for r in rows:
        meta = r["meta"]
        statics = [o for o in meta["objects"] if o["role"] == "static"]
        assert len(statics) == 2 and sum(o["role"] == "moving" for o in meta["objects"]) == 2
        raw = background_crop(meta, inputs.bg)
        footprint = np.zeros(CROP, np.float32)
        for o in statics:
            alpha = store[o["bank_index"]].alpha
            assert list(alpha.shape) == o["patch_size"]
            pose = pose_of(sum(o["pose"], []))
            np.testing.assert_allclose(pose[:, :2], cfg.object_scale * np.eye(2), atol=1e-6)
            footprint = np.maximum(footprint, warp_alpha(alpha, pose, CROP))
        still = r["mask"] == 0
        opaque = (footprint > 0.99) & still
        np.testing.assert_array_equal(r["blur"][opaque], r["sharp"][opaque])
        in_footprint += int(opaque.sum())
        differs += int((r["sharp"][opaque] != raw[opaque]).any(axis=-1).sum())
        # Away from the static objects (and the moving ones) both images are the raw background crop.
        far = (cv2.dilate((footprint > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0) & still
        assert far.sum() > 1000
        np.testing.assert_array_equal(r["sharp"][far], raw[far], err_msg=meta["sample"])
        np.testing.assert_array_equal(r["blur"][far], raw[far], err_msg=meta["sample"])
    assert in_footprint > 500
    assert differs / in_footprint > 0.9, f"only {differs}/{in_footprint} static-object pixels differ from the bg"


# -- 3. the sharp image is the middle pose ------------------------------------------------------------------
def estimated_alpha(image: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Coverage read back from an image of the flat object over the flat grey background (linear light)."""
    diff = lin(obj) - lin(BG_GREY)
    channels = np.flatnonzero(np.abs(diff) > 0.2)
    assert len(channels) >= 2
    est = (lin(image[..., channels]) - lin(BG_GREY)) / diff[channels]
    return est.mean(axis=-1)


def centroid(weights: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]]
    total = weights.sum()
    return np.array([(weights * xx).sum() / total, (weights * yy).sum() / total])


def test_sharp_shows_the_middle_pose_and_the_mask_spans_the_trajectory(uniform):
    run = uniform_run(uniform, "mid", num_samples=10, seed=11)  # default motion ranges: all three kinds
    checked = discriminated = 0
    for r in run.rows:
        meta = r["meta"]
        (o,) = meta["objects"]
        poses = np.asarray(o["poses"], np.float64).reshape(-1, 2, 3)
        n = len(poses)
        mid = (n - 1) // 2
        expected = warp_alpha(run.alpha, poses[mid], (H, W))
        est = estimated_alpha(r["sharp"], run.obj)
        # Nothing but the object in the sharp frame: the grey background, exactly, away from its footprint.
        away = cv2.dilate((expected > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
        assert (r["sharp"][away] == BG_GREY).all(), meta["sample"]
        assert np.abs(est - expected).max() < 0.05, meta["sample"]
        if expected.sum() > 100:
            checked += 1
            assert np.linalg.norm(centroid(np.clip(est, 0, 1)) - centroid(expected)) < 1.0, meta["sample"]
            first = warp_alpha(run.alpha, poses[0], (H, W))
            if first.sum() > 100 and np.linalg.norm(centroid(first) - centroid(expected)) > 3:
                discriminated += 1  # the oracle can tell the middle pose from the first one
                assert np.linalg.norm(centroid(np.clip(est, 0, 1)) - centroid(first)) > 2
            h, w = o["patch_size"]
            if all(0 <= c[0] <= W - 1 and 0 <= c[1] <= H - 1 for c in on_frame(poses[mid], patch_points((h, w)))):
                assert np.linalg.norm(centroid(expected) - centre_on_frame(poses[mid], (h, w))) < 1.0
        # The mask is the swept footprint: > 0 wherever some frame shows the object, 0 well outside it.
        swept = np.max([warp_alpha(run.alpha, p, (H, W)) for p in poses], axis=0)
        assert (r["mask"][swept > 0.01] > 0).all(), meta["sample"]
        outside = cv2.dilate((swept > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
        assert (r["mask"][outside] == 0).all(), meta["sample"]
        for pose in (poses[0], poses[-1]):
            cx, cy = centre_on_frame(pose, o["patch_size"])
            if 0 <= round(cx) < W and 0 <= round(cy) < H:
                assert r["mask"][round(cy), round(cx)] > 0, meta["sample"]
    assert checked >= 6 and discriminated >= 3


# -- 4 and 12. blur and mask physics under pure translation ------------------------------------------------
def coverage_cases(run) -> list[dict]:
    cases = []
    for r in run.rows:
        (o,) = r["meta"]["objects"]
        poses = np.asarray(o["poses"], np.float64).reshape(-1, 2, 3)
        n = len(poses)
        assert n == 9
        np.testing.assert_allclose(poses[:, :, :2], np.broadcast_to(1.2 * np.eye(2), (n, 2, 2)), atol=1e-9)
        inside, outside = strict_coverage(run.alpha, poses, (H, W))
        assert not (inside & outside).any()
        clean = (inside | outside).all(axis=0)
        cases.append({"row": r, "n": n, "k": inside.sum(axis=0), "clean": clean, "mid": inside[(n - 1) // 2],
                      "mid_out": outside[(n - 1) // 2]})
    return cases


def test_blur_is_the_linear_mean_of_the_covered_frames(translating):
    k_seen = set()
    partial = 0
    for c in coverage_cases(translating):
        r, n, k, clean = c["row"], c["n"], c["k"], c["clean"]
        mix = (k[..., None] * lin(translating.obj) + (n - k[..., None]) * lin(BG_GREY)) / n
        oracle = np.rint(255 * mix ** (1 / 2.2))
        err = np.abs(r["blur"].astype(np.float64) - oracle)[clean]
        assert err.max() <= 1, f"{r['meta']['sample']}: blur is off the linear mean by {err.max()} LSB"
        # The sharp frame: the object colour where the middle pose covers the pixel, the grey elsewhere.
        mid, mid_out = c["mid"], c["mid_out"]
        np.testing.assert_array_equal(r["sharp"][mid], np.broadcast_to(translating.obj, (int(mid.sum()), 3)))
        assert (r["sharp"][mid_out] == BG_GREY).all()
        k_seen |= set(np.unique(k[clean]).tolist())
        partial += int((clean & (k > 0) & (k < n)).sum())
    assert partial > 200 and len(k_seen - {0, 9}) >= 3 and 9 in k_seen and 0 in k_seen, (partial, k_seen)


def test_mask_is_the_fraction_of_the_exposure_covered(translating):
    full = 0
    for c in coverage_cases(translating):
        r, n, k, clean = c["row"], c["n"], c["k"], c["clean"]
        mask = r["mask"].astype(np.int64)
        expected = np.rint(255 * k / n)
        assert np.abs(mask - expected)[clean].max() <= 1, r["meta"]["sample"]
        assert (mask[clean & (k > 0)] > 0).all() and (mask[clean & (k == 0)] == 0).all()
        full += int((r["mask"] == 255).sum())
        assert ((r["mask"] == 255) <= (k == n) | ~clean).all()  # never 255 where a frame surely misses
    assert full > 50, "an opaque object covering a pixel for the whole exposure must give mask 255"


# -- 5. reproducibility -------------------------------------------------------------------------------------
def assert_same_samples(a: list[dict], b: list[dict]) -> None:
    assert [r["meta"] for r in a] == [r["meta"] for r in b]
    for x, y in zip(a, b, strict=True):
        for key in ("blur", "sharp", "mask"):
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{x['meta']['sample']} {key}")


def test_same_config_same_bytes_other_seed_other_samples_shard_size_irrelevant(main, tmp_path):
    again = dataclasses.replace(main.cfg, out=str(tmp_path / "again"))
    run_local(again)
    assert_same_samples(main.rows, load(tmp_path / "again"))

    resharded = dataclasses.replace(main.cfg, out=str(tmp_path / "by3"), shard_size=3)
    run_local(resharded)
    rows3 = load(tmp_path / "by3")
    assert len({r["shard"] for r in rows3}) == 14 and len({r["shard"] for r in main.rows}) == 8
    assert_same_samples(main.rows, rows3)

    other = dataclasses.replace(main.cfg, out=str(tmp_path / "seed4"), seed=4)
    run_local(other)
    rows4 = load(tmp_path / "seed4")
    assert len(rows4) == len(main.rows)
    same = sum(np.array_equal(x["blur"], y["blur"]) for x, y in zip(main.rows, rows4, strict=True))
    assert same == 0
    assert all(x["meta"]["objects"] != y["meta"]["objects"] for x, y in zip(main.rows, rows4, strict=True))


# -- 6. no preferred direction ------------------------------------------------------------------------------
def quadrant_fractions(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    q = (dx > 0).astype(int) + 2 * (dy > 0).astype(int)
    return np.bincount(q, minlength=4) / len(q)


def assert_mean_zero(values, what: str, centre: float = 0.0) -> None:
    values = np.asarray(values, np.float64)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - centre) < 4 * se, f"{what}: mean {values.mean():.4g} vs {centre:.4g} (se {se:.3g})"


def test_drawn_motions_have_no_preferred_direction():
    ranges = MotionRanges()
    motions = [draw_motion(create_rng(7, k), ranges) for k in range(2000)]
    dx = np.array([m.dx for m in motions])
    dy = np.array([m.dy for m in motions])
    assert_mean_zero(dx, "dx")
    assert_mean_zero(dy, "dy")
    np.testing.assert_allclose(quadrant_fractions(dx, dy), 0.25, atol=0.04)
    speed = np.hypot(dx, dy)
    assert speed.min() >= 1.0 - 1e-9 and speed.max() <= 6.0 + 1e-9
    assert_mean_zero(speed, "speed", 3.5)  # uniform speed in [1, 6]
    log_scale = np.log([m.scale for m in motions])
    lo, hi = math.log(0.97), math.log(1.03)
    assert log_scale.min() >= lo - 1e-12 and log_scale.max() <= hi + 1e-12
    assert_mean_zero(log_scale, "log scale", (lo + hi) / 2)  # log-uniform
    rotate = np.array([m.rotate for m in motions])
    assert_mean_zero(rotate, "rotate")
    assert (rotate > 0).mean() == pytest.approx(0.5, abs=0.04)
    # Symmetric in log: approaching and receding balance exactly.
    sym = [draw_motion(create_rng(8, k), MotionRanges(scale=(1 / 1.05, 1.05))) for k in range(2000)]
    assert_mean_zero(np.log([m.scale for m in sym]), "log scale (symmetric range)")
    assert (np.array([m.scale for m in sym]) > 1).mean() == pytest.approx(0.5, abs=0.04)


def test_real_samples_move_every_way(main):
    moving = [o for r in main.rows for o in r["meta"]["objects"] if o["role"] == "moving"]
    assert len(moving) == 80
    dx = np.array([o["motion"]["dx"] for o in moving])
    dy = np.array([o["motion"]["dy"] for o in moving])
    assert_mean_zero(dx, "meta dx")
    assert_mean_zero(dy, "meta dy")
    np.testing.assert_allclose(quadrant_fractions(dx, dy), 0.25, atol=0.15)
    # Where the objects actually went over the exposure (first to last pose): not only down/right (LODE).
    shift = []
    for o in moving:
        poses = np.asarray(o["poses"], np.float64).reshape(-1, 2, 3)
        size = tuple(o["patch_size"])
        shift.append(centre_on_frame(poses[-1], size) - centre_on_frame(poses[0], size))
    shift = np.array(shift)
    assert_mean_zero(shift[:, 0], "net x displacement")
    assert_mean_zero(shift[:, 1], "net y displacement")
    for axis in (0, 1):
        assert 0.2 < (shift[:, axis] > 0).mean() < 0.8
    assert ((shift[:, 0] > 0) & (shift[:, 1] > 0)).mean() < 0.45


# -- 7. meta ------------------------------------------------------------------------------------------------
def test_meta_describes_and_regenerates_every_sample(main, inputs):
    cfg = main.cfg
    store = ObjectStore(main.out / "objects.h5")
    statics = set()
    for pos, r in enumerate(main.rows):
        m = r["meta"]
        assert (m["split"], m["index"], m["sample"], m["name"]) == ("train", pos, f"train#{pos:06d}", f"{pos:06d}")
        assert r["shard"] == f"train/{pos // cfg.shard_size:05d}.h5"
        assert m["recipe"] == "local" and m["seed"] == cfg.seed and m["crf"] == "gamma" and m["gamma"] == 2.2
        n = m["n_frames"]
        assert n % 2 == 1 and cfg.frames[0] <= n <= cfg.frames[1] and m["center"] == (n - 1) // 2
        bg = m["background"]
        rel = Path(bg["key"]).relative_to(inputs.bg.name)
        assert (inputs.bg / rel).is_file() and bg["group"] == f"{inputs.bg.name}/{rel.parent.as_posix()}"
        y0, x0, h, w = bg["crop"]
        assert (h, w) == CROP and 0 <= y0 <= H - h and 0 <= x0 <= W - w and bg["size"] == [H, W]
        roles = [o["role"] for o in m["objects"]]
        assert roles.count("moving") == cfg.moving_objects
        assert cfg.static_objects[0] <= roles.count("static") <= cfg.static_objects[1]
        assert roles == sorted(roles, key=lambda x: x != "static")  # static ones are pasted first
        statics.add(roles.count("static"))
        for o in m["objects"]:
            rec = store.records[o["bank_index"]]
            assert (o["source"], o["instance_id"], o["class"]) == (rec["source"], rec["instance_id"], rec["class_name"])
            # the image relative to the VOC root (revision 2): independent of how --voc was spelled
            assert o["class"] in VOC_CLASSES and (inputs.voc / o["source"]).is_file()
            assert Path(o["source"]).parent == Path("JPEGImages")
            assert o["patch_size"] == rec["shape"] and o["scale"] == cfg.object_scale
            if o["role"] == "static":
                continue
            assert len(o["poses"]) == n and all(len(p) == 6 for p in o["poses"])
            assert len(o["steps"]) == n - 1
            motion = o["motion"]
            for step in o["steps"]:
                names = [s["kind"] for s in step]
                assert names and len(set(names)) == len(names) and set(names) <= {"translate", "scale", "rotate"}
                for s in step:
                    params = {k: v for k, v in s.items() if k != "kind"}
                    assert params == {"translate": {"dx": motion["dx"], "dy": motion["dy"]},
                                      "scale": {"factor": motion["scale"]},
                                      "rotate": {"degrees": motion["rotate"]}}[s["kind"]]
            # Every recorded pose moves the patch exactly as its recorded motion says (the oracle above).
            poses = np.asarray(o["poses"], np.float64).reshape(n, 2, 3)
            expected = tracked_points(o)
            got = np.stack([on_frame(pose, patch_points(o["patch_size"])) for pose in poses])
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)  # poses are stored to 6 decimals
            np.testing.assert_allclose(got[0, -1], o["start"], atol=1e-4, rtol=0)
    assert statics == {0, 1, 2}


# -- 8. GOPRO layout ----------------------------------------------------------------------------------------
def test_gopro_layout_pngs_equal_the_h5_arrays(inputs, tmp_path):
    out = tmp_path / "out"
    result = run_ok("local", out, "--bg", inputs.bg, "--voc", inputs.voc, "--num-samples", 5, "--layout",
                    "h5,gopro", "--crop", f"{CROP[0]}x{CROP[1]}", "--shard-size", 3, "--seed", 1)
    assert "wrote 5 samples (train 5) in 2 shards" in result.output
    rows = load(out)
    assert len(rows) == 5
    root = out / "train" / "local"
    assert sorted(p.name for p in root.iterdir()) == ["blur_gamma", "mask", "sharp"]
    for folder in ("blur_gamma", "mask", "sharp"):
        assert sorted(p.name for p in (root / folder).iterdir()) == [f"{i:06d}.png" for i in range(5)]
    for r in rows:
        name = f"{r['meta']['name']}.png"
        np.testing.assert_array_equal(read_rgb(root / "blur_gamma" / name), r["blur"])
        np.testing.assert_array_equal(read_rgb(root / "sharp" / name), r["sharp"])
        mask = cv2.imread(str(root / "mask" / name), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, r["mask"])


def test_cli_options_reach_the_samples(inputs, tmp_path):
    out = tmp_path / "out"
    run_ok("local", out, "--bg", inputs.bg, "--voc", inputs.voc, "--num-samples", 4, "--static-objects", 2,
           "--moving-objects", 1, "--frames", 9, "--translate", "3:3", "--scale", "1:1", "--rotate", "0:0",
           "--crop", "80x100", "--object-scale", 1.5, "--seed", 2, "-q")
    rows = load(out)
    assert len(rows) == 4
    for r in rows:
        m = r["meta"]
        assert r["blur"].shape == (80, 100, 3) and m["n_frames"] == 9
        roles = [o["role"] for o in m["objects"]]
        assert roles == ["static", "static", "moving"]
        o = m["objects"][-1]
        assert o["scale"] == 1.5 and math.hypot(o["motion"]["dx"], o["motion"]["dy"]) == pytest.approx(3.0)
        assert (o["motion"]["scale"], o["motion"]["rotate"]) == (1.0, 0.0)


# -- 9. resume ----------------------------------------------------------------------------------------------
def test_resume_rewrites_only_the_lost_shard(inputs, tmp_path):
    cfg = base_config(inputs, tmp_path / "out", num_samples=10, shard_size=4)
    run_local(cfg)
    out = Path(cfg.out)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert [p.relative_to(out).as_posix() for p in files] == [
        "objects.h5", *(f"train/{s:05d}{ext}" for s in range(3) for ext in (".h5", "_stats.json"))]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    lost_h5, lost_stats = out / "train" / "00001.h5", out / "train" / "00001_stats.json"
    original = read_h5(lost_h5)
    lost_h5.unlink()
    lost_stats.unlink()
    # Make any rewrite of the other files visible even on coarse-mtime file systems.
    os.utime(out / "objects.h5", ns=(1_000_000_000, 1_000_000_000))
    for p in files:
        if p not in (lost_h5, lost_stats) and p.name != "objects.h5":
            os.utime(p, ns=(2_000_000_000, 2_000_000_000))
    run_local(cfg)
    redone = read_h5(lost_h5)
    for key in ("blur", "sharp", "mask", "meta"):
        np.testing.assert_array_equal(redone[key], original[key], err_msg=key)
    assert redone["attrs"].keys() == original["attrs"].keys()
    assert lost_h5.read_bytes() == before[lost_h5][1]
    assert json.loads(lost_stats.read_text()) == json.loads(before[lost_stats][1])
    assert (out / "objects.h5").stat().st_mtime_ns == 1_000_000_000, "the object store was rebuilt"
    for p in files:
        if p not in (lost_h5, lost_stats) and p.name != "objects.h5":
            assert p.stat().st_mtime_ns == 2_000_000_000, f"{p.name} was rewritten"
            assert p.read_bytes() == before[p][1]


# -- 10. COCO -----------------------------------------------------------------------------------------------
def test_coco_objects(inputs, tmp_path):
    coco = write_coco(tmp_path / "coco")
    cfg = base_config(inputs, tmp_path / "out", voc=None, coco=str(coco.json_path), coco_images=str(coco.images_dir),
                      num_samples=8)
    run_local(cfg)
    rows = load(tmp_path / "out")
    assert len(rows) == 8
    objects = [o for r in rows for o in r["meta"]["objects"]]
    classes = {o["class"] for o in objects}
    assert classes <= COCO_CLASSES and len(classes) >= 2
    assert {o["instance_id"] for o in objects} <= COCO_USABLE
    file_names = {p.relative_to(coco.images_dir).as_posix() for p in coco.image_paths.values()}
    assert {o["source"] for o in objects} <= file_names  # the JSON's file_name, relative to --coco-images
    for r in rows:
        np.testing.assert_array_equal(r["blur"][r["mask"] == 0], r["sharp"][r["mask"] == 0])


def test_voc_and_coco_together(inputs, tmp_path):
    coco = write_coco(tmp_path / "coco")
    cfg = base_config(inputs, tmp_path / "out", coco=str(coco.json_path), coco_images=str(coco.images_dir),
                      num_samples=12)
    run_local(cfg)
    store = ObjectStore(tmp_path / "out" / "objects.h5")
    voc_jpegs, coco_names = Path("JPEGImages"), {p.name for p in coco.image_paths.values()}
    from_voc = [r for r in store.records if Path(r["source"]).parent == voc_jpegs]
    from_coco = [r for r in store.records if r["source"] in coco_names]
    assert len(from_voc) == 5 and {r["instance_id"] for r in from_coco} == COCO_USABLE
    assert len(store) == len(from_voc) + len(from_coco)
    assert {r["class_name"] for r in from_voc} == VOC_CLASSES
    assert {r["class_name"] for r in from_coco} == COCO_CLASSES
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["objects"]["count"] == len(store)
    used = {o["source"] in coco_names for r in load(tmp_path / "out") for o in r["meta"]["objects"]}
    assert used == {False, True}  # objects of both datasets


# -- 11. val split ------------------------------------------------------------------------------------------
def test_val_split_uses_its_own_background_groups_and_objects(inputs, tmp_path):
    cfg = base_config(inputs, tmp_path / "out", num_samples=10, val_fraction=0.3, shard_size=4)
    run_local(cfg)
    rows = load(tmp_path / "out")
    by = {s: [r["meta"] for r in rows if r["meta"]["split"] == s] for s in ("train", "val")}
    assert len(by["train"]) == 7 and len(by["val"]) == 3
    assert [m["index"] for m in by["val"]] == [0, 1, 2]
    groups = {s: {m["background"]["group"] for m in by[s]} for s in by}
    assert groups["train"] and groups["val"] and not groups["train"] & groups["val"]
    assert groups["train"] | groups["val"] <= {f"bg/seq{g:03d}" for g in range(3)}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["backgrounds"]["groups"] == {"train": 2, "val": 1}
    assert len(groups["val"]) == 1
    # Objects are split by source image as well: val objects are unseen in train.
    sources = {s: {o["source"] for m in by[s] for o in m["objects"]} for s in by}
    assert sources["train"] and sources["val"] and not sources["train"] & sources["val"]
    # A val sample is the same whatever the number of train samples (pure function of seed, split, index).
    more = dataclasses.replace(cfg, out=str(tmp_path / "more"), num_samples=20)
    run_local(more)
    val_more = [r for r in load(tmp_path / "more") if r["meta"]["split"] == "val"]
    val = [r for r in rows if r["meta"]["split"] == "val"]
    assert_same_samples(val, val_more[: len(val)])


# -- the object store is read from the output of *this* run -------------------------------------------------
def test_overwrite_with_other_objects_uses_the_new_objects(inputs, uniform, tmp_path):
    out = tmp_path / "out"
    common = dict(backgrounds=(str(inputs.bg),), out=str(out), num_samples=3, crop=CROP, moving_objects=1,
                  static_objects=(0, 0))
    run_local(LocalConfig(voc=str(inputs.voc), **common))
    assert {o["source"] for r in load(out) for o in r["meta"]["objects"]} <= {
        f"JPEGImages/{i}.jpg" for i in VOC_IMAGES}
    run_local(LocalConfig(voc=str(uniform.voc), overwrite=True, **common))
    store = ObjectStore(out / "objects.h5")
    assert [r["source"] for r in store.records] == ["JPEGImages/2008_000009.jpg"]
    sources = {o["source"] for r in load(out) for o in r["meta"]["objects"]}
    assert sources == {"JPEGImages/2008_000009.jpg"}, sources


def test_backgrounds_read_ahead_give_the_bytes_of_reading_in_turn(inputs, main, tmp_path, monkeypatch):
    """run_local_unit decodes backgrounds in a reader thread and renders samples in another, ahead of the one
    being written; a sample is a pure function of (seed, split, index), so doing each in turn gives the same
    shards."""
    import blursynth.recipes.local as local_recipe

    calls = []

    def in_turn(items, depth):
        calls.append(depth)
        return iter(items)

    monkeypatch.setattr(local_recipe, "prefetch", in_turn)
    cfg = base_config(inputs, tmp_path / "out")
    run_local(cfg)
    assert set(calls) == {1, local_recipe.BACKGROUNDS_AHEAD}  # the render stage and the background reader
    compared = 0
    for shard in sorted(main.out.rglob("*.h5")):
        if shard.name == "objects.h5":
            continue
        compared += 1
        a, b = read_h5(shard), read_h5(tmp_path / "out" / shard.relative_to(main.out))
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{shard.name}:{key}")
    assert compared == 8  # 40 samples in shards of 5


def test_synthesize_reports_the_skipped_draws_of_a_background_read_ahead(inputs, tmp_path):
    from blursynth.errors import SourceError
    from blursynth.recipes.local_sample import BackgroundDraw, synthesize

    bg = SimpleNamespace(path="/x/bad.png", key="bad.png")
    error = SourceError("/x/bad.png", "no decodable background after 8 draws")
    draw = BackgroundDraw(bg, None, 0, 0, ({"path": "/x/a.png", "reason": "r1"}, {"path": "/x/b.png", "reason": "r2"}),
                          error)
    seen = []
    cfg = base_config(inputs, tmp_path / "out")
    with pytest.raises(SourceError, match="no decodable background"):
        synthesize(cfg, SimpleNamespace(size=(8, 8)), "train", 0, None, np.arange(1), seen.append, background=draw)
    assert seen == [{"path": "/x/a.png", "reason": "r1"}, {"path": "/x/b.png", "reason": "r2"}]
