"""Local blur synthesis (LBS, LODE/BladeNet Sec. 4.1): planning and running ``blursynth local``.

A run has other sources than ``average`` but the same back half. Planning (:func:`plan_local`) discovers and
probes the backgrounds, splits them by group and cuts the samples into one work unit per shard; the driver
builds the object bank in OUT (``objects/build.py``) once OUT is prepared; every unit opens that bank once per
process (``objects/splits.py``), draws and renders its samples (``recipes/local_sample.py``) and hands them to
the same ``UnitSink``, executors, resume rules and manifest as every recipe (``run_job``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from blursynth.config import LocalConfig
from blursynth.errors import ConfigError, InputError, SourceError
from blursynth.io.backgrounds import Background, discover_backgrounds
from blursynth.io.prefetch import prefetch
from blursynth.objects.build import build_store
from blursynth.objects.splits import open_store
from blursynth.objects.store import STORE_NAME
from blursynth.ops.splits import assign_splits
from blursynth.recipes.camera import camera_settings
from blursynth.recipes.local_sample import LocalContext, draw_background, synthesize
from blursynth.run.preflight import preflight
from blursynth.run.progress import ProgressSink
from blursynth.run.sink import UnitSink
from blursynth.run.units import ShardSlot, UnitResult, allocate_slots, finished_unit

log = logging.getLogger("blursynth.local")

#: Decoded backgrounds queued ahead of the sample being rendered (plus one the reader thread holds while the
#: queue is full): one image each.
BACKGROUNDS_AHEAD = 2


@dataclass(frozen=True)
class LocalUnit:
    """One shard's worth of samples (``slot.first .. slot.stop - 1`` of ``split``); picklable."""

    split: str
    slot: ShardSlot
    config: LocalConfig
    context: LocalContext

    @property
    def key(self) -> str:
        return f"{self.split}/{self.slot.shard:05d}"

    @property
    def slots(self) -> tuple[ShardSlot, ...]:
        return (self.slot,)


def plan_local(cfg: LocalConfig) -> tuple[list[LocalUnit], dict, list[dict]]:
    """Discover and probe backgrounds, split them and cut the run into one unit per shard.

    Returns:
        (units, manifest section ``backgrounds``, source entries for the manifest).

    Raises:
        InputError: no background at all, or none large enough.
    """
    found, skipped = discover_backgrounds(cfg.backgrounds, exclude=[cfg.out])
    if not found:
        first = skipped[0] if skipped else {"path": cfg.backgrounds[0], "reason": "no images"}
        raise InputError(f"{first['path']}: {first['reason']} (no usable background)")
    # Without a crop every sample has the backgrounds' size: the most common one (ties: first in key order).
    sizes = Counter(bg.size for bg in found)
    size = cfg.crop or max(sizes, key=lambda sz: (sizes[sz], -next(i for i, b in enumerate(found) if b.size == sz)))
    usable = []
    for bg in found:
        if bg.size[0] < size[0] or bg.size[1] < size[1]:
            reason = f"{bg.size[1]}x{bg.size[0]} is smaller than the {size[1]}x{size[0]} " + (
                "crop" if cfg.crop else "output size (the most common background size; pass --crop HxW)")
        elif cfg.crop is None and bg.size != size:
            reason = (f"{bg.size[1]}x{bg.size[0]} differs from the {size[1]}x{size[0]} output size "
                      "(the most common background size); pass --crop HxW to use backgrounds of mixed sizes")
        else:
            usable.append(bg)
            continue
        skipped.append({"path": bg.path, "reason": reason})
    if not usable:
        raise InputError(f"{skipped[0]['path']}: {skipped[0]['reason']} (no usable background)")
    for rec in skipped:
        log.warning("skipping background %s: %s", rec["path"], rec["reason"])

    groups = sorted({bg.group for bg in usable})
    split_of = assign_splits(groups, cfg.val_fraction, cfg.seed)
    per_split = {s: tuple(bg for bg in usable if split_of[bg.group] == s) for s in ("train", "val")}
    n_val = min(cfg.num_samples - 1, max(1, round(cfg.val_fraction * cfg.num_samples))) if per_split["val"] else 0
    if cfg.val_fraction > 0 and not per_split["val"]:
        raise ConfigError(f"--val-fraction {cfg.val_fraction:g}: the backgrounds form {len(groups)} group(s); "
                          "val needs a group of its own (a sub-folder, or images in one folder)")
    if cfg.val_fraction > 0 and not n_val:
        log.warning("--val-fraction %g of %d sample(s) rounds to no val sample", cfg.val_fraction, cfg.num_samples)
    counts = {"train": cfg.num_samples - n_val, "val": n_val}
    ctx = LocalContext(str(Path(cfg.out) / STORE_NAME), per_split, size)
    units, counters = [], {}
    for split in ("train", "val"):
        for slot in allocate_slots(split, counts[split], cfg.shard_size, counters):
            units.append(LocalUnit(split, slot, cfg, ctx))
    section = {
        "count": len(usable),
        "groups": {s: len({bg.group for bg in per_split[s]}) for s in ("train", "val")},
        "images": {s: len(per_split[s]) for s in ("train", "val")},
        "size": list(size),
        "skipped": skipped,
    }
    entries = [{"key": u.key, "split": u.split, "samples": [u.slot.first, u.slot.stop], "hash": None}
               for u in units]
    # The backgrounds take part in the resume check like the sources of `average`: another --bg (or replaced
    # files) is another dataset.
    entries.append({"key": "backgrounds", "kind": "backgrounds", "paths": list(cfg.backgrounds),
                    "hash": backgrounds_hash(usable)})
    return units, section, entries


