"""`blursynth inspect` and the shard reader, against datasets built here with the real recipes.

Three outputs are produced under a temporary folder: ``average`` (GOPRO recipe, two splits, shards of two
samples, one truncated clip that fails part-way and one file that is not a video), ``average`` with DIS flow
and blur maps (a clip with a still, a slow and a fast segment, so windows are rejected) and ``local`` (a tiny
VOC root and textured backgrounds, one of them a truncated PNG, so masks and skipped inputs exist).

Every figure of the report is recomputed from the shards with our own code: the markers are read as JSON, the
HDF5 files with h5py, PSNR as 10 log10(255^2 / MSE), mask areas as mask > 0 fractions, and the blur-map
histogram with explicit bin comparisons. Nothing of ``blursynth.stats.report`` or ``blursynth.shards.reader``
is used to compute an expected value.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import invoke, run_ok
from conftest import motion_frames, pan_frames, textured_image, write_video
from metric_oracle import psnr_u8
from objects_data import Shape, texture, write_backgrounds, write_voc

from blursynth.config import AverageConfig, LocalConfig
from blursynth.errors import InputError, OutputError
from blursynth.recipes.average import run_average
from blursynth.recipes.local import run_local
from blursynth.shards.listing import list_shards
from blursynth.shards.reader import read_shard
from blursynth.stats.report import inspect_dataset

SPLITS = ("train", "val")
TILE_W = 320  # width of one contact-sheet tile
ROW_PAD = 4  # black rows under every contact-sheet row
LABEL_H = 20  # the label strip above every contact-sheet row
BAR_BLOCK_H = 56  # the colour bar under the rows
BLUR_MAP_STEP = 7  # the report keeps every 7th blur-map value of a measured sample
BLUR_MAP_EDGES = [0, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, math.inf]
ALL = 10_000  # max_samples larger than any dataset here
BAR_RGB = np.array([31, 119, 180])  # matplotlib's default first colour (C0, #1f77b4): histogram bars


# -- helpers -------------------------------------------------------------------------------------------------


def assert_clean_error(result, *needles: str, exit_code: int = 1) -> str:
    """A one-line ``Error:`` naming ``needles``, the given exit code, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def flat(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())



def markers(out: Path) -> list[dict]:
    """Every readable commit marker, split then shard order."""
    found = []
    for split in SPLITS:
        for p in (out / split).glob("*_stats.json"):
            found.append(json.loads(p.read_text()))
    return sorted(found, key=lambda m: (SPLITS.index(m["split"]), m["shard"]))


def read_out(out: Path) -> list[dict]:
    """Every sample of every complete shard (one with a marker naming its file), read with h5py."""
    rows = []
    for m in markers(out):
        if not m.get("file"):
            continue
        path = out / m["split"] / m["file"]
        with h5py.File(path, "r") as f:
            metas = [json.loads(t) for t in f["meta"].asstr()[()]]
            arrays = {name: f[name][()] for name in f if name != "meta"}
        for i, meta in enumerate(metas):
            rows.append({"split": m["split"], "shard": m["shard"], "path": path, "meta": meta}
                        | {name: arr[i] for name, arr in arrays.items()})
    return rows


def summary_checks(summary: dict, values) -> None:
    v = np.asarray(values, np.float64)
    assert summary["count"] == v.size
    assert summary["mean"] == pytest.approx(v.mean(), rel=1e-6, abs=1e-9)
    assert summary["std"] == pytest.approx(v.std(), rel=1e-5, abs=1e-9)
    assert summary["min"] == pytest.approx(v.min(), rel=1e-9, abs=1e-12)
    assert summary["max"] == pytest.approx(v.max(), rel=1e-9, abs=1e-12)
    assert summary["median"] == pytest.approx(np.median(v), rel=1e-9, abs=1e-12)
    assert summary["min"] <= summary["p5"] <= summary["median"] <= summary["p95"] <= summary["max"]


def read_png_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def turbo(gray_u8: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.applyColorMap(gray_u8, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def no_partials(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*.partial*")]


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


# -- datasets -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def avg(tmp_path_factory):
    """GOPRO recipe: 4 good 48 x 32 clips, a 64 x 40 one, an FFV1 clip cut in half (fails part-way) and a text
    file named .mp4 (cannot be probed)."""
    tmp = tmp_path_factory.mktemp("avg")
    clips = tmp / "clips"
    for i in range(4):
        write_video(clips / f"c{i}.mkv", pan_frames(textured_image(40, 120, seed=i), 40, 32, 48, 0.75))
    write_video(clips / "wide.mkv", pan_frames(textured_image(48, 140, seed=5), 40, 40, 64, 0.75))  # 64 x 40
    cut(write_video(clips / "cut.mkv", pan_frames(textured_image(40, 120, seed=9), 40, 32, 48, 0.75)), 0.5)
    (clips / "notes.mp4").write_text("this is not a video\n" * 20)
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(clips),), out=str(out), val_fraction=0.4, shard_size=2, seed=1))
    report = inspect_dataset(out, max_samples=ALL, sheet=4)
    return SimpleNamespace(name="avg", out=out, rows=read_out(out), report=report, command="average", sheet=4,
                           extras=[], third="|blur-sharp|", splits=2)


