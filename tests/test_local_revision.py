"""Revision 2 of ``blursynth local`` (issue 18): ``--substeps auto`` by default, objects keyed relative to their
dataset's root, and what that means for revision 1's outputs.

* ``--substeps 1`` is revision 1's physics: with ``--val-fraction 0`` (where the object split plays no part) its
  arrays are revision 1's bit for bit (hashes recorded with the code before the change, d0970bd); end to end,
  its mask is the exposure fraction over exactly the N poses of the meta, against a bilinear oracle of the
  bank patch, and the default's over the (N - 1) K + 1 poses of the constant-velocity path between them.
* The same VOC tree given by another path (relative, absolute, a symlink, a copy elsewhere) gives the same bytes;
  messages still name the full file.
* An output of revision 1 is refused on resume (``revision=1 vs 2``) and restarted by ``--overwrite``; an object
  store of version 1 (paths as given) is rebuilt, never reused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from objects_data import Shape, write_backgrounds, write_coco, write_voc
from scale_data import local_args, local_inputs
from test_golden import _backgrounds, _voc, dataset_hashes

from blursynth.config import REVISIONS
from blursynth.objects.store import VERSION, ObjectStore, store_matches

# Arrays of the golden `local` inputs at --val-fraction 0 --substeps 1, made by revision 1 (d0970bd, before issue
# 18 changed the default and the object keys); the meta differs (object keys, substeps, exposure_samples,
# substep_px).
REVISION_1_ARRAYS = {
    "stream": "5daa0e00c7d9a3b790af7aad6060ff469ab75e1d19e1988efd4157280b636cdf",
    "torch": "3c6bb0bf63e3f4a40459e15f4247d01f601c73751acd6899c4d2c9e3c2cf2ebf",
}


def _golden_args(voc: Path, bg: Path, out: Path, *extra: str) -> list[str]:
    return ["local", "--voc", str(voc), "--bg", str(bg), str(out), "--num-samples", "6", "--shard-size", "3",
            "--seed", "7", "--frames", "7-9", "--min-object-area", "50", "-q", *extra]


def _metas(out: Path) -> list[dict]:
    found = []
    for shard in sorted(out.glob("*/*.h5")):
        with h5py.File(shard, "r") as f:
            found += [json.loads(m) for m in f["meta"].asstr()[()]]
    return found


@pytest.mark.parametrize("backend", ["stream", "torch"])
def test_substeps_one_renders_the_arrays_of_revision_1(tmp_path, monkeypatch, backend):
    monkeypatch.chdir(tmp_path)  # revision 1 was recorded with the inputs passed relative
    voc, bg = _voc(Path("VOC2012")), _backgrounds(Path("bg"))
    extra = ["--backend", "torch", "--device", "cpu", "--layout", "h5,gopro"] if backend == "torch" else []
    run_ok(*_golden_args(voc, bg, Path("out"), "--val-fraction", "0", "--substeps", "1", *extra))
    arrays, _, samples = dataset_hashes(tmp_path / "out")
    assert samples == 6 and arrays == REVISION_1_ARRAYS[backend]
    for meta in _metas(tmp_path / "out"):
        assert meta["substeps"] == 1 and meta["exposure_samples"] == meta["n_frames"]
        assert {o["source"] for o in meta["objects"]} <= {"JPEGImages/2008_000001.jpg", "JPEGImages/2008_000002.jpg"}


# ------------------------------------------------------------------------------------------------------------
# one object, pure translation: the mask against the exposure fraction of the poses in the meta
# ------------------------------------------------------------------------------------------------------------
def _bilinear_coverage(alpha: np.ndarray, pose: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The patch's alpha resampled under ``pose`` (patch pixel (u, v) -> frame ``pose @ (u, v, 1)``, pixel centres
    at integer coordinates, zero outside the patch): bilinear interpolation, written out here."""
    inv = np.linalg.inv(np.vstack([pose, [0.0, 0.0, 1.0]]))
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    u = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    v = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    padded = np.pad(alpha.astype(np.float64), 1)
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    out = np.zeros(hw)
    for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        iu = np.clip(u0 + du + 1, 0, padded.shape[1] - 1).astype(int)
        iv = np.clip(v0 + dv + 1, 0, padded.shape[0] - 1).astype(int)
        out += w * padded[iv, iu]
    return out


