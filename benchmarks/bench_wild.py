#!/usr/bin/env python
"""Throughput of ``blursynth average --recipe wild`` next to decoding in the fastest PyAV mode, alone and with
the x3 area downsampling WILD does first, on bench_average.py's clip. See benchmarks/README.md.

``--baseline DIR`` also runs WILD from another checkout (``git worktree add --detach DIR REV``: its package on
PYTHONPATH), alternating with this one, for a before/after in one run; the table then gives the speed-up and
checks that both kept the same windows (the same number of samples and rejections).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import bench_average
import harness
from harness import best, rate


def worker_decode_x3(spec: dict) -> dict:
    import cv2

    def shrink(rgb) -> None:
        cv2.resize(rgb, (rgb.shape[1] // 3, rgb.shape[0] // 3), interpolation=cv2.INTER_AREA)

    n, fig = harness.timed(lambda: bench_average.decode(spec["clip"], spec["mode"], shrink))
    return {"n": n, **fig}


def worker_wild(spec: dict) -> dict:
    import blursynth.recipes.average  # noqa: F401  (imports are not timed)

    harness.check_package(spec)
    harness.cli_here(["--version"])
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    args = ["average", spec["clip"], str(out), "--recipe", "wild", "--flow", spec["flow"], "--device", "cpu", "-q"]
    _, fig = harness.timed(lambda: harness.cli_here(args))
    rejected: dict[str, int] = {}
    for marker in out.glob("*/*_stats.json"):
        for reason, count in json.loads(marker.read_text()).get("rejections", {}).items():
            rejected[reason] = rejected.get(reason, 0) + count
    samples = len(harness.shard_metas(out))
    shutil.rmtree(out, ignore_errors=True)
    return {"n": spec["frames"], **fig, "samples": samples, "rejected": rejected}


WORKERS = {"encode": bench_average.worker_encode, "decode": bench_average.worker_decode,
           "decode_x3": worker_decode_x3, "wild": worker_wild}


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--frames", type=int, default=480, help="frames in the clip (default: %(default)s)")
    p.add_argument("--flows", default="dis,farneback", help="flow backends (default: %(default)s)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another blursynth checkout to run WILD from as well (a git worktree of the old revision)")
    args = harness.parse(p, WORKERS, argv)
    bench = harness.Bench(__file__, args, bench_average.DISTS)
    clip, bench.report["clip"] = bench_average.ensure_clip(bench, args.frames)
    spec = {"clip": str(clip), "frames": args.frames}
    print("decode, every PyAV threading mode once", flush=True)
    modes = {m: bench.child("decode", {**spec, "mode": m}) for m in bench_average.MODES}
    mode = max(modes, key=lambda m: rate(modes[m]))
    plan = [(f"decode {mode}", lambda: bench.child("decode", {**spec, "mode": mode})),
            (f"decode {mode} + x3", lambda: bench.child("decode_x3", {**spec, "mode": mode}))]
    plan += [(f"wild {flow}", lambda flow=flow: bench.child("wild", {**spec, "flow": flow,
                                                                     "out": str(bench.work / f"wild_{flow}")}))
             for flow in args.flows.split(",")]
    if args.baseline is not None:
        base = args.baseline.resolve()
        env = {"PYTHONPATH": str(base)}
        plan += [(f"wild {flow} (baseline)",
                  lambda flow=flow: bench.child("wild", {**spec, "flow": flow, "package": str(base / "blursynth"),
                                                         "out": str(bench.work / f"wild_{flow}_base")}, env=env))
                 for flow in args.flows.split(",")]
    runs = harness.alternate(plan, max(1, args.repeat or 2), "frames")
    res = bench.report["best"] = {name: best(rs) for name, rs in runs.items()}
    a = res[f"decode {mode}"]
    harness.table(("measurement", "frames/s", "CPU s", "vs decode", "peak MB", "notes"),
                  [(name, f"{rate(r):.1f}", f"{r['cpu_s']:.1f}", f"{rate(r) / rate(a):.2f}", f"{r['peak_rss_mb']:.0f}",
                    f"{r['samples']} samples kept, rejected windows {r['rejected']}" if "samples" in r else "")
                   for name, r in res.items()])
    print(f"vs decode: frames/s over PyAV thread_type={mode}, the fastest of "
          + ", ".join(f"{m} {rate(r):.1f}" for m, r in modes.items()) + " frames/s")
    for flow in args.flows.split(",") if args.baseline is not None else []:
        new, old = res[f"wild {flow}"], res[f"wild {flow} (baseline)"]
        same = (new["samples"], new["rejected"]) == (old["samples"], old["rejected"])
        bench.report.setdefault("speedup", {})[flow] = rate(new) / rate(old)
        print(f"wild {flow}: {rate(new) / rate(old):.2f}x the baseline's frames/s, CPU {new['cpu_s']:.1f} s vs "
              f"{old['cpu_s']:.1f} s; same samples and rejections: {same}")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
