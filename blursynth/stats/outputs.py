"""Writing the results of ``blursynth stats``: CSV, JSON and PNG, all or nothing."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

from blursynth import __version__
from blursynth.errors import OutputError
from blursynth.shards.files import PARTIAL, fsync_path, make_folder
from blursynth.stats.flow_ratio import spans_differ
from blursynth.stats.plots import plot_ratio_curves

CSV_NAME = "blurred_area_ratio.csv"
JSON_NAME = "blurred_area_ratio.json"
PNG_NAME = "blurred_area_ratio.png"


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 6)


CSV_FIELDS = ["label", "threshold", "mean", "std", "pairs", "span_ms_min", "span_ms_max", "measurable_fraction_mean",
              "measurable_fraction_std"]


def curves_to_rows(curves, thresholds) -> list[dict]:
    """One row per (dataset, threshold): :data:`CSV_FIELDS`.

    ``span_ms_min``/``span_ms_max``: the shortest and longest time span the dataset's pairs were measured over
    (equal when every source reached the same span; empty without pairs). ``measurable_fraction_mean``/``_std``:
    the dataset's fraction of measurable pixels over its pairs (empty with ``--raw-flow``), the same on each
    of its rows.
    """
    rows = []
    for c in curves:
        lo, hi = (_num(min(c.spans_ms)), _num(max(c.spans_ms))) if c.spans_ms else (None, None)
        rows += [{"label": c.label, "threshold": float(t), "mean": _num(m), "std": _num(s), "pairs": c.pairs,
                  "span_ms_min": lo, "span_ms_max": hi, "measurable_fraction_mean": _num(c.measurable_mean),
                  "measurable_fraction_std": _num(c.measurable_std)}
                 for t, m, s in zip(thresholds, c.mean, c.std, strict=True)]
    return rows


def write_stats(curves, cfg, out_dir: str | os.PathLike, *, log_y: bool = False) -> dict[str, Path]:
    """Write ``blurred_area_ratio.{csv,json,png}`` into ``out_dir`` (created if needed).

    Every file is written under a temporary name first and renamed once all three exist, so an error leaves
    no partial result (and removes ``out_dir`` if this call created it).

    Returns:
        The three paths by kind.

    Raises:
        OutputError: ``out_dir`` is a file or cannot be written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    created = make_folder(out)
    rows = curves_to_rows(curves, cfg.thresholds)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    doc = {
        "format": "blursynth-blurred-area-ratio",
        "version": 2,
        "tool_version": __version__,
        "settings": cfg.to_dict(),
        "thresholds": list(cfg.thresholds),
        "spans_differ": spans_differ([s for c in curves for s in c.spans_ms]),
        "datasets": [
            {"label": c.label, "path": c.path, "pairs": c.pairs, "spans_ms": [_num(v) for v in c.spans_ms],
             "measurable_fraction": {"mean": _num(c.measurable_mean), "std": _num(c.measurable_std)},
             "mean": [_num(v) for v in c.mean], "std": [_num(v) for v in c.std], "sources": c.sources}
            for c in curves
        ],
    }
    targets = {"csv": out / CSV_NAME, "json": out / JSON_NAME, "png": out / PNG_NAME}
    temps = {k: p.with_name(p.name + PARTIAL + p.suffix) for k, p in targets.items()}
    try:
        temps["csv"].write_text(buf.getvalue(), encoding="utf-8")
        temps["json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        plot_ratio_curves(curves, cfg.thresholds, temps["png"], log_y=log_y,
                          title=f"Blurred area ratio ({cfg.flow}{', raw flow' if cfg.raw_flow else ''}; "
                                "measured span per dataset)")
        for k in targets:
            fsync_path(temps[k])
            os.replace(temps[k], targets[k])
    except OSError as exc:
        for p in temps.values():
            p.unlink(missing_ok=True)
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise OutputError(f"{out}: cannot write the results ({exc.strerror or exc})") from None
    except BaseException:
        for p in temps.values():
            p.unlink(missing_ok=True)
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return targets
