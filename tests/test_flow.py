"""Optical flow backends, flow statistics, frame matching and the per-frame image conversions.

Every expectation is analytic: frames are rendered from a texture with a known affine motion, so the true
flow is known per pixel; statistics, warps and conversions are checked against values worked out by hand or
with exact integer arithmetic here. The RAFT wrapper is driven by a fake ``torchvision`` whose model echoes
its inputs, so padding, cropping, scaling, pairing and batching can be read back from the output.
"""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest
import torch
from conftest import textured_image

from blursynth.errors import ConfigError, InputError, MissingDependencyError
from blursynth.flow import create_flow, flow_statistic, magnitude, match_error, warp_back
from blursynth.ops.images import downsample, downsampled_size, to_gray8, to_uint8

H, W = 240, 320  # accuracy frames: as accurate as 427x240 (EPE within 0.005 px) and ~2x cheaper
BORDER = 20  # EPE is measured on the interior; flow at the frame edge is extrapolated by every method
MARGIN = 16  # frames are crops of a larger texture, so no warp ever samples outside it
OPENCV_METHODS = ("dis", "deepflow", "farneback")
#: Mean end-point error bound (px). Measured at 240x320 on 2 cores: translation dis 0.036 (MEDIUM preset, the
#: default before issue 16: 0.043), deepflow 0.061, farneback 0.053; rotation+zoom 0.028 (0.031) / 0.042 /
#: 0.043. A backend returning backward flow scores ~0.86 on the translation, one ignoring sub-pixel motion
#: ~0.43, one refining only to half resolution (OpenCV's DIS default) ~0.11.
EPE_MAX = 0.1
TRANSLATION = (0.37, -0.21)  # (u, v) px: frame-1 content sits at x + u, y + v
ROT_DEG, ZOOM = 0.3, 1.005  # about the frame centre: up to ~1.4 px at the corners of 240x320


