"""``--executor ray``: one Ray task per unit, on a running cluster or a private local instance.

Ray is an optional dependency (the ``ray`` extra), imported on use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Iterator

from blursynth import interrupt
from blursynth.errors import ConfigError, MissingDependencyError
from blursynth.run.executors.base import Outcome, Retrying, call_unit, describe
from blursynth.run.executors.forwarding import ForwardingProgress, apply_events, route_logs
from blursynth.run.host import tune_process

log = logging.getLogger("blursynth.run")


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "--executor ray: Ray is not installed; install it with: pip install 'blursynth[ray]'") from None
    return ray


_ray_started_here = False  # connect_ray started a private instance: the executor shuts it down after the run


def connect_ray(address: str | None):
    """Import Ray and join (or start) the cluster, before any output is written.

    ``address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; None joins ``$RAY_ADDRESS`` or starts a
    private local instance. A HOST:PORT that does not answer fails in seconds (Ray itself retries for
    minutes).

    Raises:
        MissingDependencyError: Ray is not installed. ConfigError: the cluster cannot be reached or started.
    """
    global _ray_started_here
    ray = import_ray()
    if ray.is_initialized():
        return ray
    where = address or os.environ.get("RAY_ADDRESS")
    if where and where not in ("auto", "local") and not where.startswith("ray://"):
        host, _, port = where.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else describe(exc)
            raise ConfigError(f"--ray-address {where}: no Ray cluster answers there ({why})") from None
    ours = interrupt.installed()
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
        raise ConfigError(f"--ray-address {where or '(local)'}: cannot start or join Ray ({describe(exc)})") from None
    finally:
        if ours and threading.current_thread() is threading.main_thread():
            interrupt.install()  # ray.init replaces the SIGINT/SIGTERM handlers with its own (sys.exit)
    _ray_started_here = not where or where == "local"
    return ray


class _Relay:
    """A tiny Ray actor through which tasks send progress events and log records to the driver."""

    def __init__(self) -> None:
        self._items: list = []

    def push(self, items: list) -> None:
        self._items.extend(items)

    def drain(self) -> list:
        items, self._items = self._items, []
        return items


def _ray_task(fn, unit, out, relay, log_level: int, cwd: str) -> Outcome:
    """Body of one Ray task: run the unit with progress and logs relayed to the driver.

    Runs in the driver's working directory, so relative OUT and input paths mean what they meant to the user
    (Ray workers start in a directory of their own).
    """
    tune_process()  # a Ray worker is the raylet's child, not the driver's (blursynth/run/host.py)
    try:
        os.chdir(cwd)
    except OSError as exc:
        return Outcome(error=f"the driver's working directory {cwd} is not available on Ray node "
                             f"{socket.gethostname()} ({exc.strerror}); give OUT and inputs as absolute paths on "
                             f"storage every node mounts at the same place", fatal="ConfigError")
    pushed: list = []  # the relay's replies; awaited before returning (see below)

    def push(item) -> None:
        pushed.append(relay.push.remote([item]))

    route_logs(log_level, lambda level, msg: push(("log", level, msg)))
    progress = ForwardingProgress(lambda events: push(("progress", events)))
    outcome = call_unit(fn, unit, out, progress)
    progress.flush()
    # Actor calls are asynchronous: the driver may see this task finish before the relay has run its last
    # pushes, and drain too early (a unit's samples would be missing from the totals). Wait for them.
    with contextlib.suppress(Exception):
        import_ray().get(pushed, timeout=30)
    return outcome


class RayExecutor:
    """``--executor ray``: one Ray task per unit, on a running cluster or a private local instance.

    Every worker node must see OUT at the same path (shared storage) and have blursynth installed.
    """

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 2, num_gpus: float = 0.0) -> None:
        self.address, self.retries, self.num_gpus = address, retries, num_gpus

    def run(self, fn, units, keys, out, progress) -> Iterator[tuple[int, Outcome]]:
        global _ray_started_here
        ray = connect_ray(self.address)
        tries = Retrying(keys, self.retries)
        level = logging.getLogger("blursynth").getEffectiveLevel()
        relay = ray.remote(num_cpus=0)(_Relay).remote()
        cwd = os.getcwd()
        task = ray.remote(_ray_task).options(num_cpus=1, num_gpus=self.num_gpus or 0, max_retries=0)
        running: dict = {}

        def submit(index: int) -> None:
            tries.start(index)
            running[task.remote(fn, units[index], out, relay, level, cwd)] = index

        def drain() -> None:
            try:
                items = ray.get(relay.drain.remote(), timeout=30)
            except Exception as exc:  # noqa: BLE001 - a lost relay costs progress display, never the run
                log.debug("progress relay unavailable: %s", describe(exc))
                return
            for kind, *rest in items:
                if kind == "progress":
                    apply_events(progress, rest[0])
                else:
                    logging.getLogger("blursynth.worker").log(rest[0], "%s", rest[1])

        # Bounded submission: every pending task's arguments (the unit) live in the object store, and a
        # million-sample `local` run has thousands of units. Twice the cluster's CPUs keeps every CPU fed.
        limit = max(4, 2 * int(ray.cluster_resources().get("CPU", 2)))
        todo = deque(range(len(units)))
        try:
            while running or todo:
                interrupt.check()
                while todo and len(running) < limit:
                    submit(todo.popleft())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                drain()
                for ref in ready:
                    index = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker died, node lost, unpicklable unit...
                        cause = getattr(exc, "cause", None)
                        outcome = Outcome(error=f"Ray task lost ({describe(cause if cause is not None else exc)})")
                    if tries.settle(index, outcome):
                        yield index, outcome
                    else:
                        todo.appendleft(index)
            drain()
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if running:  # let cancelled tasks die before the driver sweeps their partial files
                with contextlib.suppress(Exception):
                    ray.wait(list(running), num_returns=len(running), timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(relay)
            if _ray_started_here:  # a private instance; a joined cluster stays up
                _ray_started_here = False
                ray.shutdown()