def backgrounds_hash(backgrounds: list[Background]) -> str:
    """A cheap fingerprint of the usable backgrounds: keys, sizes and file sizes (no pixel is read)."""
    h = hashlib.blake2b(digest_size=16)
    for bg in backgrounds:
        h.update(f"{bg.key}\0{bg.size}\0{os.stat(bg.path).st_size}\n".encode())
    return "blake2b-listing:" + h.hexdigest()


def run_local_unit(unit: LocalUnit, out: str | Path, progress: ProgressSink | None = None) -> UnitResult:
    """Synthesise the samples of one shard (nothing if its marker says it is complete)."""
    progress = progress or ProgressSink()
    cfg, slot = unit.config, unit.slot
    markers, resumed = finished_unit(Path(out), unit.key, (slot,), progress)
    if resumed is not None:
        return resumed
    store, objects = open_store(str(Path(out) / STORE_NAME), cfg.seed, cfg.val_fraction)  # OUT or its staging
    result = UnitResult(unit.key, "ok")
    progress.source_started(unit.key, 0)
    extras = ("mask", "sat_mask") if cfg.records_saturation else ("mask",)
    sink = UnitSink(out, unit.key, unit.context.store_path, (slot,), result, layouts=cfg.layout,
                    compression=cfg.compression, extra_datasets=extras, progress=progress)
    lost = 0
    samples = prefetch(_rendered(unit, store, objects[unit.split]), depth=1)
    try:
        for index, skipped, sample, error in samples:
            for record in skipped:  # backgrounds that could not be decoded, in draw order
                sink.skip(record)
            if error is not None:  # no decodable background: this sample is lost, the run goes on
                log.warning("%s: %s", error.path, error.reason)
                lost += 1
                if lost == 1:  # the unit reports its first loss; every loss is in the shard marker
                    result.path, result.reason = error.path, error.reason
                sink.fail(index, error.path, error.reason)
                continue
            sink.add(index, sample)  # advances the samples bar
    except BaseException:
        sink.abort()
        raise
    finally:
        samples.close()
    if lost:
        result.status = "partial" if result.samples else "failed"
    progress.source_finished(unit.key, result.status, result.samples, result.reason)
    return result


def _rendered(unit: LocalUnit, store, objects):
    """``(index, skipped draws, sample or None, SourceError or None)`` of every sample of the unit, in order.

    Three stages, one thread each (issue 20): backgrounds are drawn and decoded up to
    :data:`BACKGROUNDS_AHEAD` samples ahead (``draw_background``; cv2.imread releases the GIL), samples are
    rendered in the thread that runs this generator (``run_local_unit`` prefetches it), and the caller writes.
    PNG decoding (most of the I/O floor), rendering and HDF5 writing then overlap. A sample is a pure function
    of (seed, split, index) and the skipped draws are reported by the caller in order, so shards and records
    are those of doing everything in turn; the sink is only ever used by the caller's thread.
    """
    cfg, slot = unit.config, unit.slot
    draws = prefetch(((i, draw_background(cfg, unit.context, unit.split, i)) for i in range(slot.first, slot.stop)),
                     depth=BACKGROUNDS_AHEAD)
    try:
        for index, draw in draws:
            try:
                sample = synthesize(cfg, unit.context, unit.split, index, store, objects, background=draw)
            except SourceError as exc:
                yield index, draw.skipped, None, exc
                continue
            yield index, draw.skipped, sample, None
    finally:
        draws.close()


def run_local(cfg: LocalConfig, progress: ProgressSink | None = None):
    """Run ``blursynth local``: plan, build the object bank in OUT, synthesise every shard, write the manifest.

    Returns:
        :class:`blursynth.run.job.JobSummary`.

    Raises:
        InputError, ConfigError, OutputError: one-line messages naming the file and the reason.
    """
    from blursynth.run.job import run_job

    device = preflight(device=cfg.device, out=cfg.out, executor=cfg.executor, ray_address=cfg.ray_address)
    camera_settings(cfg)  # an unknown --camera-matrix fails here, before OUT is touched
    if cfg.backend == "auto":  # record the renderer actually used: it is part of the fingerprint
        cfg = dataclasses.replace(cfg, backend="torch" if device.startswith("cuda") else "stream")
    for path, what in ((cfg.voc, "--voc"), (cfg.coco, "--coco"), (cfg.coco_images, "--coco-images")):
        if path is not None and not Path(path).exists():
            raise InputError(f"{path}: no such file or directory ({what})")
    units, backgrounds, entries = plan_local(cfg)
    objects = {"store": STORE_NAME}  # completed by build_store once OUT is prepared
    return run_job(
        command="local",
        out=cfg.out,
        config=cfg.to_dict(),
        fingerprint=cfg.fingerprint(),
        units=units,
        unit_key=lambda u: u.key,
        unit_fn=run_local_unit,
        source_entries=entries,
        failures=[],
        overwrite=cfg.overwrite,
        progress=progress or ProgressSink(),
        total_frames=0,  # nothing is decoded: progress counts samples
        total_samples=cfg.num_samples,
        manifest_extra={"backgrounds": backgrounds, "objects": objects},
        prepare=lambda folder: build_store(cfg, folder / STORE_NAME, objects),  # OUT, or its staging folder
        executor=cfg.executor_options(device),
    )

