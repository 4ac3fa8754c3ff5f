"""``--workers N``: N spawned worker processes on this machine, one unit at a time each.

Workers are spawned (never forked: torch, OpenCV and HDF5 state is not fork-safe) and die with the driver,
so a ``kill -9`` of the driver never leaves a worker writing into OUT.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from blursynth import interrupt
from blursynth.run.executors.base import Outcome, Retrying, call_unit, describe
from blursynth.run.executors.forwarding import ForwardingProgress, apply_events, route_logs
from blursynth.run.host import tune_process
from blursynth.run.progress import ProgressSink

MAX_MESSAGES = 64  # messages read from one worker per turn of the driver's loop


def _limit_threads(threads: int) -> None:
    """One worker per core: keep each worker's math libraries from using every core."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


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
        tune_process()  # inherited from the driver as a rule; a spawned interpreter may not be its child
        _limit_threads(threads)
        route_logs(log_level, lambda level, msg: send(("log", level, msg)))
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
        tries = Retrying(keys, self.retries)
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
