#!/usr/bin/env python
"""Speed and accuracy of the optical-flow backends (``blursynth.flow``) on frames with a known motion.

For each frame size (default 427x240, the WILD recipe's downsampled size, and 1280x720) a short clip is
rendered from a multi-octave texture moved by a fixed affine motion per frame (0.3 deg rotation and 1.005x
zoom about the centre plus a (0.37, -0.21) px shift), so the true flow of every pair is known per pixel:
``flow(p) = A p - p``. Each backend (``dis``, ``farneback``, ``deepflow``, ``raft``) computes the flow of
every consecutive pair through ``FlowBackend.pairs``, as the recipes do. Reported per size and backend:
pairs/s (best of ``--repeat`` runs, one warm-up pair excluded), CPU time per pair, the ratio of pairs/s to
DIS at the same size (the baseline, measured in the same run; runs alternate between backends so all see
the same background load) and the end-point error against the analytic flow (mean and 99th percentile over
the interior, 20 px border excluded), so speed is shown next to accuracy. RAFT needs torchvision; without
it (or without its weights) the row reads ``unavailable: <reason>``.

Usage:
    python benchmarks/bench_flow.py [--quick] [--repeat R] [--sizes 427x240,1280x720] [--methods dis,...]
                                    [--pairs N] [--slow-pairs N] [--raft-weights FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from _common import environment, warn_if_busy

try:
    import blursynth  # noqa: F401
except ImportError:  # run from a checkout that is not installed: use the repository next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from textures import textured_image  # noqa: E402

from blursynth.errors import BlurSynthError
from blursynth.flow import create_flow

METHODS = ("dis", "farneback", "deepflow", "raft")
BASELINE = "dis"
SLOW = ("deepflow", "raft")  # seconds per pair at 1280x720 on a CPU: fewer pairs
SIZES = ((427, 240), (1280, 720))
ROT_DEG, ZOOM, SHIFT = 0.3, 1.005, (0.37, -0.21)  # motion per frame, about the frame centre
BORDER = 20  # EPE excludes this border (flow at the frame edge is extrapolated by every method)
#: (fast, slow) pairs per run, by frame height: full run and --quick.
PAIRS = {240: (40, 6), 720: (10, 2)}
QUICK_PAIRS = {240: (10, 2), 720: (3, 1)}


# ------------------------------------------------------------------------------------------------------
# Frames with a known motion
# ------------------------------------------------------------------------------------------------------
def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """The tests' smooth-but-detailed texture (tests/textures.py), float32 in [0, 1]."""
    return textured_image(height, width, seed).astype(np.float32)


def motion(width: int, height: int) -> np.ndarray:
    """Forward affine map (3x3) of one frame step: a point p of frame t is at A p in frame t + 1."""
    a = np.eye(3)
    a[:2] = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), ROT_DEG, ZOOM)
    a[:2, 2] += SHIFT
    return a


