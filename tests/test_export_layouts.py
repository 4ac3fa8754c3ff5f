"""Exports whose folders mean what their names say (issue 17): GOPRO trees, split names, every per-sample array,
unfinished datasets and sources whose names meet.

Datasets are made here with the real CLI from two lossless PNG frame folders named ``cam.a`` and ``cam_a`` (the
same name once made file-safe), 24 frames of 32 x 48 each, 7 frames per window (3 windows per source), one
source per split. Oracles are our own: the plain mean of code values is the round-half-up mean of the input
frames the sample's meta lists; expected names follow the documented rule with our own blake2b tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import lmdb
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import pan_frames, write_frame_folder
from textures import textured_image

from blursynth.shards.files import atomic_write_json
from blursynth.shards.gopro import GOPRO_SPLITS
from blursynth.shards.manifest import SPLITS, TREE_FOLDERS, write_manifest
from blursynth.shards.names import sequence_names
from blursynth.shards.writer import ShardWriter

H, W, FRAMES, N = 32, 48, 24, 7
WINDOWS = FRAMES // N  # back-to-back windows of 7 frames per source
KEYS = ("cam.a", "cam_a")


def tag(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()


def read_any(path: Path) -> np.ndarray:
    """A PNG as stored pixels (RGB for colour) or a ``.npy`` array."""
    if path.suffix == ".npy":
        return np.load(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def tree_files(root: Path) -> dict[str, Path]:
    """The image files of a GOPRO tree (train/ and test/), by relative path."""
    return {str(p.relative_to(root)): p for top in ("train", "test", "val") if (root / top).is_dir()
            for p in (root / top).rglob("*") if p.is_file() and p.suffix in (".png", ".npy")}


def rows(out: Path) -> list[dict]:
    """Every sample of OUT read with h5py: split, meta and arrays."""
    found = []
    for split in ("train", "val"):
        for shard in sorted((out / split).glob("*.h5")):
            with h5py.File(shard, "r") as f:
                metas = [json.loads(t) for t in f["meta"].asstr()[()]]
                arrays = {k: f[k][()] for k in f if k != "meta"}
            found += [{"split": split, "meta": m} | {k: a[i] for k, a in arrays.items()} for i, m in enumerate(metas)]
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Inputs and three outputs of the same sources: h5 with the plain mean, the gopro layout, plain h5."""
    root = tmp_path_factory.mktemp("layouts")
    frames = {}
    for k, key in enumerate(KEYS):
        frames[key] = pan_frames(textured_image(H + 8, W + 40, seed=10 + k), FRAMES, H, W, 1.25)
        write_frame_folder(root / "in" / key, frames[key])
    common = [root / "in", "--fps", 240, "--frames", N, "--val-fraction", 0.5, "--shard-size", 2, "--seed", 3]
    outs = {}
    for name, extra in (("h5", ["--keep-plain-mean"]), ("tree", ["--layout", "gopro"]), ("plain", [])):
        outs[name] = root / name
        run_ok("average", common[0], outs[name], *common[1:], *extra, "-q")
    return SimpleNamespace(root=root, frames=frames, **outs)


# -- 4. one GOPRO writer ---------------------------------------------------------------------------------------
def test_export_of_kept_plain_mean_equals_average_layout_gopro(data, tmp_path):
    dest = tmp_path / "dest"
    run_ok("export", data.h5, dest, "--layout", "gopro")
    exported, averaged = tree_files(dest), tree_files(data.tree)
    assert sorted(exported) == sorted(averaged)
    assert {Path(p).parts[2] for p in exported} == {"blur", "blur_gamma", "sharp"}
    for rel, path in exported.items():
        np.testing.assert_array_equal(read_any(path), read_any(averaged[rel]), err_msg=rel)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]  # nothing else: no note, no renames


