"""Speed of continuous-exposure interpolation (issue 18) on the CPU: a 1280x720 window of N = 7 frames with
K = 8 sub-steps (flow included), against plain averaging of the same frames measured in the same run.

    python benchmarks/bench_interpolate.py [--substeps 8] [--mode bicubic] [--flow-scale 0.5] [--no-occlusion]

Prints input frames/s (N - 1 new frames per window, as windows advance with stride N - 1 at best) for plain
averaging, for the flow alone and for the whole interpolation, and the ratio to plain averaging.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exposure_fixtures import ExposureScene, decode  # noqa: E402

from blursynth.ops.interpolate import compute_window_flows, interpolate_window  # noqa: E402


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = ExposureScene(height=720, width=1280, velocity=8.0, with_object=True)
    frames = torch.from_numpy(decode(scene.frames(args.frames))).permute(0, 3, 1, 2).contiguous()
    new_frames = args.frames - 1

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    plain = best(lambda: frames.sum(0))
    occlusion = not args.no_occlusion

    def flows_now():
        return compute_window_flows(frames, flow_scale=args.flow_scale)

    flow = best(flows_now)
    flows = flows_now()
    options = {"mode": args.mode, "occlusion": occlusion, "visibility_scale": args.visibility_scale,
               "impl": args.impl}
    warp = best(lambda: interpolate_window(frames, args.substeps, flows=flows, **options))
    total = best(lambda: interpolate_window(frames, args.substeps, flows=flows_now(), **options))
    print(f"1280x720, N = {args.frames}, K = {args.substeps}, {args.mode}, occlusion {occlusion}, "
          f"flow scale {args.flow_scale}, visibility scale {args.visibility_scale}, impl {args.impl}, "
          f"{args.threads} threads")
    print(f"{'stage':<28}{'s / window':>12}{'input frames/s':>16}")
    for name, sec in [("plain sum (K = 1)", plain), ("flow (fwd + bwd, DIS)", flow),
                      ("warps + blend", warp), ("interpolation total", total)]:
        print(f"{name:<28}{sec:>12.3f}{new_frames / sec:>16.1f}")
    print(f"ratio interpolation / plain: {total / plain:.0f}x")


if __name__ == "__main__":
    main()
