"""The ``blursynth`` command group: logging, verbosity, version, and the subcommands."""

from __future__ import annotations

import click

from blursynth import __version__
from blursynth.cli.average import average
from blursynth.cli.export import export
from blursynth.cli.inspect import inspect
from blursynth.cli.local import local
from blursynth.cli.logs import configure_logging
from blursynth.cli.stats import stats
from blursynth.cli.train_check import train_check


class _Group(click.Group):
    """The command group; records the command line it parses (the manifest's ``argv``)."""

    def make_context(self, info_name, args, parent=None, **extra):
        from blursynth.run.provenance import record_invocation

        record_invocation([info_name or "blursynth", *args])
        return super().make_context(info_name, args, parent=parent, **extra)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="blursynth")
@click.option("-v", "--verbose", count=True, help="More output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Build motion-deblurring training datasets from high-fps video.

    Frames are averaged in linear light, B = g((1/M) sum g^-1(S[i])) with g(x) = x^(1/2.2) by default,
    the middle frame is the sharp ground truth, and pairs are written to HDF5 shards with a manifest
    that records everything needed to regenerate them.

    \b
    Examples:
      blursynth average examples/clips out/ --recipe gopro --val-fraction 0.25
      blursynth local --voc VOCdevkit/VOC2012 --bg REDS/train_sharp lbs_out/ --num-samples 1000
    """
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = -1 if quiet else verbose
    configure_logging(ctx.obj["verbosity"])


cli.add_command(average)
cli.add_command(local)
cli.add_command(stats)
cli.add_command(inspect)
cli.add_command(train_check)
cli.add_command(export)


def main() -> None:
    from blursynth import interrupt
    from blursynth.run.host import tune_process

    tune_process()  # before any large array exists (blursynth/run/host.py)

    interrupt.install()  # Ctrl-C, and SIGTERM (a scheduler, `timeout`, `kill`), stop cleanly and are never lost
    cli(prog_name="blursynth")
