"""`blursynth stats`: blurred-area ratio vs optical-flow threshold (LODE/BladeNet Sec. 3, Fig. 3).

Two lossless synthetic clips with known motion carry the physics: a global pan of a textured image
(1.5 px/frame, every pixel moves) and a static textured background with one small textured square moving
3 px/frame (its area fraction is known). At 240 fps the span rule measures frames t -> t + 2, so the pan
moves 3 px and the square 6 px per pair. The helpers (parsing, the span rule, pair starts, the ratio) are
checked against brute-force oracles; the outputs for consistency with each other; bad input for clean
one-line errors and nothing written.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke
from conftest import motion_frames, pan_frames, textured_image, write_frame_folder, write_video

from blursynth.config.stats import (
    DEFAULT_SPAN_MS,
    MAX_THRESHOLDS,
    DatasetSpec,
    StatsConfig,
    parse_dataset,
    parse_thresholds,
)
from blursynth.errors import ConfigError, OutputError
from blursynth.seeding import create_rng
from blursynth.stats.curves import DatasetCurve
from blursynth.stats.flow_ratio import gap_frames, pair_starts, ratio_curve
from blursynth.stats.outputs import CSV_NAME, JSON_NAME, PNG_NAME, write_stats

H, W, N = 96, 128, 24
PAN_V = 1.5  # px/frame: 3 px per pair at 240 fps (gap 2), 1.5 px at 120 fps (gap 1)
OBJ = (30, 8, 36, 40)  # y, x, h, w of the moving square
OBJ_V = 3.0  # px/frame
AREA = OBJ[2] * OBJ[3] / (H * W)  # 0.117
# Measurable pixels of a pan pair (the default): a pixel whose match leaves the frame cannot be checked forward-
# backward, so it counts as not blurred. The pan carries 3 px (4 columns with the flow's sub-pixel error) out on
# the left, and a vertical flow error of a fraction of a pixel can take the first and last rows out.
PAN_MEASURABLE = 1 - 4 / W - 2 / H  # 0.948
THRESHOLDS = "0:8:0.5"
FILES = {CSV_NAME, JSON_NAME, PNG_NAME}


# -- helpers -------------------------------------------------------------------------------------------------


def run_ok(*args):
    result = invoke("stats", *args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def read_csv(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_json(out: Path) -> dict:
    return json.loads((out / JSON_NAME).read_text(encoding="utf-8"))


def curve(out: Path, label: str) -> dict[float, float]:
    """{threshold: mean ratio} of one dataset, from the CSV."""
    return {float(r["threshold"]): float(r["mean"]) for r in read_csv(out) if r["label"] == label}


def dataset(doc: dict, label: str) -> dict:
    (d,) = [d for d in doc["datasets"] if d["label"] == label]
    return d


def assert_complete(out: Path) -> None:
    """Exactly the three result files, no temporary leftovers."""
    assert {p.name for p in out.iterdir()} == FILES
    assert not list(out.rglob("*.partial*"))


# -- synthetic clips ---------------------------------------------------------------------------------------
def make_pan(n: int = N, height: int = H, width: int = W, seed: int = 3) -> np.ndarray:
    tex = textured_image(height + 8, width + int(PAN_V * n) + 8, seed=seed)
    return pan_frames(tex, n, height, width, PAN_V)


def make_local(n: int = N) -> np.ndarray:
    tex = textured_image(H + 8, W + 8, seed=5)
    return motion_frames(tex, [0.0] + [OBJ_V] * (n - 1), H, W, patch=OBJ)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    pan, local = make_pan(), make_local()
    return {
        "pan240": write_video(root / "pan240" / "pan.mkv", pan, fps=240),
        "pan120": write_video(root / "pan120" / "pan.mkv", pan, fps=120),
        "local240": write_video(root / "local240" / "local.mkv", local, fps=240),
        "panframes": write_frame_folder(root / "panframes", pan),
    }


@pytest.fixture(scope="module")
def main_out(clips, tmp_path_factory) -> tuple[Path, object]:
    """PAN and LOCAL at 240 fps, DIS, thresholds 0..8 step 0.5, 6 pairs each, default seed and workers."""
    out = tmp_path_factory.mktemp("main") / "stats"
    result = run_ok(f"PAN={clips['pan240']}", f"LOCAL={clips['local240']}", "--flow", "dis",
                    "--flow-threshold", THRESHOLDS, "--pairs-per-source", 6, "--out", out)
    return out, result


def test_clips_have_the_intended_motion():
    """Sanity of the fixtures themselves: the square's area and the frame-to-frame displacements."""
    assert AREA == pytest.approx(0.117, abs=0.005)
    local = make_local(4)
    diff = np.abs(local[0].astype(int) - local[2].astype(int)).max(axis=2) > 0
    y, x, h, w = OBJ
    assert not diff[: y - 1].any() and not diff[y + h + 1 :].any()  # the background is still
    assert diff[y : y + h, x : x + w + 2 * int(OBJ_V)].mean() > 0.8
    pan = make_pan(4)
    # the pan is a pure translation: frame 2 is frame 0 shifted left by 2 * 1.5 = 3 px
    assert np.abs(pan[2][:, :-3].astype(int) - pan[0][:, 3:].astype(int)).mean() < 1.0