def test_blur_is_the_plain_mean_of_code_values_and_blur_gamma_the_crf_average(data):
    samples = rows(data.h5)
    assert len(samples) == 2 * WINDOWS
    for r in samples:
        meta = r["meta"]
        stack = data.frames[meta["source"]][meta["frames"]].astype(np.int64)
        n = len(meta["frames"])
        plain = ((2 * stack.sum(axis=0) + n) // (2 * n)).astype(np.uint8)  # round half up of the mean
        np.testing.assert_array_equal(r["blur_linear"], plain)
        seq = data.tree / GOPRO_SPLITS[r["split"]] / meta["source"]
        name = f"{meta['center']:06d}.png"
        np.testing.assert_array_equal(read_any(seq / "blur" / name), plain)
        np.testing.assert_array_equal(read_any(seq / "blur_gamma" / name), r["blur"])
        np.testing.assert_array_equal(read_any(seq / "sharp" / name), data.frames[meta["source"]][meta["center"]])
        assert not np.array_equal(plain, r["blur"])  # gamma 2.2 is not the plain mean


def test_keep_plain_mean_leaves_the_other_arrays_and_meta_unchanged(data):
    with_plain, without = rows(data.h5), rows(data.plain)
    assert [r["meta"] for r in with_plain] == [r["meta"] for r in without]
    for a, b in zip(with_plain, without, strict=True):
        assert set(a) - set(b) == {"blur_linear"}
        np.testing.assert_array_equal(a["blur"], b["blur"])
        np.testing.assert_array_equal(a["sharp"], b["sharp"])


def test_without_a_plain_mean_there_is_no_blur_folder_unless_asked(data, tmp_path):
    result = run_ok("export", data.plain, tmp_path / "d1", "--layout", "gopro")
    assert not [p for p in (tmp_path / "d1").rglob("blur") if p.is_dir()]
    assert "--keep-plain-mean" in result.output and "--gopro-blur gamma" in result.output
    run_ok("export", data.plain, tmp_path / "d2", "--layout", "gopro", "--gopro-blur", "gamma")
    gamma = [p for p in (tmp_path / "d2").rglob("blur_gamma/*.png")]
    assert len(gamma) == 2 * WINDOWS
    for p in gamma:
        link = p.parent.parent / "blur" / p.name
        assert os.path.samefile(link, p) or link.read_bytes() == p.read_bytes()
    # asked for the CRF average under blur/, a kept plain mean is still exported, in its own folder
    run_ok("export", data.h5, tmp_path / "d3", "--layout", "gopro", "--gopro-blur", "gamma")
    plain = sorted((tmp_path / "d3").rglob("blur_linear/*.png"))
    assert len(plain) == 2 * WINDOWS
    assert not np.array_equal(read_any(plain[0]), read_any(plain[0].parent.parent / "blur" / plain[0].name))


# -- 5. split names ---------------------------------------------------------------------------------------------
def test_val_split_is_test_in_gopro_trees_and_val_name_overrides(data, tmp_path):
    val_source = next(r["meta"]["source"] for r in rows(data.plain) if r["split"] == "val")
    assert (data.tree / "test" / val_source / "blur_gamma").is_dir()
    assert not list((data.tree / "val").glob("*/blur_gamma"))  # val/ keeps only its shard markers
    run_ok("export", data.plain, tmp_path / "g", "--layout", "gopro")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["test", "train"]
    assert len(list((tmp_path / "g" / "test" / val_source / "blur_gamma").iterdir())) == WINDOWS
    run_ok("export", data.plain, tmp_path / "v", "--layout", "gopro", "--val-name", "val")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["train", "val"]
    run_ok("export", data.plain, tmp_path / "b", "--layout", "basicsr")  # BasicSR keeps val by default
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.is_dir()) == ["train", "val"]


@pytest.mark.parametrize("bad", ["train", "a/b", "", ".."])
def test_bad_val_name_is_refused(data, tmp_path, bad):
    assert_clean_error(invoke("export", data.plain, tmp_path / "d", "--layout", "gopro", "--val-name", bad),
                       "--val-name", exit_code=2)
    assert not (tmp_path / "d").exists()


