"""Executors run picklable work units and return their results in unit order.

Only the in-process serial executor exists so far; a multiprocessing and a Ray executor plug in here with
the same contract: ``map(fn, units)`` yields ``fn(unit)`` in unit order, whatever the completion order, so
shard numbering and manifests never depend on scheduling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from blursynth.errors import ConfigError

U = TypeVar("U")
R = TypeVar("R")


class SerialExecutor:
    """Runs units one after the other in this process."""

    name = "serial"

    def map(self, fn: Callable[[U], R], units: Iterable[U]) -> Iterator[R]:
        for unit in units:
            yield fn(unit)


def create_executor(name: str = "serial", **_: object) -> SerialExecutor:
    if name in ("serial", "local"):
        return SerialExecutor()
    raise ConfigError(f"--executor: unknown executor {name!r}; available: serial")
