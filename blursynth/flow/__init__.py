"""Optical flow: one interface, backends created by name (timm ``create_model`` style).

>>> from blursynth.flow import create_flow
>>> flow = create_flow("dis")
>>> uv = flow(frame0, frame1)          # (2, H, W) float32, pixels, frame0 -> frame1

Which of that motion can be trusted (textured for the noise level, forward-backward consistent) is
:mod:`blursynth.flow.measure`'s: ``measure_pair(flow, frame0, frame1).moving``.
"""

from __future__ import annotations

from blursynth.errors import ConfigError
from blursynth.flow.base import FLOW_STATS, FlowBackend, flow_statistic, magnitude, match_error, warp_back
from blursynth.flow.names import FLOW_NAMES

#: Names accepted by :func:`create_flow` (and ``--flow``).
FLOW_METHODS = FLOW_NAMES

__all__ = [
    "FLOW_METHODS", "FLOW_STATS", "FlowBackend", "create_flow", "flow_statistic", "magnitude", "match_error",
    "warp_back",
]


def create_flow(name: str, *, device: str = "cpu", raft_model: str = "small", raft_weights: str | None = None,
                batch_size: int = 8) -> FlowBackend:
    """Create a flow backend by name.

    Args:
        name: ``dis`` (OpenCV DIS, fast, default on CPU), ``deepflow`` (OpenCV contrib), ``farneback`` or
            ``raft`` (torchvision; optional dependency).
        device: torch device for ``raft``; the OpenCV methods run on the CPU.
        raft_model: ``small`` or ``large``.
        raft_weights: state-dict file for RAFT; None uses torchvision's registry weights.
        batch_size: RAFT pairs per forward pass.

    Raises:
        ConfigError: unknown name. MissingDependencyError: the backend's optional dependency is missing.
    """
    key = str(name).strip().lower()
    if key == "dis":
        from blursynth.flow.opencv import DISFlow

        return DISFlow()
    if key == "deepflow":
        from blursynth.flow.opencv import DeepFlow

        return DeepFlow()
    if key == "farneback":
        from blursynth.flow.opencv import FarnebackFlow

        return FarnebackFlow()
    if key == "raft":
        from blursynth.flow.raft import RaftFlow

        return RaftFlow(model=raft_model, weights=raft_weights, device=device, batch_size=batch_size)
    raise ConfigError(f"--flow: unknown flow method {name!r}; choose one of {', '.join(FLOW_METHODS)}")
