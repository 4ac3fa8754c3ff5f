"""Tiny inputs and output comparisons shared by the executor, Ray and fault tests.

``local_inputs``/``video_inputs`` write inputs small enough that a run takes about a second, with enough
work units (shards) that a run can be interrupted half-way. ``dataset_arrays`` reads every complete shard of
an output so two runs can be compared array for array and meta for meta (HDF5 files themselves are not
byte-stable across runs: object headers and free space may differ).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from conftest import motion_frames, write_video
from objects_data import Shape, texture, write_backgrounds, write_voc

BG_SIZE = (48, 64)
VOC_IMAGES = {
    "2008_000001": [Shape("rect", (20, 20, 52, 50), 8), Shape("disc", (92, 50, 17.0), 12)],
    "2008_000002": [Shape("disc", (40, 45, 18.0), 15), Shape("rect", (70, 20, 112, 62), 7)],
}


def local_inputs(root: Path) -> dict[str, Path]:
    """A VOC folder with 4 objects and 2x2 background sequences of 48x64."""
    return {
        "voc": write_voc(root / "VOC2012", VOC_IMAGES, size=(96, 128)),
        "bg": write_backgrounds(root / "bg", groups=2, per_group=2, size=BG_SIZE),
    }


def local_args(inputs: dict[str, Path], out: Path, *, samples: int = 12, shard_size: int = 2) -> list[str]:
    """``blursynth local`` arguments: ``samples`` samples in shards of ``shard_size`` (one unit per shard)."""
    return ["local", "--voc", str(inputs["voc"]), "--bg", str(inputs["bg"]), str(out), "--num-samples",
            str(samples), "--shard-size", str(shard_size), "--val-fraction", "0.25", "--seed", "7",
            "--frames", "7-9", "-q"]


def video_inputs(root: Path, count: int = 3, frames: int = 21) -> Path:
    """``count`` lossless 32x40 videos of a textured pan, each at its own speed."""
    folder = root / "videos"
    for i in range(count):
        tex = texture(64, 96, seed=20 + i)
        write_video(folder / f"clip{i}.mkv", motion_frames(tex, [0.5 + 0.25 * i] * (frames - 1), 32, 40))
    return folder


def average_args(videos: Path, out: Path) -> list[str]:
    return ["average", str(videos), str(out), "--frames", "7", "--shard-size", "1", "--val-fraction", "0.34",
            "-q"]


def dataset_arrays(out: Path) -> dict[str, object]:
    """Every complete shard's arrays and meta, keyed ``split/NNNNN.h5:dataset``, plus the manifest's totals."""
    found: dict[str, object] = {}
    for marker in sorted(Path(out).glob("*/*_stats.json")):
        shard = marker.with_name(marker.name.replace("_stats.json", ".h5"))
        key = f"{shard.parent.name}/{shard.name}"
        if not shard.exists():
            continue
        with h5py.File(shard, "r") as f:
            for name in sorted(f):
                data = f[name][()]
                found[f"{key}:{name}"] = [json.loads(m) for m in f[name].asstr()[()]] if name == "meta" else data
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    # what was produced; not how (a resumed run counts its finished units as "resumed")
    found["totals"] = {k: v for k, v in manifest["totals"].items() if k in ("samples", "shards", "by_split")}
    found["status"] = manifest["status"]
    found["shards"] = manifest["shards"]
    return found


def assert_same_dataset(a: Path, b: Path) -> None:
    """Two outputs hold the same shards with identical arrays and meta."""
    left, right = dataset_arrays(a), dataset_arrays(b)
    assert sorted(left) == sorted(right)
    for key in left:
        if isinstance(left[key], np.ndarray):
            assert left[key].dtype == right[key].dtype and np.array_equal(left[key], right[key]), key
        else:
            assert left[key] == right[key], key
