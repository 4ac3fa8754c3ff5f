#!/usr/bin/env python
"""Throughput of ``blursynth local`` next to its I/O floor (read one background PNG, write one sample).
Targets: local(N=13) at its default ``--substeps auto`` / floor >= 0.25 (issue 18), and at ``--substeps 1``
(revision 1's N discrete frames) >= 0.5, both measured in the same run. What is measured and why:
benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import harness
from harness import best, rate

WIDTH, HEIGHT = 1280, 720
SEQUENCES, FRAMES_PER_SEQUENCE = 2, 8  # 16 backgrounds in 2 folders
VOC_IMAGES, VOC_SIZE = 8, (375, 500)  # (h, w): the typical VOC 2012 image
PNG_LEVEL = 6  # zlib's default, as most tools write PNGs
INPUTS_VERSION = 1  # bump when a generator changes so cached inputs are regenerated
TARGET = 0.25  # local(N=13) at the default --substeps auto / floor, samples per second (issue 18)
TARGET_K1 = 0.5  # local(N=13) at --substeps 1 / floor
TARGET_K1_ISSUE20 = 0.9  # the same ratio, issue 20's target
TARGET_VS_BASELINE = 2.0  # local(N=13, auto) / the same run of --baseline-tree (issue 20: the tree issue 18 left)
CROP = (256, 256)
DISTS = ("numpy", "opencv-contrib-python-headless", "h5py", "pillow", "blursynth")


# -- inputs ----------------------------------------------------------------------------------------------------
def worker_gen(spec: dict) -> dict:
    """Write the backgrounds and the VOC root into ``spec["inputs"]`` (marker file written last)."""
    import cv2
    import numpy as np
    from objects_data import Shape, write_voc
    from textures import textured_image

    root = Path(spec["inputs"])
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(1234)
    pan = (9, 15)  # px per frame: consecutive frames of a REDS sequence are near-duplicates
    for s in range(SEQUENCES):
        th, tw = HEIGHT + pan[0] * FRAMES_PER_SEQUENCE, WIDTH + pan[1] * FRAMES_PER_SEQUENCE
        tex = (textured_image(th, tw, seed=s) * 255.0).astype(np.float32)
        folder = root / "backgrounds" / f"{s:03d}"
        folder.mkdir(parents=True)
        for f in range(FRAMES_PER_SEQUENCE):
            y, x = f * pan[0], f * pan[1]
            noise = rng.normal(0.0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.float32)
            frame = np.clip(tex[y : y + HEIGHT, x : x + WIDTH] + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{f:08d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    h, w = VOC_SIZE  # 2-4 non-overlapping shapes of 90-280 px per image (VOC averages ~2.3 objects per image)
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
    return {}


def ensure_inputs(bench: harness.Bench) -> Path:
    inputs = bench.work / f"local_inputs_v{INPUTS_VERSION}"
    if not (inputs / "done").exists():
        print(f"generating inputs in {inputs} ...", flush=True)
        print(f"  done in {bench.child('gen', {'inputs': str(inputs)})['process_s']:.1f} s", flush=True)
    pngs = sorted((inputs / "backgrounds").rglob("*.png"))
    print(f"inputs {inputs}: {len(pngs)} PNG {WIDTH}x{HEIGHT} in {SEQUENCES} folders, mean "
          f"{sum(p.stat().st_size for p in pngs) / len(pngs) / 1e6:.2f} MB (zlib level {PNG_LEVEL}); VOC: "
          f"{VOC_IMAGES} images {VOC_SIZE[1]}x{VOC_SIZE[0]}", flush=True)
    return inputs


# -- workers ---------------------------------------------------------------------------------------------------
def _meta_like(n: int) -> dict:
    """A meta dict of the size ``local`` writes (two moving objects' poses and steps, one static)."""
    obj = {"role": "moving", "bank_index": 3, "source": "JPEGImages/2008_000001.jpg", "instance_id": 1,
           "class": "cat", "patch_size": [180, 220], "scale": 1.2, "start": [640.123456, 360.654321],
           "motion": {"dx": 3.1234567, "dy": -1.7654321, "scale": 1.0123456, "rotate": -1.2345678},
           "steps": [[{"kind": "translate", "dx": 3.1234567, "dy": -1.7654321}, {"kind": "rotate", "degrees": 1.5}]
                     for _ in range(n - 1)],
           "poses": [[1.234567, 0.012345, 512.345678, -0.012345, 1.234567, 300.123456] for _ in range(n)]}
    static = {"role": "static", "pose": obj["poses"][0],
              **{k: obj[k] for k in ("bank_index", "source", "instance_id", "class", "patch_size", "scale")}}
    return {"sample": "train#000000", "name": "000000", "source": "local", "split": "train", "index": 0,
            "recipe": "local", "seed": 0, "crf": "gamma", "gamma": 2.2, "n_frames": n, "center": (n - 1) // 2,
            "background": {"key": "backgrounds/000/00000000.png", "group": "backgrounds/000", "size": [720, 1280],
                           "crop": [0, 0, 720, 1280]},
            "objects": [obj, dict(obj), static], "regions": [[100, 100, 500, 420]], "mask_fraction": 0.08,
            "substeps": 9, "exposure_samples": 9 * (n - 1) + 1, "substep_px": 0.9876}


def worker_floor(spec: dict) -> dict:
    """Per sample: read one randomly drawn background, append one sample; shards committed as they fill."""
    import cv2
    import h5py
    import numpy as np

    paths = sorted(str(p) for p in (Path(spec["inputs"]) / "backgrounds").rglob("*.png"))
    out, k, size = Path(spec["out"]) / "train", spec["samples"], spec["shard_size"]
    shutil.rmtree(out.parent, ignore_errors=True)
    out.mkdir(parents=True)
    order = [paths[int(i)] for i in np.random.default_rng(0).integers(len(paths), size=k)]
    meta = json.dumps(_meta_like(13), sort_keys=True)
    h, w = spec["crop"] or (HEIGHT, WIDTH)
    mask = np.zeros((h, w), np.uint8)
    spent = {"read": 0.0, "write": 0.0}

    def shard(index: int, first: int, count: int) -> None:
        final = out / f"{index:05d}.h5"
        with open(f"{final}.partial", "w+b") as raw:
            f = h5py.File(raw, "w")
            dsets = [f.create_dataset(name, (count, *shape), np.uint8, chunks=(1, *shape))
                     for name, shape in (("blur", (h, w, 3)), ("sharp", (h, w, 3)), ("mask", (h, w)))]
            metas = f.create_dataset("meta", (count,), h5py.string_dtype("utf-8"))
            for i in range(count):
                t = time.perf_counter()
                image = cv2.cvtColor(cv2.imread(order[first + i], cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION),
                                     cv2.COLOR_BGR2RGB)
                if spec["crop"]:
                    image = np.ascontiguousarray(image[:h, :w])
                t1 = time.perf_counter()
                for dset, array in zip(dsets, (image, image, mask), strict=True):
                    dset.id.write_direct_chunk((i,) + (0,) * array.ndim, array)
                metas[i] = meta
                spent["read"] += t1 - t
                spent["write"] += time.perf_counter() - t1
            t = time.perf_counter()
            f.flush()
            f.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(f"{final}.partial", final)
        Path(f"{final}.json").write_text(json.dumps({"count": count}))
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        spent["write"] += time.perf_counter() - t

    _, fig = harness.timed(lambda: [shard(s, first, min(size, k - first))
                                    for s, first in enumerate(range(0, k, size))])
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"n": k, **fig, "read_ms": 1000 * spent["read"] / k, "write_ms": 1000 * spent["write"] / k}


