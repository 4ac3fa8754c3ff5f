"""``blursynth train-check``: validate shards and prove they are learnable (thin command)."""

from __future__ import annotations

import sys

import click

from blursynth.cli import options


@click.command("train-check", short_help="Validate shards, train a small model briefly and measure the gain.")
@click.argument("out", required=False, default=None, metavar="[OUT]")
@click.option("--steps", type=int, default=300, show_default=True, help="Adam steps.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Random crops per step.")
@click.option("--crop", type=int, default=96, show_default=True, help="Training crop side (multiple of 4).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate (cosine to 10%).")
@click.option("--width", type=int, default=24, show_default=True, help="Channels of every scale's ResBlocks.")
@click.option("--blocks", type=int, default=2, show_default=True, help="ResBlocks per scale.")
@click.option("--min-gain-db", type=float, default=0.5, show_default=True,
              help="Fail (exit 3) when the model beats the blurry input by less than this PSNR gain.")
@click.option("--eval-samples", type=int, default=32, show_default=True, help="Evaluation samples (at most).")
@click.option("--eval-crop", type=int, default=512, show_default=True,
              help="Centre crop for evaluation (multiple of 4; images smaller than it are used whole).")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Without a val split: the last fraction of every train shard is held out for evaluation.")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--report", "report_dir", default=None, metavar="DIR",
              help="report.json and triptychs [default: OUT/train_check, or ./train_check for the quick check].")
@options.apply(options.seed, options.device, options.verbose, options.quiet)
@click.pass_context
def train_check(ctx, out, steps, batch_size, crop, lr, width, blocks, min_gain_db, eval_samples, eval_crop, holdout,
                workers, report_dir, seed, device):
    """Check that a dataset is valid and learnable, end to end.

    Validates every shard of OUT against the format contract, trains a small coarse-to-fine network
    (3-scale Gaussian pyramid, ResBlocks without the ReLU after the shortcut, residual added to the blurry
    input; Nah et al. / Noroozi et al.) on random crops of train, and compares PSNR/SSIM of the blurry input
    and of the model on val (or on the held-out end of every train shard), inside the mask too where masks
    exist. Exit codes: 0 passed, 1 error, 3 validation failed or the gain is below --min-gain-db. Without
    OUT, a small dataset is built from the bundled example clip and checked (about a minute on 2 CPU cores).

    \b
    Examples:
      blursynth train-check
      blursynth train-check out/ --steps 2000 --device cuda
    """
    from blursynth.config.train import TrainCheckConfig
    from blursynth.train.check import run_train_check

    cfg = TrainCheckConfig(out=out, steps=steps, batch_size=batch_size, crop=crop, lr=lr, width=width, blocks=blocks,
                           device=device, min_gain_db=min_gain_db, eval_samples=eval_samples, eval_crop=eval_crop,
                           holdout=holdout, report_dir=report_dir, seed=seed, workers=workers)
    quiet = ctx.find_root().obj.get("verbosity", 0) < 0
    _, passed = run_train_check(cfg, echo=None if quiet else click.echo)
    if not passed:
        sys.exit(3)
