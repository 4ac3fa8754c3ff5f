#!/usr/bin/env python
"""Pairs/s of ``blursynth stats`` (blurred-area ratio vs flow threshold) per flow backend, next to the raw flow.

Inputs are generated once in the work dir (and reused): a 240 fps clip of 240 frames with a known motion (the
tests' texture panned by 0.1-1.2 px/frame, rotated by up to 0.1 deg/frame and zoomed by up to 0.1 %/frame, plus a
textured disc moving 4.3 px/frame over it), as a 1280x720 H.264 video,
a 427x240 H.264 video in 4:4:4 (libx264 refuses odd widths in 4:2:0) and a PNG frame folder of each (the decoded
frames).

Per frame size and backend (``dis``, ``farneback``, ``deepflow``; ``raft`` is reported as unavailable without
torchvision), each group in a fresh subprocess, runs alternating within each round:

  raw    ``create_flow(name)`` called in a loop (one thread) on the same pairs ``stats`` measures, decoded and
         converted (gray, or RGB for RAFT) beforehand;
  stats  ``compute_curves(StatsConfig(flow=name, thresholds=0:20:0.5, pairs_per_source=K, threads=1 or 2))``
         end to end on the video and on the frame folder: probing, decoding or PNG reading, flow, magnitudes,
         ratio curves, threads. Stage timers (monkeypatched in the child) split its time.

Reported: pairs/s, the overhead of ``stats`` over raw flow (1 - stats/raw, workers=1), the speed-up of workers=2
over workers=1, ``--max-side 640`` at 1280x720 (pairs/s, and how far its curve moves from the full-resolution one)
and the true curve of the synthetic motion. ``write_stats`` (CSV, JSON, PNG) is timed separately.

Usage:
    python benchmarks/bench_stats.py [--quick] [--work DIR] [--repeat R] [--methods dis,...] [--sizes 240,720]
                                     [--pairs N] [--slow-pairs N] [--max-side 640] [--no-write]
                                     [--timeout S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
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
FPS = 240
FRAMES = 240
FULL = (1280, 720)
SMALL = (427, 240)  # the WILD recipe's x3-downsampled size
INPUTS_VERSION = 1  # bump when the generator changes so cached inputs are regenerated
X264_PRESET, X264_CRF = "veryfast", 14  # as bench_average.py
NOISE_SIGMA = 2.0  # per-frame sensor noise, 8-bit code values
PNG_LEVEL = 3
THRESHOLDS = "0:20:0.5"  # the CLI default
METHODS = ("dis", "farneback", "deepflow", "raft")
SLOW = ("deepflow", "raft")
MAX_SIDE = 640
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


# ------------------------------------------------------------------------------------------------------
# The scene (also used to compute the true curve)
# ------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------
# Workers (fresh subprocesses: python bench_stats.py --worker KIND --spec JSON --result FILE)
# ------------------------------------------------------------------------------------------------------
def _tests_on_path() -> None:
    sys.path.insert(0, str(REPO / "tests"))


def _render(num: int):
    """Yield ``num`` RGB uint8 1280x720 frames: a panned, rotating, zooming texture, a moving textured disc, noise."""
    import cv2
    import numpy as np

    _tests_on_path()
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


class Stages:
    """Wall time per stage summed over calls and threads (monkeypatched around ``flow_ratio``'s helpers)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def reset(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out

    def wrap(self, module, attr: str, name: str) -> None:
        fn = getattr(module, attr)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.add(name, time.perf_counter() - t)

        setattr(module, attr, timed)

    def wrap_generator(self, module, attr: str, name: str) -> None:
        """Time spent inside ``next()`` of a generator function (``_read_pairs`` decodes on its first step)."""
        fn = getattr(module, attr)

        def timed(*a, **kw):
            gen = fn(*a, **kw)
            while True:
                t = time.perf_counter()
                try:
                    item = next(gen)
                except StopIteration:
                    self.add(name, time.perf_counter() - t)
                    return
                self.add(name, time.perf_counter() - t)
                yield item

        setattr(module, attr, timed)

    def wrap_flow_factory(self, module, attr: str) -> None:
        """``create_flow`` returns backends whose calls are timed as ``flow`` (creation as ``create``)."""
        factory = getattr(module, attr)
        stages = self

        class TimedFlow:
            def __init__(self, backend) -> None:
                self.backend = backend

            def __call__(self, a, b):
                t = time.perf_counter()
                try:
                    return self.backend(a, b)
                finally:
                    stages.add("flow", time.perf_counter() - t)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return TimedFlow(factory(*a, **kw))
            finally:
                stages.add("create", time.perf_counter() - t)

        setattr(module, attr, timed)


def _sources(spec: dict) -> dict[str, tuple[str, float | None]]:
    """Dataset label -> (path, fps for DatasetSpec) of one frame size."""
    root, h = Path(spec["inputs"]), spec["height"]
    video = root / f"clip{h}.mp4"
    return {"video": (str(video), None), "frames": (str(root / f"frames{h}"), float(FPS))}


def _pairs_of(label: str, path: str, fps: float | None, k: int, seed: int):
    """The pairs ``compute_curves`` measures for a one-source dataset: same starts, same frames (uint8 RGB)."""
    from blursynth.io.frames import probe_frames
    from blursynth.io.sources import discover_sources
    from blursynth.io.video import probe_video
    from blursynth.seeding import create_rng
    from blursynth.stats import flow_ratio as fr

    src = discover_sources([path])[0]
    info = probe_video(src.path) if src.kind == "video" else probe_frames(src.path, None)
    gap = fr.gap_frames(fr.DEFAULT_SPAN_MS, fps or info.fps)
    starts = fr.pair_starts(info.num_frames, gap, k, create_rng(seed, "stats", label, src.key))
    return src, info, gap, starts


def worker_group(spec: dict) -> dict:
    """Raw flow and ``compute_curves`` for one backend at one frame size, alternating within each round."""
    import cv2
    import numpy as np

    from blursynth.errors import BlurSynthError
    from blursynth.flow import create_flow
    from blursynth.ops.images import to_gray8, to_uint8
    from blursynth.stats import flow_ratio as fr

    method, k, seed = spec["method"], spec["pairs"], spec["seed"]
    flow_kw = {"device": spec["device"], "raft_model": spec["raft_model"], "raft_weights": spec["raft_weights"]}
    try:
        backend = create_flow(method, **flow_kw)
    except BlurSynthError as exc:
        return {"available": False, "reason": exc.message}
    thresholds = fr.parse_thresholds(THRESHOLDS)
    sources = _sources(spec)

    # -- the pairs, decoded and converted before timing (raw flow) ---------------------------------------------
    src, info, gap, starts = _pairs_of("video", *sources["video"], k, seed)
    decoded = [(a, b) for _t, a, b in fr._read_pairs(src, info, starts, gap)]
    fsrc, finfo, fgap, fstarts = _pairs_of("frames", *sources["frames"], k, seed)  # the folder draws other starts
    fdecoded = [(a, b) for _t, a, b in fr._read_pairs(fsrc, finfo, fstarts, fgap)]

    def prepare(frame):
        if backend.wants_rgb:
            return to_uint8(frame)
        return to_gray8(frame)

    raw_inputs = {"full": [(prepare(a), prepare(b)) for a, b in decoded],
                  "frames": [(prepare(a), prepare(b)) for a, b in fdecoded]}
    max_side = spec.get("max_side")
    if max_side:
        raw_inputs["max"] = [(prepare(fr._shrink(a, max_side)[0]), prepare(fr._shrink(b, max_side)[0]))
                             for a, b in decoded]
    truth = np.mean([fr.ratio_curve(true_magnitude(t, gap, info.width, info.height), np.asarray(thresholds))
                     for t in starts], axis=0)

    def run_raw(which: str) -> dict:
        pairs = raw_inputs[which]
        c0, t0 = time.process_time(), time.perf_counter()
        for a, b in pairs:
            backend(a, b)
        seconds = time.perf_counter() - t0
        return {"pairs": len(pairs), "seconds": seconds, "cpu_s": time.process_time() - c0,
                "size": list(pairs[0][0].shape[1::-1])}

    stages = Stages()
    stages.wrap_generator(fr, "_read_pairs", "read")
    stages.wrap(fr, "probe_video", "probe")
    stages.wrap(fr, "probe_frames", "probe")
    stages.wrap(fr, "_shrink", "shrink")
    stages.wrap(fr, "magnitude", "magnitude")
    stages.wrap(fr, "ratio_curve", "ratio_curve")
    stages.wrap_flow_factory(fr, "create_flow")

    def run_stats(label: str, workers: int, max_side: int | None, pairs: int = k) -> dict:
        path, fps = sources[label]
        cfg = fr.StatsConfig(datasets=(fr.DatasetSpec(label, path, fps),), thresholds=thresholds, flow=method,
                             pairs_per_source=pairs, max_side=max_side, seed=seed, threads=workers,
                             device=spec["device"], raft_model=spec["raft_model"],
                             raft_weights=spec["raft_weights"])
        stages.reset()
        c0, t0 = time.process_time(), time.perf_counter()
        curves = fr.compute_curves(cfg)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n = sum(c.pairs for c in curves)
        return {"pairs": n, "seconds": seconds, "cpu_s": cpu, "stages": stages.reset(),
                "curve": [float(v) for v in curves[0].mean], "flow_scale": curves[0].sources[0].get("flow_scale")}

    # warm-up: first calls (thread pools, codec and PNG decoder set-up, lazy imports), not timed
    backend(*raw_inputs["full"][0])
    if max_side:
        backend(*raw_inputs["max"][0])
    list(fr._read_pairs(src, info, [0], gap))  # the decoder's first use (reads frames 0-2 only)
    run_stats("frames", 1, None, pairs=1)  # the first compute_curves call

    plan = []
    for label, raw_key in (("video", "full"), ("frames", "frames")):
        plan.append(("raw" if label == "video" else "raw frames", lambda raw_key=raw_key: run_raw(raw_key)))
        for w in (1, 2):
            plan.append((f"stats {label} w{w}", lambda label=label, w=w: run_stats(label, w, None)))
    if max_side:
        plan.append(("raw max", lambda: run_raw("max")))
        for w in (1, 2):
            plan.append((f"stats video max w{w}", lambda w=w: run_stats("video", w, max_side)))
    runs: dict[str, list[dict]] = {name: [] for name, _ in plan}
    for r in range(spec["repeat"]):
        for name, fn in plan:
            res = fn()
            runs[name].append(res)
            print(f"    round {r + 1}/{spec['repeat']} {name:<20} {res['pairs']:3d} pairs {res['seconds']:7.2f} s "
                  f"{res['pairs'] / res['seconds']:7.2f} pairs/s", flush=True)
    return {"available": True, "runs": runs, "truth": [float(v) for v in truth], "thresholds": list(thresholds),
            "starts": starts, "gap": gap, "width": info.width, "height": info.height,
            "cv2_threads": cv2.getNumThreads()}


def worker_read(spec: dict) -> dict:
    """How ``stats`` reads a video source, next to what-ifs: RGB conversion of the needed frames only, demux only."""
    import av

    from blursynth.ops.images import to_uint8
    from blursynth.stats import flow_ratio as fr

    path, _ = _sources(spec)["video"]
    src, info, gap, starts = _pairs_of("video", path, None, spec["pairs"], spec["seed"])
    needed = sorted(set(starts) | {t + gap for t in starts})
    out = {"frames": info.num_frames, "needed": len(needed), "last_needed": needed[-1]}

    def library():
        return sum(1 for _ in fr._read_pairs(src, info, starts, gap))

    def convert_needed_only():
        wanted, frames = set(needed), {}
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames[index] = to_uint8(frame.to_ndarray(format="rgb24"))
                if index >= needed[-1]:
                    break
        return len(frames)

    def decode_only():
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))

    def probe():
        return fr.probe_video(path).num_frames

    probe()  # warm-up: codec set-up, page cache
    for name, fn in (("probe", probe), ("library", library), ("convert_needed_only", convert_needed_only),
                     ("decode_only", decode_only)):
        out[name] = min(_timed(fn) for _ in range(spec["repeat"]))
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def worker_write(spec: dict) -> dict:
    """``write_stats`` (CSV, JSON, PNG; fsync; rename) on the curves of two datasets; PNG and fsync timed apart."""
    from blursynth.stats import flow_ratio as fr
    from blursynth.stats import outputs

    src = _sources(spec)
    cfg = fr.StatsConfig(datasets=tuple(fr.DatasetSpec(label, *src[label]) for label in ("video", "frames")),
                         thresholds=fr.parse_thresholds(THRESHOLDS), flow="dis", pairs_per_source=spec["pairs"],
                         seed=spec["seed"], workers=2, device="cpu")
    curves = fr.compute_curves(cfg)
    stages = Stages()
    stages.wrap(outputs, "plot_ratio_curves", "png")
    stages.wrap(outputs, "fsync_path", "fsync")
    out_dir = Path(spec["out"])
    runs = []
    for _ in range(spec["repeat"] + 1):  # the first call imports matplotlib
        shutil.rmtree(out_dir, ignore_errors=True)
        stages.reset()
        t0 = time.perf_counter()
        paths = outputs.write_stats(curves, cfg, out_dir)
        seconds = time.perf_counter() - t0
        st = stages.reset()
        runs.append({"seconds": seconds, "png_s": st.get("png", 0.0), "fsync_s": st.get("fsync", 0.0),
                     "csv_json_s": seconds - st.get("png", 0.0) - st.get("fsync", 0.0)})
    sizes = {kind: p.stat().st_size for kind, p in paths.items()}
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"first": runs[0], "best": min(runs[1:], key=lambda r: r["seconds"]), "bytes": sizes,
            "datasets": len(curves), "thresholds": len(cfg.thresholds)}


