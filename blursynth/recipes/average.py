"""The frame-averaging recipes (GOPRO: Nah et al. 2017; LODE) as planned, resumable work units.

Planning (``plan_average``) probes every source, draws its windows from the seeded generator, assigns whole
sources to splits and gives every source a fixed range of shard numbers (in key order). A work unit
(``AverageUnit``, recipes/source_unit.py) is one source; ``run_planned_unit`` decodes it once, streams frames
through the accumulator and writes the samples of the shards that are not complete yet. Because the plan is
a pure function of the sources and the configuration, a resumed or re-scheduled run writes the same bytes.
With optical flow (the WILD recipe, ``--max-step-px``) windows are chosen while decoding (recipes/wild.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from blursynth.config import AverageConfig
from blursynth.device import resolve_device_name
from blursynth.errors import SourceError
from blursynth.io.repeats import RepeatCadence
from blursynth.io.sources import Source, discover_sources
from blursynth.io.video import SourceInfo
from blursynth.ops.accumulate import single_threaded_kernels
from blursynth.ops.images import downsampled_size, to_uint8
from blursynth.ops.splits import assign_splits
from blursynth.ops.windows import Window, max_windows_bound, plan_windows
from blursynth.recipes.camera import camera_settings
from blursynth.recipes.ghosting import PairSampler, source_displacement, warn_ghosting
from blursynth.recipes.source_unit import (
    AverageUnit,
    commit_failed_source,
    create_unit_accumulator,
    exposure_meta,
    make_sample,
    open_sink,
    probe_source,
    probe_source_repeats,
    read_source,
)
from blursynth.recipes.wild import run_flow_unit
from blursynth.run.preflight import preflight
from blursynth.run.progress import ProgressSink
from blursynth.run.units import UnitResult, allocate_slots, finished_unit
from blursynth.seeding import create_rng
from blursynth.shards.manifest import quick_hash
from blursynth.shards.markers import ShardMarker

log = logging.getLogger("blursynth.average")

#: Below this frame rate consecutive frames are too far apart in time and averages ghost.
MIN_FPS = 100.0


@dataclass
class AveragePlan:
    units: list[AverageUnit]
    sources: list[dict]  # manifest entries for every discovered source
    failures: list[dict]  # sources that cannot be used at all


def plan_average(cfg: AverageConfig, sources: list[Source]) -> AveragePlan:
    """Probe the sources and plan windows, splits and shard numbers."""
    splits = assign_splits([s.key for s in sources], cfg.val_fraction, cfg.seed)
    entries: list[dict] = []
    failures: list[dict] = []
    planned: list[tuple[Source, SourceInfo, list[Window], int, RepeatCadence | None]] = []
    warned_fps = False
    # With one source its failure becomes the run's one-line error; a warning would only repeat it.
    skip_log = log.warning if len(sources) > 1 else log.debug
    for src in sources:
        entry = {"key": src.key, "path": src.path, "kind": src.kind, "split": splits[src.key]}
        entries.append(entry)
        try:
            info = probe_source(src, cfg.fps)
            entry.update(size=info.size_bytes, hash=quick_hash(src.path))
            # The ghosting guard (GOPRO, LODE); flow-selected windows measure every pair, and sub-frame samples
            # (--substeps) record each window's displacement in its meta, so neither needs it.
            sampler = None if cfg.uses_flow or cfg.continuous else PairSampler(info)
            repeats = probe_source_repeats(src, info, sampler)
        except SourceError as exc:
            skip_log("skipping %s", exc)
            entry.update(status="failed", reason=exc.reason, failed_path=exc.path)
            failures.append({"source": src.key, "path": exc.path, "reason": exc.reason})
            continue
        except OSError as exc:
            reason = f"cannot read ({exc.strerror or exc})"
            skip_log("skipping %s: %s", src.path, reason)
            entry.update(status="failed", reason=reason, failed_path=src.path)
            failures.append({"source": src.key, "path": src.path, "reason": reason})
            continue
        entry.update(
            frames=info.num_frames, fps=info.fps, width=info.width, height=info.height,
            bit_depth=info.bit_depth, pix_fmt=info.pix_fmt, codec=info.codec,
        )
        if info.container_fps is not None:
            entry["container_fps"] = info.container_fps
        if repeats is not None:
            log.warning("%s: frames repeat in a regular cadence; %d repeats of %d frames dropped "
                        "(each instant counts once)", src.path, repeats.duplicate_frames, info.num_frames)
            entry["duplicate_frames"] = repeats.duplicate_frames
            info = replace(info, num_frames=len(repeats.instants))
        if info.fps is None and not warned_fps:
            log.warning("frame folders have no frame rate; pass --fps so samples record it")
            warned_fps = True
        elif info.fps is not None and info.fps < MIN_FPS:
            log.warning(
                "%s: %.4g fps is below %g fps; averaging frames this far apart ghosts (staircase artifacts)",
                src.path, info.fps, MIN_FPS,
            )
            entry["warning"] = f"{info.fps:.4g} fps < {MIN_FPS:g} fps"
        if cfg.uses_flow:  # chosen online from the flow; reserve shard numbers for the most there can be
            windows = []
            count = max_windows_bound(info.num_frames, cfg.frames, stride=cfg.stride, max_windows=cfg.max_per_source)
            entry["max_windows"] = count
        else:
            rng = create_rng(cfg.seed, "windows", src.key)
            windows = plan_windows(
                info.num_frames, cfg.frames, rng, stride=cfg.stride, max_windows=cfg.max_per_source
            )
            count = len(windows)
            entry["windows"] = count
        if cfg.downsample > 1:
            entry["output_size"] = list(downsampled_size(info.width, info.height, cfg.downsample))
        if not count:
            what = "frames" if repeats is None else "frames after dropping repeats"
            reason = f"shorter than one window ({info.num_frames} {what} < {cfg.frames[0]})"
            skip_log("skipping %s: %s", src.path, reason)
            entry.update(status="skipped", reason=reason)
            failures.append({"source": src.key, "path": src.path, "reason": reason})
            continue
        if sampler is not None:
            displacement = source_displacement(sampler, cfg.downsample)
            if displacement is not None:
                entry["frame_displacement_p99"] = displacement
                warn_ghosting(src.path, displacement)
        planned.append((src, info, windows, count, repeats))

    units = []
    counters: dict[str, int] = {}
    for src, info, windows, count, repeats in planned:
        split = splits[src.key]
        slots = allocate_slots(split, count, cfg.shard_size, counters)
        units.append(AverageUnit(src, info, tuple(windows), split, slots, cfg, repeats))
    return AveragePlan(units, entries, failures)


def run_planned_unit(unit: AverageUnit, out: Path, markers: dict[int, ShardMarker | None],
                     progress: ProgressSink) -> UnitResult:
    """Produce the samples of one source's planned windows, skipping shards that are already complete.

    ``markers``: the marker of every slot's shard, None where it is still to be written.
    A source that fails while decoding (truncated, corrupt, a frame of another size) keeps the samples of
    the windows that were complete; the shard in progress is committed and marked ``final`` so a resume
    does not wait for shards that can never exist.
    """
    key = unit.source.key
    done = [m for m in markers.values() if m is not None]

    todo = [slot for slot in unit.slots if markers[slot.shard] is None]
    slot_of = {}
    for slot in todo:
        for w in unit.windows[slot.first : slot.stop]:
            slot_of[w.index] = slot
    windows = [w for w in unit.windows if w.index in slot_of]
    centers = {w.center for w in windows}
    last_needed = max(w.stop for w in windows)
    acc = create_unit_accumulator(unit, windows, resolve_device_name(unit.config.device))

    result = UnitResult(key, "ok", shards=list(done))
    sharp: dict[int, np.ndarray] = {}
    progress.source_started(key, last_needed)
    sink = open_sink(unit, out, todo, result, progress)

    def handle(emitted) -> None:
        for w, encoded in emitted:
            sink.add(w.index, make_sample(unit, w, encoded, sharp.pop(w.center), exposure_meta(unit, acc, w)))

    frames = read_source(unit)
    kernels = single_threaded_kernels() if getattr(acc, "own_threads", False) else contextlib.nullcontext()
    try:
        with contextlib.closing(frames), kernels:
            for index, frame in frames:
                if index in centers:
                    sharp[index] = to_uint8(frame)
                handle(acc.push(index, frame))
                result.frames += 1
                progress.advance(frames=1)
                if index + 1 >= last_needed:
                    break
            handle(acc.finish())
        if result.frames < last_needed:
            raise SourceError(unit.source.path, f"ended after {result.frames} of {last_needed} frames")
    except SourceError as exc:
        commit_failed_source(sink, result, exc)
    except BaseException:
        sink.abort()
        raise
    progress.source_finished(key, result.status, result.samples, result.reason)
    return result


def run_average(cfg: AverageConfig, progress: ProgressSink | None = None):
    """Run ``blursynth average``: discover, plan, execute and write the manifest.

    Returns:
        :class:`blursynth.run.job.JobSummary`.

    Raises:
        InputError, ConfigError, OutputError: with one-line messages naming the file and the reason.
    """
    from blursynth.run.job import run_job

    device = preflight(out=cfg.out, device=cfg.device, executor=cfg.executor, ray_address=cfg.ray_address,
                       flow=cfg if cfg.uses_flow else None)
    if cfg.interpolator is not None:  # a broken model file fails here, before OUT is touched
        from blursynth.ops.exposure import load_interpolator

        load_interpolator(cfg.interpolator, device)
    camera_settings(cfg)  # an unknown --camera-matrix fails here, before OUT is touched
    sources = discover_sources(cfg.inputs, exclude=[cfg.out])
    plan = plan_average(cfg, sources)
    return run_job(
        command="average",
        out=cfg.out,
        config=cfg.to_dict(),
        fingerprint=cfg.fingerprint(),
        units=plan.units,
        unit_key=lambda u: u.source.key,
        unit_fn=run_average_unit,
        source_entries=plan.sources,
        failures=plan.failures,
        overwrite=cfg.overwrite,
        progress=progress or ProgressSink(),
        total_frames=sum(u.frames_to_decode for u in plan.units),
        total_samples=None if cfg.uses_flow or cfg.drop_static else sum(len(u.windows) for u in plan.units),
        executor=cfg.executor_options(device),
    )


def run_average_unit(unit: AverageUnit, out: str | Path, progress: ProgressSink | None = None) -> UnitResult:
    """Run one unit, unless all its shards are complete: planned or flow-selected windows (``recipes.wild``)."""
    progress = progress or ProgressSink()
    out = Path(out)
    markers, resumed = finished_unit(out, unit.source.key, unit.slots, progress)
    if resumed is not None:
        return resumed
    run = run_flow_unit if unit.online else run_planned_unit
    return run(unit, out, markers, progress)
