"""Fixture factories: tiny but format-faithful inputs written under tmp_path (torchvision's
``create_video_file`` / ``inject_fake_data`` style). Nothing is downloaded."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from textures import textured_image


def pan_frames(texture: np.ndarray, n: int, height: int, width: int, velocity: float) -> np.ndarray:
    """Crops of ``texture`` moving ``velocity`` px/frame to the right, sampled with bilinear interpolation.

    Returns (n, height, width, 3) uint8 (rounded). The crop starts at x = 2.
    """
    out = np.empty((n, height, width, 3), np.uint8)
    tex = texture.astype(np.float32)
    for i in range(n):
        m = np.float32([[1, 0, 2 + velocity * i], [0, 0 + 1, 2]])
        warped = cv2.warpAffine(tex, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        out[i] = np.clip(np.rint(warped * 255), 0, 255).astype(np.uint8)
    return out


def motion_frames(texture: np.ndarray, steps: list[float], height: int, width: int,
                  patch: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Frames with a known displacement per frame: a camera pan, or a moving object over a still background.

    Args:
        texture: float [0, 1] RGB background, larger than the frames by the total pan plus 4 px.
        steps: ``steps[i]`` is the motion in pixels (to the right) between frames i - 1 and i; ``steps[0]``
            is ignored.
        patch: (y, x, h, w): instead of panning, an object (another texture) of size h x w starts at (y, x)
            over the still background and moves by ``steps``.

    Returns:
        (len(steps), height, width, 3) uint8.
    """
    xs = np.concatenate([[0.0], np.cumsum(steps[1:])])
    tex = texture.astype(np.float32)
    out = np.empty((len(steps), height, width, 3), np.uint8)
    for i, x in enumerate(xs):
        if patch is None:
            m = np.float32([[1, 0, 2 + x], [0, 1, 2]])
            img = cv2.warpAffine(tex, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        else:
            y0, x0, h, w = patch
            img = tex[2 : 2 + height, 2 : 2 + width].copy()
            obj = textured_image(h, w, seed=99).astype(np.float32)
            m = np.float32([[1, 0, x0 + x], [0, 1, y0]])
            placed = cv2.warpAffine(obj, m, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(np.ones((h, w), np.float32), m, (width, height), flags=cv2.INTER_LINEAR)
            img = img * (1 - alpha[..., None]) + placed
        out[i] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def write_video(path: Path, frames: np.ndarray, fps: int = 240, codec: str = "ffv1",
                pix_fmt: str | None = None, options: dict | None = None) -> Path:
    """Encode RGB frames (uint8, or uint16 for 10-bit) with PyAV.

    ``ffv1`` with ``bgr0`` (the default) is lossless RGB, so decoded frames equal ``frames`` exactly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt or ("bgr0" if codec == "ffv1" else "yuv420p")
        if options:
            stream.options = options
        src_fmt = "rgb48le" if frames.dtype == np.uint16 else "rgb24"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=src_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray, ext: str = ".png", start: int = 0) -> Path:
    """Write frames as ``frame{i}.png`` (unpadded on purpose: exercises natural sort)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        bgr = cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(folder / f"frame{start + i}{ext}"), bgr)
    return folder


@pytest.fixture(autouse=True)
def _blursynth_logger_restored():
    """Each test starts with the library logger as a library leaves it (propagating, no handlers of its own).

    The CLI's ``configure_logging`` (run in-process by every CliRunner test) turns off propagation and installs a
    stderr handler; left in place, caplog in a later test sees nothing on pytest versions that attach only to
    the root logger (before 9.2), so such tests would pass or fail with the test order and the pytest version.
    """
    logger = logging.getLogger("blursynth")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = []
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    yield
    logger.handlers[:], level, logger.propagate = saved
    logger.setLevel(level)


@pytest.fixture
def texture() -> np.ndarray:
    return textured_image(64, 160, seed=1)


@pytest.fixture
def pan_video(tmp_path: Path, texture: np.ndarray):
    """A lossless 48x64 FFV1 clip, 40 frames at 240 fps, panning 0.75 px/frame. Returns (path, frames)."""
    frames = pan_frames(texture, 40, 48, 64, 0.75)
    return write_video(tmp_path / "videos" / "pan.mkv", frames), frames


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def device(request) -> str:
    """kornia-style device parametrisation: the CPU case always runs, CUDA where present."""
    return request.param
