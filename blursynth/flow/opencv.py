"""OpenCV flow backends: DIS (default on CPU), DeepFlow (opencv-contrib; used by LODE) and Farneback."""

from __future__ import annotations

import cv2
import numpy as np

from blursynth.errors import MissingDependencyError
from blursynth.flow.base import FlowBackend, hw_to_chw


class DISFlow(FlowBackend):
    """Dense Inverse Search (Kroeger et al. 2016), OpenCV's ``DISOpticalFlow``.

    Tuned by measurement (issue 16; figures in docs/recipes.md): the ULTRAFAST preset (8-px patches, stride 4,
    12 gradient-descent iterations, no variational refinement) refined down to full resolution (finest scale
    0), at ~14 ms per 427x240 pair on one core against ~42 ms for the MEDIUM preset at scale 0 (the previous
    default; the variational refinement is two thirds of its time). Its end-point error stays within 0.015 px
    of MEDIUM's: better on finely textured clean motion (mean 0.028 vs 0.035 px over the test fixtures),
    worse on the smoother, zoomed bench clip (0.024 vs 0.018; with sigma = 2 noise 0.042 vs 0.029), all
    far below the 1-px thresholds the flow feeds. The time saved pays for the backward flow that the
    forward-backward check needs. The finest scale stays 0: stopping one level above (OpenCV's own default)
    over-estimates a 0.37 px shift by ~0.08 px (EPE 0.11). No setting stops DIS from inventing motion on
    textureless patches (median 2-3 px on flat grey with sigma = 1 noise, with or without the refinement):
    that is :mod:`blursynth.flow.measure`'s job.

    Args:
        preset: ``ultrafast``, ``fast`` or ``medium``.
        finest_scale: pyramid level where refinement stops (0 = full resolution).
    """

    name = "dis"
    _PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, *, preset: str = "ultrafast", finest_scale: int = 0) -> None:
        self._dis = cv2.DISOpticalFlow_create(self._PRESETS[preset])
        self._dis.setFinestScale(int(finest_scale))

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hw_to_chw(self._dis.calc(a, b, None))


class DeepFlow(FlowBackend):
    """DeepFlow (Weinzaepfel et al. 2013) from OpenCV contrib's ``optflow`` module; accurate and slow
    (~0.2 s per 427x240 pair). LODE/BladeNet computed its blurred-area statistics with it."""

    name = "deepflow"

    def __init__(self) -> None:
        optflow = getattr(cv2, "optflow", None)
        if optflow is None or not hasattr(optflow, "createOptFlow_DeepFlow"):
            raise MissingDependencyError(
                "--flow deepflow needs OpenCV's contrib modules: pip install opencv-contrib-python-headless "
                "(and uninstall opencv-python, which shadows it)"
            )
        self._flow = optflow.createOptFlow_DeepFlow()

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hw_to_chw(self._flow.calc(a, b, None))


class FarnebackFlow(FlowBackend):
    """Farneback's polynomial-expansion flow (OpenCV core), a dependable classic baseline."""

    name = "farneback"

    def __init__(self, *, levels: int = 3, winsize: int = 15, iterations: int = 3) -> None:
        self._args = (0.5, int(levels), int(winsize), int(iterations), 5, 1.2, 0)

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hw_to_chw(cv2.calcOpticalFlowFarneback(a, b, None, *self._args))