# -- analytic frames ----------------------------------------------------------------------------------------
def render_pair(forward: np.ndarray, height: int = H, width: int = W, seed: int = 0,
                gray: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two uint8 frames related by the forward affine map ``forward`` (2x3), and the true flow.

    Frame 0 is the texture at offset ``MARGIN``; frame 1 satisfies ``frame1(A p) = frame0(p)``, i.e.
    ``frame1(q) = texture(A^-1 q + MARGIN)``. With ``cv2.WARP_INVERSE_MAP``, ``dst(q) = src(M q)``, so the
    inverse map passed to OpenCV is ``A^-1`` shifted by the margin (a pure +t in that map moves content by -t).

    Returns:
        (frame0, frame1, flow): frames (H, W) gray or (H, W, 3) RGB uint8; flow (2, H, W) float64,
        ``flow(p) = A p - p``.
    """
    tex = textured_image(height + 2 * MARGIN, width + 2 * MARGIN, seed).astype(np.float32)
    inv0 = np.float64([[1, 0, MARGIN], [0, 1, MARGIN]])
    inv1 = cv2.invertAffineTransform(np.float64(forward))
    inv1[:, 2] += MARGIN
    frames = []
    for inv in (inv0, inv1):
        f = cv2.warpAffine(tex, inv, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        f = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
        frames.append(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if gray else f)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    a = np.float64(forward)
    u = a[0, 0] * xs + a[0, 1] * ys + a[0, 2] - xs
    v = a[1, 0] * xs + a[1, 1] * ys + a[1, 2] - ys
    return frames[0], frames[1], np.stack([u, v])


def translation(u: float, v: float) -> np.ndarray:
    return np.float64([[1, 0, u], [0, 1, v]])


def rotation_zoom(height: int = H, width: int = W) -> np.ndarray:
    """Forward map: rotate by ROT_DEG and scale by ZOOM about the pixel-grid centre."""
    return cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), ROT_DEG, ZOOM)


def interior_epe(flow: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel end-point error, border cropped."""
    err = np.hypot(flow[0] - truth[0], flow[1] - truth[1])
    return err[BORDER:-BORDER, BORDER:-BORDER]


# -- accuracy of the OpenCV backends ------------------------------------------------------------------------
@pytest.mark.parametrize("method", OPENCV_METHODS)
def test_subpixel_translation_rgb(method):
    """RGB input (converted to gray by the backend), (0.37, -0.21) px: mean EPE and mean vector."""
    f0, f1, truth = render_pair(translation(*TRANSLATION), gray=False)
    flow = create_flow(method)(f0, f1)
    assert flow.shape == (2, H, W) and flow.dtype == np.float32
    epe = interior_epe(flow, truth)
    assert epe.mean() < EPE_MAX, f"{method}: mean EPE {epe.mean():.3f} px"
    inner = flow[:, BORDER:-BORDER, BORDER:-BORDER]
    np.testing.assert_allclose(inner.reshape(2, -1).mean(axis=1), TRANSLATION, atol=EPE_MAX)


@pytest.mark.parametrize("method", OPENCV_METHODS)
def test_rotation_zoom_gray(method):
    """Gray input, 0.3 deg + 1.005x about the centre: per-pixel flow against A p - p."""
    f0, f1, truth = render_pair(rotation_zoom())
    epe = interior_epe(create_flow(method)(f0, f1), truth)
    assert epe.mean() < EPE_MAX, f"{method}: mean EPE {epe.mean():.3f} px"
    assert np.percentile(epe, 99) < 2 * EPE_MAX  # no local failure hidden by the mean


@pytest.mark.parametrize("method", OPENCV_METHODS)
def test_several_pixel_translation(method):
    """(4.6, -3.1) px, the size of motion a magnitude filter must see: measured mean EPE 0.026-0.041 px."""
    f0, f1, truth = render_pair(translation(4.6, -3.1), 120, 160, seed=5)
    epe = interior_epe(create_flow(method)(f0, f1), truth)
    assert epe.mean() < EPE_MAX, f"{method}: mean EPE {epe.mean():.3f} px"


@pytest.mark.parametrize("method", OPENCV_METHODS)
def test_pairs_order_and_shape(method):
    """pairs() of k frames gives k - 1 flows, pair i from frame i to frame i + 1 (not reversed, not shifted)."""
    h, w = 120, 160
    moves = [(0.0, 0.0), (0.6, 0.0), (0.6, -0.5)]  # cumulative offsets of frames 0, 1, 2
    frames = [render_pair(translation(u, v), h, w, seed=2)[1] for u, v in moves]
    flows = create_flow(method).pairs(frames)
    assert flows.shape == (2, 2, h, w) and flows.dtype == np.float32
    for i, expected in enumerate([(0.6, 0.0), (0.0, -0.5)]):
        inner = flows[i, :, BORDER:-BORDER, BORDER:-BORDER].reshape(2, -1)
        np.testing.assert_allclose(inner.mean(axis=1), expected, atol=EPE_MAX)
    assert create_flow(method).pairs(frames[:1]).shape == (0, 2, h, w)


# -- create_flow ------------------------------------------------------------------------------------------
def test_create_flow_names():
    assert create_flow(" DIS ").name == "dis"
    for name in OPENCV_METHODS:
        assert create_flow(name).name == name


def test_create_flow_unknown_name_lists_choices():
    with pytest.raises(ConfigError) as info:
        create_flow("lucas-kanade")
    message = info.value.message
    assert "lucas-kanade" in message
    for choice in ("dis", "deepflow", "farneback", "raft"):
        assert choice in message


def test_raft_without_torchvision(monkeypatch):
    """A None entry in sys.modules makes the import fail exactly as if torchvision were not installed."""
    for mod in ("torchvision", "torchvision.models", "torchvision.models.optical_flow"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingDependencyError) as info:
        create_flow("raft")
    assert "torchvision" in info.value.message and "pip install" in info.value.message


def test_deepflow_without_contrib(monkeypatch):
    monkeypatch.delattr(cv2, "optflow", raising=False)
    with pytest.raises(MissingDependencyError, match="opencv-contrib"):
        create_flow("deepflow")


# -- RAFT wrapper, with a fake torchvision ------------------------------------------------------------------
class EchoRaft(torch.nn.Module):
    """Stands in for torchvision's RAFT: checks RAFT's input contract and echoes its inputs as the flow.

    The last flow of the returned list is ``gain * (img1 red, img2 green)``: after the wrapper crops the
    padding, pair i must hold frame i's red and frame i + 1's green channel, scaled to [-1, 1], pixel for
    pixel. ``gain`` is the only parameter, so which weights were loaded shows in the output.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))
        self.calls: list[tuple[tuple[int, ...], int]] = []

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, num_flow_updates: int = 12) -> list[torch.Tensor]:
        assert img1.shape == img2.shape and img1.ndim == 4 and img1.shape[1] == 3
        assert img1.shape[-2] % 8 == 0 and img1.shape[-1] % 8 == 0, img1.shape
        assert img1.dtype == torch.float32
        for img in (img1, img2):
            assert img.min() >= -1.0 and img.max() <= 1.0
        self.calls.append((tuple(img1.shape), num_flow_updates))
        final = torch.stack([img1[:, 0], img2[:, 1]], dim=1) * self.gain
        return [torch.full_like(final, 1e6), final]  # only the last (most refined) flow is the answer


class FakeTorchvision:
    """Installs ``torchvision.models.optical_flow`` with raft_small/raft_large and their weight enums."""

    SMALL_GAIN, LARGE_GAIN = 2.0, 5.0  # what the fake "registry" weights set

    def __init__(self, monkeypatch) -> None:
        self.builds: list[tuple[str, object, object]] = []
        self.offline = False
        self.of = of = types.ModuleType("torchvision.models.optical_flow")
        of.raft_small = self._builder("small")
        of.raft_large = self._builder("large")
        of.Raft_Small_Weights = types.SimpleNamespace(DEFAULT=types.SimpleNamespace(gain=self.SMALL_GAIN))
        of.Raft_Large_Weights = types.SimpleNamespace(DEFAULT=types.SimpleNamespace(gain=self.LARGE_GAIN))
        models = types.ModuleType("torchvision.models")
        models.optical_flow = of
        tv = types.ModuleType("torchvision")
        tv.models = models
        monkeypatch.setitem(sys.modules, "torchvision", tv)
        monkeypatch.setitem(sys.modules, "torchvision.models", models)
        monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", of)

    def _builder(self, name: str):
        def build(*, weights=None, progress=True) -> EchoRaft:
            self.builds.append((name, weights, progress))
            if weights is not None and self.offline:
                raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")
            net = EchoRaft()
            if weights is not None:
                with torch.no_grad():
                    net.gain.fill_(weights.gain)
            return net

        return build


@pytest.fixture
def fake_tv(monkeypatch) -> FakeTorchvision:
    return FakeTorchvision(monkeypatch)


def rgb_frames(k: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """k distinct RGB uint8 frames (textures with different seeds)."""
    return np.stack([np.rint(255 * textured_image(height, width, seed + i)).astype(np.uint8) for i in range(k)])


def expected_echo(frames: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """What EchoRaft must produce per pair once the wrapper pads, scales and crops correctly."""
    scaled = frames.astype(np.float64) / 127.5 - 1.0
    return gain * np.stack([scaled[:-1, ..., 0], scaled[1:, ..., 1]], axis=1)


@pytest.mark.parametrize("height, width", [(21, 30), (24, 32), (9, 8), (8, 13)])
@pytest.mark.parametrize("batch_size, batches", [(2, [2, 2, 1]), (5, [5]), (8, [5])])
def test_raft_pads_crops_and_batches(fake_tv, height, width, batch_size, batches):
    frames = rgb_frames(6, height, width)
    flow = create_flow("raft", batch_size=batch_size)
    out = flow.pairs(frames)
    assert out.shape == (5, 2, height, width) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_echo(frames, FakeTorchvision.SMALL_GAIN), rtol=0, atol=1e-5)
    padded = (-(-height // 8) * 8, -(-width // 8) * 8)  # the least multiple of 8 (no extra padding)
    assert flow.net.calls == [((n, 3, *padded), 12) for n in batches]
    assert flow.batch_size == batch_size


def test_raft_single_pair_gray_and_list_input(fake_tv):
    """__call__ on one pair; gray frames are fed to RAFT as three equal channels."""
    frames = rgb_frames(2, 19, 27, seed=7)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = create_flow("raft")
    np.testing.assert_allclose(flow(frames[0], frames[1]), expected_echo(frames, 2.0)[0], rtol=0, atol=1e-5)
    as_rgb = np.stack([np.repeat(g[..., None], 3, axis=-1) for g in gray])
    np.testing.assert_allclose(flow(*gray), expected_echo(as_rgb, 2.0)[0], rtol=0, atol=1e-5)
    assert flow.pairs(list(frames[:1])).shape == (0, 2, 19, 27)


def test_raft_uint16_frames(fake_tv):
    """16-bit frames are reduced to 8 bits first, as the OpenCV backends do via to_gray8: 257 k -> k."""
    frames = rgb_frames(3, 16, 24, seed=3)
    out = create_flow("raft").pairs(257 * frames.astype(np.uint16))
    np.testing.assert_allclose(out, expected_echo(frames, FakeTorchvision.SMALL_GAIN), rtol=0, atol=1e-5)


def test_raft_registry_weights(fake_tv):
    """No --raft-weights: torchvision's DEFAULT weights of the chosen model, no progress bar, eval mode."""
    small = create_flow("raft")
    assert fake_tv.builds == [("small", fake_tv.of.Raft_Small_Weights.DEFAULT, False)]
    assert not small.net.training
    large = create_flow("raft", raft_model="large", batch_size=3)
    assert fake_tv.builds[1] == ("large", fake_tv.of.Raft_Large_Weights.DEFAULT, False)
    frames = rgb_frames(3, 16, 16)
    np.testing.assert_allclose(large.pairs(frames), expected_echo(frames, fake_tv.LARGE_GAIN), atol=1e-5)


def test_raft_unknown_model(fake_tv):
    with pytest.raises(ConfigError, match="small, large"):
        create_flow("raft", raft_model="huge")


def test_raft_registry_offline(fake_tv):
    fake_tv.offline = True
    with pytest.raises(MissingDependencyError) as info:
        create_flow("raft")
    assert "--raft-weights" in info.value.message
    assert "name resolution" in info.value.message  # the cause is passed on


def test_raft_weights_file_missing(fake_tv, tmp_path):
    path = tmp_path / "nope" / "raft_small.pth"
    with pytest.raises(InputError) as info:
        create_flow("raft", raft_weights=str(path))
    assert str(path) in info.value.message


def test_raft_weights_file_not_torch(fake_tv, tmp_path):
    path = tmp_path / "weights.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(InputError) as info:
        create_flow("raft", raft_weights=str(path))
    assert str(path) in info.value.message


def test_raft_weights_file_wrong_model(fake_tv, tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(InputError) as info:
        create_flow("raft", raft_weights=str(path))
    assert str(path) in info.value.message


@pytest.mark.parametrize("wrapped", [False, True])
def test_raft_weights_file_loads(fake_tv, tmp_path, wrapped):
    """A state dict saved from the model (bare or as {"state_dict": ...}) is loaded, without the registry."""
    net = EchoRaft()
    with torch.no_grad():
        net.gain.fill_(3.0)
    path = tmp_path / "raft_small.pth"
    torch.save({"state_dict": net.state_dict()} if wrapped else net.state_dict(), path)
    flow = create_flow("raft", raft_weights=str(path))
    assert fake_tv.builds == [("small", None, True)]  # built empty (progress left at its default)
    frames = rgb_frames(3, 12, 20)
    np.testing.assert_allclose(flow.pairs(frames), expected_echo(frames, 3.0), rtol=0, atol=1e-5)


# -- flow statistics ----------------------------------------------------------------------------------------
def test_magnitude():
    k = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(magnitude(np.stack([3 * k, -4 * k])), 5 * k, rtol=1e-6)


def test_flow_statistic_order_statistics():
    """p99 is the nearest-rank 99th percentile: the ceil(0.99 n)-th smallest value, no interpolation."""
    mag = np.random.default_rng(0).permutation(1000).astype(np.float32).reshape(25, 40)  # values 0..999
    assert flow_statistic(mag, "p99") == 989.0  # 990th smallest (np.percentile would interpolate: 989.01)
    assert flow_statistic(mag, "max") == 999.0
    assert flow_statistic(mag, "mean") == pytest.approx(499.5)
    assert flow_statistic(np.arange(100, dtype=np.float32), "p99") == 98.0
    assert flow_statistic(np.float32([7.0]), "p99") == 7.0
    # The top 1 % is ignored, anything larger is not.
    mag = np.ones(1000, np.float32)
    mag[:10] = 100.0
    assert flow_statistic(mag, "p99") == 1.0
    mag[10] = 100.0
    assert flow_statistic(mag, "p99") == 100.0


def test_flow_statistic_bad_name():
    with pytest.raises(ConfigError) as info:
        flow_statistic(np.zeros((2, 2), np.float32), "median")
    assert "median" in info.value.message and "p99" in info.value.message


# -- warp_back and match_error ------------------------------------------------------------------------------
def test_warp_back_samples_at_x_plus_flow():
    """On a linear ramp bilinear sampling is exact: warped(y, x) = ramp(x + u, y + v) wherever valid."""
    h, w = 7, 9
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    image = 2 * xs + 3 * ys
    flow = np.zeros((2, h, w), np.float32)
    flow[0], flow[1] = 0.5, 0.25
    flow[0, :, :3] = -1.5  # left three columns point left: columns 0 and 1 land outside
    warped, valid = warp_back(image, flow)
    x1, y1 = xs + flow[0], ys + flow[1]
    expected_valid = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
    assert valid.dtype == bool and valid.shape == (h, w)
    assert not valid[:, :2].any() and not valid[-1].any() and not valid[:, -1].any()
    np.testing.assert_array_equal(valid, expected_valid)
    assert valid.sum() == (h - 1) * (w - 3)
    np.testing.assert_allclose(warped[valid], (2 * x1 + 3 * y1)[valid], atol=1e-4)


def test_match_error_identity_and_all_invalid():
    gray = np.rint(255 * textured_image(40, 50, 4)[..., 0]).astype(np.uint8)
    zero = np.zeros((2, 40, 50), np.float32)
    assert match_error(gray, gray, zero) == 0.0
    off = zero.copy()
    off[0] = 60.0  # every match lands right of the frame
    assert match_error(gray, gray, off) == float("inf")


def test_match_error_integer_translation_is_exact():
    """An integer shift needs no interpolation: the right flow matches exactly, zero flow does not."""
    f0, f1, truth = render_pair(translation(3, -2), 120, 160, seed=3)
    assert match_error(f0, f1, truth.astype(np.float32)) < 0.5
    assert match_error(f0, f1, np.zeros_like(truth, np.float32)) > 10


def test_match_error_subpixel_translation():
    """Measured (120x160, seed 3): right flow 2.1 gray levels (bilinear resampling of 2-px detail), zero flow
    5.1, the reversed flow 8.8; a correct flow must score well below both."""
    f0, f1, truth = render_pair(translation(*TRANSLATION), 120, 160, seed=3)
    right = match_error(f0, f1, truth.astype(np.float32))
    zero = match_error(f0, f1, np.zeros_like(truth, np.float32))
    reversed_ = match_error(f0, f1, -truth.astype(np.float32))
    assert right < 3.0
    assert right < 0.6 * zero and zero < reversed_


# -- ops.images ---------------------------------------------------------------------------------------------
def test_downsampled_size():
    assert downsampled_size(1280, 720, 3) == (427, 240)
    assert downsampled_size(1920, 1080, 3) == (640, 360)
    assert downsampled_size(1280, 720, 1) == (1280, 720)
    assert downsampled_size(2, 2, 5) == (1, 1)  # never zero


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_downsample_is_block_mean(dtype):
    """Sizes divisible by 3: each output pixel is the mean of its 3x3 block (rounded for integer types;
    a sum of 9 integers over 9 is never exactly halfway, so rounding is unambiguous)."""
    rng = np.random.default_rng(1)
    if dtype == np.float32:
        frame = rng.random((12, 18, 3)).astype(dtype)
    else:
        frame = rng.integers(0, np.iinfo(dtype).max + 1, (12, 18, 3)).astype(dtype)
    block_mean = frame.astype(np.float64).reshape(4, 3, 6, 3, 3).mean(axis=(1, 3))
    out = downsample(frame, 3)
    assert out.shape == (4, 6, 3) and out.dtype == dtype
    if dtype == np.float32:
        np.testing.assert_allclose(out, block_mean, rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(out, np.rint(block_mean))


def test_downsample_sizes_and_factors():
    frame = np.full((720, 1280, 3), 77, np.uint8)
    out = downsample(frame, 3)
    assert out.shape == (240, 427, 3) and (out == 77).all()
    assert downsample(frame, 1) is frame
    with pytest.raises(ConfigError):
        downsample(frame, 0)


def test_to_uint8_rounds_every_uint16_value():
    v = np.arange(65536, dtype=np.int64)
    expected = (2 * v + 257) // 514  # floor(v / 257 + 1/2), exact integer arithmetic
    np.testing.assert_array_equal(to_uint8(v.astype(np.uint16)), expected)
    k = np.arange(255, dtype=np.int64)
    np.testing.assert_array_equal(to_uint8((257 * k + 128).astype(np.uint16)), k)  # 128/257 < 1/2: down
    np.testing.assert_array_equal(to_uint8((257 * k + 129).astype(np.uint16)), k + 1)  # 129/257 > 1/2: up
    assert to_uint8(np.uint16([0, 65535])).tolist() == [0, 255]
    frame = np.zeros((2, 2, 3), np.uint8)
    assert to_uint8(frame) is frame


def test_to_gray8():
    primaries = np.uint8([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]])
    # BT.601 luma of RGB (not BGR): 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1
    assert to_gray8(primaries).tolist() == [[76, 150, 29, 255]]
    k = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_gray8(np.stack([k, k, k], axis=-1)[None]), k[None])
    rgb = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    luma = rgb.astype(np.float64) @ np.float64([0.299, 0.587, 0.114])
    gray = to_gray8(rgb)
    assert gray.shape == (30, 40) and gray.dtype == np.uint8
    assert np.abs(gray - luma).max() < 0.51  # correctly rounded up to OpenCV's 14-bit fixed-point weights
    np.testing.assert_array_equal(to_gray8(257 * rgb.astype(np.uint16)), gray)  # 16-bit: 257 k -> k
    plane = rgb[..., 1].copy()
    assert to_gray8(plane) is plane


def test_to_uint8_refuses_other_dtypes():
    from blursynth.ops.images import to_uint8

    with pytest.raises(TypeError, match="float32"):
        to_uint8(np.zeros((2, 2, 3), np.float32))
