#!/usr/bin/env python
"""Scaling of ``average`` and ``local`` with the executors (``--workers 1`` baseline, ``--workers 2``, ``--executor
ray``), the real command line timed from start to exit; outputs compared array for array (exit 1 if they differ).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import bench_average
import bench_local
import harness


def same_dataset(a: Path, b: Path) -> bool:
    """Two outputs hold the same shard files with identical arrays and meta."""
    import h5py
    import numpy as np

    files = sorted(p.relative_to(a) for p in a.glob("*/*.h5"))
    if files != sorted(p.relative_to(b) for p in b.glob("*/*.h5")):
        return False
    for rel in files:
        with h5py.File(a / rel, "r") as fa, h5py.File(b / rel, "r") as fb:
            if sorted(fa) != sorted(fb) or not all(np.array_equal(fa[k][()], fb[k][()]) for k in fa):
                return False
    return True


def measure(bench: harness.Bench, name: str, args, units: float, unit: str, executors, repeat: int) -> list[dict]:
    """Every executor ``repeat`` times (alternating, best wall time kept); outputs compared with workers 1."""
    out = {label: bench.work / "outs" / f"{name}-{label.replace(' ', '')}" for label, _ in executors}

    def run(label: str, extra: list[str]) -> dict:
        shutil.rmtree(out[label], ignore_errors=True)
        return {**bench.cli([*args(out[label]), *extra, "-q"]), "n": units}

    runs = harness.alternate([(f"{name} {label}", lambda a=(label, extra): run(*a)) for label, extra in executors],
                           repeat, unit)
    base = min(r["seconds"] for r in runs[f"{name} workers 1"])
    results = []
    for label, _ in executors:
        rs = runs[f"{name} {label}"]
        wall = min(r["seconds"] for r in rs)
        results.append({"workload": name, "executor": label, "wall_s": wall, "rate": units / wall, "unit": unit,
                        "speedup": base / wall, "tree_rss_mb": max(r["tree_rss_mb"] for r in rs),
                        "max_process_rss_mb": max(r["max_process_rss_mb"] for r in rs),
                        "identical": same_dataset(out[label], out["workers 1"])})
    return results


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--frames", type=int, default=480, help="frames per average source (4 sources)")
    p.add_argument("--samples", type=int, default=96, help="samples of the local workload")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = harness.parse(p, {"encode": bench_average.worker_encode, "gen": bench_local.worker_gen}, argv)
    bench = harness.Bench(__file__, args, ("blursynth", "torch", "av", "opencv-contrib-python-headless", "h5py", "ray"))
    clip, _ = bench_average.ensure_clip(bench, args.frames)
    videos = bench.work / f"videos_{args.frames}"
    videos.mkdir(exist_ok=True)
    for i in range(4):
        if not (videos / f"source{i}.mp4").exists():
            os.link(clip, videos / f"source{i}.mp4")
    inputs = bench_local.ensure_inputs(bench)
    executors = [("workers 1", ["--workers", "1"]), ("workers 2", ["--workers", "2"])]
    executors += [] if args.no_ray else [("ray", ["--executor", "ray"])]
    repeat = max(1, args.repeat or 2)
    results = measure(bench, "average", lambda out: ["average", str(videos), str(out), "--device", "cpu"],
                      4 * args.frames, "frames", executors, repeat)
    results += measure(bench, "local", lambda out: [
        "local", "--voc", str(inputs / "VOC2012"), "--bg", str(inputs / "backgrounds"), str(out), "--num-samples",
        str(args.samples), "--frames", "13", "--shard-size", "8", "--device", "cpu"],
        args.samples, "samples", executors, repeat)
    shutil.rmtree(bench.work / "outs", ignore_errors=True)
    harness.table(("workload", "executor", "wall s", "rate", "x w1", "tree RSS MB", "max proc MB", "identical"),
                  [(r["workload"], r["executor"], f"{r['wall_s']:.2f}", f"{r['rate']:.1f} {r['unit']}/s",
                    f"{r['speedup']:.2f}", f"{r['tree_rss_mb']:.0f}", f"{r['max_process_rss_mb']:.0f}",
                    "yes" if r["identical"] else "NO")
                   for r in results])
    bench.report["results"] = results
    bench.finish()
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
