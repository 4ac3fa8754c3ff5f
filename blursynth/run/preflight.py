"""Checks every command runs before it probes a single source, so a bad setting costs seconds, not a run.

Probing and planning can take minutes on a large collection; a typo in ``--device``, a flow backend whose
dependency is missing, an OUT that can never be written or a Ray cluster that does not answer would
otherwise only surface afterwards (or, worse, inside every worker). Nothing is written here.
"""

from __future__ import annotations

import os
from typing import Protocol

from blursynth.device import resolve_device_name
from blursynth.flow import create_flow
from blursynth.run.executors.ray_cluster import connect_ray
from blursynth.shards.manifest import check_out


class FlowSettings(Protocol):
    """The flow options of a command's configuration (``AverageConfig``, ``StatsConfig``)."""

    flow: str
    raft_model: str
    raft_weights: str | None


def preflight(*, device: str, out: str | os.PathLike | None, executor: str, ray_address: str | None,
              flow: FlowSettings | None = None) -> str:
    """Fail early on what would make the whole run fail, in this order:

    1. ``device``: ``--device cuda`` without a GPU, or a device that does not exist;
    2. ``flow``: a flow backend that cannot be created (missing torchvision, unreadable RAFT weights, no
       OpenCV contrib for DeepFlow); None when the command computes no flow;
    3. ``out``: an OUT that is a file or lies under one that is not writable; None when nothing is written;
    4. ``executor == "ray"``: Ray missing, or the cluster at ``ray_address`` unreachable (joined here, so the
       executor finds it connected).

    Returns:
        The resolved device name (``cpu``, ``cuda:0``...).

    Raises:
        ConfigError, MissingDependencyError, InputError, OutputError: one-line messages.
    """
    resolved = resolve_device_name(device)
    if flow is not None:
        create_flow(flow.flow, device=resolved, raft_model=flow.raft_model, raft_weights=flow.raft_weights)
    if out is not None:
        check_out(out)
    if executor == "ray":
        connect_ray(ray_address)
    return resolved
