"""The contact sheet of ``blursynth inspect``: labelled rows ``blur | sharp | third panel`` and one colour bar.

Every row starts with a label strip naming the sample (its ``meta["sample"]`` id and split), the number of
frames averaged (N) and PSNR(blur, sharp). The third panel is the mask (``local``), the blur map, or
``|blur - sharp|`` (max over the channels) and is drawn with the turbo colour map on **one scale for the whole
sheet**, so a colour means the same value in every row; the colour bar under the rows shows that scale:

- mask: 0..1, the fraction of the exposure a pixel is covered by a moving object (stored as 0..255);
- blur map: 0..V px, V = the 99th percentile of every blur-map pixel shown, rounded up to a power of two
  (at least 1 px); longer blur saturates at the top colour;
- |blur - sharp|: 0..64 gray levels (a fixed range; larger differences saturate).

Text is drawn with OpenCV's Hershey font (ASCII only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

TILE_WIDTH = 320
LABEL_HEIGHT = 20
ROW_PAD = 4
BAR_BLOCK_HEIGHT = 56
BAR_HEIGHT = 14
BAR_TOP = 8  # the colour bar's first row inside its block
BAR_MARGIN = 16  # left and right of the bar, inside the third column
LABEL_RGB = (40, 40, 40)
TEXT_RGB = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45
DIFF_MAX = 64.0
BAR_TICKS = 5

#: column name -> (caption, unit, tick scale: the tick label of a stored value v is v * scale)
COLUMNS = {
    "mask": ("mask: fraction of the exposure covered by a moving object", "", 1 / 255),
    "blur_map": ("blur map: blur length per pixel", "px", 1.0),
    "|blur-sharp|": ("|blur - sharp|: max over channels", "gray levels", 1.0),
}


@dataclass
class SheetSample:
    """One row: the label, the two images and the raw third map (``(H, W)``, values in stored units)."""

    label: str
    blur: np.ndarray
    sharp: np.ndarray
    third: np.ndarray | None
    info: dict


def colorize(values: np.ndarray, vmax: float) -> np.ndarray:
    """A single-channel map as RGB: turbo colour map over ``0..vmax`` (values outside are clipped)."""
    scaled = np.clip(np.asarray(values, dtype=np.float32) / max(vmax, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def tile(image: np.ndarray) -> np.ndarray:
    """An image resized to the tile width, aspect ratio kept."""
    h, w = image.shape[:2]
    size = (TILE_WIDTH, max(1, round(h * TILE_WIDTH / w)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if w > TILE_WIDTH else cv2.INTER_LINEAR)


def sheet_scale(column: str, maps: list[np.ndarray]) -> float:
    """The top of the sheet's one colour scale, in stored units (rule in the module docstring)."""
    if column == "mask":
        return 255.0
    if column == "blur_map":
        values = [np.asarray(m, dtype=np.float32).ravel() for m in maps if m is not None and m.size]
        p99 = float(np.percentile(np.concatenate(values), 99)) if values else 0.0
        return float(2 ** max(0, math.ceil(math.log2(max(p99, 1.0)))))
    return DIFF_MAX


def _text(canvas: np.ndarray, text: str, x: int, baseline: int) -> None:
    cv2.putText(canvas, text, (x, baseline), FONT, FONT_SCALE, TEXT_RGB, 1, cv2.LINE_AA)


def _fit(text: str, width: int) -> str:
    """``text`` shortened from the left (``...``) to fit ``width`` pixels."""
    while len(text) > 4 and cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] > width:
        text = "..." + text[4:]
    return text


def _label_strip(text: str, width: int) -> np.ndarray:
    strip = np.empty((LABEL_HEIGHT, width, 3), np.uint8)
    strip[:] = LABEL_RGB
    _text(strip, _fit(text, width - 12), 6, LABEL_HEIGHT - 6)
    return strip


