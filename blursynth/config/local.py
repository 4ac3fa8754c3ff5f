"""Configuration of ``blursynth local`` (local blur synthesis, LODE/BladeNet Sec. 4.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from blursynth.config.camera import CameraFields, check_camera_options
from blursynth.config.fields import ExecutionFields, Fingerprinted, OutputFields, check_output_options, output_field
from blursynth.errors import ConfigError


@dataclass(frozen=True)
class LocalConfig(OutputFields, CameraFields, ExecutionFields, Fingerprinted):
    """Fully resolved configuration of ``blursynth local`` (local blur synthesis, LODE/BladeNet Sec. 4.1).

    Attributes (beyond those shared with :class:`AverageConfig`):
        voc, voc_split: PASCAL VOC 2012 root and segmentation split of the object bank.
        coco, coco_images, coco_categories: COCO instances JSON, its image folder, category names to keep.
        backgrounds: folders (or images) searched recursively for sharp backgrounds.
        num_samples: samples to synthesise (train + val).
        moving_objects: moving objects per sample (LODE: 2).
        static_objects: inclusive range of static objects per sample.
        object_scale: factor applied to every object patch (LODE: 1.2).
        min_object_area: smallest object kept in the bank, in pixels of alpha mass.
        translate: range of an object's speed, pixels per step (direction uniform over 360 degrees).
        scale: range of an object's scale factor per step (log-uniform, so approaching and receding balance).
        rotate: range of an object's rotation per step, degrees (positive = counter-clockwise on screen).
        crop: optional (height, width) crop of every background; None uses backgrounds whole.
        backend: renderer: ``stream`` (OpenCV, CPU), ``torch`` (batched on ``device``) or ``auto`` (torch on
            CUDA, stream otherwise). The two differ by at most 1 LSB on object edges, so the resolved
            backend is part of the fingerprint.
        substeps: sub-steps K per trajectory step (continuous exposure, issue 18): the N frames become
            ``(N - 1) K + 1`` equally weighted samples of the same trajectory; ``"auto"`` picks per sample the
            smallest K (at most ``trajectories.AUTO_SUBSTEPS_CAP``) with which no point of a moving object moves
            more than 1 px between samples; the default since revision 2 of ``local`` (issue 18). 1 renders the
            N frames only: revision 1's discrete copies.
        duty_cycle: tau in (0, 1] (issue 18): the exposure covers the centred fraction tau of the N - 1 steps,
            ``[c - tau (N - 1) / 2, c + tau (N - 1) / 2]``, still M = (N - 1) K + 1 samples (off the poses even
            at K = 1); the middle sample stays the sharp frame. 1 (the default) leaves outputs as they were.
    """

    backgrounds: tuple[str, ...]
    out: str
    voc: str | None = output_field(None)
    voc_split: str = output_field("trainval")
    coco: str | None = output_field(None)
    coco_images: str | None = output_field(None)
    coco_categories: tuple[str, ...] | None = output_field(None)
    num_samples: int = output_field(1000)
    moving_objects: int = output_field(2)
    static_objects: tuple[int, int] = output_field((0, 2))
    object_scale: float = output_field(1.2)
    min_object_area: float = output_field(400.0)
    frames: tuple[int, int] = output_field((7, 13))
    translate: tuple[float, float] = output_field((1.0, 6.0))
    scale: tuple[float, float] = output_field((0.97, 1.03))
    rotate: tuple[float, float] = output_field((-3.0, 3.0))
    crop: tuple[int, int] | None = output_field(None)
    # The stream and torch renderers differ by up to 1 LSB on object edges: the backend is fingerprinted here.
    backend: str = output_field("auto", kw_only=True)
    # Issue 18: a continuous exposure by default (REVISIONS["local"] 2, so always in the fingerprint); 1 renders
    # the N discrete frames of revision 1.
    substeps: int | str = output_field("auto", kw_only=True)
    # Issue 18: added after revision 2's outputs; 1 reproduces them, so it stays out of their fingerprint.
    duty_cycle: float = output_field(1.0, omit_default=True, kw_only=True)
    recipe = "local"

    def __post_init__(self) -> None:
        check_local_config(self)


def check_local_config(cfg: LocalConfig) -> None:
    """Named checks of ``blursynth local`` options."""
    if not cfg.backgrounds:
        raise ConfigError("--bg: give at least one background folder (REDS train_sharp works as is)")
    check_camera_options(cfg)
    if cfg.voc is None and cfg.coco is None:
        raise ConfigError("no objects: pass --voc VOC2012 and/or --coco instances.json --coco-images DIR")
    if (cfg.coco is None) != (cfg.coco_images is None):
        raise ConfigError("--coco and --coco-images go together: the JSON and the folder of its images")
    if cfg.coco_categories is not None and cfg.coco is None:
        raise ConfigError("--coco-categories needs --coco")
    if cfg.voc_split not in ("train", "val", "trainval"):
        raise ConfigError(f"--voc-split: expected train, val or trainval, got {cfg.voc_split!r}")
    if cfg.num_samples < 1:
        raise ConfigError(f"--num-samples: expected a positive number, got {cfg.num_samples}")
    if cfg.moving_objects < 1:
        raise ConfigError(f"--moving-objects: expected at least 1, got {cfg.moving_objects}")
    lo, hi = cfg.static_objects
    if lo < 0 or hi < lo:
        got = str(lo) if lo == hi else f"{lo}:{hi}"
        raise ConfigError(f"--static-objects: expected a count >= 0 or a range like 0-2, got {got}")
    if not (0.05 <= cfg.object_scale <= 20):
        raise ConfigError(f"--object-scale: expected a factor in [0.05, 20], got {cfg.object_scale}")
    if not (0 <= cfg.min_object_area < math.inf):
        raise ConfigError(f"--min-object-area: expected pixels >= 0, got {cfg.min_object_area}")
    lo, hi = cfg.frames
    if lo < 3 or hi < lo or lo % 2 == 0 or hi % 2 == 0:
        raise ConfigError(f"--frames: expected an odd range with 3 <= min <= max, got {lo}-{hi}")
    if cfg.translate[0] < 0:
        raise ConfigError(f"--translate: speeds are magnitudes in px per step (>= 0), got {cfg.translate}")
    if cfg.scale[0] <= 0:
        raise ConfigError(f"--scale: expected positive per-step factors like 0.97:1.03, got {cfg.scale}")
    if max(abs(cfg.rotate[0]), abs(cfg.rotate[1])) > 90:
        raise ConfigError(f"--rotate: expected degrees per step within [-90, 90], got {cfg.rotate}")
    if cfg.crop is not None and (cfg.crop[0] < 1 or cfg.crop[1] < 1):
        raise ConfigError(f"--crop: height and width must be positive, got {cfg.crop}")
    if cfg.substeps != "auto" and (isinstance(cfg.substeps, bool) or not isinstance(cfg.substeps, int)
                                   or cfg.substeps < 1):
        raise ConfigError(f"--substeps: expected a whole number >= 1 or auto, got {cfg.substeps!r}")
    if isinstance(cfg.duty_cycle, bool) or not isinstance(cfg.duty_cycle, (int, float)) \
            or not 0.0 < cfg.duty_cycle <= 1.0:  # NaN fails the comparison too
        raise ConfigError(f"--duty-cycle: expected a fraction 0 < tau <= 1, got {cfg.duty_cycle!r}")
    check_output_options(cfg)


def parse_substeps(text: str) -> int | str:
    """``--substeps`` as given on the command line: ``auto`` or a whole number (checked by the config)."""
    text = text.strip()
    if text.lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--substeps: expected a whole number >= 1 or auto, got {text!r}") from None
