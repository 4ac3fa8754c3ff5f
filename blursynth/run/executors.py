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
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from blursynth import errors
from blursynth.config.fields import ExecutorOptions
from blursynth.errors import BlurSynthError, ConfigError, MissingDependencyError
from blursynth.run import interrupt
from blursynth.run.progress import ProgressSink

log = logging.getLogger("blursynth.run")

FLUSH_SECONDS = 0.2  # progress events are batched this long in workers
MAX_MESSAGES = 64  # messages read from one worker per turn of the driver's loop


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


class _Retrying:
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


def create_executor(options: ExecutorOptions):
    if options.executor == "ray":
        return RayExecutor(options.ray_address, options.retries, options.num_gpus)
    if options.workers > 1:
        return ProcessExecutor(options.workers, options.retries)
    return SerialExecutor(options.retries)


# -- in this process ------------------------------------------------------------------------------------
class SerialExecutor:
    """Runs units one after the other in the driver process (``--workers 1``)."""

    name = "serial"

    def __init__(self, retries: int = 2) -> None:
        self.retries = retries

    def run(self, fn, units, keys, out, progress) -> Iterator[tuple[int, Outcome]]:
        tries = _Retrying(keys, self.retries)
        for index, unit in enumerate(units):
            while True:
                interrupt.check()
                tries.start(index)
                outcome = call_unit(fn, unit, out, progress)
                if tries.settle(index, outcome):
                    break
            yield index, outcome


# -- worker side (local processes and Ray tasks) --------------------------------------------------------
class ForwardingProgress(ProgressSink):
    """Progress sink of a worker: batches events and hands them to ``send`` (at most every FLUSH_SECONDS)."""

    def __init__(self, send: Callable[[list], None]) -> None:
        self._send = send
        self._frames = self._samples = 0
        self._events: list = []
        self._last = time.monotonic()

    def source_started(self, key: str, frames: int) -> None:
        self._events.append(("source_started", (key, frames)))
        self.flush()

    def advance(self, frames: int = 0, samples: int = 0) -> None:
        self._frames += frames
        self._samples += samples
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def source_finished(self, key: str, status: str, samples: int, reason: str | None = None) -> None:
        self._pending_advance()
        self._events.append(("source_finished", (key, status, samples, reason)))
        self.flush()

    def _pending_advance(self) -> None:
        if self._frames or self._samples:
            self._events.append(("advance", (self._frames, self._samples)))
            self._frames = self._samples = 0

    def flush(self) -> None:
        self._pending_advance()
        self._last = time.monotonic()
        if self._events:
            events, self._events = self._events, []
            self._send(events)


def apply_events(progress: ProgressSink, events: list) -> None:
    """Replay a worker's progress events on the driver's sink."""
    for method, args in events:
        getattr(progress, method)(*args)


