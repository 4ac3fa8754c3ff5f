"""``blursynth local`` on bad input, and its command line.

House rules (as in test_bad_input.py): one ``Error:`` line naming the file (or option) and the reason, a
non-zero exit (InputError/OutputError 1, ConfigError and click usage errors 2), no traceback, and nothing
left behind when nothing could be produced (OUT not created, no ``*.partial``, no ``objects.h5``). A bad
background among good ones is skipped and recorded in manifest.json and the run goes on.

Preconditions raise ``RuntimeError`` (see :func:`require`) so that a broken fixture is reported as such,
never mistaken for the behaviour under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import pytest
from cli_helpers import assert_clean_error, invoke
from objects_data import Shape, texture, write_coco, write_voc

from blursynth.objects.store import ObjectStore

BG_H, BG_W = 64, 96


def require(condition: bool, message: str) -> None:
    """A precondition of a test (not what it checks): fails the test outright, even under xfail."""
    if not condition:
        raise RuntimeError(f"precondition not met: {message}")


# -- helpers -------------------------------------------------------------------------------------------------


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    assert "Traceback" not in result.output


def assert_nothing_left(out: Path) -> None:
    """OUT was not created, or (when it existed before) holds nothing at all."""
    if out.exists():
        assert not list(out.rglob("*")), sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))


def write_png(path: Path, height: int = BG_H, width: int = BG_W, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(texture(height, width, seed), cv2.COLOR_RGB2BGR))
    return path


def backgrounds(folder: Path, sizes, seed: int = 0, ext: str = ".png") -> Path:
    """``img0<ext>, img1<ext>, ...`` of the given ``(height, width)`` sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i}{ext}"
        assert cv2.imwrite(str(path), cv2.cvtColor(texture(h, w, seed + i), cv2.COLOR_RGB2BGR))
    return folder


def truncate(path: Path, fraction: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def sample_metas(out: Path) -> list[dict]:
    metas = []
    for shard in sorted(out.glob("*/*.h5")):
        with h5py.File(shard, "r") as f:
            metas += [json.loads(m) for m in f["meta"].asstr()[:]]
    return metas


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# -- fixtures (read-only ones are module-scoped: VOC and COCO take a moment to write) ------------------------
OBJECTS = [Shape("disc", (40, 40, 18)), Shape("rect", (75, 20, 110, 70), 12)]  # a cat (~1020 px), a dog


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return write_voc(tmp_path_factory.mktemp("voc") / "VOC2012", {"2007_000001": OBJECTS})


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture
def bg(tmp_path) -> Path:
    """Three 64x96 backgrounds in one folder."""
    return backgrounds(tmp_path / "bg", [(BG_H, BG_W)] * 3)


# -- --bg ----------------------------------------------------------------------------------------------------
def _bg_missing(tmp: Path):
    return tmp / "nowhere", "no such file or directory"


def _bg_empty(tmp: Path):
    (tmp / "empty").mkdir()
    return tmp / "empty", "no images"


def _bg_no_images(tmp: Path):
    folder = tmp / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "readme.txt").write_text("not an image\n")
    (folder / "sub" / "data.json").write_text("{}")
    return folder, "no images"


def _bg_text_file(tmp: Path):
    (tmp / "notes.txt").write_text("not an image\n")
    return tmp / "notes.txt", "not an image"


def _bg_only_unreadable(tmp: Path):
    folder = tmp / "fake"
    folder.mkdir()
    (folder / "fake.png").write_text("not a png")
    return folder / "fake.png", "unreadable image header"


@pytest.mark.parametrize("build", [_bg_missing, _bg_empty, _bg_no_images, _bg_text_file, _bg_only_unreadable],
                         ids=["missing", "empty-folder", "no-image-files", "text-file", "only-unreadable"])
def test_bad_backgrounds_are_a_one_line_error(tmp_path, voc, build):
    path, reason = build(tmp_path)
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", path, out, "--num-samples", 2)
    line = assert_clean_error(result, str(path), exit_code=1)
    assert reason in line
    assert not out.exists()


def test_missing_bg_option_is_a_usage_error(tmp_path, voc):
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, out, "--num-samples", 2)
    line = assert_clean_error(result, "Missing option", exit_code=2)
    assert "--bg" in line
    assert not out.exists()


