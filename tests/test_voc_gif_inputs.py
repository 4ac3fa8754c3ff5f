"""Inputs as real footage and VOC-format exports come: VOC roots without ``ImageSets`` split files (labelme's
``labelme2voc.py`` writes none) and folders of animated GIFs.

Fixtures are written here: VOC roots by ``objects_data.write_voc`` (palette PNGs with a void band), GIFs by
Pillow with frames of a few grey levels (at most 256 colours, so the GIF palette holds them exactly and the
decoded frames are the written ones).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke
from objects_data import Shape, texture, write_palette_png, write_voc
from PIL import Image

from blursynth.errors import InputError
from blursynth.io.sources import discover_sources
from blursynth.objects.voc import iter_voc, voc_image_ids

# -- VOC without split files --------------------------------------------------------------------------------
DISC = Shape("disc", (40, 40, 18))  # a cat, ~1020 px: above the default minimum area
IDS = ["2007_000010", "2007_000002", "2008_000001", "2008_000007", "2009_000003", "2009_000011"]


def voc_without_sets(root: Path, ids=IDS) -> Path:
    write_voc(root, {i: [Shape("disc", (40 + 2 * k, 40, 18), 8 + k % 3)] for k, i in enumerate(ids)})
    shutil.rmtree(root / "ImageSets")
    return root


def one_line(excinfo) -> str:
    message = excinfo.value.format_message()
    assert "\n" not in message
    return message


def test_voc_without_split_files_uses_every_masked_image(tmp_path, caplog):
    root = voc_without_sets(tmp_path / "VOC2012")
    (root / "JPEGImages" / "2010_000099.jpg").write_bytes((root / "JPEGImages" / f"{IDS[0]}.jpg").read_bytes())
    with caplog.at_level(logging.INFO, logger="blursynth.objects"):
        ids = voc_image_ids(root, "train")
    # natural order of the mask names; the JPEG without masks is not an image of the dataset
    assert ids == ["2007_000002", "2007_000010", "2008_000001", "2008_000007", "2009_000003", "2009_000011"]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]  # shown by default
    assert len(lines) == 1 and "no ImageSets/Segmentation split files" in lines[0], lines
    assert "all 6 images with a SegmentationObject mask" in lines[0] and str(root) in lines[0]
    assert "--voc-split train does not apply" in lines[0]


def test_voc_without_split_files_gives_the_same_objects_as_a_full_split_file(tmp_path):
    """Removing ImageSets changes nothing when trainval listed every image."""
    with_sets = write_voc(tmp_path / "a" / "VOC2012", {i: [DISC] for i in IDS})
    without = voc_without_sets(tmp_path / "b" / "VOC2012")
    listed = [(Path(c.source).name, c.instance_id) for c in iter_voc(with_sets, "trainval")]
    found = [(Path(c.source).name, c.instance_id) for c in iter_voc(without, "val")]
    assert found == listed == [(f"{i}.jpg", 1) for i in voc_image_ids(without, "trainval")]


def test_empty_imagesets_folder_counts_as_none(tmp_path):
    root = voc_without_sets(tmp_path / "VOC2012", IDS[:2])
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "README").write_text("no lists here\n")
    assert voc_image_ids(root, "trainval") == ["2007_000002", "2007_000010"]


def test_mask_without_its_class_map_or_photo_is_a_skipped_image(tmp_path):
    root = voc_without_sets(tmp_path / "VOC2012", IDS[:3])
    (root / "SegmentationClass" / f"{IDS[1]}.png").unlink()
    (root / "JPEGImages" / f"{IDS[2]}.jpg").unlink()
    items = list(iter_voc(root))
    objects = [Path(c.source).name for c in items if not isinstance(c, dict)]
    skipped = {Path(r["path"]).name: r["reason"] for r in items if isinstance(r, dict)}
    assert objects == [f"{IDS[0]}.jpg"]
    assert skipped == {f"{IDS[1]}.png": "mask file is missing", f"{IDS[2]}.jpg": "image file is missing"}


def test_no_split_files_and_no_masks_is_a_one_line_error(tmp_path):
    root = voc_without_sets(tmp_path / "VOC2012", IDS[:1])
    (root / "SegmentationObject" / f"{IDS[0]}.png").unlink()
    with pytest.raises(InputError) as excinfo:
        voc_image_ids(root, "trainval")
    message = one_line(excinfo)
    assert message.startswith(f"{root / 'SegmentationObject'}: no .png masks")


def test_cli_voc_without_split_files_or_masks_is_one_error_line(tmp_path):
    root = voc_without_sets(tmp_path / "VOC2012", IDS[:1])
    (root / "SegmentationObject" / f"{IDS[0]}.png").unlink()
    out = tmp_path / "out"
    result = invoke("local", "--voc", root, "--bg", write_backgrounds(tmp_path / "bg"), out, "--num-samples", 2)
    line = assert_clean_error(result, str(root / "SegmentationObject"), exit_code=1)
    assert "no .png masks" in line
    assert not out.exists() or not list(out.rglob("*"))


def test_split_files_present_but_not_the_one_asked_for(tmp_path):
    """With split files the split is honoured: a missing one is an error that lists those present."""
    root = write_voc(tmp_path / "VOC2012", {i: [DISC] for i in IDS[:2]}, splits={"train": IDS[:1], "val": IDS[1:2]})
    with pytest.raises(InputError) as excinfo:
        voc_image_ids(root, "trainval")
    message = one_line(excinfo)
    split_file = root / "ImageSets" / "Segmentation" / "trainval.txt"
    assert message.startswith(f"{split_file}: missing split file")
    assert "found train.txt, val.txt" in message
    assert voc_image_ids(root, "val") == IDS[1:2]


def write_backgrounds(folder: Path, groups: int = 2, per_group: int = 2) -> Path:
    for g in range(groups):
        for k in range(per_group):
            path = folder / f"seq{g}" / f"{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(texture(64, 96, seed=10 * g + k)).save(path)
    return folder


def test_local_with_a_voc_export_without_split_files(tmp_path):
    """End to end: every masked image's object is in the bank; train and val samples use disjoint images."""
    root = voc_without_sets(tmp_path / "VOC2012")
    bg = write_backgrounds(tmp_path / "bg")
    out = tmp_path / "out"
    result = invoke("local", "--voc", root, "--bg", bg, out, "--num-samples", 8, "--val-fraction", 0.5,
                    "--static-objects", 0, "--moving-objects", 1, "--frames", 3)
    assert result.exit_code == 0, result.output
    assert "no ImageSets/Segmentation split files" in result.output  # said at default verbosity
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["objects"]["count"] == len(IDS)
    used = {"train": set(), "val": set()}
    for shard in sorted(out.glob("*/*.h5")):
        with h5py.File(shard, "r") as f:
            for meta in (json.loads(m) for m in f["meta"].asstr()[()]):
                used[meta["split"]] |= {Path(o["source"]).stem for o in meta["objects"]}
    assert used["train"] and used["val"]
    assert not used["train"] & used["val"], used
    assert used["train"] | used["val"] <= set(IDS)