def test_the_mask_is_the_exposure_fraction_of_n_poses_at_one_substep_and_of_the_path_by_default(tmp_path):
    voc = write_voc(tmp_path / "VOC2012", {"2008_000001": [Shape("rect", (30, 30, 46, 44), 8)]}, size=(80, 90))
    bg = write_backgrounds(tmp_path / "bg", groups=1, per_group=1, size=(64, 96))
    common = ["--moving-objects", "1", "--static-objects", "0", "--object-scale", "1", "--translate", "8:8",
              "--scale", "1:1", "--rotate", "0:0", "--frames", "7", "--num-samples", "2", "--min-object-area", "50",
              "--seed", "3", "-q"]
    masks = {}
    for k in ("1", None):
        out = tmp_path / f"out_{k}"
        run_ok("local", "--voc", voc, "--bg", bg, out, *common, *(["--substeps", k] if k else []))
        store = ObjectStore(out / "objects.h5")
        for shard in sorted(out.glob("*/*.h5")):
            with h5py.File(shard, "r") as f:
                for i, text in enumerate(f["meta"].asstr()[()]):
                    meta = json.loads(text)
                    masks[k, meta["index"]] = (f["mask"][i].astype(np.float64), meta, store)
    for index in (0, 1):
        mask1, meta1, store = masks["1", index]
        mask_auto, meta_auto, _ = masks[None, index]
        obj = meta1["objects"][0]
        alpha = store[obj["bank_index"]].alpha
        poses = np.asarray(obj["poses"]).reshape(-1, 2, 3)
        assert len(poses) == meta1["n_frames"] == 7 and meta1["substeps"] == 1
        discrete = np.mean([_bilinear_coverage(alpha, p, mask1.shape) for p in poses], axis=0)
        # warpAffine places poses to 1/64 px: a pixel's coverage is off by at most 1/64 of a unit ramp (4 LSB)
        assert np.abs(mask1 - 255 * discrete).max() <= 4.5
        k = meta_auto["substeps"]
        assert k == 8 and meta_auto["substep_px"] == pytest.approx(1.0)  # 8 px per step, 1 px per sub-step
        assert obj["poses"] == meta_auto["objects"][0]["poses"]  # the same trajectory
        path = [p + (q - p) * j / k for p, q in zip(poses, poses[1:], strict=False) for j in range(k)] + [poses[-1]]
        continuous = np.mean([_bilinear_coverage(alpha, p, mask1.shape) for p in path], axis=0)
        assert np.abs(mask_auto - 255 * continuous).max() <= 4.5
        gap = np.abs(mask_auto - 255 * discrete).max()
        assert gap > 10, gap  # the staircase is gone by default (the two oracles differ by up to 15 LSB)


# ------------------------------------------------------------------------------------------------------------
# object keys relative to the dataset root
# ------------------------------------------------------------------------------------------------------------
def test_the_same_voc_tree_by_another_path_gives_the_same_bytes(tmp_path, monkeypatch):
    inputs = local_inputs(tmp_path / "data")
    (tmp_path / "link").symlink_to(inputs["voc"], target_is_directory=True)
    moved = shutil.copytree(inputs["voc"], tmp_path / "elsewhere" / "deeper" / "VOC")
    monkeypatch.chdir(tmp_path)
    spellings = {"absolute": inputs["voc"], "relative": Path("data/VOC2012"), "dotted": Path("./data/../data/VOC2012"),
                 "symlink": Path("link"), "moved": moved}
    hashes = {}
    for name, voc in spellings.items():
        run_ok(*local_args({"voc": voc, "bg": inputs["bg"]}, tmp_path / f"out_{name}", samples=6, shard_size=3))
        hashes[name] = dataset_hashes(tmp_path / f"out_{name}")
    assert hashes["absolute"][2] == 6
    assert all(h == hashes["absolute"] for h in hashes.values()), hashes
    metas = _metas(tmp_path / "out_absolute")
    assert {m["split"] for m in metas} == {"train", "val"}  # the object split took part
    assert {o["source"] for m in metas for o in m["objects"]} <= {"JPEGImages/2008_000001.jpg",
                                                                  "JPEGImages/2008_000002.jpg"}