#: px per frame of the flow clip (``steps[i]``: frames i - 1 -> i): still, slow, then too fast for the filter
FLOW_STEPS = [0.0] * 30 + [0.5] * 30 + [4.0] * 20


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Flow-selected windows with blur maps: still | 0.5 px/frame | 4 px/frame (rejected by the 1 px filter)."""
    tmp = tmp_path_factory.mktemp("flow")
    steps = FLOW_STEPS
    tex = textured_image(96 + 8, 128 + int(sum(steps)) + 8, seed=4)
    clip = write_video(tmp / "clips" / "seg.mkv", motion_frames(tex, steps, 96, 128))
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(clip),), out=str(out), frames=(7, 9), flow="dis", flow_threshold=1.0,
                              blur_map=True, max_match_error=12.0, shard_size=3))
    report = inspect_dataset(out, max_samples=ALL, sheet=3)
    return SimpleNamespace(name="flow", out=out, rows=read_out(out), report=report, command="average", sheet=3,
                           extras=["blur_map"], third="blur_map", splits=1)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """`blursynth local`: 14 samples, 88 x 120 crops, two splits, one background whose PNG body is cut."""
    tmp = tmp_path_factory.mktemp("local")
    bg = write_backgrounds(tmp / "bg", 3, 2, (96, 128))
    for g in range(3):  # a valid header, the body cut: found at discovery, fails when drawn
        bad = bg / f"seq{g}" / "bad.png"
        assert cv2.imwrite(str(bad), texture(96, 128, seed=7 + g))
        cut(bad, 0.6)
    voc = write_voc(tmp / "VOC2012", {
        "2008_000001": [Shape("rect", (20, 20, 52, 50), 8), Shape("disc", (92, 50, 17.0), 12)],
        "2008_000002": [Shape("disc", (40, 45, 18.0), 15), Shape("rect", (70, 20, 112, 62), 7)],
    }, size=(96, 128))
    out = tmp / "out"
    run_local(LocalConfig(backgrounds=(str(bg),), out=str(out), voc=str(voc), num_samples=14, crop=(88, 120),
                          shard_size=4, val_fraction=0.4, seed=3))
    report = inspect_dataset(out, max_samples=ALL, sheet=5)
    return SimpleNamespace(name="local", out=out, rows=read_out(out), report=report, command="local", sheet=5,
                           extras=["mask"], third="mask", splits=2)


DATASETS = ["avg", "flow", "local"]


@pytest.fixture(params=DATASETS)
def ds(request):
    return request.getfixturevalue(request.param)


def copy_out(ds, tmp_path: Path) -> Path:
    """A copy of a dataset without its report folder, to damage or to inspect into fresh folders."""
    out = tmp_path / "out"
    shutil.copytree(ds.out, out, ignore=shutil.ignore_patterns("report"))
    return out


# -- 1. counts, resolutions, N -------------------------------------------------------------------------------
def test_counts_per_split_and_shard_resolutions_and_n(ds):
    rep, rows = ds.report, ds.rows
    manifest = json.loads((ds.out / "manifest.json").read_text())
    assert rep["format"] == "blursynth-report" and rep["out"] == str(ds.out)
    assert rep["command"] == ds.command and rep["status"] == "complete"
    assert rep["totals"]["samples"] == len(rows) == manifest["totals"]["samples"]
    assert rep["totals"]["manifest_samples"] == manifest["totals"]["samples"]

    per_shard = Counter((r["split"], r["shard"]) for r in rows)
    assert len(per_shard) >= 2 and len({r["split"] for r in rows}) == ds.splits
    by_split = {}
    for (split, _), n in per_shard.items():
        entry = by_split.setdefault(split, {"shards": 0, "samples": 0})
        entry["shards"] += 1
        entry["samples"] += n
    assert rep["totals"]["by_split"] == by_split
    assert rep["totals"]["shards"] == len(per_shard)

    expected = []
    for m in markers(ds.out):
        if m["file"]:
            with h5py.File(ds.out / m["split"] / m["file"], "r") as f:
                n, h, w = f["blur"].shape[:3]
            expected.append({"split": m["split"], "shard": m["shard"], "count": n, "file": m["file"], "height": h,
                             "width": w, "marker_count": m["count"]})
    assert [s for s in rep["shards"] if s["count"]] == expected
    assert [(s["split"], s["shard"]) for s in rep["shards"]] == [(m["split"], m["shard"]) for m in markers(ds.out)]

    assert rep["resolutions"] == dict(Counter(f"{r['blur'].shape[1]}x{r['blur'].shape[0]}" for r in rows))
    n_hist = Counter(r["meta"]["n_frames"] for r in rows)
    if ds.name == "avg":  # several resolutions and window sizes to count
        assert len(rep["resolutions"]) == 2 and len(n_hist) >= 2
    assert rep["n_frames"] == {str(k): n_hist[k] for k in sorted(n_hist)}
    assert list(rep["n_frames"]) == [str(k) for k in sorted(n_hist)]  # in numeric order
    assert rep["recipes"] == dict(Counter(r["meta"]["recipe"] for r in rows))
    # blur maps come with their measurable mask (issue 16)
    assert rep["datasets"] == sorted(ds.extras + (["measurable"] if "blur_map" in ds.extras else []))
    assert rep["measured_samples"] == len(rows)


def test_report_json_on_disk_is_the_returned_report(ds):
    on_disk = json.loads((ds.out / "report" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(ds.report))


# -- 2. image statistics -----------------------------------------------------------------------------------
def test_psnr_summary_and_histogram_match_our_psnr_u8(ds):
    values = [psnr_u8(r["blur"], r["sharp"]) for r in ds.rows]
    finite = [v for v in values if math.isfinite(v)]
    p = ds.report["psnr_db"]
    assert p["identical"] == len(values) - len(finite)
    summary_checks(p, finite)
    assert p["p5"] == pytest.approx(np.percentile(finite, 5))
    assert p["p95"] == pytest.approx(np.percentile(finite, 95))
    # 2 dB bins from 10 to 50 dB; values outside (and blur == sharp, inf) are counted in the end bins.
    assert p["histogram"]["edges"] == [float(e) for e in range(10, 51, 2)]
    own = [0] * 20
    for v in values:
        own[min(19, max(0, int((v - 10) // 2))) if math.isfinite(v) else 19] += 1
    assert p["histogram"]["counts"] == own
    assert sum(p["histogram"]["counts"]) == len(values)


def test_windows_of_the_still_segment_are_counted_as_identical(flow, tmp_path):
    """Windows inside the still segment (frames 0..29) average identical frames: blur == sharp bit for bit."""
    still = [r for r in flow.rows if max(r["meta"]["frames"]) < 30]
    assert still and len(still) < len(flow.rows)
    assert all(np.array_equal(r["blur"], r["sharp"]) for r in still)
    assert flow.report["psnr_db"]["identical"] == len(still)
    assert flow.report["psnr_db"]["count"] == len(flow.rows) - len(still)
    text = flat(run_ok("inspect", flow.out, "--report", tmp_path / "r").output)
    assert f"{len(still)} measured samples have blur == sharp" in text


def test_mask_area_summary_matches_mask_fractions(local):
    fractions = [np.count_nonzero(r["mask"] > 0) / r["mask"].size for r in local.rows]
    for r, f in zip(local.rows, fractions, strict=True):
        assert r["meta"]["mask_fraction"] == pytest.approx(f)
    m = local.report["mask_area"]
    summary_checks(m, fractions)
    edges = m["histogram"]["edges"]
    assert len(edges) == 21 and edges[0] == 0.0
    assert edges[-1] == pytest.approx(max(0.05, max(fractions)))
    assert sum(m["histogram"]["counts"]) == len(fractions)
    own = [0] * 20
    for f in fractions:
        k = next((k for k in range(20) if edges[k] <= f < edges[k + 1]), 19)  # the maximum is in the last bin
        own[k] += 1
    assert m["histogram"]["counts"] == own
    assert "mask_area" not in local.report["psnr_db"]


def test_no_mask_or_blur_map_sections_where_absent(avg, flow, local):
    assert "mask_area" not in avg.report and "blur_map_px" not in avg.report
    assert "mask_area" not in flow.report and "blur_map_px" in flow.report
    assert "blur_map_px" not in local.report and "mask_area" in local.report


def test_blur_map_histogram_counts_the_subsampled_values(flow):
    values = np.concatenate([r["blur_map"].astype(np.float32).ravel()[::BLUR_MAP_STEP] for r in flow.rows])
    h, w = flow.rows[0]["blur_map"].shape
    assert values.size == len(flow.rows) * math.ceil(h * w / BLUR_MAP_STEP)
    b = flow.report["blur_map_px"]
    assert b["histogram"]["edges"] == [float(e) for e in BLUR_MAP_EDGES[:-1]] + [None]
    assert sum(b["histogram"]["counts"]) == values.size
    own = []
    for k in range(len(BLUR_MAP_EDGES) - 1):
        lo, hi = BLUR_MAP_EDGES[k], BLUR_MAP_EDGES[k + 1]
        inside = (values >= lo) & ((values < hi) if math.isfinite(hi) else np.ones_like(values, bool))
        if k == 0:
            inside |= values < 0
        own.append(int(inside.sum()))
    assert b["histogram"]["counts"] == own
    assert sum(c > 0 for c in own) >= 3, own  # still, slow and edge pixels: several bins are used
    summary_checks(b, values.astype(np.float64))


def test_fewer_measured_samples_are_a_seeded_draw(avg, tmp_path):
    n = len(avg.rows)
    every = [psnr_u8(r["blur"], r["sharp"]) for r in avg.rows]
    a = inspect_dataset(avg.out, tmp_path / "a", max_samples=5, sheet=0, seed=7)
    b = inspect_dataset(avg.out, tmp_path / "b", max_samples=5, sheet=0, seed=7)
    assert a["measured_samples"] == 5 and a["psnr_db"]["count"] == 5
    assert a["psnr_db"] == b["psnr_db"]
    for key in ("min", "max"):
        assert min(abs(a["psnr_db"][key] - v) for v in every) < 1e-9
    # Counts never depend on the draw.
    assert a["totals"] == avg.report["totals"] and a["n_frames"] == avg.report["n_frames"]
    others = [inspect_dataset(avg.out, tmp_path / f"s{s}", max_samples=5, sheet=0, seed=s)["psnr_db"]
              for s in (1, 2, 3)]
    assert any(o != a["psnr_db"] for o in others), "the seed does not change the draw"
    assert inspect_dataset(avg.out, tmp_path / "one", max_samples=1, sheet=0)["measured_samples"] == 1
    assert n > 5


# -- 3. rejections, failures, skipped inputs ---------------------------------------------------------------
def test_rejected_windows_follow_from_the_motion_of_the_clip(flow, avg, local):
    """The flow clip moves <= 0.5 px per frame up to frame 59, then 4 px (pairs j >= 59: frames j, j + 1 are
    over the 1 px threshold). Kept windows are back to back from frame 0 and stop before the fast segment;
    every candidate holding a fast pair is rejected and the next one starts right after that pair. So after the
    last kept window (read from the shards: its frames) the sampler rejects the candidate at its end, unless it
    ended exactly where the fast pairs begin, then one candidate per start 60 .. 73, the last start where a
    7-frame window fits into the 80 frames."""
    steps = FLOW_STEPS
    first_fast_pair = steps.index(4.0) - 1
    last_start = len(steps) - 7
    last_stop = max(f for r in flow.rows for f in r["meta"]["frames"]) + 1
    assert last_stop <= first_fast_pair + 1  # no kept window holds a fast pair
    expected = (last_start - first_fast_pair) + (last_stop <= first_fast_pair)
    assert expected >= 14
    rejected = flow.report["rejected_windows"]
    assert sum(rejected.values()) == expected, rejected
    assert rejected.get("flow_threshold", 0) > 0 and set(rejected) <= {"flow_threshold", "unreliable_flow"}
    manifest = json.loads((flow.out / "manifest.json").read_text())
    assert rejected == manifest["totals"]["rejected_windows"]
    assert avg.report["rejected_windows"] == {} and local.report["rejected_windows"] == {}


def test_failures_come_from_the_markers(avg):
    expected = [f for m in markers(avg.out) for f in m.get("failures") or []]
    assert avg.report["failures"][: len(expected)] == expected  # then those only the manifest knows
    assert [Path(f["path"]).name for f in expected] == ["cut.mkv"]
    assert "truncated" in expected[0]["reason"] or "corrupt" in expected[0]["reason"]


def test_failures_recorded_only_in_the_manifest_are_reported(avg):
    manifest = json.loads((avg.out / "manifest.json").read_text())
    recorded = {Path(f["path"]).name for f in manifest["totals"]["failures"]}
    assert recorded == {"cut.mkv", "notes.mp4"}
    assert {Path(f["path"]).name for f in avg.report["failures"]} == recorded


def test_skipped_inputs_come_from_the_markers(local):
    expected = [s for m in markers(local.out) for s in m.get("skipped") or []]
    assert expected
    assert local.report["skipped_inputs"] == expected
    assert {Path(s["path"]).name for s in expected} == {"bad.png"}
    assert local.report["failures"] == []


# -- 4. files: report.json, histograms.png, contact sheet ---------------------------------------------------
def test_report_files_in_the_default_folder(ds):
    folder = ds.out / "report"
    assert sorted(p.name for p in folder.iterdir()) == ["contact_sheet.png", "histograms.png", "report.json"]
    # one 4 x 3.2 in panel at 110 dpi per histogram: PSNR, N, then mask area or blur map where present
    hist = read_png_rgb(folder / "histograms.png")
    panels = 2 + len(ds.extras)
    assert hist.shape == (352, 440 * panels, 3)
    assert (hist[:8, :8] == 255).all()  # a white figure ...
    bars = (np.abs(hist.astype(int) - BAR_RGB).sum(axis=2) <= 30)  # ... with matplotlib's first colour bars
    for k in range(panels):
        assert bars[:, 440 * k : 440 * (k + 1)].mean() > 0.005, f"panel {k} has no bars"
    no_partials(ds.out)


def tile(image: np.ndarray) -> np.ndarray:
    """A contact-sheet tile: 320 px wide, the aspect ratio kept."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if w > TILE_W else cv2.INTER_LINEAR
    return cv2.resize(image, (TILE_W, round(h * TILE_W / w)), interpolation=interp)


