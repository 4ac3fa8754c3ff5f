"""Regenerate the bundled example clips (already committed; run only to change them).

Two 320x180, 240 fps H.264 clips with procedural texture, so the quickstart needs no download:
  clips/pan_zoom.mp4       camera motion: a slow pan with a slight zoom (global blur, GOPRO-like); also copied to
                           blursynth/train/assets/ (package data: the quick check of `blursynth train-check`)
  clips/moving_object.mp4  a static background and one textured disc crossing it (local blur, LODE-like)

Usage: python examples/make_examples.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np

H, W, FPS, N = 180, 320, 240, 144
HERE = Path(__file__).resolve().parent


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell, weight in ((2, 0.6), (5, 1.0), (17, 1.4), (61, 1.8)):
        small = rng.random((h // cell + 3, w // cell + 3, 3)).astype(np.float32)
        img += weight * cv2.resize(small, (w + 3 * cell, h + 3 * cell), interpolation=cv2.INTER_CUBIC)[:h, :w]
    # a few hard edges (stripes and blocks), which is where blur shows
    for k in range(0, w, 37):
        img[:, k : k + 3] *= 0.35
    img -= img.min()
    return np.clip(img / img.max(), 0, 1)


def encode(path: Path, frames) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "16", "preset": "slow"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def pan_zoom():
    big = texture(2 * H, 2 * W, seed=7)
    for i in range(N):
        t = i / N
        scale = 1.0 + 0.15 * t
        cx, cy = W * 0.7 + 0.9 * i, H * 0.9 + 12 * np.sin(i / 15)
        m = cv2.getRotationMatrix2D((cx, cy), 0.0, scale)
        m[:, 2] -= (cx - W / 2, cy - H / 2)
        f = cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_LINEAR)
        yield np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)


def moving_object():
    bg = texture(H, W, seed=11)
    obj = texture(61, 61, seed=12)[..., ::-1]
    yy, xx = np.mgrid[:61, :61]
    alpha = np.clip(30.5 - np.hypot(yy - 30, xx - 30), 0, 1)[..., None].astype(np.float32)
    for i in range(N):
        f = bg.copy()
        x, y = int(round(-40 + 2.6 * i)), int(round(60 + 25 * np.sin(i / 25)))
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + 61), min(H, y + 61)
        if x1 > x0 and y1 > y0:
            sub = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            f[y0:y1, x0:x1] = alpha[sub] * obj[sub] + (1 - alpha[sub]) * f[y0:y1, x0:x1]
        yield np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)


if __name__ == "__main__":
    encode(HERE / "clips" / "pan_zoom.mp4", pan_zoom())
    shutil.copyfile(HERE / "clips" / "pan_zoom.mp4", HERE.parent / "blursynth" / "train" / "assets" / "pan_zoom.mp4")
    encode(HERE / "clips" / "moving_object.mp4", moving_object())
    for p in sorted((HERE / "clips").glob("*.mp4")):
        print(p.relative_to(HERE), p.stat().st_size, "bytes")
