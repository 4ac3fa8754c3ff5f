"""One source as a work unit: what planned (``average.py``) and flow-selected (``wild.py``) windows share.

Both ways of choosing windows decode a source once, average its windows with the same accumulators, build
the same ``Sample`` and hand it to the same ``UnitSink``; they differ only in when a window becomes known
(before decoding, or while decoding from the flow). Everything on either side of that choice lives here, so
the two runners cannot drift apart (same CRF channels, same reader, same metadata, same failure commit).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from blursynth.config import AverageConfig
from blursynth.errors import SourceError
from blursynth.io.frames import probe_frames, read_frames
from blursynth.io.prefetch import prefetch
from blursynth.io.repeats import RepeatCadence, drop_repeats, probe_repeats
from blursynth.io.sources import Source
from blursynth.io.video import SourceInfo, probe_video, read_video
from blursynth.ops.accumulate import Channel, create_accumulator
from blursynth.ops.crf import create_crf
from blursynth.ops.images import downsample_frames
from blursynth.ops.windows import Window
from blursynth.recipes.camera import camera_settings, render_blur, saturation_mask, static_before_camera
from blursynth.recipes.ghosting import PairSampler
from blursynth.run.progress import ProgressSink
from blursynth.run.sink import UnitSink
from blursynth.run.units import ShardSlot, UnitResult
from blursynth.sample import Sample

log = logging.getLogger("blursynth.average")


@dataclass(frozen=True)
class AverageUnit:
    """One source to turn into samples; picklable, so executors can ship it to workers.

    ``windows`` is the plan of the planned recipes. With optical flow (``config.uses_flow``) windows are chosen
    while decoding (recipes/wild.py); ``windows`` is then empty and ``slots`` cover the most windows the
    source could yield.

    With a repeat cadence (``repeats``), frames are numbered by instant: ``info.num_frames`` counts instants,
    windows and the frames :func:`read_source` yields use instant numbers, and :func:`make_sample` records
    the original frame numbers.
    """

    source: Source
    info: SourceInfo
    windows: tuple[Window, ...]
    split: str
    slots: tuple[ShardSlot, ...]
    config: AverageConfig
    repeats: RepeatCadence | None = None

    @property
    def online(self) -> bool:
        return self.config.uses_flow

    @property
    def frames_to_decode(self) -> int:
        return self.info.num_frames if self.online else max(w.stop for w in self.windows)


def probe_source(source: Source, fps: float | None) -> SourceInfo:
    """Frame count, size and bit depth of a video file or a frame folder.

    ``fps`` (``--fps``) is the frame rate of a folder, which has none, and overrides a video's container
    rate (a high-speed clip stored at 25 fps), which is kept as ``container_fps``.
    """
    if source.kind == "video":
        info = probe_video(source.path)
        return info if fps is None else replace(info, fps=fps, container_fps=info.fps)
    return probe_frames(source.path, fps)


def probe_source_repeats(source: Source, info: SourceInfo,
                         sampler: PairSampler | None = None) -> RepeatCadence | None:
    """The source's repeat cadence (io/repeats.py), comparing frames as decoded (videos: without RGB).

    ``sampler`` (recipes/ghosting.py) keeps a few of the frames decoded here for the ghosting guard.
    """
    def frames(limit: int | None):
        if source.kind == "video":
            decoded = read_video(source.path, info, native=True)
        else:
            decoded = read_frames(source.path, info)
        passing = (frame for _, frame in itertools.islice(decoded, limit))
        if sampler is None:
            return passing
        return sampler.watch(passing, min(info.num_frames, limit or info.num_frames))

    return probe_repeats(frames, info.num_frames)


#: Decoded frames the decode thread may run ahead of the accumulator, in bytes (4 to 32 frames): the CPU
#: accumulator works in bursts (a whole window when its last frame arrives, ops/window_sum.py), and a queue
#: of 4 frames stalled the decoder through each burst (issue 20: 0.5-0.9 s of 2.7 s blocked, 720p).
PREFETCH_BYTES = 48 << 20


def prefetch_depth(info: SourceInfo, downsample: int = 1) -> int:
    """Frames to decode ahead: :data:`PREFETCH_BYTES` worth of decoded frames, 4 to 32."""
    frame_bytes = info.width * info.height * 3 * (2 if info.bit_depth > 8 else 1) // max(1, downsample) ** 2
    return max(4, min(32, PREFETCH_BYTES // max(1, frame_bytes)))


def read_source(unit: AverageUnit) -> Iterator[tuple[int, np.ndarray]]:
    """The unit's ``(index, frame)`` pairs, decoded and downsampled in a background thread, up to
    :func:`prefetch_depth` frames ahead.

    Downsampling runs in the decode thread too (cv2 releases the GIL), so it overlaps with averaging. With
    a repeat cadence only the first frame of each instant is converted and yielded, numbered by instant.
    """
    path, repeats = unit.source.path, unit.repeats
    info = unit.info if repeats is None else replace(unit.info, num_frames=repeats.num_frames)
    if unit.source.kind == "video":
        decoded = read_video(path, info, wanted=None if repeats is None else set(repeats.instants))
    else:
        decoded = read_frames(path, info)
    if repeats is not None:
        decoded = drop_repeats(decoded, repeats)
    if unit.config.downsample > 1:
        decoded = downsample_frames(decoded, unit.config.downsample)
    return prefetch(decoded, depth=prefetch_depth(unit.info, unit.config.downsample))


def create_unit_accumulator(unit: AverageUnit, windows: Sequence[Window], device: str, *, online: bool = False,
                            disjoint: bool | None = None):
    """The accumulator of one unit: the configured CRF, plus a linear channel for the GOPRO layout.

    GOPRO_Large ships ``blur/`` (the plain mean of code values, i.e. the linear CRF) next to ``blur_gamma/``,
    so ``--layout gopro`` averages both from the same frames in one pass. See
    :func:`blursynth.ops.accumulate.create_accumulator` for ``online`` and ``disjoint``.
    """
    cfg = unit.config
    n_max = cfg.frames[1]
    # With the camera the first channel is the window's linear-light mean, rendered by make_sample.
    output = "mean" if cfg.camera_on else "code"
    channels = [Channel.create(create_crf(cfg.crf, cfg.gamma), unit.info.bit_depth, n_max, output)]
    if "gopro" in cfg.layout or cfg.keep_plain_mean:
        channels.append(Channel.create(create_crf("linear"), unit.info.bit_depth, n_max))
    if cfg.records_saturation:  # always the last channel (make_sample takes it off)
        channels.append(Channel.saturation(unit.info.bit_depth))
    if cfg.continuous:  # --substeps / --duty-cycle: sub-frame samples synthesised from the flow
        from blursynth.flow import create_flow
        from blursynth.ops.exposure import ExposureAccumulator, load_interpolator

        name = cfg.flow or "dis"
        flow = create_flow(name, device=device, raft_model=cfg.raft_model, raft_weights=cfg.raft_weights)
        backward = create_flow(name) if name in ("dis", "deepflow", "farneback") else None  # OpenCV: a 2nd thread
        learned = None if cfg.interpolator is None else load_interpolator(cfg.interpolator, device)
        return ExposureAccumulator(windows, channels, substeps=cfg.substeps, duty_cycle=cfg.duty_cycle, flow=flow,
                                   device=device, interpolation=cfg.interpolation, interpolator=learned,
                                   interpolator_path=cfg.interpolator or "", source=unit.source.path,
                                   flow_backward=backward)
    return create_accumulator(cfg.backend, windows, channels, device=device, batch_frames=cfg.batch_frames,
                              online=online, disjoint=disjoint)


def open_sink(unit: AverageUnit, out: Path, slots: Sequence[ShardSlot], result: UnitResult,
              progress: ProgressSink, **options) -> UnitSink:
    """The unit's shard writer with the configured layouts and compression (``options``: see ``UnitSink``)."""
    cfg = unit.config
    if cfg.keep_plain_mean and "h5" in cfg.layout:  # the plain mean in the shards too (export's gopro blur/)
        options["extra_datasets"] = (*options.get("extra_datasets", ()), "blur_linear")
    if cfg.records_saturation and "h5" in cfg.layout:
        options["extra_datasets"] = (*options.get("extra_datasets", ()), "sat_mask")
    return UnitSink(out, unit.source.key, unit.source.path, slots, result, layouts=cfg.layout,
                    compression=cfg.compression, progress=progress, static="drop" if cfg.drop_static else "count",
                    **options)