# -- folders of GIFs ----------------------------------------------------------------------------------------
#: grey level of frame t: distinct consecutive values, not linear in t (so a window's mean is not its middle)
GREYS = [20 + (3 * t * t) % 200 for t in range(21)]
GIF_FPS = 25  # 40 ms per frame


def write_gif(path: Path, greys, size=(16, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(np.full((*size, 3), v, np.uint8)) for v in greys]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // GIF_FPS, loop=0)
    return path


def test_a_folder_of_gifs_is_one_source_per_gif(tmp_path):
    folder = tmp_path / "gifs"
    for name in ("b.gif", "a.GIF", "sub/c.gif"):
        write_gif(folder / name, GREYS)
    (folder / "notes.txt").write_text("not a video\n")
    sources = discover_sources([str(folder)])
    assert [(s.key, s.kind) for s in sources] == [("a.GIF", "video"), ("b.gif", "video"), ("sub/c.gif", "video")]


def test_an_empty_folder_names_what_it_looks_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as excinfo:
        discover_sources([str(tmp_path / "empty")])
    assert ".gif" in one_line(excinfo) and "no videos" in one_line(excinfo)


def test_average_over_a_folder_of_gifs(tmp_path):
    """Both GIFs give samples; with the linear CRF a blur pixel is the rounded mean of its window's greys."""
    folder = tmp_path / "gifs"
    write_gif(folder / "a.gif", GREYS)
    write_gif(folder / "b.gif", GREYS[::-1])
    out = tmp_path / "out"
    result = invoke("average", folder, out, "--frames", 7, "--crf", "linear", "-q")
    assert result.exit_code == 0, result.output
    metas, blurs, sharps = [], [], []
    for shard in sorted(out.glob("*/*.h5")):
        with h5py.File(shard, "r") as f:
            metas += [json.loads(m) for m in f["meta"].asstr()[()]]
            blurs += list(f["blur"][()])
            sharps += list(f["sharp"][()])
    assert sorted({m["source"] for m in metas}) == ["a.gif", "b.gif"]
    assert len(metas) == 2 * (len(GREYS) // 7)
    for meta, blur, sharp in zip(metas, blurs, sharps, strict=True):
        greys = GREYS if meta["source"] == "a.gif" else GREYS[::-1]
        window = [greys[i] for i in meta["frames"]]
        assert len(window) == 7 and meta["fps"] == pytest.approx(GIF_FPS)
        assert (blur == int(np.floor(np.mean(window) + 0.5))).all(), (meta["frames"], blur[0, 0])
        assert (sharp == greys[meta["center"]]).all()


def test_a_gif_frame_folder_and_a_video_side_by_side(tmp_path):
    """A GIF next to frame images: the images are one frame-folder source, the GIF another source."""
    folder = tmp_path / "mixed"
    write_gif(folder / "clip.gif", GREYS)
    for k in range(3):
        write_palette_png(folder / f"{k:03d}.png", np.full((8, 8), k, np.uint8))
    sources = discover_sources([str(folder)])
    assert sorted((s.key, s.kind) for s in sources) == [("clip.gif", "video"), ("mixed", "frames")]
