#!/usr/bin/env python
"""``average`` against what users run instead, on a smooth and a noisy 720p clip, in the same run (issue 20).

    python benchmarks/bench_peers.py [--frames 480] [--repeat 2]

Every contender averages back-to-back windows of N = 7 frames of the same H.264 clip (1280x720 at 240 fps,
bench_average.py's generator: a textured pan with zoom and roll; the noisy clip adds sigma-4 sensor noise,
~47 Mbit/s; the smooth one none) and is timed from its first decoded frame to its last output, imports done:

* (a) the floor: PyAV decode to RGB in its fastest threading mode for this clip (AUTO, SLICE, FRAME and none, each
  in the caller's thread and in a thread of its own, are all measured; the best is the baseline);
* blursynth: ``run_average(--frames 7)`` in-process, as the ``blursynth`` command runs it (process settings of
  run/host.py), writing HDF5 shards with exact rounding;
* ffmpeg ``tmix=frames=7`` (the ``ffmpeg`` binary, all threads): a running 7-frame mean of the coded values,
  i.e. in gamma space, which is physically wrong; its output is thrown away (``-f null``) and it emits one frame
  per input frame, a sliding window;
* a careful numpy/OpenCV script: PyAV in the fastest mode, a float32 lookup table for g^-1 (``cv2.LUT``),
  ``cv2.accumulate``, one ``cv2.pow`` per window, rounding; output kept in memory, not written;
* a naive script: ``(f / 255) ** 2.2`` in float64 per frame, mean, ``** (1 / 2.2)``, round (bench_average's (c)).

Runs alternate within each round (fresh processes), the best of ``--repeat`` is kept; the load average is
printed. Output bytes are not compared here (bench_average does that for the naive script; tmix computes
another, wrong, quantity).
"""

from __future__ import annotations

import shutil
import sys

import bench_average as ba
import harness
from harness import best, rate

N = 7
DISTS = ba.DISTS


def worker_blursynth(spec: dict) -> dict:
    """blursynth ``average --frames 7`` in-process, start-up excluded."""
    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    harness.as_the_cli()
    shutil.rmtree(spec["out"], ignore_errors=True)
    cfg = AverageConfig(inputs=(spec["clip"],), out=spec["out"], device="cpu", frames=(N, N))
    _, fig = harness.timed(lambda: run_average(cfg))
    n = max(m["frames"][-1] for _, _, m in harness.shard_metas(spec["out"])) + 1
    shutil.rmtree(spec["out"], ignore_errors=True)
    return {"n": n, **fig}


def _windows(clip: str, mode: str, start, add, finish) -> int:
    """Decode ``clip`` (``mode``: bench_average.MODES) and feed back-to-back windows of N frames; frames decoded."""
    n, k = 0, 0
    for rgb in harness.decoded(clip, mode):
        if k == 0:
            start(rgb)
        else:
            add(rgb)
        n, k = n + 1, k + 1
        if k == N:
            finish()
            k = 0
    return n


def worker_careful(spec: dict) -> dict:
    """The careful numpy/OpenCV script."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)  # the decoder's threads use the cores
    lut = np.power(np.arange(256) / 255.0, 2.2).astype(np.float32)
    acc = np.zeros((ba.HEIGHT, ba.WIDTH, 3), np.float32)
    lin = np.empty_like(acc)
    outputs = []

    def start(rgb):
        cv2.LUT(rgb, lut, dst=acc)

    def add(rgb):
        cv2.accumulate(cv2.LUT(rgb, lut, dst=lin), acc)

    def finish():
        mean = cv2.multiply(acc, 1.0 / N)
        outputs.append(cv2.convertScaleAbs(cv2.pow(mean, 1 / 2.2), alpha=255.0))  # rounds, saturates
        del outputs[:-1]

    n, fig = harness.timed(lambda: _windows(spec["clip"], spec["mode"], start, add, finish))
    return {"n": n, **fig}


def worker_naive(spec: dict) -> dict:
    """The naive float64 script."""
    import numpy as np

    state: dict = {}

    def start(rgb):
        state["sum"] = (rgb / 255.0) ** 2.2

    def add(rgb):
        state["sum"] += (rgb / 255.0) ** 2.2

    def finish():
        state["out"] = np.clip(np.rint((state["sum"] / N) ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)

    n, fig = harness.timed(lambda: _windows(spec["clip"], spec["mode"], start, add, finish))
    return {"n": n, **fig}


def tmix(clip: str, frames: int) -> dict:
    """ffmpeg's ``tmix`` over the whole clip, output discarded; timed as a process (start-up ~0.05 s)."""
    out = harness.run(["ffmpeg", "-v", "error", "-nostdin", "-threads", "0", "-i", clip,
                       "-vf", f"tmix=frames={N}", "-f", "null", "-"], quiet=True)
    return {"n": frames, "seconds": out["process_s"], "cpu_s": out["process_cpu_s"]}


