"""Fixture writers for the object bank: tiny but format-faithful PASCAL VOC 2012 and COCO data.

VOC: JPEGs, palette PNGs (mode P, the VOC colour map) for ``SegmentationObject`` and ``SegmentationClass``
with a true 255 void band straddling every object boundary, and ``ImageSets/Segmentation`` split files.
COCO: an ``instances`` JSON with a polygon, a compressed RLE, an uncompressed RLE, a crowd region, a tiny
object and a truncated one, plus the JPEGs. Shapes are discs and rectangles of known size, so tests can check
geometry analytically. Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


# -- shared ----------------------------------------------------------------------------------------------
def texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB texture, ``(height, width, 3) uint8``."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    big = cv2.resize(small, (width + 16, height + 16), interpolation=cv2.INTER_CUBIC)[:height, :width]
    return np.clip(big * 200 + 30, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def write_backgrounds(folder: Path, groups: int, per_group: int, size: tuple[int, int], seed: int = 50) -> Path:
    """``folder/seq<g>/<i>.png`` textured backgrounds, like REDS ``train_sharp/NNN/`` sequences."""
    for g in range(groups):
        for i in range(per_group):
            p = folder / f"seq{g}" / f"{i:03d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(p), texture(*size, seed=seed + 10 * g + i))
    return folder


# -- VOC -------------------------------------------------------------------------------------------------
def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC palette (``VOCdevkit`` ``labelcolormap.m``): ``(n, 3) uint8``; 255 is (224, 224, 192)."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = r, g, b
    return cmap


def write_palette_png(path: Path, indices: np.ndarray) -> Path:
    """Write ``(H, W) uint8`` indices as a mode-P PNG with the VOC palette (as the VOC 2012 masks are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(indices.astype(np.uint8), mode="L").convert("P")  # "L"->"P" keeps the indices
    im.putpalette(voc_colormap().ravel().tolist())
    im.save(path)
    return path


@dataclass(frozen=True)
class Shape:
    """An object of known geometry. Pixel centres are at integer coordinates.

    Attributes:
        kind: ``disc`` (params ``cx, cy, r``) or ``rect`` (params ``x0, y0, x1, y1``, the true edges).
        params: see ``kind``.
        class_id: VOC class index (1..20); 0 writes the shape as an all-void region (VOC's "ambiguous").
    """

    kind: str
    params: tuple[float, ...]
    class_id: int = 8  # cat

    @property
    def area(self) -> float:
        if self.kind == "disc":
            return float(np.pi * self.params[2] ** 2)
        x0, y0, x1, y1 = self.params
        return float((x1 - x0) * (y1 - y0))

    def signed_distance(self, height: int, width: int) -> np.ndarray:
        """Euclidean signed distance to the outline at every pixel centre, negative inside."""
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        if self.kind == "disc":
            cx, cy, r = self.params
            return np.hypot(xx - cx, yy - cy) - r
        x0, y0, x1, y1 = self.params
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        qx, qy = np.abs(xx - cx) - hx, np.abs(yy - cy) - hy
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0)


def voc_maps(shapes: list[Shape], height: int, width: int, band: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """``SegmentationObject`` and ``SegmentationClass`` indices for non-overlapping shapes.

    Instance k (1-based, in list order, class_id > 0 only) is the inside of shape k minus the void band; the band
    is every pixel within ``band / 2`` of any outline, so it straddles the boundary like VOC's.
    """
    objects = np.zeros((height, width), np.uint8)
    classes = np.zeros((height, width), np.uint8)
    void = np.zeros((height, width), bool)
    k = 0
    for shape in shapes:
        sd = shape.signed_distance(height, width)
        if shape.class_id == 0:
            void |= sd < band / 2
            continue
        k += 1
        objects[sd < 0] = k
        classes[sd < 0] = shape.class_id
        void |= np.abs(sd) < band / 2
    objects[void] = 255
    classes[void] = 255
    return objects, classes


def write_voc(
    root: Path,
    images: dict[str, list[Shape]],
    *,
    size: tuple[int, int] = (96, 128),
    band: float = 5.0,
    splits: dict[str, list[str]] | None = None,
) -> Path:
    """Write a VOC 2012 root.

    Args:
        root: the ``VOC2012`` folder to create.
        images: image id -> its shapes.
        size: ``(height, width)`` of every image.
        band: void band width in pixels.
        splits: split name -> ids (default: ``train`` the first half, ``val`` the rest, ``trainval`` all).

    Returns:
        ``root``.
    """
    root = Path(root)
    height, width = size
    ids = list(images)
    for n, (image_id, shapes) in enumerate(images.items()):
        rgb = texture(height, width, seed=n)
        for k, shape in enumerate(shapes):
            inside = shape.signed_distance(height, width) < 0
            rgb[inside] = texture(height, width, seed=100 + 10 * n + k)[inside] // 2 + 100
        write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", rgb)
        objects, classes = voc_maps(shapes, height, width, band)
        write_palette_png(root / "SegmentationObject" / f"{image_id}.png", objects)
        write_palette_png(root / "SegmentationClass" / f"{image_id}.png", classes)
    if splits is None:
        half = (len(ids) + 1) // 2
        splits = {"train": ids[:half], "val": ids[half:], "trainval": ids}
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for name, listed in splits.items():
        (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in listed))
    return root


