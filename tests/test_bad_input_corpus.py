"""A corpus of bad inputs for every command (average, local, stats, inspect, export, train-check).

Every case is its own test id and is held to the same house rules (see test_bad_input.py): a non-zero exit,
exactly one ``Error:`` line that names the file or option at fault and gives a reason, that line is the last
of the output (a one-line message), no ``Traceback`` anywhere, and nothing written: every file and folder
under ``tmp_path`` (the inputs, OUT, DEST, the report folder and the current directory) and under the shared
read-only fixtures is byte-identical before and after the run, and no ``*.partial`` file exists. A few cases
run the real process (``python -m blursynth``) to check stderr and the exit status for real.

A truncated video that still yields samples is not an error: a run with one good and one truncated video
exits 0 and records the truncated one in OUT/manifest.json (tested separately at the end).

Fixtures are tiny (24 x 32 frames, 15-frame clips; a one-image VOC root and three 64 x 96 backgrounds).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from cli_helpers import assert_clean_error, cut, invoke, run_ok, scramble
from conftest import pan_frames, write_frame_folder, write_video
from objects_data import Shape, write_backgrounds, write_coco, write_voc
from textures import textured_image

H, W, N = 24, 32, 15  # frame size and clip length: two 7-frame windows
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
OBJECTS = [Shape("disc", (40, 40, 18)), Shape("rect", (75, 20, 110, 70), 12)]  # ~1020 and 1750 px of alpha
BG_SIZE = (64, 96)
TINY_TRAIN = ["--steps", "2", "--batch-size", "2", "--crop", "16", "--width", "4", "--blocks", "1",
              "--eval-crop", "16", "--device", "cpu"]


# -- helpers -------------------------------------------------------------------------------------------------
def frames(n: int = N, seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    return pan_frames(textured_image(height + 8, width + 24, seed=seed), n, height, width, 0.75)


def clip(path: Path, n: int = N, seed: int = 0, **kw) -> Path:
    return write_video(path, frames(n, seed=seed), **kw)


def zero_frame_video(path: Path) -> Path:
    """A valid Matroska file with a video stream and no frame at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=240)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        container.start_encoding()
        for packet in stream.encode():
            container.mux(packet)
    return path


def snapshot(*roots: Path) -> dict[str, object]:
    """Every file (its bytes) and folder (``<dir>``) under ``roots``, by path."""
    seen: dict[str, object] = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            key = str(p)
            if p.is_symlink():
                seen[key] = ("<link>", os.readlink(p))
            elif p.is_dir():
                seen[key] = "<dir>"
            else:
                try:
                    seen[key] = p.read_bytes()
                except PermissionError:  # a chmod-000 fixture (non-root only): its mode is what matters
                    seen[key] = ("<unreadable>", p.stat().st_size)
    return seen


def diff(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in changed]


def partials(*roots: Path) -> list[str]:
    return [str(p) for root in roots if root.exists() for p in root.rglob("*.partial*")]


def check_one_line_error(result, names: str, reason: str | None) -> str:
    """cli_helpers' rules, plus: the ``Error:`` line is the last line (nothing of the message spills over),
    and it holds ``reason`` (case-insensitive) when one is given."""
    line = assert_clean_error(result, names)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1] == line, f"the error message runs over more than one line:\n{result.output}"
    if reason is not None:
        assert reason.lower() in line.lower(), f"expected {reason!r} in: {line}"
    return line


# -- shared read-only fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> SimpleNamespace:
    """A good clip, a good ``average`` output (5 samples, one shard), a VOC root, a COCO set and backgrounds.
    Read-only: every test checks that they are unchanged."""
    root = tmp_path_factory.mktemp("corpus_shared")
    good = clip(root / "clips" / "good.mkv")
    out = root / "good_out"
    run_ok("average", good, out, "--frames", "7", "--stride", "2", "--device", "cpu", "-q")  # 5 samples
    voc = write_voc(root / "VOC2012", {"2007_000001": OBJECTS})
    coco = write_coco(root / "coco")
    bg = write_backgrounds(root / "bg", 1, 3, BG_SIZE)
    return SimpleNamespace(root=root, clip=good, out=out, voc=voc, coco=coco, bg=bg)


