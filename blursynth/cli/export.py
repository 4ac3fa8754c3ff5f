"""``blursynth export``: shards to GOPRO_Large, BasicSR folders or BasicSR LMDB (thin command)."""

from __future__ import annotations

import click

from blursynth.cli import options
from blursynth.shards.export import EXPORT_LAYOUTS


@click.command(short_help="Export shards to GOPRO_Large, BasicSR paired folders or BasicSR LMDB.")
@click.argument("out", metavar="OUT")
@click.argument("dest", metavar="DEST")
@click.option("--layout", type=click.Choice(EXPORT_LAYOUTS), required=True,
              help="gopro: <split>/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png; basicsr: <split>/{blur,sharp}/ "
                   "+ meta_info.txt; lmdb: <split>/{blur,sharp}.lmdb (BasicSR). Masks are exported where present.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty DEST.")
@options.apply(options.verbose, options.quiet)
@click.pass_context
def export(ctx, out, dest, layout, overwrite):
    """Write the complete shards of OUT to DEST in a layout existing trainers read.

    \b
    Examples:
      blursynth export out/ gopro_tree/ --layout gopro
      blursynth export out/ basicsr/ --layout basicsr
      blursynth export out/ lmdb/ --layout lmdb     # BasicSR: dataroot_gt: lmdb/train/sharp.lmdb
    """
    from blursynth.shards.export import export as run_export

    stats = run_export(out, dest, layout, overwrite=overwrite)
    if ctx.find_root().obj.get("verbosity", 0) >= 0:
        splits = ", ".join(f"{k} {v}" for k, v in stats["by_split"].items())
        click.echo(f"exported {stats['samples']} samples ({splits}) to {dest} as {layout}")