def _tick(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def colorbar(column: str, vmax: float, width: int) -> tuple[np.ndarray, dict]:
    """The bar block under the rows: caption on the left, a turbo gradient with ticks under the third column.

    Returns:
        ``(block, info)``; ``info`` gives the bar's ``x0``/``x1`` (columns of value 0 and vmax) and rows.
    """
    caption, unit, factor = COLUMNS[column]
    block = np.empty((BAR_BLOCK_HEIGHT, width, 3), np.uint8)
    block[:] = LABEL_RGB
    x0, x1 = 2 * TILE_WIDTH + BAR_MARGIN, 3 * TILE_WIDTH - BAR_MARGIN - 1
    values = np.linspace(0.0, vmax, x1 - x0 + 1, dtype=np.float64)
    block[BAR_TOP : BAR_TOP + BAR_HEIGHT, x0 : x1 + 1] = colorize(values[None, :], vmax)
    for k in range(BAR_TICKS):
        x = x0 + round(k * (x1 - x0) / (BAR_TICKS - 1))
        block[BAR_TOP + BAR_HEIGHT : BAR_TOP + BAR_HEIGHT + 4, x] = TEXT_RGB
        label = _tick(k * vmax / (BAR_TICKS - 1) * factor)
        if k == BAR_TICKS - 1 and column != "mask":
            label = f">={label}"
        w = cv2.getTextSize(label, FONT, FONT_SCALE, 1)[0][0]
        _text(block, label, min(max(0, x - w // 2), width - w), BAR_TOP + BAR_HEIGHT + 18)
    top = _tick(vmax * factor)
    _text(block, _fit(caption, x0 - 20), 6, BAR_TOP + 11)
    _text(block, _fit(f"one colour scale for every row: 0 to {top}{' ' + unit if unit else ''}", x0 - 20),
          6, BAR_TOP + 31)
    return block, {"x0": x0, "x1": x1, "rows": [BAR_TOP, BAR_TOP + BAR_HEIGHT]}


def compose_sheet(samples: list[SheetSample], column: str) -> tuple[np.ndarray, dict]:
    """Stack labelled rows and the colour bar into one RGB image.

    Args:
        samples: the rows, in order.
        column: the third column, a key of :data:`COLUMNS`.

    Returns:
        ``(sheet, info)``: ``(H, 3 * TILE_WIDTH, 3) uint8`` RGB and the layout, JSON-serialisable: ``rows``
        (each sample's ``info`` with its ``label``, ``y`` of its label strip and tile ``height``),
        ``label_height``, ``scale`` (``column``, ``min``, ``max`` in stored units, ``unit``) and ``colorbar``
        (``y`` of the block and the bar's columns and rows inside it).
    """
    vmax = sheet_scale(column, [s.third for s in samples])
    width = 3 * TILE_WIDTH
    parts, rows, y = [], [], 0
    for s in samples:
        if s.third is not None:
            third = colorize(s.third, vmax)
        else:  # a shard without this dataset (mixed outputs): a neutral gray tile, not a value
            third = np.full((*s.blur.shape[:2], 3), 128, np.uint8)
        tiles = [tile(np.asarray(t)) for t in (s.blur, s.sharp, third)]
        body = np.concatenate(tiles, axis=1)
        parts += [_label_strip(s.label, width), body, np.zeros((ROW_PAD, width, 3), np.uint8)]
        rows.append(s.info | {"label": s.label, "y": y, "height": body.shape[0]})
        y += LABEL_HEIGHT + body.shape[0] + ROW_PAD
    block, bar = colorbar(column, vmax, width)
    parts.append(block)
    _, unit, factor = COLUMNS[column]
    info = {"rows": rows, "label_height": LABEL_HEIGHT,
            "scale": {"column": column, "min": 0.0, "max": vmax, "unit": unit or "fraction",
                      "max_shown": vmax * factor},
            "colorbar": {"y": y} | bar}
    return np.concatenate(parts, axis=0), info