def test_coco_objects_are_keyed_by_file_name(tmp_path, monkeypatch):
    pytest.importorskip("pycocotools")
    from blursynth.objects.coco import iter_coco

    coco = write_coco(tmp_path / "coco")
    (tmp_path / "imgs").symlink_to(coco.images_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    found = {}
    for name, images in (("absolute", coco.images_dir), ("symlink", Path("imgs")), ("relative", Path("coco/images"))):
        found[name] = [c for c in iter_coco(coco.json_path, images) if not isinstance(c, dict)]
    keys = [(c.source, c.instance_id) for c in found["absolute"]]
    assert keys and all([(c.source, c.instance_id) for c in cands] == keys for cands in found.values())
    assert {c.source for c in found["absolute"]} == {p.name for p in coco.image_paths.values()}
    assert {c.path for c in found["symlink"]} == {str(Path("imgs") / p.name) for p in coco.image_paths.values()}


def test_messages_still_name_the_full_file(tmp_path):
    inputs = local_inputs(tmp_path)
    result = invoke(*local_args(inputs, tmp_path / "out", samples=2), "--min-object-area", "1e6")
    line = assert_clean_error(result, "no usable object")
    assert str(inputs["voc"] / "JPEGImages" / "2008_000001.jpg") + ": tiny:" in line


# ------------------------------------------------------------------------------------------------------------
# revision 1 outputs and stores
# ------------------------------------------------------------------------------------------------------------
def test_a_revision_1_output_is_refused_on_resume_and_restarted_with_overwrite(tmp_path):
    inputs = local_inputs(tmp_path)
    out = tmp_path / "out"
    args = local_args(inputs, out, samples=4)
    run_ok(*args)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["fingerprint"]["revision"] == REVISIONS["local"] == 2
    assert manifest["fingerprint"]["substeps"] == "auto"
    # what a default run of revision 1 recorded: no revision (1 implied) and no substeps (1, left out)
    fingerprint = {k: v for k, v in manifest["fingerprint"].items() if k not in ("revision", "substeps")}
    path.write_text(json.dumps(manifest | {"fingerprint": fingerprint}))
    assert_clean_error(invoke(*args), "revision=1 vs 2")
    path.write_text(json.dumps(manifest | {"fingerprint": fingerprint | {"revision": 1, "substeps": 1}}))
    line = assert_clean_error(invoke(*args), "revision=1 vs 2")
    assert "rerun with the same settings to resume, or pass --overwrite" in line
    run_ok(*args, "--overwrite")
    restarted = json.loads(path.read_text())
    assert restarted["fingerprint"] == manifest["fingerprint"] and restarted["status"] == "complete"


def test_an_object_store_of_version_1_is_rebuilt(tmp_path):
    inputs = local_inputs(tmp_path)
    out = tmp_path / "out"
    run_ok(*local_args(inputs, out, samples=2))
    store = out / "objects.h5"
    with h5py.File(store, "r") as f:
        fingerprint = json.loads(f.attrs["fingerprint"])
    assert VERSION == 2 and store_matches(store, fingerprint)
    old = shutil.copy(store, tmp_path / "old.h5")  # (this process may still hold the store open)
    with h5py.File(old, "r+") as f:
        f.attrs["version"] = 1  # its keys would be the paths as given: another split
    os.replace(old, store)
    assert not store_matches(store, fingerprint)
    before = os.stat(store).st_mtime_ns
    shutil.rmtree(out / "train")
    run_ok(*local_args(inputs, out, samples=2))  # resumes: same settings, the store is rebuilt
    with h5py.File(store, "r") as f:
        assert f.attrs["version"] == 2
    assert os.stat(store).st_mtime_ns != before


def test_help_shows_the_default_and_an_example(tmp_path):
    text = run_ok("local", "--help").output
    flat = " ".join(text.split())
    assert "--substeps K|auto" in flat and "[default: auto]" in flat
    assert "--substeps 1" in flat  # the example of revision 1's discrete frames
    assert "continuous by default" in flat