# -- --voc ---------------------------------------------------------------------------------------------------
def _voc_missing(tmp: Path):
    return tmp / "VOC2012", tmp / "VOC2012", "no such"


def _voc_no_segmentation_object(tmp: Path):
    root = write_voc(tmp / "VOC2012", {"a": OBJECTS})
    for p in (root / "SegmentationObject").iterdir():
        p.unlink()
    (root / "SegmentationObject").rmdir()
    return root, root / "SegmentationObject", "missing folder"


def _voc_masks_missing(tmp: Path):
    # the split file lists ids that have neither masks nor photos
    root = write_voc(tmp / "VOC2012", {"a": OBJECTS}, splits={"trainval": ["2008_000001", "2008_000002"]})
    return root, root, "no usable object"


def _voc_all_tiny(tmp: Path):
    return write_voc(tmp / "VOC2012", {"a": OBJECTS}), tmp / "VOC2012", "no usable object"


@pytest.mark.parametrize("build", [_voc_missing, _voc_no_segmentation_object, _voc_masks_missing, _voc_all_tiny],
                         ids=["missing", "no-SegmentationObject", "ids-without-masks", "all-tiny"])
def test_bad_voc_is_a_one_line_error(tmp_path, bg, build):
    root, names, reason = build(tmp_path)
    out = tmp_path / "out"
    extra = ["--min-object-area", 1e6] if build is _voc_all_tiny else []
    result = invoke("local", "--voc", root, "--bg", bg, out, "--num-samples", 2, *extra)
    line = assert_clean_error(result, str(names), exit_code=1)
    assert reason in line
    if build is _voc_masks_missing:
        assert "mask file is missing" in line
    if build is _voc_all_tiny:
        assert "tiny" in line
    assert not out.exists()


def test_voc_ids_without_masks_are_skipped_and_recorded(tmp_path, bg):
    root = write_voc(tmp_path / "VOC2012", {"a": OBJECTS, "b": OBJECTS[:1]},
                     splits={"trainval": ["a", "b", "ghost"]})
    (root / "SegmentationObject" / "b.png").unlink()
    out = tmp_path / "out"
    result = invoke("local", "--voc", root, "--bg", bg, out, "--num-samples", 2)
    assert_ok(result)
    man = manifest(out)
    assert man["totals"]["samples"] == 2
    assert man["objects"]["count"] == 2  # both objects of "a"
    assert man["objects"]["skipped"] == {"image": 2}
    skipped = {Path(r["path"]).name: r["reason"] for r in ObjectStore(out / "objects.h5").skipped}
    assert skipped == {"b.png": "mask file is missing", "ghost.png": "mask file is missing"}
    assert all(m["objects"] and all("/a.jpg" in o["source"] for o in m["objects"]) for m in sample_metas(out))


# -- --coco --------------------------------------------------------------------------------------------------
def test_coco_json_missing(tmp_path, coco, bg):
    out = tmp_path / "out"
    result = invoke("local", "--coco", tmp_path / "nope.json", "--coco-images", coco.images_dir, "--bg", bg, out,
                    "--num-samples", 2)
    line = assert_clean_error(result, "nope.json", exit_code=1)
    assert "no such file" in line
    assert not out.exists()


