"""The camera settings shared by ``average`` and ``local`` (issue 19): ``--camera`` and its ``--camera-...`` stages.

Every field is an output field left out of the fingerprint at its default, so a run without ``--camera`` keeps
the fingerprint (and the bytes) of earlier versions, and a resumed run with other camera options is refused
like any other change of output settings. The fields map onto ``blursynth.camera.CameraConfig``
(:meth:`CameraFields.camera_overrides`); the names of colour matrices are checked against the shipped table
when the pipeline is built (``recipes/camera.py``), so this layer imports nothing of the camera package.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

from blursynth.config.fields import output_field
from blursynth.errors import ConfigError

#: ``--camera`` values: no camera (the averaged image as it is) or the RSBlur pipeline (Rim et al. 2022).
CAMERA_NAMES = ("none", "rsblur")
#: Bayer patterns of ``--camera-bayer``.
BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(frozen=True)
class CameraFields:
    """``--camera``, ``--sat-mask`` and the stages of the camera pipeline (None: the pipeline's default).

    Attributes:
        camera: ``none`` or ``rsblur``.
        sat_mask: store ``sat_mask`` without the camera too (with it, it is always stored).
        camera_saturation: the saturation stage (blur + alpha * sat_mask).
        camera_noise: the Poisson-Gaussian noise on the RAW mosaic.
        camera_noise_scale: (lo, hi): beta1 and beta2 are drawn from U(lo * beta, hi * beta).
        camera_matrices: names of the colour matrices one is drawn from per sample.
        camera_bayer: Bayer patterns one is drawn from per sample.
        camera_mosaic: mosaic and demosaic (off: noise on the camera RGB image).
        camera_jpeg: (lo, hi) inclusive JPEG quality range, or None for no JPEG.
        camera_h264_crf: H.264 CRF of an encode/decode round trip, or None.
    """

    _: KW_ONLY
    camera: str = output_field("none", omit_default=True)
    sat_mask: bool = output_field(False, omit_default=True)
    camera_saturation: bool = output_field(True, omit_default=True)
    camera_noise: bool = output_field(True, omit_default=True)
    camera_noise_scale: tuple[float, float] | None = output_field(None, omit_default=True)
    camera_matrices: tuple[str, ...] | None = output_field(None, omit_default=True)
    camera_bayer: tuple[str, ...] | None = output_field(None, omit_default=True)
    camera_mosaic: bool = output_field(True, omit_default=True)
    camera_jpeg: tuple[int, int] | None = output_field(None, omit_default=True)
    camera_h264_crf: int | None = output_field(None, omit_default=True)

    @property
    def camera_on(self) -> bool:
        return self.camera != "none"

    @property
    def records_saturation(self) -> bool:
        """Whether samples carry ``sat_mask``: asked for, or needed by the camera's saturation stage."""
        return self.sat_mask or self.camera_on

    def to_dict(self) -> dict:
        """The config as the manifest records it, with ``sat_mask`` as stored: true whenever samples carry it
        (``--camera`` stores it without ``--sat-mask``). The fingerprint keeps the option as given."""
        return super().to_dict() | {"sat_mask": self.records_saturation}

    def camera_overrides(self) -> dict:
        """The ``CameraConfig`` fields these options set (the others keep the pipeline's defaults)."""
        out: dict = {}
        if not self.camera_saturation:
            out["saturation"] = False
        if not self.camera_noise:
            out["noise"] = False
        if self.camera_noise_scale is not None:
            out["noise_range"] = tuple(self.camera_noise_scale)
        if self.camera_matrices is not None:
            out["matrices"] = tuple(self.camera_matrices)
        if self.camera_bayer is not None:
            out["patterns"] = tuple(self.camera_bayer)
        if not self.camera_mosaic:
            out["mosaic"] = False
        if self.camera_jpeg is not None:
            out["jpeg"] = tuple(self.camera_jpeg)
        if self.camera_h264_crf is not None:
            out["h264_crf"] = self.camera_h264_crf
        return out


#: Option names of the stage fields, for the messages.
_OPTION_NAMES = {
    "camera_saturation": "--no-camera-saturation", "camera_noise": "--no-camera-noise",
    "camera_noise_scale": "--camera-noise-scale", "camera_matrices": "--camera-matrix",
    "camera_bayer": "--camera-bayer", "camera_mosaic": "--no-camera-mosaic", "camera_jpeg": "--camera-jpeg",
    "camera_h264_crf": "--camera-h264-crf",
}


def check_camera_options(cfg: CameraFields) -> None:
    """One-line errors for bad camera options (matrix names are checked when the pipeline is built)."""
    if cfg.camera not in CAMERA_NAMES:
        raise ConfigError(f"--camera: expected one of {', '.join(CAMERA_NAMES)}, got {cfg.camera!r}")
    if not cfg.camera_on:
        for name, option in _OPTION_NAMES.items():
            if getattr(cfg, name) != CameraFields.__dataclass_fields__[name].default:
                raise ConfigError(f"{option} sets a stage of the camera pipeline: it needs --camera rsblur")
        return
    if cfg.camera_noise_scale is not None:
        lo, hi = cfg.camera_noise_scale
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
            got = f"{lo:g}" if lo == hi else f"{lo:g},{hi:g}"
            raise ConfigError(f"--camera-noise-scale: expected 0 < LO <= HI (factors of RSBlur's beta1 and beta2; "
                              f"0 would divide by a zero gain: use --no-camera-noise for no noise), got {got}")
        if not cfg.camera_noise:
            raise ConfigError("--camera-noise-scale sets the noise levels, but --no-camera-noise turns the noise off")
    if cfg.camera_matrices is not None and not cfg.camera_matrices:
        raise ConfigError("--camera-matrix: expected one or more matrix names, got none")
    if cfg.camera_bayer is not None:
        bad = [p for p in cfg.camera_bayer if p not in BAYER_PATTERNS]
        if bad or not cfg.camera_bayer:
            raise ConfigError(f"--camera-bayer: expected one or more of {', '.join(BAYER_PATTERNS)}, "
                              f"got {','.join(cfg.camera_bayer)!r}")
        if not cfg.camera_mosaic:
            raise ConfigError("--camera-bayer sets the mosaic, but --no-camera-mosaic turns it off")
    if cfg.camera_jpeg is not None:
        lo, hi = cfg.camera_jpeg
        if not (1 <= lo <= hi <= 100):
            got = f"{lo}" if lo == hi else f"{lo},{hi}"
            raise ConfigError(f"--camera-jpeg: expected qualities 1 <= LO <= HI <= 100 (or one quality Q), got {got}")
    if cfg.camera_h264_crf is not None and not (0 <= cfg.camera_h264_crf <= 51):
        raise ConfigError(f"--camera-h264-crf: expected an H.264 CRF in 0..51, got {cfg.camera_h264_crf}")
    if not (cfg.camera_saturation or cfg.camera_noise or cfg.camera_mosaic or cfg.camera_jpeg is not None
            or cfg.camera_h264_crf is not None):
        raise ConfigError("--camera rsblur with --no-camera-saturation, --no-camera-noise and --no-camera-mosaic "
                          "and no --camera-jpeg/--camera-h264-crf changes nothing (the inverse ISP and the ISP "
                          "cancel): keep a stage on, or use --camera none")


def parse_names(text: str | None, option: str, *, upper: bool = False) -> tuple[str, ...] | None:
    """``NAME[,NAME...]`` as a tuple (None when the option is not given)."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(p.strip().upper() if upper else p.strip() for p in str(text).split(",")
                                if p.strip()))
    if not names:
        raise ConfigError(f"{option}: expected one or more names separated by commas, got {text!r}")
    return names


def parse_pair(text: str | None, option: str, *, integer: bool = False) -> tuple | None:
    """``LO,HI`` (or one value, LO = HI) as a tuple (None when the option is not given).

    Raises:
        ConfigError: not one or two numbers (whole numbers with ``integer``) separated by a comma, a bound that
            is not finite, or LO > HI; the message shows the text as given.
    """
    if text is None:
        return None
    kind = "whole numbers" if integer else "numbers"
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts] if len(parts) <= 2 else []
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values) or (integer and any(v != int(v) for v in values)):
        raise ConfigError(f"{option}: expected LO,HI or one value ({kind}), got {text!r}")
    lo, hi = values[0], values[-1]
    if lo > hi:
        raise ConfigError(f"{option}: LO is above HI in {text!r}; write it as {parts[-1]},{parts[0]}")
    return (int(lo), int(hi)) if integer else (lo, hi)