class _ForwardingLog(logging.Handler):
    """Sends a worker's log records to the driver, which emits them with its own handlers."""

    def __init__(self, send: Callable[[int, str], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break a unit
            pass


def _route_logs(level: int, send: Callable[[int, str], None]) -> None:
    root = logging.getLogger("blursynth")
    root.handlers[:] = [_ForwardingLog(send)]
    root.setLevel(level)
    root.propagate = False


def _limit_threads(threads: int) -> None:
    """One worker per core: keep each worker's math libraries from using every core."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


# -- local worker processes -------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """Never outlive the driver: a killed driver must not leave workers writing into OUT."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:  # portable fallback (and covers the PDEATHSIG race at start-up)
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="watch-driver", daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored():
    """Start workers with SIGINT ignored (an ignored signal survives exec).

    A terminal's Ctrl-C goes to the whole process group; a worker interrupted at an arbitrary point (even
    while still importing) would print a traceback. Instead the driver gets the KeyboardInterrupt and stops
    busy workers with SIGTERM, which they turn into the same clean-up as Ctrl-C (``interrupt.install``).
    """
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_main(conn, parent_pid: int, log_level: int, threads: int) -> None:
    """Loop of a spawned worker: receive ``(index, pickled (fn, unit, out))``, send events and the outcome."""
    _die_with_parent(parent_pid)
    interrupt.install((signal.SIGTERM,))  # SIGINT stays ignored (see _sigint_ignored)
    lock = threading.Lock()

    def send(message) -> None:
        with lock:
            conn.send(message)

    try:
        _limit_threads(threads)
        _route_logs(log_level, lambda level, msg: send(("log", level, msg)))
        progress = ForwardingProgress(lambda events: send(("progress", events)))
        while True:
            task = conn.recv()
            if task is None:
                break
            index, payload = task
            try:
                fn, unit, out = pickle.loads(payload)
            except Exception as exc:  # noqa: BLE001 - e.g. a unit class this worker cannot import
                outcome = Outcome(error=f"a worker cannot load the work unit ({describe(exc)})", fatal="ConfigError")
            else:
                outcome = call_unit(fn, unit, out, progress)
                progress.flush()
            try:
                send(("done", index, outcome))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                send(("done", index, Outcome(error=f"a unit's result cannot be sent back ({describe(exc)})",
                                             fatal="ConfigError")))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # Ctrl-C, SIGTERM or a vanished driver: the unit has already dropped its shard in progress
    finally:
        with contextlib.suppress(Exception):
            conn.close()


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: int | None = None
    closed: bool = False  # its end of the pipe is closed (EOF read)


class ProcessExecutor:
    """``--workers N``: N spawned processes on this machine, one unit at a time each.

    Home-grown rather than ``concurrent.futures.ProcessPoolExecutor`` because a dead worker breaks that
    whole pool without saying which unit killed it; here the unit held by a dead worker is known, charged
    one attempt, and the worker is replaced.
    """

    name = "processes"

    def __init__(self, workers: int, retries: int = 2) -> None:
        self.workers, self.retries = workers, retries

    def run(self, fn, units, keys, out, progress) -> Iterator[tuple[int, Outcome]]:
        ctx = multiprocessing.get_context("spawn")
        tries = _Retrying(keys, self.retries)
        todo = deque(range(len(units)))
        pool: list[_Worker] = []
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        level = logging.getLogger("blursynth").getEffectiveLevel()
        left = len(units)

        def spawn() -> _Worker:
            mine, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_worker_main, args=(theirs, os.getpid(), level, threads), daemon=True,
                            name=f"blursynth-worker-{len(pool)}")
            with _sigint_ignored():  # inherited through exec: Ctrl-C reaches workers only via the driver
                p.start()
            theirs.close()
            return _Worker(p, mine)

        try:
            while left:
                interrupt.check()
                # Keep up to `workers` processes, each busy with one unit.
                while todo:
                    worker = next((w for w in pool if w.task is None), None)
                    if worker is None:
                        if len(pool) >= self.workers:
                            break
                        worker = spawn()
                        pool.append(worker)
                    index = todo.popleft()
                    tries.start(index)
                    try:
                        payload = pickle.dumps((fn, units[index], out), protocol=pickle.HIGHEST_PROTOCOL)
                    except Exception as exc:  # noqa: BLE001 - a library caller's unpicklable unit or function
                        yield index, Outcome(error=f"work unit {keys[index]} cannot be sent to a worker process "
                                                   f"({describe(exc)})", fatal="ConfigError")
                        return
                    worker.task = index
                    try:
                        worker.conn.send((index, payload))
                    except (BrokenPipeError, OSError):
                        pass  # the worker is dead; noticed below through its sentinel
                # A closed pipe is always "readable": wait on its process only, or this loop would spin.
                ready = multiprocessing.connection.wait(
                    [w.conn for w in pool if not w.closed] + [w.process.sentinel for w in pool], timeout=1.0)
                for w in list(pool):
                    if not w.closed and w.conn in ready:
                        try:
                            for _ in range(MAX_MESSAGES):  # bounded: a chatty worker must not starve the others
                                if not w.conn.poll():
                                    break
                                message = w.conn.recv()
                                done = self._handle(message, w, progress)
                                if done is not None:
                                    index, outcome = done
                                    if tries.settle(index, outcome):
                                        left -= 1
                                        yield index, outcome
                                    else:
                                        todo.append(index)
                        except (EOFError, OSError):
                            w.closed = True  # died: everything it sent has been read
                    if not w.process.is_alive() and (w.closed or not w.conn.poll()):
                        w.process.join()
                        pool.remove(w)
                        w.conn.close()
                        if w.task is not None:
                            index, w.task = w.task, None
                            code = w.process.exitcode
                            why = (f"worker process killed by signal {-code}" if code and code < 0
                                   else f"worker process exited with code {code}")
                            outcome = Outcome(error=why)
                            if tries.settle(index, outcome):
                                left -= 1
                                yield index, outcome
                            else:
                                todo.appendleft(index)
        finally:
            self._shutdown(pool)

    @staticmethod
    def _handle(message, worker: _Worker, progress: ProgressSink):
        kind = message[0]
        if kind == "progress":
            apply_events(progress, message[1])
        elif kind == "log":
            logging.getLogger("blursynth.worker").log(message[1], "%s", message[2])
        elif kind == "done":
            worker.task = None
            return message[1], message[2]
        return None

    @staticmethod
    def _shutdown(pool: list[_Worker]) -> None:
        """Idle workers are told to stop; busy ones (Ctrl-C, fatal error) get SIGTERM, then SIGKILL."""
        for w in pool:
            with contextlib.suppress(Exception):
                if w.task is None:
                    w.conn.send(None)
                else:
                    w.process.terminate()
        deadline = time.monotonic() + 10
        for w in pool:
            w.process.join(max(0.1, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            with contextlib.suppress(Exception):
                w.conn.close()


# -- Ray ----------------------------------------------------------------------------------------------------
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
    try:
        os.chdir(cwd)
    except OSError as exc:
        return Outcome(error=f"the driver's working directory {cwd} is not available on Ray node "
                             f"{socket.gethostname()} ({exc.strerror}); give OUT and inputs as absolute paths on "
                             f"storage every node mounts at the same place", fatal="ConfigError")
    _route_logs(log_level, lambda level, msg: relay.push.remote([("log", level, msg)]))
    progress = ForwardingProgress(lambda events: relay.push.remote([("progress", events)]))
    outcome = call_unit(fn, unit, out, progress)
    progress.flush()
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
        tries = _Retrying(keys, self.retries)
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
