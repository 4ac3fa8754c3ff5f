"""The bundled trainer's model, metrics and loop, and the exports (`blursynth export`), against oracles
(`blursynth train-check` itself: tests/test_train_check.py).

Datasets are built here with the real recipes from lossless FFV1 pan clips (``conftest.write_video``) and a
tiny VOC root (``objects_data``): ``avg`` (GOPRO recipe, two sources with dots in their names, both splits)
and ``loc`` (``blursynth local``, masks).

Oracles are our own: PSNR as 10 log10(1 / MSE) and SSIM (11 x 11 Gaussian window, sigma 1.5) in float64
numpy, the Gaussian pyramid with ``cv2.sepFilter2D`` (binomial taps, replicated border), expected export
names from the documented naming rule, exported pixels re-read with ``cv2`` / ``lmdb`` and compared with the
HDF5 arrays read with ``h5py``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import lmdb
import numpy as np
import pytest
import torch
from cli_helpers import invoke, run_ok
from conftest import pan_frames, write_video
from metric_oracle import own_psnr, own_ssim
from objects_data import small_local_run
from textures import textured_image

from blursynth.config import AverageConfig
from blursynth.data import ShardDataset
from blursynth.errors import OutputError
from blursynth.recipes.average import run_average
from blursynth.train.loop import train
from blursynth.train.metrics import psnr, ssim
from blursynth.train.model import MultiScaleDeblur, ResBlock, gaussian_down, multiscale_mse, pyramid

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}


# -- helpers -------------------------------------------------------------------------------------------------


def assert_clean_error(result, exit_code: int, *needles: str) -> str:
    """The given exit code, exactly one ``Error:`` line naming ``needles``, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def read_out(out: Path) -> list[dict]:
    """Every sample of every complete shard (marker order: train then val, by shard number), with h5py."""
    rows = []
    for split in ("train", "val"):
        for marker_path in sorted((out / split).glob("*_stats.json")):
            marker = json.loads(marker_path.read_text())
            if not marker.get("file"):
                continue
            path = out / split / marker["file"]
            with h5py.File(path, "r") as f:
                metas = [json.loads(t) for t in f["meta"].asstr()[()]]
                arrays = {k: f[k][()] for k in ("blur", "sharp", "mask") if k in f}
            for i, meta in enumerate(metas):
                rows.append({"split": split, "path": path, "meta": meta} | {k: a[i] for k, a in arrays.items()})
    return rows


def seq_of(meta: dict) -> str:
    """The documented sequence folder: the source key without its video extension (``local`` for local)."""
    source = meta["source"]
    p = Path(source)
    return p.stem if p.suffix.lower() in VIDEO_EXTS else source


def frame_of(meta: dict) -> str:
    return meta["name"] if "name" in meta else f"{meta['center']:06d}"


def flat_of(meta: dict) -> str:
    return f"{seq_of(meta).replace('.', '_')}_{frame_of(meta)}"


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    assert img.ndim == 2, f"{path}: a mask must be a single-channel PNG, got {img.shape}"
    return img


def own_down(img: np.ndarray) -> np.ndarray:
    """Our Gaussian down-sampling of (H, W) float64: binomial [1 4 6 4 1] / 16, replicated border, step 2."""
    k = np.array([1, 4, 6, 4, 1], np.float64) / 16
    return cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_REPLICATE)[::2, ::2]


def own_pyramid(t: torch.Tensor, levels: int = 3) -> list[np.ndarray]:
    """(B, C, H, W) -> list of (B, C, h, w) float64 arrays, finest first."""
    a = t.double().numpy()
    out = [a]
    for _ in range(levels - 1):
        prev = out[-1]
        out.append(np.stack([np.stack([own_down(c) for c in img]) for img in prev]))
    return out


