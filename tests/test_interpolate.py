"""Sub-frame interpolation (issue 18) against the continuous-exposure oracle of tests/exposure_fixtures.py:
a scene rendered at 32 sub-steps per frame interval, the tool given only the integer frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exposure_fixtures import ExposureScene, border_psnr, decode
from textures import textured_image

from blursynth.errors import ConfigError
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


# (velocity, with_object, target dB): the table, reached with --substeps auto (K = 9, 17, 9, 20 here);
# measured 54.1, 57.4, 46.6, 43.5 dB (plain averaging 31.6, 29.1, 31.5, 29.1)
ORACLE = [(8.0, False, 50.0), (16.0, False, 50.0), (8.0, True, 46.0), (16.0, True, 43.0)]


@pytest.mark.parametrize(("velocity", "with_object", "target"), ORACLE)
def test_oracle_table(velocity, with_object, target):
    scene = ExposureScene(velocity=velocity, with_object=with_object)
    frames = _window(scene)
    truth = scene.truth(0.0, N - 1.0)
    plain = border_psnr(_hwc(frames.mean(0)), truth)
    assert plain <= 35.0  # the scene discriminates: today's plain averaging shows discrete copies
    flows = compute_window_flows(frames)
    k = auto_substeps(flows)
    assert velocity <= k <= 32  # at least one sub-step per pixel of camera motion
    blur = interpolate_window(frames, k, flows=flows, reduce="mean")
    assert border_psnr(_hwc(blur), truth) >= target


def test_plain_sum_is_bit_exact():
    frames = torch.rand(N, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(interpolate_window(frames, 1), frames.sum(0))
    assert torch.equal(interpolate_window(frames, 1, reduce="mean"), frames.sum(0) / N)


def test_synthesised_sample_of_a_known_translation():
    """With the exact flow of a 4-px shift, the sample at t = 1/2 (and 1/4) is the image shifted by 2 (1) px."""
    tex = torch.from_numpy(textured_image(40, 60, seed=4).astype(np.float32)).permute(2, 0, 1)
    i0, i1 = tex[:, :, 8:48], tex[:, :, 4:44]  # content moves 4 px to the right from frame 0 to frame 1
    fwd = torch.zeros(2, 40, 40)
    fwd[0] = 4.0
    out = interpolate_pair(i0, i1, fwd, -fwd, torch.tensor([0.5, 0.25]))
    assert torch.allclose(out[0, :, :, 8:-8], tex[:, :, 6:46][:, :, 8:-8], atol=1e-5)
    assert torch.allclose(out[1, :, :, 8:-8], tex[:, :, 7:47][:, :, 8:-8], atol=1e-5)


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
    cpu = interpolate_window(frames, 4, flows=flows, reduce="mean")
    dev = interpolate_window(frames.to(device), 4, flows=flows, reduce="mean")
    assert dev.device.type == device
    assert torch.allclose(dev.cpu(), cpu, atol=1e-5)
