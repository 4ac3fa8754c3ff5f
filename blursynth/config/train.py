"""Configuration of ``blursynth train-check`` (the bundled minimal trainer)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from blursynth.errors import ConfigError


@dataclass(frozen=True)
class TrainCheckConfig:
    """Settings of ``blursynth train-check`` (defaults: the quick check, < 2 min on 2 CPU cores)."""

    out: str | None = None
    steps: int = 300
    batch_size: int = 8
    crop: int = 96
    lr: float = 1e-3
    width: int = 24
    blocks: int = 2
    device: str = "auto"
    min_gain_db: float = 0.5
    eval_samples: int = 32
    eval_crop: int | None = 512
    holdout: float = 0.2
    max_misaligned: float = 0.01
    report_dir: str | None = None
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "width", "blocks", "eval_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(self, name)}")
        if self.crop % 4:
            raise ConfigError(f"--crop: expected a multiple of 4 (three pyramid scales), got {self.crop}")
        if self.eval_crop is not None and (self.eval_crop < 16 or self.eval_crop % 4):
            raise ConfigError(f"--eval-crop: expected a multiple of 4 >= 16, got {self.eval_crop}")
        if not (0.0 < self.holdout < 1.0):
            raise ConfigError(f"--holdout: expected a fraction in (0, 1), got {self.holdout}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr: expected a positive learning rate, got {self.lr}")
        if not math.isfinite(self.min_gain_db):
            raise ConfigError(f"--min-gain-db: expected a finite number of dB, got {self.min_gain_db}")
        if not (0.0 <= self.max_misaligned <= 1.0):
            raise ConfigError(f"--max-misaligned: expected a fraction in [0, 1], got {self.max_misaligned}")
        if self.workers < 0:
            raise ConfigError(f"--workers: expected >= 0, got {self.workers}")
