"""The camera pipeline at generation (issue 19): what ``average`` and ``local`` do to a sample with ``--camera``.

Per sample, every random choice comes from ``camera_seed(seed, sample key)`` (the sample's ``meta["sample"]``,
the key its other draws use too), so the same command writes the same bytes whatever the device, the number of
workers or the order in which units run, and a resumed run draws what the first run drew. The blurry image is
rendered from the window's linear-light mean (before any CRF) and the saturated fraction, then re-encoded with
the dataset's own CRF; the sharp image is never touched. The whole draw goes to ``meta["camera"]``.

The camera package (and torch with it) is imported here on use only: a run without ``--camera`` never loads it.
"""

from __future__ import annotations

import functools

import numpy as np

from blursynth.errors import ConfigError
from blursynth.ops.crf import CRF


@functools.lru_cache(maxsize=8)
def camera_settings(cfg):
    """The ``CameraConfig`` of a command's config (``config.camera.CameraFields``), or None without a camera;
    built once per config and process.

    Raises:
        ConfigError: an unknown colour matrix name (one line, naming the option and the known names).
    """
    if not cfg.camera_on:
        return None
    from blursynth.camera import CAMERA_MATRICES, camera_config

    if cfg.camera_matrices is not None:
        unknown = [m for m in cfg.camera_matrices if m not in CAMERA_MATRICES]
        if unknown:
            raise ConfigError(f"--camera-matrix: unknown matrix {unknown[0]!r}; choose from "
                              f"{', '.join(sorted(CAMERA_MATRICES))}")
    return camera_config(cfg.camera, **cfg.camera_overrides())


def saturation_mask(fraction: np.ndarray) -> np.ndarray:
    """The stored ``sat_mask``: ``round(255 * fraction)`` as uint8 (H, W, 3)."""
    return np.rint(np.float32(255.0) * np.asarray(fraction, np.float32)).astype(np.uint8)


def static_before_camera(linear: np.ndarray, crf: CRF, sharp: np.ndarray) -> bool:
    """Whether the window's blur without the camera (its linear mean encoded with the dataset's CRF) equals the
    sharp frame exactly: ``--drop-static`` decides on that, as without ``--camera`` (the camera's noise makes
    every blurry image differ from sharp). The first row is compared first, as ``run/sink.is_static`` does.
    """
    linear = np.asarray(linear, dtype=np.float32)
    if linear.shape != sharp.shape:
        return False
    if not np.array_equal(crf.encode(linear[:1]), sharp[:1]):
        return False
    return bool(np.array_equal(crf.encode(linear), sharp))


def render_blur(settings, seed: int, key: str, linear: np.ndarray, crf: CRF,
                fraction: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """The camera's blurry image of one sample and its draw.

    Args:
        settings: the run's ``CameraConfig`` (:func:`camera_settings`).
        seed: the run's ``--seed``.
        key: the sample key (``meta["sample"]``).
        linear: (H, W, 3) float32 linear-light mean of the exposure.
        crf: the dataset's CRF (the output is re-encoded with it).
        fraction: (H, W, 3) float32 saturated fraction, or None.

    Returns:
        ``blur`` (H, W, 3) uint8 and the draw (``meta["camera"]``).
    """
    from blursynth.camera import camera_seed, draw_camera, render_camera

    params = draw_camera(settings, camera_seed(seed, key))
    sat = None if fraction is None else saturation_mask(fraction).astype(np.float32) / np.float32(255.0)
    blur = render_camera(np.ascontiguousarray(linear, dtype=np.float32), crf, params, settings, sat=sat)
    return np.ascontiguousarray(blur, dtype=np.uint8), params
