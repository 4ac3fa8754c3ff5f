"""PASCAL VOC 2012 segmentation objects, with the void band turned into a soft alpha.

LODE/BladeNet (Sec. 4.1) take their moving objects from PASCAL VOC 2012: "with the pixel-level segmentation
annotation, the cropped images will not introduce any irrelevant visual content".

Layout read (the ``VOC2012`` folder of ``VOCtrainval_11-May-2012.tar``)::

    JPEGImages/<id>.jpg                 the photos
    SegmentationObject/<id>.png         palette PNG: 0 background, 1..k instances, 255 void
    SegmentationClass/<id>.png          palette PNG: 0 background, 1..20 classes, 255 void
    ImageSets/Segmentation/<split>.txt  one image id per line (train, val, trainval); optional

**Without split files** (VOC-format exports such as labelme's ``labelme2voc.py`` write no ``ImageSets``) every
image with a ``SegmentationObject`` mask is used, whatever the split asked for, and an info line says so; a
missing ``SegmentationClass`` or ``JPEGImages`` counterpart is a skipped image, as with split files. The
train/val split of the objects does not need VOC's split: ``objects/splits.py`` splits them by source image
with the seeded hash split that also splits the backgrounds.

The PNGs are read as palette indices (``np.array`` of a mode-P image), never converted to RGB.

**The void band becomes soft alpha.** VOC marks a band about 5 px wide *straddling* every object boundary as
void (255): the annotators' outline lies inside it, so the band's middle is the best estimate of the edge.
For each band pixel we find the two nearest labelled regions A and B (background or an instance; ``d_A <=
d_B`` are the distances from the pixel to the nearest pixel of each, from ``cv2.distanceTransform``, exact
Euclidean) and split the pixel between them linearly::

    alpha_A = d_B / (d_A + d_B)        alpha_B = d_A / (d_A + d_B)        any other region: 0

For an object against background this is the ramp ``d_out / (d_in + d_out)``: 1 inside, 0.5 mid-band, 0
outside. Two instances sharing a band get complementary alphas (they sum to 1) with no step at the midline,
and the band around some *other* object does not leak into this one (this one is not among that pixel's two
nearest regions). The ramp integrates to half the band, so the alpha mass is the area inside the mid-band
contour: about pi r^2 for a disc of radius r (+0.7 % at r = 20 px: on a curved band the outer half is
longer, an excess of about pi b^2 / 12 for a band of width b).

VOC also paints whole ambiguous objects and regions void. A void pixel whose two nearest regions are more
than ``MAX_CROSSING_PX`` apart through it is not in a boundary band; there the nearest instance gets the ramp
of a nominal band (``1 - d / (VOID_BAND_PX + 1)``, 0.5 at 3 px) and nothing more, so a patch does not grow
into an unlabelled neighbour. Where such a region meets an object's corner and the background, a few pixels
still count as band between object and background: a faint wedge (alpha < 0.5, within 4 px).

The class of an instance is the majority class id under its labelled (non-void) pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from blursynth.errors import InputError, SourceError
from blursynth.io.images import read_rgb
from blursynth.io.sources import natural_key
from blursynth.objects.patch import Candidate, skip_record

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""Class names by ``SegmentationClass`` index (0 is background)."""

SPLITS = ("train", "val", "trainval")
VOID = 255
VOID_BAND_PX = 5
"""Nominal width of the VOC void band, in pixels."""
MAX_CROSSING_PX = 9.0
"""``d_A + d_B`` above this marks a void *region*: 1.5 crossings of a nominal band (``VOID_BAND_PX + 1``); a 5 px
band measures at most 7.4 even at corners, a 7 px one 10."""

_LAYOUT = ("a PASCAL VOC 2012 root holds JPEGImages/, SegmentationObject/, SegmentationClass/ and optionally "
           "ImageSets/Segmentation/")

log = logging.getLogger("blursynth.objects")


