"""Configuration of ``blursynth stats``: the SOURCE and threshold parsers and the resolved, frozen config."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

from blursynth.config.fields import ExecutionFields, jsonable
from blursynth.errors import ConfigError
from blursynth.io.sources import VIDEO_EXTENSIONS

#: LODE/BladeNet Sec. 3 measures flow over 2 frames at 240 fps (and 1 at 120 fps): the same time span.
DEFAULT_SPAN_MS = 1000.0 * 2 / 240
MAX_THRESHOLDS = 10_000


# -- parsing -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """One positional SOURCE: ``PATH``, ``NAME=PATH`` or ``NAME=PATH@FPS``."""

    label: str
    path: str
    fps: float | None = None


def parse_dataset(text: str) -> DatasetSpec:
    """Parse a SOURCE argument.

    ``NAME=PATH@FPS`` sets the label and the frame rate of frame folders; a bare path is labelled by its name
    (without a video extension). ``@`` is a frame rate only when what follows it is a number.
    """
    label, sep, path = str(text).partition("=")
    if not sep or not label or "/" in label or "\\" in label:
        label, path = "", str(text)
    fps = None
    m = re.fullmatch(r"(.+)@(\d+(?:\.\d*)?|\.\d+)", path)
    if m:
        path, fps = m.group(1), float(m.group(2))
        if fps <= 0:
            raise ConfigError(f"{text}: the frame rate after @ must be positive")
    if not path:
        raise ConfigError(f"{text!r}: expected PATH, NAME=PATH or NAME=PATH@FPS")
    if not label:
        p = Path(path.rstrip("/\\") or path)
        if not p.name or p.name == "..":  # ".", "./", "..": name it by the folder it resolves to
            p = p.resolve()
        label = (p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else p.name) or str(p)
    return DatasetSpec(label, path, fps)


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``--flow-threshold``: a list ``0.5,1,2,4`` or a range ``START:STOP:STEP`` (STOP included when on the grid).

    Raises:
        ConfigError: not numbers, a negative value, a non-positive step, or too many values.
    """
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(v) for v in parts):
                raise ConfigError(f"--flow-threshold: range {text!r} must have finite bounds and step")
            if step <= 0:
                raise ConfigError(f"--flow-threshold: the step of {text!r} must be positive")
            if stop < start:
                raise ConfigError(f"--flow-threshold: range {text!r} is reversed")
            span = (stop - start) / step
            if not math.isfinite(span) or span + 1 > MAX_THRESHOLDS:
                raise ConfigError(f"--flow-threshold: {text!r} gives more than {MAX_THRESHOLDS} thresholds")
            count = int(math.floor(span + 1e-9)) + 1
            if count > MAX_THRESHOLDS:
                raise ConfigError(f"--flow-threshold: {text!r} gives {count} thresholds (at most {MAX_THRESHOLDS})")
            values = [round(start + k * step, 10) for k in range(count)]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
            if not values:
                raise ValueError
    except ValueError:
        raise ConfigError(
            f"--flow-threshold: expected a list like 0.5,1,2,4 or a range like 0:20:0.5, got {text!r}") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"--flow-threshold: thresholds are pixels >= 0, got {text!r}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class StatsConfig(ExecutionFields):
    """Resolved settings of ``blursynth stats``. ``threads``: flow pairs computed in parallel per worker.

    ``raw_flow``: count every pixel's flow as the backend gives it (LODE's raw curve) instead of the visible
    motion of measurable pixels only (blursynth.flow.measure).
    """

    datasets: tuple[DatasetSpec, ...]
    thresholds: tuple[float, ...]
    flow: str = "deepflow"
    span_ms: float = DEFAULT_SPAN_MS
    raw_flow: bool = False
    pairs_per_source: int = 20
    max_side: int | None = None
    fps: float | None = None
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    raft_model: str = "small"
    raft_weights: str | None = None

    def __post_init__(self) -> None:
        check_stats_config(self)

    def to_dict(self) -> dict:
        """Every setting, JSON-serialisable (recorded next to the curves)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def check_stats_config(cfg: StatsConfig) -> None:
    if not cfg.datasets:
        raise ConfigError("no SOURCE given: pass at least one video, folder of videos or folder of frame folders")
    labels = [d.label for d in cfg.datasets]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"two SOURCEs have the label {dup[0]!r}; name them with NAME=PATH")
    if not cfg.thresholds:
        raise ConfigError("--flow-threshold: no threshold given")
    if not (0 < cfg.span_ms <= 60_000):
        raise ConfigError(f"--span-ms: expected a positive time span of at most a minute, got {cfg.span_ms}")
    if cfg.pairs_per_source < 1:
        raise ConfigError(f"--pairs-per-source: expected a positive number, got {cfg.pairs_per_source}")
    if cfg.max_side is not None and cfg.max_side < 16:
        raise ConfigError(f"--max-side: expected at least 16 pixels, got {cfg.max_side}")
    for spec in cfg.datasets:
        if spec.fps is not None and not (0 < spec.fps <= 100_000):
            raise ConfigError(f"{spec.label}: expected a frame rate in (0, 100000] after @, got {spec.fps}")
    if cfg.fps is not None and not (0 < cfg.fps <= 100_000):
        raise ConfigError(f"--fps: expected a frame rate in (0, 100000], got {cfg.fps}")
    if cfg.threads < 1:
        raise ConfigError(f"--threads: expected a positive number, got {cfg.threads}")
    cfg.executor_options().check()
