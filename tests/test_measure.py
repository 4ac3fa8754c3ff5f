"""Measurable motion (blursynth.flow.measure): texture against noise, forward-backward consistency, and the
targets of issue 16 on clips that make flow methods invent motion.

Expectations are analytic (noise of known sigma, edges of known direction, flows of known round trip) or the
true motion of the fixtures (a static scene moves 0 px; a texture shifted by (1.3, -0.6) px moves 1.43 px).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from motion_fixtures import OBJECT_SIDE, add_noise, flat_noise_frames, low_texture_frames
from textures import textured_image

from blursynth.errors import MissingDependencyError
from blursynth.flow import create_flow
from blursynth.flow.measure import (
    CONSISTENCY_ALPHA,
    CONSISTENCY_BETA,
    MIN_NOISE_SIGMA,
    consistency_mask,
    estimate_noise_sigma,
    measure,
    measure_pair,
    pair_noise_sigma,
    texture_basis,
    texture_mask,
    visible_motion,
)
from blursynth.ops.images import downsample

H, W = 120, 200
BLURRED_PX = 1.0


def backend(name: str):
    """A flow backend; RAFT only where torchvision and its weights are available."""
    if name == "raft":
        pytest.importorskip("torchvision")
        try:
            return create_flow("raft")
        except MissingDependencyError as exc:
            pytest.skip(exc.message)
    return create_flow(name)


BACKENDS = ("dis", "deepflow", "farneback", "raft")


# -- noise estimate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_noise_sigma_of_flat_noise(sigma):
    gray = add_noise(np.full((H, W), 128.0), sigma, seed=1)
    assert estimate_noise_sigma(gray) == pytest.approx(sigma, rel=0.1)


def test_noise_sigma_ignores_edges_and_has_a_floor():
    """Strong edges (a checkerboard of 16-px squares, 100 levels apart) barely move the median response."""
    ys, xs = np.mgrid[0:H, 0:W]
    board = 80.0 + 100.0 * (((xs // 16) + (ys // 16)) % 2)
    assert estimate_noise_sigma(add_noise(board, 1.0, seed=2)) == pytest.approx(1.0, rel=0.15)
    assert estimate_noise_sigma(np.full((H, W), 7, np.uint8)) == MIN_NOISE_SIGMA
    assert estimate_noise_sigma(np.zeros((2, 2), np.uint8)) == MIN_NOISE_SIGMA


def test_pair_noise_sees_through_fine_texture():
    """A clean textured render shifted by 1.5 px and downsampled x3 as WILD does (0.5 px of pixel-scale detail):
    one frame alone mistakes the texture for noise (measured 11.9 levels), the motion-compensated pair far less
    (4.9: bicubic resampling error of that detail), and at that level the texture stays measurable."""
    tex = (255 * textured_image(3 * H + 20, 3 * W + 20, 6)[..., 0]).astype(np.float32)
    frames = [downsample(np.clip(np.rint(cv2.warpAffine(tex, np.float32([[1, 0, 10 + du], [0, 1, 10]]),
                                                        (3 * W, 3 * H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)),
                                 0, 255).astype(np.uint8), 3) for du in (0.0, -1.5)]
    truth = np.zeros((2, H, W), np.float32)
    truth[0] = 0.5
    spatial, pair = estimate_noise_sigma(frames[0]), pair_noise_sigma(frames[0], frames[1], truth)
    assert spatial > 8.0 and pair < 0.5 * spatial
    assert measure(truth, -truth, frames[0], frames[1]).measurable_fraction >= 0.9
    noisy = flat_noise_frames(2, H, W, sigma=2.0, seed=5, rgb=False)
    assert pair_noise_sigma(noisy[0], noisy[1], np.zeros((2, H, W), np.float32)) == pytest.approx(2.0, rel=0.1)


# -- texture ------------------------------------------------------------------------------------------------
def test_flat_noise_is_not_textured():
    gray = add_noise(np.full((H, W), 128.0), 2.0, seed=3)
    assert texture_mask(gray).mean() < 0.001
    assert texture_mask(gray, noise_sigma=2.0).mean() < 0.001


def test_edge_is_textured_across_itself_only():
    """A vertical step edge: one textured direction (x) near it, none far from it."""
    gray = np.full((H, W), 60, np.uint8)
    gray[:, W // 2:] = 160
    e1, rank = texture_basis(gray, noise_sigma=1.0)
    band = slice(W // 2 - 2, W // 2 + 2)
    assert (rank[:, band] == 1).all()
    assert (rank[:, :W // 2 - 12] == 0).all() and (rank[:, W // 2 + 12:] == 0).all()
    np.testing.assert_allclose(np.abs(e1[0][:, band]), 1.0, atol=1e-5)
    flow = np.zeros((2, H, W), np.float32)
    flow[0], flow[1] = 0.5, 3.0  # 0.5 px across the edge, 3 px along it
    moving = visible_motion(flow, e1, rank)
    np.testing.assert_allclose(moving[:, band], 0.5, atol=1e-5)
    assert (moving[rank == 0] == 0).all()


def test_texture_is_textured_in_both_directions():
    gray = np.rint(255 * textured_image(H, W, 5)[..., 0]).astype(np.uint8)
    e1, rank = texture_basis(add_noise(gray, 1.0, seed=4))
    assert (rank == 2).mean() > 0.95
    flow = np.zeros((2, H, W), np.float32)
    flow[0], flow[1] = 1.2, -0.5
    np.testing.assert_allclose(visible_motion(flow, e1, rank)[rank == 2], 1.3, atol=1e-5)


# -- forward-backward consistency ---------------------------------------------------------------------------
def constant(u: float, v: float, h: int = 40, w: int = 60) -> np.ndarray:
    flow = np.empty((2, h, w), np.float32)
    flow[0], flow[1] = u, v
    return flow


def test_consistency_round_trip():
    """(2, 1) forward and (-2, -1) back return exactly; matches leaving the frame (last 2 columns, last row)
    cannot be checked."""
    ok = consistency_mask(constant(2, 1), constant(-2, -1))
    assert ok.dtype == bool and ok.shape == (40, 60)
    assert ok[:-1, :-2].all() and not ok[-1].any() and not ok[:, -2:].any()
    assert not consistency_mask(constant(2, 1), constant(2, 1))[:-1, :-2].any()  # |r|^2 = 20


def test_consistency_tolerance_is_relative_plus_absolute():
    """Sundaram et al.: |r|^2 < alpha (|w|^2 + |w_b|^2) + beta. For w = (-d, 0) and w_b = (d + e, 0) the bound
    on e^2 is alpha (d^2 + (d + e)^2) + beta: at d = 20 (inside the frame, going left) e = 3.0 passes
    (9.0 < 9.79), e = 3.2 fails (10.24 > 9.88)."""
    d = 20.0
    for e, expected in [(3.0, True), (3.2, False)]:
        bound = CONSISTENCY_ALPHA * (d * d + (d + e) ** 2) + CONSISTENCY_BETA
        assert (e * e < bound) == expected
        ok = consistency_mask(constant(-d, 0), constant(d + e, 0))
        assert ok[:, 21:].all() == expected and not ok[:, :20].any()


def test_consistency_along_an_edge_is_not_checked():
    """With a rank-1 basis across x, a y-disagreement (the aperture problem) is not an inconsistency."""
    e1 = constant(1, 0)
    rank = np.ones((40, 60), np.uint8)
    fwd, bwd = constant(0.5, 4.0), constant(-0.5, 4.0)
    assert not consistency_mask(fwd, bwd)[5:30, 5:50].any()
    assert consistency_mask(fwd, bwd, e1=e1, rank=rank)[5:30, 5:50].all()


def test_measure_contract():
    """Shapes, dtypes, moving finite and >= 0, zero where not measurable, fraction = mean of the mask."""
    f0, f1 = flat_noise_frames(2, H, W, rgb=False)
    m = measure(np.zeros((2, H, W), np.float32), np.zeros((2, H, W), np.float32), f0)
    assert m.measurable.dtype == bool and m.measurable.shape == (H, W)
    assert m.moving.dtype == np.float32 and np.isfinite(m.moving).all() and (m.moving >= 0).all()
    assert m.measurable_fraction == pytest.approx(m.measurable.mean())
    assert m.noise_sigma == pytest.approx(1.0, rel=0.1)


# -- the targets, every backend ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def flat_pair():
    return flat_noise_frames(2, 240, 427, sigma=1.0, seed=11)


@pytest.fixture(scope="module")
def textured_pair():
    """Textured content shifted by (1.3, -0.6) px (true |flow| = 1.432 px), sigma = 1 noise."""
    tex = (255 * textured_image(180 + 20, 240 + 20, 3)).astype(np.float32)
    frames = [cv2.warpAffine(tex, np.float32([[1, 0, 10 + du], [0, 1, 10 + dv]]), (240, 180),
                             flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP) for du, dv in [(0, 0), (-1.3, 0.6)]]
    return add_noise(np.stack(frames), 1.0, seed=12)


@pytest.fixture(scope="module")
def low_pair():
    return low_texture_frames(2, seed=13)


@pytest.mark.parametrize("name", BACKENDS)
def test_flat_noise_moves_nothing(name, flat_pair):
    m = measure_pair(backend(name), *flat_pair)
    assert np.mean(m.moving > BLURRED_PX) <= 0.01
    assert np.median(m.moving) == 0.0


@pytest.mark.parametrize("name", BACKENDS)
def test_textured_motion_is_measurable(name, textured_pair):
    m = measure_pair(backend(name), *textured_pair)
    assert m.measurable_fraction >= 0.9
    inner = m.moving[10:-10, 10:-10][m.measurable[10:-10, 10:-10]]
    assert np.median(inner) == pytest.approx(np.hypot(1.3, 0.6), abs=0.1)


@pytest.mark.parametrize("name", BACKENDS)
def test_low_texture_blurred_area_is_small(name, low_pair):
    """The object moves 0.3 px: nothing is blurred at 1 px; at most the object's own area may be measured."""
    m = measure_pair(backend(name), *low_pair)
    assert np.mean(m.moving > BLURRED_PX) <= 0.01
    assert np.mean(m.moving > BLURRED_PX) <= OBJECT_SIDE**2 / (240 * 427) + 0.01


def test_low_texture_dis_agrees_with_deepflow(low_pair):
    ratios = [np.mean(measure_pair(create_flow(n), *low_pair).moving > BLURRED_PX) for n in ("dis", "deepflow")]
    assert abs(ratios[0] - ratios[1]) <= 0.1
