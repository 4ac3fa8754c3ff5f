#!/usr/bin/env python
"""Throughput of ``blursynth local`` (local blur synthesis) next to its I/O floor, measured in one run.

Inputs are generated once in the work dir (and reused): 16 textured 1280x720 PNG backgrounds in 2 sub-folders
(like REDS ``train_sharp/NNN/``: each folder a slow pan over one texture, plus sensor noise) and a synthetic
PASCAL VOC 2012 root (500x375 JPEGs, 2-4 discs/rectangles of 90-280 px per image, void bands; written with
``tests/objects_data.write_voc``). Measured, each in a fresh subprocess so peak RSS figures are separate:

  floor  per sample, read one background (``read_background``) and write one sample (blur, sharp 720x1280x3,
         mask 720x1280, meta) through ``ShardWriter`` (h5, no compression, ``capacity`` = shard size,
         ``extra_datasets=("mask",)``), shards closed (fsynced) as they fill: what any recipe must pay;
  local  ``run_local(LocalConfig(..., frames=(N, N), moving_objects=2))`` end to end (defaults otherwise:
         0-2 static objects, object scale 1.2); samples/s exclude the one-off object-bank build, which is
         timed separately (``build_store`` is wrapped with a timer);
  synth  ``synthesize`` alone (no writing), with a breakdown of where its time goes.

Variants: N = 13 (the acceptance figure) and N = 7 at 1280x720, and N = 13 with ``crop=(256, 256)`` next to a
floor at that crop. The acceptance ratio is local(N=13) / floor, target >= 0.5.

Usage:
    python benchmarks/bench_local.py [--quick] [--work DIR] [--samples K] [--shard-size S] [--repeat R]
                                     [--what-if] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import environment, warn_if_busy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WIDTH, HEIGHT = 1280, 720
SEQUENCES, FRAMES_PER_SEQUENCE = 2, 8  # 16 backgrounds in 2 groups
VOC_IMAGES, VOC_SIZE = 8, (375, 500)  # (h, w): the typical VOC 2012 image
PNG_LEVEL = 6  # zlib's default, as most tools write PNGs
INPUTS_VERSION = 1  # bump when a generator changes so cached inputs are regenerated
TARGET = 0.5  # local(N=13) / floor, samples per second
CROP = (256, 256)
# --what-if: glibc keeps freed image-sized blocks in the heap instead of returning them to the kernel, so a new
# 2.7 MB frame buffer is not paid for again in page faults (same settings as bench_average.py --what-if).
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


# ------------------------------------------------------------------------------------------------------
# Workers (fresh subprocesses: python bench_local.py --worker KIND --spec JSON --result FILE)
# ------------------------------------------------------------------------------------------------------
def _tests_on_path() -> None:
    sys.path.insert(0, str(REPO / "tests"))


def worker_gen(spec: dict) -> dict:
    """Write the backgrounds and the VOC root into ``spec["inputs"]`` (marker file written last)."""
    import cv2
    import numpy as np

    _tests_on_path()
    from objects_data import Shape, write_voc
    from textures import textured_image

    root = Path(spec["inputs"])
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(1234)
    sizes = []
    for s in range(SEQUENCES):
        # One texture per sequence; frame f is a crop panned by (9, 15) px per frame: consecutive frames of one
        # REDS sequence are near-duplicates, which is why whole folders go to one split.
        pan = (9, 15)
        th, tw = HEIGHT + pan[0] * FRAMES_PER_SEQUENCE, WIDTH + pan[1] * FRAMES_PER_SEQUENCE
        tex = (textured_image(th, tw, seed=s) * 255.0).astype(np.float32)
        folder = root / "backgrounds" / f"{s:03d}"
        folder.mkdir(parents=True)
        for f in range(FRAMES_PER_SEQUENCE):
            y, x = f * pan[0], f * pan[1]
            noise = rng.normal(0.0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.float32)
            frame = np.clip(tex[y : y + HEIGHT, x : x + WIDTH] + noise, 0, 255).astype(np.uint8)
            path = folder / f"{f:08d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
            sizes.append(path.stat().st_size)

    # VOC: 2-4 non-overlapping shapes of 90-280 px per 500x375 image (VOC averages ~2.3 objects per image).
    h, w = VOC_SIZE
    images = {}
    for i in range(VOC_IMAGES):
        shapes, boxes = [], []
        for _ in range(int(rng.integers(2, 5))):
            for _try in range(200):
                if rng.random() < 0.5:
                    r = float(rng.uniform(45, 110))
                    cx, cy = float(rng.uniform(r + 8, w - r - 8)), float(rng.uniform(r + 8, h - r - 8))
                    box, shape = (cx - r, cy - r, cx + r, cy + r), ("disc", (cx, cy, r))
                else:
                    bw, bh = float(rng.uniform(90, 280)), float(rng.uniform(90, 280))
                    if bw > w - 20 or bh > h - 20:
                        continue
                    x0, y0 = float(rng.uniform(8, w - bw - 8)), float(rng.uniform(8, h - bh - 8))
                    box, shape = (x0, y0, x0 + bw, y0 + bh), ("rect", (x0, y0, x0 + bw, y0 + bh))
                if all(box[2] + 8 < b[0] or b[2] + 8 < box[0] or box[3] + 8 < b[1] or b[3] + 8 < box[1]
                       for b in boxes):
                    boxes.append(box)
                    shapes.append(Shape(shape[0], shape[1], class_id=int(rng.integers(1, 21))))
                    break
        images[f"2008_{i:06d}"] = shapes
    write_voc(root / "VOC2012", images, size=VOC_SIZE)
    (root / "done").write_text("ok\n")
    return {"png_bytes_mean": float(np.mean(sizes)), "voc_objects": sum(len(v) for v in images.values())}


def _backgrounds(inputs: Path) -> list[str]:
    return sorted(str(p) for p in (inputs / "backgrounds").rglob("*.png"))


def _meta_like(n: int) -> dict:
    """A meta dict of the size ``synthesize`` writes (two moving objects' poses and steps, one static)."""
    obj = {"role": "moving", "bank_index": 3, "source": "/x/VOC2012/JPEGImages/2008_000001.jpg", "instance_id": 1,
           "class": "cat", "patch_size": [180, 220], "scale": 1.2, "start": [640.123456, 360.654321],
           "motion": {"dx": 3.1234567, "dy": -1.7654321, "scale": 1.0123456, "rotate": -1.2345678},
           "steps": [[{"kind": "translate", "dx": 3.1234567, "dy": -1.7654321}, {"kind": "rotate", "degrees": 1.5}]
                     for _ in range(n - 1)],
           "poses": [[1.234567, 0.012345, 512.345678, -0.012345, 1.234567, 300.123456] for _ in range(n)]}
    return {"sample": "train#000000", "name": "000000", "source": "local", "split": "train", "index": 0,
            "recipe": "local", "seed": 0, "crf": "gamma", "gamma": 2.2, "n_frames": n, "center": (n - 1) // 2,
            "background": {"key": "backgrounds/000/00000000.png", "group": "backgrounds/000", "size": [720, 1280],
                           "crop": [0, 0, 720, 1280]},
            "objects": [obj, dict(obj), {"role": "static", "pose": obj["poses"][0], **{k: obj[k] for k in (
                "bank_index", "source", "instance_id", "class", "patch_size", "scale")}}],
            "regions": [[100, 100, 500, 420]], "mask_fraction": 0.08}


def _minflt() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def worker_floor(spec: dict) -> dict:
    """Per sample: read one background, write one sample through ShardWriter; shards closed as they fill."""
    import numpy as np

    from blursynth.io.backgrounds import read_background
    from blursynth.sample import Sample
    from blursynth.shards.writer import ShardWriter

    paths = _backgrounds(Path(spec["inputs"]))
    out, k, shard_size = Path(spec["out"]), spec["samples"], spec["shard_size"]
    crop = spec.get("crop")
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(0)
    order = [paths[int(i)] for i in rng.integers(len(paths), size=k)]  # random draws, like the recipe
    meta = _meta_like(13)
    h, w = crop or (HEIGHT, WIDTH)
    mask = np.zeros((h, w), np.uint8)
    read_s = write_s = 0.0
    f0, t0, c0 = _minflt(), time.perf_counter(), time.process_time()
    for shard, first in enumerate(range(0, k, shard_size)):
        count = min(shard_size, k - first)
        writer = ShardWriter(out, "train", shard, layouts=("h5",), compression=None, capacity=count,
                             extra_datasets=("mask",))
        for i in range(first, first + count):
            a = time.perf_counter()
            image = read_background(order[i])
            if crop:
                image = np.ascontiguousarray(image[:h, :w])
            b = time.perf_counter()
            writer.add(Sample(blur=image, sharp=image, meta=meta, extras={"mask": mask}))
            write_s += time.perf_counter() - b
            read_s += b - a
        b = time.perf_counter()
        writer.close({"sources": {}, "windows": [first, first + count], "final": False})
        write_s += time.perf_counter() - b
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    faults = _minflt() - f0
    shutil.rmtree(out, ignore_errors=True)
    return {"samples": k, "seconds": seconds, "cpu_s": cpu, "sps": k / seconds, "faults": faults / k,
            "read_ms": 1000 * read_s / k, "write_ms": 1000 * write_s / k}


def _local_config(spec: dict):
    import dataclasses

    from blursynth.config import LocalConfig

    inputs = Path(spec["inputs"])
    kw = dict(backgrounds=(str(inputs / "backgrounds"),), out=spec["out"], voc=str(inputs / "VOC2012"),
              num_samples=spec["samples"], frames=(spec["frames"], spec["frames"]), moving_objects=2,
              shard_size=spec["shard_size"], crop=tuple(spec["crop"]) if spec.get("crop") else None,
              device=spec["device"])
    if spec.get("backend") and "backend" in {f.name for f in dataclasses.fields(LocalConfig)}:
        kw["backend"] = spec["backend"]
    return LocalConfig(**kw)


def _output_stats(out: Path) -> dict:
    """Workload of the run, read back from the shards (after timing): mask and composited-region coverage."""
    import h5py
    import numpy as np

    fractions, regions, statics = [], [], []
    for path in sorted(out.glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            for text in f["meta"].asstr()[:]:
                meta = json.loads(text)
                area = meta["background"]["crop"][2] * meta["background"]["crop"][3]
                fractions.append(meta["mask_fraction"])
                regions.append(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in meta["regions"]) / area)
                statics.append(sum(o["role"] == "static" for o in meta["objects"]))
    return {"mask_fraction_mean": float(np.mean(fractions)), "region_fraction_mean": float(np.mean(regions)),
            "static_objects_mean": float(np.mean(statics)), "samples_read_back": len(fractions)}


def worker_local(spec: dict) -> dict:
    """``run_local`` end to end on a fresh OUT; the object-bank build is timed on its own."""
    from blursynth.recipes import local

    cfg = _local_config(spec)
    out = Path(cfg.out)
    shutil.rmtree(out, ignore_errors=True)
    bank = {"seconds": 0.0}
    build_store = local.build_store

    def timed_build_store(*a, **kw):
        t = time.perf_counter()
        try:
            return build_store(*a, **kw)
        finally:
            bank["seconds"] += time.perf_counter() - t

    local.build_store = timed_build_store  # run_local looks it up at call time
    f0, t0, c0 = _minflt(), time.perf_counter(), time.process_time()
    summary = local.run_local(cfg)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    faults = _minflt() - f0
    local.build_store = build_store
    from blursynth.objects.store import ObjectStore

    store = ObjectStore(out / "objects.h5")
    patch_px = [h * w for h, w in (r["shape"] for r in store.records)]
    stats = _output_stats(out)
    shutil.rmtree(out, ignore_errors=True)
    k = summary.samples
    synth_s = seconds - bank["seconds"]
    return {"samples": k, "seconds": synth_s, "e2e_seconds": seconds, "bank_s": bank["seconds"],
            "bank_objects": len(store), "patch_px_mean": sum(patch_px) / len(patch_px),
            "cpu_s": cpu, "sps": k / synth_s, "e2e_sps": k / seconds, "faults": faults / k, **stats}


class Timers:
    """Inclusive wall time per call path (``a/b`` = b called inside a), for monkeypatched functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[str] = []

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*a, **kw):
            path = "/".join([*self.stack, label])
            self.stack.append(label)
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - t
                self.calls[path] = self.calls.get(path, 0) + 1
                self.stack.pop()

        setattr(owner, name, timed)


def worker_synth(spec: dict) -> dict:
    """``synthesize`` alone (no writing) over the same sample indices, with stage timers."""
    import numpy as np

    from blursynth.objects.store import ObjectStore
    from blursynth.ops import composite
    from blursynth.recipes import local

    cfg = _local_config(spec)
    out = Path(cfg.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    units, _, _ = local.plan_local(cfg)
    ctx = units[0].context
    t = time.perf_counter()
    local.build_store(cfg, Path(ctx.store_path))
    bank_s = time.perf_counter() - t
    store, objects = local.open_store(ctx.store_path, cfg.seed, cfg.val_fraction)
    k = spec["samples"]
    for i in range(k, k + 5):  # warm-up (first calls, patch cache) on indices outside the measured ones
        local.synthesize(cfg, ctx, "train", i, store, objects["train"])
    # The clean figure, no stage timers. Like run_local_unit, hold a sample until the next one is made: dropping
    # it at once changes how glibc reuses the freed 2.7 MB buffers (~3x the page faults, ~5 ms per sample).
    sample = None
    f0, t0, c0 = _minflt(), time.perf_counter(), time.process_time()
    for i in range(k):
        sample = local.synthesize(cfg, ctx, "train", i, store, objects["train"])
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    faults = _minflt() - f0
    del sample
    # the same samples again with stage timers
    timers = Timers()
    timers.wrap(local, "synthesize", "synthesize")
    timers.wrap(local, "read_background", "read_background")
    timers.wrap(local, "paste_static", "paste_static")
    timers.wrap(local, "render_moving", "render_moving")
    timers.wrap(local, "trajectory", "trajectory")
    timers.wrap(ObjectStore, "__getitem__", "store[i]")
    for name in ("premultiply", "warp", "over", "to_linear", "encode", "warped_box", "clusters"):
        timers.wrap(composite, name, name)
    boxes = []
    for i in range(k):
        sample = local.synthesize(cfg, ctx, "train", i, store, objects["train"])
        boxes.append(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in sample.meta["regions"]))
    shutil.rmtree(out, ignore_errors=True)
    return {"samples": k, "seconds": seconds, "cpu_s": cpu, "sps": k / seconds, "ms": 1000 * seconds / k,
            "faults": faults / k, "bank_s": bank_s, "stages": timers.seconds, "calls": timers.calls,
            "timed_pass_ms": 1000 * timers.seconds.get("synthesize", 0.0) / k,
            "region_px_mean": float(np.mean(boxes))}


def worker_imports(spec: dict) -> dict:
    import h5py  # noqa: F401

    import blursynth.recipes.local  # noqa: F401

    return {}


WORKERS = {"gen": worker_gen, "floor": worker_floor, "local": worker_local, "synth": worker_synth,
           "imports": worker_imports}


# ------------------------------------------------------------------------------------------------------
# Parent (stdlib only: a child's peak RSS starts from the parent's RSS at fork time)
# ------------------------------------------------------------------------------------------------------
def run_worker(kind: str, spec: dict, work: Path, env: dict | None = None) -> dict:
    return _common.run_worker(__file__, kind, spec, work, env=env)


def best(runs: list[dict]) -> dict:
    """Fastest run's figures, the largest peak RSS over all runs and every run's samples/s."""
    out = dict(max(runs, key=lambda r: r["sps"]))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["runs_sps"] = [round(r["sps"], 2) for r in runs]
    return out


def ensure_inputs(work: Path) -> tuple[Path, dict | None]:
    inputs = work / f"local_inputs_v{INPUTS_VERSION}"
    if (inputs / "done").exists():
        print(f"inputs: {inputs} (cached)", flush=True)
        return inputs, None
    print(f"generating inputs in {inputs} ...", flush=True)
    t0 = time.perf_counter()
    stats = run_worker("gen", {"inputs": str(inputs)}, work)
    stats["seconds"] = time.perf_counter() - t0
    print(f"  done in {stats['seconds']:.1f} s", flush=True)
    return inputs, stats


def fmt_row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                strict=True)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench",
                   help="work dir: cached inputs and temporary outputs (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="few samples, one run: checks that the script works")
    p.add_argument("--samples", type=int, default=None, help="samples per run (default 100; 12 with --quick)")
    p.add_argument("--shard-size", type=int, default=None, help="samples per shard (default 50; 6 with --quick)")
    p.add_argument("--repeat", type=int, default=None, help="rounds, best kept (default 2; 1 with --quick)")
    p.add_argument("--device", default="cpu", help="LocalConfig.device (default: %(default)s)")
    p.add_argument("--backend", default=None, help="LocalConfig.backend, when the installed version has it "
                                                   "(default: the library's default)")
    p.add_argument("--what-if", action="store_true",
                   help="also run the floor and local N=13 with glibc malloc tuned to reuse freed memory "
                        "(fewer page faults)")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    _common.add_worker_args(p, WORKERS)
    args = p.parse_args(argv)
    if _common.run_as_worker(args, WORKERS):
        return 0
    k = args.samples or (12 if args.quick else 100)
    shard_size = args.shard_size or (6 if args.quick else 50)
    repeat = max(1, args.repeat or (1 if args.quick else 2))

    t_start = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = environment(("numpy", "opencv-contrib-python-headless", "h5py", "pillow", "blursynth"),
                      device=args.device, backend=args.backend or "library default")
    load = warn_if_busy("floor and pipeline runs alternate within each round, so ratios stay fair")
    inputs, gen_stats = ensure_inputs(work)
    pngs = sorted((inputs / "backgrounds").rglob("*.png"))
    png_mb = sum(p.stat().st_size for p in pngs) / len(pngs) / 1e6
    voc_images = len(list((inputs / "VOC2012" / "JPEGImages").glob("*.jpg")))
    print(f"backgrounds: {len(pngs)} PNG {WIDTH}x{HEIGHT} in {SEQUENCES} folders, mean {png_mb:.2f} MB "
          f"(zlib level {PNG_LEVEL}); VOC: {voc_images} images {VOC_SIZE[1]}x{VOC_SIZE[0]}", flush=True)
    base = {"inputs": str(inputs), "samples": k, "shard_size": shard_size, "device": args.device,
            "backend": args.backend}
    full = {"crop": None}
    crop = {"crop": list(CROP)}
    runs_dir = work / f"local_runs_{os.getpid()}"
    plan = [  # (name, worker, spec)
        ("floor", "floor", {**base, **full, "out": str(runs_dir / "floor")}),
        ("local N=13", "local", {**base, **full, "frames": 13, "out": str(runs_dir / "l13")}),
        ("local N=7", "local", {**base, **full, "frames": 7, "out": str(runs_dir / "l7")}),
        ("floor crop", "floor", {**base, **crop, "out": str(runs_dir / "floor_crop")}),
        ("local N=13 crop", "local", {**base, **crop, "frames": 13, "out": str(runs_dir / "l13c")}),
    ]
    print(f"{k} samples per run, shard size {shard_size}, {repeat} round(s) of {len(plan)} runs, "
          "each in a fresh process", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
    try:
        imports = run_worker("imports", {}, work)
        for r in range(repeat):
            for name, kind, spec in plan:
                res = run_worker(kind, spec, work)
                runs[name].append(res)
                print(f"  round {r + 1}/{repeat}  {name:<16} {res['sps']:7.2f} samples/s  {res['seconds']:6.2f} s  "
                      f"CPU {res['cpu_s']:5.1f} s  peak RSS {res['peak_rss_mb']:4.0f} MB", flush=True)
        print("  synthesize only (no writing), N=13, 1280x720, with a stage-timed second pass", flush=True)
        synth = run_worker("synth", {**base, **full, "frames": 13, "out": str(runs_dir / "synth")}, work)
        what_if = {}
        if args.what_if:
            print("  what-if: glibc malloc tuned (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_)", flush=True)
            for name, kind, spec in plan[:2]:
                what_if[name] = run_worker(kind, spec, work, env=MALLOC_TUNED)
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    res = {name: best(rs) for name, rs in runs.items()}
    floor, l13, l7, floor_c, l13c = (res[n] for n, _, _ in plan)
    ratio = l13["sps"] / floor["sps"]
    verdict = "PASS" if ratio >= TARGET else "BELOW"

    # -- table ----------------------------------------------------------------------------------------
    widths = (40, 3, 8, 7, 6, 9, 5, 9, 8, 10, 7)
    head = ("measurement", "N", "size", "samples", "time s", "samples/s", "CPU s", "ms/sample", "vs floor",
            "faults/smp", "peak MB")
    print("\n" + fmt_row(head, widths))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    size_full, size_crop = f"{WIDTH}x{HEIGHT}", f"{CROP[1]}x{CROP[0]}"
    rows = [
        ("floor: read bg + write sample", "-", size_full, floor, floor),
        ("local (run_local), 2 moving", 13, size_full, l13, floor),
        ("local (run_local), 2 moving", 7, size_full, l7, floor),
        ("floor, crop", "-", size_crop, floor_c, floor_c),
        ("local (run_local), 2 moving, crop", 13, size_crop, l13c, floor_c),
        ("synthesize only (no writing)", 13, size_full, synth, floor),
    ]
    if what_if:
        rows += [("what-if malloc tuned: floor", "-", size_full, what_if["floor"], what_if["floor"]),
                 ("what-if malloc tuned: local", 13, size_full, what_if["local N=13"], what_if["floor"])]
    for name, n, size, r, ref in rows:
        print(fmt_row((name, n, size, r["samples"], f"{r['seconds']:.2f}", f"{r['sps']:.2f}", f"{r['cpu_s']:.1f}",
                       f"{1000 * r['seconds'] / r['samples']:.1f}", f"{r['sps'] / ref['sps']:.2f}",
                       f"{r['faults']:.0f}", f"{r['peak_rss_mb']:.0f}"), widths))
    print(fmt_row(("imports only (baseline)", "", "", "", "", "", "", "", "", "",
                   f"{imports['peak_rss_mb']:.0f}"), widths))
    print("time s / samples/s of local rows exclude the object-bank build; 'vs floor' of the crop row is against "
          "the crop floor (of what-if rows: the what-if floor); CPU s counts all threads (OpenCV's pool); "
          "faults/smp: minor page faults per sample; peak MB: the run's process (ru_maxrss)")
    paired = [a["sps"] / b["sps"] for a, b in zip(runs["local N=13"], runs["floor"], strict=True)]
    cpu_ratio = (floor["cpu_s"] / floor["samples"]) / (l13["cpu_s"] / l13["samples"])
    print(f"\npipeline / floor (N=13, 1280x720) = {ratio:.2f}   target >= {TARGET}   {verdict}")
    print(f"  per round (floor and pipeline run back to back): {', '.join(f'{r:.2f}' for r in paired)}; "
          f"by CPU time per sample: {cpu_ratio:.2f} (the pipeline's OpenCV calls use a 2nd thread, the floor's hardly)")
    print(f"  N=7: {l7['sps'] / floor['sps']:.2f}; crop {size_crop}: {l13c['sps'] / floor_c['sps']:.2f} of the crop "
          f"floor, {l13c['sps'] / floor['sps']:.2f} of the full-size floor")
    print(f"object bank: {l13['bank_objects']} objects (mean patch {l13['patch_px_mean'] / 1000:.0f} kpx) from "
          f"{voc_images} VOC images, built in {l13['bank_s']:.2f} s (excluded; end to end incl. bank "
          f"{l13['e2e_sps']:.2f} samples/s for {k} samples)")
    print(f"workload (N=13, 1280x720): mask covers {100 * l13['mask_fraction_mean']:.1f} % of a sample, composited "
          f"regions {100 * l13['region_fraction_mean']:.1f} %, {l13['static_objects_mean']:.2f} static objects per "
          f"sample on average")

    # -- breakdown ------------------------------------------------------------------------------------
    st, calls = synth["stages"], synth["calls"]
    per = 1000 / synth["samples"]
    print(f"\nwhere a sample's time goes (ms/sample; N=13, 1280x720). Floor rows: the floor run; the rest: stage "
          f"timers (inclusive) in synthesize's timed pass, {synth['timed_pass_ms']:.1f} ms/sample "
          f"(untimed pass {synth['ms']:.1f}):")
    print(f"  {'floor: read_background':<48} {floor['read_ms']:7.2f}")
    print(f"  {'floor: ShardWriter.add + close (write, fsync)':<48} {floor['write_ms']:7.2f}")
    top = "synthesize"

    def show(parent: str, depth: int) -> None:
        kids = sorted((s for s in st if s.startswith(parent + "/") and s.count("/") == parent.count("/") + 1),
                      key=lambda s: -st[s])
        for path in kids:
            label = "  " * depth + path.rsplit("/", 1)[1]
            print(f"  {label:<48} {st[path] * per:7.2f}   {calls[path] / synth['samples']:5.1f} calls/sample")
            show(path, depth + 1)
        if kids and parent != top:
            rest = st[parent] - sum(st[s] for s in kids)
            print(f"  {'  ' * depth + '(rest)':<48} {rest * per:7.2f}")

    show(top, 0)
    children = [s for s in st if s.count("/") == 1 and s.startswith(top + "/")]
    rest = (st.get(top, 0.0) - sum(st[c] for c in children)) * per
    print(f"  {'(rest: rng, motion, meta)':<48} {rest:7.2f}")
    print(f"  {'synthesize total':<48} {st.get(top, 0.0) * per:7.2f}")
    print(f"  {'local N=13: run_local per sample':<48} {1000 * l13['seconds'] / l13['samples']:7.2f}   "
          f"(minus synthesize-only: {1000 * l13['seconds'] / l13['samples'] - synth['ms']:.2f} ms for writing and "
          "bookkeeping)")
    total = time.perf_counter() - t_start
    print(f"benchmark wall time {total:.0f} s")

    if args.json:
        report = {"env": env, "load_average_1min": {"start": load, "end": os.getloadavg()[0]},
                  "inputs": str(inputs), "png_mb_mean": png_mb,
                  "generated": gen_stats, "samples": k, "shard_size": shard_size, "repeat": repeat,
                  "runs": runs, "best": res, "synth": synth, "imports": imports, "what_if_malloc": what_if,
                  "ratio_local13_over_floor": ratio, "ratio_per_round": paired, "ratio_cpu": cpu_ratio,
                  "target": TARGET, "verdict": verdict, "wall_s": total}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
