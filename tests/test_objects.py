"""Object bank (LODE/BladeNet local blur synthesis, Sec. 4.1): VOC void band -> soft alpha, COCO polygons and
RLE, skip rules, errors and ordering, checked against shapes of known geometry.

The bank is built as a run builds it: the VOC/COCO readers' candidates cut by the bank's rules and written to
an object store (``objects.h5``), read back through :class:`ObjectStore`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from objects_data import Shape, polygon_area, voc_maps, write_coco, write_palette_png, write_voc
from PIL import Image

from blursynth.errors import ConfigError, InputError, MissingDependencyError
from blursynth.objects.coco import iter_coco
from blursynth.objects.patch import MIN_AREA, ObjectPatch, iter_patches
from blursynth.objects.store import ObjectStore, write_store
from blursynth.objects.voc import VOID_BAND_PX, iter_voc, void_band_alphas

H, W = 96, 128
DISC = Shape("disc", (60.3, 45.7, 20.0), 8)  # cat
CAR = Shape("rect", (12, 14, 52, 44), 7)
PERSON = Shape("rect", (52, 14, 100, 44), 15)  # shares its left edge with CAR
TINY = Shape("disc", (40, 72, 4.0), 12)  # dog, ~50 px
CUT = Shape("disc", (118, 70, 14.0), 13)  # horse, crosses the right border
VOC_IMAGES = {"2008_000002": [DISC], "2008_000010": [CAR, PERSON, TINY, CUT]}


# -- helpers ---------------------------------------------------------------------------------------------
def rgb_of(path: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)


def paste(alpha: np.ndarray, origin: tuple[int, int], height: int = H, width: int = W) -> np.ndarray:
    full = np.zeros((height, width), np.float32)
    x, y = origin
    full[y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha
    return full


def full_alpha(patch: ObjectPatch, height: int = H, width: int = W) -> np.ndarray:
    return paste(patch.alpha, patch.bbox[:2], height, width)


def sample_rays(img: np.ndarray, cx: float, cy: float, radii: np.ndarray, n: int = 72) -> np.ndarray:
    """Bilinear samples of ``img`` along ``n`` rays from (cx, cy): (n, len(radii))."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    px, py = cx + radii[None] * np.cos(th), cy + radii[None] * np.sin(th)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)  # fmt: skip


def build(where: Path, *datasets, min_area: float = MIN_AREA) -> ObjectStore:
    """Write ``datasets`` (``(name, candidates)``, in bank order) to a fresh store under ``where``; open it."""
    path = where / f"objects-{len(list(where.glob('objects-*.h5')))}.h5"
    write_store(path, datasets, min_area=min_area, fingerprint={})
    return ObjectStore(path)


def voc_bank(where: Path, root: Path, split: str = "trainval", **kw) -> ObjectStore:
    return build(where, (str(root), iter_voc(root, split)), **kw)


def coco_bank(where: Path, data, categories=None, **kw) -> ObjectStore:
    return build(where, (str(data.json_path), iter_coco(data.json_path, data.images_dir, categories=categories)),
                 **kw)


def patches(store: ObjectStore) -> list[ObjectPatch]:
    return [store[i] for i in range(len(store))]


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    message = excinfo.value.format_message()
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "VOC2012", VOC_IMAGES, size=(H, W))


@pytest.fixture
def voc_store(voc_root: Path, tmp_path: Path) -> ObjectStore:
    return voc_bank(tmp_path, voc_root)


@pytest.fixture
def coco(tmp_path: Path):
    pytest.importorskip("pycocotools")
    return write_coco(tmp_path / "coco")


