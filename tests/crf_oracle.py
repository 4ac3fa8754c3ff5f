"""Float64 textbook camera responses, written independently of ``blursynth.ops.crf``: the oracle of the CRF
and compositing tests. Keys: ``gamma<g>`` (``gamma2.2``), ``srgb`` (IEC 61966-2-1) or ``linear``."""

from __future__ import annotations

import numpy as np

from blursynth.ops.crf import create_crf

#: The responses the tests cover, by key.
CRFS = {"gamma2.2": create_crf("gamma", 2.2), "gamma1.8": create_crf("gamma", 1.8), "srgb": create_crf("srgb"),
        "linear": create_crf("linear")}


def ref_decode(key: str, c: np.ndarray) -> np.ndarray:
    """Encoded [0, 1] -> linear light, float64."""
    c = np.asarray(c, dtype=np.float64)
    if key.startswith("gamma"):
        return c ** float(key[5:])
    if key == "srgb":
        return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c


def ref_encode(key: str, y: np.ndarray) -> np.ndarray:
    """Linear light -> encoded [0, 1], float64, clipped to [0, 1] like any CRF."""
    y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
    if key.startswith("gamma"):
        return y ** (1.0 / float(key[5:]))
    if key == "srgb":
        return np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)
    return y