def render_clip(width: int, height: int, frames: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` RGB uint8 frames, frame i + 1 = frame i moved by :func:`motion`, and the true flow.

    Frame i is ``texture(A^-i q + margin)`` (cubic, ``cv2.WARP_INVERSE_MAP``), so ``frame_{i+1}(A p) =
    frame_i(p)`` and every pair has the same flow ``A p - p``. The texture has a margin wide enough that no
    frame samples outside it.

    Returns:
        (frames, flow): list of (H, W, 3) uint8; flow (2, H, W) float64.
    """
    a = motion(width, height)
    inverse = [np.linalg.matrix_power(np.linalg.inv(a), i) for i in range(frames)]
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    reach = max(float(np.abs((m @ corners)[:2] - corners[:2]).max()) for m in inverse)
    margin = int(np.ceil(reach)) + 4  # + the cubic kernel's reach
    tex = texture(height + 2 * margin, width + 2 * margin, seed)
    clip = []
    for m in inverse:
        inv = m[:2].copy()
        inv[:, 2] += margin
        f = cv2.warpAffine(tex, inv, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        clip.append(np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u = a[0, 0] * xs + a[0, 1] * ys + a[0, 2] - xs
    v = a[1, 0] * xs + a[1, 1] * ys + a[1, 2] - ys
    return clip, np.stack([u, v])


def epe_stats(flows: np.ndarray, truth: np.ndarray) -> dict:
    """End-point error of (k, 2, H, W) flows against the (2, H, W) truth, border excluded."""
    d = flows.astype(np.float64) - truth[None]
    err = np.hypot(d[:, 0], d[:, 1])[:, BORDER:-BORDER, BORDER:-BORDER]
    return {"epe_mean": float(err.mean()), "epe_p99": float(np.percentile(err, 99)),
            "epe_max": float(err.max())}


# ------------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------------
def make_backend(method: str, args) -> tuple[object | None, str | None, float]:
    """Create a backend; returns (backend, reason it is unavailable, creation seconds)."""
    t0 = time.perf_counter()
    try:
        backend = create_flow(method, device=args.device, raft_weights=args.raft_weights,
                              raft_model=args.raft_model, batch_size=args.raft_batch)
    except BlurSynthError as exc:
        return None, exc.message, 0.0
    return backend, None, time.perf_counter() - t0


def time_pairs(backend, clip: list[np.ndarray]) -> dict:
    """One timed ``pairs`` call over the whole clip."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    flows = backend.pairs(clip)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    n = len(clip) - 1
    return {"pairs": n, "seconds": seconds, "pairs_per_s": n / seconds, "ms_per_pair": 1000 * seconds / n,
            "cpu_ms_per_pair": 1000 * cpu / n, "flows": flows}


def bench_size(width: int, height: int, methods: list[str], args) -> dict:
    fast, slow = args.pairs_for(height)
    longest = max(slow if m in SLOW else fast for m in methods)
    t0 = time.perf_counter()
    clip, truth = render_clip(width, height, longest + 1, seed=args.seed)
    print(f"[{width}x{height}] rendered {len(clip)} frames in {time.perf_counter() - t0:.1f} s; true flow "
          f"{np.hypot(*truth).mean():.2f} px mean, {np.hypot(*truth).max():.2f} px max", flush=True)

    backends, rows = {}, {}
    for m in methods:
        backend, reason, create_s = make_backend(m, args)
        if backend is None:
            rows[m] = {"method": m, "available": False, "reason": reason}
            print(f"  {m:<10} unavailable: {reason}", flush=True)
            continue
        n = slow if m in SLOW else fast
        backend.pairs(clip[:2])  # warm-up: first-call allocations, thread pools, lazy init
        backends[m] = (backend, clip[: n + 1])
        rows[m] = {"method": m, "available": True, "create_s": create_s, "runs": []}

    for r in range(args.repeat):  # alternate backends within each round: all see the same load
        for m, (backend, sub) in backends.items():
            run = time_pairs(backend, sub)
            flows = run.pop("flows")
            if r == 0:
                rows[m].update(epe_stats(flows, truth))
            rows[m]["runs"].append(run)
            print(f"  run {r + 1}/{args.repeat} {m:<10} {run['pairs']:3d} pairs {run['ms_per_pair']:9.1f} ms/pair "
                  f"{run['pairs_per_s']:8.2f} pairs/s", flush=True)

    for m in backends:
        best = min(rows[m]["runs"], key=lambda run: run["seconds"])
        rows[m].update({k: best[k] for k in ("pairs", "seconds", "pairs_per_s", "ms_per_pair", "cpu_ms_per_pair")})
    if BASELINE in backends:
        base = rows[BASELINE]["pairs_per_s"]
        for m in backends:
            rows[m]["x_baseline"] = rows[m]["pairs_per_s"] / base
    return {"width": width, "height": height, "true_flow_mean_px": float(np.hypot(*truth).mean()),
            "true_flow_max_px": float(np.hypot(*truth).max()), "methods": [rows[m] for m in methods]}


# ------------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------------
def fmt_row(cells, widths) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in pairs)


def print_table(sizes: list[dict]) -> None:
    widths = (10, 10, 5, 9, 8, 7, 10, 8, 8)
    head = ("size", "method", "pairs", "ms/pair", "pairs/s", "x DIS", "CPU ms/pr", "EPE mean", "EPE p99")
    print("\n" + fmt_row(head, widths))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for s in sizes:
        size = f"{s['width']}x{s['height']}"
        for r in s["methods"]:
            if not r["available"]:
                print(f"{fmt_row((size, r['method']), widths[:2])}  unavailable: {r['reason']}")
                continue
            ratio = f"{r['x_baseline']:.2f}" if "x_baseline" in r else "-"
            print(fmt_row((size, r["method"], r["pairs"], f"{r['ms_per_pair']:.1f}", f"{r['pairs_per_s']:.2f}",
                           ratio, f"{r['cpu_ms_per_pair']:.1f}", f"{r['epe_mean']:.3f}", f"{r['epe_p99']:.3f}"),
                          widths))
    print(f"x DIS: pairs/s relative to {BASELINE} at the same size, same run. EPE in px against the analytic "
          f"flow, {BORDER} px border excluded. CPU ms/pr: process CPU time (all threads) per pair.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer pairs and one run (~10 s on 2 cores) instead of the full run (~30 s)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per backend and size, best kept (default: 3, --quick: 1)")
    p.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES),
                   help="comma-separated WIDTHxHEIGHT list (default: %(default)s)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated backends (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=None,
                   help="pairs per run for dis and farneback (default: 40 at 240 lines, 10 at 720; --quick 10/3)")
    p.add_argument("--slow-pairs", type=int, default=None,
                   help="pairs per run for deepflow and raft (default: 6 at 240 lines, 2 at 720; --quick 2/1)")
    p.add_argument("--device", default="cpu", help="torch device for raft (default: %(default)s)")
    p.add_argument("--raft-model", default="small", choices=("small", "large"))
    p.add_argument("--raft-weights", default=None, help="RAFT state-dict file (default: torchvision registry)")
    p.add_argument("--raft-batch", type=int, default=8, help="RAFT pairs per forward pass (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="texture seed (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="write all figures to this JSON file")
    args = p.parse_args(argv)

    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: expected WIDTHxHEIGHT[,...], got {args.sizes!r}")
    if any(len(s) != 2 or min(s) <= 2 * BORDER for s in sizes):
        p.error(f"--sizes: each size must be WIDTHxHEIGHT with both above {2 * BORDER}")
    args.repeat = max(1, args.repeat if args.repeat is not None else (1 if args.quick else 3))
    table = QUICK_PAIRS if args.quick else PAIRS

    def pairs_for(height: int) -> tuple[int, int]:
        fast, slow = table.get(height, table[240] if height <= 480 else table[720])
        return max(1, args.pairs or fast), max(1, args.slow_pairs or slow)

    args.pairs_for = pairs_for

    env = environment(("numpy", "torch", "torchvision", "opencv-contrib-python-headless", "blursynth"),
                      opencv=cv2.__version__, cv2_threads=cv2.getNumThreads())
    load = warn_if_busy("backends alternate within each round to keep ratios fair")
    print(f"motion per frame: rotation {ROT_DEG} deg, zoom {ZOOM}, shift {SHIFT} px; repeat {args.repeat}"
          f"{' (quick)' if args.quick else ''}", flush=True)

    t_start = time.perf_counter()
    results = [bench_size(w, h, methods, args) for w, h in sizes]
    print_table(results)
    total = time.perf_counter() - t_start
    print(f"benchmark wall time {total:.0f} s")

    if args.json:
        report = {"env": env, "motion": {"rotation_deg": ROT_DEG, "zoom": ZOOM, "shift_px": SHIFT},
                  "repeat": args.repeat, "quick": args.quick, "baseline": BASELINE, "border_px": BORDER,
                  "sizes": results, "load_average_1min": {"start": load, "end": os.getloadavg()[0]},
                  "total_bench_s": total}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