# -- 1. physics ----------------------------------------------------------------------------------------------
def test_pan_ratio_at_1px_is_near_one(main_out):
    out, _ = main_out
    pan = curve(out, "PAN")
    assert pan[1.0] > 0.9
    assert pan[0.0] > PAN_MEASURABLE - 0.01  # every measurable pixel moves
    assert pan[2.5] > 0.9  # 3 px per pair ...
    assert pan[4.0] < 0.1  # ... and not more


def test_local_ratio_is_near_the_object_area(main_out):
    out, _ = main_out
    local, pan = curve(out, "LOCAL"), curve(out, "PAN")
    assert local[1.0] == pytest.approx(AREA, rel=0.5)
    assert local[4.0] == pytest.approx(AREA, rel=0.5)  # the square moves 6 px per pair
    assert local[8.0] < 0.02
    assert local[1.0] < 0.4 * pan[1.0]
    assert pan[1.0] - local[1.0] > 0.6


def test_curves_are_monotone_non_increasing(main_out):
    out, _ = main_out
    doc = read_json(out)
    assert len(doc["datasets"]) == 2
    for d in doc["datasets"]:
        means = np.array(d["mean"])
        assert np.all(np.diff(means) <= 1e-12), (d["label"], means)
        assert np.all((means >= 0) & (means <= 1))
        assert np.all(np.array(d["std"]) >= 0)


def test_default_deepflow_gives_the_same_picture(clips, tmp_path):
    """No --flow: DeepFlow, as in the paper (~0.03 s per pair at this size)."""
    out = tmp_path / "deep"
    run_ok(f"PAN={clips['pan240']}", f"LOCAL={clips['local240']}", "--flow-threshold", "0,1,2,4,8",
           "--pairs-per-source", 3, "--out", out, "-q")
    doc = read_json(out)
    assert doc["settings"]["flow"] == "deepflow"
    pan, local = curve(out, "PAN"), curve(out, "LOCAL")
    assert pan[0.0] > PAN_MEASURABLE - 0.01 and pan[1.0] > 0.9 and pan[2.0] > 0.9 and pan[4.0] < 0.1
    assert local[1.0] == pytest.approx(AREA, rel=0.5)
    assert local[8.0] < 0.02
    for d in doc["datasets"]:
        assert np.all(np.diff(d["mean"]) <= 1e-12)


# -- 2. the time-span rule -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fps", "gap"), [(120, 1), (240, 2), (250, 2), (30, 1), (1000, 8), (1, 1),
                                         (60, 1), (200, 2), (360, 3), (500, 4)])
def test_gap_frames(fps, gap):
    assert gap_frames(1000 * 2 / 240, fps) == gap
    assert gap_frames(DEFAULT_SPAN_MS, fps) == gap


def test_gap_frames_other_spans():
    assert gap_frames(1000 / 30, 30) == 1
    assert gap_frames(1000 / 30, 240) == 8
    assert gap_frames(0.001, 60) == 1  # at least one frame apart


def test_gap_follows_each_video_frame_rate(clips, tmp_path):
    """Same frames, 120 vs 240 fps: gap 1 (1.5 px) vs gap 2 (3 px)."""
    out = tmp_path / "out"
    run_ok(f"R120={clips['pan120']}", f"R240={clips['pan240']}", "--flow", "dis", "--flow-threshold", "1,2,4",
           "--pairs-per-source", 3, "--out", out, "-q")
    doc = read_json(out)
    (s120,) = dataset(doc, "R120")["sources"]
    (s240,) = dataset(doc, "R240")["sources"]
    assert (s120["fps"], s120["gap"]) == (pytest.approx(120), 1)
    assert (s240["fps"], s240["gap"]) == (pytest.approx(240), 2)
    for s in (s120, s240):
        assert s["status"] == "ok" and s["frames"] == N and (s["width"], s["height"]) == (W, H)
    r120, r240 = curve(out, "R120"), curve(out, "R240")
    assert r120[1.0] > 0.9 and r120[2.0] < 0.1  # 1.5 px
    assert r240[2.0] > 0.9 and r240[4.0] < 0.1  # 3 px


@pytest.mark.parametrize(("spec", "extra", "fps", "gap"), [
    ("F={}@240", [], 240, 2),
    ("F={}@120", [], 120, 1),
    ("F={}", ["--fps", "240"], 240, 2),
    ("F={}", ["--fps", "120"], 120, 1),
    ("F={}@240", ["--fps", "120"], 240, 2),  # NAME=PATH@FPS wins over --fps
])
def test_frame_folder_frame_rate(clips, tmp_path, spec, extra, fps, gap):
    out = tmp_path / "out"
    run_ok(spec.format(clips["panframes"]), *extra, "--flow", "dis", "--flow-threshold", "1,2,4",
           "--pairs-per-source", 2, "--out", out, "-q")
    (src,) = dataset(read_json(out), "F")["sources"]
    assert src["kind"] == "frames" and src["status"] == "ok"
    assert (src["fps"], src["gap"]) == (pytest.approx(fps), gap)
    ratio = curve(out, "F")
    if gap == 2:
        assert ratio[2.0] > 0.9 and ratio[4.0] < 0.1
    else:
        assert ratio[1.0] > 0.9 and ratio[2.0] < 0.1


