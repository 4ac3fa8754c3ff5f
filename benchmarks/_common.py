"""Helpers shared by the benchmark scripts (stdlib only, so a parent process that must stay light can use
them): the environment line every report starts with and the busy-machine warning."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def environment(dists: tuple[str, ...], **extra) -> dict:
    """Python, CPU count, machine and the installed versions of ``dists`` (None when missing); printed."""
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(), **extra}
    for dist in dists:
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            env[dist] = None
    print(f"env: {env}", flush=True)
    return env


def warn_if_busy(how_ratios_stay_fair: str, threshold: float = 0.5) -> float:
    """Warn when other processes load the machine before a run; returns the 1-min load average."""
    load = os.getloadavg()[0]
    if load > threshold:
        print(f"warning: 1-min load average is {load:.1f} before the benchmark; other processes share the "
              f"{os.cpu_count()} cores, so absolute figures are noisy ({how_ratios_stay_fair})", flush=True)
    return load
