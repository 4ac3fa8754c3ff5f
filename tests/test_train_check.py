"""`blursynth train-check` verdicts (issue 17): learnability measured on held-out *train* windows, val as a
warning, pair alignment without training, comparable loss figures, counts, exit codes, the shipped clip.

Datasets are built with the real recipe from lossless FFV1 pans (``conftest.write_video``): ``pans`` holds a
horizontal pan (train) and a vertical pan (val), the issue's two-pans case; doctored copies are edited with
h5py. Oracles are our own: shifts applied with ``cv2.warpAffine``/``np.roll``, blur as an explicit box
average of shifted crops, PSNR as 10 log10(1 / MSE) in float64.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke
from click.testing import CliRunner
from conftest import motion_frames, write_video
from metric_oracle import psnr_u8, ssim_u8
from objects_data import small_local_run
from textures import textured_image

from blursynth.cli.main import cli
from blursynth.config import AverageConfig
from blursynth.config.train import TrainCheckConfig
from blursynth.recipes.average import run_average
from blursynth.seeding import create_rng
from blursynth.shards.listing import list_shards
from blursynth.train.alignment import measure_pair
from blursynth.train.check import loss_window, run_train_check
from blursynth.train.example import build_example_dataset, example_clip
from blursynth.train.holdout import check_splits, choose_heldout

ROOT = Path(__file__).resolve().parents[1]
REPORT_KEYS = {"validation", "alignment", "metrics", "gain_db", "img_per_s", "passed", "eval_on", "train_samples",
               "eval_samples", "loss_first", "loss_last", "loss_window", "triptychs"}
TINY = dict(steps=12, batch_size=4, crop=32, width=8, blocks=1, device="cpu")
TINY_ARGS = ["--steps", "5", "--batch-size", "2", "--crop", "32", "--width", "8", "--blocks", "1", "--device", "cpu"]


def cfg(out: Path, report: Path, **kw) -> TrainCheckConfig:
    return TrainCheckConfig(**({"out": str(out), "report_dir": str(report), "min_gain_db": -100.0} | TINY | kw))


def quiet(_line: str) -> None:
    pass


def shard_rows(path: Path) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    with h5py.File(path, "r") as f:
        return f["blur"][()], f["sharp"][()], [json.loads(t) for t in f["meta"].asstr()[()]]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def centre(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    return a[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]


def pan_clip(path: Path, seed: int, vertical: bool, frames: int = 40) -> Path:
    """A 48 x 64 pan at 0.75 px/frame, to the right or (transposed) downwards."""
    if vertical:
        f = motion_frames(textured_image(72, 110, seed=seed), [0.75] * frames, 64, 48).transpose(0, 2, 1, 3)
    else:
        f = motion_frames(textured_image(56, 110, seed=seed), [0.75] * frames, 48, 64)
    return write_video(path, np.ascontiguousarray(f))


@pytest.fixture(scope="module")
def pans(tmp_path_factory):
    """The issue's case: a horizontal pan in train, a vertical pan in val (one source per split)."""
    tmp = tmp_path_factory.mktemp("pans")
    pan_clip(tmp / "clips" / "across.mkv", 1, vertical=False)
    pan_clip(tmp / "clips" / "down.mkv", 2, vertical=True)
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(tmp / "clips"),), out=str(out), val_fraction=0.5, shard_size=100, seed=0,
                              device="cpu"))
    train, val = list_shards(out).with_samples("train"), list_shards(out).with_samples("val")
    assert [list(e.marker.sources) for e in train + val] == [["across.mkv"], ["down.mkv"]]
    return SimpleNamespace(out=out, root=tmp, train=train[0].path, val=val[0].path)


