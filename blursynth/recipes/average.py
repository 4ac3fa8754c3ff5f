"""The frame-averaging recipes (GOPRO: Nah et al. 2017; LODE) as planned, resumable work units.

Planning (``plan_average``) probes every source, draws its windows from the seeded generator, assigns whole
sources to splits and gives every source a fixed range of shard numbers (in key order). A work unit
(``AverageUnit``) is one source; ``run_unit`` decodes it once, streams frames through the accumulator and
writes the samples of the shards that are not complete yet. Because the plan is a pure function of the
sources and the configuration, a resumed or re-scheduled run writes the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blursynth.config import AverageConfig
from blursynth.device import resolve_device_name
from blursynth.errors import SourceError
from blursynth.io.frames import probe_frames, read_frames
from blursynth.io.prefetch import prefetch
from blursynth.io.sources import Source, discover_sources
from blursynth.io.video import SourceInfo, probe_video, read_video
from blursynth.ops.accumulate import (
    Channel,
    StreamingAccumulator,
    create_accumulator,
    single_threaded_kernels,
)
from blursynth.ops.crf import create_crf
from blursynth.ops.images import downsample_frames, downsampled_size, to_uint8
from blursynth.ops.splits import assign_splits
from blursynth.ops.windows import Window, max_windows_bound, plan_windows
from blursynth.run.progress import ProgressSink
from blursynth.run.sink import UnitSink
from blursynth.run.units import ShardSlot, UnitResult, allocate_slots, finished_unit
from blursynth.sample import Sample
from blursynth.seeding import create_rng
from blursynth.shards.manifest import check_out, quick_hash

log = logging.getLogger("blursynth.average")

#: Below this frame rate consecutive frames are too far apart in time and averages ghost.
MIN_FPS = 100.0


@dataclass(frozen=True)
class AverageUnit:
    """One source to turn into samples; picklable, so executors can ship it to workers.

    ``windows`` is the plan of the planned recipes. With optical flow (``config.uses_flow``) windows are chosen
    while decoding (recipes/wild.py); ``windows`` is then empty and ``slots`` cover the most windows the
    source could yield.
    """

    source: Source
    info: SourceInfo
    windows: tuple[Window, ...]
    split: str
    slots: tuple[ShardSlot, ...]
    config: AverageConfig

    @property
    def online(self) -> bool:
        return self.config.uses_flow

    @property
    def frames_to_decode(self) -> int:
        return self.info.num_frames if self.online else max(w.stop for w in self.windows)


@dataclass
class AveragePlan:
    units: list[AverageUnit]
    sources: list[dict]  # manifest entries for every discovered source
    failures: list[dict]  # sources that cannot be used at all


def probe_source(source: Source, fps: float | None) -> SourceInfo:
    if source.kind == "video":
        return probe_video(source.path)
    return probe_frames(source.path, fps)


def plan_average(cfg: AverageConfig, sources: list[Source]) -> AveragePlan:
    """Probe the sources and plan windows, splits and shard numbers."""
    splits = assign_splits([s.key for s in sources], cfg.val_fraction, cfg.seed)
    entries: list[dict] = []
    failures: list[dict] = []
    planned: list[tuple[Source, SourceInfo, list[Window]]] = []
    warned_fps = False
    # With one source its failure becomes the run's one-line error; a warning would only repeat it.
    skip_log = log.warning if len(sources) > 1 else log.debug
    for src in sources:
        entry = {"key": src.key, "path": src.path, "kind": src.kind, "split": splits[src.key]}
        entries.append(entry)
        try:
            info = probe_source(src, cfg.fps)
            entry.update(size=info.size_bytes, hash=quick_hash(src.path))
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
            reason = f"shorter than one window ({info.num_frames} frames < {cfg.frames[0]})"
            skip_log("skipping %s: %s", src.path, reason)
            entry.update(status="skipped", reason=reason)
            failures.append({"source": src.key, "path": src.path, "reason": reason})
            continue
        planned.append((src, info, windows, count))

    units = []
    counters: dict[str, int] = {}
    for src, info, windows, count in planned:
        split = splits[src.key]
        slots = allocate_slots(split, count, cfg.shard_size, counters)
        units.append(AverageUnit(src, info, tuple(windows), split, slots, cfg))
    return AveragePlan(units, entries, failures)


def run_unit(unit: AverageUnit, out: str | Path, progress: ProgressSink | None = None) -> UnitResult:
    """Produce the samples of one source, skipping shards that are already complete.

    A source that fails while decoding (truncated, corrupt, a frame of another size) keeps the samples of
    the windows that were complete; the shard in progress is committed and marked ``final`` so a resume
    does not wait for shards that can never exist.
    """
    progress = progress or ProgressSink()
    out = Path(out)
    cfg = unit.config
    key = unit.source.key
    markers, resumed = finished_unit(out, key, unit.slots, progress)
    if resumed is not None:
        return resumed
    done = [m for m in markers.values() if m is not None]

    todo = [slot for slot in unit.slots if markers[slot.shard] is None]
    slot_of = {}
    for slot in todo:
        for w in unit.windows[slot.first : slot.stop]:
            slot_of[w.index] = slot
    windows = [w for w in unit.windows if w.index in slot_of]
    centers = {w.center for w in windows}
    last_needed = max(w.stop for w in windows)

    crf = create_crf(cfg.crf, cfg.gamma)
    n_max = cfg.frames[1]
    channels = [Channel.create(crf, unit.info.bit_depth, n_max)]
    if "gopro" in cfg.layout:  # GOPRO_Large ships blur/ (linear CRF) next to blur_gamma/
        channels.append(Channel.create(create_crf("linear"), unit.info.bit_depth, n_max))
    device = resolve_device_name(cfg.device)
    acc = create_accumulator(cfg.backend, windows, channels, device=device, batch_frames=cfg.batch_frames)

    result = UnitResult(key, "ok", shards=list(done))
    sharp: dict[int, np.ndarray] = {}
    progress.source_started(key, last_needed)
    sink = UnitSink(out, key, unit.source.path, todo, result, layouts=cfg.layout, compression=cfg.compression,
                    progress=progress)

    def handle(emitted) -> None:
        for w, encoded in emitted:
            sink.add(w.index, make_sample(unit, w, encoded, sharp.pop(w.center)))

    reader = read_video if unit.source.kind == "video" else read_frames
    decoded = reader(unit.source.path, unit.info)
    if cfg.downsample > 1:
        decoded = downsample_frames(decoded, cfg.downsample)
    frames = prefetch(decoded, depth=4)
    kernels = single_threaded_kernels() if isinstance(acc, StreamingAccumulator) else contextlib.nullcontext()
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
        result.status, result.reason = ("partial" if result.samples else "failed"), str(exc.reason)
        result.path = exc.path
        log.warning("%s: %s", exc.path, exc.reason)
        # With nothing open this writes an empty final marker, so a resume knows the source is finished.
        sink.commit(final=True, status=result.status, reason=exc.reason, path=exc.path)
    except BaseException:
        sink.abort()
        raise
    progress.source_finished(key, result.status, result.samples, result.reason)
    return result


def make_sample(unit: AverageUnit, w: Window, encoded: list[np.ndarray], sharp: np.ndarray) -> Sample:
    cfg, info = unit.config, unit.info
    meta = {
        "source": unit.source.key,
        "sample": f"{unit.source.key}#{w.index:05d}",
        "split": unit.split,
        "frames": w.frames,
        "center": w.center,
        "n_frames": w.n,
        "fps": info.fps,
        "time": (w.center / info.fps) if info.fps else None,
        "exposure": (w.n / info.fps) if info.fps else None,
        "crf": cfg.crf,
        "gamma": cfg.gamma if cfg.crf == "gamma" else None,
        "recipe": cfg.recipe,
        "seed": cfg.seed,
        "bit_depth": info.bit_depth,
    }
    if cfg.downsample > 1:
        meta["downsample"] = cfg.downsample
    extras = {"blur_linear": encoded[1]} if len(encoded) > 1 else {}
    return Sample(blur=encoded[0], sharp=sharp, meta=meta, extras=extras)


def run_average(cfg: AverageConfig, progress: ProgressSink | None = None):
    """Run ``blursynth average``: discover, plan, execute and write the manifest.

    Returns:
        :class:`blursynth.run.job.JobSummary`.

    Raises:
        InputError, ConfigError, OutputError: with one-line messages naming the file and the reason.
    """
    from blursynth.run.executors.ray_cluster import connect_ray
    from blursynth.run.job import run_job

    device = resolve_device_name(cfg.device)  # fail early on --device cuda without a GPU
    if cfg.uses_flow:  # and on a flow backend that cannot be created (missing torchvision, weights, contrib)
        from blursynth.flow import create_flow

        create_flow(cfg.flow, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
    check_out(cfg.out)  # and on an OUT that can never be written, before probing any source
    if cfg.executor == "ray":  # and on a missing or unreachable Ray
        connect_ray(cfg.ray_address)
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
        total_samples=None if cfg.uses_flow else sum(len(u.windows) for u in plan.units),
        executor=cfg.executor_options(device),
    )


def run_average_unit(unit: AverageUnit, out: str | Path, progress: ProgressSink | None = None) -> UnitResult:
    """Run one unit: planned windows (``run_unit``) or flow-selected windows (``recipes.wild``)."""
    if unit.online:
        from blursynth.recipes.wild import run_flow_unit

        return run_flow_unit(unit, out, progress)
    return run_unit(unit, out, progress)