def _run_local(spec: dict):
    """``run_local`` on a fresh OUT, as a thunk (the imports happen now, before any clock starts)."""
    from blursynth.config import LocalConfig
    from blursynth.recipes.local import run_local

    harness.as_the_cli()
    inputs = Path(spec["inputs"])
    kw = {"backend": spec["backend"]} if spec.get("backend") else {}
    if spec.get("substeps") is not None:  # None: the library's default (auto)
        kw["substeps"] = spec["substeps"]
    cfg = LocalConfig(backgrounds=(str(inputs / "backgrounds"),), out=spec["out"], voc=str(inputs / "VOC2012"),
                      num_samples=spec["samples"], frames=(spec["frames"],) * 2, moving_objects=2,
                      shard_size=spec["shard_size"], crop=tuple(spec["crop"]) if spec["crop"] else None,
                      device=spec["device"], **kw)
    shutil.rmtree(spec["out"], ignore_errors=True)
    return lambda: run_local(cfg)


def worker_local(spec: dict) -> dict:
    """``run_local`` end to end; the bank build (until ``objects.h5`` was last written) is taken out."""
    import numpy as np

    _, fig = harness.timed(_run_local(spec))
    out = Path(spec["out"])
    banks = list(out.glob("*.h5"))
    bank_s = max(p.stat().st_mtime for p in banks) - fig["t_begin"] if banks else 0.0
    fractions, regions, statics, ks = [], [], [], []
    for _, _, meta in harness.shard_metas(out):  # the workload, read back after timing
        area = meta["background"]["crop"][2] * meta["background"]["crop"][3]
        ks.append(meta.get("substeps", 1))
        fractions.append(meta["mask_fraction"])
        regions.append(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in meta["regions"]) / area)
        statics.append(sum(o["role"] == "static" for o in meta["objects"]))
    objects = json.loads((out / "manifest.json").read_text()).get("objects", {}).get("count")
    shutil.rmtree(out, ignore_errors=True)
    return {**fig, "n": len(fractions), "seconds": fig["seconds"] - bank_s, "e2e_s": fig["seconds"],
            "bank_s": bank_s, "bank_objects": objects, "mask_fraction": float(np.mean(fractions)),
            "region_fraction": float(np.mean(regions)), "static_objects": float(np.mean(statics)),
            "k_mean": float(np.mean(ks)), "k_max": int(np.max(ks))}