@pytest.fixture(scope="module")
def loc(tmp_path_factory):
    """`blursynth local`: 6 samples of 64 x 80 with masks, one moving object each, both splits, shards of 2."""
    return small_local_run(tmp_path_factory.mktemp("loc"))


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """Two sources, train only, windows of 7 frames every 3 (overlapping), shards of 5."""
    tmp = tmp_path_factory.mktemp("overlap")
    pan_clip(tmp / "clips" / "a.mkv", 3, vertical=False, frames=46)
    pan_clip(tmp / "clips" / "b.mkv", 4, vertical=False, frames=34)
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(tmp / "clips"),), out=str(out), frames=(7, 7), stride=3, shard_size=5,
                              seed=0, device="cpu"))
    return out


# -- finding 1: the verdict is learnability on held-out train windows; val is a warning -------------------------
def test_verdict_is_measured_on_held_out_train_windows_and_val_is_reported_beside(pans, tmp_path):
    report, passed = run_train_check(cfg(pans.out, tmp_path / "rep"), echo=quiet)
    assert passed is True and report["eval_on"].startswith("held-out train windows")
    blur, sharp, _ = shard_rows(pans.train)
    entries = list_shards(pans.out).with_samples("train")
    heldout, _ = choose_heldout(entries, 0.2, 0)
    assert len(heldout) == math.ceil(0.2 * len(blur)) == report["eval_samples"]
    # identity PSNR of the held-out windows: our PSNR of their 48 x 48 centre crops (train images only)
    expected = np.mean([psnr_u8(centre(blur[i], 48), centre(sharp[i], 48)) for i in heldout])
    assert report["metrics"]["identity"]["psnr"] == pytest.approx(expected, abs=1e-3)
    vblur, vsharp, _ = shard_rows(pans.val)
    val = report["val"]
    assert val["samples"] == len(vblur)
    assert val["metrics"]["identity"]["psnr"] == pytest.approx(
        np.mean([psnr_u8(centre(b, 48), centre(s, 48)) for b, s in zip(vblur, vsharp, strict=True)]), abs=1e-3)
    assert val["gain_db"] == pytest.approx(val["metrics"]["model"]["psnr"] - val["metrics"]["identity"]["psnr"])
    metrics = report["metrics"]
    assert report["gain_db"] == pytest.approx(metrics["model"]["psnr"] - metrics["identity"]["psnr"])
    assert REPORT_KEYS <= set(report) and report["validation"]["ok"] is True
    assert metrics["identity"]["ssim"] == pytest.approx(
        np.mean([ssim_u8(centre(blur[i], 48), centre(sharp[i], 48)) for i in heldout]), abs=1e-4)
    assert report["train_samples"] == len(blur) - len(heldout) and report["img_per_s"] > 0
    on_disk = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert on_disk["passed"] is True and on_disk["metrics"] == json.loads(json.dumps(metrics))
    assert report["triptychs"] == [f"triptych_{i:02d}.png" for i in range(min(4, len(heldout)))]
    for i, name in zip(heldout, report["triptychs"], strict=False):
        row = read_rgb(tmp_path / "rep" / name)  # blur | restored | sharp
        assert row.shape == (48, 3 * 48, 3)
        np.testing.assert_array_equal(row[:, :48], centre(blur[i], 48))
        np.testing.assert_array_equal(row[:, 96:], centre(sharp[i], 48))


def test_masks_give_psnr_inside_the_mask_on_held_out_windows(loc, tmp_path):
    report, _ = run_train_check(cfg(loc, tmp_path / "rep"), echo=quiet)
    entries = list_shards(loc).with_samples("train")
    heldout, dropped = choose_heldout(entries, 0.2, 0)
    assert dropped == []  # local samples share no frames
    rows = []
    for e in entries:
        with h5py.File(e.path, "r") as f:
            rows += [(f["blur"][i], f["sharp"][i], f["mask"][i]) for i in range(len(f["blur"]))]
    side = 64  # min(512, 64, 80)
    vals = [psnr_u8(centre(rows[i][0], side), centre(rows[i][1], side),
                     np.broadcast_to((centre(rows[i][2], side) >= 128)[..., None], (side, side, 3))) for i in heldout]
    finite = [v for v in vals if math.isfinite(v)]
    assert finite and report["eval_samples"] == len(heldout)
    assert report["metrics"]["identity"]["psnr_mask"] == pytest.approx(np.mean(finite), abs=1e-3)
    # blur == sharp outside the mask, so the identity is worse inside it than over the whole image
    assert report["metrics"]["identity"]["psnr_mask"] < report["metrics"]["identity"]["psnr"]
    assert {"psnr", "ssim", "psnr_mask"} <= set(report["val"]["metrics"]["identity"])


