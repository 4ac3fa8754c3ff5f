"""Bad input must give one ``Error:`` line that names the file and the reason, a non-zero exit, no
traceback and no partial output; inside a multi-source run a bad source is skipped and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from cli_helpers import assert_clean_error, cut, invoke, scramble
from conftest import pan_frames, textured_image, write_frame_folder, write_video

H, W = 24, 32
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# -- helpers -------------------------------------------------------------------------------------------


def make_frames(n: int, seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    return pan_frames(textured_image(height + 8, width + 48, seed=seed), n, height, width, 0.75)


def good_clip(path: Path, n: int = 40, seed: int = 0, **kw) -> Path:
    return write_video(path, make_frames(n, seed=seed), **kw)


def zero_frame_video(path: Path) -> Path:
    """A valid Matroska file with a video stream but no frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=240)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        container.start_encoding()
        for packet in stream.encode():
            container.mux(packet)
    assert path.stat().st_size > 0
    return path


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())




def assert_no_outputs(out: Path) -> None:
    """OUT was not created, or holds none of blursynth's files."""
    if out.is_dir():
        assert not list(out.iterdir()), sorted(p.name for p in out.rglob("*"))


# -- single bad inputs ---------------------------------------------------------------------------------------
def _text_as_mp4(tmp: Path):
    p = tmp / "notes.mp4"
    p.write_text("this is not a video\n" * 20)
    return [p], "notes.mp4"


def _empty_video(tmp: Path):
    p = tmp / "empty.mp4"
    p.write_bytes(b"")
    return [p], "empty.mp4"


def _zero_frame_video(tmp: Path):
    return [zero_frame_video(tmp / "zero.mkv")], "zero.mkv"


def _one_frame_video(tmp: Path):
    return [good_clip(tmp / "one.mkv", n=1)], "one.mkv"


def _short_video(tmp: Path):
    return [good_clip(tmp / "short.mkv", n=5)], "short.mkv"


def _corrupt_header(tmp: Path):
    return [scramble(good_clip(tmp / "corrupt.mkv"), 0.0, 0.05)], "corrupt.mkv"


def _truncated_mp4(tmp: Path):
    # the moov atom is at the end of an mp4: half a file cannot be opened at all
    return [cut(good_clip(tmp / "cut.mp4", codec="libx264"))], "cut.mp4"


def _unreadable_video(tmp: Path):
    if IS_ROOT:
        pytest.skip("chmod cannot make a file unreadable for root")
    p = good_clip(tmp / "locked.mkv")
    p.chmod(0)
    return [p], "locked.mkv"


def _missing_input(tmp: Path):
    return [tmp / "nowhere.mkv"], "nowhere.mkv"


def _mixed_size_folder(tmp: Path):
    folder = write_frame_folder(tmp / "mixed", make_frames(10))
    write_frame_folder(folder, make_frames(3, height=H - 8), start=10)
    return [folder], "frame10.png"


def _unreadable_image_folder(tmp: Path):
    folder = write_frame_folder(tmp / "garbage", make_frames(20))
    (folder / "frame7.png").write_bytes(b"not an image at all")
    return [folder], "frame7.png"


def _truncated_image_folder(tmp: Path):
    # the PNG header is intact (probing passes) but the pixel data is cut: fails while reading
    folder = write_frame_folder(tmp / "cutimg", make_frames(20))
    cut(folder / "frame5.png")
    return [folder], "frame5.png"


def _empty_folder(tmp: Path):
    (tmp / "nothing").mkdir()
    return [tmp / "nothing"], "nothing"


def _one_frame_folder(tmp: Path):
    return [write_frame_folder(tmp / "single", make_frames(1))], "single"


def _bad_frames(value: str):
    def build(tmp: Path):
        return [good_clip(tmp / "clip.mkv"), "--frames", value], "--frames"

    return build


BAD_SINGLE = {
    "text-renamed-mp4": _text_as_mp4,
    "empty-file": _empty_video,
    "zero-frame-video": _zero_frame_video,
    "one-frame-video": _one_frame_video,
    "shorter-than-window": _short_video,
    "corrupt-header": _corrupt_header,
    "truncated-mp4": _truncated_mp4,
    "unreadable-video": _unreadable_video,
    "missing-input": _missing_input,
    "mixed-size-folder": _mixed_size_folder,
    "unreadable-image": _unreadable_image_folder,
    "truncated-image": _truncated_image_folder,
    "empty-folder": _empty_folder,
    "one-frame-folder": _one_frame_folder,
    "frames-even": _bad_frames("8"),
    "frames-reversed": _bad_frames("9-7"),
    "frames-zero": _bad_frames("0"),
    "frames-negative": _bad_frames("-3"),
    "frames-even-range": _bad_frames("7-10"),
    "frames-not-a-number": _bad_frames("seven"),
}


