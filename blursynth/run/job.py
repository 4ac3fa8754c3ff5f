"""One run of a command over planned units: prepare OUT, write the manifest, execute, summarise.

Shared by every command that writes shards, so resume rules, cleanup and the manifest are the same
everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blursynth.config.fields import ExecutorOptions
from blursynth.errors import InputError
from blursynth.run.executors import run_units
from blursynth.run.executors.base import Outcome
from blursynth.run.progress import ProgressSink
from blursynth.run.provenance import invocation
from blursynth.run.rejections import rejection_message
from blursynth.run.staging import open_workspace
from blursynth.run.units import UnitResult, completed_markers
from blursynth.shards.manifest import provenance, remove_partials, write_manifest
from blursynth.shards.markers import ShardMarker, sum_counts

log = logging.getLogger("blursynth.run")


@dataclass
class JobSummary:
    """Totals of a run, as also written to ``manifest.json``."""

    out: str
    samples: int = 0
    shards: list[dict] = field(default_factory=list)  # the manifest's shard list
    results: list[UnitResult] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # units that raised on every attempt

    @property
    def rejections(self) -> dict[str, int]:
        """Candidate windows rejected in the whole run, by reason."""
        return sum_counts(*(r.rejections for r in self.results))

    @property
    def static_windows(self) -> int:
        """Samples whose blur equals sharp in the whole run (written or dropped)."""
        return sum(r.static_windows for r in self.results)

    @property
    def skipped_inputs(self) -> list[dict]:
        """Inputs skipped in the whole run, each ``{path, reason}`` once (units may skip the same input)."""
        return list({(rec.get("path"), rec.get("reason")): rec for r in self.results for rec in r.skipped}.values())

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


def nothing_kept(summary: JobSummary, config: dict, source_entries: Sequence[dict]) -> InputError:
    """The one-line error of a run that kept no sample: every window rejected (by reason, with the option
    to change), or no usable source."""
    read = [e.get("path") or e["key"] for e in source_entries if e.get("status") in ("ok", "partial")]
    rejected = rejection_message(summary.rejections, summary.static_windows, config, read)
    if rejected is None:
        return nothing_usable(summary.failures, len(source_entries))
    if summary.failures:
        f = summary.failures[0]
        more = f" (and {len(summary.failures) - 1} more)" if len(summary.failures) > 1 else ""
        rejected += f"; unusable: {f.get('path') or f['source']}: {f['reason']}{more}"
    return InputError(rejected)


def units_failed(errors: Sequence[dict], total: int, kept: str | Path | None = None) -> InputError:
    """The one-line error for units that raised on every attempt (``kept``: OUT, which keeps the dataset it
    had because this run was staged)."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    keeps = f"; {kept} keeps its previous dataset" if kept is not None else ""
    return InputError(f"{len(errors)} of {total} work unit(s) failed after {first['attempts']} attempt(s): "
                      f"{first['source']}: {first['reason']}{more}{keeps}; rerun the same command to retry them")


def errored_result(out, key: str, unit, outcome: Outcome, summary: JobSummary) -> UnitResult:
    """The result of a unit that raised on every attempt: the shards it committed before, status ``error``."""
    markers, _ = completed_markers(Path(out), unit.slots)
    summary.errors.append({"source": key, "reason": outcome.error, "attempts": outcome.attempts})
    return UnitResult(key, "error", reason=outcome.error, shards=[m for m in markers.values() if m is not None])