def test_video_rate_precedence(clips, tmp_path):
    """A video keeps its own rate unless a rate is given: NAME=PATH@FPS, else --fps (as in ``average``);
    the container's rate is recorded beside an override."""
    out = tmp_path / "out"
    run_ok(f"OWN={clips['pan120']}", f"FORCED={clips['pan120']}@240", "--flow", "dis",
           "--flow-threshold", "1,2", "--pairs-per-source", 1, "--out", out, "-q")
    doc = read_json(out)
    own, forced = dataset(doc, "OWN")["sources"][0], dataset(doc, "FORCED")["sources"][0]
    assert own["gap"] == 1 and "container_fps" not in own
    assert forced["gap"] == 2 and forced["fps"] == pytest.approx(240) and forced["container_fps"] == pytest.approx(120)
    out2 = tmp_path / "out2"
    run_ok(f"OWN={clips['pan120']}", f"AT={clips['pan120']}@120", "--fps", "240", "--flow", "dis",
           "--flow-threshold", "1,2", "--pairs-per-source", 1, "--out", out2, "-q")
    doc = read_json(out2)
    assert dataset(doc, "OWN")["sources"][0]["gap"] == 2  # --fps overrides the container's 120 fps
    assert dataset(doc, "OWN")["sources"][0]["container_fps"] == pytest.approx(120)
    assert dataset(doc, "AT")["sources"][0]["gap"] == 1  # NAME=PATH@FPS wins over --fps


