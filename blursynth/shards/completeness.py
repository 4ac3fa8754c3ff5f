"""Whether an output folder holds a finished dataset: its manifest status and its sample counts.

A run writes ``manifest.json`` with ``status: running`` when it starts and ``complete`` (or ``incomplete``,
when work units ended in an error) when it ends; an interrupted run leaves ``running``. Consumers that turn
a dataset into something else (``export``) refuse anything but ``complete`` unless asked, and say how many
samples are complete out of how many were planned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from blursynth.errors import OutputError
from blursynth.shards.listing import ShardListing
from blursynth.shards.manifest import NewerManifestError, load_manifest, manifest_path


@dataclass(frozen=True)
class DatasetState:
    """``status``: the manifest's (None without a readable manifest); ``complete``: samples in complete
    shards; ``expected``: samples the run planned (None when unknown: flow-selected windows, dropped static
    windows, no manifest); ``errors``: work units that ended in an error; ``source_keys``: the sources the
    manifest lists (exported names depend on the whole set, ``shards/names.py``)."""

    manifest: Path
    status: str | None
    complete: int
    expected: int | None
    errors: int = 0
    source_keys: frozenset[str] = frozenset()

    @property
    def finished(self) -> bool:
        return self.status == "complete"

    def counts(self) -> str:
        """``160 of 240 samples complete`` (or ``160 samples complete, the planned count is unknown``)."""
        if self.expected is None:
            return f"{self.complete} samples complete, the planned count is unknown"
        return f"{self.complete} of {self.expected} samples complete"

    def describe(self) -> str:
        """One clause: what the manifest says and the counts."""
        if self.status is None:
            return f"{self.manifest}: no readable manifest, so whether the run finished is unknown ({self.counts()})"
        why = {"running": "the run was interrupted or is still running",
               "incomplete": f"{self.errors or 'some'} work unit(s) ended in an error"}.get(self.status, "not finished")
        return f"{self.manifest}: status {self.status!r} ({why}): {self.counts()}"


def expected_samples(manifest: dict) -> int | None:
    """Samples the run planned, from its source entries; None when that is not known in advance."""
    if (manifest.get("config") or {}).get("drop_static"):
        return None
    total = 0
    for entry in manifest.get("sources") or []:
        if not isinstance(entry, dict) or entry.get("kind") == "backgrounds":
            continue
        windows, samples = entry.get("windows"), entry.get("samples")
        if isinstance(windows, int):
            total += windows
        elif isinstance(samples, list) and len(samples) == 2 and all(isinstance(v, int) for v in samples):
            total += samples[1] - samples[0]  # blursynth local: a unit's [first, stop) sample range
        elif "max_windows" in entry:
            return None  # flow-selected windows: only an upper bound is known
        elif entry.get("status") not in ("failed", "skipped"):
            return None
    return total


def dataset_state(out: str | os.PathLike, listing: ShardListing) -> DatasetState:
    """The state of ``out`` from its manifest and the complete shards in ``listing``."""
    complete = sum(entry.count for entry in listing.shards)
    path = manifest_path(out)
    try:
        manifest = load_manifest(out, writing=False)
    except NewerManifestError:  # not ours to read, incomplete or not
        raise
    except OutputError:
        manifest = None
    if manifest is None:
        return DatasetState(path, None, complete, None)
    status = manifest.get("status")
    errors = (manifest.get("totals") or {}).get("errors")
    keys = frozenset(str(e["key"]) for e in manifest.get("sources") or [] if isinstance(e, dict) and "key" in e)
    return DatasetState(path, str(status) if status is not None else None, complete, expected_samples(manifest),
                        len(errors) if isinstance(errors, list) else 0, keys)
