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


def run_worker(script: str, kind: str, spec: dict, work, *, env: dict | None = None, timeout: float | None = None,
               prefix: str = "result") -> dict:
    """Run ``script --worker kind --spec JSON --result FILE`` in a fresh process and return its JSON result,
    with the child's wall time and peak RSS (``ru_maxrss``) added. A child still running after ``timeout``
    seconds is killed (a hung worker ends the benchmark with a message instead of blocking it)."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    result_file = Path(work) / f"{prefix}_{kind}_{os.getpid()}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, os.path.abspath(script), "--worker", kind, "--spec", json.dumps(spec),
           "--result", str(result_file)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=None if env is None else {**os.environ, **env})
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if timeout else 0)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise RuntimeError(f"{kind} worker still running after {timeout:.0f} s, killed (hung?)")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    try:
        if code != 0:
            raise RuntimeError(f"{kind} worker failed with exit code {code}")
        result = json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)
    result.update(process_wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024)
    return result


def add_worker_args(parser, workers: dict) -> None:
    """The hidden options a script passes to itself when it runs one measurement in a child process."""
    import argparse

    parser.add_argument("--worker", choices=sorted(workers), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def run_as_worker(args, workers: dict) -> bool:
    """In a child started by :func:`run_worker`: run the measurement, write its JSON result, return True."""
    import json
    from pathlib import Path

    if not args.worker:
        return False
    Path(args.result).write_text(json.dumps(workers[args.worker](json.loads(args.spec))))
    return True
