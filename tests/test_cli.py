"""End-to-end tests of the ``blursynth`` command line: help, version, verbosity and the output contract of
``blursynth average`` (HDF5 shards, stats markers, manifest, GOPRO tree, splits, options)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_ok
from click.testing import CliRunner
from conftest import pan_frames, textured_image, write_frame_folder, write_video

from blursynth import __version__
from blursynth.cli.main import cli

H, W = 24, 32
META_KEYS = {"source", "frames", "center", "n_frames", "fps", "crf", "gamma", "recipe", "seed"}


# -- helpers -------------------------------------------------------------------------------------------
def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="blursynth")
    assert "Traceback" not in result.output
    return result


def make_frames(n: int, seed: int = 0, velocity: float = 0.75, height: int = H, width: int = W) -> np.ndarray:
    return pan_frames(textured_image(height + 8, width + 48, seed=seed), n, height, width, velocity)


def make_clip(path: Path, n: int = 40, seed: int = 0, fps: int = 240, **kw) -> tuple[Path, np.ndarray]:
    frames = make_frames(n, seed=seed, **kw)
    return write_video(path, frames, fps=fps), frames


def read_shard(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {
            "blur": f["blur"][()],
            "sharp": f["sharp"][()],
            "meta": [json.loads(m) for m in f["meta"].asstr()[()]],
            "attrs": dict(f.attrs),
        }


def h5_files(out: Path, split: str = "train") -> list[Path]:
    return sorted((out / split).glob("*.h5"))


def all_samples(out: Path) -> dict[tuple[str, int], dict]:
    """{(source, center): {"blur", "sharp", "meta", "split"}} over every shard of OUT."""
    samples = {}
    for split in ("train", "val"):
        for path in h5_files(out, split):
            shard = read_shard(path)
            for i, meta in enumerate(shard["meta"]):
                key = (meta["source"], meta["center"])
                assert key not in samples, f"sample {key} written twice"
                samples[key] = {"blur": shard["blur"][i], "sharp": shard["sharp"][i], "meta": meta,
                                "split": split}
    return samples


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# -- help, version, verbosity -----------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_group_help_lists_command_and_example(flag):
    result = run_ok(flag)
    assert result.output.startswith("Usage: blursynth")
    assert "average" in result.output
    assert "Example" in result.output
    assert re.search(r"^\s+blursynth average \S+ \S+", result.output, re.M)
    for opt in ("--version", "--verbose", "--quiet"):
        assert opt in result.output


def test_average_help_has_examples_and_options():
    result = run_ok("average", "--help")
    assert "Usage: blursynth average" in result.output
    assert "INPUT... OUT" in result.output
    assert "Examples:" in result.output
    examples = re.findall(r"^\s+blursynth average .+$", result.output, re.M)
    assert len(examples) >= 2, result.output
    for opt in ("--frames", "--stride", "--max-per-source", "--fps", "--crf", "--gamma", "--seed",
                "--val-fraction", "--shard-size", "--layout", "--compression", "--device", "--overwrite"):
        assert opt in result.output, opt


def test_version():
    result = run_ok("--version")
    assert result.output.strip() == f"blursynth, version {__version__}"


def test_python_m_blursynth_help():
    proc = subprocess.run([sys.executable, "-m", "blursynth", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=str(Path(__file__).parent))
    assert proc.returncode == 0, proc.stderr
    assert "average" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_silences_everything(tmp_path, where):
    clip, _ = make_clip(tmp_path / "slow.mkv", n=20, fps=30)  # would warn (< 100 fps) without -q
    out = tmp_path / "out"
    args = ["-q", "average", clip, out] if where == "before" else ["average", clip, out, "-q"]
    result = run_ok(*args)
    assert result.output == ""
    assert result.stderr == ""
    assert manifest(out)["totals"]["samples"] > 0


def test_default_output_reports_summary(tmp_path):
    clip, _ = make_clip(tmp_path / "clip.mkv", n=20)
    out = tmp_path / "out"
    result = run_ok("average", clip, out, "--frames", "7")
    assert f"wrote 2 samples (train 2) in 1 shards to {out}" in result.stdout


# -- the HDF5 / stats / manifest contract -------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_clips")
    a, fa = make_clip(root / "videos" / "a.mkv", n=40, seed=1)
    b, fb = make_clip(root / "videos" / "b.mkv", n=30, seed=2, velocity=1.5)
    return root, {"a.mkv": (a, fa), "b.mkv": (b, fb)}


@pytest.fixture(scope="module")
def contract_out(two_clips):
    root, _ = two_clips
    out = root / "out"
    run_ok("average", root / "videos", out, "--shard-size", "3")
    return out


def test_h5_shards_follow_the_format(contract_out, two_clips):
    _, clips = two_clips
    names = sorted(p.name for p in (contract_out / "train").iterdir())
    shards = [n for n in names if n.endswith(".h5")]
    assert shards, names
    assert not (contract_out / "val").exists() or not list((contract_out / "val").iterdir())
    for name in names:
        assert re.fullmatch(r"\d{5}(\.h5|_stats\.json)", name), name
    assert sorted(n for n in names if n.endswith("_stats.json")) == [s[:-3] + "_stats.json" for s in shards]
    assert shards[0] == "00000.h5"

    for name in shards:
        path = contract_out / "train" / name
        with h5py.File(path, "r") as f:
            assert f.attrs["format"] == "blursynth-shard"
            assert int(f.attrs["version"]) == 1
            n = f["blur"].shape[0]
            assert n >= 1
            for ds in ("blur", "sharp"):
                assert f[ds].dtype == np.uint8
                assert f[ds].shape == (n, H, W, 3)
                assert f[ds].chunks == (1, H, W, 3)
            meta = f["meta"]
            assert meta.shape == (n,)
            info = h5py.check_string_dtype(meta.dtype)
            assert info is not None and info.encoding == "utf-8" and info.length is None
            metas = [json.loads(m) for m in meta.asstr()[()]]
        for m in metas:
            assert isinstance(m, dict)
            assert META_KEYS <= set(m), META_KEYS - set(m)
            assert m["source"] in clips
            assert m["fps"] == 240
            assert m["crf"] == "gamma" and m["gamma"] == 2.2 and m["recipe"] == "gopro" and m["seed"] == 0
            assert m["n_frames"] % 2 == 1 and 7 <= m["n_frames"] <= 13
            assert m["frames"] == list(range(m["frames"][0], m["frames"][0] + m["n_frames"]))
            assert m["center"] == m["frames"][m["n_frames"] // 2]
        stats = json.loads((contract_out / "train" / (name[:-3] + "_stats.json")).read_text())
        assert stats["count"] == n
        assert stats["file"] == name
        assert sum(s["samples"] for s in stats["sources"].values()) == n
        assert stats["failures"] == []
        # the marker is written last
        marker = contract_out / "train" / (name[:-3] + "_stats.json")
        assert marker.stat().st_mtime_ns >= path.stat().st_mtime_ns


def test_samples_are_exact_windows_of_the_source(contract_out, two_clips):
    _, clips = two_clips
    samples = all_samples(contract_out)
    assert {src for src, _ in samples} == set(clips)
    for (src, center), s in samples.items():
        frames = clips[src][1]
        np.testing.assert_array_equal(s["sharp"], frames[center])  # FFV1 is lossless: sharp is bit-exact
        window = frames[s["meta"]["frames"]].astype(np.float64) / 255
        expected = np.mean(window ** 2.2, axis=0) ** (1 / 2.2) * 255
        assert np.abs(s["blur"].astype(np.float64) - expected).max() <= 1.0
    # windows of one source are back-to-back and do not overlap (gopro recipe)
    for src in clips:
        metas = sorted((s["meta"] for (k, _), s in samples.items() if k == src), key=lambda m: m["center"])
        assert metas[0]["frames"][0] == 0
        for prev, nxt in zip(metas, metas[1:], strict=False):
            assert nxt["frames"][0] == prev["frames"][-1] + 1


def test_manifest_records_version_config_sources_and_shards(contract_out, two_clips):
    _, clips = two_clips
    man = manifest(contract_out)
    assert man["tool_version"] == __version__
    assert man["status"] == "complete"
    cfg = man["config"]
    assert cfg["recipe"] == "gopro" and cfg["frames"] == [7, 13] and cfg["crf"] == "gamma"
    assert cfg["gamma"] == 2.2 and cfg["seed"] == 0 and cfg["shard_size"] == 3 and cfg["layout"] == ["h5"]
    by_key = {s["key"]: s for s in man["sources"]}
    assert set(by_key) == set(clips)
    for key, (path, _) in clips.items():
        entry = by_key[key]
        assert Path(entry["path"]) == path.resolve()
        assert entry["size"] == path.stat().st_size
        assert entry["hash"]
        assert entry["status"] == "ok"
    on_disk = sorted(p.name for p in h5_files(contract_out))
    assert sorted(s["file"] for s in man["shards"]) == on_disk
    total = 0
    for shard in man["shards"]:
        with h5py.File(contract_out / shard["split"] / shard["file"], "r") as f:
            assert shard["count"] == f["blur"].shape[0]
        stats = json.loads((contract_out / shard["split"] / f"{shard['shard']:05d}_stats.json").read_text())
        assert stats["count"] == shard["count"]
        total += shard["count"]
    assert man["totals"]["samples"] == total == len(all_samples(contract_out))
    for key in clips:
        assert by_key[key]["samples"] == sum(1 for k, _ in all_samples(contract_out) if k == key)


def test_shard_size_splits_into_several_shards(tmp_path):
    clip, frames = make_clip(tmp_path / "clip.mkv", n=40)
    out = tmp_path / "out"
    run_ok("average", clip, out, "--frames", "7", "--shard-size", "2")
    files = [p.name for p in h5_files(out)]
    assert files == ["00000.h5", "00001.h5", "00002.h5"]
    counts = [read_shard(out / "train" / f)["blur"].shape[0] for f in files]
    assert counts == [2, 2, 1]  # 40 frames // 7 = 5 back-to-back windows
    centers = [m["center"] for f in files for m in read_shard(out / "train" / f)["meta"]]
    assert centers == [3, 10, 17, 24, 31]
    assert [s["count"] for s in manifest(out)["shards"]] == [2, 2, 1]


# -- GOPRO tree ---------------------------------------------------------------------------------------------
def test_layout_h5_and_gopro_tree(tmp_path):
    clip, _ = make_clip(tmp_path / "videos" / "clip.mkv", n=40)
    out = tmp_path / "out"
    run_ok("average", clip, out, "--layout", "h5,gopro", "--shard-size", "3")
    seq = out / "train" / "clip"
    folders = {name: sorted(p.name for p in (seq / name).iterdir())
               for name in ("blur", "blur_gamma", "sharp")}
    assert folders["blur"] == folders["blur_gamma"] == folders["sharp"]
    assert all(re.fullmatch(r"\d{6}\.png", n) for n in folders["sharp"])
    samples = all_samples(out)
    assert len(folders["sharp"]) == len(samples) > 1
    linear_differs = False
    for (_, center), s in samples.items():
        name = f"{center:06d}.png"
        assert name in folders["sharp"]
        np.testing.assert_array_equal(read_png(seq / "sharp" / name), s["sharp"])
        np.testing.assert_array_equal(read_png(seq / "blur_gamma" / name), s["blur"])
        linear = read_png(seq / "blur" / name)
        assert linear.shape == s["blur"].shape
        linear_differs |= not np.array_equal(linear, s["blur"])
    assert linear_differs, "blur/ (linear CRF) should differ from blur_gamma/ (gamma CRF)"
    assert not list(out.rglob("*.partial*"))


def test_layout_gopro_only_writes_no_h5(tmp_path):
    clip, frames = make_clip(tmp_path / "clip.mkv", n=20)
    out = tmp_path / "out"
    run_ok("average", clip, out, "--layout", "gopro", "--frames", "7")
    assert not list(out.rglob("*.h5"))
    names = sorted(p.name for p in (out / "train" / "clip" / "sharp").iterdir())
    assert names == ["000003.png", "000010.png"]
    np.testing.assert_array_equal(read_png(out / "train" / "clip" / "sharp" / "000010.png"), frames[10])
    assert manifest(out)["totals"]["samples"] == 2


# -- splits -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def five_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("five_clips")
    paths = [make_clip(root / "videos" / f"s{i}.mkv", n=16, seed=10 + i)[0] for i in range(5)]
    return root, paths


def _split_of_sources(out: Path) -> dict[str, str]:
    samples = all_samples(out)
    splits: dict[str, set] = {}
    for (src, _), s in samples.items():
        assert s["meta"].get("split", s["split"]) == s["split"]
        splits.setdefault(src, set()).add(s["split"])
    for src, where in splits.items():
        assert len(where) == 1, f"{src} is in {where}"
    return {src: where.pop() for src, where in splits.items()}


def test_val_fraction_assigns_whole_sources(five_clips):
    root, paths = five_clips
    out1, out2, out3 = root / "v1", root / "v2", root / "v3"
    run_ok("average", *paths, out1, "--frames", "7", "--val-fraction", "0.4", "--seed", "5")
    run_ok("average", *paths, out2, "--frames", "7", "--val-fraction", "0.4", "--seed", "5")
    run_ok("average", *reversed(paths), out3, "--frames", "7", "--val-fraction", "0.4", "--seed", "5")
    first = _split_of_sources(out1)
    assert sorted(first.values()).count("val") == 2
    assert sorted(first.values()).count("train") == 3
    by_key = {s["key"]: s["split"] for s in manifest(out1)["sources"]}
    assert by_key == first
    assert manifest(out1)["totals"]["by_split"]["val"] == sum(1 for k, _ in all_samples(out1)
                                                             if first[k] == "val")
    assert h5_files(out1, "val") and h5_files(out1, "train")
    for other in (out2, out3):
        assert _split_of_sources(other) == first
        a, b = all_samples(out1), all_samples(other)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key]["blur"], b[key]["blur"])
            assert a[key]["meta"] == b[key]["meta"]
        assert [p.name for p in h5_files(other, "val")] == [p.name for p in h5_files(out1, "val")]


# -- options -----------------------------------------------------------------------------------------------
def test_compression_lzf_is_readable_and_lossless(tmp_path, contract_out, two_clips):
    root, _ = two_clips
    out = tmp_path / "lzf"
    run_ok("average", root / "videos", out, "--shard-size", "3", "--compression", "lzf")
    for path in h5_files(out):
        with h5py.File(path, "r") as f:
            assert f["blur"].compression == "lzf" and f["sharp"].compression == "lzf"
    a, b = all_samples(contract_out), all_samples(out)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key]["blur"], b[key]["blur"])
        np.testing.assert_array_equal(a[key]["sharp"], b[key]["sharp"])


def test_max_per_source_spreads_samples(tmp_path):
    clip, _ = make_clip(tmp_path / "clip.mkv", n=40)
    full, capped = tmp_path / "full", tmp_path / "capped"
    run_ok("average", clip, full, "--frames", "7")
    run_ok("average", clip, capped, "--frames", "7", "--max-per-source", "3")
    all_centers = sorted(c for _, c in all_samples(full))
    centers = sorted(c for _, c in all_samples(capped))
    assert all_centers == [3, 10, 17, 24, 31]
    assert len(centers) == 3
    assert set(centers) <= set(all_centers)
    assert centers[0] == all_centers[0] and centers[-1] == all_centers[-1]  # spread over the whole clip
    assert manifest(capped)["totals"]["samples"] == 3
    # a cap above the available windows changes nothing
    more = tmp_path / "more"
    run_ok("average", clip, more, "--frames", "7", "--max-per-source", "50")
    assert sorted(c for _, c in all_samples(more)) == all_centers


def test_frame_folder_natural_sort_matches_video(tmp_path):
    frames = make_frames(25, seed=4)
    folder = write_frame_folder(tmp_path / "seqs" / "walk", frames)  # frame0.png ... frame24.png, unpadded
    assert sorted(p.name for p in folder.iterdir())[:3] == ["frame0.png", "frame1.png", "frame10.png"]
    video = write_video(tmp_path / "walk.mkv", frames)
    out_f, out_v = tmp_path / "from_folder", tmp_path / "from_video"
    run_ok("average", folder, out_f, "--frames", "7", "--fps", "240")
    run_ok("average", video, out_v, "--frames", "7")
    from_folder = all_samples(out_f)
    assert sorted(c for _, c in from_folder) == [3, 10, 17]
    for (src, center), s in from_folder.items():
        assert src == "walk"
        assert s["meta"]["fps"] == 240
        np.testing.assert_array_equal(s["sharp"], frames[center])  # frame2 comes before frame10
    from_video = {c: s for (_, c), s in all_samples(out_v).items()}
    for (_, center), s in from_folder.items():
        np.testing.assert_array_equal(s["blur"], from_video[center]["blur"])
    entry = manifest(out_f)["sources"][0]
    assert entry["kind"] == "frames" and entry["frames"] == 25


def test_low_fps_source_warns(tmp_path):
    slow, _ = make_clip(tmp_path / "slow.mkv", n=20, fps=30)
    fast, _ = make_clip(tmp_path / "fast.mkv", n=20, seed=3)
    out = tmp_path / "out"
    result = run_ok("average", slow, fast, out, "--frames", "7")
    warnings = [line for line in result.stderr.splitlines() if "100 fps" in line]
    assert len(warnings) == 1, result.stderr
    assert "slow.mkv" in warnings[0] and "30" in warnings[0]
    assert warnings[0].lower().startswith("warning")
    by_key = {s["key"]: s for s in manifest(out)["sources"]}
    assert "warning" in by_key["slow.mkv"]
    assert "warning" not in by_key["fast.mkv"]
    assert by_key["slow.mkv"]["status"] == "ok"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_gpu_is_a_clean_error(tmp_path):
    clip, _ = make_clip(tmp_path / "clip.mkv", n=20)
    out = tmp_path / "out"
    result = invoke("average", clip, out, "--device", "cuda")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "cuda" in errors[0].lower()
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not os.listdir(out)
