#!/usr/bin/env python
"""Cost of the camera model (issue 19) on the CPU: per-sample time of ``render_camera`` at 720p (generation),
and the reader's items/s with ``camera="rsblur"`` against the same reader without it (the baseline, same run),
with DataLoader ``num_workers`` 0, 1 and 2.

    python benchmarks/bench_camera.py [--repeat 3] [--samples 16] [--crop 256]

Also: mosaic -> demosaic PSNR of the Malvar demosaic against OpenCV's bilinear one (``cv2.cvtColor`` Bayer codes,
same 16-bit mosaic) on the first frame of every ``examples/clips/*.mp4``, four patterns, in linear light (gamma
2.2, as the camera runs) and on code values; PSNR on 8-bit code values, 4 px border left out.

Inputs: one shard of ``--samples`` 1280x720 samples (texture blur with a clipped highlight and its ``sat_mask``)
written with ``ShardWriter`` under ``--work`` (cached). Generation figures are timed at 1 torch thread (what a
unit gets inside ``average``/``local``) and at 2 (the machine's cores), best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
W, H = 1280, 720
INPUTS_VERSION = 1


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 720p blur (uint8) with a clipped highlight, and its sat_mask."""
    from textures import textured_image

    blur = (textured_image(H, W, seed=seed) * 235).round().astype(np.uint8)
    blur[200:260, 300:420] = 255
    mask = np.zeros((H, W, 3), np.uint8)
    mask[200:260, 300:420] = 180
    return blur, mask


def make_shard(work: Path, samples: int) -> Path:
    from blursynth.sample import Sample
    from blursynth.shards.writer import ShardWriter

    out = work / f"camera-v{INPUTS_VERSION}-{samples}"
    path = out / "train" / "00000.h5"
    if path.is_file():
        return path
    w = ShardWriter(out, "train", 0, capacity=samples, extra_datasets=("sat_mask",))
    for i in range(samples):
        blur, mask = frame(i % 4)
        w.add(Sample(blur=blur, sharp=blur, meta={"crf": "gamma", "gamma": 2.2, "center": i},
                     extras={"sat_mask": mask}))
    w.close({"sources": {}, "final": True})
    return path


def generation(repeat: int) -> list[tuple[str, float]]:
    from textures import textured_image

    from blursynth.camera import CameraConfig, camera_seed, draw_camera, render_camera
    from blursynth.ops.crf import create_crf

    crf = create_crf("gamma", 2.2)
    blur, mask = frame(0)
    linear = crf.decode(blur)
    sat = mask.astype(np.float32) / 255
    # a dark scene (linear 0.002-0.007, no highlight): most RAW rates fall below noise.EXACT_BELOW counts,
    # where the Poisson draw is the exact inversion; timed over 4 draws (beta1, gains and matrix vary the rates)
    dark = (0.002 + 0.005 * textured_image(H, W, seed=0)).astype(np.float32)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, cfg in (("rsblur (default)", CameraConfig()), ("rsblur + jpeg 70-95", CameraConfig(jpeg=(70, 95))),
                          ("rsblur + h264 crf 23", CameraConfig(h264_crf=23)),
                          ("rsblur, no mosaic", CameraConfig(mosaic=False))):
            params = draw_camera(cfg, camera_seed(0, "bench"))
            sec = best(lambda cfg=cfg, params=params: render_camera(linear, crf, params, cfg, sat), repeat)
            rows.append((f"render_camera 720p, {name}, {threads} thr", sec))
    cfg = CameraConfig()
    draws = [draw_camera(cfg, camera_seed(0, "bench", i)) for i in range(4)]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sec = best(lambda: [render_camera(dark, crf, p, cfg) for p in draws], repeat) / len(draws)
        rows.append((f"render_camera 720p, dark scene (4 draws), {threads} thr", sec))
    torch.set_num_threads(2)
    return rows


# OpenCV names a Bayer pattern by its second row's second and third pixels: its BG code is our RGGB
# (checked: a constant colour comes back exactly with these codes, see demosaic_psnr)
CV2_BAYER = {"RGGB": "COLOR_BayerBG2RGB", "BGGR": "COLOR_BayerRG2RGB", "GRBG": "COLOR_BayerGB2RGB",
             "GBRG": "COLOR_BayerGR2RGB"}


def demosaic_psnr() -> list[tuple[str, str, str, float, float]]:
    """``(clip, pattern, domain, Malvar dB, OpenCV bilinear dB)`` on the first frame of each shipped clip."""
    import av
    import cv2

    from blursynth.camera.isp import PATTERNS, demosaic_malvar, mosaic

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a[4:-4, 4:-4].astype(np.float64), b[4:-4, 4:-4].astype(np.float64)
        return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))

    flat = torch.tensor([200.0, 100.0, 50.0])[:, None, None].expand(3, 16, 16)
    for pattern, code in CV2_BAYER.items():  # the pattern naming, checked
        back = cv2.cvtColor(mosaic(flat, pattern)[0].numpy().astype(np.uint8), getattr(cv2, code))
        assert (back[4:-4, 4:-4] == [200, 100, 50]).all(), (pattern, code)
    rows = []
    for clip in sorted((HERE.parent / "examples" / "clips").glob("*.mp4")):
        with av.open(str(clip)) as container:
            image = next(container.decode(video=0)).to_ndarray(format="rgb24")
        for domain, gamma in (("linear, gamma 2.2", 2.2), ("code values", 1.0)):
            x = torch.from_numpy(np.ascontiguousarray(((image / 255.0) ** gamma).transpose(2, 0, 1)))
            for pattern in PATTERNS:
                raw = mosaic(x, pattern)
                malvar = demosaic_malvar(raw, pattern).clamp(0, 1).permute(1, 2, 0).numpy()
                raw16 = np.rint(raw[0].numpy() * 65535).astype(np.uint16)
                bilinear = cv2.cvtColor(raw16, getattr(cv2, CV2_BAYER[pattern])) / 65535.0
                code = [np.rint(np.clip(y, 0, 1) ** (1 / gamma) * 255) for y in (malvar, bilinear)]
                rows.append((clip.name, pattern, domain, psnr(code[0], image), psnr(code[1], image)))
    return rows


def reader(path: Path, crop: int | None, repeat: int) -> list[tuple[str, float, float]]:
    from blursynth.data import ShardDataset

    rows = []
    for workers in (0, 1, 2):
        rates = {}
        for camera in (None, "rsblur"):
            ds = ShardDataset([path], crop=crop, camera=camera, seed=0)

            def run(ds=ds, workers=workers) -> None:
                loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers)
                for _ in loader:
                    pass

            rates[camera] = len(ds) / best(run, repeat)
        rows.append((f"reader crop {crop or 'none'}, num_workers {workers}", rates[None], rates["rsblur"]))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--crop", type=int, default=256)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"bench_camera: torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, sec in generation(args.repeat):
        print(f"{name:<52}{sec * 1000:>9.0f} ms/sample")
    print(f"{'demosaic PSNR (dB), first frame of':<52}{'Malvar':>12}{'bilinear':>10}")
    for clip, pattern, domain, malvar, bilinear in demosaic_psnr():
        print(f"{f'{clip} {pattern}, {domain}':<52}{malvar:>12.2f}{bilinear:>10.2f}")
    path = make_shard(args.work, args.samples)
    print(f"{'reader (items/s, DataLoader batch 4)':<52}{'no camera':>12}{'rsblur':>10}{'ratio':>8}")
    for crop in (args.crop, None):
        for name, base, cam in reader(path, crop, args.repeat):
            print(f"{name:<52}{base:>12.1f}{cam:>10.1f}{cam / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
