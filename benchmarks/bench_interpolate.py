"""Speed of continuous-exposure interpolation (issue 18) on the CPU: a 1280x720 window of N = 7 frames with
K = 8 sub-steps (flow included), against plain averaging of the same frames measured in the same run.

    python benchmarks/bench_interpolate.py [--substeps 8] [--mode bicubic] [--repeats 3]

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
    flow = best(lambda: compute_window_flows(frames))
    flows = compute_window_flows(frames)
    warp = best(lambda: interpolate_window(frames, args.substeps, flows=flows, mode=args.mode))
    total = best(lambda: interpolate_window(frames, args.substeps, mode=args.mode))
    print(f"1280x720, N = {args.frames}, K = {args.substeps}, {args.mode}, {args.threads} threads")
    print(f"{'stage':<28}{'s / window':>12}{'input frames/s':>16}")
    for name, sec in [("plain sum (K = 1)", plain), ("flow (fwd + bwd, DIS)", flow),
                      ("warps + blend", warp), ("interpolation total", total)]:
        print(f"{name:<28}{sec:>12.3f}{new_frames / sec:>16.1f}")
    print(f"ratio interpolation / plain: {total / plain:.0f}x")


if __name__ == "__main__":
    main()
