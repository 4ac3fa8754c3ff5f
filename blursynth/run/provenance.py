"""The command line a run was started with, recorded in its manifest (``argv``).

The CLI records the arguments it parsed (``blursynth average clips out --frames 9``); a program that calls
the library directly is represented by its own ``sys.argv``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_argv: list[str] | None = None


def record_invocation(argv: Sequence[str]) -> None:
    """Remember the command line of this process's run (called by the CLI before it dispatches)."""
    global _argv
    _argv = [str(a) for a in argv]


def invocation() -> list[str]:
    """The recorded command line, or ``sys.argv`` when none was recorded."""
    return list(_argv) if _argv is not None else list(sys.argv)
