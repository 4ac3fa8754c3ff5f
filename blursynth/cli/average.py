"""``blursynth average``: thin command; parsing and reporting only, the work is in recipes/average.py."""

from __future__ import annotations

import click

from blursynth.cli import options
from blursynth.cli.progress import create_progress, raise_for_errors, split_counts
from blursynth.config import DEFAULT_MAX_MATCH_ERROR, RECIPES, AverageConfig, parse_frames, parse_layout, resolve_recipe
from blursynth.config.average import INTERPOLATION_NAMES
from blursynth.config.local import parse_substeps
from blursynth.errors import ConfigError
from blursynth.flow.names import FLOW_NAMES, FLOW_STAT_NAMES, RAFT_MODELS


@click.command(short_help="Average consecutive high-fps frames into blurry/sharp pairs.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.argument("out", nargs=1, metavar="OUT")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default="gopro", show_default=True,
              help="Preset: gopro (Nah et al.) and lode use odd N in 7-13, back-to-back windows, gamma 2.2; "
                   "wild (Noroozi et al.) downsamples x3, N in 7-23, keeps windows whose flow stays <= 1 px "
                   "and stores blur maps; reds (Nah et al. 2019) averages 5 frames of 120 fps footage "
                   "interpolated x16 (65 samples, a virtual 1920 fps), one sample per 5 frames.")
@click.option("--frames", "frames_text", default=None,
              help="Frames averaged per sample: an odd number (9) or odd range (7-13) [recipe default].")
@click.option("--stride", type=int, default=None,
              help="Frames between window starts (default: back-to-back; smaller overlaps, larger leaves gaps).")
@click.option("--max-per-source", type=int, default=None,
              help="At most this many samples per source, spread evenly over it.")
@click.option("--fps", type=float, default=None,
              help="Frame rate of the sources (recorded in meta): needed for frame folders; for a video it "
                   "overrides the container's rate (kept as container_fps).")
@click.option("--downsample", type=int, default=None,
              help="Shrink frames by this integer factor (area interpolation) before averaging [wild: 3].")
@click.option("--flow", type=click.Choice([*FLOW_NAMES, "none"]), default=None,
              help="Optical flow for the window filter, blur maps and --max-step-px [wild: dis]; "
                   "none turns the wild filter off. raft needs torchvision.")
@click.option("--flow-threshold", type=float, default=None,
              help="Keep a window only if every consecutive pair's flow statistic is <= this many pixels "
                   "(after downsampling) [wild: 1.0].")
@click.option("--flow-stat", type=click.Choice(FLOW_STAT_NAMES), default="p99", show_default=True,
              help="Per-pair flow statistic: p99 ignores the worst 1% of pixels (flow outliers), max is strict.")
@click.option("--max-match-error", type=float, default=None,
              help=f"Reject pairs whose frame-matching error (RMS gray levels after warping with the flow) "
                   f"exceeds this: the flow is unreliable there [default with flow: {DEFAULT_MAX_MATCH_ERROR:g}].")
@click.option("--max-step-px", type=float, default=None,
              help="Ghosting guard for any recipe: reject windows where any pair moves more than this "
                   "(flow statistic, pixels). Turns flow on (dis) if needed.")
@click.option("--blur-map/--no-blur-map", default=None,
              help="Store blur_map float16 (n, H, W): per-pixel blur length in pixels [wild: on].")
@click.option("--drop-static", is_flag=True, default=False,
              help="Leave out windows whose blur equals sharp exactly (nothing moved); they are counted "
                   "either way (static_windows).")
@click.option("--keep-plain-mean", is_flag=True, default=False,
              help="Also store blur_linear, the plain mean of code values (GOPRO_Large's blur/), in the shards: "
                   "export --layout gopro then writes blur/ as --layout gopro does.")
@click.option("--substeps", "substeps_text", default=None, metavar="K|auto",
              help="Continuous exposure: synthesise K - 1 frames between each pair from optical flow and average "
                   "the (N - 1) K + 1 samples (no staircase copies of fast motion); auto picks per window the "
                   "smallest K keeping motion <= 1 px per sample (at most 32) [default 1: frames only; reds: 16].")
@click.option("--duty-cycle", type=float, default=None, metavar="TAU",
              help="Exposed fraction of the window, 0 < TAU <= 1, centred on the sharp frame (a shutter open "
                   "TAU of the time); below 1 the samples are synthesised [default 1].")
@click.option("--interpolation", type=click.Choice(INTERPOLATION_NAMES), default=None,
              help="How --substeps synthesises samples from the flow: balanced (flow at half size, one bicubic "
                   "warp per sample), quality (full-size flow, two warps, occlusion handling: for accurate flow "
                   "such as RAFT; ~3x slower on CPU), fast (balanced with bilinear warps) [balanced].")
@click.option("--interpolator", type=click.Path(dir_okay=False, exists=True), default=None, metavar="FILE",
              help="A learned frame interpolator (TorchScript, or torch.export .pt2), model(frame0, frame1, t) on "
                   "frames in [0, 1] as encoded, instead of the flow-based synthesis of --substeps.")
