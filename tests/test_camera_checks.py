"""Issue 19 review fixes on the generation side: camera option errors, ``--drop-static`` with the camera, what
the manifest and export say about camera runs, and ``train-check``'s swap test on camera pairs.

Static windows are decided on identical frames (the oracle: a window of equal frames is static, whatever the
camera does afterwards); the swap test is checked on pans whose blur spans several pixels (a real swap must
still be found) and on slow smooth pans (the camera's noise alone must not read as a swap)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import write_frame_folder

from blursynth.config.camera import CameraFields, check_camera_options, parse_pair
from blursynth.config.parse import parse_range
from blursynth.errors import ConfigError
from blursynth.shards.listing import list_shards
from blursynth.train.alignment import check_alignment, measure_pair

H, W = 48, 64


def pan(n: int, speed: float, *, seed: int = 1, level: tuple[float, float] = (180.0, 40.0)) -> np.ndarray:
    """n frames of a smooth random texture panning ``speed`` px per frame to the left (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    width = W + int(np.ceil(speed * n)) + 16
    small = rng.random((H // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    big = cv2.GaussianBlur(cv2.resize(small, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC), (0, 0), 3)
    frames = []
    for k in range(n):
        shift = np.float32([[1, 0, -speed * k], [0, 1, 0]])
        frame = cv2.warpAffine(big, shift, (W, H), flags=cv2.INTER_LINEAR)
        frames.append(np.clip(frame * level[0] + level[1], 0, 255).astype(np.uint8))
    return np.stack(frames)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# -- option errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "names", "shown"), [
    (("--camera-noise-scale", "0"), "--camera-noise-scale", "0 < LO"),
    (("--camera-noise-scale", "0,1.5"), "--camera-noise-scale", "got 0,1.5"),
    (("--camera-noise-scale", "nan"), "--camera-noise-scale", "'nan'"),
    (("--camera-jpeg", "abc"), "--camera-jpeg", "expected LO,HI or one value (whole numbers), got 'abc'"),
    (("--camera-jpeg", "101"), "--camera-jpeg", "got 101"),
    (("--camera-jpeg", "70,95,99"), "--camera-jpeg", "LO,HI"),
    (("--camera-jpeg", "90.5"), "--camera-jpeg", "whole numbers"),
    (("--camera-jpeg", "95,70"), "--camera-jpeg", "write it as 70,95"),
    (("--no-camera-saturation", "--no-camera-noise", "--no-camera-mosaic"), "--camera rsblur", "changes nothing"),
])
def test_camera_option_errors_name_the_option_and_the_value_as_given(tmp_path, args, names, shown):
    src = write_frame_folder(tmp_path / "clip", pan(5, 1.0))
    result = invoke("average", src, tmp_path / "out", "--frames", 5, "--camera", "rsblur", *args)
    line = assert_clean_error(result, names)
    assert shown in line
    assert "101,101" not in line and "a integer" not in line
    assert not (tmp_path / "out").exists()


def test_noise_scale_bounds_and_stages_that_are_not_the_identity():
    assert parse_pair("0.25,2", "--camera-noise-scale") == (0.25, 2.0)
    assert parse_pair("80", "--camera-jpeg", integer=True) == (80, 80)
    with pytest.raises(ConfigError, match="0 < LO"):
        check_camera_options(CameraFields(camera="rsblur", camera_noise_scale=(0.0, 0.0)))
    check_camera_options(CameraFields(camera="rsblur", camera_noise_scale=(1e-3, 1e-3)))
    off = {"camera_saturation": False, "camera_noise": False, "camera_mosaic": False}
    with pytest.raises(ConfigError, match="changes nothing"):
        check_camera_options(CameraFields(camera="rsblur", **off))
    for stage in ({"camera_jpeg": (90, 90)}, {"camera_h264_crf": 23}, {"camera_mosaic": True}):
        check_camera_options(CameraFields(camera="rsblur", **(off | stage)))  # one stage left: accepted
    # the other options' range messages read right
    with pytest.raises(ConfigError, match="expected an integer or a range"):
        parse_range("x", "--static-objects", integer=True)
    with pytest.raises(ConfigError, match="expected a number or a range"):
        parse_range("x", "--scale")


def test_help_lists_the_matrices_and_local_shows_the_plain_camera_example():
    from blursynth.camera.matrices import CAMERA_MATRICES

    text = " ".join(run_ok("average", "--help").output.split())
    for name in CAMERA_MATRICES:
        assert name in text
    assert "on the CPU whatever --device" in text
    local = run_ok("local", "--help").output
    examples = [line.strip() for line in local.splitlines()
                if "--camera" in line and line.strip().startswith("blursynth")]
    assert examples and all(line.endswith("--camera rsblur") for line in examples), examples


# -- --drop-static with the camera -----------------------------------------------------------------------------
def test_drop_static_with_the_camera_drops_every_window_of_identical_frames(tmp_path):
    src = write_frame_folder(tmp_path / "still", np.repeat(pan(1, 0.0), 10, axis=0))
    plain = invoke("average", src, tmp_path / "plain", "--frames", 5, "--fps", 240, "--drop-static")
    cam = invoke("average", src, tmp_path / "cam", "--frames", 5, "--fps", 240, "--drop-static", "--camera", "rsblur")
    line = assert_clean_error(cam, "all 2 windows dropped")
    assert line == assert_clean_error(plain, "all 2 windows dropped")


def test_drop_static_with_the_camera_keeps_the_moving_windows_of_the_plain_run(tmp_path):
    frames = np.concatenate([np.repeat(pan(1, 0.0), 10, axis=0), pan(5, 2.0)])  # 2 still windows, 1 moving
    src = write_frame_folder(tmp_path / "mixed", frames)
    common = ("--frames", 5, "--fps", 240, "--drop-static", "-q")
    run_ok("average", src, tmp_path / "plain", *common)
    run_ok("average", src, tmp_path / "cam", *common, "--camera", "rsblur")
    keys = {}
    for name in ("plain", "cam"):
        with h5py.File(tmp_path / name / "train" / "00000.h5") as f:
            keys[name] = [json.loads(m)["sample"] for m in f["meta"].asstr()[:]]
        assert manifest(tmp_path / name)["totals"]["static_windows"] == 2
    assert keys["cam"] == keys["plain"] and len(keys["cam"]) == 1


# -- manifest and export of a camera run -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def camera_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("camrun")
    src = write_frame_folder(tmp / "clip", pan(10, 2.0))
    run_ok("average", src, tmp / "cam", "--frames", 5, "--fps", 240, "--camera", "rsblur", "-q")
    run_ok("average", src, tmp / "plain", "--frames", 5, "--fps", 240, "-q")
    return tmp, src


def test_the_manifest_records_sat_mask_as_stored(camera_run):
    tmp, src = camera_run
    cam, plain = manifest(tmp / "cam"), manifest(tmp / "plain")
    with h5py.File(tmp / "cam" / "train" / "00000.h5") as f:
        assert "sat_mask" in f
    assert cam["config"]["sat_mask"] is True and plain["config"]["sat_mask"] is False
    assert "sat_mask" not in cam["fingerprint"]  # the option as given: --sat-mask beside --camera is the same run
    run_ok("average", src, tmp / "cam", "--frames", 5, "--fps", 240, "--camera", "rsblur", "-q")


def test_export_of_camera_shards_says_a_camera_dataset_has_no_plain_mean(camera_run, caplog):
    from blursynth.shards.export import export

    tmp, _ = camera_run
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        export(tmp / "cam", tmp / "gopro", "gopro")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "has no plain mean" in text and "--keep-plain-mean" not in text
    assert not list((tmp / "gopro").rglob("blur/*.png")) and list((tmp / "gopro").rglob("blur_gamma/*.png"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        export(tmp / "plain", tmp / "gopro_plain", "gopro")
    assert "--keep-plain-mean" in " ".join(r.getMessage() for r in caplog.records)  # plain shards: the advice


# -- train-check's swap test on camera pairs -------------------------------------------------------------------
@pytest.mark.parametrize("level", [(180.0, 40.0), (30.0, 5.0)], ids=["mid", "dark"])
def test_camera_noise_on_a_slow_smooth_pan_is_not_a_swap(tmp_path, level):
    src = write_frame_folder(tmp_path / "slow", pan(15, 0.5, level=level))
    run_ok("average", src, tmp_path / "sl1", "--frames", 5, "--fps", 240, "--camera", "rsblur", "-q")
    align = check_alignment(list_shards(tmp_path / "sl1").with_samples())
    assert align["checked"] == align["camera_pairs"] == 3
    assert align["problems"] == [], align["problems"]
    with h5py.File(tmp_path / "sl1" / "train" / "00000.h5") as f:
        blur, sharp = f["blur"][0], f["sharp"][0]
    assert measure_pair(blur, sharp).problem().startswith("swapped")  # the unfiltered test reads the noise


def test_a_swapped_camera_pair_is_still_found(tmp_path):
    src = write_frame_folder(tmp_path / "fast", pan(10, 4.0))
    out = tmp_path / "fast_cam"
    run_ok("average", src, out, "--frames", 5, "--fps", 240, "--camera", "rsblur", "-q")
    with h5py.File(out / "train" / "00000.h5", "r+") as f:
        b, s = f["blur"][1], f["sharp"][1]
        f["blur"][1], f["sharp"][1] = s, b
    align = check_alignment(list_shards(out).with_samples())
    assert [(p["index"], p["problem"].split(" ")[0]) for p in align["problems"]] == [(1, "swapped")]


def test_train_check_of_the_reviewers_camera_repro_passes_alignment(tmp_path):
    src = write_frame_folder(tmp_path / "slow", pan(25, 0.5))
    run_ok("average", src, tmp_path / "sl1", "--frames", 5, "--fps", 240, "--camera", "rsblur", "-q")
    result = invoke("train-check", tmp_path / "sl1", "--steps", 3, "--crop", 32, "--batch-size", 2,
                    "--eval-crop", 32, "--width", 8, "--blocks", 1, "--device", "cpu")
    assert "alignment: 0 of 5 checked pairs" in result.output, result.output
    assert "5 camera pair(s)" in result.output and "): swapped" not in result.output
    report = json.loads((tmp_path / "sl1" / "train_check" / "report.json").read_text())
    assert report["alignment"]["problems"] == [] and report["alignment"]["camera_pairs"] == 5