# -- fixtures are format-faithful -----------------------------------------------------------------------
def test_voc_fixture_is_palette_png_with_void_band(voc_root: Path):
    for folder in ("SegmentationObject", "SegmentationClass"):
        with Image.open(voc_root / folder / "2008_000002.png") as im:
            assert im.mode == "P"
            assert tuple(im.getpalette()[3 * 255 : 3 * 256]) == (224, 224, 192)  # VOC's void colour
            idx = np.array(im)
        assert set(np.unique(idx)) == {0, 8 if folder == "SegmentationClass" else 1, 255}
        row = idx[46]  # through the disc centre: a void run on each side of the object
        runs = np.diff(np.flatnonzero(np.diff((row == 255).astype(int)))).tolist()
        assert len(runs) >= 3 and 4 <= runs[0] <= 5 and 4 <= runs[-1] <= 5


# -- VOC geometry -----------------------------------------------------------------------------------------
def test_voc_disc_soft_alpha_is_analytic(voc_store: ObjectStore):
    (patch,) = [p for p in patches(voc_store) if p.source.endswith("2008_000002.jpg")]
    cx, cy, r = DISC.params
    assert patch.class_name == "cat" and patch.instance_id == 1
    assert patch.area == pytest.approx(np.pi * r**2, rel=0.015)  # alpha mass = area inside the mid-band
    alpha = full_alpha(patch)
    yy, xx = np.mgrid[0:H, 0:W]
    rho = np.hypot(xx - cx, yy - cy)
    assert (alpha[rho < r - 3] == 1).all()  # interior
    assert (alpha[rho > r + 3] == 0).all()  # outside
    assert ((alpha > 0) & (alpha < 1)).sum() > 2 * np.pi * r * 3  # a real ramp, not a hard edge
    ramp = np.clip(0.5 - (rho - r) / (VOID_BAND_PX + 1), 0, 1)  # ideal: 0.5 on the true outline
    assert np.abs(alpha - ramp).max() < 0.1
    radii = np.arange(r - 5, r + 5, 0.05)
    profiles = sample_rays(alpha, cx, cy, radii)
    assert (np.diff(profiles, axis=1) <= 1e-6).all()  # monotone across the band on every ray
    crossing = radii[np.argmax(profiles < 0.5, axis=1)]
    assert np.abs(crossing - r).max() < 0.5  # the alpha = 0.5 contour is the circle


def test_voc_patch_is_a_crop_of_the_source(voc_store: ObjectStore, voc_root: Path):
    for patch in patches(voc_store):
        x, y, w, h = patch.bbox
        source = rgb_of(str(voc_root / patch.source))  # keyed relative to the VOC root
        assert patch.rgb.shape == (h, w, 3) and patch.alpha.shape == (h, w)
        assert patch.rgb.dtype == np.uint8 and patch.alpha.dtype == np.float32
        assert np.array_equal(patch.rgb[patch.alpha > 0], source[y : y + h, x : x + w][patch.alpha > 0])
        assert (patch.alpha[0] > 0).any() and (patch.alpha[-1] > 0).any()  # tight box of alpha > 0
        assert (patch.alpha[:, 0] > 0).any() and (patch.alpha[:, -1] > 0).any()
        assert patch.area == pytest.approx(float(patch.alpha.sum()), rel=1e-6)
        with pytest.raises(ValueError):
            patch.alpha[0, 0] = 0.5  # read-only


def test_voc_cut_owns_its_memory(voc_root: Path):
    """As cut (before the store), a patch holds copies of its box only, so the whole image can be freed."""
    cut = [p for p in iter_patches(iter_voc(voc_root), min_area=MIN_AREA) if isinstance(p, ObjectPatch)]
    assert len(cut) == 3
    for patch in cut:
        assert patch.rgb.base is None and patch.alpha.base is None


def test_voc_touching_instances_share_the_band(voc_store: ObjectStore):
    car, person = [p for p in patches(voc_store) if p.source.endswith("2008_000010.jpg")]
    assert (car.class_name, person.class_name) == ("car", "person")
    assert car.area == pytest.approx(CAR.area, rel=0.01) and person.area == pytest.approx(PERSON.area, rel=0.01)
    total = full_alpha(car) + full_alpha(person)
    assert np.allclose(total[20:38, 40:64], 1.0, atol=1e-6)  # complementary across the shared band
    row = full_alpha(car)[29, 49:56]
    assert (np.diff(row) < 0).all() and row[3] == pytest.approx(0.5)  # ramp, 0.5 on x = 52, no step