@dataclass
class Case:
    args: list  # the command line after ``blursynth``
    names: str  # what the Error line must name (the file, folder or option)
    reason: str | None = None  # and a word of the reason, where the wording is clear enough to pin


Builder = Callable[[Path, SimpleNamespace], Case]
CASES: dict[str, Builder] = {}


def case(name: str):
    def register(build: Builder) -> Builder:
        assert name not in CASES, name
        CASES[name] = build
        return build

    return register


# == average ==================================================================================================
@case("average-corrupt-video")
def _(t, s):
    bad = scramble(clip(t / "corrupt.mkv"), 0.0, 0.05)
    return Case(["average", bad, t / "out"], "corrupt.mkv")


@case("average-truncated-mp4")
def _(t, s):
    # the moov atom is at the end of an mp4: the first half cannot even be opened, no sample can result
    bad = cut(clip(t / "cut.mp4", codec="libx264"))
    return Case(["average", bad, t / "out"], "cut.mp4")


@case("average-empty-file")
def _(t, s):
    (t / "empty.mp4").write_bytes(b"")
    return Case(["average", t / "empty.mp4", t / "out"], "empty.mp4")


@case("average-text-renamed-mp4")
def _(t, s):
    (t / "notes.mp4").write_text("this is not a video\n" * 20)
    return Case(["average", t / "notes.mp4", t / "out"], "notes.mp4")


@case("average-zero-frame-video")
def _(t, s):
    return Case(["average", zero_frame_video(t / "zero.mkv"), t / "out"], "zero.mkv")


@case("average-one-frame-video")
def _(t, s):
    return Case(["average", clip(t / "one.mkv", n=1), t / "out"], "one.mkv")


@case("average-one-frame-folder")
def _(t, s):
    folder = write_frame_folder(t / "single", frames(1))
    return Case(["average", folder, t / "out", "--fps", "240"], "single")


@case("average-empty-folder")
def _(t, s):
    (t / "nothing").mkdir()
    return Case(["average", t / "nothing", t / "out"], "nothing")


@case("average-mixed-frame-sizes")
def _(t, s):
    folder = write_frame_folder(t / "mixed", frames(10))
    write_frame_folder(folder, frames(5, height=H - 8), start=10)
    return Case(["average", folder, t / "out", "--fps", "240"], "frame10.png")


