"""``blursynth export``: shards to GOPRO_Large, BasicSR folders or BasicSR LMDB (thin command)."""

from __future__ import annotations

import click

from blursynth.cli import options
from blursynth.shards.export import EXPORT_LAYOUTS, GOPRO_BLUR


@click.command(short_help="Export shards to GOPRO_Large, BasicSR paired folders or BasicSR LMDB.")
@click.argument("out", metavar="OUT")
@click.argument("dest", metavar="DEST")
@click.option("--layout", type=click.Choice(EXPORT_LAYOUTS), required=True,
              help="gopro: <train|test>/<seq>/{blur_gamma,sharp[,blur]}/NNNNNN.png; basicsr: <split>/{blur,sharp}/ "
                   "+ meta_info.txt; lmdb: <split>/{blur,sharp}.lmdb (BasicSR). Every other per-sample array "
                   "(mask, blur_map, ...) goes beside them: a folder, or a database, per array.")
@click.option("--gopro-blur", type=click.Choice(GOPRO_BLUR), default="plain", show_default=True,
              help="What blur/ holds in the gopro layout. plain: the plain mean of code values, as in "
                   "GOPRO_Large (shards made with average --keep-plain-mean; other datasets get no blur/). "
                   "gamma: the CRF average, a hard link to blur_gamma/.")
@click.option("--val-name", default=None, metavar="NAME",
              help="Folder of the val split [gopro: test, as GOPRO_Large loaders such as DeepDeblur-PyTorch "
                   "read train/ and test/ only; basicsr, lmdb: val].")
@click.option("--allow-incomplete", is_flag=True,
              help="Export a dataset whose run did not finish (manifest status running or incomplete): the "
                   "complete samples, with DEST/INCOMPLETE.txt saying so.")
@click.option("--overwrite", is_flag=True,
              help="Replace a non-empty DEST (the new export is staged beside it and swapped in when complete).")
@options.apply(options.verbose, options.quiet)
@click.pass_context
def export(ctx, out, dest, layout, gopro_blur, val_name, allow_incomplete, overwrite):
    """Write the complete shards of OUT to DEST in a layout existing trainers read.

    OUT must be a finished run (manifest status complete) unless --allow-incomplete. Images are PNG; arrays
    that are not 8-bit images (blur_map) are .npy files. Sources whose names meet once made file-safe get a
    hash of their key appended (listed in DEST/renamed_sources.json).

    \b
    Examples:
      blursynth export out/ gopro_tree/ --layout gopro     # train/ and test/
      blursynth export out/ gopro_tree/ --layout gopro --gopro-blur gamma --val-name val
      blursynth export out/ basicsr/ --layout basicsr
      blursynth export out/ lmdb/ --layout lmdb     # BasicSR: dataroot_gt: lmdb/train/sharp.lmdb
    """
    from blursynth.shards.export import export as run_export

    stats = run_export(out, dest, layout, overwrite=overwrite, allow_incomplete=allow_incomplete,
                       gopro_blur=gopro_blur, val_name=val_name)
    if ctx.find_root().obj.get("verbosity", 0) >= 0:
        splits = ", ".join(f"{k} {v}" for k, v in stats["by_split"].items())
        note = "; INCOMPLETE, see INCOMPLETE.txt" if stats["incomplete"] is not None else ""
        click.echo(f"exported {stats['samples']} samples ({splits}) to {dest} as {layout}{note}")
