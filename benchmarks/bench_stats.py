#!/usr/bin/env python
"""Pairs/s of ``blursynth stats`` per flow backend, and its curves against the true curve of a synthetic scene
(default measurable motion and ``--raw-flow``); seconds per long clip with and without seeking to the measured
frames (issue 20). What is measured and why: benchmarks/README.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import harness
from harness import best, rate
from stats_long import long_clip, worker_gen_long, worker_long  # the 60-s clip (issue 20)

FPS, FRAMES = 240, 240
FULL, SMALL = (1280, 720), (427, 240)  # SMALL: the WILD recipe's x3-downsampled size
INPUTS_VERSION = 1  # bump when the generator changes so cached inputs are regenerated
X264_PRESET, X264_CRF = "veryfast", 14  # as bench_average.py
NOISE_SIGMA = 2.0  # per-frame sensor noise, 8-bit code values
PNG_LEVEL = 3
THRESHOLDS = "0:20:0.5"  # the CLI default
METHODS = ("dis", "farneback", "deepflow", "raft")
SLOW = ("deepflow", "raft")
#: pairs per source (fast backends, slow backends) by frame height: default run and --quick.
PAIRS = {240: (24, 6), 720: (10, 4)}
QUICK_PAIRS = {240: (6, 2), 720: (2, 1)}
QUICK_720 = ("dis",)  # --quick runs only these at 1280x720
# The scene, in 1280x720 pixels. Camera: frame t shows the texture at u = A_t x + b_t (x a frame pixel), with
# A_t = s(t) R(theta(t)) about the frame centre plus a pan p(t); a textured disc moves over it on its own.
PAN_VX, PAN_AX, PAN_PX = 0.65, 0.55, 120.0  # pan vx(t) = PAN_VX + PAN_AX sin(2 pi t / PAN_PX): 0.10-1.20 px/frame
PAN_AY, PAN_PY = 0.35, 90.0  # vy(t) = PAN_AY cos(2 pi t / PAN_PY)
ROT_AMP, ROT_PERIOD = 2.0, 120.0  # theta(t) = ROT_AMP sin(2 pi t / ROT_PERIOD) deg: up to 0.10 deg/frame
ZOOM_AMP, ZOOM_PERIOD = 0.03, 200.0  # s(t) = 1 + ZOOM_AMP sin(2 pi t / ZOOM_PERIOD)
OBJ_RADIUS, OBJ_START, OBJ_VEL = 110.0, (160.0, 250.0), (4.2, 0.9)  # px, px, px/frame


# -- the scene (also gives the true curve) ---------------------------------------------------------------------
def camera(t: float):
    """(A, b): frame pixel x of frame t shows texture point A x + b (texture margin not included)."""
    import numpy as np

    px = PAN_VX * t + PAN_AX * PAN_PX / (2 * math.pi) * (1 - math.cos(2 * math.pi * t / PAN_PX))
    py = PAN_AY * PAN_PY / (2 * math.pi) * math.sin(2 * math.pi * t / PAN_PY)
    th = math.radians(ROT_AMP * math.sin(2 * math.pi * t / ROT_PERIOD))
    s = 1.0 + ZOOM_AMP * math.sin(2 * math.pi * t / ZOOM_PERIOD)
    a = s * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    c = np.array([(FULL[0] - 1) / 2, (FULL[1] - 1) / 2])
    return a, c - a @ c + np.array([px, py])


def obj_centre(t: float) -> tuple[float, float]:
    return OBJ_START[0] + OBJ_VEL[0] * t, OBJ_START[1] + OBJ_VEL[1] * t


def true_magnitude(t: int, gap: int, width: int, height: int):
    """Per-pixel true flow magnitude from frame t to t + gap at (width, height) (scaled from 1280x720)."""
    import numpy as np

    sx, sy = width / FULL[0], height / FULL[1]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x = np.stack([(xs + 0.5) / sx - 0.5, (ys + 0.5) / sy - 0.5])  # pixel centres in 1280x720 pixels
    (a0, b0), (a1, b1) = camera(t), camera(t + gap)
    u = np.einsum("ij,jhw->ihw", a0, x) + b0[:, None, None]
    x1 = np.einsum("ij,jhw->ihw", np.linalg.inv(a1), u - b1[:, None, None])
    du, dv = (x1[0] - x[0]) * sx, (x1[1] - x[1]) * sy
    (o0x, o0y), (o1x, o1y) = obj_centre(t), obj_centre(t + gap)
    inside = np.hypot(x[0] - o0x, x[1] - o0y) < OBJ_RADIUS
    du[inside], dv[inside] = (o1x - o0x) * sx, (o1y - o0y) * sy
    return np.hypot(du, dv).astype(np.float32)


def _render(num: int):
    """Yield ``num`` RGB uint8 1280x720 frames: a panned, rotating, zooming texture, a moving textured disc, noise."""
    import cv2
    import numpy as np
    from textures import textured_image

    w, h = FULL
    corners = np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1]], np.float64)
    reach = np.concatenate([a @ corners + b[:, None] for a, b in map(camera, range(num + 1))], axis=1)
    lo = np.floor(reach.min(axis=1)) - 6  # + the cubic kernel's reach
    hi = np.ceil(reach.max(axis=1)) + 6
    bg = textured_image(int(hi[1] - lo[1]), int(hi[0] - lo[0]), seed=0).astype(np.float32)
    size = int(2 * OBJ_RADIUS) + 9
    obj = textured_image(size, size, seed=1).astype(np.float32)
    obj = np.clip(0.25 + 0.75 * obj * np.array([1.0, 0.75, 0.45], np.float32), 0, 1)  # warmer, brighter
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    half = (size - 1) / 2
    for t in range(num):
        a, b = camera(t)
        m = np.hstack([a, (b - lo)[:, None]]).astype(np.float32)
        frame = cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        ox, oy = obj_centre(t)
        m = np.float32([[1, 0, half - ox], [0, 1, half - oy]])
        patch = cv2.warpAffine(obj, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        alpha = np.clip(OBJ_RADIUS + 0.5 - np.hypot(xs - ox, ys - oy), 0, 1)[..., None]
        frame = frame * (1 - alpha) + patch * alpha
        noise = rng.normal(0.0, NOISE_SIGMA, (h, w, 3)).astype(np.float32)
        yield np.clip(np.rint(frame * 255.0 + noise), 0, 255).astype(np.uint8)


def worker_gen(spec: dict) -> dict:
    """Encode both clips (one pass over the rendered frames), then write each clip's decoded frames as PNGs."""
    from concurrent.futures import ThreadPoolExecutor

    import av
    import cv2
    import numpy as np

    root = Path(spec["inputs"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    outs = {}
    for key, (w, h), codec, pix, name, opts in (
            ("720", FULL, "libx264", "yuv420p", "clip720.mp4", {"crf": str(X264_CRF), "preset": X264_PRESET}),
            ("240", SMALL, "libx264", "yuv444p", "clip240.mp4", {"crf": str(X264_CRF), "preset": X264_PRESET})):
        container = av.open(str(root / name), "w")
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, pix
        stream.options = opts
        outs[key] = (container, stream, (w, h))
    for rgb in _render(spec["frames"]):
        for container, stream, (w, h) in outs.values():
            img = rgb if (w, h) == FULL else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
    for container, stream, _ in outs.values():
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    encode_s = time.perf_counter() - t0
    stats = {"encode_s": encode_s}

    def write_png(path: Path, rgb) -> int:
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        return path.stat().st_size

    for key, name in (("720", "clip720.mp4"), ("240", "clip240.mp4")):
        folder = root / f"frames{key}"
        folder.mkdir()
        with av.open(str(root / name)) as container, ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            futures = [pool.submit(write_png, folder / f"{i:08d}.png", frame.to_ndarray(format="rgb24"))
                       for i, frame in enumerate(container.decode(video=0))]
            sizes = [f.result() for f in futures]
        stats[key] = {"video_bytes": (root / name).stat().st_size, "png_bytes_mean": float(np.mean(sizes)),
                      "png_count": len(sizes)}
    stats["seconds"] = time.perf_counter() - t0
    (root / "done").write_text(json.dumps(stats) + "\n")
    return stats


def _stats(spec: dict, label: str, threads: int, max_side: int | None, pairs: int, raw: bool = False) -> dict:
    """One ``blursynth stats`` run in this process on the video or the PNG folder; figures and the curve."""
    root, h = Path(spec["inputs"]), spec["height"]
    path = str(root / f"clip{h}.mp4") if label == "video" else f"{root / f'frames{h}'}@{FPS}"
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    args = ["stats", f"{label}={path}", "--flow", spec["method"], "--flow-threshold", THRESHOLDS, "--pairs-per-source",
            str(pairs), "--threads", str(threads), "--seed", str(spec["seed"]), "--device", spec["device"],
            "--raft-model", spec["raft_model"], "--out", str(out), "-q"]
    args += ["--raft-weights", spec["raft_weights"]] if spec["raft_weights"] else []
    args += ["--max-side", str(max_side)] if max_side else []
    args += ["--raw-flow"] if raw else []
    _, fig = harness.timed(lambda: harness.cli_here(args))
    result = json.loads((out / "blurred_area_ratio.json").read_text())
    data = result["datasets"][0]
    return {"n": data["pairs"], **fig, "curve": data["mean"], "thresholds": result["thresholds"],
            "source": data["sources"][0], "measurable": data["measurable_fraction"]["mean"]}


def worker_group(spec: dict) -> dict:
    """``stats`` for one backend at one frame size: threads 1 and 2 on the video and the PNG folder (and with
    ``--max-side`` at 1280x720), alternating within each round; then a cProfile run; the true curve."""
    import numpy as np

    from blursynth.flow import create_flow

    try:
        create_flow(spec["method"], device=spec["device"], raft_model=spec["raft_model"],
                    raft_weights=spec["raft_weights"])
    except Exception as exc:  # noqa: BLE001 - the package's error (missing torchvision or weights) is the reason
        return {"available": False, "reason": getattr(exc, "message", str(exc))}
    harness.cli_here(["--version"])  # imports
    _stats(spec, "frames", 1, None, 1)  # the first call: codec and PNG decoder set-up, lazy imports
    plan = [(f"{label} t{t}", label, t, None, False) for label in ("video", "frames") for t in (1, 2)]
    plan += [(f"video raw t{t}", "video", t, None, True) for t in (1, 2)]
    if spec["max_side"]:
        plan += [(f"video max t{t}", "video", t, spec["max_side"], False) for t in (1, 2)]
    runs: dict[str, list] = {name: [] for name, *_ in plan}
    for r in range(spec["repeat"]):
        for name, label, threads, side, raw in plan:
            res = _stats(spec, label, threads, side, spec["pairs"], raw)
            runs[name].append(res)
            print(f"    round {r + 1}/{spec['repeat']} {name:<16} {res['n']:3d} pairs {res['seconds']:7.2f} s "
                  f"{rate(res):7.2f} pairs/s", flush=True)
    _, rows = harness.profiled(lambda: _stats(spec, "video", 1, None, spec["pairs"]), top=15)
    src = runs["video t1"][0]["source"]
    thresholds = np.asarray(runs["video t1"][0]["thresholds"])
    truth = np.mean([(true_magnitude(t, src["gap"], src["width"], src["height"])[..., None] > thresholds).mean((0, 1))
                     for t in src["starts"]], axis=0)
    shutil.rmtree(spec["out"], ignore_errors=True)
    return {"available": True, "runs": runs, "truth": truth.tolist(), "profile": rows}


WORKERS = {"gen": worker_gen, "group": worker_group, "gen_long": worker_gen_long, "long": worker_long}


# -- parent ----------------------------------------------------------------------------------------------------
def ensure_inputs(bench: harness.Bench) -> tuple[Path, dict]:
    inputs = bench.work / f"stats_inputs_v{INPUTS_VERSION}"
    if not (inputs / "done").exists():
        print(f"generating inputs in {inputs} (once; ~30 s on 2 cores) ...", flush=True)
        bench.child("gen", {"inputs": str(inputs), "frames": FRAMES})
    return inputs, json.loads((inputs / "done").read_text())


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--quick", action="store_true", help="few pairs, one round, only dis at 1280x720")
    p.add_argument("--sizes", default="240,720", help="frame heights: 240 (427x240) and/or 720 (1280x720)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated backends (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=None,
                   help="pairs per source for dis and farneback (default 24 at 240 lines, 10 at 720; --quick 6/2)")
    p.add_argument("--slow-pairs", type=int, default=None,
                   help="pairs per source for deepflow and raft (default 6 at 240 lines, 4 at 720; --quick 2/1)")
    p.add_argument("--max-side", type=int, default=640, help="--max-side runs at 1280x720 (0 skips them)")
    p.add_argument("--device", default="cpu", help="torch device for raft (default: %(default)s)")
    p.add_argument("--raft-model", default="small", choices=("small", "large"))
    p.add_argument("--raft-weights", default=None, help="RAFT state-dict file (default: torchvision registry)")
    p.add_argument("--seed", type=int, default=0, help="stats --seed (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a child is killed (default: 900)")
    p.add_argument("--long-seconds", type=float, default=60.0, help="length of the long clip (0 skips it; default: 60)")
    p.add_argument("--long-fps", type=int, default=240, help="frame rate of the long clip (default: %(default)s)")
    p.add_argument("--long-only", action="store_true", help="measure only the long clip (seeking vs decoding all)")
    p.add_argument("--baseline-tree", default=None,
                   help="also time the long clip with the package of this tree (e.g. a git worktree of the base)")
    args = harness.parse(p, WORKERS, argv)
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    if set(methods) - set(METHODS):
        p.error(f"--methods: choose from {', '.join(METHODS)}")
    heights = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not heights or set(heights) - {240, 720}:
        p.error("--sizes: 240 and/or 720")
    table = QUICK_PAIRS if args.quick else PAIRS
    repeat = max(1, args.repeat or (1 if args.quick else 2))
    bench = harness.Bench(__file__, args, ("numpy", "opencv-contrib-python-headless", "av", "matplotlib", "torch",
                                           "torchvision", "blursynth"))
    if args.long_seconds > 0:
        bench.report["long"] = long_clip(bench, args, repeat)
    if args.long_only:
        bench.finish()
        return 0
    inputs, gen = bench.report["inputs"] = ensure_inputs(bench)
    print(f"clips: {FRAMES} frames @ {FPS} fps; 1280x720 H.264 {gen['720']['video_bytes'] / 1e6:.1f} MB, PNGs "
          f"{gen['720']['png_bytes_mean'] / 1e6:.2f} MB each; 427x240 H.264 4:4:4 {gen['240']['video_bytes'] / 1e6:.1f}"
          f" MB, PNGs {gen['240']['png_bytes_mean'] / 1e6:.2f} MB each; thresholds {THRESHOLDS}", flush=True)
    groups = bench.report["groups"] = []
    for h in heights:
        size = f"{SMALL[0]}x{SMALL[1]}" if h == 240 else f"{FULL[0]}x{FULL[1]}"
        for m in methods:
            if args.quick and h == 720 and m not in QUICK_720:
                continue
            k = max(1, (args.slow_pairs or table[h][1]) if m in SLOW else (args.pairs or table[h][0]))
            rep = 1 if (h == 720 and m in SLOW and not args.repeat) else repeat
            print(f"[{size}] {m}: {k} pairs per source, {rep} round(s)", flush=True)
            spec = {"inputs": str(inputs), "height": h, "method": m, "pairs": k, "repeat": rep, "seed": args.seed,
                    "device": args.device, "raft_model": args.raft_model, "raft_weights": args.raft_weights,
                    "max_side": args.max_side if h == 720 and args.max_side else None,
                    "out": str(bench.work / f"stats_out_{os.getpid()}")}
            g = {"size": size, "method": m, **bench.child("group", spec, timeout=args.timeout)}
            if g["available"]:
                g["best"] = {name: best(rs) for name, rs in g.pop("runs").items()}
                print(f"  peak RSS {g['peak_rss_mb']:.0f} MB, process {g['process_s']:.1f} s", flush=True)
            groups.append(g)
    rows, curves = [], []
    for g in groups:
        if not g["available"]:
            rows.append(f"{g['size']}  {g['method']}  unavailable: {g['reason']}")
            continue
        b = g["best"]
        for label, key in (("video", "video"), ("PNG folder", "frames"), ("video --raw-flow", "video raw"),
                           (f"video max {args.max_side}", "video max")):
            if f"{key} t1" in b:
                t1, t2 = b[f"{key} t1"], b[f"{key} t2"]
                rows.append((g["size"], g["method"], label, t1["n"], f"{rate(t1):.2f}", f"{rate(t2):.2f}",
                             f"{rate(t2) / rate(t1):.2f}", f"{1000 * t1['cpu_s'] / t1['n']:.0f}"))
        full, th = b["video t1"]["curve"], b["video t1"]["thresholds"]
        at = [th.index(v) for v in (0.5, 1.0, 2.0, 8.0)]
        measured = [("truth", g["truth"], None), ("full", full, b["video t1"]["measurable"]),
                    ("raw flow", b["video raw t1"]["curve"], None)]
        if "video max t1" in b:
            measured.append((f"max {args.max_side}", b["video max t1"]["curve"], b["video max t1"]["measurable"]))
        for label, curve, fraction in measured:
            d1, dmax = abs(curve[at[1]] - full[at[1]]), max(abs(x - y) for x, y in zip(curve, full, strict=True))
            curves.append((g["size"], g["method"], label, *(f"{curve[i]:.3f}" for i in at),
                           "" if label == "full" else f"{d1:.3f}", "" if label == "full" else f"{dmax:.3f}",
                           "" if fraction is None else f"{fraction:.3f}"))
    harness.table(("size", "method", "input", "pairs", "t1 pairs/s", "t2 pairs/s", "x t1", "CPU ms/pr"), rows)
    print("pairs/s (best of the rounds): stats end to end in-process (probe, read, flow, ratio curves, writing CSV/"
          "JSON/PNG) with --threads 1 and 2; x t1 = t2 / t1; CPU ms/pr: all threads, --threads 1")
    print("\nmean blurred-area ratio of the video's pairs")
    harness.table(("size", "method", "curve", "@0.5px", "@1px", "@2px", "@8px", "|d| @1px vs full",
                   "max |d| vs full", "measurable"), curves)
    print("truth: the scene's analytic flow over the same pairs (occlusion edges make any estimate differ by a few "
          "% near the object's speed); full: the default (measurable motion only), raw flow: --raw-flow (every "
          "pixel's flow, the paper's curve); max-side curves: frames shrunk, magnitudes rescaled to source pixels; "
          "measurable: mean fraction of measurable pixels")
    for g in groups:
        if g["available"]:
            print(f"\n{g['size']} {g['method']}, video, --threads 1, under cProfile: top functions by own time")
            harness.print_profile(g["profile"], g["best"]["video t1"]["n"], "pair")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
