"""Sub-frame interpolation (issue 18) against the continuous-exposure oracle of tests/exposure_fixtures.py:
a scene rendered at 32 sub-steps per frame interval, the tool given only the integer frames."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from exposure_fixtures import ExposureScene, border_psnr, decode
from textures import textured_image

from blursynth.errors import ConfigError
from blursynth.ops import interpolate as interpolate_mod
from blursynth.ops import interpolate_cv2
from blursynth.ops.interpolate import (
    WindowFlows,
    auto_substeps,
    compute_window_flows,
    interpolate_pair,
    interpolate_window,
    sample_times,
)

N = 7


def _window(scene: ExposureScene) -> torch.Tensor:
    return torch.from_numpy(decode(scene.frames(N))).permute(0, 3, 1, 2).contiguous()


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).cpu().numpy()


@lru_cache(maxsize=4)
def _oracle(velocity: float, with_object: bool):
    """Frames, DIS flows and truth of an oracle scene, shared by the tests of both implementations."""
    scene = ExposureScene(velocity=velocity, with_object=with_object)
    frames = _window(scene)
    return frames, compute_window_flows(frames), scene.truth(0.0, N - 1.0)


# (velocity, with_object, target dB): the table, reached with --substeps auto (K = 9, 17, 9, 20 here);
# measured 54.1, 57.4, 46.6, 43.5 dB with either implementation (plain averaging 31.6, 29.1, 31.5, 29.1)
ORACLE = [(8.0, False, 50.0), (16.0, False, 50.0), (8.0, True, 46.0), (16.0, True, 43.0)]


@pytest.mark.parametrize(("velocity", "with_object", "target"), ORACLE)
def test_oracle_table(velocity, with_object, target):
    """The default on the CPU: the OpenCV kernels (impl auto)."""
    frames, flows, truth = _oracle(velocity, with_object)
    plain = border_psnr(_hwc(frames.mean(0)), truth)
    assert plain <= 35.0  # the scene discriminates: today's plain averaging shows discrete copies
    k = auto_substeps(flows)
    assert velocity <= k <= 32  # at least one sub-step per pixel of camera motion
    blur = interpolate_window(frames, k, flows=flows, reduce="mean")
    assert border_psnr(_hwc(blur), truth) >= target


@pytest.mark.slow
def test_oracle_table_torch_path():
    """The torch path (grid_sample, what runs on CUDA) meets the same table on the CPU (measured 54.1, 57.4,
    46.6, 43.5 dB)."""
    for velocity, with_object, target in ORACLE:
        frames, flows, truth = _oracle(velocity, with_object)
        blur = interpolate_window(frames, auto_substeps(flows), flows=flows, reduce="mean", impl="torch")
        assert border_psnr(_hwc(blur), truth) >= target, (velocity, with_object)


@pytest.mark.parametrize(("flow_scale", "options", "agreement"), [
    (1.0, {}, 55.0),  # the default: bicubic, visibility at half resolution (measured 58.8 dB)
    (0.5, {"mode": "bilinear"}, 55.0),  # measured 59.7 dB
    (1.0, {"visibility_scale": 1.0}, 60.0),  # measured 68.2 dB
    (0.5, {"occlusion": False}, 80.0),  # measured 91 dB
    (0.5, {"occlusion": False, "gathers": 1}, 80.0),
])
def test_cv2_and_torch_paths_agree(flow_scale, options, agreement):
    """The OpenCV kernels are the torch method: PSNR of one against the other on the hardest oracle scene,
    K = 8 (differences: OpenCV's 1/32-px position rounding; with visibility, the weights normalised before
    upsampling)."""
    frames = _oracle(16.0, True)[0]
    flows = compute_window_flows(frames, flow_scale=flow_scale)
    fast = interpolate_window(frames, 8, flows=flows, reduce="mean", impl="cv2", **options)
    ref = interpolate_window(frames, 8, flows=flows, reduce="mean", impl="torch", **options)
    assert border_psnr(_hwc(fast), _hwc(ref)) >= agreement
    assert interpolate_window(frames, 8, flows=flows, reduce="mean", **options).equal(fast)  # auto on the CPU


@pytest.mark.parametrize(("velocity", "with_object", "target"), ORACLE)
def test_oracle_table_one_gather(velocity, with_object, target):
    """The fastest setting that meets the table: flow at half resolution, no visibility weights, one gather
    per sample (measured 54.1, 57.5, 46.3, 43.8 dB)."""
    frames, _, truth = _oracle(velocity, with_object)
    flows = compute_window_flows(frames, flow_scale=0.5)
    blur = interpolate_window(frames, auto_substeps(flows), flows=flows, reduce="mean", occlusion=False, gathers=1)
    assert border_psnr(_hwc(blur), truth) >= target


def test_cv2_warp_and_flow_resize_match_torch():
    """Pixel-centre conventions: cv2.remap at x + flow is grid_sample(align_corners=True) at the same
    pixel coordinates (bicubic, border replicated), cv2.resize is F.interpolate(align_corners=False)."""
    rng = np.random.default_rng(1)
    image = textured_image(48, 64, seed=2).astype(np.float32)
    flow = (rng.standard_normal((2, 6, 8)) * 6).astype(np.float32)  # smooth after upsampling, off the edges
    flow = torch.nn.functional.interpolate(torch.from_numpy(flow)[None], size=(48, 64), mode="bilinear")[0]
    base = interpolate_mod._base_grid(48, 64, torch.device("cpu"))
    ref = interpolate_mod._warp(torch.from_numpy(image).permute(2, 0, 1)[None], flow[None], base, "bicubic")
    fast = interpolate_cv2.warp(image, flow.permute(1, 2, 0).numpy().copy(), interpolate_cv2.base_grid(48, 64),
                                "bicubic")
    assert np.abs(fast - _hwc(ref[0])).max() < 0.02  # 1/64 px at most, on a texture with steep edges
    assert np.abs(fast - _hwc(ref[0])).mean() < 1e-3
    for h, w in ((12, 20), (24, 32), (48, 64)):  # non-uniform factors 4 and 3.2, factor 2, none
        small = torch.from_numpy(rng.standard_normal((2, h, w)).astype(np.float32))
        torch_up = interpolate_mod._resize_flow(small[None], 48, 64)[0]
        cv2_up = interpolate_cv2.resize_flow(small.permute(1, 2, 0).numpy().copy(), 48, 64)
        assert np.allclose(cv2_up, _hwc(torch_up), atol=1e-4)
        # the gather map with the grid and scale folded in at low resolution, borders corrected
        gather = interpolate_cv2.upsampler((h, w), (48, 64))(small.permute(1, 2, 0).numpy().copy(),
                                                             np.empty((48, 64, 2), np.float32))
        assert np.allclose(gather, _hwc(base + torch_up), atol=1e-4)


def test_cv2_sample_of_a_known_translation():
    """The OpenCV kernels with the exact flow of a 4-px shift: the samples at t = 1/2, 1/4 and 3/4 are the
    image shifted by 2, 1 and 3 px (integer positions: no rounding), with visibility and with one gather."""
    tex = textured_image(40, 60, seed=4).astype(np.float32)
    i0, i1 = tex[:, 8:48].copy(), tex[:, 4:44].copy()
    fwd = np.zeros((40, 40, 2), np.float32)
    fwd[..., 0] = 4.0
    for t, shift in ((0.5, 6), (0.25, 7), (0.75, 5)):
        acc, aligned = np.zeros_like(i0), np.zeros_like(i0)
        interpolate_cv2.accumulate_pair(acc, i0, i1, fwd, -fwd, [t], masks=interpolate_cv2.visibility_inputs(fwd, -fwd))
        interpolate_cv2.accumulate_pair_aligned(aligned, i0, i1, fwd, -fwd, [t])
        assert np.allclose(acc[:, 8:-8], tex[:, shift:shift + 40][:, 8:-8], atol=1e-5)
        assert np.allclose(aligned[:, 8:-8], tex[:, shift:shift + 40][:, 8:-8], atol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "cv2", "torch"])
def test_plain_sum_is_bit_exact(impl):
    frames = torch.rand(N, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(interpolate_window(frames, 1, impl=impl), frames.sum(0))
    assert torch.equal(interpolate_window(frames, 1, reduce="mean", impl=impl), frames.sum(0) / N)


@pytest.mark.parametrize("options", [{}, {"occlusion": False, "gathers": 1}])
def test_synthesised_sample_of_a_known_translation(options):
    """With the exact flow of a 4-px shift, the samples at t = 1/2, 1/4 and 3/4 are the image shifted by 2, 1
    and 3 px."""
    tex = torch.from_numpy(textured_image(40, 60, seed=4).astype(np.float32)).permute(2, 0, 1)
    i0, i1 = tex[:, :, 8:48], tex[:, :, 4:44]  # content moves 4 px to the right from frame 0 to frame 1
    fwd = torch.zeros(2, 40, 40)
    fwd[0] = 4.0
    out = interpolate_pair(i0, i1, fwd, -fwd, torch.tensor([0.5, 0.25, 0.75]), **options)
    for sample, shift in zip(out, (6, 7, 5), strict=True):
        assert torch.allclose(sample[:, :, 8:-8], tex[:, :, shift:shift + 40][:, :, 8:-8], atol=1e-5)


@pytest.mark.parametrize(("with_object", "target"), [(False, 50.0), (True, 43.5)])
def test_duty_cycle_against_a_shorter_exposure(with_object, target):
    scene = ExposureScene(velocity=8.0, with_object=with_object)
    frames = _window(scene)
    tau = 0.5
    truth = scene.truth(3.0 - tau * 3.0, 3.0 + tau * 3.0)
    blur = interpolate_window(frames, 8, duty_cycle=tau, reduce="mean")
    assert border_psnr(_hwc(blur), truth) >= target  # measured 54.8 and 44.3 dB
    # the frames inside the shorter exposure, averaged, are no substitute
    assert border_psnr(decode(scene.frames(N))[2:5].mean(0), truth) <= 30.0


def test_occlusion_handling_with_exact_flow():
    """Given the scene's exact flow, the visibility reasoning must fix what blending two warps cannot: the
    background covered and uncovered by the object (measured 54.5 dB against 45.3 dB without it; 51.1 dB with
    the visibility at half resolution, the default, which blurs the flow's sharp edge)."""
    scene = ExposureScene(velocity=16.0, with_object=True)
    frames = _window(scene)
    flows = WindowFlows(np.stack([scene.true_flow(i, i + 1) for i in range(N - 1)]),
                        np.stack([scene.true_flow(i + 1, i) for i in range(N - 1)]),
                        np.zeros((N, 1, 1), np.uint8), "exact")
    truth = scene.truth(0.0, N - 1.0)
    blur = interpolate_window(frames, 16, flows=flows, reduce="mean", visibility_scale=1.0)
    with_occlusion = border_psnr(_hwc(blur), truth)
    without = border_psnr(_hwc(interpolate_window(frames, 16, flows=flows, reduce="mean", occlusion=False)), truth)
    assert with_occlusion >= 53.0
    assert with_occlusion >= without + 5.0


def test_flow_at_half_resolution():
    scene = ExposureScene(velocity=16.0, with_object=True)
    frames = _window(scene)
    flows = compute_window_flows(frames, flow_scale=0.5)
    assert flows.forward.shape[-2:] == (96, 128)
    k = auto_substeps(flows)
    assert 16 <= k <= 22  # in frame pixels, not the flow's
    blur = interpolate_window(frames, k, flows=flows, reduce="mean")
    assert border_psnr(_hwc(blur), scene.truth(0.0, N - 1.0)) >= 43.0  # measured 43.5 dB
    with pytest.raises(ConfigError, match="--flow-scale: expected 0 < scale <= 1"):
        compute_window_flows(frames, flow_scale=1.5)


def test_sample_times():
    assert np.array_equal(sample_times(3, 4), np.arange(9) / 4)
    times = sample_times(5, 1, duty_cycle=0.5)
    assert np.allclose(times, [1.0, 1.5, 2.0, 2.5, 3.0])
    assert len(sample_times(7, 8, duty_cycle=0.8)) == 49


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"substeps": 0}, "--substeps: expected an integer >= 1"),
    ({"substeps": 2.5}, "--substeps: expected an integer >= 1"),
    ({"substeps": 2, "duty_cycle": 0.0}, "--duty-cycle: expected 0 < tau <= 1"),
    ({"substeps": 2, "duty_cycle": 1.5}, "--duty-cycle: expected 0 < tau <= 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        interpolate_window(torch.zeros(3, 3, 16, 16), **kwargs)


def test_bad_impl():
    with pytest.raises(ConfigError, match="interpolation impl: expected 'auto', 'cv2' or 'torch', got 'numba'"):
        interpolate_window(torch.zeros(3, 3, 16, 16), 2, impl="numba")
    with pytest.raises(ConfigError, match="interpolation impl 'cv2' runs on the CPU only, got frames on meta"):
        interpolate_window(torch.zeros(3, 3, 16, 16, device="meta"), 2, impl="cv2")


def test_bad_gathers():
    with pytest.raises(ConfigError, match=r"gathers: expected 2, or 1 with occlusion=False, got 1 \(occlusion True\)"):
        interpolate_window(torch.zeros(3, 3, 16, 16), 2, gathers=1)
    with pytest.raises(ConfigError, match="gathers: expected 2, or 1 with occlusion=False, got 3"):
        interpolate_window(torch.zeros(3, 3, 16, 16), 2, gathers=3, occlusion=False)


def test_bad_frames_shape():
    with pytest.raises(ConfigError, match=r"expected frames of shape \(N, 3, H, W\), got \(3, 16, 16\)"):
        interpolate_window(torch.zeros(3, 16, 16), 2)


def test_auto_substeps_cap_and_static_window():
    frames = _window(ExposureScene(velocity=16.0))
    flows = compute_window_flows(frames)
    assert auto_substeps(flows, cap=8) == 8
    still = frames[:1].expand(N, -1, -1, -1).contiguous()
    assert auto_substeps(compute_window_flows(still)) == 1
    with pytest.raises(ConfigError, match="cap must be at least 1"):
        auto_substeps(flows, cap=0)


def test_same_result_on_device(device):
    scene = ExposureScene(height=96, width=128, velocity=8.0, with_object=True)
    frames = _window(scene)
    flows = compute_window_flows(frames)
    cpu = interpolate_window(frames, 4, flows=flows, reduce="mean", impl="torch")
    dev = interpolate_window(frames.to(device), 4, flows=flows, reduce="mean", impl="torch")
    assert dev.device.type == device
    assert torch.allclose(dev.cpu(), cpu, atol=1e-5)
