"""`inspect`'s contact sheet and histograms as a reader sees them: labelled rows, one colour scale for the
whole sheet with a colour bar, and a blur-map histogram whose bars are fractions of pixels.

Unit tests draw sheets from maps of known values; the integration tests run ``average`` on two tiny lossless
clips and recompute every label (sample id, N, PSNR) from the shards with h5py and our own PSNR.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from conftest import pan_frames, textured_image, write_video
from metric_oracle import psnr_u8

import blursynth.stats.report as report_module
from blursynth.stats.report import inspect_dataset
from blursynth.stats.sheet import SheetSample, compose_sheet

TILE_W = 320
LABEL_H = 20
ROW_PAD = 4
LABEL_RGB = np.array([40, 40, 40])


def turbo(value_u8: int) -> np.ndarray:
    return cv2.cvtColor(cv2.applyColorMap(np.full((1, 1), value_u8, np.uint8), cv2.COLORMAP_TURBO),
                        cv2.COLOR_BGR2RGB)[0, 0]



def sample(label: str, third: np.ndarray, h: int = 40, w: int = 64) -> SheetSample:
    img = np.full((h, w, 3), 100, np.uint8)
    return SheetSample(label, img, img, third, {"sample": label})


def text_pixels(strip: np.ndarray) -> np.ndarray:
    """Pixels of a label strip that are not its background: the drawn text."""
    return np.abs(strip.astype(int) - LABEL_RGB).sum(axis=2) > 30


# -- the sheet, from maps of known values -------------------------------------------------------------------
def test_the_same_blur_length_has_the_same_colour_in_every_row():
    """Row A holds 2 px and 8 px, row B only 2 px: with per-row scaling B would be drawn in A's 8 px colour."""
    a = np.full((40, 64), 2.0, np.float16)
    a[:, 32:] = 8.0
    b = np.full((40, 64), 2.0, np.float16)
    sheet, info = compose_sheet([sample("A", a), sample("B", b)], "blur_map")
    assert info["scale"] == {"column": "blur_map", "min": 0.0, "max": 8.0, "unit": "px", "max_shown": 8.0}
    row_a, row_b = info["rows"]
    tile_h = round(40 * TILE_W / 64)
    assert row_a["y"] == 0 and row_b["y"] == LABEL_H + tile_h + ROW_PAD and row_a["height"] == tile_h
    ya, yb = row_a["y"] + LABEL_H + tile_h // 2, row_b["y"] + LABEL_H + tile_h // 2
    two, eight = turbo(int(2 / 8 * 255)), turbo(255)
    assert (sheet[ya, 2 * TILE_W + 40] == two).all()  # A's left half (2 px), far from the resized edge
    assert (sheet[yb, 2 * TILE_W + 40] == two).all()  # B: the same colour for the same value
    assert (sheet[yb, 3 * TILE_W - 40] == two).all()
    assert (sheet[ya, 3 * TILE_W - 40] == eight).all()


def test_the_colour_bar_shows_the_sheet_scale_with_ticks():
    a = np.linspace(0, 3.0, 40 * 64, dtype=np.float32).reshape(40, 64)  # p99 ~ 2.97 -> scale 0..4 px
    sheet, info = compose_sheet([sample("A", a)], "blur_map")
    assert info["scale"]["max"] == 4.0
    bar = info["colorbar"]
    y = bar["y"] + (bar["rows"][0] + bar["rows"][1]) // 2
    x0, x1 = bar["x0"], bar["x1"]
    assert 2 * TILE_W <= x0 < x1 < 3 * TILE_W and sheet.shape[0] == bar["y"] + 56
    assert (sheet[y, x0] == turbo(0)).all() and (sheet[y, x1] == turbo(255)).all()
    x_two = x0 + round((x1 - x0) * 2 / 4)  # where 2 px sits on the bar: the colour 2 px has in a tile
    assert np.abs(sheet[y, x_two].astype(int) - turbo(int(2 / 4 * 255)).astype(int)).max() <= 12
    # tick marks and their labels below the bar, a caption on the left
    below = sheet[bar["y"] + bar["rows"][1] : bar["y"] + 56, x0 - 8 : x1 + 9]
    assert text_pixels(below).sum() > 100
    assert text_pixels(sheet[bar["y"] :, : 2 * TILE_W]).sum() > 200