# -- COCO ------------------------------------------------------------------------------------------------
COCO_CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
    {"id": 24, "name": "zebra", "supercategory": "animal"},
]


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts: run lengths in column-major order, starting with a run of zeros."""
    flat = mask.astype(bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat[0] else counts


def polygon_area(ring: list[float]) -> float:
    """Shoelace area of a flat ``[x1, y1, x2, y2, ...]`` ring."""
    p = np.asarray(ring, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def disc_mask(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Binary disc in COCO's convention (pixel (x, y) covers [x, x+1) x [y, y+1); its centre is +0.5)."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    return (np.hypot(xx - cx, yy - cy) < r).astype(np.uint8)


@dataclass
class CocoData:
    """What :func:`write_coco` wrote, with the ground truth tests check against."""

    json_path: Path
    images_dir: Path
    image_paths: dict[int, Path]
    polygons: dict[int, list[list[float]]] = field(default_factory=dict)  # annotation id -> rings
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # annotation id -> binary (H, W) uint8


def write_coco(root: Path, *, missing_image: bool = False, shuffle: bool = False) -> CocoData:
    """Write ``root/annotations/instances.json`` and ``root/images/*.jpg``.

    Image 101 (160 x 120) holds: 11 a two-ring dog polygon (a hexagon and a triangle), 12 a person disc as
    compressed RLE (string counts), 13 a car rectangle as uncompressed RLE (list counts), 14 a crowd region
    (``iscrowd=1``), 15 a tiny dog polygon (100 px), 16 a car polygon touching the left border. Image 202
    (100 x 80) holds 21, a person quadrilateral. Category ``zebra`` has no annotations.

    Args:
        root: folder to write into.
        missing_image: do not write image 202's file (its annotation must then be skipped).
        shuffle: write the images, annotations and categories in reverse order (order must not matter).
    """
    from pycocotools import mask as mask_utils

    root = Path(root)
    images_dir = root / "images"
    h1, w1, h2, w2 = 120, 160, 80, 100
    hexagon = [40.3, 20.2, 70.5, 25.0, 80.2, 50.7, 62.0, 72.4, 35.1, 65.3, 28.6, 40.0]
    triangle = [90.0, 80.0, 115.5, 82.0, 100.2, 110.1]
    disc = disc_mask(h1, w1, 122.0, 35.0, 16.0)
    rect = np.zeros((h1, w1), np.uint8)
    rect[85:110, 20:62] = 1
    crowd = np.zeros((h1, w1), np.uint8)
    crowd[5:20, 90:150] = 1
    tiny = [140.0, 100.0, 150.0, 100.0, 150.0, 110.0, 140.0, 110.0]
    at_border = [0.0, 60.0, 20.0, 60.0, 20.0, 80.0, 0.0, 80.0]
    quad = [20.0, 15.0, 75.0, 20.0, 70.0, 60.0, 25.0, 55.0]
    compressed = mask_utils.encode(np.asfortranarray(disc))
    anns = [
        {"id": 11, "image_id": 101, "category_id": 18, "iscrowd": 0, "segmentation": [hexagon, triangle]},
        {"id": 12, "image_id": 101, "category_id": 1, "iscrowd": 0,
         "segmentation": {"size": [h1, w1], "counts": compressed["counts"].decode("ascii")}},
        {"id": 13, "image_id": 101, "category_id": 3, "iscrowd": 0,
         "segmentation": {"size": [h1, w1], "counts": rle_counts(rect)}},
        {"id": 14, "image_id": 101, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [h1, w1], "counts": rle_counts(crowd)}},
        {"id": 15, "image_id": 101, "category_id": 18, "iscrowd": 0, "segmentation": [tiny]},
        {"id": 16, "image_id": 101, "category_id": 3, "iscrowd": 0, "segmentation": [at_border]},
        {"id": 21, "image_id": 202, "category_id": 1, "iscrowd": 0, "segmentation": [quad]},
    ]  # fmt: skip
    for ann in anns:  # COCO fills these; the reader must not rely on them
        ann["area"], ann["bbox"] = 0.0, [0.0, 0.0, 0.0, 0.0]
    images = [
        {"id": 101, "file_name": "000000000101.jpg", "height": h1, "width": w1},
        {"id": 202, "file_name": "000000000202.jpg", "height": h2, "width": w2},
    ]
    categories = list(COCO_CATEGORIES)
    if shuffle:
        anns, images, categories = anns[::-1], images[::-1], categories[::-1]
    data = {"info": {"description": "blursynth test"}, "images": images, "annotations": anns,
            "categories": categories}  # fmt: skip
    json_path = root / "annotations" / "instances.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data))
    paths = {101: images_dir / "000000000101.jpg", 202: images_dir / "000000000202.jpg"}
    write_jpeg(paths[101], texture(h1, w1, seed=7))
    images_dir.mkdir(parents=True, exist_ok=True)
    if not missing_image:
        write_jpeg(paths[202], texture(h2, w2, seed=8))
    return CocoData(
        json_path=json_path,
        images_dir=images_dir,
        image_paths=paths,
        polygons={11: [hexagon, triangle], 15: [tiny], 16: [at_border], 21: [quad]},
        masks={12: disc, 13: rect, 14: crowd},
    )


def small_local_run(tmp: Path) -> Path:
    """`blursynth local` into ``tmp/out``: 6 samples of 64 x 80 with masks, one moving object each (a rectangle
    or a disc from two VOC images), both splits, shards of 2, seed 3. Returns OUT."""
    from blursynth.config import LocalConfig
    from blursynth.recipes.local import run_local

    bg = write_backgrounds(tmp / "bg", 2, 2, (96, 128))
    voc = write_voc(tmp / "VOC2012", {"2008_000001": [Shape("rect", (20, 20, 52, 50), 8)],
                                      "2008_000002": [Shape("disc", (40, 45, 18.0), 15)]}, size=(96, 128))
    out = tmp / "out"
    run_local(LocalConfig(backgrounds=(str(bg),), out=str(out), voc=str(voc), num_samples=6, crop=(64, 80),
                          shard_size=2, val_fraction=0.4, seed=3, moving_objects=1, static_objects=(0, 0),
                          device="cpu"))
    return out
