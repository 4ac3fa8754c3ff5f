"""Which torch device a run uses: ``--device auto | cpu | cuda[:i]`` resolved once, checked early.

Every command that can use a GPU (averaging, WILD flow, local rendering, stats, train-check) asks here, so
``auto`` means the same thing everywhere and a missing GPU is one clear error before any work starts. torch
costs ~1.3 s to import, so the CPU answer is given without it whenever no NVIDIA driver is present.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import TYPE_CHECKING

from blursynth.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # imported on use: a CPU run never pays torch's import
    import torch


def cuda_possible() -> bool:
    """Whether CUDA can be available at all, without importing torch when the answer is obviously no.

    No NVIDIA kernel driver (``/proc/driver/nvidia``, ``/dev/nvidia*``) means no CUDA device; only when one is
    present (or torch is already imported) is torch asked.
    """
    if "torch" not in sys.modules and not (os.path.exists("/proc/driver/nvidia/version")
                                           or glob.glob("/dev/nvidia[0-9]*")):
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device_name(device: str) -> str:
    """Like :func:`resolve_device` but returns ``"cpu"`` / ``"cuda:i"`` text and imports torch only when
    CUDA may be involved, so a CPU run starts ~1.3 s sooner."""
    text = str(device).strip().lower()
    if text in ("cpu", "auto") and (text == "cpu" or not cuda_possible()):
        return "cpu"
    return str(resolve_device(device))


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda[:i]`` must exist.

    Raises:
        ConfigError: not a device name, or a CUDA index beyond the devices present.
        MissingDependencyError: ``cuda`` without a usable GPU (or with a CPU-only torch build).
    """
    import torch

    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device: expected auto, cpu or cuda[:i], got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MissingDependencyError(
                f"--device {device}: CUDA is not available (no GPU or a CPU-only torch build); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ConfigError(f"--device: expected auto, cpu or cuda[:i], got {device!r}")
    return dev
