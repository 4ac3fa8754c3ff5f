#!/usr/bin/env python
"""Speed and accuracy of the optical-flow backends on frames with a known motion, and (issue 16) raw vs
measurable motion on clips where flow invents motion. What is measured and why: benchmarks/README.md.
"""

from __future__ import annotations

import sys

import cv2
import harness
import numpy as np
from harness import rate

sys.path.insert(0, str(harness.TESTS))
from motion_fixtures import flat_noise_frames, low_texture_frames  # noqa: E402
from textures import textured_image  # noqa: E402

METHODS = ("dis", "farneback", "deepflow", "raft")
BASELINE = "dis"
SLOW = ("deepflow", "raft")  # seconds per pair at 1280x720 on a CPU: fewer pairs
SIZES = ((427, 240), (1280, 720))
ROT_DEG, ZOOM, SHIFT = 0.3, 1.005, (0.37, -0.21)  # motion per frame, about the frame centre
BORDER = 20  # EPE excludes this border (flow at the frame edge is extrapolated by every method)
#: (fast, slow) pairs per run, by frame height: full run and --quick.
PAIRS = {240: (40, 6), 720: (10, 2)}
QUICK_PAIRS = {240: (10, 2), 720: (3, 1)}


# -- frames with a known motion ------------------------------------------------------------------------------
def motion(width: int, height: int) -> np.ndarray:
    """Forward affine map (3x3) of one frame step: a point p of frame t is at A p in frame t + 1."""
    a = np.eye(3)
    a[:2] = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), ROT_DEG, ZOOM)
    a[:2, 2] += SHIFT
    return a


