"""``blursynth inspect``: thin command; the report is built in stats/report.py."""

from __future__ import annotations

import click

from blursynth.cli import options


@click.command(short_help="Report on a produced dataset: counts, N, PSNR, masks, rejections, contact sheet.")
@click.argument("out", metavar="OUT")
@click.option("--report", "report_dir", default=None, metavar="DIR",
              help="Where report.json, histograms.png and contact_sheet.png go [default: OUT/report].")
@click.option("--max-samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples (seeded draw over the whole dataset) whose images are measured.")
@click.option("--sheet", type=click.IntRange(min=0), default=8, show_default=True,
              help="Random samples shown in the contact sheet (blur | sharp | mask or blur map).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the draws of the measured samples and of the contact-sheet samples.")
@options.apply(options.verbose, options.quiet)
@click.pass_context
def inspect(ctx, out, report_dir, max_samples, sheet, seed):
    """Summarise an output folder written by any blursynth command.

    Counts per split and shard, resolutions, the histogram of N, PSNR(blur, sharp), mask area and blur-map
    histograms where present, rejected windows, failures and skipped inputs, plus a contact sheet of random
    samples. Only complete shards are read (those with a _stats.json marker); partial files are listed as
    ignored.

    \b
    Examples:
      blursynth inspect out/
      blursynth inspect lbs_out/ --report reports/lbs --max-samples 200 --sheet 12
    """
    from blursynth.stats.report import inspect_dataset

    report = inspect_dataset(out, report_dir, max_samples=max_samples, sheet=sheet, seed=seed)
    if ctx.find_root().obj.get("verbosity", 0) >= 0:
        _print(report, report_dir or f"{out}/report")


def _print(report: dict, where) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = report["totals"]
    splits = ", ".join(f"{k} {v['samples']} in {v['shards']} shards" for k, v in t["by_split"].items())
    console.print(f"[bold]{report['out']}[/]: {report['command']} ({report['status']}), {t['samples']} samples: "
                  f"{splits}")
    console.print("resolutions: " + ", ".join(f"{k} ×{v}" for k, v in report["resolutions"].items()))
    console.print("N: " + ", ".join(f"{k}: {v}" for k, v in report["n_frames"].items()))
    table = Table(title=f"measured on {report['measured_samples']} samples")
    for col in ("measure", "mean", "p5", "median", "p95"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    rows = [("PSNR(blur, sharp) dB", report["psnr_db"]), ("mask area", report.get("mask_area")),
            ("blur map px", report.get("blur_map_px"))]
    for name, s in rows:
        if s and s.get("count"):
            table.add_row(name, *(f"{s[k]:.3g}" for k in ("mean", "p5", "median", "p95")))
    console.print(table)
    if report["psnr_db"].get("identical"):
        console.print(f"[yellow]{report['psnr_db']['identical']} measured samples have blur == sharp[/]")
    if report["rejected_windows"]:
        console.print("rejected windows: " + ", ".join(f"{k} {v}" for k, v in report["rejected_windows"].items()))
    if report["failures"]:
        console.print(f"[yellow]{len(report['failures'])} failure(s)[/], first: {report['failures'][0].get('path')}: "
                      f"{report['failures'][0].get('reason')}")
    ignored = {k: len(v) for k, v in report["ignored"].items() if v}
    if ignored:
        console.print("[yellow]ignored:[/] " + ", ".join(f"{k} {v}" for k, v in ignored.items()))
    sheet = ""
    if report["contact_sheet"]["samples"]:
        scale = report["contact_sheet"]["scale"]
        unit = "" if scale["unit"] == "fraction" else f" {scale['unit']}"
        sheet = f", contact_sheet.png ({scale['column']} on one scale, 0 to {scale['max_shown']:g}{unit})"
    console.print(f"report: {where}/report.json, histograms.png{sheet}")
