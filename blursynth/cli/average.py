"""``blursynth average``: thin command; parsing and reporting only, the work is in recipes/average.py."""

from __future__ import annotations

import click

from blursynth.cli import options
from blursynth.cli.progress import create_progress
from blursynth.config import RECIPES, AverageConfig, parse_frames, parse_layout, resolve_recipe


@click.command(short_help="Average consecutive high-fps frames into blurry/sharp pairs.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.argument("out", nargs=1, metavar="OUT")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default="gopro", show_default=True,
              help="Preset: gopro (Nah et al.) and lode use odd N in 7-13, back-to-back windows, gamma 2.2.")
@click.option("--frames", "frames_text", default=None,
              help="Frames averaged per sample: an odd number (9) or odd range (7-13) [recipe default].")
@click.option("--stride", type=int, default=None,
              help="Frames between window starts (default: back-to-back; smaller overlaps, larger leaves gaps).")
@click.option("--max-per-source", type=int, default=None,
              help="At most this many samples per source, spread evenly over it.")
@click.option("--fps", type=float, default=None, help="Frame rate of frame-folder sources (recorded in meta).")
@options.apply(options.crf, options.gamma, options.seed, options.val_fraction, options.shard_size,
               options.layout, options.compression, options.device, options.backend, options.batch_frames,
               options.overwrite, options.verbose, options.quiet)
@click.pass_context
def average(ctx, inputs, out, recipe, frames_text, stride, max_per_source, fps, crf, gamma, seed, val_fraction,
            shard_size, layout, compression, device, backend, batch_frames, overwrite):
    """Average consecutive frames of high-fps videos or frame folders in linear light.

    INPUT is a video file, a folder searched recursively for videos, or a folder of frame images (one
    sequence per folder, natural sort order). OUT receives manifest.json and train/ and val/ shards.
    Running the same command again resumes; completed shards are kept.

    \b
    Examples:
      blursynth average GOPRO_Large_all/ out/ --fps 240 --val-fraction 0.1
      blursynth average clip.mp4 out/ --frames 9 --stride 4 --layout h5,gopro
    """
    values = resolve_recipe(
        recipe, frames=parse_frames(frames_text) if frames_text is not None else None,
        stride=stride, crf=crf, gamma=gamma,
    )
    cfg = AverageConfig(
        inputs=tuple(inputs), out=out, recipe=recipe, frames=values["frames"], stride=values["stride"],
        max_per_source=max_per_source, crf=values["crf"], gamma=float(values["gamma"]), seed=seed,
        val_fraction=val_fraction, shard_size=shard_size, layout=parse_layout(layout), compression=compression,
        fps=fps, device=device, backend=backend, batch_frames=batch_frames, overwrite=overwrite,
    )
    from blursynth.recipes.average import run_average

    verbosity = ctx.find_root().obj.get("verbosity", 0)
    summary = run_average(cfg, progress=create_progress(verbosity))
    if verbosity >= 0:
        splits = ", ".join(f"{k} {v}" for k, v in
                           {s: sum(m["count"] for m in summary.shards if m["split"] == s)
                            for s in ("train", "val")}.items() if v)
        failed = len(summary.failures)
        tail = f"; {failed} source(s) skipped or incomplete, see manifest.json" if failed else ""
        click.echo(f"wrote {summary.samples} samples ({splits}) in {len(summary.shards)} shards to {out}{tail}")
