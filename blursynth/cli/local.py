"""``blursynth local``: thin command; parsing and reporting only, the work is in recipes/local.py."""

from __future__ import annotations

import click

from blursynth.cli import options
from blursynth.cli.progress import create_progress, raise_for_errors, split_counts
from blursynth.config import RECIPES, LocalConfig, parse_frames, parse_layout, parse_range, parse_size
from blursynth.config.local import parse_substeps
from blursynth.errors import ConfigError
from blursynth.objects.patch import MIN_AREA

DEFAULT_OUT = "lbs_out"


@click.command(short_help="Local blur synthesis: move VOC/COCO objects over sharp backgrounds (LODE).")
@click.argument("out", required=False, default=DEFAULT_OUT, metavar="[OUT]")
@click.option("--bg", "backgrounds", multiple=True, required=True, metavar="DIR",
              help="Sharp backgrounds: a folder searched recursively for images (REDS train_sharp works as is). "
                   "Repeatable.")
@click.option("--voc", type=click.Path(), default=None, metavar="VOC2012",
              help="PASCAL VOC 2012 root (JPEGImages/, SegmentationObject/, SegmentationClass/, optional "
                   "ImageSets/Segmentation/); a VOC-format export without split files uses every masked image.")
@click.option("--voc-split", type=click.Choice(["train", "val", "trainval"]), default="trainval", show_default=True,
              help="VOC segmentation split (ImageSets/Segmentation/SPLIT.txt) the objects come from, where the "
                   "root has split files.")
@click.option("--coco", type=click.Path(), default=None, metavar="JSON",
              help="COCO instances JSON (polygons and RLE; crowd regions are skipped). With or instead of --voc.")
@click.option("--coco-images", type=click.Path(), default=None, metavar="DIR",
              help="Folder the COCO file_name entries are relative to.")
@click.option("--coco-categories", default=None, metavar="NAMES",
              help="Comma-separated COCO category names to keep (default: all).")
@click.option("--min-object-area", type=float, default=MIN_AREA, show_default=True,
              help="Skip objects smaller than this many pixels (alpha mass).")
@click.option("--num-samples", type=int, default=1000, show_default=True, help="Samples to synthesise.")
@click.option("--moving-objects", type=int, default=2, show_default=True,
              help="Moving objects per sample (LODE: 2).")
@click.option("--static-objects", "static_text", default="0-2", show_default=True,
              help="Static objects per sample: a number or a range drawn per sample.")
@click.option("--object-scale", type=float, default=1.2, show_default=True,
              help="Factor applied to every object patch (LODE: 1.2, VOC objects are small next to REDS frames).")
@click.option("--frames", "frames_text", default=None,
              help="Trajectory length N (odd) or odd range; frames averaged per sample [7-13, as LODE].")
@click.option("--translate", "translate_text", default="1:6", show_default=True,
              help="Object speed range in px per step; the direction is uniform over 360 degrees.")
@click.option("--scale", "scale_text", default="0.97:1.03", show_default=True,
              help="Per-step scale factor range (motion along z), drawn log-uniformly.")
@click.option("--rotate", "rotate_text", default="-3:3", show_default=True,
              help="Per-step rotation range in degrees (positive: counter-clockwise).")
@click.option("--crop", "crop_text", default=None, metavar="HxW",
              help="Random crop of every background (default: whole backgrounds, which must share one size).")
@click.option("--substeps", "substeps_text", default="auto", show_default=True, metavar="K|auto",
              help="Sub-steps per trajectory step: the N frames become (N-1)*K+1 equally weighted samples of the "
                   "same trajectory (continuous exposure, no discrete copies); auto: per sample the smallest K "
                   "(at most 32) with which no point of a moving object moves more than 1 px between samples. "
                   "1: the N discrete frames only (the staircase of copies of blursynth before issue 18).")
@click.option("--duty-cycle", type=float, default=1.0, show_default=True, metavar="TAU",
              help="Fraction 0 < TAU <= 1 of the trajectory the exposure covers, centred on the sharp (middle) "
                   "frame: still (N-1)*K+1 samples, spread over TAU*(N-1) steps (so between the poses even at "
                   "--substeps 1); auto counts the shorter sample spacing.")
@options.apply(options.crf, options.gamma, options.local_seed, options.local_val_fraction, options.shard_size,
               options.layout, options.compression, options.local_device, options.local_backend, *options.cameras,
               *options.executors, options.overwrite, options.verbose, options.quiet)
