"""The reader's on-the-fly camera (``ShardDataset(camera=..., seed=...)``, issue 19): draws seeded by
(seed, epoch, index) whatever the DataLoader workers, the dataset's own CRF and ``sat_mask`` used, the sharp image
untouched, blur that went through a camera refused, a missing ``sat_mask`` warned about once.

Shards are tiny (24 x 32, a few samples) and written with ``ShardWriter``; the oracle for the stored-CRF path is
computed here with numpy from the stored arrays."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from test_camera_isp import correlated_image

from blursynth.camera import CameraConfig, camera_seed, draw_camera
from blursynth.data import ShardDataset
from blursynth.errors import ConfigError
from blursynth.sample import Sample
from blursynth.shards.writer import ShardWriter

H, W = 24, 32


def write_shard(out, shard: int, n: int, meta: dict, sat: bool = True, seed: int = 0):
    """One shard of ``n`` samples; blur with a clipped highlight and its sat_mask. Returns (path, samples)."""
    rng = np.random.default_rng(seed)
    w = ShardWriter(out, "train", shard, capacity=n, extra_datasets=("sat_mask",) if sat else ())
    samples = []
    for i in range(n):
        blur = (correlated_image(H, W, seed=seed * 10 + i) * 230).round().astype(np.uint8)
        blur[4:10, 6:14] = 255
        extras = {}
        if sat:
            mask = np.zeros((H, W, 3), np.uint8)
            mask[4:10, 6:14] = rng.integers(128, 256, (6, 8, 3), dtype=np.uint8)
            mask[15:20, 20:30, 0] = 64  # a channel clipped in a quarter of the exposure
            extras["sat_mask"] = mask
        s = Sample(blur=blur, sharp=blur[::-1].copy(), meta={"source": "clip.mp4", "center": i, **meta},
                   extras=extras)
        w.add(s)
        samples.append(s)
    marker = w.close({"sources": {}, "final": True})
    return out / "train" / marker.file, samples


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("cam")
    a, sa = write_shard(out, 0, 3, {"crf": "gamma", "gamma": 2.2}, seed=1)
    b, sb = write_shard(out, 1, 3, {"crf": "srgb", "gamma": None}, seed=2)
    return [a, b], sa + sb


def items(ds, workers: int) -> list[dict]:
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
    out = []
    for batch in loader:
        for j in range(len(batch["index"])):
            out.append({"blur": batch["blur"][j], "sharp": batch["sharp"][j], "camera": batch["camera"][j]})
    return out


def test_draws_come_from_seed_epoch_and_index(shards):
    paths, samples = shards
    ds = ShardDataset(paths, camera="rsblur", seed=5)
    cfg = CameraConfig()
    for index in range(len(ds)):
        item = ds[index]
        assert json.loads(item["camera"]) == draw_camera(cfg, camera_seed(5, 0, index))
        stored = samples[index]
        assert torch.equal(item["sharp"], torch.from_numpy(stored.sharp).permute(2, 0, 1).float() / 255)
        assert item["blur"].shape == (3, H, W)
        assert not torch.equal(item["blur"], torch.from_numpy(stored.blur).permute(2, 0, 1).float() / 255)
    ds.set_epoch(3)
    assert json.loads(ds[0]["camera"]) == draw_camera(cfg, camera_seed(5, 3, 0))


@pytest.mark.parametrize("index", [0, 4])  # a gamma-2.2 shard and an sRGB one
def test_saturation_only_camera_uses_the_stored_crf_and_sat_mask(shards, index):
    """Oracle in numpy: decode with the shard's CRF, add alpha * sat_mask / 255, clip, encode, round."""
    paths, samples = shards
    cfg = CameraConfig(noise=False, mosaic=False)
    ds = ShardDataset(paths, camera=cfg, seed=1)
    item = ds[index]
    alpha = json.loads(item["camera"])["alpha"]
    stored = samples[index]
    x = stored.blur / 255.0
    if index < 3:
        lin, enc = x**2.2, (lambda y: y ** (1 / 2.2))
    else:
        lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
        enc = lambda y: np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)  # noqa: E731
    expected = np.rint(255 * enc(np.clip(lin + alpha * stored.extras["sat_mask"] / 255.0, 0, 1)))
    got = (item["blur"].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - expected).max() <= 1
    assert (np.abs(got - expected) > 0).mean() < 0.05
    assert (expected != stored.blur).any()  # the stage did something


