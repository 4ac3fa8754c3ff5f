"""``--workers 1``: units one after the other in the driver process."""

from __future__ import annotations

from collections.abc import Iterator

from blursynth import interrupt
from blursynth.run.executors.base import Outcome, Retrying, call_unit


class SerialExecutor:
    """Runs units one after the other in the driver process (``--workers 1``)."""

    name = "serial"

    def __init__(self, retries: int = 2) -> None:
        self.retries = retries

    def run(self, fn, units, keys, out, progress) -> Iterator[tuple[int, Outcome]]:
        tries = Retrying(keys, self.retries)
        for index, unit in enumerate(units):
            while True:
                interrupt.check()
                tries.start(index)
                outcome = call_unit(fn, unit, out, progress)
                if tries.settle(index, outcome):
                    break
            yield index, outcome
