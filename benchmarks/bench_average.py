#!/usr/bin/env python
"""Throughput and peak-memory benchmark of ``blursynth average`` on a synthetic 240 fps H.264 clip.

Measures, each in a fresh subprocess so that peak RSS figures are separate:

  (a) decode alone: iterate ``blursynth.io.video.read_video`` (the tool's decoder settings), nothing else;
  (b) ``blursynth average`` end to end to HDF5 on CPU: ``run_average(AverageConfig(inputs=(clip,), out=...,
      device="cpu"))`` with the default gopro recipe, and once as ``python -m blursynth average clip out -q``
      (includes interpreter start-up and imports);
  (c) a naive reference: same windows (gopro plan, 7-13 frames back-to-back), float64 ``(f/255)**2.2`` per
      frame, mean, ``**(1/2.2)``, round to uint8, decoding included (its compute-only time is reported too).

Targets: (b)/(a) >= 0.8 and (b)/(c) >= 10 (frames per second ratios); peak RSS of (b) must not grow with the
video length (``--long`` runs a clip twice as long). See benchmarks/README.md.

Usage:
    python benchmarks/bench_average.py [--work DIR] [--frames N] [--long] [--json FILE] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import environment, warn_if_busy

WIDTH, HEIGHT, FPS = 1280, 720, 240
CLIP_VERSION = 1  # bump when the generator changes so cached clips are regenerated
X264_PRESET = "veryfast"
X264_CRF = 14  # with the sensor noise below: ~24 KB/frame, ~47 Mbit/s at 240 fps
NOISE_SIGMA = 4.0  # per-frame sensor noise, 8-bit code values
TARGET_B_OVER_A = 0.8
TARGET_B_OVER_C = 10.0
MEM_TOLERANCE_MB = 32.0  # peak(2N) may exceed peak(N) by at most max(this, 5 %)
# --what-if: keep freed frame-sized blocks in the heap instead of returning them to the kernel, so every new
# 2.7 MB (RGB) / 11 MB (int32) array is not paid for again in page faults.
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


# ------------------------------------------------------------------------------------------------------
# Synthetic clip
# ------------------------------------------------------------------------------------------------------
def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multi-octave value noise (cells 256 px down to single pixels), luminance-heavy, uint8 RGB."""
    import cv2

    acc = np.zeros((height, width, 3), np.float32)
    amp = 1.0
    for cell in (256, 128, 64, 32, 16, 8, 4, 2, 1):
        grid = rng.standard_normal((height // cell + 2, width // cell + 2, 4)).astype(np.float32)
        # channel 3 is shared luminance detail, channels 0-2 add colour
        grid = 0.45 * grid[..., :3] + 0.9 * grid[..., 3:]
        if cell == 1:
            layer = grid[:height, :width]
        else:
            size = ((width // cell + 2) * cell, (height // cell + 2) * cell)
            layer = cv2.resize(grid, size, interpolation=cv2.INTER_CUBIC)[:height, :width]
        acc += amp * layer
        amp *= 0.8
    acc /= acc.std()
    return np.clip(128.0 + 48.0 * acc, 0, 255).astype(np.uint8)


def _frames(num: int, seed: int = 0):
    """Yield ``num`` RGB frames: the texture panned, zoomed and slightly rotated, plus sensor noise."""
    import cv2

    rng = np.random.default_rng(seed)
    th, tw = 1100, 1900
    tex = _texture(rng, th, tw)
    bank = [np.rint(rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * NOISE_SIGMA).astype(np.int16)
            for _ in range(7)]
    for i in range(num):
        t = i / FPS
        zoom = 1.0 + 0.15 * np.sin(2 * np.pi * 0.5 * t)
        cx = tw / 2 + 250 * np.sin(2 * np.pi * 0.3 * t) + 40 * np.sin(2 * np.pi * 2.1 * t)  # ~2-4 px/frame
        cy = th / 2 + 120 * np.sin(2 * np.pi * 0.45 * t) + 25 * np.sin(2 * np.pi * 1.7 * t)
        angle = 3.0 * np.sin(2 * np.pi * 0.2 * t)
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
        m[0, 2] += WIDTH / 2 - cx
        m[1, 2] += HEIGHT / 2 - cy
        frame = cv2.warpAffine(tex, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        shift = (int(rng.integers(HEIGHT)), int(rng.integers(WIDTH)))
        noise = np.roll(bank[i % len(bank)], shift, axis=(0, 1))
        yield np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def encode_clip(path: Path, num: int) -> None:
    """Encode ``num`` synthetic frames with PyAV/libx264 to ``path`` (via a temporary name)."""
    import av

    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(X264_CRF), "preset": X264_PRESET}
        for rgb in _frames(num):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)


def ensure_clip(work: Path, num: int) -> tuple[Path, dict]:
    """Encode the clip (in a subprocess) unless a cached copy exists; return its path and stats."""
    name = f"clip_{WIDTH}x{HEIGHT}_{FPS}fps_{num}f_crf{X264_CRF}_{X264_PRESET}_v{CLIP_VERSION}.mp4"
    path = work / name
    encode_s = None
    if not path.exists():
        print(f"encoding {num} frames with libx264 ({X264_PRESET}, crf {X264_CRF}) ...", flush=True)
        t0 = time.perf_counter()
        run_worker("encode", path, work, frames=num)
        encode_s = time.perf_counter() - t0
    size = path.stat().st_size
    stats = {
        "path": str(path), "frames": num, "width": WIDTH, "height": HEIGHT, "fps": FPS,
        "codec": "h264 (libx264)", "preset": X264_PRESET, "crf": X264_CRF, "size_bytes": size,
        "kb_per_frame": size / num / 1000, "bitrate_mbps": size * 8 * FPS / num / 1e6,
        "encode_s": encode_s, "cached": encode_s is None,
    }
    how = "cached" if encode_s is None else f"encoded in {encode_s:.1f} s"
    print(f"clip: {path.name}  {num} frames {WIDTH}x{HEIGHT} @ {FPS} fps, {size / 1e6:.1f} MB, "
          f"{stats['kb_per_frame']:.1f} KB/frame, {stats['bitrate_mbps']:.1f} Mbit/s ({how})", flush=True)
    return path, stats


# ------------------------------------------------------------------------------------------------------
# Workers (run in fresh subprocesses: python bench_average.py --worker KIND ...)
# ------------------------------------------------------------------------------------------------------
class RssSampler:
    """Samples this process's RSS every 50 ms, so a run can show its memory is flat over time."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss_mb(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._rss_mb()))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def halves(self) -> tuple[float | None, float | None]:
        """Max RSS (MB) over the first and the second half of the run."""
        if len(self.samples) < 4:
            return None, None
        mid = (self.samples[0][0] + self.samples[-1][0]) / 2
        first = [r for t, r in self.samples if t <= mid]
        second = [r for t, r in self.samples if t > mid]
        return max(first), max(second)


def _self_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_encode(args) -> dict:
    encode_clip(Path(args.clip), args.frames)
    return {}


def worker_import(args) -> dict:
    """Baseline: the imports of a run (torch, cv2, av, h5py) and nothing else."""
    import blursynth.recipes.average  # noqa: F401

    return {}


def worker_decode(args) -> dict:
    from blursynth.io.video import probe_video, read_video

    t0 = time.perf_counter()
    info = probe_video(args.clip)
    t1 = time.perf_counter()
    cpu0 = time.process_time()
    n = 0
    for _index, _frame in read_video(args.clip, info):
        n += 1
    t2 = time.perf_counter()
    return {"frames": n, "probe_s": t1 - t0, "seconds": t2 - t1, "fps": n / (t2 - t1),
            "cpu_s": time.process_time() - cpu0}


def _run_average(clip: str, out: str):
    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    return run_average(AverageConfig(inputs=(clip,), out=out, device="cpu"))


def worker_average(args) -> dict:
    import blursynth.recipes.average  # noqa: F401  (imports are not part of the in-process timing)

    shutil.rmtree(args.out, ignore_errors=True)
    with RssSampler() as rss:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        summary = _run_average(args.clip, args.out)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    frames = sum(r.frames for r in summary.results)
    first, second = rss.halves()
    return {"frames": frames, "samples": summary.samples, "seconds": seconds, "fps": frames / seconds,
            "cpu_s": cpu, "rss_first_half_mb": first, "rss_second_half_mb": second}


def worker_naive(args) -> dict:
    """Naive float64 reference over the same windows; optionally compared with the tool's HDF5 output."""
    from blursynth.config import RECIPES, AverageConfig
    from blursynth.io.sources import discover_sources
    from blursynth.io.video import probe_video, read_video
    from blursynth.ops.windows import plan_windows
    from blursynth.seeding import create_rng

    preset = RECIPES["gopro"]
    seed = AverageConfig(inputs=(args.clip,), out="unused").seed
    reference = _load_reference(args.compare) if args.compare else None
    max_diff, differing, compared_px = 0, 0, 0
    compare_s = 0.0

    t_start = time.perf_counter()
    cpu0 = time.process_time()
    src = discover_sources([args.clip])[0]
    info = probe_video(src.path)
    windows = plan_windows(info.num_frames, preset.frames, create_rng(seed, "windows", src.key),
                           stride=preset.stride)
    decode_s = compute_s = 0.0
    frames = 0
    k = 0
    buf: list[np.ndarray] = []
    reader = read_video(src.path, info)
    try:
        while k < len(windows):
            t0 = time.perf_counter()
            try:
                index, frame = next(reader)
            except StopIteration:
                break
            decode_s += time.perf_counter() - t0
            frames += 1
            w = windows[k]
            if index >= w.start:
                buf.append(frame)
            if index + 1 == w.stop:
                t0 = time.perf_counter()
                mean = np.mean([(f / 255.0) ** 2.2 for f in buf], axis=0)
                blur = np.clip(np.rint(mean ** (1 / 2.2) * 255.0), 0, 255).astype(np.uint8)
                compute_s += time.perf_counter() - t0
                if reference is not None and w.center in reference:
                    t0 = time.perf_counter()
                    ref = reference[w.center]()
                    diff = np.abs(ref.astype(np.int16) - blur.astype(np.int16))
                    max_diff = max(max_diff, int(diff.max()))
                    differing += int(np.count_nonzero(diff))
                    compared_px += diff.size
                    compare_s += time.perf_counter() - t0
                buf = []
                k += 1
    finally:
        reader.close()
    seconds = time.perf_counter() - t_start - compare_s
    cpu = time.process_time() - cpu0 - compare_s
    result = {"frames": frames, "windows": k, "seconds": seconds, "fps": frames / seconds, "cpu_s": cpu,
              "decode_s": decode_s, "compute_s": compute_s, "compute_fps": frames / compute_s}
    if reference is not None:
        result["vs_tool"] = {"compared_values": compared_px, "max_abs_diff": max_diff,
                             "fraction_differing": differing / compared_px if compared_px else None}
    return result


def _load_reference(out: str) -> dict:
    """Map window centre -> loader of the tool's ``blur`` image, from the HDF5 shards under ``out``."""
    import h5py

    ref = {}
    for h5 in sorted(Path(out).rglob("*.h5")):
        with h5py.File(h5, "r") as f:
            metas = [json.loads(m) for m in f["meta"][:]]
        for j, meta in enumerate(metas):
            def load(h5=h5, j=j):
                with h5py.File(h5, "r") as f:
                    return f["blur"][j]
            ref[int(meta["center"])] = load
    return ref


def worker_profile(args) -> dict:
    """Run (b) with timers wrapped around its stages (monkeypatched in this process only)."""
    import blursynth.ops.accumulate as acc_mod
    import blursynth.recipes.average as avg_mod
    import blursynth.run.job as job_mod
    from blursynth.shards.writer import ShardWriter

    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                totals[name] += time.perf_counter() - t0
                counts[name] += 1
        return wrapper

    def timed_iter(name, make):
        def wrapper(*a, **kw):
            it = make(*a, **kw)
            try:
                while True:
                    t0 = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        totals[name] += time.perf_counter() - t0
                        counts[name] += 1
                    yield item
            finally:
                it.close()
        return wrapper

    avg_mod.read_video = timed_iter("decode thread: read_video (decode + yuv->rgb)", avg_mod.read_video)
    avg_mod.prefetch = timed_iter("main: wait for next decoded frame", avg_mod.prefetch)
    avg_mod.probe_source = timed("main: probe (count packets, decode 1st frame)", avg_mod.probe_source)
    avg_mod.quick_hash = timed("main: source hash", avg_mod.quick_hash)
    avg_mod._to_uint8 = timed("main: keep sharp frame", avg_mod._to_uint8)
    avg_mod._make_sample = timed("main: make sample/meta", avg_mod._make_sample)
    acc_mod.StreamingAccumulator.push = timed("push", acc_mod.StreamingAccumulator.push)
    acc_mod.lookup = timed("main: LUT linearise (lookup)", acc_mod.lookup)
    acc_mod.encode_sum = timed("main: CRF encode (encode_sum)", acc_mod.encode_sum)
    ShardWriter.add = timed("main: HDF5 write blur+sharp+meta", ShardWriter.add)
    ShardWriter.close = timed("main: HDF5 close (flush, fsync, rename)", ShardWriter.close)
    job_mod.write_manifest = timed("main: manifest writes", job_mod.write_manifest)

    shutil.rmtree(args.out, ignore_errors=True)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    summary = avg_mod.run_average(avg_mod.AverageConfig(inputs=(args.clip,), out=args.out, device="cpu"))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    frames = sum(r.frames for r in summary.results)
    push = totals.pop("push")
    counts.pop("push")
    lut = totals["main: LUT linearise (lookup)"]
    crf = totals["main: CRF encode (encode_sum)"]
    totals["main: accumulate add/sub + bookkeeping"] = push - lut - crf
    counts["main: accumulate add/sub + bookkeeping"] = frames
    main_known = sum(v for k, v in totals.items() if k.startswith("main:"))
    totals["main: other (planning, loop, progress)"] = max(0.0, wall - main_known)
    stages = [{"stage": k, "seconds": v, "calls": counts.get(k, 0), "share_of_wall": v / wall}
              for k, v in totals.items()]
    return {"frames": frames, "samples": summary.samples, "seconds": wall, "fps": frames / wall,
            "cpu_s": cpu, "stages": stages}


def worker_cprofile(args) -> dict:
    """cProfile of (b), main thread only (the decode thread is not seen by cProfile)."""
    import cProfile
    import io
    import pstats

    import blursynth.recipes.average  # noqa: F401

    shutil.rmtree(args.out, ignore_errors=True)
    prof = cProfile.Profile()
    prof.enable()
    _run_average(args.clip, args.out)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).strip_dirs().sort_stats("tottime").print_stats(15)
    return {"top_tottime": text.getvalue()}


WORKERS = {
    "encode": worker_encode, "import": worker_import, "decode": worker_decode, "average": worker_average,
    "naive": worker_naive, "profile": worker_profile, "cprofile": worker_cprofile,
}


def worker_main(args) -> None:
    result = WORKERS[args.worker](args)
    result["self_peak_rss_mb"] = _self_peak_mb()
    Path(args.result).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------------
# Parent: fresh subprocess per measurement, peak RSS via wait4
# ------------------------------------------------------------------------------------------------------
def run_child(cmd: list[str], result_file: Path | None = None, env: dict | None = None) -> dict:
    """Run ``cmd``; return its JSON result (if any) plus wall time, CPU time and peak RSS of that child."""
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=full_env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed with exit code {proc.returncode}: {' '.join(cmd)}")
    result = json.loads(result_file.read_text()) if result_file is not None else {}
    result.update(process_wall_s=wall, process_cpu_s=usage.ru_utime + usage.ru_stime,
                  peak_rss_mb=usage.ru_maxrss / 1024)
    result.setdefault("cpu_s", result["process_cpu_s"])
    result["minor_faults"] = usage.ru_minflt
    return result


def run_worker(kind: str, clip: Path, work: Path, out: Path | None = None, compare: Path | None = None,
               frames: int | None = None, env: dict | None = None) -> dict:
    result_file = work / f"result_{kind}_{os.getpid()}.json"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--clip", str(clip),
           "--result", str(result_file)]
    if out is not None:
        cmd += ["--out", str(out)]
    if compare is not None:
        cmd += ["--compare", str(compare)]
    if frames is not None:
        cmd += ["--frames", str(frames)]
    try:
        return run_child(cmd, result_file, env)
    finally:
        result_file.unlink(missing_ok=True)


def best_of(runs: list[dict]) -> dict:
    """Fastest run's figures, with the largest peak RSS over all runs."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    best["runs_fps"] = [r["fps"] for r in runs]
    return best


def say(name: str, r: dict) -> None:
    print(f"  {name:<36} {r['fps']:7.1f} fps  {r['seconds']:6.2f} s  CPU {r['cpu_s']:5.1f} s  "
          f"peak RSS {r['peak_rss_mb']:5.0f} MB", flush=True)


def measure_ab(clip: Path, work: Path, repeat: int, label: str, out_b: Path, env: dict | None = None) -> dict:
    """(a) and (b) alternated (a b a b ...), so both see the same background load; best run of each kept."""
    a_runs, b_runs = [], []
    for i in range(repeat):
        print(f"[{label}] run {i + 1}/{repeat}: (a) decode only, then (b) run_average in-process", flush=True)
        a_runs.append(run_worker("decode", clip, work, env=env))
        say("(a) read_video -> RGB", a_runs[-1])
        b_runs.append(run_worker("average", clip, work, out=out_b, env=env))
        say("(b) run_average -> HDF5", b_runs[-1])
    return {"a_decode": best_of(a_runs), "b_average": best_of(b_runs)}


def measure(clip: Path, frames: int, work: Path, repeat: int, label: str, *, full: bool) -> dict:
    runs_dir = work / "runs"
    runs_dir.mkdir(exist_ok=True)
    out_b = runs_dir / f"b_{frames}"
    res = measure_ab(clip, work, repeat, label, out_b)
    if not full:
        shutil.rmtree(out_b, ignore_errors=True)
        return res

    print(f"[{label}] (b) blursynth average via CLI subprocess (start-up included)", flush=True)
    out_cli = runs_dir / f"cli_{frames}"
    shutil.rmtree(out_cli, ignore_errors=True)
    cli = run_child([sys.executable, "-m", "blursynth", "average", str(clip), str(out_cli), "-q"])
    shutil.rmtree(out_cli, ignore_errors=True)
    cli.update(frames=res["b_average"]["frames"], seconds=cli["process_wall_s"])
    cli["fps"] = cli["frames"] / cli["seconds"]
    res["b_cli"] = cli
    say("(b) python -m blursynth average", cli)

    print(f"[{label}] (c) naive float64 reference (+ agreement check against (b)'s HDF5)", flush=True)
    res["c_naive"] = run_worker("naive", clip, work, compare=out_b)
    say("(c) naive, decode included", res["c_naive"])
    shutil.rmtree(out_b, ignore_errors=True)
    return res


def fmt_row(cells, widths) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in pairs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench",
                   help="work dir: cached clips and temporary outputs (default: %(default)s)")
    p.add_argument("--frames", type=int, default=480, help="frames in the clip (default: %(default)s)")
    p.add_argument("--long", action="store_true",
                   help="also run (a) and (b) on a clip 2x as long (memory check)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs of (a) and (b), best kept (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="write all figures to this JSON file")
    p.add_argument("--no-profile", action="store_true", help="skip the stage timing of (b)")
    p.add_argument("--what-if", action="store_true",
                   help="also run (a) and (b) with glibc malloc tuned to reuse freed memory "
                        "(fewer page faults)")
    p.add_argument("--cprofile", action="store_true", help="also print a cProfile of (b)'s main thread")
    # internal: worker mode
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--compare", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    if args.frames < 13:
        p.error("--frames must be at least 13 (one window)")

    t_start = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # The parent stays light (no torch/av/cv2 imports): a child's ru_maxrss starts from the parent's RSS at
    # fork time, so a heavy parent would inflate every peak-RSS figure.
    env = environment(("av", "numpy", "torch", "opencv-contrib-python-headless", "h5py", "blursynth"))
    load = warn_if_busy("(a) and (b) alternate to keep ratios fair")
    clip, clip_stats = ensure_clip(work, args.frames)
    report: dict = {"env": env, "clip": clip_stats, "targets": {
        "b_over_a": TARGET_B_OVER_A, "b_over_c": TARGET_B_OVER_C, "mem_growth_mb": MEM_TOLERANCE_MB}}

    print("[baseline] imports only (torch, cv2, av, h5py, blursynth)", flush=True)
    report["import_baseline"] = run_worker("import", clip, work)
    print(f"  peak RSS {report['import_baseline']['peak_rss_mb']:.0f} MB", flush=True)

    n = measure(clip, args.frames, work, max(1, args.repeat), f"N={args.frames}", full=True)
    report["N"] = n

    if not args.no_profile:
        print("[profile] stage timing of (b)", flush=True)
        out = work / "runs" / "profile"
        report["profile"] = run_worker("profile", clip, work, out=out)
        shutil.rmtree(out, ignore_errors=True)
    if args.cprofile:
        print("[profile] cProfile of (b), main thread", flush=True)
        out = work / "runs" / "cprofile"
        report["cprofile"] = run_worker("cprofile", clip, work, out=out)
        shutil.rmtree(out, ignore_errors=True)

    if args.what_if:
        out = work / "runs" / "what_if"
        report["what_if_malloc"] = measure_ab(clip, work, max(1, args.repeat), "what-if: malloc tuned", out,
                                              env=MALLOC_TUNED)
        shutil.rmtree(out, ignore_errors=True)

    if args.long:
        clip2, clip2_stats = ensure_clip(work, 2 * args.frames)
        report["clip_2N"] = clip2_stats
        report["2N"] = measure(clip2, 2 * args.frames, work, 1, f"2N={2 * args.frames}", full=False)

    # -- ratios and verdicts ----------------------------------------------------------------------------
    a, b, c = n["a_decode"], n["b_average"], n["c_naive"]
    ratios = {"b_over_a": b["fps"] / a["fps"], "b_over_c": b["fps"] / c["fps"],
              "b_cli_over_a": n["b_cli"]["fps"] / a["fps"], "b_cli_over_c": n["b_cli"]["fps"] / c["fps"]}
    verdict = {"b_over_a": ratios["b_over_a"] >= TARGET_B_OVER_A,
               "b_over_c": ratios["b_over_c"] >= TARGET_B_OVER_C}
    if args.long:
        peak_n, peak_2n = b["peak_rss_mb"], report["2N"]["b_average"]["peak_rss_mb"]
        tol = max(MEM_TOLERANCE_MB, 0.05 * peak_n)
        report["memory"] = {"peak_N_mb": peak_n, "peak_2N_mb": peak_2n, "growth_mb": peak_2n - peak_n,
                            "tolerance_mb": tol}
        verdict["memory_flat"] = peak_2n - peak_n <= tol
    ratios["a_over_c_ceiling"] = a["fps"] / c["fps"]  # (b) cannot beat decode: upper bound of (b)/(c)
    if "what_if_malloc" in report:
        w = report["what_if_malloc"]
        ratios["what_if_b_over_a"] = w["b_average"]["fps"] / w["a_decode"]["fps"]
        ratios["what_if_b_over_a_plain_decode"] = w["b_average"]["fps"] / a["fps"]
    report["ratios"], report["pass"] = ratios, verdict
    report["load_average_1min"] = {"start": load, "end": os.getloadavg()[0]}
    report["total_bench_s"] = time.perf_counter() - t_start

    # -- output -----------------------------------------------------------------------------------------
    if "profile" in report:
        prof = report["profile"]
        print(f"\nwhere the time of (b) goes ({prof['frames']} frames, {prof['seconds']:.2f} s wall, "
              f"{prof['fps']:.1f} fps with timers, CPU {prof['cpu_s']:.2f} s on {os.cpu_count()} cores); "
              "the decode thread overlaps the main thread:")
        for s in sorted(prof["stages"], key=lambda s: -s["seconds"]):
            per = 1000 * s["seconds"] / max(1, s["calls"])
            print(f"  {s['stage']:<56} {s['seconds']:6.2f} s {100 * s['share_of_wall']:5.1f} % "
                  f"{s['calls']:5d} calls {per:7.2f} ms/call")
    if "cprofile" in report:
        print("\ncProfile of (b), main thread, top by tottime:")
        print(report["cprofile"]["top_tottime"])

    mark = {True: "PASS", False: "FAIL"}
    widths = (44, 6, 7, 7, 6, 11, 11)
    print("\n" + fmt_row(("measurement", "frames", "time s", "fps", "CPU s", "CPU ms/frame", "peak RSS MB"),
                         widths))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    rows = [("(a) decode read_video -> RGB", a), ("(b) run_average -> HDF5 (in-process)", b),
            ("(b) python -m blursynth average -q", n["b_cli"]), ("(c) naive float64, decode included", c)]
    if args.long:
        rows += [("(a) decode, 2N clip", report["2N"]["a_decode"]),
                 ("(b) run_average, 2N clip", report["2N"]["b_average"])]
    if "what_if_malloc" in report:
        rows += [("what-if malloc tuned: (a) decode", report["what_if_malloc"]["a_decode"]),
                 ("what-if malloc tuned: (b) run_average", report["what_if_malloc"]["b_average"])]
    for name, r in rows:
        print(fmt_row((name, r["frames"], f"{r['seconds']:.2f}", f"{r['fps']:.1f}", f"{r['cpu_s']:.1f}",
                       f"{1000 * r['cpu_s'] / r['frames']:.1f}", f"{r['peak_rss_mb']:.0f}"), widths))
    print(fmt_row(("(c) naive, compute only (no decode)", c["frames"], f"{c['compute_s']:.2f}",
                   f"{c['compute_fps']:.1f}", "", "", ""), widths))
    print(fmt_row(("imports only (baseline)", "", "", "", f"{report['import_baseline']['cpu_s']:.1f}", "",
                   f"{report['import_baseline']['peak_rss_mb']:.0f}"), widths))
    print("CPU s: measured section only (process total incl. imports for the CLI row)")
    print()
    print(f"(b)/(a) = {ratios['b_over_a']:.2f}   target >= {TARGET_B_OVER_A}   {mark[verdict['b_over_a']]}"
          f"   (CLI incl. start-up: {ratios['b_cli_over_a']:.2f})")
    print(f"(b)/(c) = {ratios['b_over_c']:.1f}    target >= {TARGET_B_OVER_C:g}   {mark[verdict['b_over_c']]}"
          f"   (CLI incl. start-up: {ratios['b_cli_over_c']:.1f}; ceiling (a)/(c) = "
          f"{ratios['a_over_c_ceiling']:.1f})")
    if "what_if_b_over_a" in ratios:
        print(f"what-if malloc tuned: (b)/(a) = {ratios['what_if_b_over_a']:.2f} (both tuned), "
              f"{ratios['what_if_b_over_a_plain_decode']:.2f} against the untuned decode")
    if "vs_tool" in c:
        v = c["vs_tool"]
        print(f"(c) vs (b) output: max |diff| = {v['max_abs_diff']} code value(s), "
              f"{100 * v['fraction_differing']:.3g} % of values differ")
    if b.get("rss_first_half_mb"):
        print(f"(b) RSS within the N run: max {b['rss_first_half_mb']:.0f} MB in the first half, "
              f"{b['rss_second_half_mb']:.0f} MB in the second half")
    if args.long:
        m = report["memory"]
        print(f"(b) peak RSS: N = {m['peak_N_mb']:.0f} MB, 2N = {m['peak_2N_mb']:.0f} MB, "
              f"growth {m['growth_mb']:+.0f} MB (tolerance {m['tolerance_mb']:.0f} MB)   "
              f"{mark[verdict['memory_flat']]}")
    else:
        print("(peak RSS at 2N not measured; pass --long)")
    print(f"benchmark wall time {report['total_bench_s']:.0f} s")

    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
