#!/usr/bin/env python
"""Throughput and peak memory of ``blursynth average`` against the fastest PyAV decode of the same clip and a
naive float64 reference. Targets: (b)/(a) >= 0.8, (b)/(c) >= 10, flat RSS with ``--long``. See benchmarks/README.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import harness
from harness import best, rate

WIDTH, HEIGHT, FPS = 1280, 720, 240
CLIP_VERSION = 1  # bump when the generator changes so cached clips are regenerated
X264_PRESET, X264_CRF = "veryfast", 14  # with the sensor noise below: ~24 KB/frame, ~47 Mbit/s at 240 fps
NOISE_SIGMA = 4.0  # per-frame sensor noise, 8-bit code values
#: PyAV thread_type (NONE = one thread), decoded in the caller's thread or, "+thread", in a thread of its own that
#: hands frames over through a queue: the second is usually faster here (smooth clip, SLICE: 400-540 against
#: 330-500 frames/s, with less CPU; why is not established), so both count and the fastest is the floor.
MODES = ("AUTO", "SLICE", "FRAME", "NONE", "AUTO+thread", "SLICE+thread", "FRAME+thread", "NONE+thread")
TARGET_B_OVER_A, TARGET_B_OVER_C = 0.8, 10.0
TARGET_SUBSTEPS_VS_BASELINE = 2.0  # --substeps 8 / --baseline-tree (issue 20; adc6a63, the tree before it)
MEM_TOLERANCE_MB = 32.0  # peak(2N) may exceed peak(N) by at most max(this, 5 %)
DISTS = ("av", "numpy", "torch", "opencv-contrib-python-headless", "h5py", "blursynth")


# -- the clip --------------------------------------------------------------------------------------------------
def _texture(rng, height: int, width: int):
    """Multi-octave value noise (cells 256 px down to single pixels), luminance-heavy, uint8 RGB."""
    import cv2
    import numpy as np

    acc = np.zeros((height, width, 3), np.float32)
    amp = 1.0
    for cell in (256, 128, 64, 32, 16, 8, 4, 2, 1):
        grid = rng.standard_normal((height // cell + 2, width // cell + 2, 4)).astype(np.float32)
        grid = 0.45 * grid[..., :3] + 0.9 * grid[..., 3:]  # channel 3: shared luminance detail; 0-2: colour
        if cell == 1:
            layer = grid[:height, :width]
        else:
            size = ((width // cell + 2) * cell, (height // cell + 2) * cell)
            layer = cv2.resize(grid, size, interpolation=cv2.INTER_CUBIC)[:height, :width]
        acc += amp * layer
        amp *= 0.8
    acc /= acc.std()
    return np.clip(128.0 + 48.0 * acc, 0, 255).astype(np.uint8)


def _frames(num: int, seed: int = 0, noise_sigma: float = NOISE_SIGMA):
    """``num`` RGB frames: the texture panned (~2-4 px/frame), zoomed and slightly rotated, plus sensor noise
    (``noise_sigma`` 0: none, the smooth clip of bench_peers.py)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    th, tw = 1100, 1900
    tex = _texture(rng, th, tw)
    bank = [np.rint(rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * noise_sigma).astype(np.int16)
            for _ in range(7)]
    for i in range(num):
        t = i / FPS
        zoom = 1.0 + 0.15 * np.sin(2 * np.pi * 0.5 * t)
        cx = tw / 2 + 250 * np.sin(2 * np.pi * 0.3 * t) + 40 * np.sin(2 * np.pi * 2.1 * t)
        cy = th / 2 + 120 * np.sin(2 * np.pi * 0.45 * t) + 25 * np.sin(2 * np.pi * 1.7 * t)
        m = cv2.getRotationMatrix2D((cx, cy), 3.0 * np.sin(2 * np.pi * 0.2 * t), zoom)
        m[0, 2] += WIDTH / 2 - cx
        m[1, 2] += HEIGHT / 2 - cy
        frame = cv2.warpAffine(tex, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noise = np.roll(bank[i % len(bank)], (int(rng.integers(HEIGHT)), int(rng.integers(WIDTH))), axis=(0, 1))
        yield np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def worker_encode(spec: dict) -> dict:
    """Encode the clip with PyAV/libx264 (to a temporary name, renamed when complete)."""
    import av

    path = Path(spec["clip"])
    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(X264_CRF), "preset": X264_PRESET}
        for rgb in _frames(spec["frames"], noise_sigma=spec.get("noise_sigma", NOISE_SIGMA)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return {}


def ensure_clip(bench: harness.Bench, num: int, noise_sigma: float = NOISE_SIGMA) -> tuple[Path, dict]:
    """The cached clip of ``num`` frames (encoded in a child the first time) and its figures; ``noise_sigma`` 0
    gives the smooth clip (no sensor noise)."""
    smooth = "_smooth" if noise_sigma == 0 else ""
    path = bench.work / f"clip_{WIDTH}x{HEIGHT}_{FPS}fps_{num}f_crf{X264_CRF}_{X264_PRESET}{smooth}_v{CLIP_VERSION}.mp4"
    encode_s = None
    if not path.exists():
        print(f"encoding {num} frames with libx264 ({X264_PRESET}, crf {X264_CRF}) ...", flush=True)
        encode_s = bench.child("encode", {"clip": str(path), "frames": num, "noise_sigma": noise_sigma})["process_s"]
    size = path.stat().st_size
    stats = {"path": str(path), "frames": num, "size_bytes": size, "kb_per_frame": size / num / 1000,
             "bitrate_mbps": size * 8 * FPS / num / 1e6, "encode_s": encode_s}
    print(f"clip: {path.name}  {num} frames {WIDTH}x{HEIGHT} @ {FPS} fps, {size / 1e6:.1f} MB, "
          f"{stats['kb_per_frame']:.1f} KB/frame, {stats['bitrate_mbps']:.1f} Mbit/s "
          f"({'cached' if encode_s is None else f'encoded in {encode_s:.1f} s'})", flush=True)
    return path, stats


# -- workers (fresh processes) ---------------------------------------------------------------------------------
def worker_import(spec: dict) -> dict:
    """Baseline: the imports of a run (torch, cv2, av, h5py) and nothing else."""
    import blursynth.recipes.average  # noqa: F401

    return {}


def decode(clip: str, mode: str, fn=None) -> int:
    """Decode every frame to RGB in ``mode`` (:func:`harness.decoded`; ``fn`` applied to each); frames."""
    return sum(1 for _ in harness.decoded(clip, mode, fn))


def worker_decode(spec: dict) -> dict:
    """(a): PyAV in one threading mode, or ``read_video`` (mode ``read_video``), with the process settings of the
    runs it is compared with (huge pages off; no measurable effect on decoding alone)."""
    from blursynth.io.video import probe_video, read_video

    harness.as_the_cli()
    clip = spec["clip"]
    if spec["mode"] == "read_video":
        info = probe_video(clip)
        n, fig = harness.timed(lambda: sum(1 for _ in read_video(clip, info)))
    else:
        n, fig = harness.timed(lambda: decode(clip, spec["mode"]))
    return {"n": n, **fig}


def _run_average(spec: dict):
    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    harness.check_package(spec)
    harness.as_the_cli()

    shutil.rmtree(spec["out"], ignore_errors=True)
    return lambda: run_average(AverageConfig(inputs=(spec["clip"],), out=spec["out"], device="cpu"))


def _frames_decoded(out: str) -> tuple[int, int]:
    """(frames (b) decoded: it stops after the last planned window, samples), from the shards' meta."""
    metas = [m for _, _, m in harness.shard_metas(out)]
    return max(m["frames"][-1] for m in metas) + 1, len(metas)


def worker_average(spec: dict) -> dict:
    """(b) in-process; imports are done before the clock starts."""
    _, fig = harness.timed(_run_average(spec))
    n, samples = _frames_decoded(spec["out"])
    return {"n": n, "samples": samples, **fig}


def worker_exposure(spec: dict) -> dict:
    """``average --frames 7 --substeps K`` (continuous exposure) in-process on a short clip; K = 1 is the plain
    average of the same windows (the ratio's baseline)."""
    import torch  # noqa: F401 - imported before the clock, as the other workers' imports (~1.3 s once per process)

    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    harness.check_package(spec)
    harness.as_the_cli()
    shutil.rmtree(spec["out"], ignore_errors=True)
    cfg = AverageConfig(inputs=(spec["clip"],), out=spec["out"], device="cpu", frames=(7, 7),
                        substeps=spec["substeps"], interpolation=spec.get("interpolation", "balanced"))
    _, fig = harness.timed(lambda: run_average(cfg))
    n, samples = _frames_decoded(spec["out"])
    metas = [m for _, _, m in harness.shard_metas(spec["out"])]
    shutil.rmtree(spec["out"], ignore_errors=True)
    return {"n": n, "samples": samples, "k": sorted({m.get("substeps", 1) for m in metas}), **fig}


def worker_profile(spec: dict) -> dict:
    """(b) under cProfile (main and decode threads)."""
    (_, rows), fig = harness.timed(lambda: harness.profiled(_run_average(spec)))
    n, _ = _frames_decoded(spec["out"])
    shutil.rmtree(spec["out"], ignore_errors=True)
    return {"n": n, **fig, "profile": rows}


def worker_naive(spec: dict) -> dict:
    """(c): decode, ``(f/255)**2.2`` in float64, mean, ``**(1/2.2)``, round, over (b)'s windows; the result is
    compared with (b)'s ``blur`` images (the comparison is not timed)."""
    import h5py
    import numpy as np

    from blursynth.io.video import probe_video, read_video

    windows = sorted((m["frames"][0], m["frames"][-1] + 1, path, j)  # (first, stop, shard, index in shard)
                     for path, j, m in harness.shard_metas(spec["reference"]))
    compute_s = compare_s = 0.0
    max_diff = differing = compared = frames = 0

    def run() -> None:
        nonlocal compute_s, compare_s, max_diff, differing, compared, frames
        reader, buf, k = read_video(spec["clip"], probe_video(spec["clip"])), [], 0
        for index, frame in reader:
            frames = index + 1
            start, stop, path, j = windows[k]
            if index >= start:
                buf.append(frame)
            if index + 1 == stop:
                t = time.perf_counter()
                mean = np.mean([(f / 255.0) ** 2.2 for f in buf], axis=0)
                blur = np.clip(np.rint(mean ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)
                t1 = time.perf_counter()
                compute_s += t1 - t
                with h5py.File(path, "r") as f:
                    diff = np.abs(f["blur"][j].astype(np.int16) - blur)
                max_diff, differing = max(max_diff, int(diff.max())), differing + int(np.count_nonzero(diff))
                compared += diff.size
                compare_s += time.perf_counter() - t1
                buf, k = [], k + 1
                if k == len(windows):
                    break
        reader.close()

    _, fig = harness.timed(run)
    fig["seconds"] -= compare_s
    fig["cpu_s"] -= compare_s
    return {"n": frames, **fig, "compute_s": compute_s, "max_abs_diff": max_diff,
            "fraction_differing": differing / max(1, compared)}


WORKERS = {"exposure": worker_exposure, "encode": worker_encode, "import": worker_import, "decode": worker_decode,
           "average": worker_average, "profile": worker_profile, "naive": worker_naive}


# -- parent ----------------------------------------------------------------------------------------------------
def measure_ab(bench: harness.Bench, clip: Path, repeat: int, modes=MODES, env: dict | None = None) -> dict:
    """(a) in every mode, ``read_video`` and (b), alternated within each round; best run of each."""
    out = str(bench.work / "runs" / "b")
    plan = [(f"decode {m}", lambda m=m: bench.child("decode", {"clip": str(clip), "mode": m}, env)) for m in modes]
    plan += [("read_video", lambda: bench.child("decode", {"clip": str(clip), "mode": "read_video"}, env)),
             ("run_average", lambda: bench.child("average", {"clip": str(clip), "out": out}, env))]
    return {name: best(runs) for name, runs in harness.alternate(plan, repeat, "frames").items()}


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--frames", type=int, default=480, help="frames in the clip (default: %(default)s)")
    p.add_argument("--long", action="store_true", help="also run (a) and (b) on a 2N-frame clip (memory check)")
    p.add_argument("--no-profile", action="store_true", help="skip the cProfile run of (b)")
    p.add_argument("--what-if", action="store_true", help="also run (a) and (b) with glibc malloc tuned")
    p.add_argument("--substeps", default=None, metavar="K|auto",
                   help="also run --frames 7 --substeps K on the first 56 frames, with K = 1 on them as baseline "
                        "(issue 18's target: >= 10 input frames/s at K = 8)")
    p.add_argument("--interpolation", default="balanced", help="--interpolation preset(s) of the --substeps runs, "
                   "comma-separated (balanced, quality, fast)")
    p.add_argument("--baseline-tree", default=None, help="also run the --substeps presets with the package of this "
                   "checkout (git worktree add --detach DIR REV), alternating, against issue 20's 2x target")
    args = harness.parse(p, WORKERS, argv)
    if args.frames < 13:
        p.error("--frames must be at least 13 (one window)")
    repeat = max(1, args.repeat or 2)
    bench = harness.Bench(__file__, args, DISTS)
    rep = bench.report
    (bench.work / "runs").mkdir(exist_ok=True)
    clip, rep["clip"] = ensure_clip(bench, args.frames)
    rep["imports"] = bench.child("import", {})
    print(f"{repeat} round(s), each configuration in a fresh process", flush=True)
    n = rep["N"] = measure_ab(bench, clip, repeat)
    base_mode = max(MODES, key=lambda m: rate(n[f"decode {m}"]))
    a, b = n[f"decode {base_mode}"], n["run_average"]
    out_b = str(bench.work / "runs" / "b")
    cli_out = bench.work / "runs" / "cli"
    shutil.rmtree(cli_out, ignore_errors=True)
    print("(b) as python -m blursynth average (start-up included)", flush=True)
    cli = rep["cli"] = {**bench.cli(["average", str(clip), str(cli_out), "--device", "cpu", "-q"]), "n": b["n"]}
    shutil.rmtree(cli_out, ignore_errors=True)
    print("(c) naive float64 reference over (b)'s windows", flush=True)
    c = rep["naive"] = bench.child("naive", {"clip": str(clip), "reference": out_b})
    shutil.rmtree(out_b, ignore_errors=True)
    if not args.no_profile:
        print("(b) under cProfile", flush=True)
        rep["profile"] = bench.child("profile", {"clip": str(clip), "out": str(bench.work / "runs" / "prof")})
    if args.what_if:
        print("what-if: glibc malloc tuned (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_)", flush=True)
        rep["what_if"] = measure_ab(bench, clip, repeat, (base_mode,), harness.MALLOC_TUNED)
    if args.long:
        clip2, rep["clip_2N"] = ensure_clip(bench, 2 * args.frames)
        rep["2N"] = measure_ab(bench, clip2, 1, (base_mode,))

    if args.substeps:
        clip_k, _ = ensure_clip(bench, 56)
        k = args.substeps if args.substeps == "auto" else int(args.substeps)
        runs = [("K = 1", 1, "balanced", None)] + [(f"K = {k}, {p}", k, p, None) for p in args.interpolation.split(",")]
        if args.baseline_tree:  # the same worker importing the other tree's package first, alternating
            runs += [(f"baseline tree: K = {k}, {p}", k, p, Path(args.baseline_tree).resolve())
                     for p in args.interpolation.split(",")]
        print(f"continuous exposure: --frames 7 --substeps {k} on 56 frames, presets {args.interpolation}", flush=True)
        plan = [(name, lambda value=value, preset=preset, tree=tree: bench.child("exposure", {
            "clip": str(clip_k), "out": str(bench.work / "runs" / ("k_base" if tree else "k")), "substeps": value,
            "interpolation": preset, "package": str(tree / "blursynth") if tree else None},
            env={"PYTHONPATH": str(tree)} if tree else None)) for name, value, preset, tree in runs]
        k_runs = rep["exposure_runs"] = harness.alternate(plan, repeat if args.baseline_tree else 1, "frames")
        rep["exposure"] = {name: best(rs) for name, rs in k_runs.items()}

    rows = []
    for name, r in n.items():
        label = {"read_video": "(a) read_video (the tool's decoder)", "run_average": "(b) run_average -> HDF5"}.get(
            name, f"(a) PyAV thread_type={name.split()[-1]}" + (" <- baseline" if r is a else ""))
        rows.append((label, r))
    rows += [("(b) python -m blursynth average -q", cli), ("(c) naive float64, decode included", c)]
    rows += [(f"what-if malloc tuned: {k}", r) for k, r in rep.get("what_if", {}).items()]
    rows += [(f"2N clip: {k}", r) for k, r in rep.get("2N", {}).items()]
    rows += [(f"56 frames, N = 7, {k} (K used: {r['k']})", r) for k, r in rep.get("exposure", {}).items()]
    harness.table(("measurement", "frames", "time s", "frames/s", "vs (a)", "CPU s", "CPU ms/frame", "peak RSS MB"),
                  [(label, r["n"], f"{r['seconds']:.2f}", f"{rate(r):.1f}", f"{rate(r) / rate(a):.2f}",
                    f"{r['cpu_s']:.1f}", f"{1000 * r['cpu_s'] / r['n']:.1f}", f"{r['peak_rss_mb']:.0f}")
                   for label, r in rows]
                  + [("(c) naive, compute only", c["n"], f"{c['compute_s']:.2f}", f"{c['n'] / c['compute_s']:.1f}",
                      "", "", "", ""),
                     ("imports only (baseline)", "", "", "", "", "", "", f"{rep['imports']['peak_rss_mb']:.0f}")])
    print("vs (a): frames/s over the fastest PyAV mode, same run; CPU s: the measured section (whole process for "
          "the CLI row); (b) counts the frames it decodes (up to its last window)")
    ratios = rep["ratios"] = {"b_over_a": rate(b) / rate(a), "b_over_c": rate(b) / rate(c),
                              "b_over_read_video": rate(b) / rate(n["read_video"]), "cli_over_a": rate(cli) / rate(a),
                              "a_over_c": rate(a) / rate(c), "baseline_mode": base_mode}
    print()
    passed = [harness.verdict(f"(b)/(a) [a = PyAV {base_mode}]", ratios["b_over_a"], TARGET_B_OVER_A)]
    print(f"   (b)/read_video = {ratios['b_over_read_video']:.2f}; CLI (start-up included)/(a) = "
          f"{ratios['cli_over_a']:.2f}")
    passed.append(harness.verdict("(b)/(c)", ratios["b_over_c"], TARGET_B_OVER_C, ".1f"))
    print(f"   ceiling (a)/(c) = {ratios['a_over_c']:.1f}: (b) decodes the same clip")
    print(f"(c) vs (b) output: max |diff| = {c['max_abs_diff']} code value(s), "
          f"{100 * c['fraction_differing']:.3g} % of values differ")
    if "exposure" in rep:
        (_, k1), *others = rep["exposure"].items()
        for name, kk in others:
            print(f"   continuous exposure {name}: {rate(kk):.2f} input frames/s = {rate(kk) / rate(k1):.3f} x the "
                  f"plain average of the same windows ({rate(k1):.1f} frames/s); target at K = 8: >= 10 frames/s")
        for name, kk in [(n, r) for n, r in others if f"baseline tree: {n}" in rep["exposure"]]:
            old, rounds = rep["exposure"][f"baseline tree: {name}"], rep["exposure_runs"]
            passed.append(harness.verdict(f"{name} / baseline tree", rate(kk) / rate(old), TARGET_SUBSTEPS_VS_BASELINE))
            print("   per round: " + ", ".join(f"{rate(a) / rate(b):.2f}" for a, b in
                                               zip(rounds[name], rounds[f"baseline tree: {name}"], strict=True)))
    if b.get("rss_halves_mb"):
        print("(b) RSS within the run: max {:.0f} MB in the first half, {:.0f} MB in the second".format(
            *b["rss_halves_mb"]))
    if args.long:
        peak_n, peak_2n = b["peak_rss_mb"], rep["2N"]["run_average"]["peak_rss_mb"]
        tol = max(MEM_TOLERANCE_MB, 0.05 * peak_n)
        passed.append(harness.verdict(f"(b) peak RSS growth 2N vs N ({peak_n:.0f} -> {peak_2n:.0f} MB)",
                                      peak_2n - peak_n, tol, "+.0f", higher=False))
    if "profile" in rep:
        prof = rep["profile"]
        print(f"\n(b) under cProfile: {rate(prof):.1f} frames/s (profiler overhead included); top functions by own "
              "time, every Python thread (the decode thread overlaps the main one):")
        harness.print_profile(prof["profile"], prof["n"], "frame")
    rep["pass"] = all(passed)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