def voc_image_ids(root: str | Path, split: str) -> list[str]:
    """Check a VOC root and read the image ids of a segmentation split.

    Args:
        root: the ``VOC2012`` folder.
        split: ``train``, ``val`` or ``trainval``.

    Without any ``ImageSets/Segmentation/*.txt`` file, the ids are those of every ``SegmentationObject/*.png``
    (``split`` is then ignored, and an info line says so).

    Returns:
        The ids, de-duplicated and in natural sort order (not file order, so the bank is reproducible).

    Raises:
        InputError: missing root or folder, unknown split, missing or empty split file (when other split files
            exist), or neither split files nor masks.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: {'not a folder' if root.exists() else 'no such folder'} ({_LAYOUT})")
    if split not in SPLITS:
        raise InputError(f"{root}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    for name in ("JPEGImages", "SegmentationObject", "SegmentationClass"):
        if not (root / name).is_dir():
            hint = f"; did you mean {root / 'VOC2012'}?" if (root / "VOC2012").is_dir() else ""
            raise InputError(f"{root / name}: missing folder ({_LAYOUT}{hint})")
    sets = root / "ImageSets" / "Segmentation"
    split_file = sets / f"{split}.txt"
    if not (sets.is_dir() and any(p.is_file() for p in sets.glob("*.txt"))):
        return _mask_ids(root, split)
    if not split_file.is_file():
        found = ", ".join(sorted(p.name for p in sets.glob("*.txt") if p.is_file()))
        raise InputError(f"{split_file}: missing split file (found {found}; pick one with --voc-split)")
    try:
        lines = split_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{split_file}: unreadable split file ({type(exc).__name__}: {exc})") from None
    ids = sorted({line.split()[0] for line in lines if line.strip()}, key=natural_key)
    if not ids:
        raise InputError(f"{split_file}: lists no images")
    return ids


def _mask_ids(root: Path, split: str) -> list[str]:
    """Every image id with a ``SegmentationObject`` mask: a VOC root without split files."""
    masks = root / "SegmentationObject"
    ids = sorted({p.stem for p in masks.iterdir() if p.suffix.lower() == ".png" and p.is_file()
                  and not p.name.startswith(".")}, key=natural_key)
    if not ids:
        raise InputError(f"{masks}: no .png masks (and no split file in {root / 'ImageSets' / 'Segmentation'})")
    log.warning("%s: no ImageSets/Segmentation split files; using all %d images with a SegmentationObject mask "
                "(--voc-split %s does not apply; objects are split into train/val by image)", root, len(ids), split)
    return ids


def read_index_png(path: str | Path) -> np.ndarray:
    """Read a VOC label PNG as its palette indices, ``(H, W) uint8``.

    Raises:
        SourceError: missing, unreadable, or not a single-channel (mode P or L) image.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(str(path), "mask file is missing")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise SourceError(str(path), f"expected a palette (mode P) PNG of label indices, got mode {im.mode}")
            return np.array(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SourceError(str(path), f"unreadable PNG ({type(exc).__name__}: {exc})") from None


def void_band_alphas(objects: np.ndarray) -> dict[int, tuple[np.ndarray, tuple[int, int]]]:
    """Soft alpha of every instance of a VOC ``SegmentationObject`` map (rule in the module docstring).

    Args:
        objects: ``(H, W) uint8`` indices: 0 background, 1..254 instances, 255 void.

    Returns:
        ``{instance: (alpha, (x, y))}``: a ``(h, w) float32`` window holding every pixel with alpha > 0 and
        its top-left corner in the image. Instances are the indices 1..254 present.
    """
    labels = [int(v) for v in np.unique(objects) if v != VOID]
    band = objects == VOID
    ys, xs = np.nonzero(band)
    # Distance from every band pixel to the nearest pixel of each labelled region: (regions, band pixels).
    dist = np.empty((len(labels), ys.size), np.float32)
    for k, label in enumerate(labels):
        d = cv2.distanceTransform((objects != label).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        dist[k] = d[ys, xs]
    labels_arr = np.asarray(labels)
    owner_a = owner_b = np.zeros(ys.size, int)
    alpha_a = alpha_b = np.zeros(ys.size, np.float32)
    if ys.size and labels:
        order = np.argsort(dist, axis=0, kind="stable")
        d_a = np.take_along_axis(dist, order[:1], axis=0)[0]
        owner_a = labels_arr[order[0]]
        if len(labels) > 1:
            d_b = np.take_along_axis(dist, order[1:2], axis=0)[0]
            owner_b = labels_arr[order[1]]
        else:
            d_b = np.full_like(d_a, np.inf)
        in_band = d_a + d_b <= MAX_CROSSING_PX
        with np.errstate(invalid="ignore"):
            ramp = d_b / (d_a + d_b)
        nominal = np.clip(1.0 - d_a / (VOID_BAND_PX + 1), 0.0, 1.0)
        alpha_a = np.where(in_band, ramp, nominal).astype(np.float32)
        alpha_b = np.where(in_band, 1.0 - ramp, 0.0).astype(np.float32)
    out: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
    for label in labels:
        if label == 0:
            continue
        alpha = (objects == label).astype(np.float32)
        for owner, values in ((owner_a, alpha_a), (owner_b, alpha_b)):
            sel = (owner == label) & (values > 0)
            alpha[ys[sel], xs[sel]] = values[sel]
        rows = np.flatnonzero(alpha.any(axis=1))
        cols = np.flatnonzero(alpha.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        out[label] = (alpha[r0:r1, c0:c1].copy(), (int(c0), int(r0)))
    return out


def majority_class(classes: np.ndarray, instance: np.ndarray) -> int:
    """Most frequent class id (1..254) under ``instance`` pixels of a ``SegmentationClass`` map, 0 if none."""
    counts = np.bincount(classes[instance], minlength=256)
    counts[0] = counts[VOID] = 0
    return int(counts.argmax()) if counts.any() else 0


def read_voc_image(root: str | Path, image_id: str) -> list[Candidate | dict]:
    """Every instance of one VOC image as a candidate (or an instance-level skip record).

    Args:
        root: the ``VOC2012`` folder.
        image_id: e.g. ``2007_000032``.

    Returns:
        Candidates and skip records, by instance index.

    Raises:
        SourceError: a file is missing or unreadable, or the image and masks disagree in size.
    """
    root = Path(root)
    jpg = root / "JPEGImages" / f"{image_id}.jpg"
    objects = read_index_png(root / "SegmentationObject" / f"{image_id}.png")
    classes = read_index_png(root / "SegmentationClass" / f"{image_id}.png")
    if classes.shape != objects.shape:
        raise SourceError(
            str(root / "SegmentationClass" / f"{image_id}.png"),
            f"size {classes.shape[1]}x{classes.shape[0]} differs from SegmentationObject "
            f"{objects.shape[1]}x{objects.shape[0]}",
        )
    image = read_rgb(jpg)
    if image.shape[:2] != objects.shape:
        h, w = objects.shape
        raise SourceError(str(jpg), f"size {image.shape[1]}x{image.shape[0]} differs from its masks {w}x{h}")
    items: list[Candidate | dict] = []
    for label, (alpha, origin) in sorted(void_band_alphas(objects).items()):
        class_id = majority_class(classes, objects == label)
        if not 0 < class_id < len(VOC_CLASSES):
            reason = "no class label under it" if class_id == 0 else f"class index {class_id} is not a VOC class"
            items.append(skip_record(jpg, f"unlabelled: instance {label} has {reason}", label))
            continue
        # Keyed relative to the root: the split and the bytes must not depend on how --voc was spelled.
        key = jpg.relative_to(root).as_posix()
        items.append(Candidate(key, image, alpha, origin, label, VOC_CLASSES[class_id], str(jpg)))
    return items


def iter_voc(root: str | Path, split: str = "trainval") -> Iterator[Candidate | dict]:
    """Candidates and skip records of a VOC split, in bank order (image id, then instance index).

    An image that cannot be used (missing JPEG or mask, corrupt PNG, size mismatch) yields one skip record.

    Raises:
        InputError: see :func:`voc_image_ids`.
    """
    for image_id in voc_image_ids(root, split):
        try:
            items = read_voc_image(root, image_id)
        except SourceError as exc:
            yield skip_record(exc.path, exc.reason)
            continue
        yield from items
