"""`blursynth stats` counts measurable motion only (issue 16, section 1), LODE's raw curve with --raw-flow.

Fixtures with known motion, lossless at 240 fps (gap 2):
- a static flat grey clip under sigma = 1 sensor noise (427x240): nothing moves, so the true blurred-area
  ratio is 0 at any threshold; raw DIS flow reports ~0.9 of the pixels above 1 px there;
- a low-texture high-fps scene (smooth gradient, flat wall, a small textured object creeping 0.3 px/frame,
  so 0.6 px per pair): the true ratio at 1 px is 0, and DIS must agree with DeepFlow;
- a textured pan (1.5 px/frame, 3 px per pair): nearly every pixel is measurable (all but the columns the
  pan carries out of the frame) and moves 3 px.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import invoke
from conftest import pan_frames, textured_image, write_video
from motion_fixtures import flat_noise_frames, low_texture_frames

from blursynth.stats.outputs import CSV_NAME, JSON_NAME

FLOWS = ["dis", "deepflow", "farneback"]
THRESHOLDS = ["--flow-threshold", "0.5,1,2,4"]


def stats(src: Path, out: Path, *args) -> dict:
    """Run ``stats`` on one source; its dataset entry from the JSON, with the settings and CSV rows added."""
    result = invoke("stats", f"D={src}", *THRESHOLDS, "--pairs-per-source", 3, "--out", out, "-q", *args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    doc = json.loads((out / JSON_NAME).read_text(encoding="utf-8"))
    (d,) = doc["datasets"]
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return d | {"settings": doc["settings"], "rows": rows,
                "ratio": dict(zip(doc["thresholds"], d["mean"], strict=True))}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("measurable")
    h, w, n = 96, 128, 12
    pan = pan_frames(textured_image(h + 8, w + 30, seed=3), n, h, w, 1.5)
    return {
        "flat": write_video(root / "flat.mkv", flat_noise_frames(8, 240, 427, sigma=1.0, seed=0), fps=240),
        "low": write_video(root / "low.mkv", low_texture_frames(8), fps=240),
        "pan": write_video(root / "pan.mkv", pan, fps=240),
    }


@pytest.mark.parametrize("flow", FLOWS)
def test_flat_noise_is_not_blur(clips, tmp_path, flow):
    d = stats(clips["flat"], tmp_path / "out", "--flow", flow)
    assert d["ratio"][1.0] <= 0.01 and d["ratio"][0.5] <= 0.01
    assert d["measurable_fraction"]["mean"] < 0.1  # there is nothing to measure on a flat patch
    assert d["settings"]["raw_flow"] is False


def test_raw_flow_is_lode_curve_and_dis_invents_motion_there(clips, tmp_path):
    """--raw-flow: every pixel's flow as the backend gives it (the paper's curve): DIS's invented motion
    counts, and no measurable fraction is measured."""
    d = stats(clips["flat"], tmp_path / "out", "--flow", "dis", "--raw-flow")
    assert d["ratio"][1.0] > 0.5  # ~0.86 with flow/opencv.py's DIS (0.89 with the MEDIUM preset it replaced)
    assert d["settings"]["raw_flow"] is True
    assert d["measurable_fraction"] == {"mean": None, "std": None}
    assert d["sources"][0]["measurable_fraction"] is None
    assert {(r["measurable_fraction_mean"], r["measurable_fraction_std"]) for r in d["rows"]} == {("", "")}


@pytest.mark.parametrize("flow", FLOWS)
def test_textured_motion_stays_measurable(clips, tmp_path, flow):
    """Guard against masking too much: the textured pan keeps >= 0.9 of its pixels and its 3 px per pair."""
    d = stats(clips["pan"], tmp_path / "out", "--flow", flow)
    assert d["measurable_fraction"]["mean"] >= 0.9
    assert d["ratio"][2.0] > 0.85 and d["ratio"][4.0] < 0.1


def test_low_texture_dis_agrees_with_deepflow(clips, tmp_path):
    dis = stats(clips["low"], tmp_path / "dis", "--flow", "dis")
    deep = stats(clips["low"], tmp_path / "deep", "--flow", "deepflow")
    for th in (0.5, 1.0, 2.0):
        assert dis["ratio"][th] == pytest.approx(deep["ratio"][th], abs=0.1), th
    assert dis["ratio"][1.0] <= 0.05 and deep["ratio"][1.0] <= 0.05  # the object moves 0.6 px per pair
    raw = stats(clips["low"], tmp_path / "raw", "--flow", "dis", "--raw-flow")
    assert raw["ratio"][1.0] > dis["ratio"][1.0] + 0.1  # what the raw curve made of it


def test_help_names_the_raw_flow_option():
    result = invoke("stats", "--help")
    assert result.exit_code == 0 and "--raw-flow" in result.output and "measurable" in result.output