def centre(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    y0, x0 = (h - side) // 2, (w - side) // 2
    return a[y0 : y0 + side, x0 : x0 + side]


def to01(a: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float64 in [0, 1]."""
    return a.astype(np.float64).transpose(2, 0, 1) / 255.0


def no_partials(folder: Path) -> None:
    assert not [str(p) for p in folder.rglob("*.partial*")]


# -- datasets ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def avg(tmp_path_factory):
    """GOPRO recipe on two 60-frame 48 x 64 pan clips named with dots; one per split; shards of 3."""
    tmp = tmp_path_factory.mktemp("avg")
    for i, name in enumerate(("cam.a.mkv", "cam.b.mkv")):
        write_video(tmp / "clips" / name, pan_frames(textured_image(64, 160, seed=i), 60, 48, 64, 0.75 + 0.5 * i))
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(tmp / "clips"),), out=str(out), val_fraction=0.5, shard_size=3, seed=1,
                              device="cpu"))
    return SimpleNamespace(out=out, rows=read_out(out))


@pytest.fixture(scope="module")
def loc(tmp_path_factory):
    """`blursynth local`: 6 samples of 64 x 80 with masks, one moving object each, both splits."""
    out = small_local_run(tmp_path_factory.mktemp("loc"))
    return SimpleNamespace(out=out, rows=read_out(out))


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    """Sources whose names hold a space and a non-ASCII letter (both legal file names)."""
    tmp = tmp_path_factory.mktemp("odd")
    write_video(tmp / "clips" / "my clip.mkv", pan_frames(textured_image(64, 160, seed=1), 30, 48, 64, 0.75))
    write_video(tmp / "clips" / "café.mkv", pan_frames(textured_image(64, 160, seed=2), 30, 48, 64, 0.75))
    out = tmp / "out"
    run_average(AverageConfig(inputs=(str(tmp / "clips"),), out=str(out), seed=1, device="cpu"))
    return SimpleNamespace(out=out, rows=read_out(out))


# -- 1. model --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(32, 48), (45, 37), (17, 30)])
def test_model_outputs_three_scales_finest_first(hw):
    h, w = hw
    torch.manual_seed(0)
    model = MultiScaleDeblur(width=8, blocks=1)
    blur = torch.rand(2, 3, h, w)
    outs = model(blur)
    assert isinstance(outs, list) and len(outs) == 3
    h2, w2 = math.ceil(h / 2), math.ceil(w / 2)
    h4, w4 = math.ceil(h2 / 2), math.ceil(w2 / 2)
    assert [tuple(o.shape) for o in outs] == [(2, 3, h, w), (2, 3, h2, w2), (2, 3, h4, w4)]
    if h % 4 == 0 and w % 4 == 0:
        assert outs[1].shape[-2:] == (h // 2, w // 2) and outs[2].shape[-2:] == (h // 4, w // 4)


@pytest.mark.parametrize("hw", [(32, 48), (45, 37)])
def test_untrained_model_is_the_identity_on_the_blurry_pyramid(hw):
    torch.manual_seed(1)
    model = MultiScaleDeblur()  # default widths: the tail convs start at zero
    blur = torch.rand(2, 3, *hw)
    with torch.no_grad():
        outs = model(blur)
    assert torch.equal(outs[0], blur)
    for o, ref in zip(outs, own_pyramid(blur), strict=True):
        np.testing.assert_allclose(o.double().numpy(), ref, atol=1e-6)
    for o, lv in zip(outs, pyramid(blur, 3), strict=True):
        assert torch.equal(o, lv)


def test_residual_is_added_to_the_blurry_input_of_each_scale():
    """Noroozi et al.: with a zero tail weight and tail bias c, a scale outputs its blurry image + c."""
    torch.manual_seed(2)
    model = MultiScaleDeblur(width=8, blocks=1)
    blur = torch.rand(1, 3, 24, 32)
    levels = pyramid(blur, 3)
    with torch.no_grad():
        model.nets[0].tail.bias.copy_(torch.tensor([0.1, -0.2, 0.05]))
        outs = model(blur)
    np.testing.assert_allclose((outs[0] - levels[0]).numpy(), np.broadcast_to(
        np.array([0.1, -0.2, 0.05], np.float32)[None, :, None, None], outs[0].shape), atol=1e-6)
    assert torch.equal(outs[1], levels[1]) and torch.equal(outs[2], levels[2])


def test_resblock_has_no_relu_after_the_addition():
    block = ResBlock(4)
    x = -torch.rand(1, 4, 8, 8) - 0.5  # all negative
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.zero_()
            conv.bias.zero_()
        y = block(x)
    assert torch.equal(y, x)  # a ReLU after the shortcut would give 0 everywhere
    assert (y < 0).all()

    torch.manual_seed(3)
    block = ResBlock(4)  # random weights: output is exactly x + conv2(relu(conv1(x)))
    x = -3 * torch.rand(1, 4, 8, 8) - 1
    with torch.no_grad():
        y = block(x)
        expected = x + block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(y, expected)
    assert (y < 0).any()


@pytest.mark.parametrize("hw", [(16, 16), (15, 22)])
def test_gaussian_down_of_a_constant_is_constant_and_matches_a_binomial_filter(hw):
    const = torch.full((1, 3, *hw), 0.37)
    down = gaussian_down(const)
    assert down.shape[-2:] == (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
    torch.testing.assert_close(down, torch.full_like(down, 0.37))
    x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(4))
    np.testing.assert_allclose(gaussian_down(x).double().numpy(), own_pyramid(x, 2)[1], atol=1e-6)


def test_multiscale_mse():
    g = torch.Generator().manual_seed(5)
    sharp = torch.rand(2, 3, 24, 32, generator=g)
    assert float(multiscale_mse(pyramid(sharp, 3), sharp)) == 0.0
    outs = [torch.rand(2, 3, 24, 32, generator=g), torch.rand(2, 3, 12, 16, generator=g),
            torch.rand(2, 3, 6, 8, generator=g)]
    targets = own_pyramid(sharp)
    expected = np.mean([np.mean((o.double().numpy() - t) ** 2) for o, t in zip(outs, targets, strict=True)])
    assert float(multiscale_mse(outs, sharp)) == pytest.approx(expected, rel=1e-5)


# -- 2. metrics ------------------------------------------------------------------------------------------------
def test_psnr_is_10_log10_of_one_over_mse():
    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(3, 3, 16, 20, generator=g), torch.rand(3, 3, 16, 20, generator=g)
    got = psnr(x, y)
    assert got.shape == (3,)
    for i in range(3):
        assert float(got[i]) == pytest.approx(own_psnr(x[i].numpy(), y[i].numpy()), abs=1e-4)


def test_masked_psnr_uses_only_pixels_above_one_half():
    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(2, 3, 16, 20, generator=g), torch.rand(2, 3, 16, 20, generator=g)
    mask = torch.rand(2, 1, 16, 20, generator=g)
    # make the outside very different so that counting it would show
    y = torch.where(mask > 0.5, y, 1 - x)
    got = psnr(x, y, mask)
    for i in range(2):
        sel = np.broadcast_to(mask[i].numpy() > 0.5, (3, 16, 20))
        assert float(got[i]) == pytest.approx(own_psnr(x[i].numpy(), y[i].numpy(), sel), abs=1e-4)
        assert float(got[i]) != pytest.approx(own_psnr(x[i].numpy(), y[i].numpy()), abs=0.1)


def test_psnr_empty_mask_is_nan_and_identical_is_inf():
    g = torch.Generator().manual_seed(8)
    x, y = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[1, :, 2:5, 3:6] = 1.0
    got = psnr(x, y, mask)
    assert math.isnan(float(got[0])) and math.isfinite(float(got[1]))
    mask[0] = 0.5  # not > 0.5: still empty
    assert math.isnan(float(psnr(x, y, mask)[0]))
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()


def test_ssim_identity_noise_and_numpy_reference():
    g = torch.Generator().manual_seed(9)
    x = torch.rand(1, 3, 32, 40, generator=g)
    assert float(ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-5)
    noise = torch.randn(1, 3, 32, 40, generator=g)
    values = [float(ssim(x, (x + s * noise).clamp(0, 1))[0]) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] < 1.0
    smooth = torch.from_numpy(cv2.GaussianBlur(x[0].permute(1, 2, 0).numpy(), (5, 5), 1.0)).permute(2, 0, 1)[None]
    for a, b in ((x, smooth), (x, (x + 0.1 * noise).clamp(0, 1)), (smooth, torch.rand(1, 3, 32, 40, generator=g))):
        assert float(ssim(a, b)[0]) == pytest.approx(own_ssim(a[0].numpy(), b[0].numpy()), abs=1e-4)
    batch = ssim(torch.cat([x, smooth]), torch.cat([smooth, smooth]))
    assert batch.shape == (2,) and float(batch[1]) == pytest.approx(1.0, abs=1e-5)


# -- 3. trainer ------------------------------------------------------------------------------------------------
def test_training_loss_decreases_on_a_fixed_batch(avg):
    ds = ShardDataset(avg.out, split="train", crop=32, random_crop=False)  # centre crops: the same every step
    n = len(ds)
    assert 3 <= n <= 8
    settings = SimpleNamespace(width=8, blocks=1, lr=2e-3, steps=40, batch_size=n, workers=0, seed=0)
    torch.manual_seed(0)
    model, history, seconds = train(ds, settings, "cpu")
    assert len(history) == 40 and all(math.isfinite(v) for v in history) and seconds > 0
    # the untrained model is the identity: the first loss is the blurry pyramid's multi-scale MSE
    blur = torch.stack([ds[i]["blur"] for i in range(n)])
    sharp = torch.stack([ds[i]["sharp"] for i in range(n)])
    expected = np.mean([np.mean((b - s) ** 2) for b, s in zip(own_pyramid(blur), own_pyramid(sharp), strict=True)])
    assert history[0] == pytest.approx(expected, rel=1e-4)
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.9 * first, history
    assert isinstance(model, MultiScaleDeblur)


# -- 6. exports ------------------------------------------------------------------------------------------------
DATASETS = ["avg", "loc"]


@pytest.fixture(params=DATASETS)
def ds(request):
    return request.getfixturevalue(request.param)


def export_ok(out: Path, dest: Path, layout: str):
    result = invoke("export", out, dest, "--layout", layout)
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    return result


def test_export_gopro(ds, tmp_path):
    dest = tmp_path / "gopro"
    result = export_ok(ds.out, dest, "gopro")
    assert f"exported {len(ds.rows)} samples" in result.output
    # issue 17: no plain mean in these shards, so no blur/ (tests/test_export_layouts.py); val is GOPRO's test/
    kinds = ["blur_gamma", "sharp"] + (["mask"] if "mask" in ds.rows[0] else [])
    expected = set()
    for r in ds.rows:
        base = dest / {"train": "train", "val": "test"}[r["split"]] / seq_of(r["meta"])
        name = f"{frame_of(r['meta'])}.png"
        assert re.fullmatch(r"\d{6}\.png", name)
        for kind in kinds:
            expected.add(base / kind / name)
        np.testing.assert_array_equal(read_rgb(base / "blur_gamma" / name), r["blur"])
        np.testing.assert_array_equal(read_rgb(base / "sharp" / name), r["sharp"])
        if "mask" in r:
            np.testing.assert_array_equal(read_gray(base / "mask" / name), r["mask"])
    assert len(expected) == len(ds.rows) * len(kinds)
    assert {p for p in dest.rglob("*") if p.is_file()} == expected
    no_partials(dest)


def test_export_basicsr(ds, tmp_path):
    dest = tmp_path / "bsr"
    export_ok(ds.out, dest, "basicsr")
    kinds = ["blur", "sharp"] + (["mask"] if "mask" in ds.rows[0] else [])
    for split in ("train", "val"):
        rows = [r for r in ds.rows if r["split"] == split]
        names = {f"{flat_of(r['meta'])}.png" for r in rows}
        assert len(names) == len(rows)
        for kind in kinds:
            assert {p.name for p in (dest / split / kind).iterdir()} == names
        assert sorted(p.name for p in (dest / split).iterdir()) == sorted([*kinds, "meta_info.txt"])
        lines = (dest / split / "meta_info.txt").read_text().splitlines()
        assert len(lines) == len(rows)
        assert sorted(lines) == sorted(f"{flat_of(r['meta'])}.png ({r['sharp'].shape[0]},{r['sharp'].shape[1]},3)"
                                       for r in rows)
        assert {line.strip().split(" ")[0] for line in lines} == names  # BasicSR's meta_info_file parse
        for name in names:
            assert name.count(".") == 1 and name.endswith(".png"), name
        for r in rows:
            name = f"{flat_of(r['meta'])}.png"
            np.testing.assert_array_equal(read_rgb(dest / split / "blur" / name), r["blur"])
            np.testing.assert_array_equal(read_rgb(dest / split / "sharp" / name), r["sharp"])
            if "mask" in r:
                np.testing.assert_array_equal(read_gray(dest / split / "mask" / name), r["mask"])
    dotted = {r["meta"]["source"] for r in ds.rows} - {"local"}
    if dotted:  # the average dataset: sources named with dots
        assert dotted == {"cam.a.mkv", "cam.b.mkv"}
        assert any("cam_a_" in p.name for p in dest.rglob("*.png"))  # the dots of "cam.a" replaced
    no_partials(dest)


def read_lmdb(path: Path) -> dict[str, bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with env.begin(write=False) as txn:
            return {bytes(k).decode("ascii"): bytes(v) for k, v in txn.cursor()}
    finally:
        env.close()


def test_export_lmdb(ds, tmp_path):
    dest = tmp_path / "lmdb"
    export_ok(ds.out, dest, "lmdb")
    kinds = ["blur", "sharp"] + (["mask"] if "mask" in ds.rows[0] else [])
    for split in ("train", "val"):
        rows = [r for r in ds.rows if r["split"] == split]
        assert sorted(p.name for p in (dest / split).iterdir()) == sorted(f"{k}.lmdb" for k in kinds)
        dbs = {}
        for kind in kinds:
            db = dest / split / f"{kind}.lmdb"
            assert (db / "data.mdb").is_file() and (db / "meta_info.txt").is_file()
            dbs[kind] = read_lmdb(db)
            lines = (db / "meta_info.txt").read_text().splitlines()
            assert len(lines) == len(rows)
            c = 1 if kind == "mask" else 3
            assert all(re.fullmatch(rf"[^ .]+\.png \(\d+,\d+,{c}\) 3", line) for line in lines), lines
            assert {line.split(".")[0] for line in lines} == set(dbs[kind])  # BasicSR's key derivation
            for line in lines:
                key = line.split(".")[0]
                img = next(r[kind] for r in rows if flat_of(r["meta"]) == key)
                assert line == f"{key}.png ({img.shape[0]},{img.shape[1]},{c}) 3"
        keys = set(dbs["blur"])
        assert keys == {flat_of(r["meta"]) for r in rows} and len(keys) == len(rows)
        assert all(set(d) == keys for d in dbs.values())
        assert all("." not in k and not k.endswith("png") for k in keys)
        for r in rows:
            key = flat_of(r["meta"])
            for kind in kinds:
                buf = np.frombuffer(dbs[kind][key], np.uint8)
                assert dbs[kind][key][:8] == b"\x89PNG\r\n\x1a\n"
                if kind == "mask":
                    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
                    assert img.ndim == 2
                else:
                    img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                np.testing.assert_array_equal(img, r[kind])
    no_partials(dest)


# -- export errors -----------------------------------------------------------------------------------------------
def test_export_non_empty_dest_needs_overwrite(avg, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("keep me")
    assert_clean_error(invoke("export", avg.out, dest, "--layout", "basicsr"), 2, "not empty")
    assert (dest / "stale.txt").read_text() == "keep me" and len(list(dest.iterdir())) == 1
    result = invoke("export", avg.out, dest, "--layout", "basicsr", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (dest / "stale.txt").exists()
    assert (dest / "train" / "meta_info.txt").is_file() and (dest / "val" / "meta_info.txt").is_file()


def test_export_overwrite_that_fails_keeps_the_previous_export(avg, tmp_path, monkeypatch):
    """--overwrite stages the new export beside DEST: a failing (or interrupted) export leaves the old one whole
    and no staging folder behind; a successful one replaces it."""
    import blursynth.shards.export as export_module

    dest = tmp_path / "dest"
    run_ok("export", avg.out, dest, "--layout", "basicsr")
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OutputError(f"{dest}/train/blur/x.png: cannot write (No space left on device)")

    monkeypatch.setattr(export_module, "_export_folders", disk_full)
    assert_clean_error(invoke("export", avg.out, dest, "--layout", "gopro", "--overwrite"), 1, "No space")
    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]  # no staging folder left
    monkeypatch.undo()
    run_ok("export", avg.out, dest, "--layout", "gopro", "--overwrite")
    assert (dest / "test").is_dir() and not (dest / "val").exists() and not (dest / "train" / "meta_info.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_export_into_an_existing_empty_dest_that_fails_leaves_it_empty(avg, tmp_path, monkeypatch):
    """An interrupted export into a DEST that existed empty leaves it empty, not half an export."""
    import blursynth.shards.export as export_module

    dest = tmp_path / "dest"
    dest.mkdir()
    real, calls = export_module.write_gopro_sample, []

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_module, "write_gopro_sample", interrupted)
    result = invoke("export", avg.out, dest, "--layout", "gopro")
    assert result.exit_code != 0 and calls and "Traceback" not in result.output
    assert dest.is_dir() and not any(dest.iterdir())


def test_export_into_out_is_refused(avg, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(avg.out, out)
    before = sorted(str(p) for p in out.rglob("*"))
    assert_clean_error(invoke("export", out, out / "exported", "--layout", "gopro"), 2, "exported")
    assert_clean_error(invoke("export", out, out, "--layout", "gopro"), 2)
    assert sorted(str(p) for p in out.rglob("*")) == before


def test_export_overwrite_of_a_dest_containing_out_keeps_out(avg, tmp_path):
    parent = tmp_path / "parent"
    shutil.copytree(avg.out, parent / "out")
    result = invoke("export", parent / "out", parent, "--layout", "gopro", "--overwrite")
    assert (parent / "out" / "manifest.json").is_file(), f"OUT was deleted: {result.output}"
    assert_clean_error(result, 2)


def test_export_missing_or_empty_out_and_dest_file(avg, tmp_path):
    assert_clean_error(invoke("export", tmp_path / "nope", tmp_path / "d1", "--layout", "gopro"), 1, "nope")
    assert not (tmp_path / "d1").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(invoke("export", empty, tmp_path / "d2", "--layout", "basicsr"), 1, "no complete")
    assert not (tmp_path / "d2").exists()  # created by the call, removed on failure
    (tmp_path / "afile").write_text("x")
    assert_clean_error(invoke("export", avg.out, tmp_path / "afile", "--layout", "lmdb"), 1, "afile")
    assert (tmp_path / "afile").read_text() == "x"


def test_export_unknown_layout_exits_2(avg, tmp_path):
    result = invoke("export", avg.out, tmp_path / "d", "--layout", "zip")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "--layout" in result.output
    assert not (tmp_path / "d").exists()
    assert invoke("export", avg.out, tmp_path / "d").exit_code == 2  # --layout is required


@pytest.mark.parametrize("layout", ["gopro", "basicsr", "lmdb"])
@pytest.mark.parametrize("dest_exists", [False, True])
def test_export_failure_mid_way_leaves_nothing_partial(avg, tmp_path, layout, dest_exists):
    out = tmp_path / "out"
    shutil.copytree(avg.out, out)
    second = out / "train" / "00001.h5"  # the first shard is exported, then this one fails to open
    assert second.is_file()
    second.write_bytes(second.read_bytes()[: second.stat().st_size // 2])
    dest = tmp_path / "dest"
    if dest_exists:
        dest.mkdir()
    assert_clean_error(invoke("export", out, dest, "--layout", layout), 1, "00001.h5")
    if dest_exists:
        assert dest.is_dir()
        no_partials(dest)
        if layout == "lmdb":
            assert not list(dest.rglob("*.lmdb"))  # no database is renamed into place half-built
    else:
        assert not dest.exists()


def test_export_lmdb_non_ascii_source_is_handled(odd_names, tmp_path):
    result = invoke("export", odd_names.out, tmp_path / "lm", "--layout", "lmdb")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_export_basicsr_meta_info_first_token_is_the_file(odd_names, tmp_path):
    dest = tmp_path / "bsr"
    export_ok(odd_names.out, dest, "basicsr")
    for line in (dest / "train" / "meta_info.txt").read_text().splitlines():
        first = line.strip().split(" ")[0]
        assert (dest / "train" / "blur" / first).is_file(), line
        assert (dest / "train" / "sharp" / first).is_file(), line