def test_img_per_s_counts_the_images_actually_trained(loc, tmp_path):
    report, _ = run_train_check(cfg(loc, tmp_path / "rep", batch_size=8), echo=quiet)
    per_step = min(8, report["train_samples"])
    assert per_step < 8  # the situation under test
    assert report["img_per_s"] == pytest.approx(report["settings"]["steps"] * per_step / report["train_seconds"])


def test_cli_gain_below_min_gain_exits_3_and_above_exits_0(pans, tmp_path):
    result = invoke("train-check", pans.out, *TINY_ARGS, "--min-gain-db", "100", "--report", tmp_path / "r1")
    assert result.exit_code == 3, result.output
    assert "img/s" in result.output and "FAILED (gain" in result.output and "Traceback" not in result.output
    report = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert report["passed"] is False and report["gain_db"] < 100
    result = invoke("train-check", pans.out, *TINY_ARGS, "--min-gain-db", "-100", "--report", tmp_path / "r2")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output


@pytest.mark.parametrize("bad", [["--crop", "30"], ["--steps", "0"], ["--holdout", "1.5"], ["--holdout", "0"],
                                 ["--batch-size", "0"], ["--eval-crop", "10"], ["--lr", "0"],
                                 ["--max-misaligned", "2"]])
def test_cli_bad_options_exit_2(pans, tmp_path, bad):
    result = invoke("train-check", pans.out, *TINY_ARGS, *bad, "--report", tmp_path / "rep")
    assert_clean_error(result, bad[0], 2)
    assert not (tmp_path / "rep").exists()


def test_cli_crop_larger_than_images_is_a_clean_error(pans, tmp_path):
    result = invoke("train-check", pans.out, "--steps", "2", "--device", "cpu", "--report", tmp_path / "rep")
    assert_clean_error(result, "96px crop", 1)


def test_val_split_does_not_change_the_verdict(pans, tmp_path):
    """The same train source with and without a val split: the same training, held-out set and gain."""
    alone = tmp_path / "alone"
    run_average(AverageConfig(inputs=(str(pans.root / "clips" / "across.mkv"),), out=str(alone), shard_size=100,
                              seed=0, device="cpu"))
    with_val, _ = run_train_check(cfg(pans.out, tmp_path / "r1"), echo=quiet)
    without, _ = run_train_check(cfg(alone, tmp_path / "r2"), echo=quiet)
    assert "val" in with_val and "val" not in without
    for key in ("train_samples", "eval_samples", "gain_db", "loss_first", "loss_last"):
        assert with_val[key] == pytest.approx(without[key], rel=1e-6), key


def test_low_val_gain_is_a_warning_not_a_failure(pans, tmp_path):
    first, _ = run_train_check(cfg(pans.out, tmp_path / "r"), echo=quiet)
    threshold = first["val"]["gain_db"] + 0.01  # a threshold the val gain misses (the same training again)
    lines: list[str] = []
    report, passed = run_train_check(cfg(pans.out, tmp_path / "r", min_gain_db=threshold), echo=lines.append)
    assert report["val"]["gain_db"] == pytest.approx(first["val"]["gain_db"])
    assert report["val"]["generalises"] is False
    assert any("warning: below" in line and "val" in line for line in lines), lines
    assert passed is (report["gain_db"] >= report["settings"]["min_gain_db"])


