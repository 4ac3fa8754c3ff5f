"""Speed of continuous-exposure interpolation (issue 18) on the CPU: a 1280x720 window of N = 7 frames with
K = 8 sub-steps (flow included), against plain averaging of the same frames measured in the same run.

    python benchmarks/bench_interpolate.py [--substeps 8] [--mode bicubic] [--flow-scale 0.5] [--no-occlusion]
                                           [--visibility-scale 0.5] [--impl auto|cv2|torch] [--gathers 1]
    python benchmarks/bench_interpolate.py --table   # the configurations of docs/continuous-exposure.md

Prints input frames/s (N - 1 new frames per window, as windows advance with stride N - 1 at best) for plain
averaging, for the flow alone (12 DIS flows on gray versions of the coded frames, as ``average`` makes them)
and for the whole interpolation, and the ratio to plain averaging; ``--table`` prints one markdown row per
configuration instead. Times are the best of ``--repeats`` runs (the machine may be shared: the load average
is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exposure_fixtures import ExposureScene, decode  # noqa: E402

from blursynth.ops.images import to_gray8  # noqa: E402
from blursynth.ops.interpolate import compute_window_flows, interpolate_window  # noqa: E402

#: (label, flow scale, interpolate_window options) of the --table rows.
TABLE = [
    ("torch path (grid_sample), before", 1.0, {"impl": "torch"}),
    ("default: flow 1, bicubic, occlusion (visibility at 1/2)", 1.0, {}),
    ("flow 1, bicubic, occlusion, visibility at 1/4", 1.0, {"visibility_scale": 0.25}),
    ("flow 1/2, bicubic, occlusion (misses the v = 8 object target)", 0.5, {}),
    ("flow 1/2, bicubic, no occlusion handling", 0.5, {"occlusion": False}),
    ("flow 1/2, bilinear, no occlusion handling", 0.5, {"occlusion": False, "mode": "bilinear"}),
    ("flow 1/2, bicubic, no occlusion handling, one gather (recommended)", 0.5, {"occlusion": False, "gathers": 1}),
    ("flow 1/2, bilinear, no occlusion handling, one gather (fastest)", 0.5,
     {"occlusion": False, "gathers": 1, "mode": "bilinear"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--substeps", type=int, default=8)
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--mode", default="bicubic", choices=("bilinear", "bicubic"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flow-scale", type=float, default=1.0)
    parser.add_argument("--no-occlusion", action="store_true")
    parser.add_argument("--visibility-scale", type=float, default=0.5)
    parser.add_argument("--impl", default="auto", choices=("auto", "cv2", "torch"))
    parser.add_argument("--gathers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--table", action="store_true", help="time every configuration of TABLE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    scene = ExposureScene(height=720, width=1280, velocity=8.0, with_object=True)
    coded = scene.frames(args.frames)
    frames = torch.from_numpy(decode(coded)).permute(0, 3, 1, 2)  # channels-last in memory, as `average` has them
    new_frames = args.frames - 1

    def best(fn, repeats: int = args.repeats) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    def measure(flow_scale: float, options: dict, repeats: int) -> tuple[float, float, float]:
        def flows_now():  # gray from the coded frames, as `average` does (ops/exposure.py)
            gray = np.stack([to_gray8(f) for f in coded])
            return compute_window_flows(frames, gray=gray, flow_scale=flow_scale)

        flow = best(flows_now, repeats)
        flows = flows_now()
        warp = best(lambda: interpolate_window(frames, args.substeps, flows=flows, **options), repeats)
        total = best(lambda: interpolate_window(frames, args.substeps, flows=flows_now(), **options), repeats)
        return flow, warp, total

    plain = best(lambda: frames.sum(0))
    load = os.getloadavg()[0]
    print(f"1280x720, N = {args.frames}, K = {args.substeps}, {args.threads} threads, best of {args.repeats}, "
          f"load average {load:.1f} at the start")
    if args.table:
        print("| configuration | flow (12 DIS flows) | warps + blend | total | input frames/s |")
        print("|---|---|---|---|---|")
        for label, flow_scale, options in TABLE:
            repeats = 1 if options.get("impl") == "torch" else args.repeats
            flow, warp, total = measure(flow_scale, options, repeats)
            print(f"| {label} | {flow:.2f} s | {warp:.2f} s | {total:.2f} s | {new_frames / total:.1f} |", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return
    options = {"mode": args.mode, "occlusion": not args.no_occlusion, "visibility_scale": args.visibility_scale,
               "impl": args.impl, "gathers": args.gathers}
    print(f"{args.mode}, occlusion {options['occlusion']}, flow scale {args.flow_scale}, visibility scale "
          f"{args.visibility_scale}, impl {args.impl}, gathers {args.gathers}")
    flow, warp, total = measure(args.flow_scale, options, args.repeats)
    print(f"{'stage':<28}{'s / window':>12}{'input frames/s':>16}")
    for name, sec in [("plain sum (K = 1)", plain), ("flow (fwd + bwd, DIS)", flow),
                      ("warps + blend", warp), ("interpolation total", total)]:
        print(f"{name:<28}{sec:>12.3f}{new_frames / sec:>16.1f}")
    print(f"ratio interpolation / plain: {total / plain:.0f}x")


if __name__ == "__main__":
    main()
