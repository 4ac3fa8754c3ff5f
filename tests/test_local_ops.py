"""Pure building blocks of local blur synthesis: seeded trajectories and linear-light compositing.

Expectations come from analytic oracles written out here (hand-computed matrices, float64 textbook CRF
formulas, cv2.getRotationMatrix2D / cv2.warpAffine as the reference for OpenCV conventions), never from the
functions under test.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
from crf_oracle import CRFS, ref_decode, ref_encode

from blursynth.ops import composite, render
from blursynth.recipes import trajectories
from blursynth.recipes.trajectories import KINDS, Motion, MotionRanges
from blursynth.seeding import create_rng

# Chi-square critical values at p = 0.001 (the seeds are fixed, so each check is deterministic).
CHI2_999 = {1: 10.83, 3: 16.27, 5: 20.52, 6: 22.46}

def chi2(counts, expected) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), counts.shape)
    return float(((counts - expected) ** 2 / expected).sum())


def apply(pose: np.ndarray, pts) -> np.ndarray:
    """Hand application of a 2x3 affine map to (n, 2) points."""
    pts = np.asarray(pts, dtype=np.float64)
    return np.stack([pose[0, 0] * pts[:, 0] + pose[0, 1] * pts[:, 1] + pose[0, 2],
                     pose[1, 0] * pts[:, 0] + pose[1, 1] * pts[:, 1] + pose[1, 2]], axis=1)


def patch_centre(patch_size):
    h, w = patch_size
    return ((w - 1) / 2.0, (h - 1) / 2.0)


def centre(pose, patch_size) -> np.ndarray:
    return apply(pose, [patch_centre(patch_size)])[0]


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


# ======================================================================================================
# trajectories.placement / step_matrix / corners
# ======================================================================================================
@pytest.mark.parametrize(("patch_size", "ctr", "scale", "rotate"), [
    ((9, 13), (40.0, 25.5), 1.0, 0.0),
    ((9, 13), (40.0, 25.5), 1.2, 0.0),
    ((10, 7), (-3.25, 100.0), 0.7, 90.0),
    ((5, 5), (12.0, 8.0), 2.0, -37.5),
    ((16, 3), (0.0, 0.0), 1.5, 181.0),
])
def test_placement_centre_scale_and_opencv_rotation(patch_size, ctr, scale, rotate):
    h, w = patch_size
    pose = trajectories.placement(patch_size, ctr, scale, rotate)
    assert pose.shape == (2, 3) and pose.dtype == np.float64
    pc = patch_centre(patch_size)
    # The patch centre lands on ``ctr``.
    np.testing.assert_allclose(centre(pose, patch_size), ctr, atol=1e-9)
    # Corner distances from the centre scale by ``scale``.
    pts = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    src = np.hypot(pts[:, 0] - pc[0], pts[:, 1] - pc[1])
    dst = apply(pose, pts) - np.asarray(ctr)
    np.testing.assert_allclose(np.hypot(dst[:, 0], dst[:, 1]), scale * src, rtol=1e-12)
    # Same linear part as OpenCV; OpenCV's matrix keeps pc fixed, ours then moves pc to ctr.
    ref = cv2.getRotationMatrix2D(pc, rotate, scale)
    np.testing.assert_allclose(pose[:, :2], ref[:, :2], atol=1e-12)
    ref[:, 2] += np.asarray(ctr) - np.asarray(pc)
    np.testing.assert_allclose(pose, ref, atol=1e-9)


def test_placement_positive_rotation_turns_x_axis_up():
    pose = trajectories.placement((7, 9), (50.0, 50.0), 2.0, 90.0)
    # The patch's +x axis (1, 0) maps to screen "up" (y decreasing), length = scale.
    np.testing.assert_allclose(pose[:, :2] @ [1.0, 0.0], [0.0, -2.0], atol=1e-12)
    # And the patch's +y axis (down in the patch) to screen +x (right).
    np.testing.assert_allclose(pose[:, :2] @ [0.0, 1.0], [2.0, 0.0], atol=1e-12)


def test_corners_of_identity_placement_are_pixel_edges():
    h, w = 6, 11
    pose = trajectories.placement((h, w), ((w - 1) / 2, (h - 1) / 2), 1.0)
    np.testing.assert_array_equal(pose, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(trajectories.corners(pose, (h, w)),
                                  [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    # Translated and scaled by 2 about the patch centre: edges at centre +- 2 * (w / 2, h / 2).
    pose = trajectories.placement((h, w), (20.0, 30.0), 2.0)
    np.testing.assert_allclose(trajectories.corners(pose, (h, w)),
                               [[20 - w, 30 - h], [20 + w, 30 - h], [20 + w, 30 + h], [20 - w, 30 + h]], atol=1e-12)


MOTION = Motion(dx=2.5, dy=-1.25, scale=1.1, rotate=30.0)


def test_step_matrix_translate():
    m = trajectories.step_matrix("translate", MOTION, (7.0, -3.0))
    np.testing.assert_array_equal(m, [[1, 0, 2.5], [0, 1, -1.25], [0, 0, 1]])


def test_step_matrix_scale_keeps_pivot():
    pivot = (7.0, -3.0)
    m = trajectories.step_matrix("scale", MOTION, pivot)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(m @ [*pivot, 1.0], [*pivot, 1.0], atol=1e-12)
    # Any point moves away from the pivot by the factor.
    np.testing.assert_allclose(m @ [10.0, 1.0, 1.0], [7 + 1.1 * 3, -3 + 1.1 * 4, 1.0], atol=1e-12)


def test_step_matrix_rotate_keeps_pivot_and_turns_counter_clockwise_on_screen():
    pivot = (7.0, -3.0)
    m = trajectories.step_matrix("rotate", MOTION, pivot)
    np.testing.assert_allclose(m @ [*pivot, 1.0], [*pivot, 1.0], atol=1e-12)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    # pivot + (1, 0) -> pivot + (cos, -sin): a positive angle turns +x towards screen up.
    np.testing.assert_allclose(m @ [8.0, -3.0, 1.0], [7 + c, -3 - s, 1.0], atol=1e-12)
    np.testing.assert_allclose(m[:2, :2], cv2.getRotationMatrix2D(pivot, 30.0, 1.0)[:, :2], atol=1e-12)


def test_step_matrix_unknown_kind():
    with pytest.raises(ValueError, match="shear"):
        trajectories.step_matrix("shear", MOTION, (0.0, 0.0))


# ======================================================================================================
# trajectories.trajectory
# ======================================================================================================
PATCH = (9, 13)
START = trajectories.placement(PATCH, (50.0, 40.0), 1.2, 10.0)


def test_trajectory_shape_and_pose_zero():
    steps = [["translate"], ["scale", "rotate"], ["rotate"], ["translate", "scale", "rotate"]]
    poses = trajectories.trajectory(START, PATCH, MOTION, steps)
    assert poses.shape == (len(steps) + 1, 2, 3) and poses.dtype == np.float64
    np.testing.assert_array_equal(poses[0], START)
    assert trajectories.trajectory(START, PATCH, MOTION, []).shape == (1, 2, 3)


def test_translate_only_trajectory_moves_centre_by_exactly_dx_dy():
    motion = Motion(dx=1.0, dy=-2.0, scale=1.3, rotate=25.0)  # scale and rotate never used here
    start = translation(5.0, 7.0)
    poses = trajectories.trajectory(start, PATCH, motion, [["translate"]] * 6)
    for k, pose in enumerate(poses):
        np.testing.assert_array_equal(pose, translation(5.0 + k, 7.0 - 2.0 * k))


def test_centre_moves_only_on_steps_with_translation_last():
    # Scale and rotate act about the step's starting centre, so they leave it in place; a translation
    # applied last moves it by exactly (dx, dy).
    steps = [["translate"], ["rotate"], ["scale", "rotate", "translate"], ["scale"], ["rotate", "translate"],
             ["scale", "rotate"]]
    poses = trajectories.trajectory(START, PATCH, MOTION, steps)
    expected = np.asarray(centre(START, PATCH))
    for k, kinds in enumerate(steps):
        if kinds[-1] == "translate":
            expected = expected + [MOTION.dx, MOTION.dy]
        np.testing.assert_allclose(centre(poses[k + 1], PATCH), expected, atol=1e-9)


@pytest.mark.parametrize(("kinds", "displacement"), [
    (["translate", "scale"], (1.1 * 2.5, 1.1 * -1.25)),  # the translation is scaled about the start centre
    (["scale", "translate"], (2.5, -1.25)),
    # rotated by [[c, s], [-s, c]], 30 degrees
    (["translate", "rotate"], (math.cos(math.pi / 6) * 2.5 + math.sin(math.pi / 6) * -1.25,
                               -math.sin(math.pi / 6) * 2.5 + math.cos(math.pi / 6) * -1.25)),
    (["rotate", "translate"], (2.5, -1.25)),
])
def test_order_matters_for_the_centre(kinds, displacement):
    poses = trajectories.trajectory(START, PATCH, MOTION, [kinds])
    np.testing.assert_allclose(centre(poses[1], PATCH) - centre(START, PATCH), displacement, atol=1e-9)


def test_order_matters_for_the_whole_pose():
    """Hand composition: [translate, scale] = S_c @ T, [scale, translate] = T @ S_c (S_c about centre c)."""
    cx, cy = centre(START, PATCH)
    f, dx, dy = MOTION.scale, MOTION.dx, MOTION.dy
    t = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1.0]])
    s = np.array([[f, 0, cx - f * cx], [0, f, cy - f * cy], [0, 0, 1.0]])
    start3 = np.vstack([START, [0, 0, 1]])
    ts = trajectories.trajectory(START, PATCH, MOTION, [["translate", "scale"]])[1]
    st = trajectories.trajectory(START, PATCH, MOTION, [["scale", "translate"]])[1]
    np.testing.assert_allclose(ts, (s @ t @ start3)[:2], atol=1e-9)
    np.testing.assert_allclose(st, (t @ s @ start3)[:2], atol=1e-9)
    assert not np.allclose(ts, st)


def test_rotate_and_scale_commute_and_keep_the_centre():
    rs = trajectories.trajectory(START, PATCH, MOTION, [["rotate", "scale"]] * 3)
    sr = trajectories.trajectory(START, PATCH, MOTION, [["scale", "rotate"]] * 3)
    np.testing.assert_allclose(rs, sr, atol=1e-9)
    for pose in rs:
        np.testing.assert_allclose(centre(pose, PATCH), centre(START, PATCH), atol=1e-9)


def test_size_after_k_scale_steps_and_angle_after_k_rotations():
    h, w = PATCH
    start = trajectories.placement(PATCH, (60.0, 60.0), 1.0)
    motion = Motion(dx=3.0, dy=4.0, scale=1.05, rotate=-7.0)
    poses = trajectories.trajectory(start, PATCH, motion, [["scale"], ["translate", "scale"], ["rotate"],
                                                           ["scale", "rotate", "translate"]])
    n_scale = [0, 1, 2, 2, 3]
    n_rot = [0, 0, 0, 1, 2]
    for pose, ks, kr in zip(poses, n_scale, n_rot, strict=True):
        c = trajectories.corners(pose, PATCH)
        top, left = c[1] - c[0], c[3] - c[0]
        np.testing.assert_allclose(np.hypot(*top), w * 1.05**ks, rtol=1e-12)
        np.testing.assert_allclose(np.hypot(*left), h * 1.05**ks, rtol=1e-12)
        a = math.radians(-7.0 * kr)
        np.testing.assert_allclose(top / np.hypot(*top), [math.cos(a), -math.sin(a)], atol=1e-12)


# ======================================================================================================
# trajectories.draw_steps / draw_motion
# ======================================================================================================
def test_draw_steps_are_nonempty_subsets_uniform_in_subset_and_order():
    rng = create_rng(1234, "test_local_ops", "draw_steps")
    steps = trajectories.draw_steps(rng, 14000)
    assert len(steps) == 14000
    subsets, orders = {}, {}
    for kinds in steps:
        assert isinstance(kinds, list) and kinds
        assert len(set(kinds)) == len(kinds) and set(kinds) <= set(KINDS)
        key = frozenset(kinds)
        subsets[key] = subsets.get(key, 0) + 1
        orders.setdefault(key, {})
        orders[key][tuple(kinds)] = orders[key].get(tuple(kinds), 0) + 1
    all_subsets = [frozenset(c) for r in (1, 2, 3) for c in itertools.combinations(KINDS, r)]
    assert set(subsets) == set(all_subsets)
    counts = [subsets[s] for s in all_subsets]
    assert chi2(counts, len(steps) / 7) < CHI2_999[6], counts
    for key in all_subsets:
        if len(key) == 1:
            continue
        perms = list(itertools.permutations(sorted(key)))
        per = [orders[key].get(p, 0) for p in perms]
        assert chi2(per, subsets[key] / len(perms)) < CHI2_999[len(perms) - 1], (key, per)


def test_draw_steps_reproducible():
    a = trajectories.draw_steps(create_rng(5, "steps"), 50)
    b = trajectories.draw_steps(create_rng(5, "steps"), 50)
    c = trajectories.draw_steps(create_rng(6, "steps"), 50)
    assert a == b and a != c


def draw_many(ranges: MotionRanges, n: int, key: str) -> list[Motion]:
    rng = create_rng(777, "test_local_ops", key)
    return [trajectories.draw_motion(rng, ranges) for _ in range(n)]


def test_draw_motion_ranges_and_isotropic_direction():
    ranges = MotionRanges(translate=(1.0, 6.0), scale=(0.97, 1.03), rotate=(-3.0, 3.0))
    motions = draw_many(ranges, 4000, "isotropy")
    dx = np.array([m.dx for m in motions])
    dy = np.array([m.dy for m in motions])
    speed = np.hypot(dx, dy)
    assert speed.min() >= 1.0 - 1e-12 and speed.max() <= 6.0 + 1e-12
    # Speed uniform in [1, 6]: mean 3.5 (std of the mean ~0.023).
    assert abs(speed.mean() - 3.5) < 0.1
    cos, sin = dx / speed, dy / speed
    assert abs(cos.mean()) < 0.05 and abs(sin.mean()) < 0.05
    quadrants = np.bincount((dx < 0).astype(int) * 2 + (dy < 0).astype(int), minlength=4)
    assert chi2(quadrants, len(motions) / 4) < CHI2_999[3], quadrants
    rot = np.array([m.rotate for m in motions])
    assert rot.min() >= -3.0 and rot.max() <= 3.0 and abs(rot.mean()) < 0.15
    scale = np.array([m.scale for m in motions])
    assert scale.min() >= 0.97 and scale.max() <= 1.03
    for m in motions[:5]:
        assert all(isinstance(x, float) for x in (m.dx, m.dy, m.scale, m.rotate))


def test_draw_motion_scale_is_log_uniform():
    # With a wide range, log-uniform (mean log = 0) and uniform (mean log ~ 0.155) are easy to tell apart.
    motions = draw_many(MotionRanges(scale=(0.5, 2.0)), 4000, "log-uniform")
    log_s = np.log([m.scale for m in motions])
    assert log_s.min() >= math.log(0.5) - 1e-12 and log_s.max() <= math.log(2.0) + 1e-12
    assert abs(log_s.mean()) < 0.03  # std of the mean ~ ln 4 / sqrt(12 * 4000) = 0.0063
    # Uniform in log: four equal bins of log(scale) are equally full (half of the draws are below 1).
    bins = np.histogram(log_s, bins=4, range=(math.log(0.5), math.log(2.0)))[0]
    assert chi2(bins, len(motions) / 4) < CHI2_999[3], bins


def test_draw_motion_reproducible_and_fixed_number_of_draws():
    ranges = MotionRanges()
    a = trajectories.draw_motion(create_rng(3, "m"), ranges)
    b = trajectories.draw_motion(create_rng(3, "m"), ranges)
    c = trajectories.draw_motion(create_rng(4, "m"), ranges)
    assert a == b and a != c
    # Degenerate ranges do not change how many numbers are drawn: later draws do not shift.
    r1, r2 = create_rng(3, "m"), create_rng(3, "m")
    trajectories.draw_motion(r1, ranges)
    fixed = trajectories.draw_motion(r2, MotionRanges(translate=(2.0, 2.0), scale=(1.0, 1.0), rotate=(0.0, 0.0)))
    assert r1.random() == r2.random()
    assert fixed.scale == 1.0 and fixed.rotate == 0.0 and math.isclose(math.hypot(fixed.dx, fixed.dy), 2.0)


# ======================================================================================================
# composite: premultiply, boxes, warp, over, clusters
# ======================================================================================================
@pytest.mark.parametrize("name", ["gamma2.2", "srgb"])
def test_premultiply(name):
    crf = CRFS[name]
    rng = create_rng(8, "prem", name)
    rgb = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
    alpha = rng.random((5, 7)).astype(np.float32)
    alpha[0, 0], alpha[0, 1] = 0.0, 1.0
    out = composite.premultiply(rgb, alpha, crf)
    assert out.shape == (5, 7, 4) and out.dtype == np.float32
    ref = ref_decode(name, rgb / 255.0) * alpha[..., None].astype(np.float64)
    np.testing.assert_allclose(out[..., :3], ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[0, 0, :3], 0.0)
    np.testing.assert_array_equal(out[0, 1, :3], ref_decode(name, rgb[0, 1] / 255.0).astype(np.float32))


def random_poses(n: int, patch_size, frame_hw, key: str):
    rng = create_rng(11, "poses", key)
    h, w = frame_hw
    return [trajectories.placement(patch_size, (rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)),
                                   rng.uniform(0.5, 2.5), rng.uniform(-180.0, 180.0)) for _ in range(n)]


def support(pose, patch_size, canvas_hw, offset=(0, 0)):
    """(x0, y0, x1, y1) of the non-zero pixels of a ones patch warped by OpenCV (canvas shifted by offset)."""
    m = pose.copy()
    m[0, 2] += offset[0]
    m[1, 2] += offset[1]
    ones = np.ones(patch_size, np.float32)
    canvas = cv2.warpAffine(ones, m, (canvas_hw[1], canvas_hw[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    ys, xs = np.nonzero(canvas)
    assert xs.size, "the test pose must touch the canvas"
    assert xs.min() > 0 and ys.min() > 0 and xs.max() < canvas_hw[1] - 1 and ys.max() < canvas_hw[0] - 1
    return (int(xs.min()) - offset[0], int(ys.min()) - offset[1], int(xs.max()) + 1 - offset[0],
            int(ys.max()) + 1 - offset[1])


def test_warped_box_covers_the_bilinear_support():
    patch, frame = (9, 13), (96, 96)
    for pose in random_poses(60, patch, frame, "support"):
        x0, y0, x1, y1 = support(pose, patch, frame)
        bx0, by0, bx1, by1 = composite.warped_box(pose, patch, frame)
        assert bx0 <= x0 and by0 <= y0 and bx1 >= x1 and by1 >= y1, ((bx0, by0, bx1, by1), (x0, y0, x1, y1))
        # ... and is not much larger than it.
        assert x0 - bx0 <= 3 and y0 - by0 <= 3 and bx1 - x1 <= 3 and by1 - y1 <= 3


def test_warped_box_with_integer_pose_and_unit_scale():
    # Pixel centres 10..22 x 20..28: bilinear support in the open interval (9, 23) x (19, 29).
    box = composite.warped_box(translation(10.0, 20.0), (9, 13), (100, 100))
    x0, y0, x1, y1 = box
    assert x0 <= 10 and y0 <= 20 and x1 >= 23 and y1 >= 29
    assert x0 >= 8 and y0 >= 18 and x1 <= 25 and y1 <= 31


def test_warped_box_is_clipped_to_the_frame():
    patch, frame, margin = (9, 13), (40, 50), 60
    big = (frame[0] + 2 * margin, frame[1] + 2 * margin)
    for ctr in [(0.0, 0.0), (49.0, 39.0), (-4.0, 20.0), (25.0, 43.0), (53.0, -3.0)]:
        for scale, rot in [(1.0, 0.0), (1.7, 33.0), (0.6, -120.0)]:
            pose = trajectories.placement(patch, ctr, scale, rot)
            sx0, sy0, sx1, sy1 = support(pose, patch, big, (margin, margin))
            clipped = (max(sx0, 0), max(sy0, 0), min(sx1, frame[1]), min(sy1, frame[0]))
            box = composite.warped_box(pose, patch, frame)
            assert box is not None
            bx0, by0, bx1, by1 = box
            assert 0 <= bx0 < bx1 <= frame[1] and 0 <= by0 < by1 <= frame[0], box
            assert bx0 <= clipped[0] and by0 <= clipped[1] and bx1 >= clipped[2] and by1 >= clipped[3]


def test_warped_box_none_outside_the_frame():
    patch, frame = (9, 13), (40, 50)
    for ctr in [(-30.0, 20.0), (90.0, 20.0), (25.0, -25.0), (25.0, 70.0), (-40.0, -40.0)]:
        assert composite.warped_box(trajectories.placement(patch, ctr, 1.2, 45.0), patch, frame) is None


def test_warp_integer_translation_is_exact():
    rng = create_rng(9, "warp")
    prem = rng.random((6, 8, 4)).astype(np.float32)
    pose = translation(13.0, 7.0)
    box = composite.warped_box(pose, (6, 8), (40, 40))
    x0, y0, x1, y1 = box
    out = composite.warp(prem, pose, box)
    assert out.shape == (y1 - y0, x1 - x0, 4) and out.dtype == np.float32
    expected = np.zeros_like(out)
    expected[7 - y0 : 13 - y0, 13 - x0 : 21 - x0] = prem
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("dx", "dy"), [(0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
def test_warp_half_pixel_translation_is_the_bilinear_average(dx, dy):
    rng = create_rng(10, "warp-half")
    h, w = 6, 8
    prem = rng.random((h, w, 4)).astype(np.float32)
    pose = translation(13.0 + dx, 7.0 + dy)
    box = composite.warped_box(pose, (h, w), (40, 40))
    x0, y0, _, _ = box
    out = composite.warp(prem, pose, box).astype(np.float64)
    # Float64 bilinear reference: frame pixel (X, Y) samples the patch at (X - 13 - dx, Y - 7 - dy), zero outside.
    padded = np.zeros((h + 4, w + 4, 4))
    padded[2:-2, 2:-2] = prem
    ref = np.zeros_like(out)
    for yy in range(out.shape[0]):
        for xx in range(out.shape[1]):
            sx, sy = xx + x0 - 13.0 - dx, yy + y0 - 7.0 - dy
            if not (-2 <= sx <= w + 0.5 and -2 <= sy <= h + 0.5):
                continue
            ix, iy = math.floor(sx), math.floor(sy)
            fx, fy = sx - ix, sy - iy
            p = padded[iy + 2 : iy + 4, ix + 2 : ix + 4]
            ref[yy, xx] = ((1 - fy) * ((1 - fx) * p[0, 0] + fx * p[0, 1])
                           + fy * ((1 - fx) * p[1, 0] + fx * p[1, 1]))
    # 1/32 px quantisation of OpenCV: 0.5 is exact, so only float32 rounding remains.
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert np.count_nonzero(out[..., 3]) == (h + (dy > 0)) * (w + (dx > 0))


def test_warp_into_box_equals_full_frame_warp():
    patch, frame = (9, 13), (64, 64)
    rng = create_rng(12, "warp-full")
    prem = rng.random((*patch, 4)).astype(np.float32)
    for pose in random_poses(10, patch, frame, "warp-full"):
        box = composite.warped_box(pose, patch, frame)
        x0, y0, x1, y1 = box
        full = cv2.warpAffine(prem, pose, (frame[1], frame[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0))
        np.testing.assert_allclose(composite.warp(prem, pose, box), full[y0:y1, x0:x1], atol=1e-5)
        outside = full.copy()
        outside[y0:y1, x0:x1] = 0
        assert not outside.any()


def test_over_formula_and_uncovered():
    rng = create_rng(13, "over")
    frame = rng.random((5, 6, 3)).astype(np.float32)
    colour = rng.random((5, 6, 3))
    a = rng.random((5, 6)).astype(np.float32)
    layer = np.concatenate([(colour * a[..., None]).astype(np.float32), a[..., None]], axis=-1)
    uncovered = rng.random((5, 6)).astype(np.float32)
    f64, u64 = frame.astype(np.float64), uncovered.astype(np.float64)
    ret = composite.over(frame, layer, uncovered)
    assert ret is None
    np.testing.assert_allclose(frame, layer[..., :3] + (1 - a[..., None].astype(np.float64)) * f64,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(uncovered, (1 - a.astype(np.float64)) * u64, rtol=1e-6, atol=1e-7)


def test_over_alpha_zero_and_one_are_exact():
    rng = create_rng(14, "over-exact")
    frame = rng.random((4, 4, 3)).astype(np.float32)
    before = frame.copy()
    transparent = np.zeros((4, 4, 4), np.float32)
    uncovered = np.ones((4, 4), np.float32)
    composite.over(frame, transparent, uncovered)
    assert frame.tobytes() == before.tobytes() and (uncovered == 1.0).all()
    opaque = np.concatenate([rng.random((4, 4, 3)).astype(np.float32), np.ones((4, 4, 1), np.float32)], axis=-1)
    composite.over(frame, opaque, uncovered)
    assert frame.tobytes() == np.ascontiguousarray(opaque[..., :3]).tobytes()
    assert (uncovered == 0.0).all()
    # In place on a view of a larger frame: only the view changes.
    big = rng.random((6, 6, 3)).astype(np.float32)
    ref = big.copy()
    composite.over(big[1:5, 2:6], opaque)
    ref[1:5, 2:6] = opaque[..., :3]
    np.testing.assert_array_equal(big, ref)


def test_union_and_overlaps():
    assert composite.union([]) is None and composite.union([None, None]) is None
    assert composite.union([(1, 2, 5, 6), None, (0, 4, 3, 9)]) == (0, 2, 5, 9)
    assert composite.overlaps((0, 0, 4, 4), (3, 3, 6, 6))
    assert not composite.overlaps((0, 0, 4, 4), (4, 0, 8, 4))  # exclusive ends: touching is not overlapping
    assert not composite.overlaps((0, 0, 4, 4), (0, 4, 4, 8))
    assert not composite.overlaps((0, 0, 4, 4), (5, 5, 8, 8))
    assert composite.overlaps((0, 0, 10, 10), (2, 2, 3, 3))  # containment


def test_clusters_disjoint_transitive_none_and_sorted():
    a, b, c = (0, 0, 4, 4), (3, 0, 8, 4), (7, 0, 12, 4)  # a-b and b-c overlap, a and c do not
    assert not composite.overlaps(a, c)
    far, touching = (50, 50, 60, 60), (12, 0, 14, 4)  # touching c's right edge only
    boxes = [c, None, far, a, touching, b]
    out = composite.clusters(boxes)
    assert out == [((0, 0, 12, 4), [0, 3, 5]), ((50, 50, 60, 60), [2]), ((12, 0, 14, 4), [4])]
    assert composite.clusters([]) == [] and composite.clusters([None]) == []
    # Disjoint boxes stay one cluster each, in item order.
    assert composite.clusters([(10, 0, 12, 2), (0, 0, 2, 2)]) == [((10, 0, 12, 2), [0]), ((0, 0, 2, 2), [1])]


# ======================================================================================================
# render.render_moving / render.paste_static
# ======================================================================================================
def expected_mix(name: str, c, b, k: np.ndarray, n: int) -> np.ndarray:
    """round(255 g((k lin(c) + (n - k) lin(b)) / n)) per channel, float64; guarded away from .5 ties."""
    lc, lb = ref_decode(name, np.asarray(c) / 255.0), ref_decode(name, np.asarray(b) / 255.0)
    val = 255.0 * ref_encode(name, (k[..., None] * lc + (n - k[..., None]) * lb) / n)
    assert (np.abs(val - np.floor(val) - 0.5) > 0.01).all(), "pick colours away from a rounding tie"
    return np.rint(val).astype(np.uint8)


@pytest.mark.parametrize("name", ["gamma2.2", "srgb"])
@pytest.mark.parametrize("n", [5, 7])  # with 7 frames, 255 k / n is not an integer: the mask must round
def test_render_moving_square_gives_the_linear_blur_ramp(name, n):
    crf = CRFS[name]
    s = 4  # square side
    height, width, x0, y0 = 14, 26, 6, 5
    c, b = (200, 35, 120), (40, 180, 90)  # no k / n mix lies within 0.03 of a rounding tie
    scene = np.empty((height, width, 3), np.uint8)
    scene[:] = b
    prem = composite.premultiply(np.full((s, s, 3), c, np.uint8), np.ones((s, s), np.float32), crf)
    start = trajectories.placement((s, s), (x0 + (s - 1) / 2, y0 + (s - 1) / 2), 1.0)
    np.testing.assert_array_equal(start, translation(x0, y0))
    poses = trajectories.trajectory(start, (s, s), Motion(1.0, 0.0, 1.0, 0.0), [["translate"]] * (n - 1))
    for j in range(n):
        np.testing.assert_array_equal(poses[j], translation(x0 + j, y0))

    before = scene.copy()
    blur, sharp, mask, regions = render.render_moving(scene, [(prem, poses)], crf)
    np.testing.assert_array_equal(scene, before)  # the scene is not modified
    assert blur.dtype == sharp.dtype == mask.dtype == np.uint8
    assert blur.shape == sharp.shape == scene.shape and mask.shape == (height, width)
    assert len(regions) == 1

    # k(y, x): number of frames covering the pixel (square at x0 + j .. x0 + j + s - 1 in frame j).
    ys, xs = np.mgrid[0:height, 0:width]
    k = np.zeros((height, width), np.int64)
    for j in range(n):
        k += (xs >= x0 + j) & (xs <= x0 + j + s - 1) & (ys >= y0) & (ys < y0 + s)
    row = k[y0 + 1]
    ramp = {5: [0, 1, 2, 3, 4, 4, 3, 2, 1, 0], 7: [0, 1, 2, 3, 4, 4, 4, 4, 3, 2, 1, 0]}[n]
    assert row.tolist()[x0 - 1 : x0 + n + s] == ramp

    np.testing.assert_array_equal(blur, expected_mix(name, c, b, k, n))
    np.testing.assert_array_equal(mask, np.floor(255.0 * k / n + 0.5).astype(np.uint8))  # no ties: 255 k / n
    assert (mask[k > 0] >= 1).all() and (mask[k == 0] == 0).all()
    mid_sharp = np.empty_like(scene)
    mid_sharp[:] = b
    mid = (n - 1) // 2
    mid_sharp[y0 : y0 + s, x0 + mid : x0 + mid + s] = c
    np.testing.assert_array_equal(sharp, mid_sharp)
    # Where no frame covers a pixel, blur and sharp are the scene itself, bit for bit.
    np.testing.assert_array_equal(blur[k == 0], scene[k == 0])
    np.testing.assert_array_equal(sharp[k == 0], scene[k == 0])


def test_render_moving_mask_is_at_least_one_for_faint_coverage():
    crf = CRFS["gamma2.2"]
    n, s = 5, 3
    scene = np.full((12, 12, 3), 77, np.uint8)
    alpha = np.full((s, s), 0.001, np.float32)  # 255 * 0.001 = 0.255 would round to 0
    prem = composite.premultiply(np.full((s, s, 3), 250, np.uint8), alpha, crf)
    poses = np.stack([translation(4.0, 4.0)] * n)
    blur, sharp, mask, _ = render.render_moving(scene, [(prem, poses)], crf)
    expected = np.zeros((12, 12), np.uint8)
    expected[4:7, 4:7] = 1
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(blur[expected == 0], scene[expected == 0])
    np.testing.assert_array_equal(sharp[expected == 0], scene[expected == 0])


@pytest.mark.parametrize("alpha_value", [1.0, 0.5])
def test_paste_static(alpha_value):
    name, crf = "gamma2.2", CRFS["gamma2.2"]
    c, b, s = (220, 15, 140), (30, 170, 95), 4
    scene = np.empty((16, 20, 3), np.uint8)
    scene[:] = b
    before = scene.copy()
    prem = composite.premultiply(np.full((s, s, 3), c, np.uint8), np.full((s, s), alpha_value, np.float32), crf)
    render.paste_static(scene, prem, translation(7.0, 5.0), crf)
    inside = np.zeros((16, 20), bool)
    inside[5 : 5 + s, 7 : 7 + s] = True
    if alpha_value == 1.0:
        np.testing.assert_array_equal(scene[inside], np.broadcast_to(np.uint8(c), (inside.sum(), 3)))
    else:  # half coverage: the mean of object and background in linear light
        expected = expected_mix(name, c, b, np.array(1), 2)
        np.testing.assert_array_equal(scene[inside], np.broadcast_to(expected, (inside.sum(), 3)))
    np.testing.assert_array_equal(scene[~inside], before[~inside])
    # Fully outside: nothing happens.
    again = before.copy()
    render.paste_static(again, prem, translation(-40.0, 5.0), crf)
    np.testing.assert_array_equal(again, before)
