"""Frozen configuration objects and the recipe preset table.

A recipe is a named set of defaults. Options the user gives explicitly override the preset. The table is
meant to grow: the WILD recipe (Noroozi et al.) adds downsampling and flow filtering in a later issue.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import KW_ONLY, dataclass

from blursynth.errors import ConfigError
from blursynth.run.executors import ExecutorOptions


@dataclass(frozen=True)
class RecipePreset:
    """Defaults of one dataset recipe.

    Attributes:
        name: recipe name as typed on the command line.
        frames: inclusive (min, max) odd number of frames averaged per sample.
        stride: frames between window starts; None means non-overlapping, back-to-back windows.
        crf: camera response model.
        gamma: exponent of the gamma CRF.
        citation: where the numbers come from.
        downsample: integer factor frames are shrunk by (area interpolation) before linearising.
        flow: optical-flow method of the window filter, or None for no filter.
        flow_threshold: largest per-pair flow statistic (pixels, after downsampling) a kept window may have.
        blur_map: store the per-pixel blur length (needs flow).
    """

    name: str
    frames: tuple[int, int]
    stride: int | None
    crf: str
    gamma: float
    citation: str
    downsample: int = 1
    flow: str | None = None
    flow_threshold: float | None = None
    blur_map: bool = False


RECIPES: dict[str, RecipePreset] = {
    # Nah et al. 2017, Sec. 2: 240 fps GoPro, "averaged varying number (7 - 13) of successive latent frames",
    # CRF approximated by a gamma curve with gamma = 2.2; the sharp image is the mid-frame.
    "gopro": RecipePreset("gopro", (7, 13), None, "gamma", 2.2, "Nah et al. 2017, Sec. 2"),
    # LODE (BladeNet) Sec. 3: "an odd number randomly sampled from 7 to 13 ... mid-frame as ground truth",
    # CRF calibrated following Nah et al.
    "lode": RecipePreset("lode", (7, 13), None, "gamma", 2.2, "LODE/BladeNet, Sec. 3"),
    # Noroozi et al. 2017, Sec. 2: 240 fps GoPro, "downsample all the frames ... by a factor of 3", "randomly
    # picking an odd number between 7 and 23", central frame sharp, "only frames where optical flow is no more
    # than 1 pixel". They used FlowNet; DIS is our CPU default (see docs/recipes.md).
    "wild": RecipePreset("wild", (7, 23), None, "gamma", 2.2, "Noroozi et al. 2017, Sec. 2",
                         downsample=3, flow="dis", flow_threshold=1.0, blur_map=True),
}

FLOW_NAMES = ("dis", "deepflow", "farneback", "raft")
FLOW_STAT_NAMES = ("p99", "max", "mean")
RAFT_MODELS = ("small", "large")
#: Default frame-matching error (RMS gray levels, 8-bit) above which a pair's flow is deemed unreliable.
DEFAULT_MAX_MATCH_ERROR = 12.0

CRF_NAMES = ("gamma", "srgb", "linear")
LAYOUTS = ("h5", "gopro")
COMPRESSIONS = ("lzf", "gzip")
BACKENDS = ("auto", "stream", "torch")


def parse_frames(text: str) -> tuple[int, int]:
    """Parse ``--frames``: ``"9"`` or an odd range ``"7-13"``.

    Raises:
        ConfigError: when the text is not a number or range, a bound is even or < 1, or the range is reversed.
    """
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:[-:]\s*(-?\d+)\s*)?", str(text))
    if not match:
        raise ConfigError(f"--frames: expected an odd number like 9 or an odd range like 7-13, got {text!r}")
    lo = int(match.group(1))
    hi = int(match.group(2)) if match.group(2) is not None else lo
    if lo < 1 or hi < 1:
        raise ConfigError(f"--frames: frame counts must be at least 1, got {text!r}")
    if lo > hi:
        raise ConfigError(f"--frames: range is reversed ({lo} > {hi}); write it as {hi}-{lo}")
    if lo % 2 == 0 or hi % 2 == 0:
        raise ConfigError(
            f"--frames: frame counts must be odd so that a middle frame exists, got {text!r}"
        )
    return lo, hi


def parse_layout(text: str) -> tuple[str, ...]:
    """Parse ``--layout h5``, ``gopro`` or ``h5,gopro``."""
    parts = tuple(dict.fromkeys(p.strip().lower() for p in str(text).split(",") if p.strip()))
    bad = [p for p in parts if p not in LAYOUTS]
    if not parts or bad:
        raise ConfigError(f"--layout: expected one or more of {', '.join(LAYOUTS)}, got {text!r}")
    return parts


class _Fingerprinted:
    """``fingerprint()`` (the ``OUTPUT_FIELDS`` that determine the output bytes) and ``to_dict()``, both
    JSON-serialisable, for the frozen configs of commands that write datasets."""

    OUTPUT_FIELDS: tuple[str, ...] = ()

    def fingerprint(self) -> dict:
        """The settings that determine the output bytes (JSON-serialisable)."""
        data = dataclasses.asdict(self)
        return {k: _jsonable(data[k]) for k in self.OUTPUT_FIELDS}

    def to_dict(self) -> dict:
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ExecutionFields:
    """Where the work units run (``--executor``, ``--workers``, ``--ray-address``, ``--retries``).

    Keyword-only, never in a fingerprint: they change how fast a dataset is made, never its bytes.
    """

    _: KW_ONLY
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    retries: int = 2

    def executor_options(self, device: str = "cpu") -> ExecutorOptions:
        """The options for :func:`blursynth.run.executors.run_units`; Ray tasks ask for a GPU on CUDA."""
        return ExecutorOptions(self.executor, self.workers, self.ray_address, self.retries,
                               num_gpus=1.0 if str(device).startswith("cuda") else 0.0)


@dataclass(frozen=True)
class OutputFields:
    """The settings every dataset-writing command shares (checked by :func:`check_output_options`).

    Keyword-only, so each command's own positional fields (inputs, OUT) come first.
    """

    _: KW_ONLY
    crf: str = "gamma"
    gamma: float = 2.2
    seed: int = 0
    val_fraction: float = 0.0
    shard_size: int = 100
    layout: tuple[str, ...] = ("h5",)
    compression: str | None = None
    device: str = "auto"
    backend: str = "auto"
    overwrite: bool = False


@dataclass(frozen=True)
class AverageConfig(OutputFields, ExecutionFields, _Fingerprinted):
    """Fully resolved configuration of ``blursynth average``.

    Fields listed in ``OUTPUT_FIELDS`` determine the produced bytes; they form the fingerprint that an
    existing output folder must match to be resumed.
    """

    inputs: tuple[str, ...]
    out: str
    recipe: str = "gopro"
    frames: tuple[int, int] = (7, 13)
    stride: int | None = None
    max_per_source: int | None = None
    fps: float | None = None
    batch_frames: int = 16
    downsample: int = 1
    flow: str | None = None
    flow_threshold: float | None = None
    flow_stat: str = "p99"
    max_match_error: float | None = None
    max_step_px: float | None = None
    blur_map: bool = False
    raft_model: str = "small"
    raft_weights: str | None = None

    OUTPUT_FIELDS = (
        "recipe", "frames", "stride", "max_per_source", "crf", "gamma", "seed", "val_fraction",
        "shard_size", "layout", "compression", "fps", "downsample", "flow", "flow_threshold", "flow_stat",
        "max_match_error", "max_step_px", "blur_map", "raft_model", "raft_weights",
    )

    @property
    def uses_flow(self) -> bool:
        """Whether windows are selected online from optical flow (and flow is computed at all)."""
        return self.flow is not None

    def __post_init__(self) -> None:
        check_average_config(self)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def resolve_recipe(recipe: str, **overrides) -> dict:
    """Merge a recipe preset with explicit overrides (None means 'not given').

    ``flow="none"`` switches a preset's flow filter off. A filter (``flow_threshold``), a ghosting guard
    (``max_step_px``) or a blur map needs flow: when no method is chosen, DIS is used. With flow on and no
    ``max_match_error`` given, the documented default applies.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"--recipe: unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    preset = RECIPES[recipe]
    values = {
        "frames": preset.frames, "stride": preset.stride, "crf": preset.crf, "gamma": preset.gamma,
        "downsample": preset.downsample, "flow": preset.flow, "flow_threshold": preset.flow_threshold,
        "blur_map": preset.blur_map,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    if values.get("flow") == "none":
        if given.get("flow_threshold") is not None:
            raise ConfigError("--flow-threshold needs optical flow, but --flow none was given")
        if given.get("blur_map"):
            raise ConfigError("--blur-map needs optical flow, but --flow none was given")
        if given.get("max_step_px") is not None:
            raise ConfigError("--max-step-px needs optical flow, but --flow none was given")
        values.update(flow=None, flow_threshold=None, blur_map=False)
    elif values.get("flow") is None and (
        values.get("flow_threshold") is not None or values.get("max_step_px") is not None or values.get("blur_map")
    ):
        values["flow"] = "dis"
    if values.get("flow") is not None and values.get("max_match_error") is None:
        values["max_match_error"] = DEFAULT_MAX_MATCH_ERROR
    return values


def check_output_options(cfg) -> None:
    """The checks every dataset-writing command shares: CRF, splits, shards, compression, layout, backend,
    executor."""
    if cfg.crf not in CRF_NAMES:
        raise ConfigError(f"--crf: expected one of {', '.join(CRF_NAMES)}, got {cfg.crf!r}")
    if not (0.1 <= cfg.gamma <= 10.0):
        raise ConfigError(f"--gamma: expected a value in [0.1, 10], got {cfg.gamma}")
    if not (0.0 <= cfg.val_fraction < 1.0):
        raise ConfigError(f"--val-fraction: expected a value in [0, 1), got {cfg.val_fraction}")
    if cfg.shard_size < 1:
        raise ConfigError(f"--shard-size: expected a positive number of samples, got {cfg.shard_size}")
    if cfg.compression not in (None, *COMPRESSIONS):
        raise ConfigError(f"--compression: expected one of {', '.join(COMPRESSIONS)}, got {cfg.compression!r}")
    parse_layout(",".join(cfg.layout))
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    cfg.executor_options().check()


def check_average_config(cfg: AverageConfig) -> None:
    """Named checks with messages that say what was expected and what was found."""
    if not cfg.inputs:
        raise ConfigError("no INPUT given: pass at least one video, video folder or frame folder")
    lo, hi = cfg.frames
    if lo < 1 or hi < lo or lo % 2 == 0 or hi % 2 == 0:
        raise ConfigError(f"--frames: expected an odd range with 1 <= min <= max, got {lo}-{hi}")
    if cfg.stride is not None and cfg.stride < 1:
        raise ConfigError(f"--stride: expected a positive number of frames, got {cfg.stride}")
    if cfg.max_per_source is not None and cfg.max_per_source < 1:
        raise ConfigError(f"--max-per-source: expected a positive number, got {cfg.max_per_source}")
    check_output_options(cfg)
    if cfg.fps is not None and not (0 < cfg.fps <= 100_000):
        raise ConfigError(f"--fps: expected a frame rate in (0, 100000], got {cfg.fps}")
    if cfg.batch_frames < 1:
        raise ConfigError(f"--batch-frames: expected a positive number, got {cfg.batch_frames}")
    if cfg.downsample < 1:
        raise ConfigError(f"--downsample: expected an integer factor >= 1, got {cfg.downsample}")
    if cfg.flow is not None and cfg.flow not in FLOW_NAMES:
        raise ConfigError(f"--flow: expected one of {', '.join(FLOW_NAMES)} or none, got {cfg.flow!r}")
    if cfg.flow_stat not in FLOW_STAT_NAMES:
        raise ConfigError(f"--flow-stat: expected one of {', '.join(FLOW_STAT_NAMES)}, got {cfg.flow_stat!r}")
    for name, value in (("--flow-threshold", cfg.flow_threshold), ("--max-step-px", cfg.max_step_px),
                        ("--max-match-error", cfg.max_match_error)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name}: expected a positive number of pixels/levels, got {value}")
    if cfg.flow is None and (cfg.flow_threshold is not None or cfg.max_step_px is not None or cfg.blur_map):
        raise ConfigError("--flow-threshold, --max-step-px and --blur-map need a --flow method")
    if cfg.raft_model not in RAFT_MODELS:
        raise ConfigError(f"--raft-model: expected one of {', '.join(RAFT_MODELS)}, got {cfg.raft_model!r}")
    if cfg.raft_weights is not None and cfg.flow != "raft":
        raise ConfigError(f"--raft-weights is only used with --flow raft (got --flow {cfg.flow or 'none'})")


# -- blursynth local ---------------------------------------------------------------------------------------
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def parse_range(text: str, option: str, *, integer: bool = False) -> tuple[float, float]:
    """Parse a value ``"2"`` or an inclusive range ``"0-2"`` / ``"-3:3"`` / ``"0.97:1.03"``.

    ``:`` always separates the bounds; ``-`` does too when both bounds are non-negative numbers without a
    sign (``0-2``), so negative bounds must use ``:`` (``-3:3``).

    Raises:
        ConfigError: not a number or range, not an integer where one is needed, or reversed bounds.
    """
    s = str(text).strip()
    m = re.fullmatch(rf"({_NUMBER})\s*(?::\s*({_NUMBER}))?", s) or re.fullmatch(
        r"(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)", s)
    kind = "integer" if integer else "number"
    if not m:
        raise ConfigError(f"{option}: expected a {kind} or a range like 1:6, got {text!r}")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else lo
    if integer and (lo != int(lo) or hi != int(hi)):
        raise ConfigError(f"{option}: expected whole numbers, got {text!r}")
    if lo > hi:
        raise ConfigError(f"{option}: range is reversed ({m.group(1)} > {m.group(2)})")
    return (int(lo), int(hi)) if integer else (lo, hi)


def parse_size(text: str, option: str = "--crop") -> tuple[int, int]:
    """Parse ``HxW`` (``720x1280``) into ``(height, width)``."""
    m = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*", str(text))
    if not m:
        raise ConfigError(f"{option}: expected HEIGHTxWIDTH like 256x256, got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h < 1 or w < 1:
        raise ConfigError(f"{option}: height and width must be positive, got {text!r}")
    return h, w


@dataclass(frozen=True)
class LocalConfig(OutputFields, ExecutionFields, _Fingerprinted):
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
    """

    backgrounds: tuple[str, ...]
    out: str
    voc: str | None = None
    voc_split: str = "trainval"
    coco: str | None = None
    coco_images: str | None = None
    coco_categories: tuple[str, ...] | None = None
    num_samples: int = 1000
    moving_objects: int = 2
    static_objects: tuple[int, int] = (0, 2)
    object_scale: float = 1.2
    min_object_area: float = 400.0
    frames: tuple[int, int] = (7, 13)
    translate: tuple[float, float] = (1.0, 6.0)
    scale: tuple[float, float] = (0.97, 1.03)
    rotate: tuple[float, float] = (-3.0, 3.0)
    crop: tuple[int, int] | None = None

    OUTPUT_FIELDS = (
        "backend", "voc", "voc_split", "coco", "coco_images", "coco_categories", "num_samples", "moving_objects",
        "static_objects", "object_scale", "min_object_area", "frames", "translate", "scale", "rotate", "crop",
        "crf", "gamma", "seed", "val_fraction", "shard_size", "layout", "compression",
    )
    recipe = "local"

    def __post_init__(self) -> None:
        check_local_config(self)


def check_local_config(cfg: LocalConfig) -> None:
    """Named checks of ``blursynth local`` options."""
    if not cfg.backgrounds:
        raise ConfigError("--bg: give at least one background folder (REDS train_sharp works as is)")
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
    check_output_options(cfg)