def worker_profile(spec: dict) -> dict:
    (_, rows), fig = harness.timed(lambda: harness.profiled(_run_local(spec), top=30))
    shutil.rmtree(spec["out"], ignore_errors=True)
    return {"n": spec["samples"], **fig, "profile": rows}


def worker_imports(spec: dict) -> dict:
    import h5py  # noqa: F401

    import blursynth.recipes.local  # noqa: F401

    return {}


WORKERS = {"gen": worker_gen, "floor": worker_floor, "local": worker_local, "profile": worker_profile,
           "imports": worker_imports}


# -- parent ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--quick", action="store_true", help="12 samples, shards of 6, one round: checks the script")
    p.add_argument("--samples", type=int, default=None, help="samples per run (default 100; 12 with --quick)")
    p.add_argument("--shard-size", type=int, default=None, help="samples per shard (default 50; 6 with --quick)")
    p.add_argument("--device", default="cpu", help="LocalConfig.device (default: %(default)s)")
    p.add_argument("--backend", default=None, help="LocalConfig.backend (default: the library's default)")
    p.add_argument("--substeps", default=None, help="LocalConfig.substeps of the main rows, K or auto (default: the "
                   "library's default, auto); 'local N=13 K=1' is always measured next to them")
    p.add_argument("--no-profile", action="store_true", help="skip the cProfile run of local N=13")
    p.add_argument("--what-if", action="store_true", help="also run the floor and local N=13 with glibc malloc tuned")
    p.add_argument("--baseline-tree", default=None, help="also run local N=13 (main K and K=1) with the package of "
                   "this tree (e.g. a `git worktree` of an older commit), alternating with the rest")
    args = harness.parse(p, WORKERS, argv)
    k = args.samples or (12 if args.quick else 100)
    repeat = max(1, args.repeat or (1 if args.quick else 2))
    substeps = None if args.substeps is None else ("auto" if args.substeps == "auto" else int(args.substeps))
    bench = harness.Bench(__file__, args, DISTS, device=args.device, backend=args.backend or "library default",
                          substeps=args.substeps or "library default")
    rep = bench.report
    inputs = ensure_inputs(bench)
    runs_dir = bench.work / f"local_runs_{os.getpid()}"
    base = {"inputs": str(inputs), "samples": k, "shard_size": args.shard_size or (6 if args.quick else 50),
            "device": args.device, "backend": args.backend, "crop": None, "substeps": substeps}
    specs = {"floor": ("floor", {}), "local N=13": ("local", {"frames": 13}),
             "local N=13 K=1": ("local", {"frames": 13, "substeps": 1}), "local N=7": ("local", {"frames": 7}),
             "floor crop": ("floor", {"crop": CROP}), "local N=13 crop": ("local", {"frames": 13, "crop": CROP})}
    specs = {name: (kind, {**base, **extra, "out": str(runs_dir / name.replace(" ", "_"))})
             for name, (kind, extra) in specs.items()}
    envs: dict[str, dict] = {}
    if args.baseline_tree:  # the same worker (this script) importing the other tree's package first
        tree = {"PYTHONPATH": str(Path(args.baseline_tree).resolve())}
        for name in ("local N=13", "local N=13 K=1"):
            specs[f"baseline {name}"] = (specs[name][0], {**specs[name][1], "out": specs[name][1]["out"] + "_base"})
            envs[f"baseline {name}"] = tree
    print(f"{k} samples per run, shard size {base['shard_size']}, {repeat} round(s), each run in a fresh process",
          flush=True)
    try:
        rep["imports"] = bench.child("imports", {})
        runs = rep["runs"] = harness.alternate([(name, lambda s=s, e=envs.get(name): bench.child(*s, env=e))
                                              for name, s in specs.items()], repeat, "samples")
        if not args.no_profile:
            print("local N=13 under cProfile", flush=True)
            rep["profile"] = bench.child("profile", specs["local N=13"][1])
        if args.what_if:
            print("what-if: glibc malloc tuned (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_)", flush=True)
            rep["what_if"] = {n: bench.child(*specs[n], env=harness.MALLOC_TUNED) for n in ("floor", "local N=13")}
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    res = rep["best"] = {name: best(rs) for name, rs in runs.items()}
    floor, l13, l13k1, floor_c = res["floor"], res["local N=13"], res["local N=13 K=1"], res["floor crop"]
    full, crop = f"{WIDTH}x{HEIGHT}", f"{CROP[1]}x{CROP[0]}"
    main_k = f"K={args.substeps or 'auto'}"

    def ks(r: dict) -> str:
        return f"{main_k}, mean {r['k_mean']:.1f}, max {r['k_max']}" if main_k == "K=auto" else main_k

    rows = [("floor: read bg + write sample", "-", full, floor, floor),
            (f"local, 2 moving ({ks(l13)})", 13, full, l13, floor),
            ("local, 2 moving (K=1)", 13, full, l13k1, floor),
            (f"local, 2 moving ({ks(res['local N=7'])})", 7, full, res["local N=7"], floor),
            ("floor, crop", "-", crop, floor_c, floor_c),
            (f"local, 2 moving, crop ({ks(res['local N=13 crop'])})", 13, crop, res["local N=13 crop"], floor_c)]
    if args.baseline_tree:
        rows += [(f"baseline tree: local ({ks(res['baseline local N=13'])})", 13, full, res["baseline local N=13"],
                  floor),
                 ("baseline tree: local (K=1)", 13, full, res["baseline local N=13 K=1"], floor)]
    if args.what_if:
        w = rep["what_if"]
        rows += [("what-if malloc tuned: floor", "-", full, w["floor"], w["floor"]),
                 ("what-if malloc tuned: local", 13, full, w["local N=13"], w["floor"])]
    harness.table(("measurement", "N", "size", "samples", "time s", "samples/s", "CPU s", "ms/sample", "vs floor",
                   "faults/smp", "peak MB"),
                  [(name, n, size, r["n"], f"{r['seconds']:.2f}", f"{rate(r):.2f}", f"{r['cpu_s']:.1f}",
                    f"{1000 * r['seconds'] / r['n']:.1f}", f"{rate(r) / rate(ref):.2f}",
                    f"{r['minor_faults'] / r['n']:.0f}", f"{r['peak_rss_mb']:.0f}") for name, n, size, r, ref in rows]
                  + [("imports only (baseline)", *[""] * 9, f"{rep['imports']['peak_rss_mb']:.0f}")])
    print("local rows exclude the object-bank build; 'vs floor' of crop rows: against the crop floor (what-if rows: "
          "the what-if floor); CPU s: all threads; faults/smp: minor page faults per sample; peak MB: ru_maxrss")
    paired = [rate(a) / rate(b) for a, b in zip(runs["local N=13"], runs["floor"], strict=True)]
    cpu_ratio = floor["cpu_s"] / l13["cpu_s"]
    print()
    rep["pass"] = harness.verdict(f"pipeline / floor (N=13, 1280x720, {main_k})", rate(l13) / rate(floor), TARGET)
    rep["pass_k1"] = harness.verdict("pipeline / floor (N=13, 1280x720, K=1)", rate(l13k1) / rate(floor), TARGET_K1)
    rep["pass_k1_issue20"] = harness.verdict("pipeline / floor (N=13, 1280x720, K=1), issue 20",
                                             rate(l13k1) / rate(floor), TARGET_K1_ISSUE20)
    if args.baseline_tree:
        b13, b13k1 = res["baseline local N=13"], res["baseline local N=13 K=1"]
        rep["pass_vs_baseline"] = harness.verdict(f"local (N=13, {main_k}) / baseline tree", rate(l13) / rate(b13),
                                                  TARGET_VS_BASELINE)
        print(f"  K=1 / baseline tree: {rate(l13k1) / rate(b13k1):.2f}; per round, {main_k}: "
              + ", ".join(f"{rate(a) / rate(b):.2f}" for a, b in zip(runs["local N=13"], runs["baseline local N=13"],
                                                                   strict=True)))
    print(f"  per round (run back to back): {', '.join(f'{r:.2f}' for r in paired)}; by CPU time per sample: "
          f"{cpu_ratio:.2f}; N=7: {rate(res['local N=7']) / rate(floor):.2f}; crop {crop}: "
          f"{rate(res['local N=13 crop']) / rate(floor_c):.2f} of the crop floor; {main_k} / K=1: "
          f"{rate(l13) / rate(l13k1):.2f}")
    print(f"object bank: {l13['bank_objects']} objects built in {l13['bank_s']:.2f} s (excluded; end to end "
          f"{l13['n'] / l13['e2e_s']:.2f} samples/s)")
    print(f"workload (N=13, {full}): mask covers {100 * l13['mask_fraction']:.1f} % of a sample, composited regions "
          f"{100 * l13['region_fraction']:.1f} %, {l13['static_objects']:.2f} static objects per sample")
    print(f"floor per sample: read_background {floor['read_ms']:.2f} ms, write (add + close, fsync) "
          f"{floor['write_ms']:.2f} ms")
    if "profile" in rep:
        prof = rep["profile"]
        print(f"\nlocal N=13 under cProfile: {1000 * prof['seconds'] / prof['n']:.1f} ms/sample (bank build and "
              "profiler overhead included); top functions by own time:")
        harness.print_profile(prof["profile"], prof["n"], "sample")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
