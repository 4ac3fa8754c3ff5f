"""A segmented object cut out of PASCAL VOC 2012 or COCO, and the rules that decide which objects are kept.

LODE/BladeNet (Sec. 4.1, "Local Blur Synthesis Module") "crop[s] various objects from the auxiliary dataset"
(PASCAL VOC 2012; MS COCO is named as an alternative) and moves them over a sharp background, so that "the
cropped images will not introduce any irrelevant visual content". This module holds what every source format
shares: the :class:`ObjectPatch` type, the :class:`Candidate` a format reader yields, the rules that turn a
soft mask into a patch (crop, ``min_area``, truncation) and the skip records of what was left out. Format
parsing lives in ``voc.py`` and ``coco.py``; the bank itself is the file ``store.py`` writes and reads.

A patch keeps only its bounding-box crop (``rgb`` and ``alpha`` own their memory), never the whole image: 7
bytes per pixel of its box (uint8 RGB + float32 alpha). Source images are decoded one at a time and dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from blursynth.errors import InputError, SourceError

MIN_AREA = 400.0
"""Default smallest object, in pixels of alpha mass (a 20 x 20 square). LODE enlarges patches only by 1.2
(Sec. 4.1) before moving them over 1280 x 720 REDS frames; a smaller object would be a speck whose blur is
mostly its own soft edge. Pass ``min_area=0`` to keep everything."""

BORDER_ALPHA = 0.5
"""An object is *truncated* when a pixel with alpha >= this value lies on the image border: its estimated
outline (the alpha = 0.5 contour) reaches the frame edge, so part of it is missing and the cut would show a
straight edge once the object moves."""


@dataclass(frozen=True, eq=False)
class ObjectPatch:
    """One segmented object, cropped to the bounding box of its soft mask.

    Attributes:
        rgb: ``(h, w, 3) uint8`` RGB crop of the source image (straight colour, not premultiplied; pixels with
            alpha 0 keep the source content, so premultiply before resampling to avoid colour fringes).
        alpha: ``(h, w) float32`` coverage in [0, 1]; anti-aliased at the object boundary.
        source: the source image's path relative to its dataset's root (VOC: ``JPEGImages/<id>.jpg``; COCO: the
            JSON's ``file_name``), so it does not depend on where the dataset lies or how its path was given.
        instance_id: VOC instance index in the ``SegmentationObject`` PNG, or COCO annotation id.
        class_name: VOC class name or COCO category name.
        bbox: ``(x, y, w, h)`` of the crop in the source image (pixels; the box of ``alpha > 0``).
        area: ``alpha.sum()``, the object's area in pixels.

    ``rgb`` and ``alpha`` are made read-only: patches are shared between samples.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    source: str
    instance_id: int
    class_name: str
    bbox: tuple[int, int, int, int]
    area: float

    def __post_init__(self) -> None:
        h, w = self.alpha.shape
        if self.rgb.shape != (h, w, 3) or self.rgb.dtype != np.uint8 or self.alpha.dtype != np.float32:
            raise ValueError(
                f"ObjectPatch: expected rgb (h, w, 3) uint8 and alpha (h, w) float32, got rgb {self.rgb.shape} "
                f"{self.rgb.dtype} and alpha {self.alpha.shape} {self.alpha.dtype}"
            )
        self.rgb.setflags(write=False)
        self.alpha.setflags(write=False)

    @property
    def key(self) -> tuple[str, int]:
        """``(source, instance_id)``: identifies the object; the store keeps one object per key."""
        return self.source, self.instance_id

    def __repr__(self) -> str:
        return (
            f"ObjectPatch({self.class_name!r}, source={self.source!r}, instance_id={self.instance_id}, "
            f"bbox={self.bbox}, area={self.area:.1f})"
        )


class Candidate(NamedTuple):
    """An object found by a format reader, before the bank's rules are applied.

    Attributes:
        source: the source image relative to its dataset's root (the object's key, see :class:`ObjectPatch`).
        image: ``(H, W, 3) uint8`` the whole source image (shared by the candidates of one image).
        alpha: ``(h, w) float32`` soft mask over a window of the image.
        origin: ``(x, y)`` of ``alpha[0, 0]`` in the image.
        instance_id: VOC instance index or COCO annotation id.
        class_name: class or category name.
        path: the source image's file as found, for messages and skip records.
    """

    source: str
    image: np.ndarray
    alpha: np.ndarray
    origin: tuple[int, int]
    instance_id: int
    class_name: str
    path: str


def skip_record(path: str | Path, reason: str, instance_id: int | None = None) -> dict:
    """The record of one skipped image (``instance_id`` None) or instance: ``{path, instance_id, reason}``."""
    return {"path": str(path), "instance_id": instance_id, "reason": " ".join(str(reason).split())}


def _touches_border(alpha: np.ndarray, origin: tuple[int, int], height: int, width: int) -> bool:
    x0, y0 = origin
    h, w = alpha.shape
    edges = []
    if y0 == 0:
        edges.append(alpha[0])
    if y0 + h == height:
        edges.append(alpha[-1])
    if x0 == 0:
        edges.append(alpha[:, 0])
    if x0 + w == width:
        edges.append(alpha[:, -1])
    return any(bool((e >= BORDER_ALPHA).any()) for e in edges)


def cut_patch(candidate: Candidate, *, min_area: float = MIN_AREA) -> ObjectPatch:
    """Apply the bank's rules to one candidate and crop it.

    Checks, in this order: *tiny* (``alpha.sum() < min_area``), then *truncated* (alpha >= ``BORDER_ALPHA`` on
    the image border). The crop is the bounding box of ``alpha > 0``, so the soft margin is kept whole.

    Args:
        candidate: the object, with its alpha window inside the image.
        min_area: smallest accepted area in pixels (sum of alpha).

    Returns:
        The patch; its arrays are copies, so the source image can be freed.

    Raises:
        SourceError: the object is tiny or truncated; the reason starts with ``tiny:`` or ``truncated:``.
    """
    image, alpha = candidate.image, candidate.alpha
    height, width = image.shape[:2]
    x0, y0 = candidate.origin
    h, w = alpha.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"alpha window {w}x{h} at {candidate.origin} is outside the {width}x{height} image")
    what = f"{candidate.class_name} instance {candidate.instance_id}"
    area = float(alpha.sum(dtype=np.float64))
    if area < min_area or area == 0:
        raise SourceError(candidate.path, f"tiny: {what} has area {area:.0f} px < min_area {min_area:g}")
    if _touches_border(alpha, candidate.origin, height, width):
        raise SourceError(candidate.path, f"truncated: {what} reaches the image border")
    rows = np.flatnonzero((alpha > 0).any(axis=1))
    cols = np.flatnonzero((alpha > 0).any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = np.clip(alpha[r0:r1, c0:c1], 0.0, 1.0).astype(np.float32)  # astype copies: the window is freed
    bx, by = x0 + c0, y0 + r0
    rgb = image[by : by + (r1 - r0), bx : bx + (c1 - c0)].copy()
    return ObjectPatch(
        rgb=rgb,
        alpha=crop,
        source=candidate.source,
        instance_id=int(candidate.instance_id),
        class_name=candidate.class_name,
        bbox=(bx, by, c1 - c0, r1 - r0),
        area=area,
    )


def iter_patches(items: Iterable[Candidate | dict], *, min_area: float) -> Iterator[ObjectPatch | dict]:
    """Cut every candidate (:func:`cut_patch`); skip records pass through and failed cuts become records."""
    for item in items:
        if isinstance(item, dict):
            yield item
            continue
        try:
            yield cut_patch(item, min_area=min_area)
        except SourceError as exc:
            yield skip_record(exc.path, exc.reason, item.instance_id)


def skip_counts(records: Iterable[dict]) -> dict[str, int]:
    """Number of skip records per kind, sorted by kind: the reason's leading word (``tiny``, ``truncated``,
    ``crowd``, ...) for instance skips, ``image`` for whole-image skips."""
    kinds = Counter("image" if r["instance_id"] is None else r["reason"].split(":", 1)[0] for r in records)
    return dict(sorted(kinds.items()))


def no_usable_object(where: str, skipped: list[dict]) -> InputError:
    """The one-line error for a dataset without a single usable object, with the skip counts."""
    if not skipped:
        return InputError(f"{where}: no usable object (no object matched)")
    kinds = ", ".join(f"{n} {k}" for k, n in skip_counts(skipped).items())
    first = f"{skipped[0]['path']}: {skipped[0]['reason']}"
    return InputError(f"{where}: no usable object (skipped: {kinds}; first: {first})")