@click.option("--raft-model", type=click.Choice(RAFT_MODELS), default="small", show_default=True,
              help="RAFT variant for --flow raft.")
@click.option("--raft-weights", type=click.Path(dir_okay=False), default=None,
              help="RAFT state-dict file (default: torchvision's registry weights).")
@options.apply(options.crf, options.gamma, options.seed, options.val_fraction, options.shard_size,
               options.layout, options.compression, options.device, options.backend, options.batch_frames,
               *options.cameras, *options.executors, options.overwrite, options.verbose, options.quiet)
@click.pass_context
def average(ctx, inputs, out, recipe, frames_text, stride, max_per_source, fps, downsample, flow, flow_threshold,
            flow_stat, max_match_error, max_step_px, blur_map, drop_static, keep_plain_mean, substeps_text, duty_cycle,
            interpolation, interpolator, raft_model, raft_weights, crf, gamma, seed,
            val_fraction, shard_size, layout, compression, device, backend, batch_frames, executor, workers,
            ray_address, retries, overwrite, **camera):
    """Average consecutive frames of high-fps videos or frame folders in linear light.

    INPUT is a video file, a folder searched recursively for videos, or a folder of frame images (one
    sequence per folder, natural sort order). OUT receives manifest.json and train/ and val/ shards.
    Running the same command again resumes; completed shards are kept.

    \b
    Examples:
      blursynth average GOPRO_Large_all/ out/ --fps 240 --val-fraction 0.1
      blursynth average clip.mp4 out/ --frames 9 --stride 4 --layout h5,gopro
      blursynth average --recipe wild videos/ out/ --flow-threshold 1.0
      blursynth average clip.mp4 out/ --max-step-px 2 --blur-map
      blursynth average clip.mp4 out/ --substeps auto
      blursynth average --recipe reds REDS_120fps/ out/ --fps 120
      blursynth average REDS_videos/ out/ --workers 2
      blursynth average /shared/videos /shared/out --executor ray --ray-address auto
      blursynth average GOPRO_Large_all/ out/ --fps 240 --camera rsblur --camera-jpeg 70,95
    """
    substeps = parse_substeps(substeps_text) if substeps_text is not None else RECIPES[recipe].substeps
    continuous = substeps != 1 or duty_cycle not in (None, 1.0)
    if interpolation is not None and not continuous:
        raise ConfigError("--interpolation sets how sub-frame samples are made: give --substeps K|auto or --duty-cycle")
    if flow == "none" and continuous:
        raise ConfigError("--substeps and --duty-cycle synthesise samples from optical flow: leave out --flow none "
                          "(or choose the flow they use with --flow)")
    values = resolve_recipe(
        recipe, frames=parse_frames(frames_text) if frames_text is not None else None,
        stride=stride, crf=crf, gamma=gamma, downsample=downsample, flow=flow, flow_threshold=flow_threshold,
        max_match_error=max_match_error, max_step_px=max_step_px, blur_map=blur_map,
        substeps=substeps if substeps_text is not None else None,
    )
    cfg = AverageConfig(
        inputs=tuple(inputs), out=out, recipe=recipe, frames=values["frames"], stride=values["stride"],
        max_per_source=max_per_source, crf=values["crf"], gamma=float(values["gamma"]), seed=seed,
        val_fraction=val_fraction, shard_size=shard_size, layout=parse_layout(layout), compression=compression,
        fps=fps, device=device, backend=backend, batch_frames=batch_frames, overwrite=overwrite,
        downsample=values["downsample"], flow=values["flow"], flow_threshold=values["flow_threshold"],
        flow_stat=flow_stat, max_match_error=values.get("max_match_error"), max_step_px=values.get("max_step_px"),
        blur_map=bool(values["blur_map"]), raft_model=raft_model, raft_weights=raft_weights, drop_static=drop_static,
        keep_plain_mean=keep_plain_mean, substeps=values["substeps"],
        duty_cycle=1.0 if duty_cycle is None else duty_cycle, interpolator=interpolator,
        interpolation=interpolation or "balanced", **options.camera_fields(camera),
        executor=executor, workers=workers, ray_address=ray_address, retries=retries,
    )
    from blursynth.recipes.average import run_average

    verbosity = ctx.find_root().obj.get("verbosity", 0)
    summary = run_average(cfg, progress=create_progress(verbosity))
    if verbosity >= 0:
        splits = split_counts(summary)
        failed = len(summary.failures)
        tail = f"; {failed} source(s) skipped or incomplete, see manifest.json" if failed else ""
        if summary.static_windows:
            done = "dropped" if drop_static else "kept"
            tail += f"; {summary.static_windows} static window(s) (blur == sharp) {done}"
        if summary.rejections:
            tail += "; rejected windows: " + ", ".join(f"{k} {v}" for k, v in summary.rejections.items())
        click.echo(f"wrote {summary.samples} samples ({splits}) in {len(summary.shards)} shards to {out}{tail}")
    raise_for_errors(summary)
