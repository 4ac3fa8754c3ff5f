"""``blursynth train-check``: validate shards, train the bundled model briefly, measure the gain.

The check passes when the output validates (``shards/validate.py``) and the model, trained for ``steps``
Adam steps on random crops of ``train``, beats the identity (the blurry input) on ``val`` by at least
``min_gain_db`` dB PSNR. Without a ``val`` split the last ``holdout`` fraction of every train shard is held
out: shards hold one source's windows in time order, so the held-out windows are the end of each source and
share no frame with the training windows of back-to-back recipes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from blursynth.config.train import TrainCheckConfig
from blursynth.errors import InputError, OutputError
from blursynth.shards.files import atomic_write_json
from blursynth.shards.listing import list_shards
from blursynth.shards.manifest import check_out
from blursynth.shards.reader import ShardReader
from blursynth.shards.validate import validate_output

log = logging.getLogger("blursynth.train")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clips"


EXAMPLE_CLIP = EXAMPLES / "pan_zoom.mp4"


def build_example_dataset(out: Path) -> Path:
    """The quick check's data: the bundled camera-motion clip averaged with the GOPRO recipe (16 pairs).

    Only the global-blur clip: after 300 steps the tiny model gains 1.4-3.9 dB on its held-out windows, but on
    the moving-object clip it still *loses* 1-4 dB (it sharpens the static background too; telling local blur
    from sharp texture is the hard part LODE is about and needs far longer training than a 2-minute check).
    """
    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    if not EXAMPLE_CLIP.is_file():
        raise InputError(f"{EXAMPLE_CLIP}: the bundled example clip is missing; pass an OUT folder to check")
    run_average(AverageConfig(inputs=(str(EXAMPLE_CLIP),), out=str(out), recipe="gopro", seed=0, shard_size=100,
                              device="cpu"))
    return out


def _splits(out: Path, holdout: float, keys: tuple[str, ...], crop: int | None = None,
            eval_crop: int | None = None):
    """(train dataset, eval dataset, how eval was chosen).

    Training items are random ``crop`` crops; evaluation items are centre crops of ``eval_crop`` reduced to
    the smallest evaluated image side (and to a multiple of 4), so that every evaluated sample fits.

    Raises:
        InputError: no train samples, too few to hold some out, or images smaller than ``crop``.
    """
    import torch

    from blursynth.data import ShardDataset

    listing = list_shards(out)
    train_shards, val_shards = listing.with_samples("train"), listing.with_samples("val")
    if not train_shards:
        raise InputError(f"{out}: no train samples to train on")
    for entry in train_shards if crop is not None else ():
        h, w = entry.marker.height, entry.marker.width  # the validator checked them against the file
        if h < crop or w < crop:
            raise InputError(f"{entry.path}: {w}x{h} images are smaller than the {crop}px crop; "
                             "pass a smaller --crop")
    eval_shards = val_shards or train_shards
    if eval_crop is not None:
        side = min(eval_crop, *(min(e.marker.height, e.marker.width) for e in eval_shards))
        eval_crop = side - side % 4
    train = ShardDataset([e.path for e in train_shards], keys=keys, crop=crop)
    evaluation = ShardDataset([e.path for e in eval_shards], keys=keys, crop=eval_crop, random_crop=False)
    if val_shards:
        return train, evaluation, "val split"
    train_idx, eval_idx = [], []
    position = 0
    for n in train.lengths:
        k = max(1, math.ceil(holdout * n)) if n > 1 else 0
        train_idx += range(position, position + n - k)
        eval_idx += range(position + n - k, position + n)
        position += n
    if not eval_idx or not train_idx:
        raise InputError(f"{out}: too few samples to hold some out for evaluation")
    return (torch.utils.data.Subset(train, train_idx), torch.utils.data.Subset(evaluation, eval_idx),
            f"last {holdout:.0%} of every train shard")


def run_train_check(cfg: TrainCheckConfig, echo=None) -> tuple[dict, bool]:
    """Validate, train, evaluate; write ``report.json`` and triptychs.

    Args:
        echo: called with progress lines (the CLI prints them); None logs them.

    Returns:
        (report, passed).

    Raises:
        InputError: nothing to check (no output, no train samples, images smaller than the crop).
    """
    import torch

    from blursynth.device import resolve_device_name
    from blursynth.train.loop import evaluate, save_triptychs, train

    say = echo or log.info
    t_start = time.perf_counter()
    device = resolve_device_name(cfg.device)
    tmp = None
    if cfg.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="blursynth-check-")
        out = build_example_dataset(Path(tmp.name) / "out")
        say(f"built the example dataset from {EXAMPLE_CLIP.name} (GOPRO recipe) in "
            f"{time.perf_counter() - t_start:.1f} s")
    else:
        out = Path(cfg.out)
        if not out.is_dir():
            raise InputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    report_dir = Path(cfg.report_dir) if cfg.report_dir else (Path("train_check") if cfg.out is None else
                                                              out / "train_check")
    check_out(report_dir)  # before minutes of training, not after
    try:
        validation = validate_output(out)
        report: dict = {"format": "blursynth-train-check", "version": 1, "out": str(out) if cfg.out else "(example)",
                        "settings": asdict(cfg) | {"device": device}, "validation": validation.to_dict()}
        say(f"validation: {'ok' if validation.ok else 'FAILED'}, {validation.samples} samples in "
            f"{len(validation.shards)} shards")
        if not validation.ok:
            problems = validation.errors + [e for s in validation.shards for e in s.errors]
            for p in problems[:5]:
                say(f"  {p}")
            report["passed"] = False
            _write_report(report_dir, report)
            return report, False
        has_mask = _all_have(out, "mask")
        keys = ("blur", "sharp", "mask") if has_mask else ("blur", "sharp")
        train_ds, eval_ds, how = _splits(out, cfg.holdout, keys, cfg.crop, cfg.eval_crop)
        torch.manual_seed(cfg.seed)
        model, history, seconds = train(train_ds, cfg, device)
        batch = min(cfg.batch_size, len(train_ds))  # what the loader really takes per step
        img_s = cfg.steps * batch / max(seconds, 1e-9)
        say(f"trained {cfg.steps} steps x {batch} crops of {cfg.crop}px on {device} in {seconds:.1f} s "
            f"({img_s:.1f} img/s); loss {history[0]:.5f} -> {np.mean(history[-20:]):.5f}")
        metrics = evaluate(model, eval_ds, cfg, device)
        if "psnr" not in metrics["model"]:  # every restored image has NaN/inf pixels
            say(f"FAILED: the model's outputs are not finite (training diverged; lower --lr {cfg.lr:g})")
            report.update(metrics=metrics, passed=False, reason="training diverged: model outputs are not finite")
            _write_report(report_dir, report)
            return report, False
        gain = metrics["model"]["psnr"] - metrics["identity"]["psnr"]
        passed = bool(gain >= cfg.min_gain_db)
        say(f"eval on {metrics['samples']} samples ({how}): PSNR {metrics['identity']['psnr']:.2f} -> "
            f"{metrics['model']['psnr']:.2f} dB ({gain:+.2f} dB, need {cfg.min_gain_db:+.2f}); SSIM "
            f"{metrics['identity']['ssim']:.4f} -> {metrics['model']['ssim']:.4f}")
        if "psnr_mask" in metrics["model"]:
            say(f"  inside the mask: PSNR {metrics['identity']['psnr_mask']:.2f} -> "
                f"{metrics['model']['psnr_mask']:.2f} dB")
        report.update(
            eval_on=how, train_samples=len(train_ds), eval_samples=metrics["samples"], loss_first=history[0],
            loss_last=float(np.mean(history[-20:])),
            loss_curve=[float(v) for v in history[:: max(1, len(history) // 100)]],
            train_seconds=seconds, img_per_s=img_s, metrics=metrics, gain_db=gain, passed=passed,
            wall_seconds=time.perf_counter() - t_start,
        )
        report["triptychs"] = save_triptychs(model, eval_ds, device, report_dir, count=4)
        _write_report(report_dir, report)
        say(f"{'PASSED' if passed else 'FAILED'}: report in {report_dir}/report.json "
            f"({time.perf_counter() - t_start:.1f} s)")
        return report, passed
    finally:
        if tmp is not None:
            tmp.cleanup()


def _all_have(out: Path, name: str) -> bool:
    """Whether every complete shard of ``out`` has dataset ``name``."""
    shards = list_shards(out).with_samples()
    for entry in shards:
        with ShardReader(entry.path) as reader:
            if name not in reader:
                return False
    return bool(shards)


def _write_report(report_dir: Path, report: dict) -> None:
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(report_dir / "report.json", json.loads(json.dumps(report, default=_jsonable)))
    except OSError as exc:
        raise OutputError(f"{report_dir}: cannot write the report ({exc.strerror or exc})") from None


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, os.PathLike):
        return str(value)
    raise TypeError(type(value).__name__)
