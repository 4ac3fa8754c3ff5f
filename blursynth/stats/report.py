"""``blursynth inspect``: a report on a produced dataset (any recipe).

Counts come from every complete shard; image statistics (PSNR of blur vs sharp, mask area, blur-map
values) from up to ``max_samples`` samples drawn with a seeded generator over the whole dataset, so a
report on a million-sample output stays quick. Rejections, failures and skipped inputs come from the shard
markers and the manifest.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from blursynth.errors import InputError, OutputError
from blursynth.seeding import create_rng
from blursynth.shards.files import PARTIAL, fsync_path, make_folder
from blursynth.shards.listing import ShardListing, list_shards
from blursynth.shards.manifest import load_manifest, manifest_path
from blursynth.shards.markers import total
from blursynth.shards.reader import ShardReader, UnreadableShard
from blursynth.stats.plots import HistogramPanel, plot_histograms
from blursynth.stats.sheet import SheetSample, compose_sheet

REPORT_JSON = "report.json"
HISTOGRAMS_PNG = "histograms.png"
SHEET_PNG = "contact_sheet.png"
BLUR_MAP_STEP = 7  # every 7th blur-map pixel of a measured sample is counted (a million samples stay quick)
PSNR_BINS = np.arange(10.0, 52.0, 2.0)
BLUR_MAP_BINS = np.array([0, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, np.inf])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _summary(values: list[float]) -> dict:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if not arr.size:
        return {"count": 0}
    return {"count": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "p5": float(np.percentile(arr, 5)), "median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)),
            "max": float(arr.max())}


def _hist(values, edges) -> dict:
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1] - 1e-9), bins=edges)
    return {"edges": [float(e) if math.isfinite(e) else None for e in edges], "counts": counts.tolist()}


@dataclass
class _Scan:
    """What the first pass over every complete shard finds (counts; no pixel is read)."""

    per_split: dict[str, dict] = field(default_factory=dict)
    shards: list[dict] = field(default_factory=list)
    resolutions: Counter = field(default_factory=Counter)
    n_hist: Counter = field(default_factory=Counter)
    recipes: Counter = field(default_factory=Counter)
    extras: set[str] = field(default_factory=set)
    samples: list[tuple[ShardReader, int]] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)

    def lost(self, reader: ShardReader, exc: Exception) -> None:
        """A shard that cannot be read (not a crash: it is listed in the report)."""
        reason = exc.reason if isinstance(exc, UnreadableShard) else str(exc)
        self.unreadable.append({"path": str(reader.path), "reason": reason})


#: Errors that make a shard unreadable for the report (a corrupt chunk, a missing dataset, bad meta).
_UNREADABLE = (UnreadableShard, OSError, KeyError, ValueError)


def _scan(listing: ShardListing) -> _Scan:
    scan = _Scan()
    for entry in listing.shards:
        split = scan.per_split.setdefault(entry.split, {"shards": 0, "samples": 0})
        if entry.path is None or entry.count == 0:
            scan.shards.append({"split": entry.split, "shard": entry.shard, "count": 0, "file": None})
            continue
        reader = ShardReader(entry.path)
        try:
            with reader:
                count = len(reader)
                h, w = reader.image_size
                scan.extras |= {name for name in reader.names if name not in ("blur", "sharp", "meta")}
                for meta in reader.metas():
                    scan.n_hist[int(meta.get("n_frames", 0))] += 1
                    scan.recipes[str(meta.get("recipe"))] += 1
        except _UNREADABLE as exc:
            scan.lost(reader, exc)
            continue
        split["shards"] += 1
        split["samples"] += count
        scan.resolutions[f"{w}x{h}"] += count
        scan.shards.append({"split": entry.split, "shard": entry.shard, "count": count, "file": entry.path.name,
                            "height": h, "width": w, "marker_count": entry.count})
        scan.samples += [(reader, i) for i in range(count)]
    return scan


@dataclass
class _Measures:
    psnrs: list[float] = field(default_factory=list)
    identical: int = 0
    mask_area: list[float] = field(default_factory=list)
    blur_values: list[np.ndarray] = field(default_factory=list)
    broken: set[ShardReader] = field(default_factory=set)


def _measure(scan: _Scan, chosen: list[int]) -> _Measures:
    """Image statistics of the ``chosen`` samples, shard by shard (each shard opened once)."""
    by_reader: dict[ShardReader, list[int]] = {}
    for k in chosen:
        reader, i = scan.samples[k]
        by_reader.setdefault(reader, []).append(i)
    m = _Measures()
    for reader, indices in by_reader.items():
        try:
            with reader:
                for i in indices:
                    value = psnr(reader.array("blur", i), reader.array("sharp", i))
                    m.identical += not math.isfinite(value)
                    m.psnrs.append(value)
                    if "mask" in reader:
                        mask = reader.array("mask", i)
                        m.mask_area.append(float(np.count_nonzero(mask)) / mask.size)
                    if "blur_map" in reader:
                        m.blur_values.append(reader.array("blur_map", i).astype(np.float32).ravel()[::BLUR_MAP_STEP])
        except _UNREADABLE as exc:  # a corrupt chunk: the shard is listed, not fatal
            scan.lost(reader, exc)
            m.broken.add(reader)
    return m


def _sheet_samples(scan: _Scan, picked: list[int], broken: set[ShardReader], column: str) -> list[SheetSample]:
    """The ``picked`` samples as labelled contact-sheet rows ``blur | sharp | column`` (see stats/sheet.py)."""
    rows = []
    for k in picked:
        reader, i = scan.samples[k]
        if reader in broken:
            continue
        try:
            reader.open()
        except UnreadableShard:
            continue
        with reader:
            blur, sharp, meta = reader.array("blur", i), reader.array("sharp", i), reader.meta(i)
            if column == "|blur-sharp|":
                third = np.abs(blur.astype(np.int16) - sharp.astype(np.int16)).max(axis=2)
            else:
                third = reader.array(column, i) if column in reader else None
        value = psnr(blur, sharp)
        sample = str(meta.get("sample") or f"{reader.path.name}#{i}")
        split = meta.get("split") or reader.path.parent.name
        n = meta.get("n_frames")
        shown = f"PSNR {value:.2f} dB" if math.isfinite(value) else "PSNR inf (blur == sharp)"
        label = f"{sample} ({split})   N={n if n is not None else '?'}   {shown}"
        info = {"sample": sample, "split": split, "file": reader.path.name, "index": i, "n_frames": n,
                "psnr_db": value if math.isfinite(value) else None}
        rows.append(SheetSample(label, blur, sharp, third, info))
    return rows


def inspect_dataset(out: str | os.PathLike, report_dir: str | os.PathLike | None = None, *, max_samples: int = 1000,
                    sheet: int = 8, seed: int = 0) -> dict:
    """Build the report of the output folder ``out`` and write it to ``report_dir`` (default ``out/report``).

    Returns:
        The report (also written as ``report.json``, with ``histograms.png`` and ``contact_sheet.png``).

    Raises:
        InputError: ``out`` is not a blursynth output or holds no complete shard.
        OutputError: the report folder cannot be written.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    manifest = load_manifest(out, writing=False)
    if manifest is None:
        raise InputError(f"{out}: not a blursynth output ({manifest_path(out).name} is missing)")
    listing = list_shards(out)
    newer = [b for b in listing.bad_markers if b.get("newer")]
    if newer:  # a damaged marker is reported below; one of a newer format is not ours to read
        raise InputError(f"{newer[0]['path']}: {newer[0]['reason']}")
    report_dir = Path(report_dir) if report_dir is not None else out / "report"

    recorded = total(entry.marker for entry in listing.shards)
    failures = recorded.failures
    scan = _scan(listing)
    # Sources that failed before any shard was written (e.g. not decodable at all) are only in the manifest.
    seen = {(f.get("source"), f.get("path"), f.get("reason")) for f in failures}
    for f in (manifest.get("totals") or {}).get("failures") or []:
        if (f.get("source"), f.get("path"), f.get("reason")) not in seen:
            failures.append(f)
            seen.add((f.get("source"), f.get("path"), f.get("reason")))
    samples = scan.samples
    if not samples:
        png_only = [s for s in listing.shards if s.path is None and s.count]
        if png_only:
            raise InputError(f"{out}: holds no HDF5 shard ({sum(s.count for s in png_only)} samples were written "
                             "with --layout gopro only); inspect reads the h5 layout")
        why = f" ({len(scan.unreadable)} unreadable)" if scan.unreadable else ""
        raise InputError(f"{out}: no complete shard with samples{why}")

    rng = create_rng(seed, "inspect")
    chosen = sorted(rng.choice(len(samples), size=min(max_samples, len(samples)), replace=False).tolist())
    measured = _measure(scan, chosen)
    psnrs, n_hist = measured.psnrs, scan.n_hist
    report = {
        "format": "blursynth-report",
        "version": 1,
        "out": str(out),
        "command": manifest.get("command"),
        "status": manifest.get("status"),
        "tool_version": manifest.get("tool_version"),
        "recipes": dict(scan.recipes),
        "totals": {"samples": len(samples), "shards": sum(1 for s in scan.shards if s["count"]),
                   "by_split": scan.per_split, "manifest_samples": (manifest.get("totals") or {}).get("samples")},
        "shards": scan.shards,
        "resolutions": dict(scan.resolutions),
        "n_frames": {str(k): v for k, v in sorted(n_hist.items())},
        "datasets": sorted(scan.extras),
        "measured_samples": len(chosen),
        "psnr_db": _summary(psnrs) | {"identical": measured.identical, "histogram": _hist(psnrs, PSNR_BINS)},
        "rejected_windows": recorded.rejections,
        "failures": failures,
        "skipped_inputs": recorded.skipped,
        "ignored": {"unreadable_markers": listing.bad_markers, "orphan_h5": listing.orphans,
                    "partial_files": listing.partials, "unreadable_shards": scan.unreadable},
    }
    panels = [HistogramPanel("PSNR(blur, sharp)", PSNR_BINS, report["psnr_db"]["histogram"]["counts"], "dB")]
    n_keys = sorted(n_hist)
    if n_keys:
        edges = np.arange(n_keys[0] - 1, n_keys[-1] + 2, 2, dtype=float)
        panels.append(HistogramPanel("frames averaged (N)", edges, [n_hist.get(int(e + 1), 0) for e in edges[:-1]],
                                     "N"))
    mask_area = measured.mask_area
    if mask_area:
        edges = np.linspace(0.0, max(0.05, max(mask_area)), 21)
        report["mask_area"] = _summary(mask_area) | {"histogram": _hist(mask_area, edges)}
        panels.append(HistogramPanel("mask area (fraction > 0)", edges, report["mask_area"]["histogram"]["counts"],
                                     "fraction of the image"))
    if measured.blur_values:
        values = np.concatenate(measured.blur_values)
        hist = _hist(values, BLUR_MAP_BINS)
        # Pixels, not samples, in bins of unequal width: each bar is the fraction of pixels in its bin, drawn
        # with equal widths between labelled edges, so heights (and areas) compare honestly and sum to 1.
        hist["fractions"] = (np.asarray(hist["counts"], np.float64) / max(1, values.size)).tolist()
        report["blur_map_px"] = _summary(values.tolist()) | {"histogram": hist}
        edge_labels = [f"{e:g}" for e in BLUR_MAP_BINS[:-1]] + ["inf"]
        panels.append(HistogramPanel(f"blur map ({values.size} pixels, every {BLUR_MAP_STEP}th)",
                                     np.arange(len(BLUR_MAP_BINS), dtype=float), hist["fractions"],
                                     "blur length, px (bin edges)", ylabel="fraction of pixels",
                                     edge_labels=edge_labels))
    picked = sorted(rng.choice(len(samples), size=min(sheet, len(samples)), replace=False).tolist())
    extras = scan.extras
    column = "mask" if "mask" in extras else "blur_map" if "blur_map" in extras else "|blur-sharp|"
    rows = _sheet_samples(scan, picked, measured.broken, column)
    image, layout = compose_sheet(rows, column) if rows else (None, {})
    report["contact_sheet"] = {"samples": len(rows), "columns": ["blur", "sharp", column]} | layout
    _write(report_dir, report, panels, image)
    return report


