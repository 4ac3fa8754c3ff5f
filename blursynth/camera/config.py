"""The camera model's settings and seeds (no torch import: the CLI and the configs validate with it).

``CameraConfig`` defaults are RSBlur's (Rim et al., ECCV 2022; ``Uformer-RSBlur/dataset/dataset_RealisticDeblur.py``):
alpha ~ U(0.25, 1.75), red gain ~ U(1.9, 2.4), blue gain ~ U(1.5, 1.9), the four Bayer patterns, and the RealBlur
noise estimate beta1 = 8.8915e-05, beta2 = 2.9430e-05, each drawn from U(0.5 b, 1.5 b). docs/realism.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from blursynth.camera.matrices import CAMERA_MATRICES
from blursynth.errors import ConfigError
from blursynth.seeding import derive_seed

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
CAMERAS = ("none", "rsblur")


def _range(name: str, value, low: float, high: float | None = None, positive: bool = False) -> tuple[float, float]:
    """``value`` as a float pair ``low <= lo <= hi <= high`` (``positive``: ``lo > low`` instead)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"camera {name}: expected a (low, high) pair, got {value!r}") from None
    if not ((lo > low if positive else low <= lo) and lo <= hi and (high is None or hi <= high)):
        bound = f"[{low}, {high}]" if high is not None else (f"> {low}" if positive else f">= {low}")
        raise ConfigError(f"camera {name}: expected low <= high within {bound}, got ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True)
class CameraConfig:
    """The RSBlur camera pipeline's settings (each stage can be switched off).

    Attributes:
        saturation: add ``alpha * sat`` to the linear image (then clip to 1), ``alpha ~ U(*alpha)``.
        noise: Poisson-Gaussian noise on the RAW mosaic; ``beta1``, ``beta2`` are RSBlur's RealBlur estimate,
            each drawn per sample from ``U(lo * b, hi * b)`` with ``(lo, hi) = noise_range``.
        matrices: names from ``CAMERA_MATRICES`` (``()`` = all shipped), one drawn per sample.
        patterns: Bayer patterns, one drawn per sample; red_gain, blue_gain: white-balance gain ranges.
        mosaic: False leaves out the Bayer mosaic and the demosaic (the noise goes on camera RGB).
        jpeg: JPEG quality range (inclusive), None = no JPEG; h264_crf: H.264 round trip at this CRF, or None.
    """

    saturation: bool = True
    alpha: tuple[float, float] = (0.25, 1.75)
    noise: bool = True
    beta1: float = 8.8915e-05
    beta2: float = 2.9430e-05
    noise_range: tuple[float, float] = (0.5, 1.5)
    matrices: tuple[str, ...] = ()
    patterns: tuple[str, ...] = PATTERNS
    red_gain: tuple[float, float] = (1.9, 2.4)
    blue_gain: tuple[float, float] = (1.5, 1.9)
    mosaic: bool = True
    jpeg: tuple[int, int] | None = None
    h264_crf: int | None = None

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen: normalise once
        fix("alpha", _range("alpha", self.alpha, 0.0))
        # a zero noise scale or beta1 would divide by zero in the shot noise (signal / beta1): refused
        fix("noise_range", _range("noise range", self.noise_range, 0.0, positive=True))
        fix("red_gain", _range("red gain", self.red_gain, 1e-3))
        fix("blue_gain", _range("blue gain", self.blue_gain, 1e-3))
        for name, strict in (("beta1", True), ("beta2", False)):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                raise ConfigError(f"camera {name}: expected a number, got {getattr(self, name)!r}") from None
            if not (value > 0 if strict else value >= 0) or value == float("inf"):
                need = "a positive shot-noise gain" if strict else "a non-negative read-noise level"
                raise ConfigError(f"camera {name}: expected {need}, got {getattr(self, name)!r}")
            fix(name, value)
        fix("matrices", tuple(self.matrices))
        unknown = [m for m in self.matrices if m not in CAMERA_MATRICES]
        if unknown:
            raise ConfigError(f"camera matrices: unknown {unknown[0]!r} (expected some of "
                              f"{', '.join(CAMERA_MATRICES)})")
        fix("patterns", tuple(self.patterns))
        if not self.patterns or any(p not in PATTERNS for p in self.patterns):
            raise ConfigError(f"camera patterns: expected some of {', '.join(PATTERNS)}, got {self.patterns!r}")
        if self.jpeg is not None:
            lo, hi = _range("jpeg", self.jpeg, 1, 100)
            if lo != int(lo) or hi != int(hi):
                raise ConfigError(f"camera jpeg: expected integer qualities, got {self.jpeg!r}")
            fix("jpeg", (int(lo), int(hi)))
        if self.h264_crf is not None and not (isinstance(self.h264_crf, int) and 0 <= self.h264_crf <= 51):
            raise ConfigError(f"camera h264 crf: expected an integer in [0, 51], got {self.h264_crf!r}")

    @property
    def matrix_names(self) -> tuple[str, ...]:
        return self.matrices or tuple(CAMERA_MATRICES)


def camera_config(name: str, **overrides) -> CameraConfig | None:
    """``none`` -> None; ``rsblur`` -> ``CameraConfig(**overrides)``; anything else is a ConfigError."""
    if name not in CAMERAS:
        raise ConfigError(f"--camera: expected none or rsblur, got {name!r}")
    fields = {f.name for f in dataclasses.fields(CameraConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"camera: unknown setting {unknown[0]!r} (expected some of {', '.join(sorted(fields))})")
    if name == "none":
        return None
    return CameraConfig(**overrides)


def camera_seed(seed: int, *key) -> int:
    """The seed of one draw: ``derive_seed(seed, "camera", *key) >> 11``; key = (sample key,) at generation,
    (epoch, index) in the reader. 53 bits, so that ``meta["camera"]["seed"]`` is exact in every JSON reader
    (JavaScript, ``jq``, float64 parsers), not only in Python."""
    return derive_seed(seed, "camera", *key) >> 11