def test_unusable_sources_are_skipped_and_recorded(clips, tmp_path):
    """One dataset: a good video, a text file named .mp4, and a frame folder without a frame rate."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.mkv").write_bytes(clips["pan240"].read_bytes())
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    write_frame_folder(folder / "seq", make_pan(6))
    out = tmp_path / "out"
    result = run_ok(f"MIX={folder}", "--flow", "dis", "--flow-threshold", "1,4", "--pairs-per-source", 3,
                    "--out", out)
    d = dataset(read_json(out), "MIX")
    by_key = {s["key"]: s for s in d["sources"]}
    assert set(by_key) == {"good.mkv", "notes.mp4", "seq"}
    assert by_key["good.mkv"]["status"] == "ok" and by_key["good.mkv"]["pairs"] == 3
    for key in ("notes.mp4", "seq"):
        assert by_key[key]["status"] == "failed" and by_key[key]["pairs"] == 0 and by_key[key]["reason"]
    assert "--fps" in by_key["seq"]["reason"]
    assert d["pairs"] == 3
    assert {int(r["pairs"]) for r in read_csv(out)} == {3}
    assert "notes.mp4" in result.output  # warned about
    assert_complete(out)


def test_a_dataset_without_any_pair_keeps_an_empty_row(clips, tmp_path):
    """Documented: a dataset with no pair keeps its row with pairs 0 (mean/std empty in the CSV, null in JSON)."""
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 20)
    out = tmp_path / "out"
    run_ok(f"GOOD={clips['pan240']}", f"BAD={bad}", "--flow", "dis", "--flow-threshold", "1,4",
           "--pairs-per-source", 2, "--out", out, "-q")
    rows = [r for r in read_csv(out) if r["label"] == "BAD"]
    assert [list(r.values())[1:] for r in rows] == [["1.0", "", "", "0", "", "", "", ""],
                                                    ["4.0", "", "", "0", "", "", "", ""]]
    d = dataset(read_json(out), "BAD")
    assert d["pairs"] == 0 and d["mean"] == [None, None] and d["std"] == [None, None] and d["spans_ms"] == []
    assert d["sources"][0]["status"] == "failed"
    # a 7 x 4.5 in figure at 120 dpi with GOOD's curve (matplotlib's first colour, C0) and nothing in the
    # second colour (C1): a dataset without pairs is not drawn, not even as a legend entry
    png = cv2.cvtColor(cv2.imread(str(out / PNG_NAME), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(int)
    assert png.shape == (540, 840, 3)

    def near(rgb) -> int:
        return int((np.abs(png - np.array(rgb)).sum(axis=2) <= 30).sum())

    assert near((31, 119, 180)) > 100 and near((255, 127, 14)) == 0


# -- 3. parsing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("0.5,1,2,4", (0.5, 1.0, 2.0, 4.0)),
    ("4, 1 ,2,1", (1.0, 2.0, 4.0)),  # sorted, duplicates dropped, spaces allowed
    ("3", (3.0,)),
    ("0:2:0.5", (0.0, 0.5, 1.0, 1.5, 2.0)),  # STOP included
    ("0:2:0.7", (0.0, 0.7, 1.4)),  # STOP off the grid
    ("1:1:1", (1.0,)),
    (" 0:20:0.5 ", tuple(k * 0.5 for k in range(41))),
])
def test_parse_thresholds(text, expected):
    assert parse_thresholds(text) == pytest.approx(expected)


def test_parse_thresholds_float_steps_are_rounded():
    values = parse_thresholds("0:1:0.1")
    assert len(values) == 11
    assert values[-1] == 1.0 and values[3] == 0.3 and values[7] == 0.7  # not 0.30000000000000004
    assert parse_thresholds("0.1:0.3:0.1") == (0.1, 0.2, 0.3)
    assert len(parse_thresholds(f"0:{MAX_THRESHOLDS - 1}:1")) == MAX_THRESHOLDS


@pytest.mark.parametrize("text", [
    "5:1:1",  # reversed
    "0:2:0", "0:2:-1",  # step not positive
    "-1", "0,-0.5,1", "-1:2:1",  # negative
    "abc", "", " , ", "1,two", "0:2", "0:2:0.5:1", "0::1", "nan", "inf", "1,nan", "0:nan:1",
    f"0:{MAX_THRESHOLDS}:1", "0:1:1e-9",  # too many values
])
def test_parse_thresholds_errors(text):
    with pytest.raises(ConfigError) as info:
        parse_thresholds(text)
    assert "--flow-threshold" in info.value.message


@pytest.mark.parametrize("text", ["0:inf:1", "0:1e308:1e-308"])
def test_parse_thresholds_infinite_range_is_a_config_error(text):
    with pytest.raises(ConfigError):
        parse_thresholds(text)


@pytest.mark.parametrize(("text", "label", "path", "fps"), [
    ("GOPRO=data/GOPRO_Large_all", "GOPRO", "data/GOPRO_Large_all", None),
    ("GOPRO=data/GOPRO_Large_all@240", "GOPRO", "data/GOPRO_Large_all", 240.0),
    ("R=REDS/train_sharp@119.88", "R", "REDS/train_sharp", 119.88),
    ("R=clip.mp4@.5", "R", "clip.mp4", 0.5),
    ("data/clips/", "clips", "data/clips/", None),  # a bare folder: its name
    ("data/clip.MP4", "clip", "data/clip.MP4", None),  # a bare video: its stem
    ("data/clip.mkv@240", "clip", "data/clip.mkv", 240.0),
    ("data/frames.v2", "frames.v2", "data/frames.v2", None),  # not a video extension: kept
    ("A=b@", "A", "b@", None),  # '@' is a rate only when a number follows
    ("A=b@x", "A", "b@x", None),
    ("A=b@1e3", "A", "b@1e3", None),
    # '=' after a path separator is part of the path ...
    ("data/x=1/clips", "clips", "data/x=1/clips", None),
    ("./x=1/clips", "clips", "./x=1/clips", None),
    # ... while before any separator it names the dataset (NAME=PATH wins)
    ("x=1/clips", "x", "1/clips", None),
    ("=x", "=x", "=x", None),  # no name before '=': the whole text is the path
])
def test_parse_dataset(text, label, path, fps):
    assert parse_dataset(text) == DatasetSpec(label, path, fps)


@pytest.mark.parametrize("text", ["A=", "A=b@0", "A=b@0.0", "A=b@.0"])
def test_parse_dataset_errors(text):
    with pytest.raises(ConfigError):
        parse_dataset(text)


@pytest.mark.parametrize("text", [".", "./"])
def test_parse_dataset_current_folder_has_a_label(text):
    assert parse_dataset(text).label != ""


def test_duplicate_labels_are_a_config_error():
    with pytest.raises(ConfigError, match="clip"):
        StatsConfig(datasets=(DatasetSpec("clip", "a/clip.mkv"), DatasetSpec("clip", "b/clip.mkv")),
                    thresholds=(1.0,))
    StatsConfig(datasets=(DatasetSpec("a", "a/clip.mkv"), DatasetSpec("b", "b/clip.mkv")), thresholds=(1.0,))


# -- 4. pair starts ------------------------------------------------------------------------------------------
def _check_starts(num_frames: int, gap: int, count: int, starts: list[int]) -> None:
    available = num_frames - gap
    if available <= 0 or count <= 0:
        assert starts == []
        return
    k = min(count, available)
    assert len(starts) == k
    assert starts == sorted(set(starts))
    assert all(0 <= t and t + gap < num_frames for t in starts)
    for i, t in enumerate(starts):  # one per equal slice of [0, available)
        assert available * i / k - 1e-9 <= t < available * (i + 1) / k + 1e-9, (num_frames, gap, count, starts)
    if count >= available:
        assert starts == list(range(available))


@pytest.mark.parametrize("gap", [1, 2, 3, 8])
def test_pair_starts_stratified(gap):
    for num_frames in range(0, 45):
        for count in (0, 1, 2, 3, 5, 7, 20, 50):
            for seed in range(3):
                starts = pair_starts(num_frames, gap, count, np.random.default_rng(seed))
                _check_starts(num_frames, gap, count, starts)
    _check_starts(100_000, 2, 20, pair_starts(100_000, 2, 20, np.random.default_rng(0)))


def test_pair_starts_cover_whole_slices_uniformly():
    """available = 100, 4 slices of 25: over many seeds, each slice's start takes all 25 values."""
    seen = [set() for _ in range(4)]
    for seed in range(600):
        for i, t in enumerate(pair_starts(102, 2, 4, np.random.default_rng(seed))):
            seen[i].add(t)
    assert [sorted(s) for s in seen] == [list(range(25 * i, 25 * (i + 1))) for i in range(4)]


