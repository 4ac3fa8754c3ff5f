"""The continuous-exposure oracle (issue 18, "Oracle tests and targets"): a textured scene whose camera pans,
rotates and zooms at ``v`` px per frame, optionally with a segmented object (soft alpha) crossing it the other
way while turning, rendered in linear light at any time ``s`` (frame units) directly from the source.

Every sub-sample is rendered from the same continuous model (bicubic interpolant of a source texture larger
than the frame, warped by the exact pose at time ``s``), so the truth, the linear-light mean of the
``(N - 1) * 32 + 1`` sub-samples between the window's first and last frame, involves no interpolation of
frames at all. The tool is given only the integer frames, gamma-2.2 encoded to uint8.

No pytest import, so a benchmark can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from textures import textured_image

#: Sub-steps per frame interval of the oracle truth (the issue's 32).
ORACLE_SUBSTEPS = 32
#: Gamma of the encoding the frames are given in (Nah et al. 2017's CRF, ``ops/crf.py``'s default).
GAMMA = 2.2


@dataclass(frozen=True)
class ExposureScene:
    """A camera moving over a texture, optionally with an object crossing it.

    Attributes:
        height, width: frame size.
        velocity: pan speed, px per frame (the camera moves along ``pan_angle_deg``; the image content moves
            the other way).
        rotation_deg: camera roll per frame (degrees, about the frame centre).
        zoom: relative scale change per frame (0.004 = 0.4 % per frame).
        with_object: whether a soft-edged elliptical object crosses the frame, moving ``velocity`` px per
            frame the other way (so ``2 velocity`` relative to the background) while turning
            ``object_turn_deg`` per frame.
        seed: texture seed.
    """

    height: int = 192
    width: int = 256
    velocity: float = 8.0
    pan_angle_deg: float = 20.0
    rotation_deg: float = 0.3
    zoom: float = 0.004
    with_object: bool = False
    object_turn_deg: float = 3.0
    seed: int = 3

    def __post_init__(self) -> None:
        margin = int(np.ceil(self.velocity * 8 + 0.3 * max(self.height, self.width))) + 16
        src_h, src_w = self.height + 2 * margin, self.width + 2 * margin
        encoded = textured_image(src_h, src_w, seed=self.seed)
        object.__setattr__(self, "_background", np.power(encoded, GAMMA).astype(np.float32))
        obj = textured_image(96, 96, seed=self.seed + 90)
        yy, xx = np.mgrid[0:96, 0:96].astype(np.float64) + 0.5
        # soft alpha: a 1.5-px smooth-step across the ellipse's border (semi-axes 40 x 26 px)
        r = np.sqrt(((xx - 48) / 40.0) ** 2 + ((yy - 48) / 26.0) ** 2)
        alpha = np.clip((1.0 - r) * 26.0 / 3.0 + 0.5, 0.0, 1.0)
        alpha = alpha * alpha * (3 - 2 * alpha)
        object.__setattr__(self, "_object", np.power(obj, GAMMA).astype(np.float32))
        object.__setattr__(self, "_alpha", alpha.astype(np.float32))

    def render(self, s: float) -> np.ndarray:
        """The linear-light image at time ``s`` (frame units). Shape: (H, W, 3) float32, >= 0."""
        h, w = self.height, self.width
        bg = self._background
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        img = cv2.warpAffine(bg, self._camera(s), (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        if self.with_object:
            om = self._object_pose(s)
            lin_obj = cv2.warpAffine(self._object, om, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
            alpha = cv2.warpAffine(self._alpha, om, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
            alpha = np.clip(alpha, 0.0, 1.0)[..., None]
            img = img * (1.0 - alpha) + lin_obj * alpha
        return np.maximum(img, 0.0)

    def _camera(self, s: float) -> np.ndarray:
        """2x3 map from frame pixels to background-source pixels at time ``s``."""
        cx, cy = (self.width - 1) / 2.0, (self.height - 1) / 2.0
        sx, sy = (self._background.shape[1] - 1) / 2.0, (self._background.shape[0] - 1) / 2.0
        a = np.deg2rad(self.pan_angle_deg)
        scale = (1.0 + self.zoom) ** (-s)  # zooming in: each output pixel covers less source
        th = np.deg2rad(self.rotation_deg * s)
        rot = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        centre = np.array([sx + self.velocity * s * np.cos(a), sy + self.velocity * s * np.sin(a)])
        return np.hstack([rot, (centre - rot @ np.array([cx, cy]))[:, None]])

    def _object_pose(self, s: float) -> np.ndarray:
        """2x3 map from frame pixels to object-texture pixels at time ``s``: the object's centre moves
        ``velocity`` px/frame to the right (and 0.15 of it down) from x = w / 4, turning as it goes."""
        ox = 0.25 * self.width + self.velocity * s
        oy = 0.5 * self.height + 0.15 * self.velocity * s
        phi = np.deg2rad(self.object_turn_deg * s)
        orot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
        return np.hstack([orot, (np.array([47.5, 47.5]) - orot @ np.array([ox, oy]))[:, None]])

    def true_flow(self, s0: float, s1: float) -> np.ndarray:
        """The exact flow from time ``s0`` to ``s1``: where each pixel's content at ``s0`` is at ``s1`` (the
        object's motion where its alpha at ``s0`` is >= 1/2, else the background's). Shape: (2, H, W) float32.
        """
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])

        def motion(pose) -> np.ndarray:
            a0, a1 = pose(s0), pose(s1)
            src = a0 @ pts  # source coordinates, then back into the frame at s1
            return np.linalg.solve(a1[:, :2], src - a1[:, 2:]) - pts[:2]

        flow = motion(self._camera)
        if self.with_object:
            inside = cv2.warpAffine(self._alpha, self._object_pose(s0), (self.width, self.height),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).ravel() >= 0.5
            flow[:, inside] = motion(self._object_pose)[:, inside]
        return flow.reshape(2, self.height, self.width).astype(np.float32)

    def frames(self, n: int) -> np.ndarray:
        """The integer frames 0 .. n - 1, gamma encoded and rounded: (n, H, W, 3) uint8 (what the tool gets)."""
        return np.stack([encode(self.render(float(i))) for i in range(n)])

    def truth(self, start: float, stop: float, substeps: int = ORACLE_SUBSTEPS) -> np.ndarray:
        """Linear-light mean of ``round((stop - start) * substeps) + 1`` uniform samples over [start, stop].

        ``truth(0, n - 1)`` is the issue's oracle for a window of n frames. Shape: (H, W, 3) float64.
        """
        count = int(round((stop - start) * substeps)) + 1
        acc = np.zeros((self.height, self.width, 3), np.float64)
        for s in np.linspace(start, stop, count):
            acc += self.render(float(s))
        return acc / count


def encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> gamma-2.2 uint8 (rounded, clipped): the oracle's own CRF, independent of ops/crf.py."""
    return np.clip(np.rint(255.0 * np.power(np.clip(linear, 0.0, 1.0), 1.0 / GAMMA)), 0, 255).astype(np.uint8)


def decode(frames: np.ndarray) -> np.ndarray:
    """uint8 gamma-2.2 -> linear light float32 (the exact inverse table)."""
    table = np.power(np.arange(256) / 255.0, GAMMA).astype(np.float32)
    return table[frames]


def border_psnr(blur_linear: np.ndarray, truth_linear: np.ndarray, border: int = 20) -> float:
    """PSNR (dB) of the encoded blur against the encoded truth, ``border`` px excluded on every side."""
    a = encode(blur_linear)[border:-border, border:-border].astype(np.float64)
    b = encode(truth_linear)[border:-border, border:-border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