def test_dataloader_workers_do_not_change_the_draws(shards):
    paths, _ = shards
    ds = ShardDataset(paths, camera="rsblur", seed=2, crop=16, augment=True)
    runs = {workers: items(ds, workers) for workers in (0, 1, 2)}
    for workers in (1, 2):
        for a, b in zip(runs[0], runs[workers], strict=True):
            assert a["camera"] == b["camera"]
            assert torch.equal(a["blur"], b["blur"]) and torch.equal(a["sharp"], b["sharp"])
    ds.set_epoch(1)
    other = items(ds, 2)
    assert all(a["camera"] != b["camera"] for a, b in zip(runs[0], other, strict=True))
    assert not torch.equal(torch.stack([a["blur"] for a in runs[0]]), torch.stack([b["blur"] for b in other]))


def test_seeded_crops_and_flips_are_reproducible_and_unseeded_ones_use_the_global_rng(shards):
    paths, _ = shards
    a = ShardDataset(paths, crop=16, augment=True, seed=9)
    b = ShardDataset(paths, crop=16, augment=True, seed=9)
    torch.manual_seed(0)
    first = [a[i]["blur"] for i in range(len(a))]
    torch.manual_seed(1)
    assert all(torch.equal(x, b[i]["blur"]) for i, x in enumerate(first))
    plain = ShardDataset(paths, crop=16, augment=True)  # no seed: today's behaviour, torch's global RNG
    torch.manual_seed(3)
    one = [plain[i]["blur"] for i in range(len(plain))]
    torch.manual_seed(3)
    assert all(torch.equal(x, plain[i]["blur"]) for i, x in enumerate(one))
    assert "camera" not in plain[0]


def test_blur_that_went_through_a_camera_is_refused(tmp_path):
    path, _ = write_shard(tmp_path, 0, 2, {"crf": "gamma", "gamma": 2.2, "camera": {"camera": "rsblur"}})
    with pytest.raises(ConfigError) as info:
        ShardDataset([path], camera="rsblur")
    message = info.value.format_message()
    assert str(path) in message and "camera" in message and "\n" not in message
    assert len(ShardDataset([path])) == 2  # without a camera it reads as usual


def test_missing_sat_mask_warns_once_and_skips_saturation(tmp_path, caplog):
    paths = [write_shard(tmp_path, k, 2, {"crf": "gamma", "gamma": 2.2}, sat=False)[0] for k in range(2)]
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        ds = ShardDataset(paths, camera="rsblur")
        for i in range(len(ds)):
            ds[i]
    warnings = [r for r in caplog.records if "sat_mask" in r.getMessage()]
    assert len(warnings) == 1 and str(paths[0]) in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        ShardDataset(paths, camera=CameraConfig(saturation=False), seed=0)
    assert not caplog.records  # nothing to warn about when the stage is off


def test_camera_without_a_seed_warns_that_it_means_seed_0(shards, caplog):
    cfg = CameraConfig()
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        ds = ShardDataset(shards[0], camera=cfg)
    warnings = [r.getMessage() for r in caplog.records if "seed" in r.getMessage()]
    assert len(warnings) == 1 and "seed 0" in warnings[0] and "set_epoch" in warnings[0]
    assert json.loads(ds[0]["camera"]) == draw_camera(cfg, camera_seed(0, 0, 0))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="blursynth"):
        ShardDataset(shards[0], camera=cfg, seed=0)
        ShardDataset(shards[0])  # no camera: the seed does not matter
    assert not [r for r in caplog.records if "seed" in r.getMessage()]


def test_without_set_epoch_every_epoch_repeats_the_draws(shards):
    ds = ShardDataset(shards[0], camera="rsblur", seed=3)
    first = [ds[i]["camera"] for i in range(len(ds))]
    assert [ds[i]["camera"] for i in range(len(ds))] == first  # no set_epoch: the same draws again
    ds.set_epoch(1)
    assert all(ds[i]["camera"] != first[i] for i in range(len(ds)))


@pytest.mark.parametrize("camera", ["sony", 3])
def test_bad_camera_argument(shards, camera):
    with pytest.raises(ConfigError, match="camera"):
        ShardDataset(shards[0], camera=camera)
