"""What every executor shares: the outcome of a unit, one attempt of it, and the retry bookkeeping."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from blursynth import errors
from blursynth.errors import BlurSynthError
from blursynth.run.progress import ProgressSink

log = logging.getLogger("blursynth.run")


class Executor(Protocol):
    """Runs units and yields ``(index, Outcome)`` as they finish, in any order (retries included)."""

    name: str

    def run(self, fn: Callable, units: Sequence, keys: Sequence[str], out, progress: ProgressSink
            ) -> Iterator[tuple[int, Outcome]]: ...


@dataclass
class Outcome:
    """What came back for one unit: its result, or the reason of its last failed attempt."""

    result: Any = None
    error: str | None = None
    fatal: str | None = None  # name of the BlurSynthError class that must stop the run
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


def describe(exc: BaseException) -> str:
    """A one-line reason for an exception: ``ValueError: bad value``."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_unit(fn: Callable, unit, out, progress: ProgressSink) -> Outcome:
    """Run one attempt of a unit, turning exceptions into an :class:`Outcome` (runs in the worker)."""
    try:
        return Outcome(result=fn(unit, out, progress))
    except BlurSynthError as exc:
        return Outcome(error=exc.message, fatal=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - any other failure is one failed attempt, retried
        log.debug("unit failed", exc_info=True)
        return Outcome(error=describe(exc))


def raise_fatal(outcome: Outcome) -> None:
    cls = getattr(errors, outcome.fatal or "", None)
    if not (isinstance(cls, type) and issubclass(cls, BlurSynthError)):
        cls = BlurSynthError
    raise cls(outcome.error or "failed")


class Retrying:
    """Attempt bookkeeping shared by the executors."""

    def __init__(self, keys: Sequence[str], retries: int) -> None:
        self.keys, self.retries = keys, retries
        self.attempts = [0] * len(keys)

    def start(self, index: int) -> None:
        self.attempts[index] += 1

    def settle(self, index: int, outcome: Outcome) -> bool:
        """True when ``outcome`` is final (success, fatal, or out of attempts); False to retry."""
        outcome.attempts = self.attempts[index]
        if outcome.ok or outcome.fatal:
            return True
        if outcome.attempts <= self.retries:
            log.warning("%s: attempt %d of %d failed (%s); retrying", self.keys[index], outcome.attempts,
                        self.retries + 1, outcome.error)
            return False
        log.error("%s: failed after %d attempt(s): %s", self.keys[index], outcome.attempts, outcome.error)
        return True
