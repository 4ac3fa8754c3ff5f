"""One run of a command over planned units: prepare OUT, write the manifest, execute, summarise.

Shared by every command that writes shards, so resume rules, cleanup and the manifest are the same
everywhere.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blursynth.errors import InputError
from blursynth.run.executors import create_executor
from blursynth.run.progress import ProgressSink
from blursynth.run.units import UnitResult
from blursynth.shards.manifest import manifest_path, prepare_out, remove_outputs, write_manifest

log = logging.getLogger("blursynth.run")


@dataclass
class JobSummary:
    """Totals of a run, as also written to ``manifest.json``."""

    out: str
    samples: int = 0
    shards: list[dict] = field(default_factory=list)
    results: list[UnitResult] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict:
        by: dict[str, int] = {}
        for r in self.results:
            by[r.status] = by.get(r.status, 0) + 1
        resumed = sum(r.resumed for r in self.results)
        if resumed:
            by["resumed"] = resumed
        return by


def nothing_usable(failures: Sequence[dict], total: int) -> InputError:
    """The one-line error for a run in which no source could produce a sample."""
    if total == 1 and failures:
        f = failures[0]
        return InputError(f"{f.get('path') or f['source']}: {f['reason']}")
    if failures:
        f = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return InputError(f"no usable source among {total}: {f.get('path') or f['source']}: {f['reason']}{more}")
    return InputError("no usable source")


def run_job(
    *,
    command: str,
    out: str,
    config: dict,
    fingerprint: dict,
    units: Sequence,
    unit_key: Callable[[object], str],
    unit_fn: Callable[[object, str, ProgressSink], UnitResult],
    source_entries: list[dict],
    failures: list[dict],
    overwrite: bool,
    progress: ProgressSink,
    total_frames: int,
    total_samples: int | None = None,
    executor: str = "serial",
    manifest_extra: dict | None = None,
    prepare: Callable[[], None] | None = None,
) -> JobSummary:
    """Execute ``units`` into ``out`` and write the manifest.

    Args:
        manifest_extra: more top-level manifest fields (e.g. the background and object summary of `local`).
        prepare: called once OUT is prepared, before any unit runs.

    Raises:
        InputError: nothing could be produced (OUT is then left as it was found).
        OutputError, ConfigError: OUT cannot be used.
    """
    if not units:
        raise nothing_usable(failures, len(source_entries))
    hashes = {e["key"]: e.get("hash") for e in source_entries}
    had_manifest = manifest_path(out).exists()
    created = prepare_out(out, command, fingerprint, hashes, overwrite)
    manifest_kw = dict(command=command, config=config, fingerprint=fingerprint, extra=manifest_extra)
    write_manifest(out, status="running", sources=source_entries, shards=[], **manifest_kw)
    if prepare is not None:  # work that needs OUT (the object bank of `local`); nothing is left if it fails
        try:
            prepare()
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            elif not had_manifest:  # OUT existed empty: leave it empty
                remove_outputs(out)
            raise
    summary = JobSummary(out=str(out), failures=list(failures))
    run = create_executor(executor)
    progress.start(len(units), total_frames, total_samples)
    try:
        for unit, result in zip(units, run.map(lambda u: unit_fn(u, out, progress), units), strict=True):
            summary.results.append(result)
            summary.samples += sum(int(m.get("count", 0)) for m in result.shards)
            summary.shards.extend(result.shards)
            if result.status in ("failed", "partial"):
                summary.failures.append(
                    {"source": unit_key(unit), "path": result.path or unit_key(unit), "reason": result.reason}
                )
    finally:
        progress.close()

    if summary.samples == 0:
        # Nothing usable came out: leave no files behind.
        remove_outputs(out)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise nothing_usable(summary.failures, len(source_entries))

    by_key = {r.key: r for r in summary.results}
    for entry in source_entries:
        r = by_key.get(entry["key"])
        if r is not None:
            entry.update(status=r.status, samples=sum(int(m.get("count", 0)) for m in r.shards))
            if r.reason:
                entry["reason"] = r.reason
            if r.rejections:
                entry["rejections"] = dict(sorted(r.rejections.items()))
    shard_list = sorted(
        ({k: m.get(k) for k in ("split", "shard", "file", "count", "height", "width")} |
         {"sources": sorted(m.get("sources", {}))} for m in summary.shards if m.get("count")),
        key=lambda m: (m["split"], m["shard"]),
    )
    totals = {
        "samples": summary.samples,
        "shards": len(shard_list),
        "by_split": {s: sum(m["count"] for m in shard_list if m["split"] == s) for s in ("train", "val")},
        "sources": summary.counts,
        "failures": summary.failures,
    }
    rejections: dict[str, int] = {}
    for r in summary.results:
        for k, v in r.rejections.items():
            rejections[k] = rejections.get(k, 0) + v
    if rejections:
        totals["rejected_windows"] = dict(sorted(rejections.items()))
    skipped = {(rec.get("path"), rec.get("reason")): rec for r in summary.results for rec in r.skipped}
    if skipped:
        totals["skipped_inputs"] = list(skipped.values())
    write_manifest(out, status="complete", sources=source_entries, shards=shard_list, totals=totals,
                   **manifest_kw)
    summary.shards = shard_list
    log.info("wrote %d samples in %d shards to %s", summary.samples, len(shard_list), Path(out))
    return summary
