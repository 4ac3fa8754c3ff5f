"""Every dataset's blurred-area-ratio curve: one work unit per source, pairs pooled per dataset.

A dataset's curve is the mean and standard deviation over all its pairs (every pair weighs the same). Each
dataset also carries the time spans its sources were really measured over (:func:`measured_span_ms`): the
span rule cannot hold for a source too slow for ``--span-ms``, and curves over different spans are not
comparable, so a run whose spans differ by more than 10 % says so once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blursynth.config.stats import StatsConfig
from blursynth.errors import InputError
from blursynth.io.sources import discover_sources
from blursynth.run.progress import ProgressSink
from blursynth.stats.flow_ratio import span_text, spans_differ
from blursynth.stats.source_pairs import StatsUnit, measure_source

log = logging.getLogger("blursynth.stats")


@dataclass
class DatasetCurve:
    """One dataset's result: its curve over the thresholds and what each source contributed.

    ``spans_ms``: the distinct time spans (ms, ascending) of the sources that gave pairs.
    ``measurable_mean``, ``measurable_std``: the fraction of measurable pixels over the pairs (NaN with
    ``--raw-flow`` or without pairs).
    """

    label: str
    path: str
    mean: np.ndarray
    std: np.ndarray
    pairs: int
    sources: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # sources whose unit raised on every attempt
    spans_ms: list[float] = field(default_factory=list)
    measurable_mean: float = math.nan
    measurable_std: float = math.nan


def measured_spans(entries: list[dict]) -> list[float]:
    """Distinct spans (ms, ascending) of the source entries that gave at least one pair."""
    return sorted({round(float(e["span_ms"]), 6) for e in entries if e.get("pairs") and "span_ms" in e})


def warn_if_spans_differ(curves: list[DatasetCurve]) -> bool:
    """Log one warning when the measured spans (over every dataset) differ by more than 10 %."""
    spans = [s for c in curves for s in c.spans_ms]
    if not spans_differ(spans):
        return False
    each = ", ".join(f"{c.label} {span_text(c.spans_ms)}" for c in curves if c.spans_ms)
    log.warning("the pairs were measured over different time spans (%s): more time shows more motion, so these "
                "curves are not comparable; use sources of similar frame rates or a --span-ms every source can "
                "reach", each)
    return True


def _dataset_curve(spec, units: list[StatsUnit], outcomes, n_thresholds: int) -> DatasetCurve:
    per_pair, measurable, entries, errors = [], [], [], []
    for unit, outcome in zip(units, outcomes, strict=True):
        if unit.label != spec.label:
            continue
        if outcome.ok:
            entries.append(outcome.result["entry"])
            per_pair += list(outcome.result["curves"])
            measurable += [f for f in outcome.result["measurable"] if math.isfinite(f)]
        else:  # raised on every attempt (see --retries)
            src = unit.source
            entries.append({"key": src.key, "path": src.path, "kind": src.kind, "status": "error",
                            "reason": outcome.error, "attempts": outcome.attempts, "pairs": 0})
            errors.append({"source": unit.key, "reason": outcome.error, "attempts": outcome.attempts})
    if not per_pair:
        log.warning("%s: no pair could be measured", spec.label)
    stack = np.stack(per_pair) if per_pair else np.zeros((0, n_thresholds))
    empty = np.full(n_thresholds, np.nan)
    return DatasetCurve(spec.label, spec.path, stack.mean(axis=0) if per_pair else empty,
                        stack.std(axis=0) if per_pair else empty, len(per_pair), entries, errors=errors,
                        spans_ms=measured_spans(entries),
                        measurable_mean=float(np.mean(measurable)) if measurable else math.nan,
                        measurable_std=float(np.std(measurable)) if measurable else math.nan)


def compute_curves(cfg: StatsConfig, progress: ProgressSink | None = None) -> list[DatasetCurve]:
    """Measure every dataset's blurred-area-ratio curve, one work unit per source (see ``--executor``).

    Raises:
        InputError: a SOURCE path does not exist or holds no source, or no pair could be measured at all.
        ConfigError, MissingDependencyError: bad settings, or a flow backend that cannot be created.
    """
    from blursynth.run.executors import run_units
    from blursynth.run.preflight import preflight

    device = preflight(device=cfg.device, out=None, executor=cfg.executor, ray_address=cfg.ray_address, flow=cfg)
    progress = progress or ProgressSink()
    units: list[StatsUnit] = []
    for spec in cfg.datasets:
        if not Path(spec.path).exists():
            raise InputError(f"{spec.path}: no such file or directory (SOURCE {spec.label})")
        units += [StatsUnit(spec.label, spec.fps, src, cfg) for src in discover_sources([spec.path])]
    keys = [u.key for u in units]
    progress.start(len(units), 0, len(units) * cfg.pairs_per_source)
    try:
        outcomes = run_units(measure_source, units, keys, None, progress, cfg.executor_options(device))
    finally:
        progress.close()
    curves = [_dataset_curve(spec, units, outcomes, len(cfg.thresholds)) for spec in cfg.datasets]
    if not any(c.pairs for c in curves):
        errors = [e for c in curves for e in c.errors]
        if errors:
            from blursynth.run.job import units_failed

            raise units_failed(errors, len(units))
        failed = [e for c in curves for e in c.sources if e.get("status") == "failed"]
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise InputError(f"{first['failed_path']}: {first['reason']}{more}")
        raise InputError("no pair could be measured")
    warn_if_spans_differ(curves)
    return curves