WORKERS = {"encode": ba.worker_encode, "decode": ba.worker_decode, "blursynth": worker_blursynth,
           "careful": worker_careful, "naive": worker_naive}


def measure_clip(bench: harness.Bench, label: str, sigma: float, frames: int, repeat: int,
                 has_ffmpeg: bool) -> tuple[list, float]:
    """Every contender on one clip: table rows and blursynth's ratio to the decode floor."""
    clip, info = ba.ensure_clip(bench, frames, noise_sigma=sigma)
    out = str(bench.work / "runs" / f"peers_{label}")
    decodes: dict[str, list] = {m: [] for m in ba.MODES}
    for _ in range(repeat):  # the fastest decode mode first: the floor, and the peers' scripts use it
        for m in ba.MODES:
            decodes[m].append(bench.child("decode", {"clip": str(clip), "mode": m}))
    mode = max(ba.MODES, key=lambda m: rate(best(decodes[m])))
    a = best(decodes[mode])
    plan = [("decode (floor)", lambda: bench.child("decode", {"clip": str(clip), "mode": mode})),
            ("blursynth average", lambda: bench.child("blursynth", {"clip": str(clip), "out": out})),
            ("careful numpy/OpenCV", lambda: bench.child("careful", {"clip": str(clip), "mode": mode})),
            ("naive float64", lambda: bench.child("naive", {"clip": str(clip), "mode": mode}))]
    if has_ffmpeg:
        plan.append(("ffmpeg tmix (gamma space)", lambda: tmix(str(clip), frames)))
    print(f"{label} clip: {info['bitrate_mbps']:.0f} Mbit/s; fastest PyAV mode {mode} ({rate(a):.0f} frames/s); "
          f"{repeat} round(s)", flush=True)
    res = {name: best(r) for name, r in harness.alternate(plan, repeat, "frames").items()}
    floor = max(rate(a), rate(res["decode (floor)"]))
    bench.report[label] = {"mode": mode, "floor_fps": floor, **res}
    ours = rate(res["blursynth average"])
    rows = [(f"{label}: {name}", r["n"], f"{r['seconds']:.2f}", f"{rate(r):.1f}", f"{rate(r) / floor:.2f}",
             f"{r['cpu_s']:.1f}", f"{ours / rate(r):.2f}") for name, r in res.items()]
    return rows, ours / floor


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--frames", type=int, default=480, help="frames per clip (default: %(default)s)")
    args = harness.parse(p, WORKERS, argv)
    repeat = max(1, args.repeat or 2)
    has_ffmpeg = shutil.which("ffmpeg") is not None
    bench = harness.Bench(__file__, args, DISTS, ffmpeg=shutil.which("ffmpeg"))
    if not has_ffmpeg:
        print("no ffmpeg binary on PATH (PyAV bundles the libraries only): the tmix row is skipped; "
              "on Debian: apt-get install ffmpeg")
    rows, verdicts = [], []
    for label, sigma in (("smooth", 0.0), ("noisy", ba.NOISE_SIGMA)):
        clip_rows, ratio = measure_clip(bench, label, sigma, args.frames, repeat, has_ffmpeg)
        rows += clip_rows
        verdicts.append((label, ratio))
    harness.table(("run", "frames", "time s", "frames/s", "vs floor", "CPU s", "blursynth x"), rows)
    print("vs floor: over the fastest PyAV decode to RGB of the same clip, same run; blursynth x: blursynth's "
          "frames/s over the row's (> 1: blursynth is faster)")
    for label, ratio in verdicts:
        harness.verdict(f"blursynth average / decode floor, {label} clip", ratio, 0.8)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