def test_voc_void_region_does_not_leak():
    """VOC paints ambiguous regions wholly void: a neighbouring instance gets only a nominal band ramp."""
    cat = Shape("rect", (20, 20, 60, 60), 8)
    objects, _ = voc_maps([cat, Shape("rect", (60, 20, 110, 60), 0)], H, W)
    alphas = void_band_alphas(objects)
    alpha = paste(*alphas[1])
    assert alpha[40, 60] == pytest.approx(0.5, abs=0.01)  # nominal ramp: 0.5 on the true edge x = 60
    assert (alpha[25:55, 63:] == 0).all()  # nothing beyond a nominal band
    assert (alpha[:, 61:] < 0.5).all() and (alpha[:, 64:] == 0).all()  # a faint wedge where the void meets a corner
    assert alpha.sum() == pytest.approx(cat.area, rel=0.02)


def test_voc_majority_class(voc_root: Path, tmp_path: Path):
    path = voc_root / "SegmentationClass" / "2008_000002.png"
    classes = np.array(Image.open(path))
    classes[40:48, 55:65] = 12  # a few dog pixels inside the cat
    write_palette_png(path, classes)
    (patch,) = [p for p in patches(voc_bank(tmp_path, voc_root)) if p.source.endswith("2008_000002.jpg")]
    assert patch.class_name == "cat"


def test_voc_truncated_and_tiny_are_skipped(voc_root: Path, voc_store: ObjectStore, tmp_path: Path):
    assert [(Path(p.source).stem, p.instance_id) for p in patches(voc_store)] == [
        ("2008_000002", 1), ("2008_000010", 1), ("2008_000010", 2)
    ]  # fmt: skip
    skipped = {r["instance_id"]: r for r in voc_store.skipped}
    assert set(skipped) == {3, 4}
    assert skipped[3]["reason"].startswith("tiny: dog instance 3") and "min_area 400" in skipped[3]["reason"]
    assert skipped[4]["reason"].startswith("truncated: horse instance 4")
    assert all(r["path"].endswith("2008_000010.jpg") for r in voc_store.skipped)
    assert voc_store.skip_counts() == {"tiny": 1, "truncated": 1}
    assert MIN_AREA == 400
    assert len(voc_bank(tmp_path, voc_root, min_area=0)) == 4  # the tiny one is kept


def test_voc_splits_and_deterministic_order(tmp_path: Path):
    ids = {f"2009_{n:06d}": [Shape("disc", (60, 45, 15 + n % 3), 1 + n)] for n in (7, 3, 12, 1)}
    root = write_voc(tmp_path / "a", ids, size=(H, W))
    bank = voc_bank(tmp_path, root)
    assert [Path(p.source).stem for p in patches(bank)] == ["2009_000001", "2009_000003", "2009_000007", "2009_000012"]
    assert [p.class_name for p in patches(bank)] == ["bicycle", "boat", "cat", "horse"]
    assert [Path(p.source).stem for p in patches(voc_bank(tmp_path, root, "val"))] == ["2009_000001", "2009_000012"]
    shuffled = write_voc(tmp_path / "b", dict(reversed(ids.items())), size=(H, W),
                         splits={"trainval": [*ids, "2009_000003", ""]})  # fmt: skip
    again = voc_bank(tmp_path, shuffled)
    assert [(Path(p.source).stem, p.instance_id, p.area) for p in patches(again)] == [
        (Path(p.source).stem, p.instance_id, p.area) for p in patches(bank)
    ]


