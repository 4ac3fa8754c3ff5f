"""``blursynth stats``: thin command; parsing and reporting only, the work is in stats/ (curves.py)."""

from __future__ import annotations

from pathlib import Path

import click

from blursynth.cli import options
from blursynth.cli.progress import create_progress
from blursynth.config.stats import DEFAULT_SPAN_MS, StatsConfig, parse_dataset, parse_thresholds
from blursynth.errors import OutputError
from blursynth.flow.names import FLOW_NAMES, RAFT_MODELS


@click.command(short_help="Blurred-area ratio vs optical-flow threshold curves (LODE Fig. 3).")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--flow-threshold", "threshold_text", default="0:20:0.5", show_default=True,
              help="Thresholds in pixels: a list (0.5,1,2,4) or a range START:STOP:STEP (STOP included).")
@click.option("--flow", type=click.Choice(FLOW_NAMES), default="deepflow", show_default=True,
              help="Optical flow (deepflow as in the paper; dis is ~8x faster on CPU; raft needs torchvision).")
@click.option("--raw-flow", is_flag=True,
              help="Count every pixel's flow as the backend gives it (the paper's raw curve), also where motion "
                   "is not measurable (textureless or inconsistent); the default counts measurable motion only.")
@click.option("--span-ms", type=float, default=DEFAULT_SPAN_MS,
              help=f"Time between the two frames of a pair in ms; the gap is round(span x fps) frames, at least 1 "
                   f"[default: {DEFAULT_SPAN_MS:.3f} ms = 2 frames at 240 fps].")
@click.option("--pairs-per-source", type=int, default=20, show_default=True,
              help="Pairs measured per video or frame folder, one per equal slice of it (seeded).")
@click.option("--max-side", type=int, default=None,
              help="Shrink frames so that their longer side is at most this before the flow (faster); "
                   "magnitudes stay in source pixels.")
@click.option("--fps", type=float, default=None,
              help="Frame rate of sources without NAME=PATH@FPS: frame folders, and videos whose container states "
                   "another rate (the container's is recorded as container_fps).")
@click.option("--threads", type=int, default=2, show_default=True,
              help="Flow pairs computed in parallel by each worker (OpenCV flows also use threads inside).")
@click.option("--out", "out_dir", default="stats", show_default=True,
              help="Folder for blurred_area_ratio.csv, .json and .png.")
@click.option("--log-y", is_flag=True, help="Logarithmic ratio axis (shows the long tail of local blur).")
@click.option("--raft-model", type=click.Choice(RAFT_MODELS), default="small", show_default=True,
              help="RAFT variant for --flow raft.")
@click.option("--raft-weights", type=click.Path(dir_okay=False), default=None, help="RAFT state-dict file.")
@options.apply(options.seed, options.device, *options.executors, options.verbose, options.quiet)
@click.pass_context
def stats(ctx, sources, threshold_text, flow, raw_flow, span_ms, pairs_per_source, max_side, fps, threads, out_dir,
          log_y, raft_model, raft_weights, seed, device, executor, workers, ray_address, retries):
    """Measure the blurred area ratio (fraction of all pixels whose motion exceeds a threshold) against the
    threshold, one curve per dataset, over the same time span whatever the frame rate (LODE/BladeNet, Sec. 3).

    A pixel counts as moving only where its motion is measurable (textured enough for the noise level and
    forward-backward consistent): the flow a method invents on flat, noisy areas makes no visible blur. The
    fraction of measurable pixels is reported beside each curve; --raw-flow counts every pixel's flow instead,
    as the paper does.

    Each SOURCE is one dataset: a video, a folder of videos, or a folder of frame folders, labelled by its
    name or as NAME=PATH; frame folders need a frame rate, NAME=PATH@FPS or --fps. Results go to --out:
    blurred_area_ratio.csv (one row per dataset and threshold), .json (with the settings and every pair's
    source) and .png. A source slower than the span (gap clamped to 1 frame) is measured over a longer span:
    each dataset's measured span is recorded and drawn, and differing spans are warned about.

    \b
    Examples:
      blursynth stats GOPRO=GOPRO_Large_all@240 REDS=REDS/train_sharp@120 LODE=lode_clips/
      blursynth stats clips/ --flow dis --flow-threshold 0.5,1,2,4,8 --max-side 640 --log-y
      blursynth stats LODE=lode_clips/ --workers 2 --threads 1
    """
    from blursynth.stats.curves import compute_curves
    from blursynth.stats.outputs import write_stats

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    cfg = StatsConfig(
        datasets=tuple(parse_dataset(s) for s in sources), thresholds=parse_thresholds(threshold_text), flow=flow,
        raw_flow=raw_flow, span_ms=span_ms, pairs_per_source=pairs_per_source, max_side=max_side, fps=fps, seed=seed,
        threads=threads, device=device, raft_model=raft_model, raft_weights=raft_weights, executor=executor,
        workers=workers, ray_address=ray_address, retries=retries,
    )
    verbosity = ctx.find_root().obj.get("verbosity", 0)
    curves = compute_curves(cfg, progress=create_progress(verbosity))
    paths = write_stats(curves, cfg, out, log_y=log_y)
    if verbosity >= 0:
        _print_table(curves, cfg.thresholds)
        click.echo(f"wrote {paths['csv']}, {paths['json'].name} and {paths['png'].name}")
    errors = [e for c in curves for e in c.errors]
    if errors:
        from blursynth.run.job import units_failed

        raise units_failed(errors, sum(len(c.sources) for c in curves))


def _print_table(curves, thresholds, max_rows: int = 12) -> None:
    """Rows: up to ``max_rows`` thresholds spread over the list; columns: mean +- std per dataset."""
    from rich.console import Console
    from rich.table import Table

    from blursynth.stats.plots import curve_label

    n = min(max_rows, len(thresholds))
    idx = sorted({round(i * (len(thresholds) - 1) / max(1, n - 1)) for i in range(n)})
    table = Table(title="blurred area ratio (mean ± std over pairs)")
    table.add_column("threshold px", justify="right")
    for c in curves:
        table.add_column(curve_label(c), justify="right")
    for i in idx:
        table.add_row(f"{thresholds[i]:g}", *(
            "–" if not c.pairs else f"{c.mean[i]:.3f} ± {c.std[i]:.3f}" for c in curves))
    Console().print(table)
