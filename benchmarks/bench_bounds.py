#!/usr/bin/env python
"""Upper bounds on the speed of issue 20's unmet targets: a strict subset of the work each exact output needs,
run with the kernels the package has (PyAV, OpenCV) in the fastest arrangements tried, alternating with the
target's baseline in the same rounds. Where the subset alone is slower than the target needs, round after round,
or needs more CPU time than two cores give in the time allowed, the target is out of reach with those kernels.

    python benchmarks/bench_bounds.py [--repeat 3] [--baseline-tree DIR] [--only average,wild,substeps]

* ``average`` (smooth and noisy 720p clips, bench_peers.py's): the floor is PyAV's fastest decode to RGB (a
  sweep of every mode of bench_average.MODES, in the caller's thread and in a thread of its own; the fastest
  inline and threaded modes then run in the same rounds as the bounds). The bound decodes in the two fastest
  modes of each kind and sums each window's frames through g^-1 (the package's ``lookup``, ``cv2.LUT`` on
  one-channel views, and ``cv2.add``, strip by strip in cache), with one and with two OpenCV threads: no
  encoding, no sharp frame, no writing. Target: average >= 0.8x the floor.
* ``wild`` (bench_wild.py's clip): a first, untimed run of the package finds the kept windows. The bound
  decodes, shrinks x3 (area) and makes the gray frame in the decoding thread (the recipe makes it in its main
  thread), and computes DIS both ways only for the pairs inside kept windows, in two worker threads: whatever
  rejects the other pairs, these must pass the measurable-motion check, which needs both directions. No
  measurement, no sampler, no averaging. Target: WILD >= 0.5x the decode floor.
* ``substeps`` (``--frames 7 --substeps 8 --interpolation balanced``, 56 frames of bench_average.py's clip,
  byte-exact ``balanced`` output assumed): the bound decodes, computes each window's 12 DIS flows at 640x360
  (two threads) and makes its 54 bicubic 720p float32 gathers in a worker thread (OpenCV's pool; one map per
  pair instead of one per sample; three- and four-channel frames): no blending, no accumulation, no encoding,
  no writing. Target: 2x the whole run of ``--baseline-tree`` (``git worktree add --detach DIR adc6a63``, the
  tree before issue 20; issue 18's last commit 95136c4 is 2-5 % slower at K = 8); without it the row is left out.

The table gives bound / needed per round (median and range) and the bound's CPU time against what two cores
give in the time the target allows. Figures and what they mean: benchmarks/README.md ("bench_bounds.py").
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import bench_average as ba
import bench_peers
import bench_wild
import harness
from harness import best, rate

SUBSTEP_FRAMES, N, K = 56, 7, 8
TARGETS = {"average": 0.8, "wild": 0.5, "substeps": 2.0}


def worker_average_bound(spec: dict) -> dict:
    """Decode (``spec["mode"]``) and sum each window's frames through the package's g^-1 table: ``lookup`` (one
    ``cv2.LUT`` per value) and ``cv2.add``, strip by strip so the sums stay in cache (the package's fastest way,
    ops/window_sum.py), with ``spec["threads"]`` OpenCV threads. No encoding, no sharp frame, no writing."""
    import cv2
    import numpy as np

    from blursynth.ops.accumulate import Channel
    from blursynth.ops.crf import create_crf
    from blursynth.ops.window_sum import lookup, strip_rows

    harness.as_the_cli()
    cv2.setNumThreads(spec["threads"])
    lut = Channel.create(create_crf("gamma", 2.2), 8, N).lut
    rows = strip_rows((ba.HEIGHT, ba.WIDTH, 3))
    total = np.empty((rows, ba.WIDTH, 3), np.int32)
    term = np.empty_like(total)

    def run() -> int:
        n, held = 0, []
        for rgb in harness.decoded(spec["clip"], spec["mode"]):
            held.append(rgb)
            n += 1
            if len(held) == N:
                for y in range(0, ba.HEIGHT, rows):
                    h = min(rows, ba.HEIGHT - y)
                    lookup(held[0][y : y + h], lut, out=total[:h])
                    for f in held[1:]:
                        cv2.add(total[:h], lookup(f[y : y + h], lut, out=term[:h]), dst=total[:h])
                held = []
        return n

    n, fig = harness.timed(run)
    return {"n": n, **fig}


def _dis_pool(workers: int = 2):
    """A pool of ``workers`` threads, each with its own DIS backend; ``both(a, b)``: forward and backward flow."""
    import threading

    from blursynth.flow import create_flow

    local = threading.local()

    def both(a, b):
        flow = getattr(local, "flow", None)
        if flow is None:
            flow = local.flow = create_flow("dis")
        return flow.pairs([a, b])[0], flow.backward_pairs([a, b])[0]

    return ThreadPoolExecutor(max_workers=workers), both


def worker_wild_windows(spec: dict) -> dict:
    """The package's WILD run (untimed): the pairs (j, j + 1) inside the windows it keeps."""
    out = Path(spec["out"])
    harness.cli_here(["average", spec["clip"], str(out), "--recipe", "wild", "--flow", "dis", "--device", "cpu", "-q"])
    metas = [m for _, _, m in harness.shard_metas(out)]
    shutil.rmtree(out, ignore_errors=True)
    return {"pairs": sorted({j for m in metas for j in m["frames"][:-1]}), "windows": len(metas)}