def test_voc_bad_images_are_skipped_and_recorded(tmp_path: Path):
    names = ["2010_000001", "2010_000002", "2010_000003", "2010_000004", "2010_000005", "2010_000006"]
    root = write_voc(tmp_path / "VOC2012", {n: [DISC] for n in names}, size=(H, W))
    (root / "SegmentationObject" / "2010_000002.png").unlink()
    (root / "JPEGImages" / "2010_000003.jpg").unlink()
    (root / "SegmentationObject" / "2010_000004.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    rgb_mask = root / "SegmentationClass" / "2010_000005.png"
    Image.open(rgb_mask).convert("RGB").save(rgb_mask)  # someone "fixed" the colours: indices are lost
    cv2.imwrite(str(root / "JPEGImages" / "2010_000006.jpg"), np.zeros((H, W + 2, 3), np.uint8))
    bank = voc_bank(tmp_path, root)
    assert [Path(p.source).stem for p in patches(bank)] == ["2010_000001"]
    records = {Path(r["path"]).stem: r for r in bank.skipped}
    assert all(r["instance_id"] is None for r in bank.skipped) and len(bank.skipped) == 5
    assert records["2010_000002"]["reason"] == "mask file is missing"
    assert records["2010_000003"]["reason"] == "image file is missing"
    assert records["2010_000004"]["reason"].startswith("unreadable PNG")
    assert "got mode RGB" in records["2010_000005"]["reason"]
    assert records["2010_000006"]["reason"] == "size 130x96 differs from its masks 128x96"
    assert bank.skip_counts() == {"image": 5}


@pytest.mark.parametrize("case", ["root", "JPEGImages", "SegmentationObject", "SegmentationClass", "split", "name"])
def test_voc_errors(voc_root: Path, case: str, tmp_path: Path):
    split = "train"
    if case == "root":
        target, needle = voc_root.parent / "nowhere", "no such folder"
        voc_root = target
    elif case in ("JPEGImages", "SegmentationObject", "SegmentationClass"):
        shutil.rmtree(voc_root / case)
        target, needle = voc_root / case, "missing folder"
    elif case == "split":
        target, needle = voc_root / "ImageSets" / "Segmentation" / "train.txt", "missing split file"
        target.unlink()
    else:
        target, needle, split = voc_root, "unknown split 'test' (expected one of train, val, trainval)", "test"
    with pytest.raises(InputError) as excinfo:
        voc_bank(tmp_path, voc_root, split)
    one_line_error(excinfo, f"{target}: ", needle)


def test_voc_devkit_root_gets_a_hint(tmp_path: Path):
    write_voc(tmp_path / "VOCdevkit" / "VOC2012", VOC_IMAGES, size=(H, W))
    with pytest.raises(InputError) as excinfo:
        voc_bank(tmp_path, tmp_path / "VOCdevkit")
    one_line_error(excinfo, "JPEGImages: missing folder", "did you mean")


def test_voc_no_usable_object(tmp_path: Path):
    root = write_voc(tmp_path / "VOC2012", {"2011_000001": [TINY, CUT]}, size=(H, W))
    with pytest.raises(InputError) as excinfo:
        voc_bank(tmp_path, root)
    one_line_error(excinfo, f"{root}: no usable object", "1 tiny", "1 truncated")


# -- COCO -------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own decode, on numpy 2
def test_coco_polygon_is_soft_and_has_the_analytic_area(coco, tmp_path: Path):
    from pycocotools import mask as mask_utils

    bank = coco_bank(tmp_path, coco)
    by_id = {p.instance_id: p for p in patches(bank)}
    for ann_id, height, width in ((11, 120, 160), (21, 80, 100)):
        patch, rings = by_id[ann_id], coco.polygons[ann_id]
        assert patch.area == pytest.approx(sum(polygon_area(r) for r in rings), rel=0.01)
        assert ((patch.alpha > 0) & (patch.alpha < 1)).any()  # anti-aliased edge
        official = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(rings, height, width)))
        ours = full_alpha(patch, height, width) >= 0.5
        iou = (ours & (official > 0)).sum() / (ours | (official > 0)).sum()
        assert iou > 0.97  # thresholded, it is COCO's own annToMask
    assert by_id[11].class_name == "dog" and by_id[21].class_name == "person"
    assert by_id[11].source == "000000000101.jpg"  # the JSON's file_name, relative to the images folder
    source = rgb_of(str(coco.images_dir / by_id[11].source))
    x, y, w, h = by_id[11].bbox
    assert np.array_equal(by_id[11].rgb, source[y : y + h, x : x + w])