def exposure_meta(unit: AverageUnit, acc, w: Window) -> dict | None:
    """The continuous-exposure meta of window ``w`` when the unit averages sub-frame samples, else None.

    Decided from the config, so a plain run never imports ``ops/exposure.py`` (and torch with it).
    """
    return acc.take_meta(w) if unit.config.continuous else None


def make_sample(unit: AverageUnit, w: Window, encoded: list[np.ndarray], sharp: np.ndarray,
                exposure: dict | None = None) -> Sample:
    """The sample of window ``w``: ``encoded`` holds one average per channel, ``sharp`` its middle frame.

    ``exposure`` (:func:`exposure_meta`): K, sample spacing and displacements of a continuous exposure; the
    sample then records the virtual frame rate and the exposure of its M samples.

    Frame numbers are the source's own. With a repeat cadence the window's instants map back to the first
    frame of each; the exposure spans every frame of its instants, repeats included (``duplicate_frames``
    of them), and ``time`` is the original middle frame's.
    """
    cfg, info, repeats = unit.config, unit.info, unit.repeats
    frames, center, span = w.frames, w.center, w.n
    if repeats is not None:
        frames = [repeats.instants[k] for k in w.frames]
        center = repeats.instants[w.center]
        span = repeats.end(w.stop - 1) - frames[0]
    meta = {
        "source": unit.source.key,
        "sample": f"{unit.source.key}#{w.index:05d}",
        "split": unit.split,
        "frames": frames,
        "center": center,
        "n_frames": w.n,
        "fps": info.fps,
        "time": (center / info.fps) if info.fps else None,
        "exposure": (span / info.fps) if info.fps else None,
        "crf": cfg.crf,
        "gamma": cfg.gamma if cfg.crf == "gamma" else None,
        "recipe": cfg.recipe,
        "seed": cfg.seed,
        "bit_depth": info.bit_depth,
    }
    if exposure is not None:
        spacing = exposure.pop("sample_spacing")  # frame units between consecutive samples
        meta.update(exposure)
        meta["virtual_fps"] = info.fps / spacing if info.fps else None
        meta["exposure"] = exposure["exposure_samples"] * spacing / info.fps if info.fps else None
    if info.container_fps is not None:
        meta["container_fps"] = info.container_fps
    if repeats is not None:
        meta["duplicate_frames"] = span - w.n
    if cfg.downsample > 1:
        meta["downsample"] = cfg.downsample
    encoded = list(encoded)
    fraction = encoded.pop() if cfg.records_saturation else None
    extras = {"blur_linear": encoded[1]} if len(encoded) > 1 else {}
    blur = encoded[0]
    if fraction is not None:
        extras["sat_mask"] = saturation_mask(fraction)
    static = None
    if cfg.camera_on:  # encoded[0] is the linear mean: the camera renders the blurry image from it
        crf = create_crf(cfg.crf, cfg.gamma)
        static = static_before_camera(blur, crf, sharp)  # --drop-static: the window before the camera
        blur, meta["camera"] = render_blur(camera_settings(cfg), cfg.seed, meta["sample"], blur, crf, fraction)
    return Sample(blur=blur, sharp=sharp, meta=meta, extras=extras, static=static)


def commit_failed_source(sink: UnitSink, result: UnitResult, exc: SourceError, **marker) -> None:
    """A source failed while decoding (truncated, corrupt, a frame of another size): keep what is complete.

    The shard in progress is committed ``final`` (with nothing open this writes an empty final marker), so a
    resume does not wait for shards that can never exist. ``marker``: more marker fields (``rejections``).
    """
    result.status, result.reason = ("partial" if result.samples else "failed"), str(exc.reason)
    result.path = exc.path
    log.warning("%s: %s", exc.path, exc.reason)
    sink.commit(final=True, status=result.status, reason=exc.reason, path=exc.path, **marker)