WORKERS = {"gen": worker_gen, "group": worker_group, "read": worker_read, "write": worker_write}


# ------------------------------------------------------------------------------------------------------
# Parent (stdlib only)
# ------------------------------------------------------------------------------------------------------
def run_worker(kind: str, spec: dict, work: Path, timeout: float = 900.0) -> dict:
    return _common.run_worker(__file__, kind, spec, work, timeout=timeout, prefix="stats_result")


def ensure_inputs(work: Path) -> tuple[Path, dict]:
    inputs = work / f"stats_inputs_v{INPUTS_VERSION}"
    if (inputs / "done").exists():
        stats = json.loads((inputs / "done").read_text())
        print(f"inputs: {inputs} (cached)", flush=True)
        return inputs, {**stats, "cached": True}
    print(f"generating inputs in {inputs} (once; ~30 s on 2 cores) ...", flush=True)
    stats = run_worker("gen", {"inputs": str(inputs), "frames": FRAMES}, work)
    return inputs, {**stats, "cached": False}


def fmt_row(cells, widths) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in pairs)


def best_run(runs: list[dict]) -> dict:
    out = dict(min(runs, key=lambda r: r["seconds"] / r["pairs"]))
    out["runs_pps"] = [round(r["pairs"] / r["seconds"], 3) for r in runs]
    out["pps"] = out["pairs"] / out["seconds"]
    return out


