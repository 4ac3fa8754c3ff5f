"""RAFT (Teed & Deng 2020) through torchvision, batched on a torch device.

torchvision is optional: it is imported when a RAFT backend is created, and a missing or incompatible
installation is reported by name (never a silent fallback to another method). Weights come from
torchvision's registry (downloaded once into the torch hub cache) or from ``--raft-weights FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from blursynth.errors import ConfigError, InputError, MissingDependencyError
from blursynth.flow.base import FlowBackend
from blursynth.flow.names import RAFT_MODELS

__all__ = ["RAFT_MODELS", "RaftFlow", "load_raft"]



def _import_optical_flow():
    try:
        from torchvision.models import optical_flow
    except Exception as exc:  # ImportError, or torchvision built against another torch (RuntimeError)
        raise MissingDependencyError(
            "--flow raft needs torchvision built for your torch "
            f"({torch.__version__}): pip install torchvision ({type(exc).__name__}: {exc})"
        ) from None
    return optical_flow


def load_raft(model: str = "small", weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """Build torchvision's RAFT and load its weights.

    Args:
        model: ``small`` or ``large``.
        weights: a state-dict file (``torch.save(model.state_dict(), FILE)``); None uses torchvision's
            registry weights (``Raft_Small_Weights.DEFAULT`` / ``Raft_Large_Weights.DEFAULT``).

    Raises:
        MissingDependencyError: torchvision missing, or registry weights neither cached nor downloadable.
        InputError: the weights file is missing, unreadable or does not fit the model.
    """
    if model not in RAFT_MODELS:
        raise ConfigError(f"--raft-model: expected one of {', '.join(RAFT_MODELS)}, got {model!r}")
    of = _import_optical_flow()
    build = of.raft_small if model == "small" else of.raft_large
    if weights is None:
        registry = of.Raft_Small_Weights if model == "small" else of.Raft_Large_Weights
        try:
            net = build(weights=registry.DEFAULT, progress=False)
        except Exception as exc:  # offline, proxy, corrupt cache...
            raise MissingDependencyError(
                f"RAFT-{model} weights are not in the torch hub cache and could not be downloaded "
                f"({type(exc).__name__}: {exc}); pass --raft-weights FILE with a saved state dict"
            ) from None
        return net.eval()
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise InputError(f"{path}: RAFT weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = build(weights=None)
    try:
        net.load_state_dict(state)
    except Exception as exc:
        raise InputError(f"{path}: does not hold RAFT-{model} weights ({str(exc).splitlines()[0]})") from None
    return net.eval()


class RaftFlow(FlowBackend):
    """torchvision RAFT on ``device``, ``batch_size`` pairs per forward pass.

    Frames are RGB uint8, scaled to [-1, 1] as torchvision's ``OpticalFlow`` transform does, and padded
    (replicate) to a multiple of 8 as RAFT requires; the flow is cropped back.
    """

    name = "raft"
    wants_rgb = True

    def __init__(self, *, model: str = "small", weights: str | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 8, num_flow_updates: int = 12) -> None:
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.num_flow_updates = int(num_flow_updates)
        self.model_name = model
        self.net = load_raft(model, weights).to(self.device)

    def pairs(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if len(frames) < 2:
            return super().pairs(frames)
        rgb = np.stack([self._prepare(f) for f in frames])
        out = []
        with torch.inference_mode():
            batch = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            h, w = batch.shape[-2:]
            ph, pw = (-h) % 8, (-w) % 8
            if ph or pw:
                batch = F.pad(batch, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
            for i in range(0, len(frames) - 1, self.batch_size):
                j = min(i + self.batch_size, len(frames) - 1)
                flows = self.net(batch[i:j], batch[i + 1 : j + 1], num_flow_updates=self.num_flow_updates)[-1]
                flows = flows[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
                out.append(flows.float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.pairs([a, b])[0]
