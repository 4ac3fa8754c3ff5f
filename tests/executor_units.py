"""Work-unit functions for the executor tests: module-level so spawned workers and Ray tasks can import them.

Every function has the unit signature ``fn(unit, out, progress)``. Cross-process state (has this unit failed
before?) lives in files under the folder ``out``, so "fails once, then succeeds" holds whichever process or
Ray worker runs the retry.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from blursynth.errors import OutputError

log = logging.getLogger("blursynth.test_units")


def square(unit: int, out, progress) -> dict:
    """Succeeds: reports one source with ``unit`` frames and one sample, returns its square and its pid."""
    progress.source_started(f"u{unit}", unit)
    progress.advance(frames=unit)
    progress.advance(samples=1)
    progress.source_finished(f"u{unit}", "ok", 1)
    return {"value": unit * unit, "pid": os.getpid()}


def _first_time(out, name: str) -> bool:
    """True the first time ``name`` is seen (an empty file marks it, race-free with O_EXCL)."""
    try:
        fd = os.open(Path(out) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def flaky(unit: int, out, progress) -> dict:
    """Raises on its first attempt, succeeds on the next."""
    if _first_time(out, f"flaky-{unit}"):
        raise RuntimeError(f"transient failure of unit {unit}")
    return square(unit, out, progress)


def broken(unit: int, out, progress) -> dict:
    """Unit 1 always raises; the others succeed."""
    if unit == 1:
        with open(Path(out) / f"attempt-{unit}-{time.monotonic_ns()}", "w"):
            pass
        raise ValueError("unit 1 is broken")
    return square(unit, out, progress)


def dies_once(unit: int, out, progress) -> dict:
    """The worker process running unit 0 is killed (SIGKILL) on the first attempt."""
    if unit == 0 and _first_time(out, "died-0"):
        os.kill(os.getpid(), signal.SIGKILL)
    return square(unit, out, progress)


def disk_full(unit: int, out, progress) -> dict:
    """Unit 2 hits a fatal write error; the others are slow enough to still be running."""
    if unit == 2:
        raise OutputError(f"{out}/train/00002.h5: cannot write (No space left on device)")
    time.sleep(0.2)
    return square(unit, out, progress)


def logs(unit: int, out, progress) -> dict:
    log.warning("unit %d says hello", unit)
    return square(unit, out, progress)


def sleeper(unit: int, out, progress) -> dict:
    """Writes its pid to ``out/pid-<unit>`` and sleeps for a minute (a worker to be orphaned)."""
    (Path(out) / f"pid-{unit}").write_text(str(os.getpid()))
    time.sleep(60)
    return square(unit, out, progress)