def sheet_rows(sheet: np.ndarray, rows: list[dict], count: int) -> list[tuple[int, list[np.ndarray]]]:
    """Split a contact sheet into its rows; each is (index of the sample shown, its three panels).

    The sample is recognised by its blur and sharp tiles (bit-exact: PNG is lossless); rows may differ in
    height when the dataset has several resolutions. Each row has a label strip above it; the colour bar
    block closes the sheet.
    """
    blur_tiles = [tile(r["blur"]) for r in rows]
    found, y = [], 0
    for k in range(count):
        y += LABEL_H
        match = [i for i, t in enumerate(blur_tiles)
                 if y + len(t) <= sheet.shape[0] and np.array_equal(sheet[y : y + len(t), :TILE_W], t)
                 and np.array_equal(sheet[y : y + len(t), TILE_W : 2 * TILE_W], tile(rows[i]["sharp"]))]
        assert match, f"row {k} at y={y}: no sample's blur | sharp"
        th = len(blur_tiles[match[0]])
        assert not sheet[y + th : y + th + ROW_PAD].any()  # the padding under the row
        found.append((match[0], [sheet[y : y + th, j * TILE_W : (j + 1) * TILE_W] for j in range(3)]))
        y += th + ROW_PAD
    assert y + BAR_BLOCK_H == sheet.shape[0]
    return found


