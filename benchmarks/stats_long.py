"""The long-clip part of bench_stats.py (issue 20): seconds of ``blursynth stats`` per 60-s clip, seeking to the
measured frames (``source_pairs.SEEK_FRAMES``, the default) against decoding every frame up to the last one
measured and, with ``--baseline-tree``, against the package of another tree (the code before issue 20, which also
waited for every frame before starting the flow); alternating, and the outputs of all runs are compared.

The clip: 1280x720 H.264 (x264 veryfast, CRF 14, its default GOP of 250 frames with B-frames, as
bench_average.py), a slow back-and-forth sub-pixel pan over a texture with sensor noise; ``stats`` with its default
20 pairs per source and DIS. Like harness.py, this module imports only the standard library at the top (the
parent stays light).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import harness
from harness import best

LONG_VERSION, LONG_PAIRS, LONG_TARGET = 1, 20, 3.0
SIZE, X264_PRESET, X264_CRF, NOISE_SIGMA = (1280, 720), "veryfast", 14, 2.0
THRESHOLDS = "0:20:0.5"  # the CLI default


def worker_gen_long(spec: dict) -> dict:
    """Encode the long clip: a slow back-and-forth sub-pixel pan over a texture, noise from a bank of 7 fields."""
    import av
    import cv2
    import numpy as np
    from textures import textured_image

    (w, h), fps, num = SIZE, spec["fps"], int(round(spec["seconds"] * spec["fps"]))
    root = Path(spec["inputs"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    tex = (textured_image(h + 8, 2 * w, seed=2) * 255.0).astype(np.float32)
    rng = np.random.default_rng(1)
    noise = [rng.normal(0.0, NOISE_SIGMA, (h, w, 3)).astype(np.float32) for _ in range(7)]
    with av.open(str(root / "long.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(X264_CRF), "preset": X264_PRESET}
        for t in range(num):
            x = 300.0 * (1 - math.cos(2 * math.pi * t / (10 * fps))) + 40.0 * math.sin(2 * math.pi * t / fps)
            m = np.float32([[1, 0, x], [0, 1, 4 + 3 * math.sin(2 * math.pi * t / (3 * fps))]])
            img = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            img = np.clip(img + noise[t % 7], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    stats = {"frames": num, "fps": fps, "bytes": (root / "long.mp4").stat().st_size,
             "seconds": time.perf_counter() - t0}
    (root / "done").write_text(json.dumps(stats) + "\n")
    return stats


def worker_long(spec: dict) -> dict:
    """One ``stats`` run on the long clip, seeking or not (``source_pairs.SEEK_FRAMES``; a tree without it decodes
    every frame up to the last one measured); its figures and outputs."""
    from blursynth.stats import source_pairs

    harness.cli_here(["--version"])  # imports, outside the clock
    source_pairs.SEEK_FRAMES = spec["seek"]
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    args = ["stats", f"LONG={spec['clip']}", "--flow", "dis", "--flow-threshold", THRESHOLDS,
            "--pairs-per-source", str(spec["pairs"]), "--seed", "0", "--device", "cpu", "--out", str(out), "-q"]
    _, fig = harness.timed(lambda: harness.cli_here(args))
    doc = json.loads((out / "blurred_area_ratio.json").read_text())
    csv = (out / "blurred_area_ratio.csv").read_text()
    shutil.rmtree(out, ignore_errors=True)
    return {"n": 1, **fig, "datasets": doc["datasets"], "csv": csv}


def long_clip(bench: harness.Bench, args, repeat: int) -> dict:
    """Seconds of ``stats`` per long clip: seeking, decoding every frame, and optionally the package of
    ``--baseline-tree``, alternating, each run in a fresh child."""
    inputs = bench.work / f"stats_long_v{LONG_VERSION}_{args.long_seconds:g}s_{args.long_fps}fps"
    if not (inputs / "done").exists():
        print(f"generating the {args.long_seconds:g}-s clip in {inputs} (once; ~5 min for 60 s at 240 fps on 2 "
              "cores) ...", flush=True)
        bench.child("gen_long", {"inputs": str(inputs), "seconds": args.long_seconds, "fps": args.long_fps},
                    timeout=3600)
    gen = json.loads((inputs / "done").read_text())
    print(f"long clip: {gen['frames']} frames ({args.long_seconds:g} s @ {args.long_fps} fps), 1280x720 H.264 "
          f"{gen['bytes'] / 1e6:.0f} MB; stats --flow dis, {LONG_PAIRS} pairs, {repeat} round(s)", flush=True)
    plan = [("seek", True, None), ("sequential", False, None)]
    if args.baseline_tree:  # the package as it was, e.g. a `git worktree` of the commit before issue 20
        plan.append(("baseline tree", False, {"PYTHONPATH": str(Path(args.baseline_tree).resolve())}))
    spec = {"clip": str(inputs / "long.mp4"), "pairs": LONG_PAIRS, "out": str(bench.work / f"stats_long_{os.getpid()}")}
    runs: dict[str, list] = {name: [] for name, *_ in plan}
    for r in range(repeat):  # a b c a b c: every configuration sees the same background load
        for name, seek, env in plan:
            res = bench.child("long", {**spec, "seek": seek}, env=env, timeout=args.timeout)
            runs[name].append(res)
            print(f"  round {r + 1}/{repeat}  {name:<14} {res['seconds']:6.2f} s  CPU {res['cpu_s']:5.1f} s",
                  flush=True)
    outputs = {(json.dumps(res.pop("datasets"), sort_keys=True), res.pop("csv")) for rs in runs.values() for res in rs}
    b = {name: best(rs) for name, rs in runs.items()}
    harness.table(("stats on the long clip", "best s", "runs s", "CPU s (best)"),
                  [(name, f"{r['seconds']:.2f}", " ".join(f"{x['seconds']:.2f}" for x in runs[name]),
                    f"{r['cpu_s']:.1f}") for name, r in b.items()])
    print(f"outputs (JSON datasets, CSV) identical in every run: {'yes' if len(outputs) == 1 else 'NO'}")
    ratios = {name: r["seconds"] / b["seek"]["seconds"] for name, r in b.items() if name != "seek"}
    for name, ratio in ratios.items():
        harness.verdict(f"stats speed-up on the long clip ({name} s / seek s)", ratio, LONG_TARGET)
    return {"frames": gen["frames"], "best_s": {k: v["seconds"] for k, v in b.items()}, "ratios": ratios,
            "identical": len(outputs) == 1, "runs": runs}