def test_coco_json_invalid(tmp_path, coco, bg):
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [')
    out = tmp_path / "out"
    result = invoke("local", "--coco", bad, "--coco-images", coco.images_dir, "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, "broken.json", exit_code=1)
    assert "invalid JSON" in line
    assert not out.exists()


def test_coco_only_crowd_annotations(tmp_path, coco, bg):
    data = json.loads(coco.json_path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["iscrowd"]]
    require(len(data["annotations"]) == 1, "the COCO fixture has one crowd annotation")
    crowd = tmp_path / "crowd.json"
    crowd.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = invoke("local", "--coco", crowd, "--coco-images", coco.images_dir, "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, "crowd.json", exit_code=1)
    assert "no usable object" in line and "crowd" in line
    assert not out.exists()


@pytest.mark.parametrize("which", ["coco-only", "coco-images-only"])
def test_coco_and_coco_images_go_together(tmp_path, coco, voc, bg, which):
    args = ["--coco", coco.json_path] if which == "coco-only" else ["--voc", voc, "--coco-images", coco.images_dir]
    out = tmp_path / "out"
    result = invoke("local", *args, "--bg", bg, out, "--num-samples", 2)
    assert_clean_error(result, "--coco-images", exit_code=2)
    assert not out.exists()


def test_coco_images_folder_missing(tmp_path, coco, bg):
    out = tmp_path / "out"
    result = invoke("local", "--coco", coco.json_path, "--coco-images", tmp_path / "no_images", "--bg", bg, out,
                    "--num-samples", 2)
    assert_clean_error(result, "no_images", exit_code=1)
    assert not out.exists()


def test_unknown_coco_category(tmp_path, coco, bg):
    out = tmp_path / "out"
    result = invoke("local", "--coco", coco.json_path, "--coco-images", coco.images_dir,
                    "--coco-categories", "person,unicorn", "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, str(coco.json_path), exit_code=1)
    assert "unknown category 'unicorn'" in line
    assert "person" in line.split("valid", 1)[1]  # the valid names are listed
    assert not out.exists()


def test_coco_categories_without_coco(tmp_path, voc, bg):
    result = invoke("local", "--voc", voc, "--coco-categories", "person", "--bg", bg, tmp_path / "out",
                    "--num-samples", 2)
    assert_clean_error(result, "--coco-categories", exit_code=2)
    assert not (tmp_path / "out").exists()


def test_empty_coco_categories_names_the_option(tmp_path, coco, bg):
    out = tmp_path / "out"
    result = invoke("local", "--coco", coco.json_path, "--coco-images", coco.images_dir, "--coco-categories", ",",
                    "--bg", bg, out, "--num-samples", 2)
    assert "Traceback" not in result.output
    assert not out.exists()
    line = assert_clean_error(result, "--coco-categories", exit_code=2)
    assert "None" not in line


def test_no_objects_at_all(tmp_path, bg):
    out = tmp_path / "out"
    result = invoke("local", "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, "no objects", exit_code=2)
    assert "--voc" in line and "--coco" in line
    assert not out.exists()


# -- background sizes ----------------------------------------------------------------------------------------
def test_all_backgrounds_smaller_than_the_crop(tmp_path, voc):
    folder = backgrounds(tmp_path / "small", [(BG_H, BG_W)] * 2)
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, "--crop", "80x80", out, "--num-samples", 2)
    line = assert_clean_error(result, str(folder / "img0.png"), exit_code=1)
    assert "smaller than the 80x80 crop" in line
    assert not out.exists()


def test_backgrounds_smaller_than_the_crop_are_skipped_and_recorded(tmp_path, voc):
    folder = backgrounds(tmp_path / "some", [(BG_H, BG_W), (100, 120), (100, 120)])
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, "--crop", "80x80", out, "--num-samples", 3)
    assert_ok(result)
    assert "img0.png" in result.output  # warned about
    man = manifest(out)
    assert man["totals"]["samples"] == 3
    section = man["backgrounds"]
    assert section["count"] == 2 and section["size"] == [80, 80]
    assert [Path(r["path"]).name for r in section["skipped"]] == ["img0.png"]
    assert "smaller than the 80x80 crop" in section["skipped"][0]["reason"]
    metas = sample_metas(out)
    assert len(metas) == 3
    assert all(m["background"]["key"] != "some/img0.png" for m in metas)
    assert not list(out.rglob("*.partial*"))


def test_mixed_sizes_without_crop_skip_the_odd_ones(tmp_path, voc):
    folder = backgrounds(tmp_path / "mixed", [(BG_H, BG_W), (BG_H, BG_W), (72, 100)])
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 3)
    assert_ok(result)
    man = manifest(out)
    assert man["totals"]["samples"] == 3
    assert man["backgrounds"]["size"] == [BG_H, BG_W]
    skipped = man["backgrounds"]["skipped"]
    assert [Path(r["path"]).name for r in skipped] == ["img2.png"]
    assert "--crop" in skipped[0]["reason"]
    with h5py.File(out / "train" / "00000.h5", "r") as f:
        assert f["blur"].shape[1:3] == (BG_H, BG_W)


# -- damaged backgrounds -------------------------------------------------------------------------------------
def corrupt_png_folder(folder: Path, good: int) -> Path:
    """``bad.png`` (a valid header, the body cut at 60 %) and ``good`` intact backgrounds."""
    backgrounds(folder, [(BG_H, BG_W)] * good)
    truncate(write_png(folder / "bad.png", seed=42))
    with open(folder / "bad.png", "rb") as f:
        require(f.read(8) == b"\x89PNG\r\n\x1a\n", "the truncated PNG keeps its header")
    require(cv2.imread(str(folder / "bad.png")) is None, "OpenCV cannot decode the truncated PNG")
    return folder


def test_corrupt_background_among_good_ones_is_skipped_and_recorded(tmp_path, voc):
    folder = corrupt_png_folder(tmp_path / "bg", good=1)
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 4)
    assert_ok(result)
    assert "unreadable" in result.stdout
    man = manifest(out)
    assert man["status"] == "complete"
    assert man["totals"]["samples"] == 4  # another background was drawn in its place
    assert man["backgrounds"]["count"] == 2  # the header was fine: found at discovery, failed at decoding
    records = man["totals"]["skipped_inputs"]
    assert [Path(r["path"]).name for r in records] == ["bad.png"]
    assert "unreadable" in records[0]["reason"]
    assert not man["totals"]["failures"]
    assert all(m["background"]["key"] == "bg/img0.png" for m in sample_metas(out))
    assert not list(out.rglob("*.partial*"))


def test_corrupt_background_alone_is_an_error_and_leaves_nothing(tmp_path, voc):
    """Defined behaviour: every draw fails, no sample can be made: InputError naming the file, no OUT."""
    folder = corrupt_png_folder(tmp_path / "bg", good=0)
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 2)
    line = assert_clean_error(result, str(folder / "bad.png"), exit_code=1)
    assert "no decodable background" in line
    assert not out.exists()