@case("average-corrupt-png-in-folder")
def _(t, s):
    folder = write_frame_folder(t / "pngs", frames())
    (folder / "frame7.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 30)
    return Case(["average", folder, t / "out", "--fps", "240"], "frame7.png")


@case("average-truncated-png-in-folder")
def _(t, s):
    # the PNG header is intact (probing passes): the source fails while it is read, after OUT was prepared
    folder = write_frame_folder(t / "cutimg", frames())
    cut(folder / "frame5.png")
    return Case(["average", folder, t / "out", "--fps", "240"], "frame5.png")


@case("average-corrupt-jpeg-in-folder")
def _(t, s):
    folder = write_frame_folder(t / "jpegs", frames(), ext=".jpg")
    (folder / "frame4.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2)
    return Case(["average", folder, t / "out", "--fps", "240"], "frame4.jpg")


@case("average-unreadable-png-chmod")
def _(t, s):
    if IS_ROOT:
        pytest.skip("chmod 000 does not stop root from reading a file")
    folder = write_frame_folder(t / "locked", frames())
    (folder / "frame3.png").chmod(0)
    return Case(["average", folder, t / "out", "--fps", "240"], "frame3.png")


@case("average-missing-input")
def _(t, s):
    return Case(["average", t / "nowhere.mkv", t / "out"], "nowhere.mkv")


@case("average-frames-even")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--frames", "8"], "--frames")


@case("average-frames-reversed")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--frames", "13-7"], "--frames")


@case("average-shard-size-negative")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--shard-size", "-1"], "--shard-size")


@case("average-stride-zero")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--stride", "0"], "--stride")


@case("average-max-per-source-negative")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--max-per-source", "-3"], "--max-per-source")


@case("average-downsample-zero")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--downsample", "0"], "--downsample")


@case("average-val-fraction-above-one")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--val-fraction", "1.5"], "--val-fraction")


@case("average-gamma-negative")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--gamma", "-2.2"], "--gamma")


@case("average-unknown-recipe")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--recipe", "blurry"], "--recipe", "blurry")


@case("average-unknown-flow")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--flow", "sparkle"], "--flow", "sparkle")


@case("average-unknown-layout")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--layout", "tar"], "--layout", "tar")


@case("average-unknown-device")
def _(t, s):
    return Case(["average", s.clip, t / "out", "--device", "tpu"], "--device", "tpu")


@case("average-fps-nan")
def _(t, s):
    folder = write_frame_folder(t / "seq", frames())
    return Case(["average", folder, t / "out", "--frames", "7", "--fps", "nan"], "--fps")


@case("average-out-is-a-file")
def _(t, s):
    (t / "out.txt").write_text("keep me")
    return Case(["average", s.clip, t / "out.txt"], "out.txt")


@case("average-out-holds-foreign-files")
def _(t, s):
    (t / "out").mkdir()
    (t / "out" / "holiday.jpg").write_bytes(b"\xff\xd8\xff")
    return Case(["average", s.clip, t / "out"], str(t / "out"), "not empty")


@case("average-out-under-a-file")
def _(t, s):
    (t / "somefile").write_text("a file, not a folder")
    return Case(["average", s.clip, t / "somefile" / "out"], "somefile")


def _existing_average_out(t: Path, s) -> Path:
    out = t / "out"
    run_ok("average", s.clip, out, "--frames", "7", "--seed", "0", "--device", "cpu", "-q")
    return out


@case("average-existing-out-other-seed")
def _(t, s):
    out = _existing_average_out(t, s)
    return Case(["average", s.clip, out, "--frames", "7", "--seed", "1", "--device", "cpu"], str(out), "seed")


@case("average-existing-out-other-frames")
def _(t, s):
    out = _existing_average_out(t, s)
    return Case(["average", s.clip, out, "--frames", "9", "--seed", "0", "--device", "cpu"], str(out), "frames")


# == local ====================================================================================================
@case("local-voc-without-segmentation-object")
def _(t, s):
    root = t / "VOC2012"
    shutil.copytree(s.voc, root)
    shutil.rmtree(root / "SegmentationObject")
    return Case(["local", "--voc", root, "--bg", s.bg, t / "out", "--num-samples", "2"], "SegmentationObject")


@case("local-coco-only-crowd")
def _(t, s):
    data = json.loads(s.coco.json_path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["iscrowd"]]
    assert data["annotations"], "the COCO fixture holds a crowd region"
    (t / "crowd.json").write_text(json.dumps(data))
    return Case(["local", "--coco", t / "crowd.json", "--coco-images", s.coco.images_dir, "--bg", s.bg,
                 t / "out", "--num-samples", "2"], "crowd.json", "crowd")


@case("local-coco-json-syntax-error")
def _(t, s):
    (t / "broken.json").write_text('{"images": [{"id": 1,, }]')
    return Case(["local", "--coco", t / "broken.json", "--coco-images", s.coco.images_dir, "--bg", s.bg,
                 t / "out", "--num-samples", "2"], "broken.json", "json")


@case("local-num-samples-negative")
def _(t, s):
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out", "--num-samples=-5"], "--num-samples")


@case("local-crop-negative")
def _(t, s):
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out", "--num-samples", "2", "--crop=-64"], "--crop")


@case("local-frames-even")
def _(t, s):
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out", "--num-samples", "2", "--frames", "8"],
                "--frames")


@case("local-unknown-layout")
def _(t, s):
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out", "--num-samples", "2", "--layout", "zip"],
                "--layout", "zip")


