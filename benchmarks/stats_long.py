"""The long-clip part of bench_stats.py (issue 20): seconds of ``blursynth stats`` per 60-s clip, seeking to the
measured frames (``source_pairs.SEEK_FRAMES``, the default) against decoding every frame up to the last one
measured, alternating in one child; the outputs of both are compared.

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
    """``stats`` on the long clip, seeking to the measured frames and decoding every frame up to the last one
    (``source_pairs.SEEK_FRAMES``; an older tree without it always decodes all), alternating; the outputs of both
    are compared."""
    from blursynth.stats import source_pairs

    harness.cli_here(["--version"])  # imports
    out = Path(spec["out"])

    def one(seek: bool) -> dict:
        source_pairs.SEEK_FRAMES = seek
        shutil.rmtree(out, ignore_errors=True)
        args = ["stats", f"LONG={spec['clip']}", "--flow", "dis", "--flow-threshold", THRESHOLDS,
                "--pairs-per-source", str(spec["pairs"]), "--seed", "0", "--device", "cpu", "--out", str(out), "-q"]
        _, fig = harness.timed(lambda: harness.cli_here(args))
        doc = json.loads((out / "blurred_area_ratio.json").read_text())
        return {"n": 1, **fig, "datasets": doc["datasets"], "csv": (out / "blurred_area_ratio.csv").read_text()}

    runs = harness.alternate([("seek", lambda: one(True)), ("sequential", lambda: one(False))], spec["repeat"],
                             "clip")
    shutil.rmtree(out, ignore_errors=True)
    same = all(a["datasets"] == b["datasets"] and a["csv"] == b["csv"]
               for a in runs["seek"] for b in runs["sequential"])
    for rs in runs.values():
        for r in rs:
            del r["datasets"], r["csv"]
    return {"runs": runs, "identical": same}


def long_clip(bench: harness.Bench, args, repeat: int) -> dict:
    """Seconds of ``stats`` per long clip, seeking against decoding every frame, alternating in one child."""
    inputs = bench.work / f"stats_long_v{LONG_VERSION}_{args.long_seconds:g}s_{args.long_fps}fps"
    if not (inputs / "done").exists():
        print(f"generating the {args.long_seconds:g}-s clip in {inputs} (once; ~5 min for 60 s at 240 fps on 2 "
              "cores) ...", flush=True)
        bench.child("gen_long", {"inputs": str(inputs), "seconds": args.long_seconds, "fps": args.long_fps},
                    timeout=3600)
    gen = json.loads((inputs / "done").read_text())
    print(f"long clip: {gen['frames']} frames ({args.long_seconds:g} s @ {args.long_fps} fps), 1280x720 H.264 "
          f"{gen['bytes'] / 1e6:.0f} MB; stats --flow dis, {LONG_PAIRS} pairs, {repeat} round(s)", flush=True)
    spec = {"clip": str(inputs / "long.mp4"), "pairs": LONG_PAIRS, "repeat": repeat,
            "out": str(bench.work / f"stats_long_out_{os.getpid()}")}
    res = bench.child("long", spec, timeout=args.timeout)
    b = {name: best(rs) for name, rs in res["runs"].items()}
    seek, seq = b["seek"]["seconds"], b["sequential"]["seconds"]
    harness.table(("stats on the long clip", "best s", "runs s", "CPU s"),
                  [(name, f"{r['seconds']:.2f}", " ".join(f"{x['seconds']:.2f}" for x in res["runs"][name]),
                    f"{r['cpu_s']:.1f}") for name, r in b.items()])
    print(f"outputs (JSON datasets, CSV) identical with and without seeking: {'yes' if res['identical'] else 'NO'}")
    harness.verdict("stats speed-up on the long clip (sequential s / seek s)", seq / seek, LONG_TARGET)
    return {"frames": gen["frames"], "seek_s": seek, "sequential_s": seq, "ratio": seq / seek,
            "identical": res["identical"], "runs": res["runs"]}