def test_pair_starts_are_seeded():
    a = pair_starts(1000, 2, 20, create_rng(0, "stats", "GOPRO", "x.mp4"))
    assert a == pair_starts(1000, 2, 20, create_rng(0, "stats", "GOPRO", "x.mp4"))
    assert a != pair_starts(1000, 2, 20, create_rng(1, "stats", "GOPRO", "x.mp4"))
    assert a != pair_starts(1000, 2, 20, create_rng(0, "stats", "REDS", "x.mp4"))
    assert a != pair_starts(1000, 2, 20, create_rng(0, "stats", "GOPRO", "y.mp4"))


def test_pair_starts_short_source():
    rng = np.random.default_rng(0)
    assert pair_starts(5, 2, 20, rng) == [0, 1, 2]  # fewer frames than requested: all available starts
    assert pair_starts(3, 2, 20, rng) == [0]
    assert pair_starts(2, 2, 20, rng) == []  # too short for one pair
    assert pair_starts(1, 1, 20, rng) == []
    assert pair_starts(50, 2, 0, rng) == []


# -- 5. the ratio --------------------------------------------------------------------------------------------
def _oracle(mag: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return np.array([np.mean(mag > t) for t in thresholds])


@pytest.mark.parametrize("seed", range(5))
def test_ratio_curve_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    mag = rng.gamma(1.5, 2.0, size=(37, 53)).astype(np.float32)
    ties = rng.choice(mag.ravel(), 10).astype(np.float64)  # thresholds equal to some magnitudes exactly
    thresholds = np.sort(np.concatenate([[0.0, float(mag.max()), float(mag.max()) + 1, float(mag.min())],
                                         np.linspace(0, 20, 41), ties]))
    got = ratio_curve(mag, thresholds)
    assert got.dtype == np.float64 and got.shape == thresholds.shape
    np.testing.assert_allclose(got, _oracle(mag, thresholds), rtol=0, atol=1e-12)
    assert got[-1] == 0.0


def test_ratio_curve_is_strictly_greater():
    mag = np.array([[0.0, 1.0, 1.0, 2.0], [2.0, 2.0, 3.0, 0.5]], np.float32)
    thresholds = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(ratio_curve(mag, thresholds), [7 / 8, 6 / 8, 4 / 8, 4 / 8, 1 / 8, 0, 0], atol=1e-12)
    ints = np.random.default_rng(0).integers(0, 6, (40, 40)).astype(np.float32)  # many ties
    th = np.arange(0, 7, 0.5)
    np.testing.assert_allclose(ratio_curve(ints, th), _oracle(ints, th), atol=1e-12)
    np.testing.assert_allclose(ratio_curve(np.zeros((3, 3), np.float32), np.array([0.0, 1.0])), [0, 0])


# -- 6. outputs ----------------------------------------------------------------------------------------------
def test_csv_json_png_are_written_and_consistent(main_out, clips):
    out, result = main_out
    assert_complete(out)
    thresholds = list(parse_thresholds(THRESHOLDS))
    assert (out / CSV_NAME).read_text().splitlines()[0] == (
        "label,threshold,mean,std,pairs,span_ms_min,span_ms_max,measurable_fraction_mean,measurable_fraction_std")
    rows = read_csv(out)
    assert len(rows) == 2 * len(thresholds)
    doc = read_json(out)
    assert doc["format"] == "blursynth-blurred-area-ratio" and doc["version"] == 2
    assert doc["spans_differ"] is False
    assert doc["thresholds"] == pytest.approx(thresholds)
    settings = doc["settings"]
    assert settings["thresholds"] == pytest.approx(thresholds)
    assert settings["flow"] == "dis" and settings["pairs_per_source"] == 6 and settings["seed"] == 0
    assert settings["span_ms"] == pytest.approx(DEFAULT_SPAN_MS) and settings["max_side"] is None
    assert settings["threads"] == 2 and settings["workers"] == 1 and settings["fps"] is None
    assert settings["raw_flow"] is False
    assert [(d["label"], d["fps"]) for d in settings["datasets"]] == [("PAN", None), ("LOCAL", None)]
    assert [d["label"] for d in doc["datasets"]] == ["PAN", "LOCAL"]
    for d in doc["datasets"]:
        mine = [r for r in rows if r["label"] == d["label"]]
        assert [float(r["threshold"]) for r in mine] == pytest.approx(thresholds)
        assert [float(r["mean"]) for r in mine] == pytest.approx(d["mean"], abs=1e-6)
        assert [float(r["std"]) for r in mine] == pytest.approx(d["std"], abs=1e-6)
        assert {int(r["pairs"]) for r in mine} == {d["pairs"]} == {6}
        # 240 fps, gap 2: 8.333 ms, recorded per source, per dataset and on every CSV row
        assert d["spans_ms"] == [pytest.approx(1000 * 2 / 240)]
        assert [(float(r["span_ms_min"]), float(r["span_ms_max"])) for r in mine] == [(8.333333, 8.333333)] * len(mine)
        fraction = d["measurable_fraction"]  # textured content: nearly every pixel is measurable
        assert fraction["mean"] > 0.9 and 0 <= fraction["std"] < 0.05
        assert {(float(r["measurable_fraction_mean"]), float(r["measurable_fraction_std"])) for r in mine} == {
            (fraction["mean"], fraction["std"])}
        (src,) = d["sources"]
        assert src["status"] == "ok" and src["kind"] == "video" and src["pairs"] == 6
        assert src["gap"] == 2 and src["flow_scale"] == 1.0 and src["frames"] == N
        assert src["span_ms"] == pytest.approx(1000 * 2 / 240)
        assert src["measurable_fraction"] == pytest.approx(fraction["mean"])
        # the starts are the seeded stratified draw of (seed, "stats", label, source key)
        rng = create_rng(0, "stats", d["label"], src["key"])
        assert src["starts"] == pair_starts(N, 2, 6, rng)
    png = cv2.imread(str(out / PNG_NAME))
    assert png is not None and png.shape[0] >= 300 and png.shape[1] >= 400
    assert (out / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in result.output and "blurred area ratio" in result.output


def test_rerun_with_log_y_overwrites_cleanly(clips, tmp_path):
    out = tmp_path / "out"
    args = [f"PAN={clips['pan240']}", "--flow", "dis", "--flow-threshold", "0,1,2,4", "--pairs-per-source", 2,
            "--out", out, "-q"]
    run_ok(*args)
    first_png = (out / PNG_NAME).read_bytes()
    (out / "keep.txt").write_text("not ours")
    run_ok(*args[:-3], "--pairs-per-source", 3, "--out", out, "--log-y", "-q")
    assert {p.name for p in out.iterdir()} == FILES | {"keep.txt"}
    assert not list(out.rglob("*.partial*"))
    assert {int(r["pairs"]) for r in read_csv(out)} == {3}
    assert read_json(out)["settings"]["pairs_per_source"] == 3
    png = cv2.imread(str(out / PNG_NAME))
    assert png is not None and png.shape[0] >= 300
    assert (out / PNG_NAME).read_bytes() != first_png


def test_out_is_a_file(clips, tmp_path):
    out = tmp_path / "out"
    out.write_text("precious")
    result = invoke("stats", clips["pan240"], "--flow", "dis", "--out", out)
    assert_clean_error(result, str(out), exit_code=1)
    assert out.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _tiny_curves():
    cfg = StatsConfig(datasets=(DatasetSpec("A", "a"),), thresholds=(0.0, 1.0), flow="dis")
    return [DatasetCurve("A", "a", np.array([1.0, 0.5]), np.array([0.0, 0.1]), 3, spans_ms=[8.333333])], cfg


@pytest.mark.parametrize(("error", "expected"), [(OSError(28, "No space left on device"), OutputError),
                                                 (RuntimeError("plot failed"), RuntimeError)])
def test_write_stats_is_all_or_nothing(tmp_path, monkeypatch, error, expected):
    curves, cfg = _tiny_curves()

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("blursynth.stats.outputs.plot_ratio_curves", broken)
    new = tmp_path / "new" / "stats"
    with pytest.raises(expected):
        write_stats(curves, cfg, new)
    assert not new.exists()  # created by this call: removed again
    old = tmp_path / "old"
    old.mkdir()
    (old / CSV_NAME).write_text("old results\n")
    with pytest.raises(expected):
        write_stats(curves, cfg, old)
    assert {p.name for p in old.iterdir()} == {CSV_NAME}
    assert (old / CSV_NAME).read_text() == "old results\n"


def test_write_stats_rejects_a_file(tmp_path):
    curves, cfg = _tiny_curves()
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        write_stats(curves, cfg, tmp_path / "f")
    paths = write_stats(curves, cfg, tmp_path / "ok")
    assert {p.name for p in paths.values()} == FILES
    span = {"span_ms_min": "8.333333", "span_ms_max": "8.333333", "measurable_fraction_mean": "",
            "measurable_fraction_std": ""}
    assert read_csv(tmp_path / "ok") == [
        {"label": "A", "threshold": "0.0", "mean": "1.0", "std": "0.0", "pairs": "3"} | span,
        {"label": "A", "threshold": "1.0", "mean": "0.5", "std": "0.1", "pairs": "3"} | span,
    ]


# -- 7. --max-side ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["measurable", "raw"])
def test_max_side_keeps_source_pixels(main_out, clips, tmp_path, mode):
    """Shrunk x0.5, the flow sees 1.5 px (pan) and 3 px (square); reported as 3 and 6 source px.

    The raw flow at 64 x 48 agrees with full size within 0.1. The measurable motion agrees within 0.2: on
    such small frames the texture test finds less texture per pixel (one of the 4 pairs gets a pair noise
    estimate of ~4 gray levels and keeps only edge-normal motion on half its pixels).
    """
    raw = ["--raw-flow"] if mode == "raw" else []
    args = [f"PAN={clips['pan240']}", f"LOCAL={clips['local240']}", "--flow", "dis", "--flow-threshold", "1,2,4",
            "--pairs-per-source", 4, *raw, "-q"]
    out = tmp_path / "out"
    run_ok(*args, "--max-side", 64, "--out", out)
    doc = read_json(out)
    assert doc["settings"]["max_side"] == 64
    for d in doc["datasets"]:
        (src,) = d["sources"]
        assert src["flow_scale"] == pytest.approx(0.5)
        assert (src["width"], src["height"]) == (W, H)  # the source's own size is recorded
    if raw:
        run_ok(*args, "--out", tmp_path / "full")
    full, small = curve(tmp_path / "full" if raw else main_out[0], "PAN"), curve(out, "PAN")
    for th in (1.0, 2.0, 4.0):
        assert small[th] == pytest.approx(full[th], abs=0.1 if raw else 0.2), th
    assert small[2.0] > (0.9 if raw else 0.7)  # would be ~0 if the 1.5 px at half size were not scaled back
    local = curve(out, "LOCAL")
    assert local[4.0] == pytest.approx(AREA, rel=0.5)  # the square's 3 px at half size is 6 source px


def test_max_side_not_applied_to_smaller_frames(clips, tmp_path):
    out = tmp_path / "out"
    run_ok(clips["pan240"], "--flow", "dis", "--flow-threshold", "1", "--pairs-per-source", 1, "--max-side", 500,
           "--out", out, "-q")
    assert read_json(out)["datasets"][0]["sources"][0]["flow_scale"] == 1.0
    assert read_json(out)["datasets"][0]["label"] == "pan"  # a bare video: labelled by its stem


# -- 8. bad input --------------------------------------------------------------------------------------------
def _missing(tmp: Path, clips):
    return [tmp / "nowhere.mkv"], "nowhere.mkv", 1


def _empty_folder(tmp: Path, clips):
    (tmp / "nothing").mkdir()
    return [tmp / "nothing"], "nothing", 1


def _text_as_mp4(tmp: Path, clips):
    p = tmp / "notes.mp4"
    p.write_text("this is not a video\n" * 20)
    return [p], "notes.mp4", 1


def _one_frame_video(tmp: Path, clips):
    return [write_video(tmp / "one.mkv", make_pan(1))], "one.mkv", 1


def _too_short_at_1000fps(tmp: Path, clips):
    return [write_video(tmp / "fast.mkv", make_pan(8), fps=1000)], "fast.mkv", 1  # gap 8 needs 9 frames


def _one_frame_folder(tmp: Path, clips):
    return [f"S={write_frame_folder(tmp / 'single', make_pan(1))}@240"], "single", 1


def _folder_without_fps(tmp: Path, clips):
    return [clips["panframes"]], "panframes", 1


def _image_file(tmp: Path, clips):
    return [clips["panframes"] / "frame0.png"], "frame0.png", 1


def _option(*extra, names, code=2):
    def build(tmp: Path, clips):
        return [clips["pan240"], *extra], names, code

    return build


def _duplicate_labels(tmp: Path, clips):
    return [clips["pan240"], clips["pan120"]], "'pan'", 2  # both are pan.mkv


BAD = {
    "missing-path": _missing,
    "empty-folder": _empty_folder,
    "text-renamed-mp4": _text_as_mp4,
    "one-frame-video": _one_frame_video,
    "too-short-for-the-gap": _too_short_at_1000fps,
    "one-frame-folder": _one_frame_folder,
    "frame-folder-without-fps": _folder_without_fps,
    "image-file": _image_file,
    "duplicate-labels": _duplicate_labels,
    "threshold-garbage": _option("--flow-threshold", "lots", names="--flow-threshold"),
    "threshold-reversed": _option("--flow-threshold", "5:1:1", names="--flow-threshold"),
    "threshold-negative": _option("--flow-threshold", "-1,2", names="--flow-threshold"),
    "threshold-zero-step": _option("--flow-threshold", "0:5:0", names="--flow-threshold"),
    "threshold-too-many": _option("--flow-threshold", "0:100:0.001", names="--flow-threshold"),
    "pairs-zero": _option("--pairs-per-source", "0", names="--pairs-per-source"),
    "pairs-negative": _option("--pairs-per-source", "-2", names="--pairs-per-source"),
    "span-zero": _option("--span-ms", "0", names="--span-ms"),
    "span-negative": _option("--span-ms", "-8", names="--span-ms"),
    "span-nan": _option("--span-ms", "nan", names="--span-ms"),
    "workers-zero": _option("--workers", "0", names="--workers"),
    "threads-zero": _option("--threads", "0", names="--threads"),
    "retries-negative": _option("--retries", "-1", names="--retries"),
    "ray-address-without-ray": _option("--ray-address", "auto", names="--ray-address"),
    "max-side-tiny": _option("--max-side", "8", names="--max-side"),
    "fps-zero": _option("--fps", "0", names="--fps"),
    "fps-negative": _option("--fps", "-30", names="--fps"),
    "at-fps-zero": lambda tmp, clips: ([f"P={clips['panframes']}@0"], "frame rate", 2),
    "unknown-flow": _option("--flow", "sparkle", names="--flow"),
    "pairs-not-a-number": _option("--pairs-per-source", "many", names="--pairs-per-source"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_one_line_error(tmp_path, clips, case):
    args, names, code = BAD[case](tmp_path, clips)
    out = tmp_path / "out"
    extra = [] if "--flow" in args else ["--flow", "dis"]
    result = invoke("stats", *args, *extra, "--out", out)
    assert_clean_error(result, names, exit_code=code)
    assert not out.exists()


def test_raft_without_torchvision(clips, tmp_path, monkeypatch):
    """A None entry in sys.modules makes the import fail exactly as if torchvision were not installed."""
    for mod in ("torchvision", "torchvision.models", "torchvision.models.optical_flow"):
        monkeypatch.setitem(sys.modules, mod, None)
    out = tmp_path / "out"
    result = invoke("stats", clips["pan240"], "--flow", "raft", "--device", "cpu", "--out", out)
    line = assert_clean_error(result, "torchvision", exit_code=1)
    assert "pip install" in line
    assert not out.exists()


def test_all_sources_of_the_only_dataset_bad(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_text("nope\n" * 10)
    out = tmp_path / "out"
    line = assert_clean_error(invoke("stats", folder, "--flow", "dis", "--out", out), "a.mp4", exit_code=1)
    assert "1 more" in line
    assert not out.exists()


@pytest.mark.parametrize("extra", [["--span-ms", "inf"], ["--span-ms", "1e308"], ["--fps", "inf"]],
                         ids=["span-inf", "span-1e308", "fps-inf"])
def test_infinite_span_or_fps_is_a_clean_error(clips, tmp_path, extra):
    out = tmp_path / "out"
    fps = [] if "--fps" in extra else ["--fps", "240"]
    result = invoke("stats", clips["panframes"], "--flow", "dis", "--out", out, *extra, *fps)
    assert_clean_error(result, extra[0])
    assert not out.exists()


def test_infinite_threshold_range_is_a_clean_error(clips, tmp_path):
    out = tmp_path / "out"
    result = invoke("stats", clips["pan240"], "--flow", "dis", "--flow-threshold", "0:inf:1", "--out", out)
    assert_clean_error(result, "--flow-threshold", exit_code=2)


@pytest.mark.parametrize("case", ["tiny-video", "max-side-squashes-a-wide-video"])
def test_frames_too_small_for_dis_are_not_a_traceback(tmp_path, case):
    if case == "tiny-video":
        src = write_video(tmp_path / "tiny.mkv", make_pan(8, height=8, width=8))
        extra = []
    else:  # 24 x 128 shrunk to at most 16 px: 16 x 3
        src = write_video(tmp_path / "wide.mkv", make_pan(8, height=24, width=128))
        extra = ["--max-side", "16"]
    out = tmp_path / "out"
    result = invoke("stats", src, "--flow", "dis", "--pairs-per-source", 2, "--out", out, *extra)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)


# -- 9. determinism ------------------------------------------------------------------------------------------
def test_same_seed_and_any_worker_count_give_identical_results(main_out, clips, tmp_path):
    base = [f"PAN={clips['pan240']}", f"LOCAL={clips['local240']}", "--flow", "dis",
            "--flow-threshold", THRESHOLDS, "--pairs-per-source", 6, "-q"]
    reference = (main_out[0] / CSV_NAME).read_bytes()
    run_ok(*base, "--workers", 2, "--out", tmp_path / "again")  # two spawned worker processes
    run_ok(*base, "--workers", 1, "--threads", 1, "--out", tmp_path / "one")
    assert (tmp_path / "again" / CSV_NAME).read_bytes() == reference
    assert (tmp_path / "one" / CSV_NAME).read_bytes() == reference
    starts = [s["starts"] for d in read_json(main_out[0])["datasets"] for s in d["sources"]]
    assert [s["starts"] for d in read_json(tmp_path / "one")["datasets"] for s in d["sources"]] == starts
    assert read_json(tmp_path / "one")["settings"]["workers"] == 1


def test_another_seed_draws_other_pairs(clips, tmp_path):
    args = [f"PAN={clips['pan240']}", "--flow", "dis", "--flow-threshold", "1", "--pairs-per-source", 5, "-q"]
    run_ok(*args, "--seed", 1, "--out", tmp_path / "s1")
    run_ok(*args, "--seed", 2, "--out", tmp_path / "s2")
    (a,) = read_json(tmp_path / "s1")["datasets"][0]["sources"]
    (b,) = read_json(tmp_path / "s2")["datasets"][0]["sources"]
    assert a["starts"] != b["starts"]
    assert a["starts"] == pair_starts(N, 2, 5, create_rng(1, "stats", "PAN", a["key"]))


# -- 10. help -----------------------------------------------------------------------------------------------
def test_help_shows_examples():
    result = invoke("stats", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "blursynth stats GOPRO=" in result.output and "--flow dis" in result.output
    for option in ("--flow-threshold", "--span-ms", "--pairs-per-source", "--max-side", "--fps", "--log-y"):
        assert option in result.output