def render_clip(width: int, height: int, frames: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` RGB uint8 frames and the true flow (2, H, W): frame i is ``texture(A^-i q + margin)`` (cubic),
    so ``frame_{i+1}(A p) = frame_i(p)`` and every pair has the flow ``A p - p``."""
    a = motion(width, height)
    inverse = [np.linalg.matrix_power(np.linalg.inv(a), i) for i in range(frames)]
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    reach = max(float(np.abs((m @ corners)[:2] - corners[:2]).max()) for m in inverse)
    margin = int(np.ceil(reach)) + 4  # + the cubic kernel's reach
    tex = textured_image(height + 2 * margin, width + 2 * margin, seed).astype(np.float32)
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


# -- measurement -----------------------------------------------------------------------------------------------
def time_pairs(backend, clip: list[np.ndarray], truth: np.ndarray) -> dict:
    """One timed ``pairs`` call over the whole clip, then the EPE of its flows (not timed)."""
    flows, fig = harness.timed(lambda: backend.pairs(clip))
    return {"n": len(clip) - 1, **fig, **epe_stats(flows, truth)}


def bench_size(width: int, height: int, methods: list[str], args) -> dict:
    from blursynth.flow import create_flow

    fast, slow = args.pairs_for(height)
    clip, truth = render_clip(width, height, max(slow if m in SLOW else fast for m in methods) + 1, args.seed)
    mag = np.hypot(*truth)
    print(f"[{width}x{height}] true flow {mag.mean():.2f} px mean, {mag.max():.2f} px max", flush=True)
    plan, rows = [], {}
    for m in methods:
        try:
            backend = create_flow(m, device=args.device, raft_weights=args.raft_weights, raft_model=args.raft_model,
                                  batch_size=args.raft_batch)
        except Exception as exc:  # noqa: BLE001 - the package's error (missing torchvision or weights) is the reason
            rows[m] = {"method": m, "available": False, "reason": getattr(exc, "message", str(exc))}
            continue
        backend.pairs(clip[:2])  # warm-up: first-call allocations, thread pools, lazy init
        sub = clip[: (slow if m in SLOW else fast) + 1]
        plan.append((m, lambda backend=backend, sub=sub: time_pairs(backend, sub, truth)))
    runs = harness.alternate(plan, args.repeat, "pairs")
    for m, rs in runs.items():
        rows[m] = {"method": m, "available": True, **harness.best(rs)}
        rows[m]["x_baseline"] = rate(rows[m]) / rate(harness.best(runs[BASELINE])) if BASELINE in runs else None
    return {"width": width, "height": height, "true_flow_mean_px": float(mag.mean()),
            "true_flow_max_px": float(mag.max()), "methods": [rows[m] for m in methods]}


# -- measurable motion (issue 16) -------------------------------------------------------------------------------
BLURRED_PX = 1.0
WINDOW_PAIRS = 6  # a 7-frame window, the shortest WILD and GOPRO draw


def motion_figures(backend, clip: list[np.ndarray]) -> dict:
    """Raw and (where available) measurable figures of ``backend`` over the consecutive pairs of ``clip``."""
    flows = backend.pairs(clip)
    raw = [np.hypot(f[0], f[1]) for f in flows]
    row = {"raw_median_px": float(np.median(raw)),
           "raw_ratio_pair": float(np.mean([np.mean(m > BLURRED_PX) for m in raw])),
           "raw_ratio_window": float(np.mean(sum(raw[:WINDOW_PAIRS]) > BLURRED_PX))}
    try:
        from blursynth.flow.measure import measure_pair
    except ImportError:  # a tree from before issue 16
        return row
    measured, fig = harness.timed(lambda: [measure_pair(backend, clip[i], clip[i + 1])
                                                  for i in range(len(clip) - 1)])
    moving = [m.moving for m in measured]
    row.update(median_px=float(np.median(moving)),
               ratio_pair=float(np.mean([np.mean(m > BLURRED_PX) for m in moving])),
               ratio_window=float(np.mean(sum(moving[:WINDOW_PAIRS]) > BLURRED_PX)),
               measurable_fraction=float(np.mean([m.measurable_fraction for m in measured])),
               measure_ms=1000 * fig["seconds"] / len(measured))
    return row


def bench_measurable(methods: list[str], args) -> list[dict]:
    from blursynth.flow import create_flow

    clips = {"flat+noise": list(flat_noise_frames(WINDOW_PAIRS + 1, 240, 427, seed=11)),
             "low texture": list(low_texture_frames(WINDOW_PAIRS + 1, 240, 427, seed=13)),
             "textured": render_clip(427, 240, WINDOW_PAIRS + 1, args.seed)[0]}
    rows = []
    for m in methods:
        try:
            backend = create_flow(m, device=args.device, raft_weights=args.raft_weights, raft_model=args.raft_model,
                                  batch_size=args.raft_batch)
        except Exception:  # noqa: BLE001 - reported as unavailable in the speed table
            continue
        for name, clip in clips.items():
            rows.append({"method": m, "clip": name, **motion_figures(backend, clip)})
    return rows


def print_measurable(rows: list[dict]) -> None:
    def cell(r: dict, key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else "-"

    harness.table(("clip", "method", "raw med px", "raw ratio pair", "raw ratio 7fr", "med px", "ratio pair",
                   "ratio 7fr", "measurable", "measure ms/pr"),
                  [(r["clip"], r["method"], f"{r['raw_median_px']:.3f}", f"{r['raw_ratio_pair']:.4f}",
                    f"{r['raw_ratio_window']:.4f}", cell(r, "median_px", ".3f"), cell(r, "ratio_pair", ".4f"),
                    cell(r, "ratio_window", ".4f"), cell(r, "measurable_fraction", ".3f"),
                    cell(r, "measure_ms", ".1f")) for r in rows])
    print(f"427x240, {WINDOW_PAIRS} pairs per clip. raw: |flow| of every pixel (before issue 16); then the measurable "
          f"motion (0 where not measurable). ratio: fraction of all pixels above {BLURRED_PX:g} px, per pair and "
          f"summed over the {WINDOW_PAIRS + 1}-frame window. True motion: flat+noise 0; low texture 0.3 px/frame "
          "on a 30x30 object only; textured ~1 px everywhere. measure ms/pr: forward + backward flow + the tests.")


# -- output ----------------------------------------------------------------------------------------------------
def print_table(sizes: list[dict]) -> None:
    rows = []
    for s in sizes:
        size = f"{s['width']}x{s['height']}"
        for r in s["methods"]:
            if not r["available"]:
                rows.append(f"{size:<10}  {r['method']:>10}  unavailable: {r['reason']}")
                continue
            rows.append((size, r["method"], r["n"], f"{1000 * r['seconds'] / r['n']:.1f}", f"{rate(r):.2f}",
                         "-" if r["x_baseline"] is None else f"{r['x_baseline']:.2f}",
                         f"{1000 * r['cpu_s'] / r['n']:.1f}", f"{r['epe_mean']:.3f}", f"{r['epe_p99']:.3f}"))
    harness.table(("size", "method", "pairs", "ms/pair", "pairs/s", "x DIS", "CPU ms/pr", "EPE mean", "EPE p99"), rows)
    print(f"x DIS: pairs/s relative to {BASELINE} at the same size, same run. EPE in px against the analytic "
          f"flow, {BORDER} px border excluded. CPU ms/pr: process CPU time (all threads) per pair.")


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--quick", action="store_true", help="fewer pairs and one run (~10 s on 2 cores)")
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
    p.add_argument("--no-measurable", action="store_true", help="skip the measurable-motion figures (issue 16)")
    args = harness.parse(p, {}, argv)
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
    args.repeat = max(1, args.repeat or (1 if args.quick else 3))
    table = QUICK_PAIRS if args.quick else PAIRS

    def pairs_for(height: int) -> tuple[int, int]:
        fast, slow = table.get(height, table[240] if height <= 480 else table[720])
        return max(1, args.pairs or fast), max(1, args.slow_pairs or slow)

    args.pairs_for = pairs_for
    bench = harness.Bench(__file__, args, ("numpy", "torch", "torchvision", "opencv-contrib-python-headless",
                                           "blursynth"), opencv=cv2.__version__, cv2_threads=cv2.getNumThreads())
    print(f"motion per frame: rotation {ROT_DEG} deg, zoom {ZOOM}, shift {SHIFT} px; repeat {args.repeat}", flush=True)
    bench.report["sizes"] = [bench_size(w, h, methods, args) for w, h in sizes]
    print_table(bench.report["sizes"])
    if not args.no_measurable:
        bench.report["measurable"] = bench_measurable(methods, args)
        print_measurable(bench.report["measurable"])
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