def test_held_out_blocks_are_seeded_consecutive_and_share_no_frame_with_training(overlapping):
    entries = list_shards(overlapping).with_samples("train")
    metas = [m for e in entries for m in shard_rows(e.path)[2]]
    starts = set()
    for seed in range(6):
        heldout, dropped = choose_heldout(entries, 0.2, seed)
        assert (heldout, dropped) == choose_heldout(entries, 0.2, seed)  # deterministic
        position, expected = 0, []
        for e in entries:
            k = min(max(1, math.ceil(0.2 * e.count)), e.count - 1) if e.count > 1 else 0
            if k:
                start = int(create_rng(seed, "holdout", e.split, e.shard).integers(0, e.count - k + 1))
                expected += range(position + start, position + start + k)
                starts.add((e.shard, start))
            position += e.count
        assert heldout == expected
        held_frames = {(metas[i]["source"], f) for i in heldout for f in metas[i]["frames"]}
        for i, m in enumerate(metas):
            shares = any((m["source"], f) in held_frames for f in m["frames"])
            assert (i in dropped) == (shares and i not in heldout), i
        assert dropped  # windows overlap (stride 3 < N 7), so neighbours of a held-out block are dropped
        splits = check_splits(overlapping, 0.2, ("blur", "sharp"), seed=seed)
        assert sorted(splits.train.indices) == sorted(set(range(len(metas))) - set(heldout) - set(dropped))
        assert list(splits.heldout.indices) == heldout and splits.val is None
    assert len(starts) > len(entries)  # different seeds hold out different blocks


def test_too_few_train_samples_is_a_clean_error(tmp_path):
    pan_clip(tmp_path / "clips" / "one.mkv", 5, vertical=False, frames=10)  # one 7-13 frame window
    out = tmp_path / "out"
    run_average(AverageConfig(inputs=(str(tmp_path / "clips"),), out=str(out), frames=(7, 7), seed=0, device="cpu"))
    assert_clean_error(invoke("train-check", out, *TINY_ARGS, "--report", tmp_path / "rep"), str(out), 1)