def test_background_with_a_bad_header_among_good_ones(tmp_path, voc):
    folder = backgrounds(tmp_path / "bg", [(BG_H, BG_W)] * 2)
    (folder / "fake.png").write_text("not a png")
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 2)
    assert_ok(result)
    man = manifest(out)
    assert man["totals"]["samples"] == 2
    skipped = man["backgrounds"]["skipped"]
    assert [Path(r["path"]).name for r in skipped] == ["fake.png"]
    assert "unreadable image header" in skipped[0]["reason"]


def test_truncated_jpeg_background_is_recorded(tmp_path, voc):
    folder = backgrounds(tmp_path / "bg", [(BG_H, BG_W)] * 2, ext=".jpg")
    truncate(folder / "img0.jpg")
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 6)
    assert_ok(result)
    used = [m["background"]["key"] for m in sample_metas(out)]
    require("bg/img1.jpg" in used or "bg/img0.jpg" in used, "samples were written")
    man = manifest(out)
    recorded = [Path(r["path"]).name for r in man["totals"].get("skipped_inputs", [])]
    recorded += [Path(r["path"]).name for r in man["backgrounds"]["skipped"]]
    assert "img0.jpg" in recorded, f"truncated img0.jpg used silently by {used.count('bg/img0.jpg')} samples"
    assert "bg/img0.jpg" not in used


def test_lost_samples_stay_recorded_after_resume(tmp_path, voc):
    folder = backgrounds(tmp_path / "bg", [(BG_H, BG_W)])
    for i in range(15):  # 15 undecodable of 16: a sample fails when all 8 of its draws hit a bad one
        truncate(write_png(folder / f"bad{i:02d}.png", seed=50 + i))
    for seed in range(20):
        out = tmp_path / f"out{seed}"
        first = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 4, "--seed", seed)
        assert_ok(first)
        written = [m["index"] for m in sample_metas(out)]
        if 3 in written and len(written) < 4:  # a sample was lost, but not the shard's last one
            break
    else:
        require(False, "no seed in 0..19 loses a sample other than the last")
    before = manifest(out)
    require(before["sources"][0]["status"] == "partial" and before["totals"]["failures"],
            "the first run records the loss")
    again = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 4, "--seed", seed)
    assert_ok(again)
    after = manifest(out)
    assert after["totals"]["samples"] == len(written)
    assert after["sources"][0]["status"] == "partial", after["sources"]
    assert after["totals"]["failures"] == before["totals"]["failures"]


