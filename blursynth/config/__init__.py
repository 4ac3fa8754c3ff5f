"""The config layer: every command's frozen configuration, the recipe presets and the executor options.

It imports nothing from ``run/`` (the executors take their options from here) and declares, per field,
whether it belongs to the fingerprint (``fields.output_field``).
"""

from blursynth.config.average import DEFAULT_MAX_MATCH_ERROR, RECIPES, AverageConfig, RecipePreset, resolve_recipe
from blursynth.config.fields import (
    BACKENDS,
    COMPRESSIONS,
    CRF_NAMES,
    LAYOUTS,
    REVISIONS,
    ExecutionFields,
    ExecutorOptions,
    OutputFields,
)
from blursynth.config.local import LocalConfig
from blursynth.config.parse import parse_frames, parse_layout, parse_range, parse_size
from blursynth.config.stats import DatasetSpec, StatsConfig
from blursynth.config.train import TrainCheckConfig

__all__ = [
    "BACKENDS", "COMPRESSIONS", "CRF_NAMES", "DEFAULT_MAX_MATCH_ERROR", "LAYOUTS", "RECIPES", "REVISIONS",
    "AverageConfig", "DatasetSpec", "ExecutionFields", "ExecutorOptions", "LocalConfig", "OutputFields",
    "RecipePreset", "StatsConfig", "TrainCheckConfig",
    "parse_frames", "parse_layout", "parse_range", "parse_size", "resolve_recipe",
]