@case("local-corrupt-background-only")
def _(t, s):
    folder = t / "badbg"
    folder.mkdir()
    (folder / "bg.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return Case(["local", "--voc", s.voc, "--bg", folder, t / "out", "--num-samples", "2"], "bg.png")


@case("local-min-object-area-nan")
def _(t, s):
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out", "--num-samples", "2", "--min-object-area", "nan"],
                "--min-object-area")


@case("local-out-is-a-file")
def _(t, s):
    (t / "out.txt").write_text("keep me")
    return Case(["local", "--voc", s.voc, "--bg", s.bg, t / "out.txt", "--num-samples", "2"], "out.txt")


@case("local-existing-out-other-seed")
def _(t, s):
    out = t / "out"
    run_ok("local", "--voc", s.voc, "--bg", s.bg, out, "--num-samples", "2", "--seed", "0", "--device", "cpu", "-q")
    return Case(["local", "--voc", s.voc, "--bg", s.bg, out, "--num-samples", "2", "--seed", "1", "--device", "cpu"],
                str(out), "seed")


# == stats ====================================================================================================
@case("stats-missing-source")
def _(t, s):
    return Case(["stats", t / "nowhere.mkv", "--flow", "dis", "--out", t / "stats"], "nowhere.mkv")


@case("stats-flow-threshold-text")
def _(t, s):
    return Case(["stats", s.clip, "--flow", "dis", "--flow-threshold", "one,two", "--out", t / "stats"],
                "--flow-threshold")


@case("stats-unknown-flow")
def _(t, s):
    return Case(["stats", s.clip, "--flow", "sparkle", "--out", t / "stats"], "--flow", "sparkle")


@case("stats-text-renamed-mp4")
def _(t, s):
    (t / "notes.mp4").write_text("this is not a video\n" * 20)
    return Case(["stats", t / "notes.mp4", "--flow", "dis", "--out", t / "stats"], "notes.mp4")


@case("stats-out-is-a-file")
def _(t, s):
    (t / "stats.txt").write_text("keep me")
    return Case(["stats", s.clip, "--flow", "dis", "--flow-threshold", "1", "--pairs-per-source", "1",
                 "--out", t / "stats.txt"], "stats.txt")


@case("stats-pairs-per-source-negative")
def _(t, s):
    return Case(["stats", s.clip, "--flow", "dis", "--pairs-per-source", "-1", "--out", t / "stats"],
                "--pairs-per-source")


# == inspect ==================================================================================================
@case("inspect-not-a-blursynth-output")
def _(t, s):
    folder = t / "holiday"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    return Case(["inspect", folder], "holiday", "not a blursynth output")


@case("inspect-missing-folder")
def _(t, s):
    return Case(["inspect", t / "nowhere"], "nowhere")


@case("inspect-corrupt-manifest")
def _(t, s):
    out = t / "out"
    shutil.copytree(s.out, out)
    (out / "manifest.json").write_text('{"version": 1, "config": ')
    return Case(["inspect", out], "manifest.json")


@case("inspect-report-under-a-file")
def _(t, s):
    (t / "afile").write_text("x")
    return Case(["inspect", s.out, "--report", t / "afile" / "report"], "afile")


@case("inspect-max-samples-zero")
def _(t, s):
    return Case(["inspect", s.out, "--max-samples", "0", "--report", t / "report"], "--max-samples")


# == export ===================================================================================================
@case("export-unknown-format")
def _(t, s):
    return Case(["export", s.out, t / "dest", "--layout", "zip"], "--layout", "zip")


@case("export-not-a-blursynth-output")
def _(t, s):
    folder = t / "holiday"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    return Case(["export", folder, t / "dest", "--layout", "basicsr"], "holiday")


@case("export-missing-out")
def _(t, s):
    return Case(["export", t / "nowhere", t / "dest", "--layout", "gopro"], "nowhere")


