"""``blursynth train-check``: validate shards, check pair alignment, train the bundled model briefly, measure.

The verdict (exit 0 or 3) says whether the output is valid and *learnable*:

1. it validates (``shards/validate.py``);
2. its pairs are aligned: at most ``max_misaligned`` of the checked pairs are shifted, swapped or mismatched
   (``train/alignment.py``, no training needed; each such pair is named by split, shard, index and source);
3. the model, trained for ``steps`` Adam steps on random crops of ``train``, beats the identity (the blurry
   input) by at least ``min_gain_db`` dB PSNR on windows held out of ``train`` (``train/holdout.py``).

``val`` is measured too, as generalisation: a gain below ``min_gain_db`` there is a warning, not a failure
(a val split made of other sources, with other motion, says little about whether the pairs are learnable).
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
from blursynth.shards.listing import ShardListing, list_shards
from blursynth.shards.manifest import check_out, load_manifest, manifest_path
from blursynth.shards.reader import ShardReader
from blursynth.shards.validate import validate_output
from blursynth.train.example import EXAMPLE_NAME, build_example_dataset

log = logging.getLogger("blursynth.train")

#: The loss is reported as the mean of the first and of the last this many steps (comparable numbers).
LOSS_WINDOW = 20


def loss_window(steps: int) -> int:
    """Steps averaged at each end of the loss curve: ``LOSS_WINDOW``, fewer for short runs (a fifth)."""
    return max(1, min(LOSS_WINDOW, steps // 5))


def check_is_output(out: Path, listing: ShardListing) -> None:
    """A folder ``train-check`` can judge: a blursynth manifest, or shard files in ``train/`` or ``val/``.

    Raises:
        InputError: ``out`` is missing, a file, or a folder that is not a blursynth output (exit 1: nothing to
            judge, unlike a damaged output, which fails its check with exit 3).
    """
    if not out.is_dir():
        raise InputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    if listing.shards or listing.bad_markers or listing.orphans or listing.partials:
        return
    try:
        if load_manifest(out, writing=False) is not None:
            return
        why = f"no {manifest_path(out).name} and no shards in train/ or val/"
    except OutputError as exc:
        why = f"{str(exc).split(': ', 1)[-1]}, and no shards in train/ or val/"
    raise InputError(f"{out}: not a blursynth output ({why})")


def run_train_check(cfg: TrainCheckConfig, echo=None) -> tuple[dict, bool]:
    """Validate, check alignment, train, evaluate; write ``report.json`` and triptychs.

    Args:
        echo: called with progress lines (the CLI prints them); None logs them.

    Returns:
        (report, passed).

    Raises:
        InputError: nothing to check (no output, not an output, no train samples, images smaller than the crop).
    """
    say = echo or log.info
    t_start = time.perf_counter()
    tmp = None
    if cfg.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="blursynth-check-")
        out = build_example_dataset(Path(tmp.name) / "out")
        say(f"built the example dataset from {EXAMPLE_NAME} (GOPRO recipe) in {time.perf_counter() - t_start:.1f} s")
    else:
        out = Path(cfg.out)
    try:
        listing = list_shards(out)
        check_is_output(out, listing)
        report_dir = Path(cfg.report_dir) if cfg.report_dir else (Path("train_check") if cfg.out is None else
                                                                  out / "train_check")
        check_out(report_dir)  # before minutes of training, not after
        return _check(cfg, out, listing, report_dir, say, t_start)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _check(cfg: TrainCheckConfig, out: Path, listing: ShardListing, report_dir: Path, say, t_start: float):
    from blursynth.device import resolve_device_name
    from blursynth.train.alignment import NOISE_SIGMA, check_alignment, describe

    device = resolve_device_name(cfg.device)
    validation = validate_output(out)
    report: dict = {"format": "blursynth-train-check", "version": 2, "out": str(out) if cfg.out else "(example)",
                    "settings": asdict(cfg) | {"device": device}, "validation": validation.to_dict()}
    on_disk = sum(e.count for e in listing.shards)  # what the markers count, readable or not
    failing = sum(not s.ok for s in validation.shards)
    say(f"validation: {'ok' if validation.ok else 'FAILED'}, {on_disk} samples in {_n(len(listing.shards), 'shard')}"
        + (f" ({failing} with errors)" if failing else ""))
    if not validation.ok:
        problems = validation.errors + [e for s in validation.shards for e in s.errors]
        for p in problems[:5]:
            say(f"  {p}")
        return _finish(report, report_dir, say, t_start, False, reason="validation failed")

    align = check_alignment(listing.with_samples())
    report["alignment"] = align
    bad, checked = len(align["problems"]), align["checked"]
    corr = align["min_correlation"]
    say(f"alignment: {bad} of {checked} checked pairs shifted, swapped or mismatched (allowed "
        f"{cfg.max_misaligned:.0%}); max shift {align['max_shift_px']:.1f} px, min low-pass correlation "
        + ("n/a" if corr is None else f"{corr:.3f}"))
    if align["camera_pairs"]:
        say(f"  {align['camera_pairs']} camera pair(s) (meta[\"camera\"]): swap test on both images low-passed "
            f"with sigma {NOISE_SIGMA:g} px, so the camera's noise does not count as detail")
    for p in align["problems"][:5]:
        say(f"  {describe(p)}")
    if bad > 5:
        say(f"  ... and {bad - 5} more in the report")
    if bad > cfg.max_misaligned * checked:
        return _finish(report, report_dir, say, t_start, False,
                       reason=f"{bad} of {checked} pairs misaligned: blur and sharp do not match")
    return _learnability(cfg, out, report, report_dir, device, say, t_start)


def _learnability(cfg: TrainCheckConfig, out: Path, report: dict, report_dir: Path, device: str, say,
                  t_start: float) -> tuple[dict, bool]:
    import torch

    from blursynth.train.holdout import check_splits
    from blursynth.train.loop import evaluate, save_triptychs, train

    keys = ("blur", "sharp", "mask") if _all_have(out, "mask") else ("blur", "sharp")
    splits = check_splits(out, cfg.holdout, keys, cfg.crop, cfg.eval_crop, cfg.seed)
    torch.manual_seed(cfg.seed)
    model, history, seconds = train(splits.train, cfg, device)
    batch = min(cfg.batch_size, len(splits.train))  # what the loader really takes per step
    img_s = cfg.steps * batch / max(seconds, 1e-9)
    k = loss_window(len(history))
    first, last = float(np.mean(history[:k])), float(np.mean(history[-k:]))
    say(f"trained {cfg.steps} steps x {batch} crops of {cfg.crop}px on {device} in {seconds:.1f} s "
        f"({img_s:.1f} img/s); loss (mean of the first / last {k} steps) {first:.5f} -> {last:.5f}")
    report.update(eval_on=splits.how, train_samples=len(splits.train), eval_samples=len(splits.heldout),
                  dropped_overlapping=len(splits.dropped), loss_window=k, loss_first=first, loss_last=last,
                  loss_curve=[float(v) for v in history[:: max(1, len(history) // 100)]], train_seconds=seconds,
                  img_per_s=img_s)
    metrics = evaluate(model, splits.heldout, cfg, device)
    report["metrics"] = metrics
    if "psnr" not in metrics["model"]:  # every restored image has NaN/inf pixels
        say(f"FAILED: the model's outputs are not finite (training diverged; lower --lr {cfg.lr:g})")
        return _finish(report, report_dir, say, t_start, False,
                       reason="training diverged: model outputs are not finite", final=False)
    gain = metrics["model"]["psnr"] - metrics["identity"]["psnr"]
    passed = bool(gain >= cfg.min_gain_db)
    report.update(gain_db=gain, eval_samples=metrics["samples"])
    say(f"eval on {metrics['samples']} {splits.how}: PSNR {_psnr_line(metrics)} ({gain:+.2f} dB, need "
        f"{cfg.min_gain_db:+.2f}); SSIM {metrics['identity']['ssim']:.4f} -> {metrics['model']['ssim']:.4f}")
    if "psnr_mask" in metrics["model"]:
        say(f"  inside the mask: PSNR {metrics['identity']['psnr_mask']:.2f} -> "
            f"{metrics['model']['psnr_mask']:.2f} dB")
    if splits.val is not None:
        report["val"] = _generalisation(model, splits.val, cfg, device, say)
    report["triptychs"] = save_triptychs(model, splits.heldout, device, report_dir, count=4)
    reason = None if passed else f"gain {gain:+.2f} dB on held-out train windows < {cfg.min_gain_db:+.2f} dB"
    return _finish(report, report_dir, say, t_start, passed, reason=reason)


def _generalisation(model, val, cfg: TrainCheckConfig, device: str, say) -> dict:
    """Gain on the val split: reported, and a warning when below ``min_gain_db`` (never a failure)."""
    from blursynth.train.loop import evaluate

    metrics = evaluate(model, val, cfg, device)
    result: dict = {"samples": metrics["samples"], "metrics": metrics}
    if "psnr" not in metrics["model"]:
        say("val split (generalisation): the model's outputs are not finite")
        return result | {"gain_db": None, "generalises": False}
    gain = metrics["model"]["psnr"] - metrics["identity"]["psnr"]
    generalises = bool(gain >= cfg.min_gain_db)
    say(f"val split (generalisation, not part of the verdict) on {metrics['samples']} samples: PSNR "
        f"{_psnr_line(metrics)} ({gain:+.2f} dB)")
    if not generalises:
        say(f"  warning: below {cfg.min_gain_db:+.2f} dB on val: after {cfg.steps} steps the model does not carry "
            "over to val's sources (other motion or content than train?); train longer or check the split")
    return result | {"gain_db": gain, "generalises": generalises}


def _psnr_line(metrics: dict) -> str:
    return f"{metrics['identity']['psnr']:.2f} -> {metrics['model']['psnr']:.2f} dB"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _finish(report: dict, report_dir: Path, say, t_start: float, passed: bool, *, reason: str | None = None,
            final: bool = True) -> tuple[dict, bool]:
    report.update(passed=passed, wall_seconds=time.perf_counter() - t_start)
    if reason:
        report["reason"] = reason
    _write_report(report_dir, report)
    if final:
        why = "" if passed or not reason else f" ({reason})"
        say(f"{'PASSED' if passed else 'FAILED'}{why}: report in {report_dir}/report.json "
            f"({time.perf_counter() - t_start:.1f} s)")
    return report, passed


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
