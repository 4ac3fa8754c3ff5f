#!/usr/bin/env python
"""Upper bounds on the speed of issue 20's unmet targets: a strict subset of the work each exact output needs,
run with the kernels the package has (PyAV, OpenCV) in its fastest arrangement, timed in the same run as the
target's baseline. A bound below its target means no scheduling of that work reaches the target on this machine.

    python benchmarks/bench_bounds.py [--repeat 2] [--baseline-tree DIR] [--only average,wild,substeps]

* ``average`` (smooth and noisy 720p clips, bench_peers.py's): the floor is PyAV's fastest decode to RGB
  (every mode of bench_average.MODES, in the caller's thread and in a thread of its own). The bound decodes the
  same way and sums each window's frames through g^-1 (``lookup``, the package's ``cv2.LUT`` on one-channel
  views, ~1 cycle per value, and ``cv2.add``, strip by strip in cache, with one and with two OpenCV threads):
  no encoding, no sharp frame, no writing. Target: average >= 0.8x the floor.
* ``wild`` (bench_wild.py's clip): the bound decodes, shrinks x3 (area) and makes the gray frame in the decoding
  thread, as the recipe does, and computes DIS both ways for every consecutive pair in two worker threads (what
  a pair needs before its verdict, as the measurable-motion check uses both; each pair can matter:
  docs/recipes.md): no measurement, no averaging. Target: WILD >= 0.5x the decode floor.
* ``substeps`` (``--frames 7 --substeps 8 --interpolation balanced``, 56 frames of bench_average.py's clip): the
  bound decodes, computes each window's 12 DIS flows at 640x360 (two threads) and makes its 54 bicubic 720p
  float32 RGB gathers (OpenCV's pool, one map per pair instead of one per sample) in a worker thread: no
  blending, no accumulation, no encoding, no writing. Target: 2x the whole run of ``--baseline-tree`` (the
  tree issue 18 left, ``git worktree add --detach DIR adc6a63``); without it the row is left out.

Figures and what they mean: benchmarks/README.md ("Bounds").
"""

from __future__ import annotations

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
        for rgb in ba.decoded(spec["clip"], spec["mode"]):
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