@pytest.mark.parametrize(("column", "top"), [("mask", 255.0), ("|blur-sharp|", 64.0)])
def test_fixed_scales_of_masks_and_differences(column, top):
    third = np.full((40, 64), 32, np.uint8)
    _, info = compose_sheet([sample("A", third), sample("B", third // 2)], column)
    assert info["scale"]["max"] == top
    assert info["scale"]["max_shown"] == (1.0 if column == "mask" else 64.0)


def test_every_row_has_a_label_strip_with_its_text():
    sheet, info = compose_sheet([sample("first#00001", np.zeros((40, 64), np.float32)),
                                 sample("second#00002", np.zeros((40, 64), np.float32))], "blur_map")
    strips = [sheet[r["y"] : r["y"] + LABEL_H] for r in info["rows"]]
    for strip in strips:
        ink = text_pixels(strip)
        assert 50 < ink.sum() < 0.5 * ink.size  # some text on the strip's background
        assert (strip[0] == LABEL_RGB).all() and (strip[-1] == LABEL_RGB).all()  # a margin above and below
    assert not np.array_equal(strips[0], strips[1])  # different labels draw differently
    assert info["label_height"] == LABEL_H and [r["label"] for r in info["rows"]] == ["first#00001", "second#00002"]


def test_a_long_label_is_shortened_from_the_left_not_cut():
    long = "x" * 300 + "#00042 N=9 PSNR 30.00 dB"
    sheet, _ = compose_sheet([sample(long, np.zeros((40, 64), np.float32))], "blur_map")
    ink_cols = np.flatnonzero(text_pixels(sheet[:LABEL_H]).any(axis=0))
    assert ink_cols.max() < 3 * TILE_W - 4  # the end of the label (its N and PSNR) stays on the sheet


# -- on a dataset written by `average` ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Two 48 x 32 lossless clips panning at 0.6 and 2 px/frame, GOPRO recipe with blur maps (DIS flow)."""
    tmp = tmp_path_factory.mktemp("insp")
    clips = tmp / "clips"
    write_video(clips / "slow.mkv", pan_frames(textured_image(40, 160, seed=3), 30, 32, 48, 0.6))
    write_video(clips / "fast.mkv", pan_frames(textured_image(40, 160, seed=4), 30, 32, 48, 2.0))
    out = tmp / "out"
    from cli_helpers import run_ok

    run_ok("average", clips, out, "--frames", 7, "--blur-map", "-q")
    return out


def shard_rows(out: Path) -> dict[tuple[str, int], dict]:
    rows = {}
    for path in sorted(out.glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            metas = [json.loads(m) for m in f["meta"].asstr()[()]]
            for i, meta in enumerate(metas):
                rows[(path.name, i)] = {"meta": meta, "blur": f["blur"][i], "sharp": f["sharp"][i],
                                        "split": path.parent.name}
    return rows


def test_sheet_rows_are_labelled_with_sample_n_and_psnr(out, tmp_path):
    report = inspect_dataset(out, tmp_path / "r", sheet=4)
    rows = shard_rows(out)
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "r" / "contact_sheet.png")), cv2.COLOR_BGR2RGB)
    shown = report["contact_sheet"]["rows"]
    assert len(shown) == report["contact_sheet"]["samples"] == 4
    for row in shown:
        r = rows[(row["file"], row["index"])]
        expected_psnr = psnr_u8(r["blur"], r["sharp"])
        assert row["sample"] == r["meta"]["sample"] and row["n_frames"] == r["meta"]["n_frames"] == 7
        assert row["psnr_db"] == pytest.approx(expected_psnr, abs=1e-9)
        assert row["label"] == f"{r['meta']['sample']} ({r['split']})   N=7   PSNR {expected_psnr:.2f} dB"
        strip = sheet[row["y"] : row["y"] + LABEL_H]
        assert text_pixels(strip).sum() > 50
        # the blur tile starts right under the strip
        tile = cv2.resize(r["blur"], (TILE_W, round(32 * TILE_W / 48)), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(sheet[row["y"] + LABEL_H : row["y"] + LABEL_H + row["height"], :TILE_W], tile)


def test_blur_map_histogram_bars_are_fractions_of_pixels(out, tmp_path, monkeypatch):
    drawn = []
    real = report_module.plot_histograms
    monkeypatch.setattr(report_module, "plot_histograms", lambda panels, path: (drawn.append(panels),
                                                                                  real(panels, path)))
    report = inspect_dataset(out, tmp_path / "r", sheet=0)
    hist = report["blur_map_px"]["histogram"]
    total = sum(hist["counts"])
    assert total == report["blur_map_px"]["count"] > 0
    assert hist["fractions"] == pytest.approx([c / total for c in hist["counts"]], abs=1e-15)
    assert sum(hist["fractions"]) == pytest.approx(1.0, abs=1e-12)
    panel = drawn[0][-1]
    assert panel.ylabel == "fraction of pixels"
    assert list(panel.heights) == hist["fractions"]
    assert (np.diff(panel.edges) == 1).all()  # equal widths: a bar's area is its fraction too
    assert list(panel.edge_labels) == ["0", "0.25", "0.5", "1", "2", "4", "8", "16", "32", "64", "128", "inf"]
    # one value per sample elsewhere: those panels still count samples
    assert [p.ylabel for p in drawn[0][:-1]] == ["samples", "samples"]
    assert sum(drawn[0][0].heights) == report["measured_samples"]


def test_cli_names_the_sheet_scale(out, tmp_path):
    from cli_helpers import run_ok

    result = run_ok("inspect", out, "--report", tmp_path / "r", "--sheet", 2)
    scale = json.loads((tmp_path / "r" / "report.json").read_text())["contact_sheet"]["scale"]
    assert scale["column"] == "blur_map" and math.log2(scale["max"]).is_integer()
    assert f"blur_map on one scale, 0 to {scale['max']:g} px" in " ".join(result.output.split())