def worker_wild_bound(spec: dict) -> dict:
    """Decode, x3 area and gray in the decoding thread; DIS both ways for the pairs ``spec["pairs"]`` in two
    threads."""
    import cv2

    from blursynth.ops.images import to_gray8

    harness.as_the_cli()

    def shrink(rgb):
        small = cv2.resize(rgb, (rgb.shape[1] // 3, rgb.shape[0] // 3), interpolation=cv2.INTER_AREA)
        return to_gray8(small)

    def run() -> int:
        pool, both = _dis_pool()
        pending: list[Future] = []
        n, prev, needed = 0, None, set(spec["pairs"])
        with pool:
            for gray in harness.decoded(spec["clip"], spec["mode"], shrink):
                if n - 1 in needed:
                    pending.append(pool.submit(both, prev, gray))
                    while len(pending) > 4:  # two in flight per worker: decoding never waits on a full queue
                        pending.pop(0).result()
                prev, n = gray, n + 1
            for f in pending:
                f.result()
        return n

    n, fig = harness.timed(run)
    return {"n": n, **fig}


def worker_substeps_bound(spec: dict) -> dict:
    """Per window of N frames: 2 (N - 1) DIS flows at half size in two threads, then in a worker thread one
    bicubic gather per synthesised sample and two per pair (the alignments) of the linear 720p frames."""
    import cv2
    import numpy as np

    from blursynth.ops.accumulate import Channel
    from blursynth.ops.crf import create_crf
    from blursynth.ops.images import to_gray8
    from blursynth.ops.interpolate_cv2 import base_grid, resize_flow

    harness.as_the_cli()
    table = (lambda ch: (ch.lut / ch.q).astype(np.float32))(Channel.create(create_crf("gamma", 2.2), 8, N))
    grid = base_grid(ba.HEIGHT, ba.WIDTH)
    gathers_per_pair = (K - 1) + 2

    def synthesize(frames: list, flows: list[Future]) -> None:
        linear = [cv2.LUT(f, table) for f in frames]
        if spec["channels"] == 4:  # OpenCV's four-channel float gathers are vectorised for bilinear, maybe here
            linear = [cv2.cvtColor(f, cv2.COLOR_RGB2RGBA) for f in linear]
        out = np.empty_like(linear[0])
        for i, future in enumerate(flows):
            fwd = future.result()[0].transpose(1, 2, 0)
            gather = cv2.add(grid, resize_flow(np.ascontiguousarray(fwd), ba.HEIGHT, ba.WIDTH))
            for _ in range(gathers_per_pair):
                cv2.remap(linear[i], gather, None, cv2.INTER_CUBIC, dst=out, borderMode=cv2.BORDER_REPLICATE)

    def run() -> int:
        pool, both = _dis_pool()
        worker = ThreadPoolExecutor(max_workers=1)
        queued: list[Future] = []
        frames, grays, flows, n = [], [], [], 0
        with pool, worker:
            for rgb in harness.decoded(spec["clip"], spec["mode"]):
                small = cv2.resize(to_gray8(rgb), (ba.WIDTH // 2, ba.HEIGHT // 2), interpolation=cv2.INTER_AREA)
                if grays:
                    flows.append(pool.submit(both, grays[-1], small))
                frames.append(rgb)
                grays.append(small)
                n += 1
                if len(frames) == N:
                    queued.append(worker.submit(synthesize, frames, flows))
                    if len(queued) > 1:  # one window waits at most, as in the package
                        queued.pop(0).result()
                    frames, grays, flows = [], [], []
            for f in queued:
                f.result()
        return n

    n, fig = harness.timed(run)
    return {"n": n, **fig}


WORKERS = {"encode": ba.worker_encode, "decode": ba.worker_decode, "exposure": ba.worker_exposure,
           "blursynth": bench_peers.worker_blursynth, "wild": bench_wild.worker_wild,
           "average_bound": worker_average_bound, "wild_bound": worker_wild_bound, "wild_windows": worker_wild_windows,
           "substeps_bound": worker_substeps_bound}


def fastest_decode(bench: harness.Bench, clip: Path) -> tuple[list[str], list[str]]:
    """One sweep over every decode mode: the modes by speed, inline ones and threaded ones."""
    res = {m: bench.child("decode", {"clip": str(clip), "mode": m}) for m in ba.MODES}
    for m, r in res.items():
        print(f"  sweep  {m:<14} {rate(r):8.2f} frames/s", flush=True)
    order = sorted(res, key=lambda m: -rate(res[m]))
    return [m for m in order if "+" not in m], [m for m in order if "+" in m]


def judge(name: str, runs: dict[str, list[dict]], base: list[str], bound: list[str], package: str,
          target: float) -> dict:
    """Per round: the fastest baseline and bound configurations of that round, bound / (target x baseline)."""
    rounds = len(runs[package])
    ratios = [max(rate(runs[b][r]) for b in bound) / (target * max(rate(runs[a][r]) for a in base))
              for r in range(rounds)]
    best_base = max((best(runs[a]) for a in base), key=rate)
    best_bound = max((best(runs[b]) for b in bound), key=rate)
    needed = target * rate(best_base)
    budget = os.cpu_count() * best_bound["n"] / needed  # CPU seconds two cores give in the time allowed
    return {"name": name, "baseline": best_base, "bound": best_bound, "package": best(runs[package]),
            "target": target, "needed_fps": needed, "ratios": ratios, "cpu_budget_s": budget}


def bound_average(bench: harness.Bench, repeat: int) -> list[dict]:
    rows = []
    for label, sigma in (("smooth", 0.0), ("noisy", ba.NOISE_SIGMA)):
        clip, _ = ba.ensure_clip(bench, 480, noise_sigma=sigma)
        print(f"average, {label} clip", flush=True)
        inline, threaded = fastest_decode(bench, clip)
        spec = {"clip": str(clip)}
        floors = [f"decode {m}" for m in (inline[0], threaded[0])]
        plan = [(f"decode {m}", lambda s={**spec, "mode": m}: bench.child("decode", s))
                for m in (inline[0], threaded[0])]
        bounds = [(f"bound, {m}, {t} OpenCV thread(s)", lambda s={**spec, "mode": m, "threads": t}: bench.child(
            "average_bound", s)) for m in inline[:2] + threaded[:2] for t in (1, 2)]
        out = str(bench.work / "runs" / f"bounds_{label}")
        plan += bounds + [("blursynth average", lambda s={**spec, "out": out}: bench.child("blursynth", s))]
        runs = harness.alternate(plan, repeat, "frames")
        rows.append(judge(f"average, {label}", runs, floors, [n for n, _ in bounds], "blursynth average",
                          TARGETS["average"]))
    return rows


def bound_wild(bench: harness.Bench, repeat: int) -> list[dict]:
    clip, _ = ba.ensure_clip(bench, 480)
    print("WILD", flush=True)
    inline, threaded = fastest_decode(bench, clip)
    kept = bench.child("wild_windows", {"clip": str(clip), "out": str(bench.work / "runs" / "bounds_wild_kept")})
    print(f"  the package keeps {kept['windows']} windows: {len(kept['pairs'])} of 479 pairs lie inside them",
          flush=True)
    spec = {"clip": str(clip), "frames": 480, "flow": "dis", "out": str(bench.work / "runs" / "bounds_wild")}
    floors = [f"decode {m}" for m in (inline[0], threaded[0])]
    plan = [(f"decode {m}", lambda s={"clip": str(clip), "mode": m}: bench.child("decode", s))
            for m in (inline[0], threaded[0])]
    bounds = [(f"bound, {m}", lambda s={"clip": str(clip), "mode": m, "pairs": kept["pairs"]}: bench.child(
        "wild_bound", s)) for m in (inline[0], threaded[0])]
    plan += bounds + [("wild", lambda: bench.child("wild", spec))]
    runs = harness.alternate(plan, repeat, "frames")
    return [judge("WILD (dis)", runs, floors, [n for n, _ in bounds], "wild", TARGETS["wild"])]


def bound_substeps(bench: harness.Bench, repeat: int, tree: Path) -> list[dict]:
    clip, _ = ba.ensure_clip(bench, SUBSTEP_FRAMES)
    print(f"--substeps {K}", flush=True)
    inline, threaded = fastest_decode(bench, clip)

    def exposure(package: Path | None) -> dict:
        spec = {"clip": str(clip), "out": str(bench.work / "runs" / ("bounds_k_base" if package else "bounds_k")),
                "substeps": K, "interpolation": "balanced", "package": str(package / "blursynth") if package else None}
        return bench.child("exposure", spec, env={"PYTHONPATH": str(package)} if package else None)

    bounds = [(f"bound, {m}, {c} channels", lambda s={"clip": str(clip), "mode": m, "channels": c}: bench.child(
        "substeps_bound", s)) for m in (inline[0], threaded[0]) for c in (3, 4)]
    plan = bounds + [("baseline tree", lambda: exposure(tree)), ("this tree", lambda: exposure(None))]
    runs = harness.alternate(plan, repeat, "frames")
    return [judge(f"--substeps {K} balanced", runs, ["baseline tree"], [n for n, _ in bounds], "this tree",
                  TARGETS["substeps"])]


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--baseline-tree", type=Path, default=None,
                   help="checkout of the tree issue 18 left (the --substeps target's baseline)")
    p.add_argument("--only", default="average,wild,substeps", help="targets to bound (default: %(default)s)")
    args = harness.parse(p, WORKERS, argv)
    repeat = max(1, args.repeat or 2)
    bench = harness.Bench(__file__, args, ba.DISTS)
    (bench.work / "runs").mkdir(exist_ok=True)
    only = set(args.only.split(","))
    rows = []
    if "average" in only:
        rows += bound_average(bench, repeat)
    if "wild" in only:
        rows += bound_wild(bench, repeat)
    if "substeps" in only:
        if args.baseline_tree is None:
            print("--substeps bound left out: it needs --baseline-tree (the tree issue 18 left)")
        else:
            rows += bound_substeps(bench, repeat, args.baseline_tree.resolve())
    lines = []
    for row in rows:
        base, bound, ours, ratios = row["baseline"], row["bound"], row["package"], sorted(row["ratios"])
        lines.append((row["name"], f"{rate(base):.1f}", f"{row['needed_fps']:.1f}", f"{rate(bound):.1f}",
                      f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})",
                      f"{bound['cpu_s']:.1f} / {row['cpu_budget_s']:.1f}", f"{rate(ours):.1f}",
                      f"{rate(ours) / rate(base):.2f}"))
        bench.report.setdefault("bounds", {})[row["name"]] = row
    harness.table(("target", "baseline fps", "needed fps", "bound fps", "bound / needed, per round",
                   "bound CPU s / budget", "package fps", "package / baseline"), lines)
    print("baseline: the decode floor (average, WILD; fastest of the round) or the baseline tree's whole run "
          "(--substeps); needed: the target ratio times it; bound: the subset of the work, its fastest configuration "
          "of the round; bound / needed below 1 in every round, or bound CPU above the budget (what the cores give "
          "in the time the target allows): out of reach with these kernels on this machine")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