def test_coco_rle_is_exact(coco, tmp_path: Path):
    by_id = {p.instance_id: p for p in patches(coco_bank(tmp_path, coco))}
    for ann_id, name in ((12, "person"), (13, "car")):  # compressed (string counts), uncompressed (list)
        patch, mask = by_id[ann_id], coco.masks[ann_id]
        assert patch.class_name == name
        assert set(np.unique(patch.alpha)) == {0.0, 1.0} or set(np.unique(patch.alpha)) == {1.0}
        assert np.array_equal(full_alpha(patch, 120, 160), mask.astype(np.float32))
        assert patch.area == mask.sum()


def test_coco_crowd_tiny_and_truncated_are_skipped(coco, capsys, tmp_path: Path):
    bank = coco_bank(tmp_path, coco)
    assert [p.instance_id for p in patches(bank)] == [11, 12, 13, 21]
    reasons = {r["instance_id"]: r["reason"] for r in bank.skipped}
    assert reasons[14] == "crowd: person annotation is iscrowd=1"
    assert reasons[15].startswith("tiny: dog instance 15 has area 100 px")
    assert reasons[16].startswith("truncated: car instance 16")
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are silenced


def test_coco_bad_annotations_are_recorded(coco, tmp_path: Path):
    data = json.loads(coco.json_path.read_text())
    data["annotations"] += [
        {"id": 31, "image_id": 999, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        {"id": 32, "image_id": 202, "category_id": 77, "iscrowd": 0, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        {"id": 33, "image_id": 202, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 9, 1]]},
        {"id": 34, "image_id": 202, "category_id": 3, "iscrowd": 0, "segmentation": {"size": [8, 8], "counts": [64]}},
        {"id": 35, "image_id": 202, "category_id": 3, "iscrowd": 0},
    ]  # fmt: skip
    coco.json_path.write_text(json.dumps(data))
    bank = coco_bank(tmp_path, coco)
    assert [p.instance_id for p in patches(bank)] == [11, 12, 13, 21]
    reasons = {r["instance_id"]: r["reason"] for r in bank.skipped}
    assert reasons[31] == "orphan: annotation refers to unknown image id 999"
    assert reasons[32] == "unknown-category: category id 77"
    assert reasons[33].startswith("malformed: car annotation segmentation (a polygon ring needs")
    assert reasons[34] == "malformed: car annotation segmentation (RLE size 8x8 differs from the image 100x80)"
    assert reasons[35] == "malformed: car annotation segmentation (segmentation is neither a polygon list nor an RLE)"
    assert bank.skip_counts() == {"crowd": 1, "malformed": 3, "orphan": 1, "tiny": 1, "truncated": 1,
                                  "unknown-category": 1}  # fmt: skip


def test_coco_category_filter(coco, tmp_path: Path):
    bank = coco_bank(tmp_path, coco, categories=["car", "person"])
    assert [(p.instance_id, p.class_name) for p in patches(bank)] == [(12, "person"), (13, "car"), (21, "person")]
    assert bank.class_counts() == {"car": 1, "person": 2}
    with pytest.raises(InputError) as excinfo:
        coco_bank(tmp_path, coco, categories=["dog", "unicorn"])
    one_line_error(excinfo, str(coco.json_path), "unknown category 'unicorn'", "valid: person, car, dog, zebra")
    with pytest.raises(InputError) as excinfo:
        coco_bank(tmp_path, coco, categories=["zebra"])  # known, but no annotation
    one_line_error(excinfo, f"{coco.json_path}: no usable object (no object matched)")
    with pytest.raises(ConfigError):
        coco_bank(tmp_path, coco, categories=[])