@click.pass_context
def local(ctx, out, backgrounds, voc, voc_split, coco, coco_images, coco_categories, min_object_area, num_samples,
          moving_objects, static_text, object_scale, frames_text, translate_text, scale_text, rotate_text, crop_text,
          substeps_text, duty_cycle, crf, gamma, seed, val_fraction, shard_size, layout, compression, device, backend,
          executor, workers, ray_address, retries, overwrite, **camera):
    """Synthesise local blur (LODE/BladeNet Sec. 4.1): segmented objects move over sharp backgrounds.

    Each sample pastes --moving-objects objects (scaled by --object-scale) on a background, moves them along
    a seeded trajectory of odd length N (a random choice and order of translation, scaling and rotation at
    every step), averages the exposure in linear light and keeps the middle frame as the sharp image and the
    fraction of the exposure each pixel is covered by a moving object as a mask. The exposure is continuous
    by default (--substeps auto: each step rendered at enough sub-steps that no object point moves more than
    1 px between them); --substeps 1 averages the N frames only. Static objects appear
    identically in blur and sharp. OUT (default: lbs_out) receives manifest.json, objects.h5 (the object
    bank) and train/ and val/ shards with blur, sharp and mask; running again resumes.

    \b
    Examples:
      blursynth local --voc VOCdevkit/VOC2012 --bg REDS/train_sharp out/ --num-samples 10000
      blursynth local --coco instances_val2017.json --coco-images val2017 --bg backgrounds/ --crop 256x256
      blursynth local --voc VOC2012 --bg REDS/train_sharp out/ --layout h5,gopro --val-fraction 0.1
      blursynth local --voc VOC2012 --bg REDS/train_sharp out/ --substeps 1   # N discrete frames, no sub-steps
      blursynth local --voc VOC2012 --bg REDS/train_sharp out/ --duty-cycle 0.5   # half the trajectory exposed
      blursynth local --voc VOC2012 --bg REDS/train_sharp out/ --num-samples 100000 --workers 2
      blursynth local --voc /shared/VOC2012 --bg /shared/REDS /shared/lbs --executor ray --ray-address auto
      blursynth local --voc VOC2012 --bg REDS/train_sharp out/ --camera rsblur
    """
    if gamma is not None and crf not in (None, "gamma"):
        raise ConfigError(f"--gamma: only used with --crf gamma, not --crf {crf}")
    categories = None
    if coco_categories is not None:
        categories = tuple(c.strip() for c in coco_categories.split(",") if c.strip())
        if not categories:
            raise ConfigError(f"--coco-categories: expected comma-separated category names, got {coco_categories!r}")
    cfg = LocalConfig(
        backgrounds=tuple(backgrounds), out=out, voc=voc, voc_split=voc_split, coco=coco, coco_images=coco_images,
        coco_categories=categories,
        num_samples=num_samples, moving_objects=moving_objects,
        static_objects=parse_range(static_text, "--static-objects", integer=True), object_scale=object_scale,
        min_object_area=min_object_area,
        frames=parse_frames(frames_text) if frames_text is not None else RECIPES["lode"].frames,
        translate=parse_range(translate_text, "--translate"), scale=parse_range(scale_text, "--scale"),
        rotate=parse_range(rotate_text, "--rotate"), crop=parse_size(crop_text) if crop_text else None,
        crf=crf or "gamma", gamma=float(gamma if gamma is not None else 2.2), seed=seed, val_fraction=val_fraction,
        shard_size=shard_size, layout=parse_layout(layout), compression=compression, device=device,
        backend=backend, substeps=parse_substeps(substeps_text), duty_cycle=duty_cycle,
        overwrite=overwrite, executor=executor, **options.camera_fields(camera),
        workers=workers, ray_address=ray_address, retries=retries,
    )
    from blursynth.recipes.local import run_local

    verbosity = ctx.find_root().obj.get("verbosity", 0)
    summary = run_local(cfg, progress=create_progress(verbosity))
    if verbosity >= 0:
        splits = split_counts(summary)
        skipped = summary.skipped_inputs
        tail = f"; {len(skipped)} background(s) unreadable, see manifest.json" if skipped else ""
        if summary.failures:
            tail += f"; {len(summary.failures)} shard(s) incomplete"
        click.echo(f"wrote {summary.samples} samples ({splits}) in {len(summary.shards)} shards to {out}{tail}")
    raise_for_errors(summary)
