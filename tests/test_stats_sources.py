"""`blursynth stats` on real-world sources: truncated files and mixed frame rates (issue 16, sections 2 and 3).

Truncated: a lossless 240 fps pan (1.5 px/frame, so 3 px per pair of gap 2) cut in half keeps its decodable
prefix, as `average` does: the pairs whose two frames decode are measured, the source is recorded `partial`
with the reason and the number of frames that decoded (counted here with PyAV, independently of blursynth).

Spans: the same pan at 240 fps and 24 fps is measured over 2 frames (8.33 ms) and 1 frame (41.7 ms): the
spans are recorded per source, per dataset, on every CSV row and in the legend, and one warning says that the
curves are not comparable.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
from cli_helpers import assert_clean_error, cut, invoke
from conftest import pan_frames, textured_image, write_frame_folder, write_video

from blursynth.seeding import create_rng
from blursynth.stats.curves import DatasetCurve
from blursynth.stats.flow_ratio import measured_span_ms, pair_starts, span_text, spans_differ
from blursynth.stats.outputs import CSV_NAME, JSON_NAME
from blursynth.stats.plots import curve_label

H, W, N = 96, 128, 40
PAN_V = 1.5
DIS = ["--flow", "dis", "--flow-threshold", "1,2,4"]


def make_pan(n: int = N, seed: int = 3) -> np.ndarray:
    tex = textured_image(H + 8, W + int(PAN_V * n) + 8, seed=seed)
    return pan_frames(tex, n, H, W, PAN_V)


def run_ok(*args):
    result = invoke("stats", *args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def read_json(out: Path) -> dict:
    return json.loads((out / JSON_NAME).read_text(encoding="utf-8"))


def read_csv(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def curve(out: Path, label: str) -> dict[float, float]:
    return {float(r["threshold"]): float(r["mean"]) for r in read_csv(out) if r["label"] == label}


def source_entry(out: Path, label: str) -> dict:
    (d,) = [d for d in read_json(out)["datasets"] if d["label"] == label]
    (src,) = d["sources"]
    return src


def pyav_decodable(path: Path) -> int:
    """Frames PyAV decodes before the file ends or fails (the oracle of ``frames_decoded``)."""
    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.FFmpegError:
            pass
    return count


# -- truncated sources ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> Path:
    path = write_video(tmp_path_factory.mktemp("cut") / "cut.mkv", make_pan(), fps=240)
    cut(path, 0.5)
    return path


def test_the_fixture_is_truncated_part_way(truncated):
    decoded = pyav_decodable(truncated)
    assert 6 <= decoded <= N - 6, decoded


def test_a_truncated_video_is_measured_over_its_decodable_prefix(truncated, tmp_path):
    out = tmp_path / "out"
    result = run_ok(f"CUT={truncated}", *DIS, "--pairs-per-source", 10, "--out", out)
    src = source_entry(out, "CUT")
    decoded = pyav_decodable(truncated)
    planned = pair_starts(N, 2, 10, create_rng(0, "stats", "CUT", "cut.mkv"))
    kept = [t for t in planned if t + 2 < decoded]
    assert 0 < len(kept) < len(planned)
    assert src["status"] == "partial" and "truncated" in src["reason"]
    assert src["frames_decoded"] == decoded and src["frames"] == N
    assert src["starts"] == kept and src["pairs"] == len(kept) and src["pairs_planned"] == len(planned)
    assert {int(r["pairs"]) for r in read_csv(out)} == {len(kept)}
    pan = curve(out, "CUT")  # the prefix is the same 3 px-per-pair pan
    assert pan[2.0] > 0.9 and pan[4.0] < 0.1
    warned = [ln for ln in result.output.splitlines() if "decodable frames" in ln]
    assert len(warned) == 1 and "cut.mkv" in warned[0], result.output
    assert f"measuring the {decoded} decodable frames ({len(kept)} of {len(planned)} pairs)" in warned[0]


def test_average_and_stats_read_the_same_truncated_prefix(truncated, tmp_path):
    """One rule for both commands: the decodable prefix is used and the source is recorded as partial."""
    run_ok(f"CUT={truncated}", *DIS, "--pairs-per-source", 10, "--out", tmp_path / "stats", "-q")
    stats_src = source_entry(tmp_path / "stats", "CUT")
    result = invoke("average", truncated, tmp_path / "avg", "--frames", "7", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    (avg_src,) = json.loads((tmp_path / "avg" / "manifest.json").read_text())["sources"]
    assert avg_src["status"] == stats_src["status"] == "partial"
    assert avg_src["reason"] == stats_src["reason"]


def test_a_truncated_frame_folder_keeps_the_pairs_before_the_bad_frame(tmp_path):
    """12 frames, gap 2, every start measured (0..9); frame 5 is cut short: pairs 0-2, 1-3, 2-4 remain."""
    folder = write_frame_folder(tmp_path / "seq", make_pan(12))
    cut(folder / "frame5.png", 0.5)
    out = tmp_path / "out"
    run_ok(f"SEQ={folder}@240", *DIS, "--pairs-per-source", 20, "--out", out, "-q")
    src = source_entry(out, "SEQ")
    assert src["status"] == "partial" and "frame5.png" in src["failed_path"]
    assert src["frames_decoded"] == 5 and src["starts"] == [0, 1, 2] and src["pairs_planned"] == 10
    assert curve(out, "SEQ")[2.0] > 0.9


def test_a_source_truncated_before_its_first_pair_is_a_clean_error(tmp_path):
    """Only frame 0 decodes: no pair 2 frames apart; alone in the run, that is an error and nothing is written."""
    folder = write_frame_folder(tmp_path / "seq", make_pan(6))
    cut(folder / "frame1.png", 0.3)
    out = tmp_path / "out"
    line = assert_clean_error(invoke("stats", f"SEQ={folder}@240", *DIS, "--out", out), "frame1.png", exit_code=1)
    assert "no pair 2 frames apart in the 1 decodable frames" in line
    assert not out.exists()


def test_a_truncated_video_next_to_a_good_one(truncated, tmp_path):
    good = write_video(tmp_path / "clips" / "good.mkv", make_pan(24), fps=240)
    (tmp_path / "clips" / "cut.mkv").write_bytes(truncated.read_bytes())
    out = tmp_path / "out"
    run_ok(f"MIX={tmp_path / 'clips'}", *DIS, "--pairs-per-source", 4, "--out", out, "-q")
    (d,) = read_json(out)["datasets"]
    by_key = {s["key"]: s for s in d["sources"]}
    assert by_key["good.mkv"]["status"] == "ok" and "frames_decoded" not in by_key["good.mkv"]
    assert by_key["cut.mkv"]["status"] == "partial"
    assert d["pairs"] == 4 + by_key["cut.mkv"]["pairs"]
    assert good.exists()


# -- time spans ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rates(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rates")
    pan = make_pan(24)
    return {fps: write_video(root / str(fps) / "pan.mkv", pan, fps=fps) for fps in (240, 120, 24, 10)}


def test_span_helpers():
    assert measured_span_ms(2, 240) == pytest.approx(8.3333333)
    assert measured_span_ms(1, 24) == pytest.approx(41.666667)
    assert measured_span_ms(1, 10) == 100.0
    assert not spans_differ([]) and not spans_differ([8.33]) and not spans_differ([8.0, 8.8])
    assert spans_differ([8.0, 8.81]) and spans_differ([8.33, 41.7, 100.0])
    assert span_text([]) == "" and span_text([8.333333]) == "8.33 ms"
    assert span_text([8.333333, 41.666667]) == "8.33-41.7 ms"
    c = DatasetCurve("A", "a", np.zeros(1), np.zeros(1), 3, spans_ms=[100.0])
    assert curve_label(c) == "A (3 pairs, 100 ms)"


def test_mixed_frame_rates_record_label_and_warn(rates, tmp_path, monkeypatch):
    """240 fps (gap 2, 8.33 ms, 3 px) vs 24 fps (gap 1, 41.7 ms, 1.5 px) vs 10 fps (gap 1, 100 ms)."""
    import blursynth.stats.outputs as outputs

    drawn = []
    plot = outputs.plot_ratio_curves
    monkeypatch.setattr(outputs, "plot_ratio_curves", lambda *a, **k: drawn.extend(plot(*a, **k)))
    out = tmp_path / "out"
    result = run_ok(f"FAST={rates[240]}", f"FILM={rates[24]}", f"STREET={rates[10]}", *DIS,
                    "--pairs-per-source", 3, "--out", out)
    doc = read_json(out)
    expected = {"FAST": 1000 * 2 / 240, "FILM": 1000 / 24, "STREET": 100.0}
    for label, span in expected.items():
        assert source_entry(out, label)["span_ms"] == pytest.approx(span)
        (d,) = [d for d in doc["datasets"] if d["label"] == label]
        assert d["spans_ms"] == [pytest.approx(span, abs=1e-6)]
        rows = [r for r in read_csv(out) if r["label"] == label]
        assert {(float(r["span_ms_min"]), float(r["span_ms_max"])) for r in rows} == {(round(span, 6),) * 2}
    assert doc["spans_differ"] is True
    assert drawn == ["FAST (3 pairs, 8.33 ms)", "FILM (3 pairs, 41.7 ms)", "STREET (3 pairs, 100 ms)"]
    warnings = [ln for ln in result.output.splitlines() if "different time spans" in ln]
    assert len(warnings) == 1, result.output
    assert "FAST 8.33 ms" in warnings[0] and "FILM 41.7 ms" in warnings[0] and "STREET 100 ms" in warnings[0]
    assert curve(out, "FAST")[2.0] > 0.9 and curve(out, "FILM")[2.0] < 0.1  # 3 px vs 1.5 px per pair


def test_one_dataset_of_mixed_rates_records_its_range(rates, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "fast.mkv").write_bytes(rates[240].read_bytes())
    (folder / "film.mkv").write_bytes(rates[24].read_bytes())
    out = tmp_path / "out"
    result = run_ok(f"MIX={folder}", *DIS, "--pairs-per-source", 2, "--out", out)
    (d,) = read_json(out)["datasets"]
    assert d["spans_ms"] == [pytest.approx(8.333333), pytest.approx(41.666667)]
    assert {(r["span_ms_min"], r["span_ms_max"]) for r in read_csv(out)} == {("8.333333", "41.666667")}
    assert sum("different time spans" in ln for ln in result.output.splitlines()) == 1
    assert "8.33-41.7 ms" in result.output  # the table's column names the range


def test_equal_spans_do_not_warn(rates, tmp_path):
    """120 fps with gap 1 and 240 fps with gap 2 both span 8.33 ms: comparable, no warning."""
    out = tmp_path / "out"
    result = run_ok(f"R120={rates[120]}", f"R240={rates[240]}", *DIS, "--pairs-per-source", 2, "--out", out)
    assert "different time spans" not in result.output
    assert read_json(out)["spans_differ"] is False
    assert {r["span_ms_min"] for r in read_csv(out)} == {"8.333333"}


def test_a_span_every_source_reaches_does_not_warn(rates, tmp_path):
    """--span-ms 100: 120 fps -> gap 12 and 10 fps -> gap 1 both span 100 ms: comparable, no warning."""
    out = tmp_path / "out"
    result = run_ok(f"R120={rates[120]}", f"STREET={rates[10]}", *DIS, "--span-ms", 100, "--pairs-per-source", 2,
                    "--out", out)
    assert "different time spans" not in result.output
    assert {source_entry(out, "R120")["gap"], source_entry(out, "STREET")["gap"]} == {12, 1}
