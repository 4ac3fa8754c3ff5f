"""The camera pipeline (``blursynth.camera``): settings and their errors, the per-sample draw (seeded, JSON,
RSBlur's ranges), ``apply_camera`` against oracles (identity without mosaic and noise, the saturation stage,
saturated values kept, odd sizes, CPU vs CUDA) and the compression stage (RGB order, sizes)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from test_camera_isp import chw, correlated_image, psnr

from blursynth.camera import (
    CAMERA_MATRICES,
    CAMERAS,
    CameraConfig,
    apply_camera,
    camera_config,
    camera_seed,
    compress,
    draw_camera,
    render_camera,
)
from blursynth.errors import ConfigError
from blursynth.ops.crf import create_crf
from blursynth.seeding import derive_seed

GAMMA = create_crf("gamma", 2.2)


def linear_image(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    return chw(GAMMA.to_linear(correlated_image(h, w, seed)))


def params_for(**changes) -> dict:
    return draw_camera(CameraConfig(), 123) | changes


# -- settings --------------------------------------------------------------------------------------------------
def test_camera_config_names_and_overrides():
    assert CAMERAS == ("none", "rsblur")
    assert camera_config("none") is None
    assert camera_config("rsblur") == CameraConfig()
    assert camera_config("rsblur", jpeg=(70, 90), noise=False) == CameraConfig(jpeg=(70, 90), noise=False)


@pytest.mark.parametrize(("call", "names"), [
    (lambda: camera_config("sony"), "--camera"),
    (lambda: camera_config("rsblur", gamma=2), "'gamma'"),
    (lambda: CameraConfig(alpha=(1.0, 0.5)), "alpha"),
    (lambda: CameraConfig(matrices=("leica_m3",)), "'leica_m3'"),
    (lambda: CameraConfig(patterns=("RGBG",)), "patterns"),
    (lambda: CameraConfig(jpeg=(0, 90)), "jpeg"),
    (lambda: CameraConfig(h264_crf=60), "h264"),
    (lambda: CameraConfig(beta1=-1.0), "beta1"),
    (lambda: CameraConfig(beta1=0.0), "beta1"),  # shot noise signal / beta1: would be inf/NaN
    (lambda: CameraConfig(beta1=float("nan")), "beta1"),
    (lambda: CameraConfig(beta2=-1e-5), "beta2"),
    (lambda: CameraConfig(beta2="x"), "beta2"),
    (lambda: CameraConfig(noise_range=(0.0, 0.0)), "noise range"),
    (lambda: CameraConfig(noise_range=(0.0, 1.5)), "noise range"),
    (lambda: CameraConfig(noise_range=(1.5, 0.5)), "noise range"),
])
def test_bad_settings_are_one_line_config_errors(call, names):
    with pytest.raises(ConfigError) as info:
        call()
    message = info.value.format_message()
    assert names in message and "\n" not in message


def test_edge_noise_settings_that_stay_valid():
    assert CameraConfig(beta2=0.0).beta2 == 0.0  # no read noise is a valid camera
    assert CameraConfig(noise_range=(1e-3, 1e-3)).noise_range == (1e-3, 1e-3)


def test_settings_import_no_torch():
    code = "import sys, blursynth.camera as c; c.camera_config('rsblur'); c.camera_seed(0, 'k'); " \
           "sys.exit('torch' in sys.modules)"
    import subprocess

    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- draws -----------------------------------------------------------------------------------------------------
def test_draws_are_seeded_json_and_within_rsblurs_ranges():
    cfg = CameraConfig()
    draws = [draw_camera(cfg, camera_seed(7, "clip.mp4", i)) for i in range(200)]
    assert draws[0] == draw_camera(cfg, camera_seed(7, "clip.mp4", 0))
    assert draws[0] != draws[1]
    assert camera_seed(7, "k") == derive_seed(7, "camera", "k") >> 11
    # 53 bits: a JSON reader that parses numbers as float64 (JavaScript, jq) reads every seed exactly
    assert all(0 <= d["seed"] < 2**53 and float(d["seed"]) == d["seed"] for d in draws)
    for d in draws:
        assert json.loads(json.dumps(d)) == d
        assert d["camera"] == "rsblur" and 0.25 <= d["alpha"] <= 1.75
        assert 1.9 <= d["red_gain"] <= 2.4 and 1.5 <= d["blue_gain"] <= 1.9
        assert 0.5 * 8.8915e-05 <= d["beta1"] <= 1.5 * 8.8915e-05
        assert 0.5 * 2.9430e-05 <= d["beta2"] <= 1.5 * 2.9430e-05
        assert d["jpeg_quality"] is None and d["h264_crf"] is None
    assert {d["pattern"] for d in draws} == {"RGGB", "BGGR", "GRBG", "GBRG"}
    assert {d["matrix"] for d in draws} == set(CAMERA_MATRICES)


def test_stages_switched_off_give_none_and_leave_the_other_draws():
    full = draw_camera(CameraConfig(jpeg=(60, 60)), 5)
    off = draw_camera(CameraConfig(saturation=False, noise=False, mosaic=False, jpeg=(60, 60), h264_crf=23), 5)
    assert off["alpha"] is off["beta1"] is off["beta2"] is off["pattern"] is None
    assert off["jpeg_quality"] == full["jpeg_quality"] == 60 and off["h264_crf"] == 23
    assert (off["matrix"], off["red_gain"], off["blue_gain"]) == (full["matrix"], full["red_gain"], full["blue_gain"])
    assert draw_camera(CameraConfig(matrices=("sony_a7r3",)), 5)["matrix"] == "sony_a7r3"


# -- the pipeline ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("matrix", sorted(CAMERA_MATRICES))
def test_inverse_isp_then_isp_is_the_identity_within_one_lsb(matrix):
    lin = linear_image(seed=1)
    out = apply_camera(lin, params_for(matrix=matrix, pattern=None, beta1=None, beta2=None, alpha=None))
    a = GAMMA.encode(out.permute(1, 2, 0).numpy()).astype(int)
    b = GAMMA.encode(lin.permute(1, 2, 0).numpy()).astype(int)
    assert np.abs(a - b).max() <= 1


def test_saturation_stage_adds_alpha_times_the_mask_and_clips():
    lin = linear_image(seed=2)
    sat = torch.zeros_like(lin)
    sat[:, 10:20, 15:40] = torch.linspace(0, 1, 25)
    params = params_for(pattern=None, beta1=None, beta2=None, alpha=0.8)
    out = apply_camera(lin, params, sat=sat)
    assert torch.allclose(out, (lin + 0.8 * sat).clamp(0, 1), atol=2e-6)
    assert torch.allclose(apply_camera(lin, params), lin, atol=2e-6)  # no mask: no saturation stage


def test_saturated_values_stay_saturated_and_the_rest_gets_noise():
    lin = linear_image(seed=3) * 0.8
    sat = torch.zeros_like(lin)
    sat[0, 5:25, 5:30] = 1.0  # red channel clipped in every sample of the exposure
    lin[:, 30:40, 40:60] = 1.0  # a white highlight
    out = apply_camera(lin, params_for(alpha=1.0), sat=sat)  # lin + 1.0 * 1 reaches 1 everywhere there
    assert torch.all(out[0, 5:25, 5:30] == 1.0) and torch.all(out[:, 30:40, 40:60] == 1.0)
    rest = torch.ones_like(lin, dtype=torch.bool)
    rest[0, 5:25, 5:30] = False
    rest[:, 30:40, 40:60] = False
    assert float((out - lin)[rest].abs().mean()) > 1e-4  # noise and demosaic changed the others


def test_same_params_same_bytes_other_seed_other_noise():
    lin = linear_image(seed=4)
    cfg = CameraConfig()
    a = render_camera(lin, GAMMA, draw_camera(cfg, 1), cfg)
    assert np.array_equal(a, render_camera(lin.clone(), GAMMA, draw_camera(cfg, 1), cfg))
    assert np.array_equal(a, render_camera(lin.permute(1, 2, 0).numpy(), GAMMA, draw_camera(cfg, 1), cfg))
    same_stages = draw_camera(cfg, 1) | {"seed": 2}  # the same stages, another noise
    assert not np.array_equal(a, render_camera(lin, GAMMA, same_stages, cfg))


def test_noise_level_of_the_whole_pipeline_on_a_flat_grey():
    """Noise only (no mosaic) on a flat grey through the whole pipeline: the output variance per channel
    is the RAW variance carried through the white balance and the colour matrix (an oracle from the model)."""
    from blursynth.camera.matrices import camera_matrices

    x = 0.18
    params = params_for(pattern=None, alpha=None, matrix="sony_a7r3", red_gain=2.0, blue_gain=1.7)
    out = apply_camera(torch.full((3, 128, 128), x), params).double()
    srgb2cam, cam2srgb = camera_matrices("sony_a7r3")
    gains = np.array([2.0, 1.0, 1.7])
    raw = (srgb2cam @ np.full(3, x)) / gains  # flat camera RGB before noise
    raw_var = params["beta1"] * raw + params["beta2"] ** 2
    expected = (cam2srgb**2) @ (raw_var * gains**2)  # independent channels through diag(gains) and cam2srgb
    measured = out.reshape(3, -1).var(dim=1).numpy()
    assert measured == pytest.approx(expected, rel=0.10)


@pytest.mark.parametrize(("h", "w"), [(240, 427), (7, 9), (6, 6), (3, 5)])
def test_odd_and_tiny_sizes(h, w):
    lin = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w))
    out = apply_camera(lin, params_for())
    assert out.shape == (3, h, w) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert render_camera(lin, GAMMA, params_for(jpeg_quality=90, h264_crf=30)).shape == (h, w, 3)


def test_borders_carry_no_demosaic_artefacts():
    lin = linear_image(60, 80, seed=5)
    out = apply_camera(lin, params_for(beta1=None, beta2=None, alpha=None, pattern="GBRG"))
    a, b = out.numpy(), lin.numpy()
    border = np.ones(a.shape[1:], bool)
    border[3:-3, 3:-3] = False
    assert psnr(a[:, border], b[:, border]) > psnr(a[:, ~border], b[:, ~border]) - 3.0


def test_cpu_and_device_agree_within_one_lsb(device):
    lin = linear_image(64, 96, seed=6)
    sat = (lin > 0.7).float()
    params = params_for(alpha=1.0)
    cpu = GAMMA.encode(apply_camera(lin, params, sat=sat).permute(1, 2, 0).numpy()).astype(int)
    out = apply_camera(lin.to(device), params, sat=sat.to(device))
    assert out.device.type == torch.device(device).type
    other = GAMMA.encode(out.cpu().permute(1, 2, 0).numpy()).astype(int)
    assert np.abs(cpu - other).max() <= 1


# -- compression -----------------------------------------------------------------------------------------------
def test_compression_keeps_rgb_order_and_size():
    code = np.zeros((33, 47, 3), np.uint8)
    code[..., 0] = 230  # red
    code[:, 20:, 2] = 200  # a blue stripe
    for params in ({"jpeg_quality": 95, "h264_crf": None}, {"jpeg_quality": None, "h264_crf": 10},
                   {"jpeg_quality": 70, "h264_crf": 20}):
        out = compress(code, params)
        assert out.shape == code.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - code).mean() < 6, params
        assert out[5, 5, 0] > 200 and out[5, 5, 2] < 30 and out[5, 40, 2] > 170
    assert compress(code, {"jpeg_quality": None, "h264_crf": None}) is code


def test_lower_jpeg_quality_loses_more():
    code = (correlated_image(64, 96, seed=7) * 255).round().astype(np.uint8)
    errors = [np.abs(compress(code, {"jpeg_quality": q}).astype(int) - code).mean() for q in (95, 50, 10)]
    assert errors[0] < errors[1] < errors[2]
