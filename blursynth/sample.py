"""The one sample type every recipe produces and every writer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """A blurry/sharp training pair.

    Attributes:
        blur: (H, W, 3) uint8 RGB, the CRF-correct average of the window.
        sharp: (H, W, 3) uint8 RGB, the window's middle frame, bit-exact.
        meta: JSON-serialisable description (source, frames, center, n_frames, fps, crf, gamma, recipe, seed...).
        extras: optional named arrays for particular layouts or recipes, e.g. ``blur_linear`` (the
            linear-CRF average written as ``blur/`` in the GOPRO tree), ``mask``, ``blur_map``.
        static: whether nothing moved in the window, when the recipe decided it before a stage that changes the
            blurry image anyway (the camera's noise, issue 19); None: the sink compares ``blur`` with ``sharp``.
    """

    blur: np.ndarray
    sharp: np.ndarray
    meta: dict
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    static: bool | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.blur.shape[0]), int(self.blur.shape[1])
