"""The public reader API (``blursynth.data.ShardDataset``, ``blursynth.read_shard``) and the validator
(``blursynth.shards.validate.validate_output``, ``blursynth train-check``'s first step).

Three tiny outputs are built once with the real recipes (32 x 48 images, a handful of samples): ``avg`` (GOPRO
recipe, train and val splits, shards of two samples), ``flow`` (DIS-selected windows with ``blur_map``) and
``local`` (``blursynth local`` with masks). Expected values are read independently: markers as JSON (in split
then shard order), shards with h5py, images divided by 255 with our own code. Damaged datasets are copies of
these, tampered with h5py, by truncating bytes or by editing the JSON files.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import invoke
from conftest import pan_frames, textured_image, write_video
from objects_data import Shape, write_backgrounds, write_voc

import blursynth
from blursynth.config import AverageConfig, LocalConfig
from blursynth.data import ShardDataset
from blursynth.errors import ConfigError, InputError, OutputError
from blursynth.recipes.average import run_average
from blursynth.recipes.local import run_local
from blursynth.shards.markers import MarkerError, ShardMarker
from blursynth.shards.validate import validate_output

SPLITS = ("train", "val")
H, W = 32, 48


# -- helpers -------------------------------------------------------------------------------------------------
def markers(out: Path) -> list[dict]:
    """Every commit marker of ``out`` (parsed here), in split then shard-number order."""
    found = []
    for split in SPLITS:
        for p in (Path(out) / split).glob("*_stats.json"):
            found.append(json.loads(p.read_text()))
    return sorted(found, key=lambda m: (SPLITS.index(m["split"]), m["shard"]))


def shard_paths(out: Path, split: str | None = None) -> list[Path]:
    return [Path(out) / m["split"] / m["file"] for m in markers(out)
            if m["file"] and m["count"] and (split is None or m["split"] == split)]


def read_rows(paths) -> list[dict]:
    """Every sample of the given shard files, read with h5py (arrays as stored, meta as the raw string)."""
    rows = []
    for path in paths:
        with h5py.File(path, "r") as f:
            metas = list(f["meta"].asstr()[()])
            arrays = {name: f[name][()] for name in f if name != "meta"}
        for i, meta in enumerate(metas):
            rows.append({"path": Path(path), "i": i, "meta": meta} | {k: a[i] for k, a in arrays.items()})
    return rows


def chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) stored array -> the (C, H, W) float32 tensor the reader must return."""
    a = image if image.ndim == 3 else image[..., None]
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return t.float() / 255.0 if a.dtype == np.uint8 else t.float()