def raw_of(name: str) -> str:
    """The raw run a stats run is compared with (same pairs, same size)."""
    return "raw max" if " max" in name else "raw frames" if "frames" in name else "raw"


def summarize(group: dict) -> dict:
    best = {name: best_run(rs) for name, rs in group["runs"].items()}
    for name, b in best.items():
        ref = best[raw_of(name)]["pps"]
        if name.startswith("stats"):
            b["vs_raw"] = b["pps"] / ref
            if name.endswith("w1"):
                b["overhead"] = 1 - b["pps"] / ref
            else:
                b["x_w1"] = b["pps"] / best[name[:-1] + "1"]["pps"]
    # paired per round: stats w1 and raw run back to back
    paired = {}
    for name in best:
        if name.startswith("stats") and name.endswith("w1"):
            ref = raw_of(name)
            paired[name] = [round(1 - (s["pairs"] / s["seconds"]) / (r["pairs"] / r["seconds"]), 3)
                            for s, r in zip(group["runs"][name], group["runs"][ref], strict=True)]
    group["best"], group["overhead_per_round"] = best, paired
    return group


def print_tables(groups: list[dict], read: dict, write: dict | None, max_side: int) -> None:
    widths = (8, 9, 12, 5, 9, 9, 8, 9, 5, 9, 7, 7)
    head = ("size", "method", "input", "pairs", "raw pr/s", "stats w1", "overhead", "stats w2", "x w1", "CPU ms/pr",
            "read ms", "flow ms")
    print("\n" + fmt_row(head, widths))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    inputs = (("video", "raw", "stats video"), ("PNG folder", "raw frames", "stats frames"),
              (f"video max {max_side}", "raw max", "stats video max"))
    for g in groups:
        size = f"{g['size'][0]}x{g['size'][1]}"
        if not g["available"]:
            print(f"{fmt_row((size, g['method']), widths[:2])}  unavailable: {g['reason']}")
            continue
        best = g["best"]
        for label, raw_key, key in inputs:
            if key + " w1" not in best:
                continue
            raw, w1, w2 = best[raw_key], best[key + " w1"], best[key + " w2"]
            st = w1["stages"]
            print(fmt_row((size, g["method"], label, w1["pairs"], f"{raw['pps']:.2f}", f"{w1['pps']:.2f}",
                           f"{100 * w1['overhead']:.0f} %", f"{w2['pps']:.2f}", f"{w2['x_w1']:.2f}",
                           f"{1000 * w1['cpu_s'] / w1['pairs']:.0f}", f"{1000 * st.get('read', 0.0) / w1['pairs']:.1f}",
                           f"{1000 * st.get('flow', 0.0) / w1['pairs']:.1f}"), widths))
    print(f"pairs/s (best of the rounds): raw = create_flow(name) in a loop, one thread, on the same pairs decoded "
          f"beforehand (at {max_side} px for the max-side row); stats w1/w2 = compute_curves end to end, workers=1/2. "
          "overhead = 1 - stats w1 / raw; x w1 = stats w2 / stats w1. Of stats w1, per pair: CPU ms (all threads), "
          "read ms (decoding every frame up to the last needed one, or reading the PNGs), flow ms (inside the "
          "backend's calls; noisy on a loaded machine).")

    # -- where the time of a workers=1 run goes --------------------------------------------------------------
    print("\nstats, workers=1, per pair (ms): where the time goes")
    widths2 = (9, 9, 14, 7, 7, 7, 7, 7, 7, 7, 7, 15)
    head2 = ("size", "method", "run", "total", "probe", "read", "shrink", "flow", "mag", "ratio", "other",
             "overhead/round")
    print(fmt_row(head2, widths2))
    for g in groups:
        if not g["available"]:
            continue
        size = f"{g['size'][0]}x{g['size'][1]}"
        for name in ("stats video w1", "stats frames w1", "stats video max w1"):
            if name not in g["best"]:
                continue
            b = g["best"][name]
            st, n = b["stages"], b["pairs"]
            parts = [st.get(s, 0.0) for s in ("probe", "read", "shrink", "flow", "magnitude", "ratio_curve")]
            other = b["seconds"] - sum(parts)
            per_round = ", ".join(f"{100 * o:.0f}" for o in g["overhead_per_round"][name])
            print(fmt_row((size, g["method"], name.replace("stats ", "").replace(" w1", ""),
                           *(f"{1000 * v / n:.1f}" for v in (b["seconds"], *parts, other)), per_round + " %"),
                          widths2))
    print("probe: probe_video / probe_frames; read: _read_pairs; flow: the backend's call; mag: magnitude; "
          "ratio: ratio_curve; other: the rest (thread hand-off, backend creation, bookkeeping; negative when the "
          "main thread's shrinking overlaps the worker's flow). "
          "overhead/round: 1 - stats/raw of each round (run back to back).")

    # -- curves -----------------------------------------------------------------------------------------------
    print("\nmean blurred-area ratio of the video's pairs (same pairs for every run of a size and backend)")
    widths3 = (9, 9, 9, 8, 8, 8, 8, 16, 16)
    head3 = ("size", "method", "curve", "@0.5px", "@1px", "@2px", "@8px", "|d| @1px vs full", "max |d| vs full")
    print(fmt_row(head3, widths3))
    for g in groups:
        if not g["available"]:
            continue
        size = f"{g['size'][0]}x{g['size'][1]}"
        th = g["thresholds"]
        idx = {v: th.index(v) for v in (0.5, 1.0, 2.0, 8.0)}
        full = g["runs"]["stats video w1"][0]["curve"]
        rows = [("truth", g["truth"]), ("full", full)]
        if "stats video max w1" in g["runs"]:
            rows.append((f"max {max_side}", g["runs"]["stats video max w1"][0]["curve"]))
        for label, curve in rows:
            d1 = abs(curve[idx[1.0]] - full[idx[1.0]])
            dmax = max(abs(a - b) for a, b in zip(curve, full, strict=True))
            print(fmt_row((size, g["method"], label, *(f"{curve[i]:.3f}" for i in idx.values()),
                           "" if label == "full" else f"{d1:.3f}", "" if label == "full" else f"{dmax:.3f}"),
                          widths3))
    print("truth: the scene's analytic flow over the same pairs (object disc vs panned background; occlusion "
          "edges make any estimate differ by a few % near the object's speed). max-side curves are measured on "
          "frames shrunk to the longer side given and rescaled to source pixels.")

    # -- reading and writing ----------------------------------------------------------------------------------
    if read:
        print("\nreading one video source as stats does (best of the rounds, s):")
        for size, r in read.items():
            upto = r["last_needed"] + 1
            print(f"  {size}: {r['frames']} frames, {r['needed']} needed (last {r['last_needed']}); probe_video "
                  f"{r['probe']:.3f}; _read_pairs {r['library']:.3f} ({1000 * r['library'] / upto:.2f} ms per decoded "
                  f"frame); what-if RGB-converting only the needed frames {r['convert_needed_only']:.3f} "
                  f"({1000 * r['convert_needed_only'] / upto:.2f} ms/frame); decoding all {r['frames']} frames "
                  f"without conversion {r['decode_only']:.3f} ({1000 * r['decode_only'] / r['frames']:.2f} ms/frame)")
        r = read.get(f"{FULL[0]}x{FULL[1]}")
        if r:
            per = r["library"] / (r["last_needed"] + 1)
            print(f"  _read_pairs decodes every frame up to the last needed one, whatever --pairs-per-source: a 60 s "
                  f"1280x720 clip at 240 fps (14,400 frames) would take ~{14400 * per:.0f} s to read per source at "
                  f"this rate, for 20 pairs (the default)")
    if write:
        b, f = write["best"], write["first"]
        print(f"\nwrite_stats ({write['datasets']} datasets x {write['thresholds']} thresholds): best "
              f"{1000 * b['seconds']:.0f} ms = PNG {1000 * b['png_s']:.0f} + fsync {1000 * b['fsync_s']:.0f} + "
              f"CSV/JSON/rename {1000 * b['csv_json_s']:.1f}; first call {1000 * f['seconds']:.0f} ms (PNG "
              f"{1000 * f['png_s']:.0f}, incl. importing matplotlib); files: "
              + ", ".join(f"{k} {v / 1000:.1f} kB" for k, v in write["bytes"].items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench",
                   help="work dir: cached inputs and temporary outputs (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="few pairs, one round, only dis at 1280x720 (~20-30 s): checks that the script works")
    p.add_argument("--repeat", type=int, default=None, help="rounds per group, best kept (default 2; 1 with --quick; "
                                                            "deepflow and raft at 720 lines: 1)")
    p.add_argument("--sizes", default="240,720", help="frame heights: 240 (427x240) and/or 720 (1280x720)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated backends (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=None,
                   help="pairs per source for dis and farneback (default 24 at 240 lines, 10 at 720; --quick 6/2)")
    p.add_argument("--slow-pairs", type=int, default=None,
                   help="pairs per source for deepflow and raft (default 6 at 240 lines, 4 at 720; --quick 2 at 240)")
    p.add_argument("--max-side", type=int, default=MAX_SIDE,
                   help="--max-side runs at 1280x720 (default: %(default)s; 0 to skip)")
    p.add_argument("--device", default="cpu", help="torch device for raft (default: %(default)s)")
    p.add_argument("--raft-model", default="small", choices=("small", "large"))
    p.add_argument("--raft-weights", default=None, help="RAFT state-dict file (default: torchvision registry)")
    p.add_argument("--seed", type=int, default=0, help="StatsConfig.seed (default: %(default)s)")
    p.add_argument("--no-write", action="store_true", help="skip timing write_stats")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a worker is killed (default: "
                                                                "%(default)s)")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    _common.add_worker_args(p, WORKERS)
    args = p.parse_args(argv)
    if _common.run_as_worker(args, WORKERS):
        return 0

    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    heights = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not heights or set(heights) - {240, 720}:
        p.error("--sizes: 240 and/or 720")
    table = QUICK_PAIRS if args.quick else PAIRS
    repeat = max(1, args.repeat or (1 if args.quick else 2))

    t_start = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = environment(("numpy", "opencv-contrib-python-headless", "av", "matplotlib", "torch", "torchvision",
                       "blursynth"))
    load = warn_if_busy("raw and stats runs alternate within each round, so ratios stay fair")
    inputs, gen = ensure_inputs(work)
    print(f"clips: {FRAMES} frames @ {FPS} fps; 1280x720 H.264 ({X264_PRESET}, crf {X264_CRF}) "
          f"{gen['720']['video_bytes'] / 1e6:.1f} MB, PNGs {gen['720']['png_bytes_mean'] / 1e6:.2f} MB each; "
          f"427x240 H.264 4:4:4 {gen['240']['video_bytes'] / 1e6:.1f} MB, PNGs "
          f"{gen['240']['png_bytes_mean'] / 1e6:.2f} MB each; thresholds {THRESHOLDS}; pair gap 2 frames (span "
          "8.33 ms at 240 fps)", flush=True)

    base = {"inputs": str(inputs), "seed": args.seed, "device": args.device, "raft_model": args.raft_model,
            "raft_weights": args.raft_weights}
    groups, read = [], {}
    for h in heights:
        size = SMALL if h == 240 else FULL
        fast, slow = table[h]
        for m in methods:
            if args.quick and h == 720 and m not in QUICK_720:
                print(f"[{size[0]}x{size[1]}] {m}: skipped with --quick", flush=True)
                continue
            k = max(1, (args.slow_pairs or slow) if m in SLOW else (args.pairs or fast))
            rep = 1 if (h == 720 and m in SLOW and not args.repeat) else repeat
            spec = {**base, "height": h, "method": m, "pairs": k, "repeat": rep,
                    "max_side": args.max_side if h == 720 and args.max_side else None}
            print(f"[{size[0]}x{size[1]}] {m}: {k} pairs per source, {rep} round(s)", flush=True)
            res = run_worker("group", spec, work, args.timeout)
            res.update(method=m, size=list(size), pairs_per_source=k, repeat=rep)
            if not res["available"]:
                print(f"  {m} unavailable: {res['reason']}", flush=True)
            else:
                summarize(res)
                print(f"  peak RSS {res['peak_rss_mb']:.0f} MB, process {res['process_wall_s']:.1f} s", flush=True)
            groups.append(res)
        print(f"[{size[0]}x{size[1]}] reading one video source", flush=True)
        read[f"{size[0]}x{size[1]}"] = run_worker("read", {**base, "height": h, "pairs": fast, "repeat": repeat},
                                                  work, args.timeout)
    write = None
    if not args.no_write:
        print("write_stats", flush=True)
        out = work / f"stats_write_{os.getpid()}"
        try:
            write = run_worker("write", {**base, "height": 240, "pairs": 4, "repeat": 3 if args.quick else 5,
                                         "out": str(out)}, work, args.timeout)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    print_tables(groups, read, write, args.max_side)
    total = time.perf_counter() - t_start
    print(f"benchmark wall time {total:.0f} s")

    if args.json:
        report = {"env": env, "load_average_1min": {"start": load, "end": os.getloadavg()[0]},
                  "inputs": str(inputs), "generated": gen, "thresholds": THRESHOLDS, "quick": args.quick,
                  "groups": groups, "read": read, "write": write, "max_side": args.max_side, "wall_s": total}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