@pytest.mark.parametrize("case", list(BAD_SINGLE))
def test_bad_input_is_a_one_line_error(tmp_path, case):
    args, names = BAD_SINGLE[case](tmp_path)
    out = tmp_path / "out"
    result = invoke("average", args[0], out, *args[1:])
    assert_clean_error(result, names)
    assert not out.exists()


@pytest.mark.parametrize("case", ["truncated-image", "corrupt-header", "one-frame-video"])
def test_bad_input_leaves_existing_empty_out_empty(tmp_path, case):
    args, names = BAD_SINGLE[case](tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("average", args[0], out, *args[1:])
    assert_clean_error(result, names)
    assert out.is_dir()
    assert_no_outputs(out)


def test_bad_input_through_the_console_script(tmp_path):
    """The real process: stderr holds the error line, no traceback, exit status 1."""
    args, names = _text_as_mp4(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "blursynth", "average", str(args[0]), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and names in errors[0], proc.stderr
    assert proc.stdout == ""
    assert not out.exists()


# -- OUT problems --------------------------------------------------------------------------------------------
def test_out_is_a_file(tmp_path):
    clip = good_clip(tmp_path / "clip.mkv")
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    result = invoke("average", clip, out)
    assert_clean_error(result, "out.txt")
    assert out.read_text() == "keep me"


def test_out_cannot_be_created_under_a_file(tmp_path):
    clip = good_clip(tmp_path / "clip.mkv")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker / "sub"
    result = invoke("average", clip, out)
    assert_clean_error(result, "blocker/sub")
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.skipif(IS_ROOT, reason="chmod does not restrict root")
def test_out_in_read_only_folder(tmp_path):
    clip = good_clip(tmp_path / "clip.mkv")
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = invoke("average", clip, parent / "out")
        assert_clean_error(result, "out")
        assert not (parent / "out").exists()
    finally:
        parent.chmod(0o700)


@pytest.mark.skipif(IS_ROOT, reason="chmod does not restrict root")
def test_existing_out_not_writable(tmp_path):
    clip = good_clip(tmp_path / "clip.mkv")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        result = invoke("average", clip, out)
        assert_clean_error(result, "out")
    finally:
        out.chmod(0o700)
    assert_no_outputs(out)


def test_out_with_foreign_files_is_refused(tmp_path):
    clip = good_clip(tmp_path / "clip.mkv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    result = invoke("average", clip, out)
    assert_clean_error(result, "out")
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


# -- a bad source among good ones ----------------------------------------------------------------------------
BAD_AMONG_GOOD = {
    "text-renamed-mp4": (_text_as_mp4, "notes.mp4"),
    "empty-file": (_empty_video, "empty.mp4"),
    "zero-frame-video": (_zero_frame_video, "zero.mkv"),
    "one-frame-video": (_one_frame_video, "one.mkv"),
    "corrupt-header": (_corrupt_header, "corrupt.mkv"),
    "truncated-mp4": (_truncated_mp4, "cut.mp4"),
    "mixed-size-folder": (_mixed_size_folder, "mixed"),
    "unreadable-image": (_unreadable_image_folder, "garbage"),
    "truncated-image": (_truncated_image_folder, "cutimg"),
    "one-frame-folder": (_one_frame_folder, "single"),
}


@pytest.mark.parametrize("case", list(BAD_AMONG_GOOD))
def test_bad_source_among_good_ones_is_skipped_and_recorded(tmp_path, case):
    build, key = BAD_AMONG_GOOD[case]
    args, _ = build(tmp_path)
    good = good_clip(tmp_path / "good.mkv")
    out = tmp_path / "out"
    result = invoke("average", good, args[0], out, "--fps", "240")
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    assert "Traceback" not in result.output
    assert key in result.stderr  # warned about
    assert "skipped or incomplete" in result.stdout

    man = manifest(out)
    assert man["status"] == "complete"
    by_key = {s["key"]: s for s in man["sources"]}
    assert set(by_key) == {"good.mkv", key}
    assert by_key["good.mkv"]["status"] == "ok" and by_key["good.mkv"]["samples"] > 0
    bad = by_key[key]
    assert bad["status"] in ("failed", "skipped"), bad
    assert bad.get("reason"), bad
    assert not bad.get("samples")
    assert key in [f["source"] for f in man["totals"]["failures"]]
    assert man["totals"]["samples"] == by_key["good.mkv"]["samples"]
    # no sample of the bad source anywhere, and every listed shard file exists
    for shard in man["shards"]:
        if shard["count"]:
            assert (out / shard["split"] / shard["file"]).is_file()
            assert shard["sources"] == ["good.mkv"]
    assert not list(out.rglob("*.partial*"))


def test_failure_entries_name_the_file(tmp_path):
    """totals.failures lists where each failure happened (path + reason), like the error message does."""
    good = good_clip(tmp_path / "good.mkv")
    args, _ = _truncated_image_folder(tmp_path)
    args2, _ = _text_as_mp4(tmp_path)
    out = tmp_path / "out"
    result = invoke("average", good, args[0], args2[0], out)
    assert result.exit_code == 0, result.output
    failures = manifest(out)["totals"]["failures"]
    assert {f["source"] for f in failures} == {"cutimg", "notes.mp4"}
    for f in failures:
        assert f.get("reason") and f.get("path"), f


# -- truncated / damaged videos that still decode in part ----------------------------------------------------
def _cut_ffv1_mkv(tmp: Path):
    return cut(good_clip(tmp / "cut.mkv")), "cut.mkv"


def _cut_h264_mkv(tmp: Path):
    return cut(good_clip(tmp / "cut264.mkv", codec="libx264")), "cut264.mkv"


def _cut_h264_mp4(tmp: Path):
    return cut(good_clip(tmp / "cut.mp4", codec="libx264")), "cut.mp4"


def _scrambled_middle(tmp: Path):
    return scramble(good_clip(tmp / "damaged.mkv"), 1 / 3, 2 / 3), "damaged.mkv"


DAMAGED = {
    "ffv1-mkv-cut-in-half": _cut_ffv1_mkv,
    "h264-mkv-cut-in-half": _cut_h264_mkv,
    "h264-mp4-cut-in-half": _cut_h264_mp4,
    "ffv1-mkv-scrambled-middle": _scrambled_middle,
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_video_alone_is_an_error_or_a_recorded_partial(tmp_path, case):
    """Some samples may come out of the readable part, but the damage must never go unrecorded."""
    path, name = DAMAGED[case](tmp_path)
    out = tmp_path / "out"
    result = invoke("average", path, out)
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        line = assert_clean_error(result, name)
        assert "not permitted" not in line.lower(), f"misleading reason for a readable file: {line}"
        assert not out.exists()
        return
    man = manifest(out)
    entry = man["sources"][0]
    assert man["totals"]["samples"] > 0
    assert entry["status"] in ("partial", "failed"), (
        f"{name} ({case}) is damaged, but the manifest says {entry['status']!r} with "
        f"{entry.get('frames')} frames and no failure recorded")
    assert entry.get("reason")
    assert man["totals"]["failures"]
    stats = [json.loads(p.read_text()) for p in (out / "train").glob("*_stats.json")]
    assert any(s["failures"] for s in stats)


def test_damaged_video_among_good_ones_is_recorded(tmp_path):
    good = good_clip(tmp_path / "good.mkv", seed=3)
    damaged, name = _cut_h264_mkv(tmp_path)
    out = tmp_path / "out"
    result = invoke("average", good, damaged, out)
    assert result.exit_code == 0, result.output
    by_key = {s["key"]: s for s in manifest(out)["sources"]}
    assert by_key[name]["status"] in ("failed", "partial")
    assert "not permitted" not in by_key[name]["reason"].lower(), by_key[name]["reason"]


# -- short sources -------------------------------------------------------------------------------------------
def test_source_shorter_than_a_window_is_skipped_with_a_warning(tmp_path):
    good = good_clip(tmp_path / "good.mkv")
    short = good_clip(tmp_path / "short.mkv", n=5, seed=2)
    out = tmp_path / "out"
    result = invoke("average", good, short, out, "--frames", "7")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "short.mkv" in line]
    assert warnings and warnings[0].startswith("warning"), result.stderr
    entry = {s["key"]: s for s in manifest(out)["sources"]}["short.mkv"]
    assert entry["status"] == "skipped"
    assert "5 frames" in entry["reason"]


@pytest.mark.parametrize("n, seed", [(10, 0), (10, 1), (10, 2), (12, 3)])
def test_short_source_reason_is_consistent(tmp_path, n, seed):
    """A 10-frame clip with --frames 7-13 either yields a sample or is skipped with a true reason."""
    clip = good_clip(tmp_path / "tiny.mkv", n=n)
    out = tmp_path / "out"
    result = invoke("average", clip, out, "--frames", "7-13", "--seed", seed)
    if result.exit_code == 0:
        assert manifest(out)["totals"]["samples"] >= 1
        return
    line = assert_clean_error(result, "tiny.mkv")
    assert f"({n} frames < 7)" not in line, f"self-contradictory reason: {line}"