def test_gopro_tree_folders_are_removed_with_the_outputs():
    assert set(GOPRO_SPLITS) == set(SPLITS)
    assert set(GOPRO_SPLITS.values()) - set(SPLITS) <= set(TREE_FOLDERS)


# -- 7. names that meet ------------------------------------------------------------------------------------------
def test_colliding_sources_get_a_hash_of_their_key_and_a_mapping_file(data, tmp_path):
    dest = tmp_path / "bsr"
    result = run_ok("export", data.h5, dest, "--layout", "basicsr")
    expected = {key: f"cam_a_{tag(key)}" for key in KEYS}
    assert json.loads((dest / "renamed_sources.json").read_text())["renamed"] == expected
    assert "renamed_sources.json" in result.output and "cam.a -> cam_a_" in result.output
    for r in rows(data.h5):
        name = f"{expected[r['meta']['source']]}_{r['meta']['center']:06d}.png"
        for kind in ("blur", "sharp", "blur_linear"):
            np.testing.assert_array_equal(read_any(dest / r["split"] / kind / name), r[kind])
    lines = (dest / "train" / "meta_info.txt").read_text().splitlines()
    assert all(line.split(" ")[0].startswith("cam_a_") for line in lines) and len(lines) == WINDOWS


def test_sequence_names_do_not_depend_on_order():
    keys = ["cam.a", "cam_a", "x.mp4", "x.mov", "a/b", "a__b", "Cam", "cam", "solo.mkv"]
    first = sequence_names(keys, flat=True)
    for seed in range(5):
        random.Random(seed).shuffle(keys)
        assert dict(sequence_names(keys, flat=True)) == dict(first)
    assert first["solo.mkv"] == "solo"
    assert first["x.mp4"] == f"x_{tag('x.mp4')}" and first["x.mov"] == f"x_{tag('x.mov')}"
    assert first["Cam"] == f"Cam_{tag('Cam')}"  # case-insensitive file systems: Cam and cam meet
    gopro = sequence_names(keys)
    assert gopro["cam.a"] == "cam.a" and gopro["a/b"] == f"a__b_{tag('a/b')}"


@pytest.mark.parametrize("key", ["wave.gif", "cam/clip.ts", "take.MTS", "x.y4m"])
def test_every_video_extension_is_dropped_from_sequence_names(key):
    """Every extension `average` reads as a video (a folder of GIFs included) names its sequence without it."""
    stem = key.rsplit(".", 1)[0].replace("/", "__")
    assert sequence_names([key])[key] == stem and sequence_names([key], flat=True)[key] == stem


def test_gopro_names_that_meet_are_made_unique_alike_by_average_and_export(tmp_path):
    frames = pan_frames(textured_image(H + 8, W + 40, seed=5), 14, H, W, 1.0)
    write_frame_folder(tmp_path / "in" / "a" / "b", frames)
    write_frame_folder(tmp_path / "in" / "a__b", frames[::-1].copy())
    args = ["--fps", 240, "--frames", N, "--val-fraction", 0]
    result = run_ok("average", tmp_path / "in", tmp_path / "tree", "--layout", "gopro", *args)
    assert "another source has the same GOPRO folder name" in result.output
    run_ok("average", tmp_path / "in", tmp_path / "h5", "--keep-plain-mean", *args, "-q")
    run_ok("export", tmp_path / "h5", tmp_path / "dest", "--layout", "gopro")
    expected = {f"a__b_{tag('a/b')}", f"a__b_{tag('a__b')}"}
    assert {p.name for p in (tmp_path / "tree" / "train").iterdir() if p.is_dir()} == expected
    assert sorted(tree_files(tmp_path / "dest")) == sorted(tree_files(tmp_path / "tree"))
    mapping = json.loads((tmp_path / "dest" / "renamed_sources.json").read_text())["renamed"]
    assert mapping == {"a/b": f"a__b_{tag('a/b')}", "a__b": f"a__b_{tag('a__b')}"}