def test_contact_sheet_rows_show_blur_sharp_and_the_third_panel(ds):
    sheet = read_png_rgb(ds.out / "report" / "contact_sheet.png")
    count = min(ds.sheet, len(ds.rows))
    assert sheet.shape[1] == 3 * TILE_W == 960
    assert {k: ds.report["contact_sheet"][k] for k in ("samples", "columns")} == {
        "samples": count, "columns": ["blur", "sharp", ds.third]}
    shown = sheet_rows(sheet, ds.rows, count)
    if ds.third == "blur_map":  # one scale for the sheet: p99 of every map shown, up to a power of two
        p99 = np.percentile(np.concatenate([ds.rows[i]["blur_map"].astype(np.float32).ravel() for i, _ in shown]), 99)
        vmax = 2.0 ** math.ceil(math.log2(max(1.0, p99)))
        assert ds.report["contact_sheet"]["scale"]["max"] == vmax
    for i, panels in shown:
        r = ds.rows[i]
        if ds.third == "mask":
            expected = tile(turbo(r["mask"]))
        elif ds.third == "blur_map":
            expected = tile(turbo(np.clip(r["blur_map"].astype(np.float32) / vmax * 255, 0, 255).astype(np.uint8)))
        else:
            diff = np.abs(r["blur"].astype(np.int16) - r["sharp"].astype(np.int16)).max(axis=2)
            expected = tile(turbo(np.clip(diff * (255 / 64), 0, 255).astype(np.uint8)))
        err = np.abs(panels[2].astype(np.int16) - expected.astype(np.int16))
        assert err.mean() < 1.5 and np.percentile(err, 99) <= 16, (i, err.mean(), err.max())
    assert len({i for i, _ in shown}) == count, "a sample is shown twice"