def test_coco_missing_image_is_recorded(tmp_path: Path):
    pytest.importorskip("pycocotools")
    data = write_coco(tmp_path, missing_image=True)
    bank = coco_bank(tmp_path, data)
    assert [p.instance_id for p in patches(bank)] == [11, 12, 13]
    record = bank.skipped[-1]
    assert record == {"path": str(data.image_paths[202]), "instance_id": None,
                      "reason": "image file is missing (1 annotation)"}  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "invalid", "list", "no-annotations", "images-dir"])
def test_coco_errors(coco, case: str, tmp_path: Path):
    json_path, images_dir, needle = coco.json_path, coco.images_dir, ""
    if case == "missing":
        json_path, needle = json_path.with_name("nope.json"), "no such file"
    elif case == "invalid":
        json_path.write_text('{"images": [,]}')
        needle = "invalid JSON (Expecting value at line 1 column 13)"
    elif case == "list":
        json_path.write_text("[]")
        needle = "not a COCO instances file"
    elif case == "no-annotations":
        json_path.write_text(json.dumps({"images": [], "categories": []}))
        needle = "not a COCO instances file (no 'annotations' list)"
    else:
        images_dir, needle = images_dir.with_name("pictures"), "no such folder"
    with pytest.raises(InputError) as excinfo:
        build(tmp_path, (str(json_path), iter_coco(json_path, images_dir)))
    one_line_error(excinfo, f"{images_dir if case == 'images-dir' else json_path}: {needle}")


def test_coco_no_usable_object(coco, tmp_path: Path):
    with pytest.raises(InputError) as excinfo:
        coco_bank(tmp_path, coco, min_area=1e6)
    one_line_error(excinfo, f"{coco.json_path}: no usable object", "6 tiny", "1 crowd")


def test_coco_order_does_not_depend_on_file_order(tmp_path: Path):
    pytest.importorskip("pycocotools")
    a, b = write_coco(tmp_path / "a"), write_coco(tmp_path / "b", shuffle=True)
    bank_a, bank_b = coco_bank(tmp_path, a), coco_bank(tmp_path, b)
    assert [(Path(p.source).name, p.instance_id) for p in patches(bank_a)] == [
        (Path(p.source).name, p.instance_id) for p in patches(bank_b)
    ]
    assert [r["instance_id"] for r in bank_a.skipped] == [r["instance_id"] for r in bank_b.skipped] == [14, 15, 16]


def test_coco_needs_pycocotools(coco, monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(MissingDependencyError, match="pip install pycocotools"):
        coco_bank(tmp_path, coco)


# -- the store across datasets ------------------------------------------------------------------------------
def test_store_keeps_dataset_order_and_drops_repeats(voc_root: Path, coco, tmp_path: Path):
    """VOC train, then COCO, then VOC trainval in one store: an object met again (same image and instance, here
    the train images inside trainval) is kept once, at its first position; skip records are all kept."""
    train, trainval, objects = voc_bank(tmp_path, voc_root, "train"), voc_bank(tmp_path, voc_root), coco_bank(
        tmp_path, coco)
    merged = build(tmp_path, (str(voc_root), iter_voc(voc_root, "train")),
                   (str(coco.json_path), iter_coco(coco.json_path, coco.images_dir)),
                   (str(voc_root), iter_voc(voc_root, "trainval")))
    assert len(train) < len(trainval) and len(merged) == len(trainval) + len(objects)
    assert merged.records[: len(train)] == train.records
    assert merged.records[len(train) : len(train) + len(objects)] == objects.records
    assert merged.records[len(train) + len(objects) :] == [r for r in trainval.records if r not in train.records]
    by_key = {p.key: p for p in patches(trainval) + patches(objects)}
    for patch in patches(merged):  # every object's pixels read back from its own place in the file
        np.testing.assert_array_equal(patch.rgb, by_key[patch.key].rgb)
        np.testing.assert_array_equal(patch.alpha, by_key[patch.key].alpha)
    assert merged.skipped == train.skipped + objects.skipped + trainval.skipped
    assert merged.class_counts() == {"car": 2, "cat": 1, "dog": 1, "person": 3}
