"""The GPU check: on a machine with CUDA, run the CUDA tests and print the GPU figures in one table.

    python benchmarks/gpu_check.py [--skip-tests] [--repeats 3]

One script for every CUDA path, so a session lent a GPU for a few minutes runs one prepared command (issue
18 started it; later issues add their rows to ``ROWS``). It finishes in well under 8 minutes on one H100:

1. ``pytest -k cuda`` over the suite: the device-parametrised tests (``tests/conftest.py``'s ``device``
   fixture and the ``cuda`` cases) that are skipped on CPU-only machines, CI included.
2. A table of figures, each timed on CUDA and on the CPU in the same run (best of ``--repeats``), with the ratio:
   * ``interpolate``: ``ops.interpolate.interpolate_window`` on a 1280x720 window of N = 7 frames, K = 8,
     flow precomputed (the flow is OpenCV, on the CPU, in both cases), in input frames/s (6 new frames per
     window);
   * ``accumulate``: ``ops.accumulate.TorchAccumulator`` averaging 720p frames into 7-frame windows, frames/s;
   * ``local render``: ``ops.render_torch.render_moving_torch`` of one 720p sample with two moving objects at
     K = 8 sub-steps, samples/s;
   * ``camera``: ``camera.apply_camera`` (issue 19, RSBlur's pipeline with every stage on) of one 720p image,
     samples/s; the noise's random numbers are drawn on the CPU on both columns (reproducible draws), so the
     CUDA figure includes that CPU work and the transfer.

The device machine has torch, CUDA, OpenCV and h5py but not PyAV, lmdb or pycocotools, and blursynth is not
installed there: the script puts the checkout on the path itself, names each missing module with what is lost
without it (PyAV is required by the tests: ``tests/conftest.py`` writes videos with it; without lmdb the two
export-test modules are left out; pycocotools' tests skip themselves), and benchmarks/README.md gives the wheels
to carry and the command. ``--skip-tests`` prints the table alone. Without CUDA the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # the checkout itself: the device machine runs it uninstalled

#: Modules the CUDA tests need that the device machine's image lacks (benchmarks/README.md, "gpu_check.py":
#: carry their Python 3.12 wheels), with what happens without each.
CARRIED = {"av": "required: tests/conftest.py writes its videos with PyAV",
           "lmdb": "optional: tests/test_export_layouts.py and test_train_export.py are left out",
           "pycocotools": "optional: its tests skip themselves"}
IGNORED_WITHOUT = {"lmdb": ("tests/test_export_layouts.py", "tests/test_train_export.py")}


def missing_modules() -> list[str]:
    """The modules of :data:`CARRIED` that cannot be imported here."""
    import importlib.util

    return [name for name in CARRIED if importlib.util.find_spec(name) is None]


def best(fn, repeats: int, sync: bool) -> float:
    fn()  # warm-up: kernels, allocator, cuDNN/grid_sample setup
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def row_interpolate(device: str, repeats: int) -> tuple[str, float, str]:
    from exposure_fixtures import ExposureScene, decode

    from blursynth.ops.interpolate import compute_window_flows, interpolate_window

    scene = ExposureScene(height=720, width=1280, velocity=8.0, with_object=True)
    frames = torch.from_numpy(decode(scene.frames(7))).permute(0, 3, 1, 2).contiguous()
    flows = compute_window_flows(frames)
    on = frames.to(device)
    sec = best(lambda: interpolate_window(on, 8, flows=flows, reduce="mean"), repeats, device == "cuda")
    return "interpolate 720p N=7 K=8 (flow precomputed)", 6 / sec, "input frames/s"


def row_accumulate(device: str, repeats: int) -> tuple[str, float, str]:
    from blursynth.ops.accumulate import Channel, TorchAccumulator
    from blursynth.ops.crf import create_crf
    from blursynth.ops.windows import Window

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (70, 720, 1280, 3), dtype=np.uint8)
    channels = [Channel.create(create_crf("gamma", 2.2), 8, 7)]

    def run() -> None:
        acc = TorchAccumulator([Window(i, 7 * i, 7) for i in range(10)], channels, device=device, batch_frames=16)
        for i, f in enumerate(frames):
            acc.push(i, f)
        acc.finish()

    return "accumulate 720p N=7 (torch backend)", len(frames) / best(run, repeats, device == "cuda"), "frames/s"


def row_local(device: str, repeats: int) -> tuple[str, float, str]:
    from test_local_torch import _layers, texture  # the object layers of the torch renderer's tests

    from blursynth.ops.crf import create_crf
    from blursynth.ops.render_torch import render_moving_torch
    from blursynth.recipes.trajectories import subsample

    crf = create_crf("gamma", 2.2)
    scene = texture(720, 1280, 3)
    layers = [(prem, subsample(poses, 8)) for prem, poses in _layers(crf, 7, 9, [(300.0, 200.0), (900.0, 500.0)])]
    sec = best(lambda: render_moving_torch(scene, layers, crf, device, substeps=8), repeats, device == "cuda")
    return "local render 720p, 2 objects, N=9 K=8", 1 / sec, "samples/s"


def row_camera(device: str, repeats: int) -> tuple[str, float, str]:
    from blursynth.camera import CameraConfig, apply_camera, draw_camera

    gen = torch.Generator().manual_seed(0)
    linear = torch.rand(3, 720, 1280, generator=gen).to(device)
    sat = (torch.rand(3, 720, 1280, generator=gen) > 0.95).float().to(device)
    params = draw_camera(CameraConfig(), 1)
    sec = best(lambda: apply_camera(linear, params, sat=sat), repeats, device == "cuda")
    return "camera apply_camera 720p (rsblur, all stages)", 1 / sec, "samples/s"


ROWS = [row_interpolate, row_accumulate, row_local, row_camera]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true", help="print the table only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check (CI and CPU machines skip the CUDA tests)")
        return 0
    print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    status = 0
    missing = missing_modules()
    for name in missing:
        print(f"gpu_check: module {name!r} missing ({CARRIED[name]}); carry its wheel (benchmarks/README.md)")
    if not args.skip_tests and "av" in missing:
        print("gpu_check: CUDA tests not run (PyAV missing); the table follows")
        status = 1
    elif not args.skip_tests:
        t0 = time.perf_counter()
        ignore = [f"--ignore={ROOT / path}" for name in missing for path in IGNORED_WITHOUT.get(name, ())]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-rs", "-k", "cuda", "-p", "no:cacheprovider",
                                  *ignore, str(ROOT / "tests")], cwd=ROOT, env=env)
        print(f"CUDA tests: exit {status} in {time.perf_counter() - t0:.0f} s")
    torch.set_num_threads(2)  # the CPU column: the 2 cores of our CPU machines
    print(f"{'figure':<46}{'cuda':>12}{'cpu (2 thr)':>14}{'ratio':>8}  unit")
    for row in ROWS:
        try:
            name, gpu, unit = row("cuda", args.repeats)
            _, cpu, _ = row("cpu", 1)
            print(f"{name:<46}{gpu:>12.1f}{cpu:>14.2f}{gpu / cpu:>7.0f}x  {unit}")
        except Exception as exc:  # noqa: BLE001 - one broken row must not hide the others
            print(f"{row.__name__:<46}  failed: {exc!r}")
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
