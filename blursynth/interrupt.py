"""Ctrl-C and SIGTERM that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the signal arrives; inside a
garbage-collector or weakref callback the exception is printed as "Exception ignored" and dropped, and the
run would go on. The handler installed here also sets a flag, and long loops call :func:`check` (every
sample in ``ShardWriter.add``, every turn of the executors' loops), so a dropped interrupt is raised again at
the next safe point.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

_requested = threading.Event()
_deferred = 0  # > 0 while a write that must not be torn is running (see deferred)


def _handler(signum, frame):
    _requested.set()
    if not _deferred:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred():
    """Inside: an interrupt only sets the flag; call :func:`check` after the block.

    For HDF5 writes: HDF5 calls back into Python (h5py's file-object driver), and an exception raised there
    is a failed write to HDF5, which leaves the file corrupt and can crash the interpreter on close.
    """
    global _deferred
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1


def _unraisable(report) -> None:
    if isinstance(report.exc_value, KeyboardInterrupt) and _requested.is_set():
        return  # dropped inside a GC/weakref callback: check() raises it again at the next safe point
    _default_unraisable(report)


_default_unraisable = sys.unraisablehook


def install(signals=(signal.SIGINT, signal.SIGTERM)) -> None:
    """Route ``signals`` to ``KeyboardInterrupt`` plus the flag (CLI main thread, and worker processes)."""
    _requested.clear()
    for sig in signals:
        signal.signal(sig, _handler)
    sys.unraisablehook = _unraisable


def installed() -> bool:
    """Whether SIGINT and SIGTERM still go to this module (other libraries, e.g. Ray, install their own)."""
    return signal.getsignal(signal.SIGINT) is _handler


def check() -> None:
    """Raise ``KeyboardInterrupt`` if an interrupt arrived (no-op when :func:`install` was never called)."""
    if _requested.is_set():
        raise KeyboardInterrupt
