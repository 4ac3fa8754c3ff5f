"""Configuration of ``blursynth average``: the recipe preset table and the resolved, frozen config.

A recipe is a named set of defaults. Options the user gives explicitly override the preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from blursynth.config.camera import CameraFields, check_camera_options
from blursynth.config.fields import (
    REVISIONS,
    ExecutionFields,
    Fingerprinted,
    OutputFields,
    check_output_options,
    output_field,
)
from blursynth.errors import ConfigError
from blursynth.flow.names import FLOW_NAMES, FLOW_STAT_NAMES, RAFT_MODELS


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
        substeps: sub-steps K per frame interval (continuous exposure); 1 averages the frames only.
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
    substeps: int | str = 1


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
    # Nah et al. 2019 (REDS, CVPRW), Sec. 3: 120 fps footage interpolated x16 to a virtual 1920 fps, 65 virtual
    # frames averaged per blurry frame, one blurry frame per 1/24 s: N = 5 real frames, K = 16, M = 65, stride 5
    # (docs/recipes.md quotes the paper and says where our construction differs).
    "reds": RecipePreset("reds", (5, 5), 5, "gamma", 2.2, "Nah et al. 2019 (REDS), Sec. 3", substeps=16),
}

#: Largest ``--substeps``: 256 sub-steps per frame interval (M = 3073 samples for 13 frames) is far past the
#: point where motion is below 1 px per sample for any footage a flow can follow.
MAX_SUBSTEPS = 256

#: ``--interpolation`` presets (``ops/exposure.INTERPOLATIONS``), the default first.
INTERPOLATION_NAMES = ("balanced", "quality", "fast")

#: Default frame-matching error (RMS gray levels, 8-bit) above which a pair's flow is deemed unreliable.
DEFAULT_MAX_MATCH_ERROR = 12.0


@dataclass(frozen=True)
class AverageConfig(OutputFields, CameraFields, ExecutionFields, Fingerprinted):
    """Fully resolved configuration of ``blursynth average``.

    Fields declared with ``output_field`` determine the produced bytes; they form the fingerprint that an
    existing output folder must match to be resumed.
    """

    inputs: tuple[str, ...]
    out: str
    recipe: str = output_field("gopro")
    frames: tuple[int, int] = output_field((7, 13))
    stride: int | None = output_field(None)
    max_per_source: int | None = output_field(None)
    fps: float | None = output_field(None)
    batch_frames: int = 16
    downsample: int = output_field(1)
    flow: str | None = output_field(None)
    flow_threshold: float | None = output_field(None)
    flow_stat: str = output_field("p99")
    max_match_error: float | None = output_field(None)
    max_step_px: float | None = output_field(None)
    blur_map: bool = output_field(False)
    raft_model: str = output_field("small")
    raft_weights: str | None = output_field(None)
    drop_static: bool = output_field(False, omit_default=True)  # added in issue 16
    keep_plain_mean: bool = output_field(False, omit_default=True)  # issue 17: blur_linear in the shards
    # issue 18: continuous exposure; the defaults average the N frames only, as before
    substeps: int | str = output_field(1, omit_default=True)
    duty_cycle: float = output_field(1.0, omit_default=True)
    interpolator: str | None = output_field(None, omit_default=True)  # a TorchScript file (ops/exposure.py)
    interpolation: str = output_field("balanced", omit_default=True)  # ops/exposure.INTERPOLATIONS

    @property
    def continuous(self) -> bool:
        """Whether windows are averaged over synthesised sub-frame samples (``ops/exposure.py``)."""
        return self.substeps != 1 or self.duty_cycle != 1.0

    @property
    def uses_flow(self) -> bool:
        """Whether windows are selected online from optical flow (and flow is computed at all)."""
        return self.flow is not None

    def revisions(self) -> dict[str, int]:
        """The recipe's revision, and the flow measurements' revision when flow is computed (an older
        ``--max-step-px`` or ``--blur-map`` run is then refused, not resumed under the new rule)."""
        flow = {"flow_revision": REVISIONS["flow"]} if self.uses_flow else {}
        return super().revisions() | flow

    def __post_init__(self) -> None:
        check_average_config(self)


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
        "blur_map": preset.blur_map, "substeps": preset.substeps,
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
    check_camera_options(cfg)
    if "gopro" in cfg.layout and cfg.camera_on:  # local's GOPRO tree has no plain mean: it takes the camera
        raise ConfigError("--camera with --layout gopro: the GOPRO tree's blur/ (the plain mean of code values) "
                          "would not match the camera's blur_gamma/; write --layout h5 and export the shards")
    if cfg.keep_plain_mean and cfg.camera_on:
        raise ConfigError("--keep-plain-mean stores the plain mean for GOPRO_Large's blur/, which has no camera: "
                          "leave it out with --camera")
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
    if cfg.substeps != "auto" and (isinstance(cfg.substeps, bool) or not isinstance(cfg.substeps, int)
                                   or not 1 <= cfg.substeps <= MAX_SUBSTEPS):
        raise ConfigError(f"--substeps: expected a whole number in 1..{MAX_SUBSTEPS} or auto, got {cfg.substeps!r}")
    if not (0.0 < cfg.duty_cycle <= 1.0):
        raise ConfigError(f"--duty-cycle: expected 0 < tau <= 1 (the exposed fraction of the window), "
                          f"got {cfg.duty_cycle}")
    if cfg.duty_cycle != 1.0 and cfg.frames[0] < 3:
        raise ConfigError("--duty-cycle needs windows of at least 3 frames (--frames): one frame has no interval")
    if cfg.interpolation not in INTERPOLATION_NAMES:
        raise ConfigError(f"--interpolation: expected one of {', '.join(INTERPOLATION_NAMES)}, "
                          f"got {cfg.interpolation!r}")
    if cfg.interpolator is not None and not cfg.continuous:
        raise ConfigError("--interpolator synthesises sub-frame samples: give --substeps K|auto or --duty-cycle")
    if cfg.raft_model not in RAFT_MODELS:
        raise ConfigError(f"--raft-model: expected one of {', '.join(RAFT_MODELS)}, got {cfg.raft_model!r}")
    if cfg.raft_weights is not None and cfg.flow != "raft":
        raise ConfigError(f"--raft-weights is only used with --flow raft (got --flow {cfg.flow or 'none'})")
