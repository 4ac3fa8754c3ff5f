"""Linear-light compositing of soft-edged objects (local blur synthesis): the per-object building blocks.

Pure functions on float32 arrays in linear light (``CRF.decode`` applied), the way the averaging recipes work:
a frame is ``S = P + (1 - A) * S`` per object in z-order, with ``P`` the object's premultiplied linear colour
and ``A`` its anti-aliased coverage, both resampled together with bilinear interpolation (premultiplying
first keeps the colour of pixels outside the object from bleeding into its edge). ``ops/render.py`` and its
torch twin ``ops/render_torch.py`` put these together into whole samples.

OpenCV's ``warpAffine`` resolves sub-pixel positions to 1/32 px (``INTER_BITS = 5``); poses are therefore
exact to within 1/64 px, far below the 1 px steps objects make.
"""

from __future__ import annotations

import cv2
import numpy as np

from blursynth.ops.crf import CRF

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def premultiply(rgb: np.ndarray, alpha: np.ndarray, crf: CRF) -> np.ndarray:
    """A patch as ``(h, w, 4) float32``: linear colour times alpha, then alpha."""
    out = np.empty((*alpha.shape, 4), np.float32)
    out[..., :3] = crf.decode(rgb) * alpha[..., None]
    out[..., 3] = alpha
    return out


def warped_box(pose: np.ndarray, patch_size: tuple[int, int], frame_hw: tuple[int, int]) -> Box | None:
    """Integer box of the frame that a patch under ``pose`` can touch (bilinear support), or None if none."""
    h, w = patch_size
    pts = np.array([[-1.0, -1.0], [w, -1.0], [w, h], [-1.0, h]]) @ pose[:, :2].T + pose[:, 2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(frame_hw[1], int(x1)), min(frame_hw[0], int(y1))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def union(boxes) -> Box | None:
    """Smallest box holding every non-None box."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def clusters(boxes: list[Box | None]) -> list[tuple[Box, list[int]]]:
    """Group items whose boxes overlap (transitively): ``[(union box, item indices in order), ...]``.

    Objects in different groups never touch the same pixel, so each group is composited on its own box.
    """
    groups: list[tuple[Box, list[int]]] = [(b, [i]) for i, b in enumerate(boxes) if b is not None]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if overlaps(groups[i][0], groups[j][0]):
                    box = union([groups[i][0], groups[j][0]])
                    groups[i] = (box, sorted(groups[i][1] + groups[j][1]))
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(groups, key=lambda g: g[1][0])


def swept_boxes(layers, frame_hw: tuple[int, int]) -> tuple[list[list[Box | None]], list[tuple[Box, list[int]]]]:
    """Per moving object and frame, the box its patch touches; and the clusters of objects whose sweeps overlap.

    Args:
        layers: ``(premultiplied patch, poses (N, 2, 3))`` per object.
    """
    boxes = [[warped_box(p, prem.shape[:2], frame_hw) for p in poses] for prem, poses in layers]
    return boxes, clusters([union(b) for b in boxes])


def coverage_mask(cover_sum: np.ndarray, n: int) -> np.ndarray:
    """``round(255 * cover_sum / n)`` as uint8, at least 1 wherever ``cover_sum > 0`` (so 0 means never covered)."""
    m = cv2.convertScaleAbs(np.asarray(cover_sum, np.float32) / np.float32(n), alpha=255.0)
    m[(m == 0) & (cover_sum > 0)] = 1
    return m


def warp(premultiplied: np.ndarray, pose: np.ndarray, box: Box) -> np.ndarray:
    """Resample a premultiplied patch under ``pose`` onto the frame ``box``: ``(bh, bw, 4) float32``."""
    x0, y0, x1, y1 = box
    m = np.array(pose, dtype=np.float64)
    m[0, 2] -= x0
    m[1, 2] -= y0
    return cv2.warpAffine(premultiplied, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0))


def over(frame: np.ndarray, layer: np.ndarray, uncovered: np.ndarray | None = None) -> None:
    """Composite ``layer`` (premultiplied, 4 channels) over ``frame`` (3 channels) in place.

    ``uncovered`` (same height and width), when given, is multiplied by ``1 - alpha``: one minus it is then
    the union coverage of every layer composited so far.
    """
    # OpenCV on the (often strided) views: numpy's broadcast multiply was 4x slower here (benchmarks/bench_local)
    keep = cv2.subtract(1.0, cv2.extractChannel(layer, 3))
    if keep.ndim == 1:  # OpenCV drops a trailing 1-wide axis
        keep = keep.reshape(layer.shape[:2])
    cv2.multiply(frame, cv2.merge((keep, keep, keep)), dst=frame)
    cv2.add(frame, cv2.cvtColor(layer, cv2.COLOR_RGBA2RGB), dst=frame)
    if uncovered is not None:
        cv2.multiply(uncovered, keep, dst=uncovered)