def _listed(marker: ShardMarker) -> dict:
    """A shard's entry in the manifest's shard list."""
    return {"split": marker.split, "shard": marker.shard, "file": marker.file, "count": marker.count,
            "height": marker.height, "width": marker.width, "sources": sorted(marker.sources)}


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
    executor: ExecutorOptions | None = None,
    manifest_extra: dict | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> JobSummary:
    """Execute ``units`` into ``out`` and write the manifest.

    A new OUT and a resume (same settings) are written in place. A run that replaces a dataset made with
    other settings (``overwrite``) is written into ``OUT/.staging`` and swapped in only once it has finished
    with samples and no unit in error (run/staging.py): a failed, interrupted or empty rerun leaves the old
    dataset as it was.

    Args:
        manifest_extra: more top-level manifest fields (e.g. the background and object summary of `local`).
        prepare: called once with the folder the run writes into (OUT or its staging folder), before any
            unit runs; units receive the same folder as their ``out``.
        executor: where units run (default: one after the other in this process).

    Units that raise on every attempt are recorded in ``summary.errors`` (the manifest is then
    ``incomplete``); the caller decides the exit status. Their shards committed before the error are kept.
    A staged run with units in error raises instead (OUT keeps its previous dataset).

    Raises:
        InputError: nothing could be produced (OUT is then left as it was found), or a staged run had units
            in error.
        OutputError, ConfigError: OUT cannot be used.
    """
    if not units:
        raise nothing_usable(failures, len(source_entries))
    hashes = {e["key"]: e.get("hash") for e in source_entries}
    space = open_workspace(out, command, fingerprint, hashes, overwrite)
    folder = space.folder  # OUT, or OUT/.staging while a dataset made with other settings stays in OUT
    extra = {**(manifest_extra or {}), **provenance(out, invocation(), source_entries)}
    manifest_kw = dict(command=command, config=config, fingerprint=fingerprint, extra=extra)
    try:  # the first write (disk full shows here), then work that needs OUT (the object bank of `local`)
        write_manifest(folder, status="running", sources=source_entries, shards=[], **manifest_kw)
        if prepare is not None:
            prepare(folder)
    except BaseException:  # nothing is left behind (a resumed run keeps what it had)
        space.discard(keep_finished=True)
        raise
    summary = JobSummary(out=str(out), failures=list(failures))
    keys = [unit_key(u) for u in units]
    progress.start(len(units), total_frames, total_samples)
    try:
        outcomes = run_units(unit_fn, units, keys, folder, progress, executor or ExecutorOptions())
    except BaseException:
        # Ctrl-C or a fatal error (disk full): every worker has stopped. In place, finished shards stay (a
        # rerun resumes them) and files of shards in progress go; an OUT this run created and that holds no
        # finished shard goes entirely. A staged run goes entirely: OUT keeps the dataset it had.
        space.discard(keep_finished=True)
        if space.staged:
            log.warning("%s keeps its previous dataset (the new run was staged and is discarded)", out)
        raise
    finally:
        progress.close()
    try:
        summary = _collect(summary, folder, units, keys, outcomes, source_entries)
        if summary.samples == 0:
            space.discard()  # nothing usable came out: leave no files behind
            if summary.errors:
                raise units_failed(summary.errors, len(units), kept=out if space.staged else None)
            error = nothing_kept(summary, config, source_entries)
            if space.staged:
                error = InputError(f"{error.message}; {out} keeps its previous dataset")
            raise error
        if summary.errors and space.staged:  # an incomplete dataset never replaces a complete one
            space.discard()
            raise units_failed(summary.errors, len(units), kept=out)
        status = "incomplete" if summary.errors else "complete"  # a rerun retries the units in error
        write_manifest(folder, status=status, sources=source_entries, shards=summary.shards,
                       totals=_totals(summary, source_entries), **manifest_kw)
        space.commit()
    except BaseException:
        if space.staged:
            space.discard()
        raise
    return summary


def _collect(summary: JobSummary, folder: Path, units: Sequence, keys: list[str], outcomes: list[Outcome],
             source_entries: list[dict]) -> JobSummary:
    """Fill ``summary`` from the units' outcomes, and the source entries of the manifest from their results."""
    remove_partials(folder)  # a worker killed on its last attempt could not remove its shard in progress
    markers: list[ShardMarker] = []
    for unit, key, outcome in zip(units, keys, outcomes, strict=True):
        result = outcome.result if outcome.ok else errored_result(folder, key, unit, outcome, summary)
        summary.results.append(result)
        summary.samples += sum(m.count for m in result.shards)
        markers.extend(result.shards)
        if result.status in ("failed", "partial"):
            summary.failures.append({"source": key, "path": result.path or key, "reason": result.reason})
    by_key = {r.key: r for r in summary.results}
    for entry in source_entries:
        r = by_key.get(entry["key"])
        if r is not None:
            entry.update(status=r.status, samples=sum(m.count for m in r.shards))
            if r.reason:
                entry["reason"] = r.reason
            if r.rejections:
                entry["rejections"] = sum_counts(r.rejections)
            if r.static_windows:
                entry["static_windows"] = r.static_windows
    summary.shards = sorted((_listed(m) for m in markers if m.count), key=lambda m: (m["split"], m["shard"]))
    return summary


def _totals(summary: JobSummary, source_entries: list[dict]) -> dict:
    """The manifest's ``totals`` of a run that kept samples."""
    totals = {
        "samples": summary.samples,
        "shards": len(summary.shards),
        "by_split": {s: sum(m["count"] for m in summary.shards if m["split"] == s) for s in ("train", "val")},
        "sources": summary.counts,
        "failures": summary.failures,
    }
    if summary.errors:
        totals["errors"] = summary.errors
    if summary.rejections:
        totals["rejected_windows"] = summary.rejections
    if summary.skipped_inputs:
        totals["skipped_inputs"] = summary.skipped_inputs
    if summary.static_windows:
        totals["static_windows"] = summary.static_windows
    duplicates = sum(e.get("duplicate_frames", 0) for e in source_entries)
    if duplicates:
        totals["duplicate_frames"] = duplicates
    return totals
