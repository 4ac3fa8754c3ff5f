#!/usr/bin/env python
"""Scaling of ``average`` and ``local`` with the executors: ``--workers 1`` (the baseline, measured in the same
run), ``--workers 2`` and ``--executor ray`` (a private local Ray instance on this machine's CPUs).

Every measurement is the real command line, ``python -m blursynth ... -q``, in a fresh process, timed from
start to exit (interpreter start-up, imports, worker spawn or Ray start-up included: what a user waits for).
The outputs of the three executors are compared array for array; the report says whether they are identical.

Workloads (inputs cached in the work dir):
  average  4 sources: the 1280x720 240 fps H.264 clip of bench_average.py (``--frames`` frames) hard-linked
           under 4 names, gopro recipe (7-13 frames, back-to-back windows), h5, CPU;
  local    the 1280x720 backgrounds and synthetic VOC root of bench_local.py, ``--num-samples`` samples,
           N = 13, shards of 8 (one unit per shard), CPU.

Reported per workload and executor: wall seconds, throughput (frames/s or samples/s), the speed-up over
``--workers 1``, the peak RSS summed over the run's process tree and the largest single process, and output
equality.

Usage:
    python benchmarks/bench_scaling.py [--work DIR] [--frames N] [--samples K] [--repeat R] [--no-ray]
                                       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import environment, warn_if_busy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_cli(args: list[str]) -> dict:
    """Run ``python -m blursynth ARGS``; wall seconds and the peak RSS summed over its process tree (driver,
    workers, and for Ray its daemons), sampled every 50 ms from /proc. (``ru_maxrss`` is useless here: a
    forked child inherits the parent's high-water mark.)"""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "blursynth", *args], stdout=subprocess.DEVNULL, stderr=err)
        peak_total = peak_one = 0.0
        while proc.poll() is None:
            sizes = [_rss_mb(p) for p in _tree(proc.pid)]
            peak_total, peak_one = max(peak_total, sum(sizes)), max(peak_one, max(sizes, default=0.0))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"blursynth {args[0]} failed ({proc.returncode}): {tail}")
    return {"wall_s": wall, "tree_rss_mb": peak_total, "max_process_rss_mb": peak_one}


def executors(with_ray: bool) -> list[tuple[str, list[str]]]:
    runs = [("workers 1", ["--workers", "1"]), ("workers 2", ["--workers", "2"])]
    if with_ray:
        runs.append(("ray", ["--executor", "ray"]))
    return runs


def measure(name: str, base_args, out_root: Path, units: float, unit_name: str, repeat: int, with_ray: bool):
    """Run every executor ``repeat`` times (interleaved, best wall time kept) and compare the outputs."""
    from scale_data import assert_same_dataset

    rows = {label: [] for label, _ in executors(with_ray)}
    for r in range(repeat):
        for label, extra in executors(with_ray):
            out = out_root / f"{name}-{label.replace(' ', '')}"
            shutil.rmtree(out, ignore_errors=True)
            rows[label].append(run_cli([*base_args(out), *extra, "-q"]))
            print(f"  {name:7s} {label:9s} run {r + 1}: {rows[label][-1]['wall_s']:.2f} s", flush=True)
    results = []
    base = min(x["wall_s"] for x in rows["workers 1"])
    reference = out_root / f"{name}-workers1"
    for label, runs in rows.items():
        wall = min(x["wall_s"] for x in runs)
        out = out_root / f"{name}-{label.replace(' ', '')}"
        try:
            assert_same_dataset(out, reference)
            same = True
        except AssertionError:
            same = False
        results.append({"workload": name, "executor": label, "wall_s": wall, "rate": units / wall,
                        "unit": unit_name, "speedup": base / wall, "tree_rss_mb": max(x["tree_rss_mb"] for x in runs),
                        "max_process_rss_mb": max(x["max_process_rss_mb"] for x in runs),
                        "identical_to_workers_1": same})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="Cache folder for inputs (default: a temp dir).")
    parser.add_argument("--frames", type=int, default=480, help="Frames per average source (4 sources).")
    parser.add_argument("--samples", type=int, default=96, help="Samples of the local workload.")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per executor; the best is kept.")
    parser.add_argument("--no-ray", action="store_true", help="Skip the Ray executor.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    import bench_average
    import bench_local

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    with_ray = not args.no_ray
    env = environment(("blursynth", "torch", "av", "opencv-contrib-python-headless", "h5py", "ray"))
    warn_if_busy("the speed-ups compare runs made back to back")

    clip, _ = bench_average.ensure_clip(work, args.frames)
    videos = work / f"videos_{args.frames}"
    videos.mkdir(exist_ok=True)
    for i in range(4):
        link = videos / f"source{i}.mp4"
        if not link.exists():
            os.link(clip, link)
    inputs, _ = bench_local.ensure_inputs(work)
    outs = work / "outs"
    outs.mkdir(exist_ok=True)

    results = measure(
        "average", lambda out: ["average", str(videos), str(out), "--device", "cpu"], outs, 4 * args.frames,
        "frames/s", args.repeat, with_ray)
    results += measure(
        "local", lambda out: ["local", "--voc", str(inputs / "VOC2012"), "--bg", str(inputs / "backgrounds"),
                              str(out), "--num-samples", str(args.samples), "--frames", "13", "--shard-size", "8",
                              "--device", "cpu"],
        outs, args.samples, "samples/s", args.repeat, with_ray)

    print(f"\n{'workload':9s} {'executor':10s} {'wall s':>8s} {'rate':>16s} {'x w1':>6s} {'tree RSS MB':>12s} "
          f"{'max proc MB':>12s} {'identical':>9s}")
    for r in results:
        rate = f"{r['rate']:.1f} {r['unit']}"
        print(f"{r['workload']:9s} {r['executor']:10s} {r['wall_s']:8.2f} {rate:>16s} {r['speedup']:6.2f} "
              f"{r['tree_rss_mb']:12.0f} {r['max_process_rss_mb']:12.0f} "
              f"{'yes' if r['identical_to_workers_1'] else 'NO':>9s}")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["identical_to_workers_1"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