# -- option errors -------------------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("--frames", "8"), ("--frames", "13-7"), ("--frames", "1"), ("--frames", "seven"),
    ("--static-objects", "3-1"), ("--static-objects", "-1"), ("--static-objects", "1.5"),
    ("--num-samples", "0"), ("--moving-objects", "0"), ("--object-scale", "0"),
    ("--scale", "0:1"), ("--rotate", "-200:3"), ("--translate", "-1:3"), ("--translate", "abc"),
    ("--crop", "0x10"), ("--crop", "abc"), ("--val-fraction", "1.5"), ("--layout", "foo"),
    ("--min-object-area", "-1"), ("--shard-size", "0"), ("--gamma", "0"), ("--device", "tpu"),
    ("--backend", "gpu"), ("--crf", "log"), ("--num-samples", "many"),
]


@pytest.mark.parametrize("option, value", BAD_OPTIONS, ids=[f"{o}={v}" for o, v in BAD_OPTIONS])
def test_bad_option_is_a_config_error(tmp_path, voc, bg, option, value):
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2, f"{option}={value}")
    assert_clean_error(result, option, exit_code=2)
    assert not out.exists()


def test_negative_static_objects_message_quotes_the_input(tmp_path, voc, bg):
    result = invoke("local", "--voc", voc, "--bg", bg, tmp_path / "out", "--static-objects=-1", "--num-samples", 2)
    line = assert_clean_error(result, "--static-objects", exit_code=2)
    assert "--1" not in line


# -- OUT -----------------------------------------------------------------------------------------------------
def test_out_is_an_existing_file(tmp_path, voc, bg):
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, "out.txt", exit_code=1)
    assert "not a folder" in line
    assert out.read_text() == "keep me"


def test_out_with_foreign_files_is_refused(tmp_path, voc, bg):
    out = tmp_path / "out"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2)
    line = assert_clean_error(result, str(out), exit_code=1)
    assert "not empty" in line and "holiday.jpg" in line
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_rerun_with_other_settings_is_refused_unless_overwrite(tmp_path, voc, bg):
    out = tmp_path / "out"
    assert_ok(invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2))
    first = tree(out)
    assert_ok(invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2))  # same settings: resumes
    before = tree(out)
    assert {k: v for k, v in before.items() if k != "manifest.json"} == {
        k: v for k, v in first.items() if k != "manifest.json"}

    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2, "--moving-objects", 1)
    line = assert_clean_error(result, str(out), exit_code=2)
    assert "moving_objects" in line and "--overwrite" in line
    assert tree(out) == before  # untouched

    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2, "--moving-objects", 1, "--overwrite")
    assert_ok(result)
    man = manifest(out)
    assert man["config"]["moving_objects"] == 1 and man["totals"]["samples"] == 2
    assert all(sum(o["role"] == "moving" for o in m["objects"]) == 1 for m in sample_metas(out))


def test_rerun_with_other_backgrounds_is_refused(tmp_path, voc, bg):
    out = tmp_path / "out"
    assert_ok(invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2))
    before = tree(out)
    other = backgrounds(tmp_path / "other", [(BG_H, BG_W)] * 2, seed=10)
    result = invoke("local", "--voc", voc, "--bg", other, out, "--num-samples", 2)
    assert "Traceback" not in result.output
    line = assert_clean_error(result, str(out), exit_code=2)
    assert "background" in line or "--bg" in line
    assert tree(out) == before


BAD_INTO_EMPTY_OUT = {
    "backgrounds-too-small": (lambda t, voc, coco: ["--voc", voc, "--bg", backgrounds(t / "s", [(BG_H, BG_W)]),
                                                    "--crop", "80x80"], 1),
    "only-background-corrupt": (lambda t, voc, coco: ["--voc", voc, "--bg", corrupt_png_folder(t / "c", 0)], 1),
    "val-fraction-one-image": (lambda t, voc, coco: ["--voc", voc, "--bg", backgrounds(t / "o", [(BG_H, BG_W)]),
                                                     "--val-fraction", 0.5], 2),
    "voc-all-tiny": (
        lambda t, voc, coco: ["--voc", voc, "--bg", backgrounds(t / "b", [(BG_H, BG_W)]), "--min-object-area", 1e6],
        1),
    "coco-only-crowd": (
        lambda t, voc, coco: ["--coco", _crowd_only(t, coco), "--coco-images", coco.images_dir,
                              "--bg", backgrounds(t / "b", [(BG_H, BG_W)])], 1),
}


