"""Executors: run picklable work units in this process, in worker processes, or on a Ray cluster.

Contract (the same for every executor): ``run(fn, units, keys, out, progress)`` calls ``fn(unit, out,
progress)`` once per unit (plus retries) and yields ``(index, Outcome)`` as units finish, in any order.
:func:`run_units` collects the outcomes back into unit order, so shard numbering and manifests never
depend on scheduling. Units write their own shards to OUT (a shared filesystem path for Ray); only the
small :class:`Outcome` travels back to the driver.

Failures:

* ``fn`` raising an ordinary exception, or its worker process dying (``kill -9``, a segfault in a
  decoder), is one failed attempt. The unit is retried up to ``retries`` times, then reported as an
  error with its last reason; the run goes on.
* ``fn`` raising a :class:`~blursynth.errors.BlurSynthError` (disk full, missing dependency) is fatal:
  every worker is stopped and the error is raised in the driver.
* Ctrl-C (``KeyboardInterrupt``) stops every worker; units drop their shard in progress (see
  ``UnitSink.abort``), the driver sweeps any ``.partial`` file a killed worker could not remove.

Workers of the local executor are spawned (never forked: torch, OpenCV and HDF5 state is not fork-safe)
and die with the driver, so a ``kill -9`` of the driver never leaves a worker writing into OUT.
Progress events and log records of workers are forwarded to the driver's progress display and logging.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from blursynth.config.fields import ExecutorOptions
from blursynth.run.executors.base import Executor, Outcome, raise_fatal
from blursynth.run.executors.process import ProcessExecutor
from blursynth.run.executors.ray_cluster import RayExecutor
from blursynth.run.executors.serial import SerialExecutor
from blursynth.run.progress import ProgressSink


def run_units(fn: Callable, units: Sequence, keys: Sequence[str], out, progress: ProgressSink,
              options: ExecutorOptions) -> list[Outcome]:
    """Execute every unit and return the outcomes in unit order.

    Raises:
        BlurSynthError: a unit hit a fatal error (every worker has been stopped).
        KeyboardInterrupt: Ctrl-C (every worker has been stopped).
    """
    options.check()
    outcomes: list[Outcome | None] = [None] * len(units)
    executor = create_executor(options)
    with contextlib.closing(executor.run(fn, units, keys, out, progress)) as finished:
        for index, outcome in finished:
            if outcome.fatal:
                raise_fatal(outcome)
            if not outcome.ok:  # the unit could not report its own end
                progress.source_finished(keys[index], "error", 0, outcome.error)
            outcomes[index] = outcome
    missing = [keys[i] for i, o in enumerate(outcomes) if o is None]
    if missing:  # an executor bug, never a user error
        raise RuntimeError(f"executor {executor.name} returned no outcome for {missing[:3]}")
    return outcomes  # type: ignore[return-value]


def create_executor(options: ExecutorOptions) -> Executor:
    if options.executor == "ray":
        return RayExecutor(options.ray_address, options.retries, options.num_gpus)
    if options.workers > 1:
        return ProcessExecutor(options.workers, options.retries)
    return SerialExecutor(options.retries)