def to_hwc_u8(t: torch.Tensor) -> np.ndarray:
    """A reader image tensor back to the stored uint8 (asserting it was exactly k / 255)."""
    u8 = torch.round(t * 255).to(torch.uint8)
    assert torch.equal(u8.float() / 255.0, t)
    a = u8.permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def dihedral(a: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of an (H, W[, C]) array."""
    return [np.rot90(b, k, axes=(0, 1)) for b in (a, a[:, ::-1]) for k in range(4)]


def windows_matching(image: np.ndarray, crop: np.ndarray) -> set[tuple[int, int]]:
    """Every (y0, x0) where ``crop`` equals ``image[y0:y0+h, x0:x0+w]``."""
    ch, cw = crop.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(image, (ch, cw), axis=(0, 1))
    target = crop if crop.ndim == 2 else crop.transpose(2, 0, 1)
    hits = np.all(win == target, axis=tuple(range(2, win.ndim)))
    return {(int(y), int(x)) for y, x in zip(*np.nonzero(hits), strict=True)}


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def copy_out(src: Path, tmp_path: Path, name: str = "out") -> Path:
    out = tmp_path / name
    shutil.copytree(src, out)
    return out


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def rewrite(path: Path, arrays: dict | None = None, chunks: dict | None = None, drop=()) -> None:
    """Rewrite a shard with h5py: same attrs and datasets, except ``arrays`` (replaced data), ``chunks``
    (replaced chunk shapes; None = contiguous) and ``drop`` (datasets left out)."""
    arrays, chunks = arrays or {}, chunks or {}
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        data = {name: f[name][()] for name in f}
        chunk = {name: f[name].chunks for name in f}
        dtype = {name: f[name].dtype for name in f}
    tmp = path.with_name("rewrite.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        for name in data:
            if name in drop:
                continue
            value = arrays.get(name, data[name])
            kw = {"chunks": chunks.get(name, chunk[name])}
            if name == "meta" and name not in arrays:
                kw["dtype"] = dtype[name]
            if kw["chunks"] is not None and (len(kw["chunks"]) != np.ndim(value) or any(
                    c > n for c, n in zip(kw["chunks"], np.shape(value), strict=True))):
                kw["chunks"] = (1, *np.shape(value)[1:])
            f.create_dataset(name, data=value, **kw)
    tmp.replace(path)


# -- datasets (built once) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def avg(tmp_path_factory):
    """GOPRO recipe on two 30-frame pans: c0 -> train (shards of 2 and 1), c1 -> val (one shard of 2)."""
    tmp = tmp_path_factory.mktemp("avg")
    for i in range(2):
        write_video(tmp / "clips" / f"c{i}.mkv", pan_frames(textured_image(40, 120, seed=i), 30, H, W, 0.75))
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(tmp / "clips"),), out=str(out), val_fraction=0.5, shard_size=2, seed=1,
                              device="cpu"))
    return SimpleNamespace(out=out, rows=read_rows(shard_paths(out)))


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """DIS-selected windows with blur maps (a 0.5 px/frame pan): one train split, shards of 3."""
    tmp = tmp_path_factory.mktemp("flow")
    clip = write_video(tmp / "clips" / "pan.mkv", pan_frames(textured_image(44, 80, seed=4), 44, H, W, 0.5))
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(clip),), out=str(out), frames=(7, 9), flow="dis", blur_map=True,
                              shard_size=3, device="cpu"))
    return SimpleNamespace(out=out, rows=read_rows(shard_paths(out)))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """`blursynth local`: 6 samples of 32 x 48 crops with masks, train and val, shards of 3."""
    tmp = tmp_path_factory.mktemp("local")
    bg = write_backgrounds(tmp / "bg", 2, 2, (48, 64))
    voc = write_voc(tmp / "VOC2012", {"2008_000001": [Shape("rect", (10, 10, 30, 28), 8)],
                                      "2008_000002": [Shape("disc", (30, 20, 10.0), 12)]}, size=(48, 64))
    out = tmp / "out"
    run_local(LocalConfig(backgrounds=(str(bg),), out=str(out), voc=str(voc), num_samples=6, crop=(H, W),
                          shard_size=3, val_fraction=0.4, seed=3, min_object_area=50, device="cpu"))
    return SimpleNamespace(out=out, rows=read_rows(shard_paths(out)))


# -- 1. items equal the stored arrays ------------------------------------------------------------------------
@pytest.mark.parametrize("split", [None, "train", "val"])
def test_folder_dataset_items_equal_h5_arrays(avg, split):
    ds = ShardDataset(avg.out, split=split)
    rows = read_rows(shard_paths(avg.out, split))
    assert len(ds) == len(rows) == (len(avg.rows) if split is None else sum(
        m["count"] for m in markers(avg.out) if m["split"] == split))
    assert ds.files == shard_paths(avg.out, split)
    for index, row in enumerate(rows):
        item = ds[index]
        assert set(item) == {"blur", "sharp", "meta", "index"}
        for key in ("blur", "sharp"):
            t = item[key]
            assert t.dtype == torch.float32 and t.shape == (3, H, W)
            assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
            assert torch.equal(t, chw(row[key]))
        assert isinstance(item["meta"], str) and item["meta"] == row["meta"]
        assert json.loads(item["meta"])["n_frames"] >= 3
        assert ds.meta(index) == json.loads(row["meta"])
        assert item["index"] == index
    ds.close()


def test_mask_and_blur_map_items(local, flow):
    # masks with both values (so the scaling to [0, 1] shows) and blur maps that are not all zero
    assert all(r["mask"].dtype == np.uint8 and 0 < (r["mask"] > 0).mean() < 1 for r in local.rows)
    assert all(r["blur_map"].dtype == np.float16 and (r["blur_map"] > 0).any() for r in flow.rows)
    ds = ShardDataset(local.out, keys=("blur", "sharp", "mask"))
    assert len(ds) == len(local.rows)
    for index, row in enumerate(local.rows):
        item = ds[index]
        assert item["mask"].dtype == torch.float32 and item["mask"].shape == (1, H, W)
        assert torch.equal(item["mask"], torch.from_numpy(row["mask"]).float()[None] / 255.0)
        assert float(item["mask"].max()) <= 1.0
        assert torch.equal(item["blur"], chw(row["blur"])) and torch.equal(item["sharp"], chw(row["sharp"]))

    ds = ShardDataset(flow.out, keys=("blur_map", "blur"))
    assert len(ds) == len(flow.rows)
    for index, row in enumerate(flow.rows):
        item = ds[index]
        assert set(item) == {"blur_map", "blur", "meta", "index"}
        bm = item["blur_map"]
        assert bm.dtype == torch.float32 and bm.shape == (1, H, W)
        assert np.array_equal(bm[0].numpy(), row["blur_map"].astype(np.float32))  # float16 values, not rescaled


def test_list_of_files_and_several_folders(avg, local, flow):
    files = shard_paths(avg.out)[::-1]  # an explicit order is kept
    ds = ShardDataset(files)
    assert ds.files == files and len(ds) == len(avg.rows)
    for index, row in enumerate(read_rows(files)):
        assert torch.equal(ds[index]["blur"], chw(row["blur"]))
    one = ShardDataset(str(files[0]))  # a single file, as str
    assert one.files == [files[0]] and len(one) == len(read_rows([files[0]]))

    ds = ShardDataset([avg.out, local.out, flow.out], split="train")
    paths = shard_paths(avg.out, "train") + shard_paths(local.out, "train") + shard_paths(flow.out, "train")
    rows = read_rows(paths)
    assert ds.files == paths and len(ds) == len(rows)
    for index, row in enumerate(rows):
        item = ds[index]
        assert torch.equal(item["sharp"], chw(row["sharp"])) and item["meta"] == row["meta"]

    mixed = ShardDataset([local.out, files[0]])  # a folder (every split) then a file
    assert mixed.files == shard_paths(local.out) + [files[0]]
    assert len(mixed) == len(local.rows) + len(read_rows([files[0]]))


# -- 2. crops ------------------------------------------------------------------------------------------------
def test_centre_crop_is_the_centre_slice(local):
    for crop, (y0, x0) in (((12, 20), (10, 14)), (16, (8, 16)), ((H, W), (0, 0)), ((32, 20), (0, 14))):
        ds = ShardDataset(local.out, crop=crop, keys=("blur", "sharp", "mask"), random_crop=False)
        ch, cw = (crop, crop) if isinstance(crop, int) else crop
        for index, row in enumerate(local.rows):
            item = ds[index]
            for key in ("blur", "sharp", "mask"):
                assert torch.equal(item[key], chw(row[key][y0 : y0 + ch, x0 : x0 + cw])), (crop, key)
    # an odd margin: the window starts at floor or ceil of half of it, never outside
    ds = ShardDataset(local.out, crop=(15, 15), random_crop=False)
    found = windows_matching(local.rows[0]["blur"], to_hwc_u8(ds[0]["blur"]))
    assert found & {(8, 16), (9, 17), (8, 17), (9, 16)}


def test_int_crop_equals_square_tuple(avg):
    a = ShardDataset(avg.out, crop=16, random_crop=False)
    b = ShardDataset(avg.out, crop=(16, 16), random_crop=False)
    assert a.crop == b.crop == (16, 16)
    for index in range(len(a)):
        assert torch.equal(a[index]["blur"], b[index]["blur"]) and a[index]["blur"].shape == (3, 16, 16)


def test_random_crops_in_bounds_varied_and_aligned(local):
    torch.manual_seed(0)
    ch, cw = 12, 20
    ds = ShardDataset(local.out, crop=(ch, cw), keys=("blur", "sharp", "mask"))
    row = local.rows[0]
    seen = set()
    for _ in range(40):
        item = ds[0]
        common = None
        for key in ("blur", "sharp", "mask"):
            t = item[key]
            assert t.shape == ((3 if key != "mask" else 1), ch, cw)
            found = windows_matching(row[key], to_hwc_u8(t))  # only in-bounds windows are searched
            assert found, f"{key}: the crop is no window of the stored image"
            common = found if common is None else common & found
        assert common, "blur, sharp and mask were cropped at different windows"
        assert len(windows_matching(row["blur"], to_hwc_u8(item["blur"]))) == 1  # textured: unambiguous
        seen |= common
    assert len(seen) >= 10  # 21 x 29 possible windows
    ys, xs = {y for y, _ in seen}, {x for _, x in seen}
    assert min(ys) >= 0 and max(ys) <= H - ch and min(xs) >= 0 and max(xs) <= W - cw
    assert len(ys) > 2 and len(xs) > 2


def test_full_size_random_crop_is_the_image(avg):
    ds = ShardDataset(avg.out, crop=(H, W))
    assert torch.equal(ds[0]["blur"], chw(avg.rows[0]["blur"]))


@pytest.mark.parametrize("crop", [H + 1, (H + 1, 8), (8, W + 1), (64, 64)])
def test_crop_larger_than_images_is_a_config_error(avg, crop):
    with pytest.raises(ConfigError, match="larger than"):
        ShardDataset(avg.out, crop=crop)


@pytest.mark.parametrize("crop", [0, -4, (0, 8), (8, 0), (-1, -1)])
def test_non_positive_crop_is_a_config_error(avg, crop):
    with pytest.raises(ConfigError, match="crop"):
        ShardDataset(avg.out, crop=crop)


# -- 3. augmentation -----------------------------------------------------------------------------------------
def _transforms_used(ds, rows, box, calls):
    """For ``calls`` draws of every item: the dihedral transform (index into ``dihedral``) that maps the
    stored crop ``box`` onto each key; asserts all keys agree. Returns the indices seen."""
    y0, x0, ch, cw = box
    used = set()
    for _ in range(calls):
        for index, row in enumerate(rows):
            item = ds[index]
            common = None
            for key in ds.keys:
                got = to_hwc_u8(item[key])
                options = dihedral(row[key][y0 : y0 + ch, x0 : x0 + cw])
                match = {k for k, o in enumerate(options) if o.shape == got.shape and np.array_equal(o, got)}
                assert match, f"{key}: not a flip/rotation of the crop"
                common = match if common is None else common & match
            assert common, "keys were flipped/rotated differently"
            assert len(common) == 1  # textured images: one transform explains the blur
            used |= common
    return used


def test_augment_square_crop_uses_all_eight_transforms_aligned(local):
    torch.manual_seed(1)
    ds = ShardDataset(local.out, crop=16, keys=("blur", "sharp", "mask"), augment=True, random_crop=False)
    used = _transforms_used(ds, local.rows[:2], (8, 16, 16, 16), calls=60)
    assert used == set(range(8))


@pytest.mark.parametrize("crop", [(12, 20), (20, 12), None])
def test_augment_non_square_never_rotates(local, crop):
    torch.manual_seed(2)
    ds = ShardDataset(local.out, crop=crop, keys=("blur", "sharp", "mask"), augment=True, random_crop=False)
    ch, cw = crop or (H, W)
    for index in range(len(ds)):
        for _ in range(5):
            item = ds[index]
            assert item["blur"].shape == (3, ch, cw) and item["mask"].shape == (1, ch, cw)
    box = ((H - ch) // 2, (W - cw) // 2, ch, cw)
    used = _transforms_used(ds, local.rows[:2], box, calls=40)
    assert used == {0, 2, 4, 6}  # identity, rot180, left-right and up-down flips: shape-preserving only


def test_no_augment_is_deterministic(local):
    ds = ShardDataset(local.out, crop=16, keys=("blur", "mask"), random_crop=False)
    first = [ds[i] for i in range(len(ds))]
    for i in range(len(ds)):
        assert torch.equal(ds[i]["blur"], first[i]["blur"]) and torch.equal(ds[i]["mask"], first[i]["mask"])


# -- 4. DataLoader workers, pickling ---------------------------------------------------------------------------
def _collect(loader) -> dict[int, dict]:
    got = {}
    for batch in loader:
        assert isinstance(batch["meta"], list) and all(isinstance(m, str) for m in batch["meta"])
        assert batch["blur"].dtype == torch.float32 and batch["blur"].ndim == 4
        for j, index in enumerate(batch["index"].tolist()):
            assert index not in got
            got[index] = {k: v[j] for k, v in batch.items() if k != "index"}
    return got


def test_dataloader_workers_equal_single_process(local):
    keys = ("blur", "sharp", "mask")
    ds = ShardDataset(local.out, crop=16, keys=keys, random_crop=False)
    _ = ds[0]  # a file is open in the parent before the workers start
    assert ds.open_files() == 1
    serial = _collect(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0))
    parallel = _collect(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2))
    assert sorted(serial) == sorted(parallel) == list(range(len(local.rows)))
    for index, row in enumerate(local.rows):
        for key in keys:
            assert torch.equal(parallel[index][key], serial[index][key])
            assert torch.equal(parallel[index][key], chw(row[key][8:24, 16:32]))
        assert parallel[index]["meta"] == row["meta"]


def test_dataloader_persistent_workers_random_crops(local):
    ds = ShardDataset(local.out, crop=(12, 20), keys=("blur", "mask"), augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=True, persistent_workers=True)
    for _ in range(2):  # two epochs on the same worker processes
        got = _collect(loader)
        assert sorted(got) == list(range(len(ds)))
        for index, item in got.items():
            assert item["blur"].shape == (3, 12, 20) and item["mask"].shape == (1, 12, 20)
            assert 0.0 <= float(item["blur"].min()) and float(item["blur"].max()) <= 1.0
            assert item["meta"] == local.rows[index]["meta"]


def test_dataloader_spawned_workers(avg):
    """Workers started with spawn receive a pickled dataset: no h5py handle may be in it."""
    ds = ShardDataset(avg.out, crop=16, random_crop=False)
    _ = ds[0]
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=1, multiprocessing_context="spawn")
    got = _collect(loader)
    assert sorted(got) == list(range(len(avg.rows)))
    for index, row in enumerate(avg.rows):
        assert torch.equal(got[index]["sharp"], chw(row["sharp"][8:24, 16:32]))


def test_dataset_pickles_without_open_handles(local):
    ds = ShardDataset(local.out, crop=16, keys=("blur", "mask"), random_crop=False)
    assert ds.open_files() == 0  # probed at construction, then closed
    before = [ds[i] for i in range(len(ds))]  # opens every shard
    assert ds.open_files() == len(ds.files) >= 2
    data = pickle.dumps(ds)
    assert ds.open_files() == len(ds.files)  # the original keeps its files open
    assert torch.equal(ds[0]["blur"], before[0]["blur"])
    clone = pickle.loads(data)
    assert clone.open_files() == 0 and clone.files == ds.files and len(clone) == len(ds)
    for i in range(len(ds)):
        assert torch.equal(clone[i]["blur"], before[i]["blur"]) and clone[i]["meta"] == before[i]["meta"]
    ds.close()
    assert ds.open_files() == 0
    assert torch.equal(ds[0]["mask"], before[0]["mask"])  # reopens after close
    assert ds.open_files() == 1
    pickle.dumps(clone)


# -- 5. only complete shards, errors ---------------------------------------------------------------------------
def test_orphans_and_partials_are_not_read(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    good = shard_paths(out)
    shutil.copy(good[0], out / "train" / "00007.h5")  # no marker: an orphan
    shutil.copy(good[0], out / "train" / "00008.h5.partial")
    shutil.copy(good[0], out / "val" / "00005.h5.partial")
    (out / "val" / "00006_stats.json.partial").write_text(json.dumps(markers(out)[0] | {"shard": 6}))
    ds = ShardDataset(out)
    assert ds.files == good and len(ds) == len(avg.rows)
    assert ShardDataset(out, split="val").files == shard_paths(out, "val")


def test_folder_with_only_incomplete_shards_is_an_input_error(avg, tmp_path):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    shutil.copy(shard_paths(avg.out)[0], out / "train" / "00000.h5")  # the marker was never written
    shutil.copy(shard_paths(avg.out)[0], out / "train" / "00001.h5.partial")
    with pytest.raises(InputError, match="no complete shard"):
        ShardDataset(out)


def test_missing_paths_and_empty_folders(avg, flow, tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        ShardDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="no such file or directory"):
        ShardDataset([avg.out, tmp_path / "nope.h5"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no complete shard"):
        ShardDataset(tmp_path / "empty")
    with pytest.raises(InputError, match="no complete shard in split 'val'"):
        ShardDataset(flow.out, split="val")


def test_unknown_or_no_keys_are_config_errors(avg):
    for keys in (("blur", "depth"), (), ("meta",), "blur"):
        with pytest.raises(ConfigError, match="keys"):
            ShardDataset(avg.out, keys=keys)


def test_key_missing_in_shard_names_the_file(avg, flow):
    first = shard_paths(avg.out)[0]
    with pytest.raises(InputError, match="mask") as exc:
        ShardDataset(avg.out, keys=("blur", "sharp", "mask"))
    assert str(first) in str(exc.value)
    with pytest.raises(InputError, match="blur_map"):
        ShardDataset([flow.out, avg.out], keys=("blur", "blur_map"))


def test_unreadable_shard_file_is_an_input_error(avg, tmp_path):
    bad = cut(shutil.copy(shard_paths(avg.out)[0], tmp_path / "cut.h5"), 0.5)
    with pytest.raises(InputError, match="unreadable shard") as exc:
        ShardDataset(bad)
    assert "cut.h5" in str(exc.value)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="text.h5"):
        ShardDataset(text)


MARKER_KEYS = ["format", "version", "split", "shard", "file", "layouts", "count", "height", "width", "sources",
               "failures", "windows", "final"]  # docs/shard-format.md, in the order markers are written


@pytest.mark.parametrize("name", ["avg", "flow", "local"])
def test_markers_have_the_documented_keys_and_parse_back(request, name):
    found = sorted(request.getfixturevalue(name).out.glob("*/*_stats.json"))
    assert found
    for path in found:
        data = json.loads(path.read_text())
        assert list(data)[: len(MARKER_KEYS)] == MARKER_KEYS, path
        optional = {"flow": ["rejections", "resume"]}.get(name, [])
        assert list(data)[len(MARKER_KEYS) :] == optional, path
        assert (data["format"], data["version"], data["split"]) == ("blursynth-shard-stats", 1, path.parent.name)
        marker = ShardMarker.from_dict(data)
        assert (marker.shard, marker.count, marker.file, marker.final) == (
            data["shard"], data["count"], data["file"], data["final"])
        assert list(marker.to_dict().items()) == list(data.items())


@pytest.mark.parametrize("bad", [[], {"count": 1}, {"shard": "3"}, {"shard": 1, "count": True},
                                 {"shard": 1, "file": "../x.h5"}, {"shard": 1, "rejections": {"x": 1.5}},
                                 {"shard": 1, "sources": []}, {"shard": 1, "height": "tall"}])
def test_malformed_markers_are_refused(bad):
    with pytest.raises(MarkerError):
        ShardMarker.from_dict(bad)


# -- 6. top-level package ------------------------------------------------------------------------------------
def test_top_level_reader_api(avg, tmp_path):
    from blursynth.shards.reader import read_shard

    assert blursynth.read_shard is read_shard
    assert blursynth.ShardDataset is ShardDataset
    assert {"read_shard", "ShardDataset"} <= set(blursynth.__all__)
    with pytest.raises(AttributeError):
        _ = blursynth.no_such_thing

    path = shard_paths(avg.out)[0]
    shard = blursynth.read_shard(path)
    rows = read_rows([path])
    assert len(shard) == len(rows)
    assert shard.attrs["format"] == "blursynth-shard" and shard.attrs["count"] == len(rows)
    assert set(shard.arrays) == {"blur", "sharp"}
    for i, row in enumerate(rows):
        assert np.array_equal(shard[i]["blur"], row["blur"]) and np.array_equal(shard[i]["sharp"], row["sharp"])
        assert shard[i]["meta"] == json.loads(row["meta"])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["images"] = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(InputError, match="not a blursynth shard"):
        blursynth.read_shard(foreign)
    with pytest.raises(InputError, match="unreadable shard"):
        blursynth.read_shard(tmp_path / "missing.h5")


def test_import_blursynth_does_not_import_torch():
    code = "import blursynth, sys; print('torch' in sys.modules, 'h5py' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


# -- 7. validator --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["avg", "flow", "local"])
def test_validator_accepts_good_outputs(request, name):
    d = request.getfixturevalue(name)
    v = validate_output(d.out)
    assert v.ok, v.to_dict()
    assert v.errors == [] and v.ignored == {"partial_files": [], "orphan_h5": []}
    assert v.samples == len(d.rows) == sum(m["count"] for m in markers(d.out))
    assert v.samples == json.loads((d.out / "manifest.json").read_text())["totals"]["samples"]
    assert [(s.split, s.shard, s.count) for s in v.shards] == [(m["split"], m["shard"], m["count"])
                                                                for m in markers(d.out)]
    assert [Path(s.path) for s in v.shards if s.count] == shard_paths(d.out)
    assert all(s.ok and not s.warnings for s in v.shards)
    assert json.loads(json.dumps(v.to_dict()))["ok"] is True


def test_validator_refuses_missing_folder(tmp_path, avg):
    with pytest.raises(OutputError, match="no such folder"):
        validate_output(tmp_path / "nope")
    with pytest.raises(OutputError, match="not a folder"):
        validate_output(shard_paths(avg.out)[0])


def _set_attr(key, value, shard="train/00000.h5"):
    def apply(out):
        with h5py.File(out / shard, "r+") as f:
            f.attrs[key] = value
    return apply


def _dataset(name, fn, shard="train/00000.h5"):
    """Replace dataset ``name`` by ``fn(old array)`` (one sample per chunk, as far as the new shape allows)."""
    def apply(out):
        path = out / shard
        with h5py.File(path, "r") as f:
            old = f[name][()]
        rewrite(path, arrays={name: fn(old)})
    return apply


def _meta(fn, shard="train/00000.h5"):
    def apply(out):
        path = out / shard
        with h5py.File(path, "r") as f:
            metas = list(f["meta"].asstr()[()])
        rewrite(path, arrays={"meta": np.array([fn(i, m) for i, m in enumerate(metas)],
                                                dtype=h5py.string_dtype("utf-8"))})
    return apply


def _blur_map(fn):
    def change(bm):
        bm = bm.copy()
        fn(bm)
        return bm
    return _dataset("blur_map", change)


def _foreign(out):
    path = out / "train" / "00000.h5"
    path.unlink()
    with h5py.File(path, "w") as f:
        f.attrs["count"] = 2
        f["images"] = np.zeros((2, H, W, 3), np.uint8)
        f["labels"] = np.arange(2)


def _no_n_frames(i, m):
    meta = json.loads(m)
    meta.pop("n_frames")
    return json.dumps(meta)


def _blur_is_sharp(out):
    path = out / "train" / "00000.h5"
    with h5py.File(path, "r") as f:
        sharp = f["sharp"][()]
    rewrite(path, arrays={"blur": sharp})


def _marker(fn, shard="train/00000_stats.json"):
    return lambda out: edit_json(out / shard, fn)


def _unlink(rel):
    return lambda out: (out / rel).unlink()


def _write(rel, text):
    return lambda out: (out / rel).write_text(text)


def _del_attr(out, key):
    with h5py.File(out / "train" / "00000.h5", "r+") as f:
        del f.attrs[key]


# (dataset, damage, the file the finding must name, a phrase of the finding)
DAMAGE = {
    "truncated": ("avg", lambda out: cut(out / "train" / "00000.h5", 0.5), "train/00000.h5",
                  "not a readable HDF5"),
    "empty file": ("avg", _write("train/00000.h5", ""), "train/00000.h5", "not a readable HDF5"),
    "text file": ("avg", _write("train/00000.h5", "hello\n" * 100), "train/00000.h5", "not a readable HDF5"),
    "foreign h5": ("avg", _foreign, "train/00000.h5", "format attribute"),
    "format attr": ("avg", _set_attr("format", "other-shard"), "train/00000.h5", "format attribute"),
    "format attr missing": ("avg", lambda out: _del_attr(out, "format"), "train/00000.h5", "format attribute"),
    "version attr": ("avg", _set_attr("version", 2), "train/00000.h5", "format version"),
    "count attr": ("avg", _set_attr("count", 5), "train/00000.h5", "attribute count="),
    "split attr": ("avg", _set_attr("split", "val"), "train/00000.h5", "attribute split='val'"),
    "shard attr": ("avg", _set_attr("shard", 3), "train/00000.h5", "attribute shard="),
    "height attr": ("avg", _set_attr("height", 64), "train/00000.h5", "expected uint8"),
    "width attr": ("avg", _set_attr("width", 47), "train/00000.h5", "expected uint8"),
    "blur uint16": ("avg", _dataset("blur", lambda a: a.astype(np.uint16) * 257), "train/00000.h5", "uint16"),
    "blur float": ("avg", _dataset("blur", lambda a: a.astype(np.float32) / 255), "train/00000.h5", "float32"),
    "sharp shape": ("avg", _dataset("sharp", lambda a: a[:, :, :-2]), "train/00000.h5", "sharp is uint8"),
    "blur gray": ("avg", _dataset("blur", lambda a: a[..., 0]), "train/00000.h5", "blur is uint8"),
    "sharp missing": ("avg", lambda out: rewrite(out / "train/00000.h5", drop=("sharp",)), "train/00000.h5",
                      "missing dataset 'sharp'"),
    "meta missing": ("avg", lambda out: rewrite(out / "train/00000.h5", drop=("meta",)), "train/00000.h5",
                     "missing dataset 'meta'"),
    "contiguous": ("avg", lambda out: rewrite(out / "train/00000.h5", chunks={"blur": None}), "train/00000.h5",
                   "chunks None"),
    "row chunks": ("avg", lambda out: rewrite(out / "train/00000.h5", chunks={"sharp": (1, H // 2, W, 3)}),
                   "train/00000.h5", "one image per chunk"),
    "two-image chunks": ("avg", lambda out: rewrite(out / "train/00000.h5", chunks={"blur": (2, H, W, 3)}),
                         "train/00000.h5", "one image per chunk"),
    "meta not json": ("avg", _meta(lambda i, m: m if i == 0 else m[:-3]), "train/00000.h5",
                      "meta[1] is not valid JSON"),
    "meta no n_frames": ("avg", _meta(_no_n_frames), "train/00000.h5", "meta[0] is not an object with n_frames"),
    "meta a list": ("avg", _meta(lambda i, m: "[1, 2]"), "train/00000.h5", "not an object"),
    "meta length": ("avg", _dataset("meta", lambda a: np.array([s.decode() for s in a][:1] * 3, dtype=object)),
                    "train/00000.h5", "meta has shape"),
    "blur_map nan": ("flow", _blur_map(lambda bm: bm.__setitem__((1, 5, 7), np.nan)), "train/00000.h5",
                     "blur_map[1] has NaN or Inf"),
    "blur_map inf": ("flow", _blur_map(lambda bm: bm.__setitem__((0, 0, 0), np.inf)), "train/00000.h5",
                     "blur_map[0] has NaN or Inf"),
    "blur_map -inf": ("flow", _blur_map(lambda bm: bm.__setitem__((2, 31, 47), -np.inf)), "train/00000.h5",
                      "blur_map[2] has NaN or Inf"),
    "blur_map negative": ("flow", _blur_map(lambda bm: bm.__setitem__((2, 3, 3), -0.5)), "train/00000.h5",
                          "blur_map[2] has negative"),
    "blur_map float32": ("flow", _dataset("blur_map", lambda a: a.astype(np.float32)), "train/00000.h5",
                         "blur_map is float32"),
    "blur_map shape": ("flow", _dataset("blur_map", lambda a: a[:, :-1]), "train/00000.h5", "blur_map is float16"),
    "mask uint16": ("local", _dataset("mask", lambda a: a.astype(np.uint16)), "train/00000.h5", "mask is uint16"),
    "mask float": ("local", _dataset("mask", lambda a: a.astype(np.float32) / 255), "train/00000.h5",
                   "mask is float32"),
    "mask rgb": ("local", _dataset("mask", lambda a: np.repeat(a[..., None], 3, -1)), "train/00000.h5",
                 "mask is uint8"),
    "blur equals sharp": ("avg", _blur_is_sharp, "train/00000.h5", "blur equals sharp in 2 of 2"),
    "marker count": ("avg", _marker(lambda m: m.update(count=5)), "train/00000.h5", "the marker says 5"),
    "marker count lower": ("avg", _marker(lambda m: m.update(count=1)), "train/00000.h5", "the marker says 1"),
    "marker names missing file": ("avg", _marker(lambda m: m.update(file="00042.h5")), "train/00042.h5",
                                  "missing"),
    "h5 deleted": ("avg", _unlink("train/00000.h5"), "train/00000.h5", "missing"),
    "marker without file": ("avg", _marker(lambda m: m.update(file=None)), "train/00000",
                            "names no file"),
    "marker not json": ("avg", _write("train/00000_stats.json", "{not json"), "train/00000_stats.json",
                        "unreadable marker"),
    "marker without shard": ("avg", _marker(lambda m: m.pop("shard")), "train/00000_stats.json",
                             "unreadable marker"),
    "manifest missing": ("avg", _unlink("manifest.json"), "manifest.json", "missing"),
    "manifest not json": ("avg", _write("manifest.json", '{"format": "blursynth-manifest", '), "manifest.json",
                          "unreadable"),
    "manifest foreign": ("avg", _write("manifest.json", '{"format": "something-else"}'), "manifest.json",
                         "not a blursynth manifest"),
    "manifest a list": ("avg", _write("manifest.json", "[]"), "manifest.json", "not a blursynth manifest"),
    "manifest running": ("avg", lambda out: edit_json(out / "manifest.json", lambda m: m.update(status="running")),
                         "manifest.json", "status 'running'"),
    "manifest drops a shard": ("avg", lambda out: edit_json(out / "manifest.json", lambda m: m["shards"].pop()),
                               "manifest.json", "shard val/00000 has 2 samples on disk, None in the manifest"),
    "manifest extra shard": ("avg", lambda out: edit_json(out / "manifest.json", lambda m: m["shards"].append(
        dict(m["shards"][0], shard=9))), "manifest.json", "shard train/00009 has None samples on disk, 2"),
    "manifest shard count": ("avg", lambda out: edit_json(out / "manifest.json", lambda m: m["shards"][1].update(
        count=7)), "manifest.json", "shard train/00001 has 1 samples on disk, 7 in the manifest"),
    "manifest totals": ("avg", lambda out: edit_json(out / "manifest.json", lambda m: m["totals"].update(
        samples=m["totals"]["samples"] + 1)), "manifest.json", "totals.samples 6 != 5"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_validator_reports_damage_by_file(request, tmp_path, case):
    name, damage, rel, phrase = DAMAGE[case]
    out = copy_out(request.getfixturevalue(name).out, tmp_path)
    damage(out)
    v = validate_output(out)  # never raises
    assert not v.ok
    target = str(out / rel)
    problems = v.errors + [e for s in v.shards for e in s.errors]
    hits = [p for p in problems if p.startswith(target) and phrase in p]
    assert hits, f"no finding on {target} with {phrase!r}: {problems}"
    assert all("\n" not in p for p in v.errors)
    shard_level = [s for s in v.shards if s.errors]
    if rel.endswith(".h5") or rel == "train/00000":
        # the finding is the shard's: its check is not ok and names it; the other shards stay ok
        assert [s.path for s in shard_level] == [target], v.to_dict()
        bad = shard_level[0]
        assert (bad.split, bad.shard) == ("train", 0)  # the marker's shard number
        assert all(s.ok for s in v.shards if s is not bad)
        assert v.samples == sum(s.count for s in v.shards if s.ok) < len(request.getfixturevalue(name).rows)
    else:
        assert all(s.ok for s in v.shards) and not shard_level  # a finding about the manifest or a marker
    json.dumps(v.to_dict())  # the report is serialisable


def test_damaged_shard_is_reported_among_good_ones(local, tmp_path):
    """Several findings at once: each shard reported on its own, the good one counted."""
    out = copy_out(local.out, tmp_path)
    cut(out / "train" / "00000.h5", 0.4)
    _set_attr("split", "train", shard="val/00000.h5")(out)
    v = validate_output(out)
    by_path = {Path(s.path).relative_to(out).as_posix(): s for s in v.shards}
    assert set(by_path) == {"train/00000.h5", "train/00001.h5", "val/00000.h5"}
    assert not by_path["train/00000.h5"].ok and not by_path["val/00000.h5"].ok and by_path["train/00001.h5"].ok
    assert v.samples == by_path["train/00001.h5"].count == 1 and not v.ok


def test_blur_equal_to_sharp_for_a_minority_is_accepted(flow, tmp_path):
    out = copy_out(flow.out, tmp_path)
    path = out / "train" / "00000.h5"
    with h5py.File(path, "r") as f:
        assert f["blur"].shape[0] == 3
        blur, sharp = f["blur"][()], f["sharp"][()]
    blur[0] = sharp[0]
    rewrite(path, arrays={"blur": blur})
    assert validate_output(out).ok  # 1 of 3 samples still
    blur[1] = sharp[1]
    rewrite(path, arrays={"blur": blur})
    v = validate_output(out)
    assert not v.ok and any("blur equals sharp in 2 of 3" in e for s in v.shards for e in s.errors)


def test_count_zero_marker_without_file_is_fine(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    (out / "train" / "00005_stats.json").write_text(json.dumps(
        markers(out)[0] | {"shard": 5, "file": None, "count": 0, "sources": {}}))
    v = validate_output(out)
    assert v.ok, v.to_dict()
    assert v.samples == len(avg.rows) and len(v.shards) == len(markers(avg.out)) + 1


def test_partials_and_orphans_are_listed_not_counted(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    first = shard_paths(out)[0]
    orphan = out / "train" / "00003.h5"
    partial = out / "train" / "00002.h5.partial"
    marker_partial = out / "val" / "00001_stats.json.partial"
    shutil.copy(first, orphan)
    shutil.copy(first, partial)
    marker_partial.write_text(json.dumps(markers(out)[0] | {"shard": 1, "split": "val"}))
    cut(partial, 0.3)  # partial files may be anything: they are not opened
    v = validate_output(out)
    assert v.ok, v.to_dict()
    assert v.samples == len(avg.rows)
    assert v.ignored["orphan_h5"] == [str(orphan)]
    assert sorted(v.ignored["partial_files"]) == sorted([str(partial), str(marker_partial)])
    assert [Path(s.path) for s in v.shards] == shard_paths(out)


# Contract violations found by these tests: the validator must report, never raise (validate.py docstring:
# "a corrupt, truncated or foreign file is a finding, never a crash").
def _gzip_corrupt_chunk(out):
    path = out / "train" / "00000.h5"
    with h5py.File(path, "r") as f:
        data = {n: f[n][()] for n in f}
        attrs = dict(f.attrs)
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        for n, a in data.items():
            if n == "meta":
                f.create_dataset(n, data=a, dtype=h5py.string_dtype("utf-8"))
            else:
                f.create_dataset(n, data=a, chunks=(1, *a.shape[1:]), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["blur"].id.get_chunk_info(1)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + 8 : info.byte_offset + 72] = bytes(64)  # bit rot inside one compressed chunk
    path.write_bytes(bytes(raw))


def _meta_ints(out):
    rewrite(out / "train" / "00000.h5", arrays={"meta": np.arange(2)})


def _meta_bad_utf8(out):
    rewrite(out / "train" / "00000.h5",
            arrays={"meta": np.array([b"\xff\xfe", b"{}"], dtype=h5py.string_dtype("utf-8"))})


def _blur_group(out):
    path = out / "train" / "00000.h5"
    with h5py.File(path, "r+") as f:
        del f["blur"]
        f.create_group("blur")


# case: (damage, the file the finding must name, the exception raised today, where and why)
CRASHES = {
    "corrupt gzip chunk": (_gzip_corrupt_chunk, "train/00000.h5", OSError,
                           "validate.py:140 f['blur'][i] raises OSError (filter returned failure) on a corrupt "
                           "compressed chunk; only h5py.File() is guarded"),
    "count attr not a number": (_set_attr("count", "many"), "train/00000.h5", ValueError,
                                "validate.py:93 int(got) raises ValueError on attrs['count'] = 'many'"),
    "version attr not a number": (_set_attr("version", "v1"), "train/00000.h5", ValueError,
                                  "validate.py:87 int(attrs['version']) raises ValueError on 'v1'"),
    "height attr not a number": (_set_attr("height", "tall"), "train/00000.h5", ValueError,
                                 "validate.py:102 int(attrs['height']) raises ValueError on 'tall'"),
    "meta not strings": (_meta_ints, "train/00000.h5", TypeError,
                         "validate.py:114 f['meta'].asstr() raises TypeError on an integer meta dataset"),
    "meta not utf-8": (_meta_bad_utf8, "train/00000.h5", UnicodeDecodeError,
                       "validate.py:114 asstr()[:] raises UnicodeDecodeError outside the json.loads try"),
    "blur is a group": (_blur_group, "train/00000.h5", AttributeError,
                        "validate.py:100 f['blur'].shape raises AttributeError when 'blur' is a group"),
    "marker count not a number": (_marker(lambda m: m.update(count="x")), "train/00000_stats.json", ValueError,
                                  "reader.py:35 ShardEntry.count int('x') raises ValueError (validate.py:196); "
                                  "list_shards only validates the marker's 'shard'"),
    "marker file not a string": (_marker(lambda m: m.update(file=5)), "train/00000_stats.json", TypeError,
                                 "reader.py:65 folder / 5 raises TypeError outside list_shards' try"),
    "manifest shard not an int": (lambda out: edit_json(out / "manifest.json", lambda m: m["shards"][0].update(
        shard="0")), "manifest.json", ValueError,
        "validate.py:199 f'{key[1]:05d}' raises ValueError when a manifest shard entry has shard '0' (or none)"),
    "manifest totals not an object": (lambda out: edit_json(out / "manifest.json", lambda m: m.update(
        totals=[5])), "manifest.json", AttributeError,
        "validate.py:201 (manifest.get('totals') or {}).get raises AttributeError on a list"),
}


@pytest.mark.parametrize("case", list(CRASHES))
def test_validator_never_crashes_on_malformed_content(avg, tmp_path, case):
    damage, rel, _, _ = CRASHES[case]
    out = copy_out(avg.out, tmp_path)
    damage(out)
    v = validate_output(out)
    assert not v.ok
    problems = v.errors + [e for s in v.shards for e in s.errors]
    assert any(p.startswith(str(out / rel)) for p in problems), problems


def test_corrupt_chunk_setup_is_real(avg, tmp_path):
    """The corrupted-chunk fixture above really damages only chunk 1 (the file still opens)."""
    out = copy_out(avg.out, tmp_path)
    _gzip_corrupt_chunk(out)
    with h5py.File(out / "train" / "00000.h5", "r") as f:
        assert f["blur"].compression == "gzip"
        assert np.array_equal(f["blur"][0], avg.rows[0]["blur"])
        with pytest.raises(OSError):
            f["blur"][1]


def test_reader_on_marker_with_bad_count_is_an_input_error(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    _marker(lambda m: m.update(count="x"))(out)
    with pytest.raises(InputError, match="00000_stats.json"):
        ShardDataset(out)


def test_validator_checks_marker_resolution(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    _marker(lambda m: m.update(height=999, width=7))(out)
    v = validate_output(out)
    assert not v.ok


# -- 8. train-check runs the validator first -------------------------------------------------------------------
def test_train_check_stops_on_a_tampered_dataset(avg, tmp_path):
    out = copy_out(avg.out, tmp_path)
    _set_attr("count", 9)(out)
    result = invoke("train-check", out, "--steps", "1", "--batch-size", "1", "--crop", "16")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "validation: FAILED" in result.output and "trained" not in result.output
    assert str(out / "train" / "00000.h5") in result.output
    report = json.loads((out / "train_check" / "report.json").read_text())
    assert report["passed"] is False and report["validation"]["ok"] is False
    assert "metrics" not in report and "gain_db" not in report
    bad = [s for s in report["validation"]["shards"] if not s["ok"]]
    assert [s["path"] for s in bad] == [str(out / "train" / "00000.h5")]
    assert any("attribute count=" in e and "9" in e for e in bad[0]["errors"])
    assert report["validation"]["samples"] == len(avg.rows) - 2


def test_train_check_on_a_missing_folder(tmp_path):
    result = invoke("train-check", tmp_path / "nope", "--steps", "1")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nope" in errors[0] and "no such folder" in errors[0], result.output
    assert not (tmp_path / "nope").exists()