def _crowd_only(tmp: Path, coco) -> Path:
    data = json.loads(coco.json_path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["iscrowd"]]
    path = tmp / "crowd.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("build, code", list(BAD_INTO_EMPTY_OUT.values()), ids=list(BAD_INTO_EMPTY_OUT))
def test_bad_input_leaves_an_existing_empty_out_empty(tmp_path, voc, coco, build, code):
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("local", *build(tmp_path, voc, coco), out, "--num-samples", 2)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert out.is_dir()
    assert_nothing_left(out)


def test_fixed_rerun_after_a_failed_bank_build_into_existing_out(tmp_path, voc, bg):
    out = tmp_path / "out"
    out.mkdir()
    failed = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2, "--min-object-area", 1e6)
    require(failed.exit_code == 1 and "no usable object" in failed.output, "the first run fails to build the bank")
    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2)
    assert result.exit_code == 0, result.output
    assert manifest(out)["totals"]["samples"] == 2


def test_out_inside_a_background_folder_is_not_read_back(tmp_path, voc):
    folder = backgrounds(tmp_path / "bg", [(BG_H, BG_W)] * 2)
    out = folder / "out"
    for _ in range(2):  # the second run finds gopro PNGs under OUT: they must not become backgrounds
        assert_ok(invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 2, "--layout", "h5,gopro"))
        assert manifest(out)["backgrounds"]["count"] == 2
    assert list(out.rglob("*.png"))


# -- --val-fraction ------------------------------------------------------------------------------------------
def test_val_fraction_with_images_in_one_folder(tmp_path, voc, bg):
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 4, "--val-fraction", 0.5)
    assert_ok(result)
    man = manifest(out)
    by_split = man["totals"]["by_split"]
    assert by_split["train"] > 0 and by_split["val"] > 0 and sum(by_split.values()) == 4
    groups = man["backgrounds"]["groups"]
    assert groups["train"] >= 1 and groups["val"] >= 1 and groups["train"] + groups["val"] == 3
    train_keys = {m["background"]["key"] for m in sample_metas(out) if m["split"] == "train"}
    val_keys = {m["background"]["key"] for m in sample_metas(out) if m["split"] == "val"}
    assert not train_keys & val_keys


def test_val_fraction_with_a_single_background(tmp_path, voc):
    folder = backgrounds(tmp_path / "one", [(BG_H, BG_W)])
    out = tmp_path / "out"
    result = invoke("local", "--voc", voc, "--bg", folder, out, "--num-samples", 4, "--val-fraction", 0.5)
    line = assert_clean_error(result, "--val-fraction", exit_code=2)
    assert "group" in line
    assert not out.exists()


# -- help and default OUT ------------------------------------------------------------------------------------
def test_local_help():
    result = invoke("local", "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Examples:" in text and "blursynth local --voc" in text and "blursynth local --coco" in text
    for option in ("--bg", "--voc", "--coco", "--coco-images", "--coco-categories", "--num-samples",
                   "--moving-objects", "--static-objects", "--object-scale", "--frames", "--crop",
                   "--val-fraction", "--layout", "--overwrite", "--min-object-area"):
        assert option in text, option
    assert "lbs_out" in text  # the default OUT


def test_top_level_help_lists_local():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:", 1)[1]
    assert any(line.split()[:1] == ["local"] for line in commands.splitlines())


def test_default_out_is_lbs_out(tmp_path, voc, bg, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("local", "--voc", voc, "--bg", bg, "--num-samples", 2)
    assert_ok(result)
    assert "lbs_out" in result.stdout
    assert sorted(p.name for p in work.iterdir()) == ["lbs_out"]
    assert manifest(work / "lbs_out")["totals"]["samples"] == 2


def test_bad_input_through_the_console_script(tmp_path, voc):
    """The real process: the error line on stderr, no traceback, exit status 1, no OUT."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "blursynth", "local", "--voc", str(voc), "--bg",
                           str(tmp_path / "nowhere"), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nowhere" in errors[0], proc.stderr
    assert proc.stdout == ""
    assert not out.exists()