def _write(report_dir: Path, report: dict, panels, sheet: np.ndarray | None) -> None:
    created = make_folder(report_dir)
    try:
        temps = []
        hist_tmp = report_dir / (HISTOGRAMS_PNG + PARTIAL + ".png")
        plot_histograms(panels, hist_tmp)
        temps.append((hist_tmp, report_dir / HISTOGRAMS_PNG))
        if sheet is not None:
            sheet_tmp = report_dir / (SHEET_PNG + PARTIAL + ".png")
            if not cv2.imwrite(str(sheet_tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot encode {SHEET_PNG}")
            temps.append((sheet_tmp, report_dir / SHEET_PNG))
        else:  # no sheet asked for: do not leave an earlier run's sheet next to this report
            (report_dir / SHEET_PNG).unlink(missing_ok=True)
        json_tmp = report_dir / (REPORT_JSON + PARTIAL)
        json_tmp.write_text(json.dumps(report, indent=2, allow_nan=False, default=_jsonable) + "\n", encoding="utf-8")
        temps.append((json_tmp, report_dir / REPORT_JSON))
        for tmp, target in temps:
            fsync_path(tmp)
            os.replace(tmp, target)
    except OSError as exc:
        for p in report_dir.glob(f"*{PARTIAL}*"):
            p.unlink(missing_ok=True)
        if created:
            import shutil

            shutil.rmtree(created, ignore_errors=True)
        raise OutputError(f"{report_dir}: cannot write the report ({exc.strerror or exc})") from None


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