# -- finding 1: alignment without training ---------------------------------------------------------------------
def box_pair(shift=(0.0, 0.0), seed=0, n=9, v=1.5, size=(96, 128)):
    """(blur, sharp): blur = mean of n crops panning v px/frame centred on sharp, then shifted by ``shift``."""
    h, w = size
    tex = textured_image(h + 40, w + 40, seed=seed).astype(np.float32)

    def crop(x, y):
        m = np.float32([[1, 0, 20 + x], [0, 1, 20 + y]])
        return cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

    sharp = crop(0, 0)
    blur = np.mean([crop(v * (i - n // 2) - shift[0], -shift[1]) for i in range(n)], axis=0)
    return tuple(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in (blur, sharp))


def test_aligned_box_blur_pair_is_good():
    found = measure_pair(*box_pair())
    assert found.shift < 0.3 and found.correlation > 0.9 and found.hf_ratio < 1 and found.problem() is None


@pytest.mark.parametrize("shift", [(5.0, -3.0), (-4.0, 0.0), (0.0, 6.5)])
def test_shift_is_measured_in_pixels(shift):
    found = measure_pair(*box_pair(shift))
    assert found.dx == pytest.approx(shift[0], abs=0.35) and found.dy == pytest.approx(shift[1], abs=0.35)
    assert found.problem().startswith("shifted")


def test_an_object_off_its_middle_pose_over_a_still_background_is_not_a_shift():
    """Local blur: a sharp-edged object accelerating over a smooth still background. Its blur centroid lies
    off the middle pose (positions 0 1 2 4 7 11 16: mean 5.9, middle 4), which pulls the phase peak, but the
    still background is aligned, so the pair is good; the same pair moved as a whole is shifted."""
    h, w = 64, 80
    yy, xx = np.mgrid[:h, :w]
    background = (0.5 + 0.3 * np.sin(xx / 9.0 + 0.5 * np.cos(yy / 7.0)))[..., None].repeat(3, axis=2)
    obj = textured_image(24, 24, seed=3)

    def frame(x):
        img = background.copy()
        img[20:44, 10 + x : 34 + x] = obj
        return img

    positions = [0, 1, 2, 4, 7, 11, 16]
    blur = np.mean([frame(x) for x in positions], axis=0)
    blur, sharp = (np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in (blur, frame(positions[3])))
    assert measure_pair(blur, sharp).problem() is None
    assert measure_pair(np.roll(blur, 5, axis=1), sharp).problem().startswith("shifted")


def test_swapped_and_mismatched_pairs_are_named():
    blur, sharp = box_pair()
    assert measure_pair(sharp, blur).problem().startswith("swapped")
    other_blur, _ = box_pair(seed=7)
    assert measure_pair(other_blur, sharp).problem().startswith("mismatched")
    flat = np.full((48, 64, 3), 128, np.uint8)
    assert math.isnan(measure_pair(flat, flat).correlation)  # nothing to align: not judged


def test_doctored_shard_fails_before_training_and_names_each_pair(pans, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pans.out, out)
    train, val = out / "train" / pans.train.name, out / "val" / pans.val.name
    with h5py.File(train, "r+") as f:
        f["blur"][1] = np.roll(f["blur"][1], 6, axis=1)  # shifted
        b, s = f["blur"][2], f["sharp"][2]
        f["blur"][2], f["sharp"][2] = s, b  # swapped
    with h5py.File(val, "r+") as f:
        f["sharp"][0] = np.ascontiguousarray(np.rot90(f["sharp"][0], 2))  # other content
    result = invoke("train-check", out, *TINY_ARGS, "--report", tmp_path / "rep")
    assert result.exit_code == 3, result.output
    assert "train/00000.h5[1] (source across.mkv): shifted by (+6.0" in result.output
    assert "train/00000.h5[2] (source across.mkv): swapped" in result.output
    assert re.search(r"val/00000\.h5\[0\] \(source down\.mkv\): (mismatched|shifted)", result.output), result.output
    assert "trained" not in result.output and "FAILED (3 of" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    problems = {(p["split"], p["shard"], p["index"], p["source"]) for p in report["alignment"]["problems"]}
    assert problems == {("train", 0, 1, "across.mkv"), ("train", 0, 2, "across.mkv"), ("val", 0, 0, "down.mkv")}
    assert report["passed"] is False
    # a tolerance lets it go on to training
    result = invoke("train-check", out, *TINY_ARGS, "--max-misaligned", "0.5", "--report", tmp_path / "rep2")
    assert "trained" in result.output, result.output


# -- finding 2: comparable loss figures; finding 3: counts ------------------------------------------------------
def test_loss_is_the_mean_of_the_first_and_last_steps(pans, tmp_path):
    lines: list[str] = []
    report, _ = run_train_check(cfg(pans.out, tmp_path / "rep", steps=12), echo=lines.append)
    curve = report["loss_curve"]
    assert len(curve) == 12 and report["loss_window"] == loss_window(12) == 2
    assert report["loss_first"] == pytest.approx(np.mean(curve[:2])) and report["loss_last"] == pytest.approx(
        np.mean(curve[-2:]))
    line = next(x for x in lines if x.startswith("trained"))
    assert f"first / last 2 steps) {report['loss_first']:.5f} -> {report['loss_last']:.5f}" in line
    assert loss_window(300) == 20 and loss_window(3) == 1


def test_failed_validation_counts_the_samples_on_disk(pans, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pans.out, out)
    victim = out / "train" / pans.train.name
    victim.write_bytes(victim.read_bytes()[:2000])
    on_disk = sum(json.loads(p.read_text())["count"] for p in out.glob("*/*_stats.json"))
    result = invoke("train-check", out, *TINY_ARGS, "--report", tmp_path / "rep")
    assert result.exit_code == 3, result.output
    assert f"validation: FAILED, {on_disk} samples in 2 shards (1 with errors)" in result.output
    assert "trained" not in result.output
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["validation"]["ok"] is False


# -- finding 4: exit 1 for what is not a dataset, exit 3 for a dataset that fails ------------------------------
@pytest.mark.parametrize("content", ["empty", "files", "foreign manifest"])
def test_a_folder_that_is_not_a_dataset_exits_1(tmp_path, content):
    folder = tmp_path / "notadataset"
    folder.mkdir()
    if content == "files":
        (folder / "notes.txt").write_text("hello")
        (folder / "images").mkdir()
    elif content == "foreign manifest":
        (folder / "manifest.json").write_text('{"name": "something else"}')
    error = assert_clean_error(invoke("train-check", folder, *TINY_ARGS), str(folder), 1)
    assert "not a blursynth output" in error
    assert not (folder / "train_check").exists()


def test_missing_out_and_file_exit_1(tmp_path):
    assert_clean_error(invoke("train-check", tmp_path / "nope", *TINY_ARGS), "nope", 1)
    (tmp_path / "afile").write_text("x")
    assert_clean_error(invoke("train-check", tmp_path / "afile", *TINY_ARGS), "afile", 1)


def test_a_damaged_dataset_exits_3(pans, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pans.out, out)
    (out / "manifest.json").unlink()  # shards are there: a damaged output, judged
    result = invoke("train-check", out, *TINY_ARGS, "--report", tmp_path / "rep")
    assert result.exit_code == 3, result.output
    assert "validation: FAILED" in result.output and "manifest.json: missing" in result.output


# -- finding 5: the quick check's clip is package data --------------------------------------------------------
def test_the_example_clip_ships_in_the_package():
    with example_clip() as clip:
        assert clip.is_file() and clip.parent.name == "assets" and clip.parent.parent.name == "train"
        assert clip.read_bytes() == (ROOT / "examples" / "clips" / "pan_zoom.mp4").read_bytes()
    assert "blursynth.train = assets/*.mp4" in (ROOT / "setup.cfg").read_text()


@pytest.mark.slow
def test_the_wheel_holds_the_clip_and_no_tests(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("blursynth-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = {i.filename: i.file_size for i in z.infolist()}
    assert "blursynth/train/assets/pan_zoom.mp4" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/", "docs/"))]
    assert max(names.values()) < 1_000_000 and sum(names.values()) < 3_000_000


# -- the quick check (finding 6: the documented figures) -------------------------------------------------------
@pytest.mark.slow
def test_quick_check_without_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, ["train-check"], prog_name="blursynth")
    wall = time.perf_counter() - t0
    print(result.output)
    print(f"quick check wall time: {wall:.1f} s")
    assert result.exit_code == 0, result.output
    assert re.search(r"\(\d+(\.\d+)? img/s\)", result.output), result.output
    assert "alignment: 0 of 16 checked pairs" in result.output
    m = re.search(r"PSNR ([\d.]+) -> ([\d.]+) dB \(([+-][\d.]+) dB", result.output)
    assert m, result.output
    before, after, gain = map(float, m.groups())
    assert gain >= 0.5 and after - before == pytest.approx(gain, abs=0.02)
    report = json.loads((tmp_path / "train_check" / "report.json").read_text())
    assert report["passed"] is True and report["gain_db"] >= 0.5 and report["out"] == "(example)"
    assert report["eval_on"].startswith("held-out train windows") and "val" not in report
    assert len(list((tmp_path / "train_check").glob("triptych_*.png"))) == len(report["triptychs"]) >= 1


def test_example_dataset_build_does_not_give_ghosting_advice_about_the_bundled_clip(tmp_path, caplog):
    """The bundled clip moves ~1.5 px per frame on purpose: `average` on it warns (the check is real), the quick
    check's own build does not print that advice, and the logger's level is restored afterwards."""
    with caplog.at_level(logging.INFO, logger="blursynth"):
        with example_clip() as clip:
            run_average(AverageConfig(inputs=(str(clip),), out=str(tmp_path / "plain"), device="cpu"))
        assert any("ghosting" in r.getMessage() for r in caplog.records)
        caplog.clear()
        build_example_dataset(tmp_path / "example")
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert logging.getLogger("blursynth.average").level == logging.NOTSET
    assert any((tmp_path / "example").glob("train/*.h5"))
