#!/usr/bin/env python
"""Throughput of ``blursynth average --recipe wild`` next to its decode-only bound, measured in one run.

Uses the same synthetic 1280x720, 240 fps H.264 clip as bench_average.py (textured, panned, zoomed and
rotated, with sensor noise). Measures, in this order and in one process:

  (a)  decode alone: ``read_video`` (the tool's decoder settings);
  (a3) decode + x3 area downsampling in the prefetch thread (what WILD does before anything else);
  (w)  ``blursynth average --recipe wild`` end to end to HDF5 on CPU (DIS flow, blur maps), and the same
       with ``--flow farneback``; the ratio (w)/(a) says how far the recipe is from the decode bound.

Usage:
    python benchmarks/bench_wild.py [--work DIR] [--frames N] [--repeat R] [--json FILE] [--flows dis,farneback]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bench_average():
    spec = importlib.util.spec_from_file_location("bench_average", HERE / "bench_average.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_average"] = module
    spec.loader.exec_module(module)
    return module


def decode(clip: str, factor: int) -> dict:
    from blursynth.io.prefetch import prefetch
    from blursynth.io.video import probe_video, read_video
    from blursynth.ops.images import downsample_frames

    info = probe_video(clip)
    t0, c0 = time.perf_counter(), time.process_time()
    frames = read_video(clip, info)
    if factor > 1:
        frames = prefetch(downsample_frames(frames, factor), depth=4)
    n = sum(1 for _ in frames)
    seconds = time.perf_counter() - t0
    return {"frames": n, "seconds": seconds, "fps": n / seconds, "cpu_s": time.process_time() - c0}


def wild(clip: str, out: str, flow: str) -> dict:
    from blursynth.config import AverageConfig, resolve_recipe
    from blursynth.recipes.average import run_average

    values = resolve_recipe("wild", flow=flow)
    cfg = AverageConfig(inputs=(clip,), out=out, recipe="wild", device="cpu", overwrite=True, **values)
    shutil.rmtree(out, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run_average(cfg)
    seconds = time.perf_counter() - t0
    frames = sum(r.frames for r in summary.results)
    rejected = {}
    for r in summary.results:
        for k, v in r.rejections.items():
            rejected[k] = rejected.get(k, 0) + v
    return {"frames": frames, "samples": summary.samples, "rejected": rejected, "seconds": seconds,
            "fps": frames / seconds, "cpu_s": time.process_time() - c0}


def best(runs: list[dict]) -> dict:
    out = dict(min(runs, key=lambda r: r["seconds"]))
    out["runs_fps"] = [round(r["fps"], 1) for r in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench")
    ap.add_argument("--frames", type=int, default=480)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--flows", default="dis,farneback")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    ba = _bench_average()
    clip, clip_stats = ba.ensure_clip(args.work, args.frames)
    import blursynth.recipes.wild  # noqa: F401  (imports are not timed)

    results = {"clip": clip_stats}
    results["decode"] = best([decode(str(clip), 1) for _ in range(args.repeat)])
    results["decode_x3"] = best([decode(str(clip), 3) for _ in range(args.repeat)])
    for flow in args.flows.split(","):
        out = str(args.work / f"wild_{flow}")
        results[f"wild_{flow}"] = best([wild(str(clip), out, flow) for _ in range(args.repeat)])
    a = results["decode"]["fps"]
    print(f"\n{'measurement':<28} {'frames/s':>9} {'CPU s':>7} {'vs decode':>10}  notes")
    for name, r in results.items():
        if name == "clip":
            continue
        note = ""
        if "samples" in r:
            note = f"{r['samples']} samples kept, rejected windows {r['rejected'] or {}}"
        print(f"{name:<28} {r['fps']:9.1f} {r['cpu_s']:7.1f} {r['fps'] / a:10.2f}  {note}  runs {r['runs_fps']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