# -- 1. unfinished datasets --------------------------------------------------------------------------------------
def interrupted(data, tmp_path, status: str = "running") -> tuple[Path, int]:
    """A copy of the h5 dataset as an interrupted run leaves it: manifest ``status``, the last shard of the
    train source without its marker. Returns (OUT, samples complete)."""
    out = tmp_path / "out"
    shutil.copytree(data.h5, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["status"] = status
    if status == "incomplete":
        manifest["totals"]["errors"] = [{"source": "cam.a", "reason": "worker died"}]
    atomic_write_json(out / "manifest.json", manifest)
    last = sorted((out / "train").glob("*_stats.json"))[-1]
    lost = json.loads(last.read_text())["count"]
    last.unlink()
    return out, 2 * WINDOWS - lost


@pytest.mark.parametrize("status", ["running", "incomplete"])
def test_unfinished_dataset_is_refused_with_status_and_counts(data, tmp_path, status):
    out, complete = interrupted(data, tmp_path, status)
    for layout in ("gopro", "basicsr", "lmdb"):
        line = assert_clean_error(invoke("export", out, tmp_path / "dest", "--layout", layout), "manifest.json",
                                  exit_code=1)
        assert f"status {status!r}" in line and f"{complete} of {2 * WINDOWS} samples complete" in line, line
        assert "--allow-incomplete" in line
        assert not (tmp_path / "dest").exists()


def test_allow_incomplete_exports_what_is_complete_and_says_so(data, tmp_path):
    out, complete = interrupted(data, tmp_path)
    dest = tmp_path / "dest"
    result = run_ok("export", out, dest, "--layout", "basicsr", "--allow-incomplete")
    assert f"exported {complete} samples" in result.output and "INCOMPLETE" in result.output
    assert any(line.startswith("warning:") and "running" in line for line in result.output.splitlines())
    note = (dest / "INCOMPLETE.txt").read_text()
    assert "'running'" in note and f"{complete} of {2 * WINDOWS} samples complete" in note
    assert sum(len(list((dest / s / "sharp").iterdir())) for s in ("train", "val")) == complete


def test_missing_manifest_is_refused_unless_allowed(data, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(data.h5, out)
    (out / "manifest.json").unlink()
    line = assert_clean_error(invoke("export", out, tmp_path / "d", "--layout", "gopro"), "manifest.json", 1)
    assert "unknown" in line and f"{2 * WINDOWS} samples complete" in line
    run_ok("export", out, tmp_path / "d", "--layout", "gopro", "--allow-incomplete", "-q")
    assert (tmp_path / "d" / "INCOMPLETE.txt").is_file()


# -- 6. every per-sample array ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """A one-shard dataset holding mask, blur_map (float16), measurable and blur_linear, written by ShardWriter."""
    from blursynth.sample import Sample

    out = tmp_path_factory.mktemp("maps") / "out"
    rng = np.random.default_rng(0)
    extras = ("blur_linear", "blur_map", "mask", "measurable")
    w = ShardWriter(out, "train", 0, capacity=2, extra_datasets=extras)
    samples = []
    for i in range(2):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        ex = {"blur_linear": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
              "blur_map": (rng.random((H, W)) * 300).astype(np.float16),  # beyond any 8-bit or 16-bit PNG scale
              "mask": rng.integers(0, 256, (H, W), dtype=np.uint8),
              "measurable": rng.integers(0, 2, (H, W), dtype=np.uint8)}
        s = Sample(blur=img, sharp=img[::-1].copy(), meta={"source": "clip.mp4", "center": 10 + 7 * i, "n_frames": 7},
                   extras=ex)
        w.add(s)
        samples.append(s)
    marker = w.close({"sources": {"clip.mp4": {"status": "ok", "samples": 2, "path": "clip.mp4"}}, "final": True})
    write_manifest(out, command="average", status="complete", config={}, fingerprint={},
                   sources=[{"key": "clip.mp4", "windows": 2}],
                   shards=[{"split": "train", "shard": 0, "file": marker.file, "count": 2}], totals={"samples": 2})
    return SimpleNamespace(out=out, samples=samples)


def test_every_array_is_exported_in_each_layout(maps, tmp_path):
    run_ok("export", maps.out, tmp_path / "g", "--layout", "gopro", "-q")
    run_ok("export", maps.out, tmp_path / "b", "--layout", "basicsr", "-q")
    run_ok("export", maps.out, tmp_path / "l", "--layout", "lmdb", "-q")
    dbs = {}
    for kind in ("blur", "sharp", "blur_linear", "blur_map", "mask", "measurable"):
        env = lmdb.open(str(tmp_path / "l" / "train" / f"{kind}.lmdb"), readonly=True, lock=False)
        with env.begin() as txn:
            dbs[kind] = {bytes(k).decode(): bytes(v) for k, v in txn.cursor()}
        env.close()
    for s in maps.samples:
        frame = f"{s.meta['center']:06d}"
        arrays = {"blur": s.blur, "sharp": s.sharp, **s.extras}
        gopro = {"blur_gamma": "blur", "blur": "blur_linear", "sharp": "sharp", "mask": "mask",
                 "measurable": "measurable", "blur_map": "blur_map"}
        for folder, name in gopro.items():
            ext = ".npy" if name == "blur_map" else ".png"
            got = read_any(tmp_path / "g" / "train" / "clip" / folder / f"{frame}{ext}")
            assert got.dtype == arrays[name].dtype
            np.testing.assert_array_equal(got, arrays[name])
        for name, array in arrays.items():
            ext = ".npy" if name == "blur_map" else ".png"
            np.testing.assert_array_equal(read_any(tmp_path / "b" / "train" / name / f"clip_{frame}{ext}"), array)
            value = dbs[name][f"clip_{frame}"]
            if ext == ".npy":
                import io

                np.testing.assert_array_equal(np.load(io.BytesIO(value)), array)
            else:
                decoded = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
                np.testing.assert_array_equal(decoded if decoded.ndim == 2 else decoded[..., ::-1], array)
    info = (tmp_path / "l" / "train" / "blur_map.lmdb" / "meta_info.txt").read_text().splitlines()
    assert info == [f"clip_{s.meta['center']:06d}.npy ({H},{W},1) 0" for s in maps.samples]


def test_blur_maps_go_to_both_gopro_trees_alike(tmp_path):
    frames = pan_frames(textured_image(H + 8, W + 40, seed=8), 22, H, W, 0.5)
    write_frame_folder(tmp_path / "in" / "slow", frames)
    args = ["--fps", 240, "--frames", N, "--blur-map", "--seed", 2, "-q"]
    run_ok("average", tmp_path / "in", tmp_path / "tree", "--layout", "gopro", *args)
    run_ok("average", tmp_path / "in", tmp_path / "h5", "--keep-plain-mean", *args)
    run_ok("export", tmp_path / "h5", tmp_path / "dest", "--layout", "gopro", "-q")
    exported, averaged = tree_files(tmp_path / "dest"), tree_files(tmp_path / "tree")
    assert sorted(exported) == sorted(averaged)
    assert {Path(p).parts[2] for p in exported} == {"blur", "blur_gamma", "sharp", "blur_map", "measurable"}
    samples = rows(tmp_path / "h5")
    assert samples
    for r in samples:
        stored = read_any(tmp_path / "tree" / "train" / "slow" / "blur_map" / f"{r['meta']['center']:06d}.npy")
        assert stored.dtype == np.float16
        np.testing.assert_array_equal(stored, r["blur_map"])
    for rel, path in exported.items():
        np.testing.assert_array_equal(read_any(path), read_any(averaged[rel]), err_msg=rel)