def worker_wild_bound(spec: dict) -> dict:
    """Decode, x3 area and gray in the decoding thread; DIS both ways per consecutive pair in two threads."""
    import cv2

    from blursynth.ops.images import to_gray8

    harness.as_the_cli()

    def shrink(rgb):
        small = cv2.resize(rgb, (rgb.shape[1] // 3, rgb.shape[0] // 3), interpolation=cv2.INTER_AREA)
        return to_gray8(small)

    def run() -> int:
        pool, both = _dis_pool()
        pending: list[Future] = []
        n, prev = 0, None
        with pool:
            for gray in ba.decoded(spec["clip"], spec["mode"], shrink):
                if prev is not None:
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
            for rgb in ba.decoded(spec["clip"], spec["mode"]):
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
           "average_bound": worker_average_bound, "wild_bound": worker_wild_bound,
           "substeps_bound": worker_substeps_bound}


def fastest_decode(bench: harness.Bench, clip: Path, repeat: int) -> tuple[str, str, dict]:
    """Every decode mode ``repeat`` times: the fastest overall, the fastest of each kind, and the best runs."""
    runs = harness.alternate([(m, lambda m=m: bench.child("decode", {"clip": str(clip), "mode": m}))
                              for m in ba.MODES], repeat, "frames")
    res = {m: best(r) for m, r in runs.items()}
    inline = max((m for m in res if "+" not in m), key=lambda m: rate(res[m]))
    threaded = max((m for m in res if "+" in m), key=lambda m: rate(res[m]))
    return inline, threaded, res


def bound_average(bench: harness.Bench, repeat: int) -> list[tuple]:
    rows = []
    for label, sigma in (("smooth", 0.0), ("noisy", ba.NOISE_SIGMA)):
        clip, _ = ba.ensure_clip(bench, 480, noise_sigma=sigma)
        inline, threaded, decodes = fastest_decode(bench, clip, repeat)
        out = str(bench.work / "runs" / f"bounds_{label}")
        spec = {"clip": str(clip)}
        plan = [(f"bound, decode {m}, {t} OpenCV thread(s)", lambda s={**spec, "mode": m, "threads": t}: bench.child(
            "average_bound", s)) for m in (inline, threaded) for t in (1, 2)]
        plan.append(("blursynth average --frames 7", lambda s={**spec, "out": out}: bench.child("blursynth", s)))
        res = {name: best(r) for name, r in harness.alternate(plan, repeat, "frames").items()}
        floor = max(decodes.values(), key=rate)
        bound = max((r for name, r in res.items() if name.startswith("bound")), key=rate)
        rows.append((f"average, {label}", floor, bound, res["blursynth average --frames 7"], TARGETS["average"]))
    return rows


def bound_wild(bench: harness.Bench, repeat: int) -> list[tuple]:
    clip, _ = ba.ensure_clip(bench, 480)
    inline, threaded, decodes = fastest_decode(bench, clip, repeat)
    spec = {"clip": str(clip), "frames": 480, "flow": "dis", "out": str(bench.work / "runs" / "bounds_wild")}
    plan = [(f"bound, {m}", lambda m=m: bench.child("wild_bound", {"clip": str(clip), "mode": m}))
            for m in (inline, threaded)]
    plan.append(("wild", lambda: bench.child("wild", spec)))
    res = {name: best(r) for name, r in harness.alternate(plan, repeat, "frames").items()}
    bound = max((r for name, r in res.items() if name.startswith("bound")), key=rate)
    return [("WILD (dis)", max(decodes.values(), key=rate), bound, res["wild"], TARGETS["wild"])]


def bound_substeps(bench: harness.Bench, repeat: int, tree: Path) -> list[tuple]:
    clip, _ = ba.ensure_clip(bench, SUBSTEP_FRAMES)
    inline, threaded, _ = fastest_decode(bench, clip, 1)

    def exposure(package: Path | None) -> dict:
        spec = {"clip": str(clip), "out": str(bench.work / "runs" / ("bounds_k_base" if package else "bounds_k")),
                "substeps": K, "interpolation": "balanced", "package": str(package / "blursynth") if package else None}
        return bench.child("exposure", spec, env={"PYTHONPATH": str(package)} if package else None)

    plan = [(f"bound, {m}", lambda m=m: bench.child("substeps_bound", {"clip": str(clip), "mode": m}))
            for m in (inline, threaded)]
    plan += [("baseline tree", lambda: exposure(tree)), ("this tree", lambda: exposure(None))]
    res = {name: best(r) for name, r in harness.alternate(plan, repeat, "frames").items()}
    bound = max((r for name, r in res.items() if name.startswith("bound")), key=rate)
    return [(f"--substeps {K} balanced", res["baseline tree"], bound, res["this tree"], TARGETS["substeps"])]


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
    table = []
    for name, base, bound, ours, target in rows:
        need = target * rate(base)
        table.append((name, f"{rate(base):.1f}", f"{need:.1f}", f"{rate(bound):.1f}", f"{rate(bound) / need:.2f}",
                      f"{bound['cpu_s']:.1f}", f"{rate(ours):.1f}", f"{rate(ours) / rate(base):.2f}"))
        bench.report.setdefault("bounds", {})[name] = {"baseline": base, "bound": bound, "package": ours,
                                                       "target": target, "bound_over_needed": rate(bound) / need}
    harness.table(("target", "baseline fps", "needed fps", "bound fps", "bound / needed", "bound CPU s",
                   "package fps", "package / baseline"), table)
    print("baseline: the decode floor (average, WILD) or the baseline tree's whole run (--substeps); needed: the "
          "target ratio times it; bound: the subset of the work, fastest arrangement; bound / needed < 1: the "
          "target is out of reach with these kernels on this machine")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
