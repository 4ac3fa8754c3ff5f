"""Process-wide settings of blursynth's own processes: the CLI, its process workers and its Ray tasks.

Library calls (``run_average`` from a user's script, ``ShardDataset`` in a training loop) never change them;
the processes blursynth starts call :func:`tune_process` once.

* **Transparent huge pages off** (``prctl(PR_SET_THP_DISABLE)``, Linux). NumPy asks the kernel for huge pages
  on every array of 4 MB or more (``madvise(MADV_HUGEPAGE)``), and the kernel zeroes a whole 2 MB page at
  each first touch. A run allocates and frees 720p work arrays at every window, so the zeroing recurs: in
  ``average --substeps 8 --interpolation fast`` at 720p it was a third of all CPU time (1.3-2.4 s of system
  time per 56 frames; perf: ``clear_page_erms`` under ``do_huge_pmd_anonymous_page``), and switching huge
  pages off took the run from 8.9 to 12.1 input frames/s (docs/continuous-exposure.md). Plain ``average``
  is unchanged within noise. The setting is inherited by child processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

#: ``prctl`` option (linux/prctl.h).
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42


def tune_process() -> None:
    """Apply this module's settings to the calling process (idempotent; a no-op where unsupported)."""
    disable_transparent_hugepages()


def disable_transparent_hugepages() -> bool:
    """Stop the kernel from backing this process's memory with transparent huge pages; True when it is done.

    Only on Linux; elsewhere, or where the kernel refuses (before Linux 3.15), nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    return False


def transparent_hugepages_disabled() -> bool:
    """Whether :func:`disable_transparent_hugepages` is in effect for this process (False where unknown)."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1
    return False