def test_local_contact_sheet_third_tile_is_the_colourised_mask(local):
    """Not the |blur - sharp| panel: turbo(0) exactly where the (resized) mask is 0 all around, elsewhere not."""
    sheet = read_png_rgb(local.out / "report" / "contact_sheet.png")
    zero = turbo(np.zeros((1, 1), np.uint8))[0, 0]
    for i, panels in sheet_rows(sheet, local.rows, local.report["contact_sheet"]["samples"]):
        is_zero = (panels[2] == zero).all(axis=2)
        mask_zero = tile(local.rows[i]["mask"]) == 0
        far = cv2.erode(mask_zero.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert is_zero[far].all() and not is_zero[~mask_zero].any()
        assert 0.2 < is_zero.mean() < 0.9  # masks here cover 20-70 % of the crop


def test_report_dir_option_and_sheet_size(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    where = tmp_path / "reports" / "avg"
    result = run_ok("inspect", out, "--report", where, "--sheet", 2, "--max-samples", 3)
    assert sorted(p.name for p in where.iterdir()) == ["contact_sheet.png", "histograms.png", "report.json"]
    assert not (out / "report").exists()
    rep = json.loads((where / "report.json").read_text())
    assert rep["measured_samples"] == 3 and rep["contact_sheet"]["samples"] == 2
    assert len(sheet_rows(read_png_rgb(where / "contact_sheet.png"), avg.rows, 2)) == 2
    no_partials(tmp_path)
    assert str(where) in flat(result.output)


def test_sheet_larger_than_the_dataset_shows_every_sample_once(flow, tmp_path):
    rep = inspect_dataset(flow.out, tmp_path / "r", sheet=100)
    assert rep["contact_sheet"]["samples"] == len(flow.rows)


def test_sheet_zero_writes_no_contact_sheet(avg, tmp_path):
    where = tmp_path / "r"
    run_ok("inspect", avg.out, "--report", where, "--sheet", 0)
    assert sorted(p.name for p in where.iterdir()) == ["histograms.png", "report.json"]
    rep = json.loads((where / "report.json").read_text())
    assert rep["contact_sheet"]["samples"] == 0
    no_partials(where)


def test_cli_sheet_zero_does_not_announce_a_contact_sheet(avg, tmp_path):
    result = run_ok("inspect", avg.out, "--report", tmp_path / "r", "--sheet", 0)
    assert not (tmp_path / "r" / "contact_sheet.png").exists()
    assert "contact_sheet.png" not in flat(result.output)


def test_sheet_zero_does_not_leave_an_earlier_contact_sheet(avg, tmp_path):
    where = tmp_path / "r"
    inspect_dataset(avg.out, where, sheet=3)
    assert (where / "contact_sheet.png").exists()
    rep = inspect_dataset(avg.out, where, sheet=0)
    assert rep["contact_sheet"]["samples"] == 0
    assert not (where / "contact_sheet.png").exists()


# -- 5. robustness ---------------------------------------------------------------------------------------------
def test_partial_orphan_bad_marker_and_unreadable_shard_are_ignored(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    train, val = out / "train", out / "val"
    victim = markers(out)[-1]  # a real shard: its marker stays valid, its file is cut
    shutil.copy(train / "00000.h5", train / "00090.h5")  # orphan: no marker
    shutil.copy(train / "00000.h5", train / "00091.h5.partial")
    (train / "00092_stats.json.partial").write_text("{")
    (val / "00093_stats.json").write_text("{not json")  # corrupt marker
    assert victim["count"] > 0
    cut(out / victim["split"] / victim["file"], 0.5)
    lost = victim["count"]

    result = run_ok("inspect", out)
    rep = json.loads((out / "report" / "report.json").read_text())
    ig = rep["ignored"]
    assert ig["orphan_h5"] == [str(train / "00090.h5")]
    assert sorted(ig["partial_files"]) == sorted([str(train / "00091.h5.partial"),
                                                  str(train / "00092_stats.json.partial")])
    assert [m["path"] for m in ig["unreadable_markers"]] == [str(val / "00093_stats.json")]
    assert "unreadable marker" in ig["unreadable_markers"][0]["reason"]
    assert [s["path"] for s in ig["unreadable_shards"]] == [str(out / victim["split"] / victim["file"])]
    assert ig["unreadable_shards"][0]["reason"]
    assert rep["totals"]["samples"] == len(avg.rows) - lost
    split = rep["totals"]["by_split"][victim["split"]]
    before = avg.report["totals"]["by_split"][victim["split"]]
    assert split == {"shards": before["shards"] - 1, "samples": before["samples"] - lost}
    assert rep["measured_samples"] == len(avg.rows) - lost
    assert sum(rep["n_frames"].values()) == len(avg.rows) - lost
    assert "ignored" in flat(result.output)
    no_partials(out / "report")


def test_count_zero_marker_is_listed_but_not_counted(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    marker = {"format": "blursynth-shard-stats", "version": 1, "split": "val", "shard": 50, "file": None,
              "layouts": ["h5"], "count": 0, "height": None, "width": None, "sources": {}, "failures": [],
              "final": True}
    (out / "val" / "00050_stats.json").write_text(json.dumps(marker))
    rep = inspect_dataset(out)
    assert {"split": "val", "shard": 50, "count": 0, "file": None} in rep["shards"]
    assert rep["totals"]["samples"] == len(avg.rows) and rep["totals"]["shards"] == avg.report["totals"]["shards"]
    entry = next(e for e in list_shards(out).shards if e.shard == 50)
    assert entry.path is None and entry.count == 0


def corrupt_chunk(path: Path, name: str, index: int) -> None:
    """Overwrite the compressed bytes of one chunk: the file opens, that image cannot be decoded."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(index)
    assert info.filter_mask == 0, "the chunk must be stored compressed"
    data = bytearray(path.read_bytes())
    data[info.byte_offset + 8 : info.byte_offset + info.size] = bytes(info.size - 8)
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f, pytest.raises(OSError):
        f[name][index]


def test_shard_with_a_corrupt_image_chunk_is_listed_not_fatal(tmp_path):
    clip = write_video(tmp_path / "c.mkv", pan_frames(textured_image(40, 120, seed=3), 40, 32, 48, 0.75))
    out = tmp_path / "out"
    run_average(AverageConfig(inputs=(str(clip),), out=str(out), compression="gzip", shard_size=2))
    corrupt_chunk(out / "train" / "00000.h5", "sharp", 1)
    rep = inspect_dataset(out)
    assert [Path(s["path"]).name for s in rep["ignored"]["unreadable_shards"]] == ["00000.h5"]


def test_no_manifest_is_a_clean_error(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    (out / "manifest.json").unlink()
    assert_clean_error(invoke("inspect", out), "manifest.json is missing", "not a blursynth output")
    assert not (out / "report").exists()
    with pytest.raises(InputError):
        inspect_dataset(out)


def test_missing_folder_and_file_are_clean_errors(tmp_path):
    assert_clean_error(invoke("inspect", tmp_path / "nowhere"), "nowhere", "no such folder")
    f = tmp_path / "file.h5"
    f.write_bytes(b"x")
    assert_clean_error(invoke("inspect", f), "file.h5", "not a folder")
    assert not (tmp_path / "nowhere").exists()


def test_corrupt_manifest_is_a_clean_error(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    (out / "manifest.json").write_text("{oops")
    assert_clean_error(invoke("inspect", out), "manifest.json", "unreadable manifest")
    assert not (out / "report").exists()


def test_corrupt_manifest_error_gives_advice_inspect_can_follow(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    (out / "manifest.json").write_text("{oops")
    line = assert_clean_error(invoke("inspect", out), "manifest.json")
    assert "--overwrite" not in line


def test_no_complete_shard_is_a_clean_error(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    for p in out.glob("*/*_stats.json"):
        p.unlink()  # every .h5 is now an orphan
    assert_clean_error(invoke("inspect", out), "no complete shard")
    assert not (out / "report").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(avg.out / "manifest.json", empty / "manifest.json")
    assert_clean_error(invoke("inspect", empty), "no complete shard")


def test_every_shard_unreadable_is_a_clean_error(avg, tmp_path):
    out = copy_out(avg, tmp_path)
    for p in out.glob("*/*.h5"):
        cut(p, 0.3)
    line = assert_clean_error(invoke("inspect", out), "no complete shard")
    assert f"{len(list(out.glob('*/*.h5')))} unreadable" in line


def test_report_pointing_at_a_file_is_a_clean_error(avg, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert_clean_error(invoke("inspect", avg.out, "--report", target), "report.txt", "not a folder")
    assert target.read_text() == "keep me"
    with pytest.raises(OutputError):
        inspect_dataset(avg.out, target)
    under = target / "sub"
    assert_clean_error(invoke("inspect", avg.out, "--report", under), "sub")
    assert target.read_text() == "keep me"
    assert not list(tmp_path.glob("*.partial*"))


def test_gopro_only_layout_is_reported_or_explained(tmp_path):
    clip = write_video(tmp_path / "c.mkv", pan_frames(textured_image(40, 120, seed=3), 40, 32, 48, 0.75))
    out = tmp_path / "pngtree"
    run_average(AverageConfig(inputs=(str(clip),), out=str(out), layout=("gopro",), shard_size=2))
    samples = json.loads((out / "manifest.json").read_text())["totals"]["samples"]
    assert samples > 0
    try:
        rep = inspect_dataset(out)
    except InputError as exc:
        message = str(exc).replace(str(out), "")
        assert "gopro" in message or "h5" in message or "layout" in message, message
    else:
        assert rep["totals"]["samples"] == samples


# -- 6. the shard reader -----------------------------------------------------------------------------------
def test_read_shard_returns_what_h5py_reads(avg, local, flow):
    for d in (avg, local, flow):
        for m in markers(d.out):
            path = d.out / m["split"] / m["file"]
            shard = read_shard(path)
            with h5py.File(path, "r") as f:
                names = {n for n in f if n != "meta"}
                assert set(shard.arrays) == names
                for n in names:
                    np.testing.assert_array_equal(shard.arrays[n], f[n][()])
                    assert shard.arrays[n].dtype == f[n].dtype
                assert shard.meta == [json.loads(t) for t in f["meta"].asstr()[()]]
                assert shard.attrs["format"] == "blursynth-shard"
                assert shard.attrs["count"] == f.attrs["count"] == m["count"]
                assert (shard.attrs["height"], shard.attrs["width"]) == (m["height"], m["width"])
                assert shard.attrs["split"] == m["split"] and shard.attrs["shard"] == m["shard"]
            assert len(shard) == m["count"] and shard.path == path
            sample = shard[len(shard) - 1]
            assert set(sample) == names | {"meta"}
            assert sample["meta"] == shard.meta[-1]
            np.testing.assert_array_equal(sample["blur"], shard.arrays["blur"][-1])
        first = markers(d.out)[0]
        json.dumps(read_shard(d.out / first["split"] / first["file"]).attrs)  # plain Python values, not numpy


def test_read_shard_rejects_what_is_not_a_shard(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["blur"] = np.zeros((1, 2, 2, 3), np.uint8)
        f["meta"] = np.array(["{}"], dtype=h5py.string_dtype())
    with pytest.raises(InputError, match="not a blursynth shard"):
        read_shard(foreign)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="text.h5"):
        read_shard(text)
    with pytest.raises(InputError, match="missing.h5"):
        read_shard(tmp_path / "missing.h5")
    no_meta = tmp_path / "no_meta.h5"
    with h5py.File(no_meta, "w") as f:
        f.attrs["format"] = "blursynth-shard"
        f["blur"] = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(InputError, match="no_meta.h5"):
        read_shard(no_meta)


def test_list_shards_orders_by_split_then_shard_number(tmp_path, avg):
    out = tmp_path / "out"
    for split, shard in (("val", 3), ("train", 100000), ("val", 0), ("train", 20000), ("train", 7)):
        (out / split).mkdir(parents=True, exist_ok=True)
        name = f"{shard:05d}"
        (out / split / f"{name}_stats.json").write_text(json.dumps(
            {"split": split, "shard": shard, "file": f"{name}.h5", "count": 1}))
    listing = list_shards(out)
    assert [(s.split, s.shard) for s in listing.shards] == [
        ("train", 7), ("train", 20000), ("train", 100000), ("val", 0), ("val", 3)]
    assert listing.shards[0].path == out / "train" / "00007.h5" and listing.shards[0].count == 1
    assert listing.bad_markers == listing.orphans == listing.partials == []

    real = list_shards(avg.out)
    assert [(s.split, s.shard, s.count) for s in real.shards] == [
        (m["split"], m["shard"], m["count"]) for m in markers(avg.out)]
    assert all(s.path.is_file() for s in real.shards)
    assert real.bad_markers == real.orphans == real.partials == []
    assert list_shards(tmp_path / "nothing").shards == []


# -- 7. the command line --------------------------------------------------------------------------------------
def test_cli_text_summary(avg, tmp_path):
    result = run_ok("inspect", avg.out, "--report", tmp_path / "r")
    text = flat(result.output)
    t = avg.report["totals"]
    assert f"{t['samples']} samples" in text
    for split, s in t["by_split"].items():
        assert f"{split} {s['samples']} in {s['shards']} shards" in text
    assert "PSNR" in text and "measured on" in text
    assert "48x32" in text and "64x40" in text and "N:" in text
    assert "2 failure(s)" in text and "cut.mkv" in text
    assert "report.json" in text


def test_cli_text_mentions_rejections_mask_and_blur_map(flow, local, tmp_path):
    text = flat(run_ok("inspect", flow.out, "--report", tmp_path / "f").output)
    assert "rejected windows" in text and f"flow_threshold {flow.report['rejected_windows']['flow_threshold']}" in text
    assert "blur map px" in text
    text = flat(run_ok("inspect", local.out, "--report", tmp_path / "l").output)
    assert "mask area" in text and f"{len(local.rows)} samples" in text


def test_cli_quiet_prints_nothing(avg, tmp_path):
    result = run_ok("inspect", avg.out, "--report", tmp_path / "r", "-q")
    assert result.output == ""
    assert (tmp_path / "r" / "report.json").exists()
    result = run_ok("-q", "inspect", avg.out, "--report", tmp_path / "r2")
    assert result.output == ""


def test_cli_help_shows_examples():
    result = run_ok("inspect", "--help")
    text = result.output
    assert "Examples:" in text
    assert "blursynth inspect out/" in text
    for option in ("--report", "--max-samples", "--sheet", "--seed"):
        assert option in text
    assert "inspect" in run_ok("--help").output


def test_cli_rejects_bad_numbers(avg, tmp_path):
    for args in (("--max-samples", 0), ("--sheet", -1)):
        result = invoke("inspect", avg.out, "--report", tmp_path / "r", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "r").exists()
