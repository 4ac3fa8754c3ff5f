"""Training and evaluation loops of the bundled model (CUDA: mixed precision and channels_last)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from blursynth.train.metrics import psnr, ssim
from blursynth.train.model import MultiScaleDeblur, multiscale_mse


def _loader(ds, batch_size: int, shuffle: bool, workers: int, seed: int):
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       drop_last=shuffle and len(ds) >= batch_size, generator=g,
                                       persistent_workers=workers > 0)


def train(ds, cfg, device: str) -> tuple[MultiScaleDeblur, list[float], float]:
    """Adam on the multi-scale MSE for ``cfg.steps`` steps of ``cfg.batch_size`` random crops.

    Returns:
        (model, loss per step, training seconds).
    """
    cuda = device.startswith("cuda")
    model = MultiScaleDeblur(width=cfg.width, blocks=cfg.blocks).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr * 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    history: list[float] = []
    loader = _loader(ds, min(cfg.batch_size, len(ds)), True, cfg.workers, cfg.seed)
    model.train()
    t0 = time.perf_counter()
    while len(history) < cfg.steps:
        for batch in loader:
            blur = batch["blur"].to(device, non_blocking=True)
            sharp = batch["sharp"].to(device, non_blocking=True)
            if cuda:
                blur = blur.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                loss = multiscale_mse(model(blur), sharp)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            history.append(float(loss.detach()))
            if len(history) >= cfg.steps:
                break
    if cuda:
        torch.cuda.synchronize()
    return model, history, time.perf_counter() - t0


@torch.no_grad()
def restore(model: MultiScaleDeblur, blur: torch.Tensor) -> torch.Tensor:
    """The model's finest output, clamped to [0, 1]."""
    model.eval()
    return model(blur)[0].float().clamp(0, 1)


@torch.no_grad()
def evaluate(model: MultiScaleDeblur, ds, cfg, device: str) -> dict:
    """PSNR/SSIM of the identity (blurry input) and of the model, averaged over up to ``cfg.eval_samples``
    evaluation samples; inside the mask too when the samples carry one (the LODE evaluation point)."""
    n = min(len(ds), cfg.eval_samples)
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int) if n < len(ds) else np.arange(len(ds))
    sums = {"identity": {"psnr": [], "ssim": [], "psnr_mask": []}, "model": {"psnr": [], "ssim": [], "psnr_mask": []}}
    for i in idx:
        item = ds[int(i)]
        blur, sharp = item["blur"][None].to(device), item["sharp"][None].to(device)
        out = restore(model, blur)
        mask = item["mask"][None].to(device) if "mask" in item else None
        for name, img in (("identity", blur), ("model", out)):
            sums[name]["psnr"].append(float(psnr(img, sharp)[0]))
            sums[name]["ssim"].append(float(ssim(img, sharp)[0]))
            if mask is not None:
                sums[name]["psnr_mask"].append(float(psnr(img, sharp, mask)[0]))
    result = {"samples": int(n)}
    for name, vals in sums.items():
        result[name] = {}
        for k, v in vals.items():
            finite = [x for x in v if np.isfinite(x)]
            if finite:
                result[name][k] = float(np.mean(finite))
    return result


@torch.no_grad()
def save_triptychs(model: MultiScaleDeblur, ds, device: str, folder: Path, count: int = 4) -> list[str]:
    """PNG rows ``blur | restored | sharp`` for the first ``count`` evaluation samples."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(min(count, len(ds))):
        item = ds[i]
        out = restore(model, item["blur"][None].to(device))[0].cpu()
        tiles = [item["blur"], out, item["sharp"]]
        row = np.concatenate([(t.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
                              for t in tiles], axis=1)
        name = f"triptych_{i:02d}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        names.append(name)
    return names
