"""The camera model (issue 19): saturation, RAW noise, ISP and compression after RSBlur (Rim et al., ECCV 2022).

Used by generation (``average``/``local`` ``--camera rsblur``) and by ``blursynth.data.ShardDataset(camera=...)``.
The settings (``CameraConfig``, ``camera_config``, ``CAMERAS``, ``camera_seed``, ``CAMERA_MATRICES``) import no
torch, so the CLI and the configs can validate with them; the pipeline functions (``draw_camera``,
``apply_camera``, ``render_camera``, ``compress``) load torch on first use. See docs/realism.md.
"""

from __future__ import annotations

from blursynth.camera.config import CAMERAS, PATTERNS, CameraConfig, camera_config, camera_seed
from blursynth.camera.matrices import CAMERA_MATRICES

_LAZY = {"draw_camera": "pipeline", "apply_camera": "pipeline", "render_camera": "pipeline", "compress": "compression"}

__all__ = ["CAMERAS", "CAMERA_MATRICES", "PATTERNS", "CameraConfig", "apply_camera", "camera_config", "camera_seed",
           "compress", "draw_camera", "render_camera"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"blursynth.camera.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'blursynth.camera' has no attribute {name!r}")