@case("export-dest-is-a-file")
def _(t, s):
    (t / "dest.txt").write_text("keep me")
    return Case(["export", s.out, t / "dest.txt", "--layout", "gopro"], "dest.txt")


@case("export-dest-under-a-file")
def _(t, s):
    (t / "afile").write_text("x")
    return Case(["export", s.out, t / "afile" / "dest", "--layout", "basicsr"], "afile")


@case("export-dest-not-empty")
def _(t, s):
    (t / "dest").mkdir()
    (t / "dest" / "mine.txt").write_text("keep me")
    return Case(["export", s.out, t / "dest", "--layout", "lmdb"], "dest", "not empty")


# == train-check ==============================================================================================
@case("train-check-missing-folder")
def _(t, s):
    return Case(["train-check", t / "nowhere", *TINY_TRAIN], "nowhere")


@case("train-check-out-is-a-file")
def _(t, s):
    (t / "afile.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    return Case(["train-check", t / "afile.h5", *TINY_TRAIN, "--report", t / "rep"], "afile.h5")


@case("train-check-steps-negative")
def _(t, s):
    return Case(["train-check", s.out, *TINY_TRAIN, "--steps=-1"], "--steps")


@case("train-check-crop-not-multiple-of-4")
def _(t, s):
    return Case(["train-check", s.out, *TINY_TRAIN, "--crop", "30"], "--crop")


@case("train-check-holdout-above-one")
def _(t, s):
    return Case(["train-check", s.out, *TINY_TRAIN, "--holdout", "1.5"], "--holdout")


@case("train-check-report-under-a-file")
def _(t, s):
    (t / "afile").write_text("x")
    return Case(["train-check", s.out, *TINY_TRAIN, "--min-gain-db", "-100", "--report", t / "afile" / "rep"],
                "afile")


@case("train-check-lr-inf")
def _(t, s):
    return Case(["train-check", s.out, *TINY_TRAIN, "--lr", "inf", "--report", t / "rep"], "--lr")


@case("train-check-min-gain-db-nan")
def _(t, s):
    return Case(["train-check", s.out, *TINY_TRAIN, "--min-gain-db", "nan", "--report", t / "rep"], "--min-gain-db")


# == OUT, DEST or --report whose parent folder does not exist yet: a failed run must not leave it behind ======
@case("average-text-renamed-mp4-new-parent")
def _(t, s):
    (t / "notes.mp4").write_text("this is not a video\n" * 20)
    return Case(["average", t / "notes.mp4", t / "new" / "out"], "notes.mp4")


@case("average-truncated-png-new-parent")
def _(t, s):
    folder = write_frame_folder(t / "cutimg", frames())
    cut(folder / "frame5.png")
    return Case(["average", folder, t / "new" / "out", "--fps", "240"], "frame5.png")


@case("local-coco-json-syntax-error-new-parent")
def _(t, s):
    (t / "broken.json").write_text('{"images": [{"id": 1,, }]')
    return Case(["local", "--coco", t / "broken.json", "--coco-images", s.coco.images_dir, "--bg", s.bg,
                 t / "new" / "out", "--num-samples", "2"], "broken.json", "json")


@case("stats-text-renamed-mp4-new-parent")
def _(t, s):
    (t / "notes.mp4").write_text("this is not a video\n" * 20)
    return Case(["stats", t / "notes.mp4", "--flow", "dis", "--out", t / "new" / "stats"], "notes.mp4")


@case("inspect-not-a-blursynth-output-new-parent")
def _(t, s):
    (t / "holiday").mkdir()
    return Case(["inspect", t / "holiday", "--report", t / "new" / "report"], "holiday")


@case("export-not-a-blursynth-output-new-parent")
def _(t, s):
    (t / "holiday").mkdir()
    return Case(["export", t / "holiday", t / "new" / "dest", "--layout", "gopro"], "holiday")


# -- the corpus ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clean_error_and_writes_nothing(name, tmp_path, shared, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # default output folders (stats/, lbs_out/, train_check/) would land here
    c = CASES[name](tmp_path, shared)
    roots = [tmp_path, shared.root]
    before = snapshot(*roots)

    result = invoke(*c.args)

    assert "Traceback" not in result.output, result.output
    check_one_line_error(result, c.names, c.reason)
    assert not partials(*roots)
    changes = diff(before, snapshot(*roots))
    assert not changes, f"the failed run left changes behind: {changes}"


# -- the real process ----------------------------------------------------------------------------------------
SUBPROCESS_CASES = ["average-corrupt-video", "local-coco-json-syntax-error", "export-unknown-format",
                    "stats-missing-source"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_through_python_m_blursynth(name, tmp_path, shared):
    """stderr holds exactly one Error line (the last), no traceback anywhere, a non-zero exit status."""
    work = tmp_path / "work"
    work.mkdir()
    c = CASES[name](tmp_path, shared)
    roots = [tmp_path, shared.root]
    before = snapshot(*roots)
    proc = subprocess.run([sys.executable, "-m", "blursynth", *map(str, c.args)], capture_output=True, text=True,
                          timeout=120, cwd=work)
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    assert c.names in errors[0], errors[0]
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()][-1] == errors[0], proc.stderr
    assert "Error:" not in proc.stdout
    assert not partials(*roots)
    assert not diff(before, snapshot(*roots))


# -- train-check on a folder that is not a dataset: one Error line and exit 1 (exit 3 is a dataset that fails) --
def test_train_check_on_a_foreign_folder_is_one_error_line_without_training(tmp_path):
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    result = invoke("train-check", folder, *TINY_TRAIN, "--report", tmp_path / "rep")
    line = assert_clean_error(result, "holiday", exit_code=1)
    assert "not a blursynth output" in line
    assert "trained" not in result.output and "PASSED" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg"]  # the foreign folder is not written to
    assert not partials(tmp_path)


def test_train_check_with_a_diverging_learning_rate_is_not_a_traceback(shared, tmp_path):
    """--lr 1e6 is a valid (if silly) setting; the model diverges. That is a failed check or a clean error."""
    result = invoke("train-check", shared.out, *TINY_TRAIN, "--lr", "1e6", "--report", tmp_path / "rep")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code in (1, 3), result.output
    if result.exit_code == 1:
        errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and result.output.strip().splitlines()[-1] == errors[0], result.output
    else:
        assert "FAILED" in result.output


# -- a truncated video next to a good one: a success with a recorded failure -----------------------------------
@pytest.mark.parametrize("name, codec", [("cut.mp4", "libx264"), ("cut.mkv", "ffv1")],
                         ids=["h264-mp4-cut-in-half", "ffv1-mkv-cut-in-half"])
def test_one_good_and_one_truncated_video_exits_0_and_records_the_bad_one(tmp_path, name, codec):
    """The mp4 cannot be opened at all; the mkv decodes up to the cut. Either way the run succeeds on the good
    clip and the truncated one is recorded (status, reason, totals.failures), never silently taken as whole."""
    good = clip(tmp_path / "clips" / "good.mkv")
    bad = cut(clip(tmp_path / "clips" / name, seed=1, codec=codec))
    out = tmp_path / "out"
    result = invoke("average", good, bad, out, "--frames", "7", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    assert "Traceback" not in result.output
    assert name in result.stderr  # warned about
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete"
    by_key = {src["key"]: src for src in man["sources"]}
    assert set(by_key) == {"good.mkv", name}
    assert by_key["good.mkv"]["status"] == "ok" and by_key["good.mkv"]["samples"] > 0
    assert by_key[name]["status"] in ("failed", "skipped", "partial"), by_key[name]
    assert by_key[name].get("reason")
    assert name in [f["source"] for f in man["totals"]["failures"]]
    assert man["totals"]["samples"] == sum(src.get("samples") or 0 for src in man["sources"])
    for shard in man["shards"]:
        if shard["count"]:
            assert (out / shard["split"] / shard["file"]).is_file()
    assert not partials(tmp_path)
