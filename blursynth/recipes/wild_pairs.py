"""Pair measurements of the flow-aware path, computed ahead in worker threads (WILD's speed, issue 20).

A pair's measurement (forward and backward flow, :func:`blursynth.flow.measure.measure`, its statistic and
frame-matching error) depends on its two frames only, so pair ``j`` can run while pair ``j - 1`` is still being
measured; OpenCV's flow and NumPy's array kernels release the GIL, so two pairs in flight keep both cores busy.
The verdicts are still handed to the sampler strictly in order, and a pair is measured only when the sampler
may still use it (:func:`may_need_pair`): the selected windows, their statistics and the rejection counts are
those of the sequential path. Each worker thread has its own backend instance (an OpenCV flow object must
not run two ``calc`` at once); OpenCV's DIS gives the same field from any instance and thread.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from blursynth.flow import FlowBackend
from blursynth.flow.measure import Measured, measure
from blursynth.ops.windows import WindowSampler

#: Pairs measured at once (two cores: one pair per core while the main thread averages).
PAIR_WORKERS = 2


def may_need_pair(sampler: WindowSampler, j: int, *, fed: bool) -> bool:
    """Whether pair ``j`` (frames j, j + 1) can still matter once frame ``j`` is pushed.

    ``fed``: frame ``j`` was pushed already (the answer is exact). Otherwise every frame before it was, and the
    verdict of pair ``j - 1`` is not known yet: the answer covers both verdicts, so it is never False for a
    pair the sequential path would measure.
    """
    if fed or sampler.done:
        return sampler.needs_pair(j)
    for verdict in (None, "pending"):
        trial = copy.deepcopy(sampler)
        trial.push(j, verdict)
        if trial.needs_pair(j):
            return True
    return False


class PairPool:
    """Measures pairs in worker threads; each worker builds its own backend with ``make_flow``.

    ``submit(flow_in0, flow_in1, gray0, gray1)`` returns a future of the pair's :class:`Measured`; ``close``
    cancels what is queued and waits for what runs.
    """

    def __init__(self, make_flow: Callable[[], FlowBackend], workers: int = PAIR_WORKERS) -> None:
        self._make_flow = make_flow
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blursynth-flow")

    def _backend(self) -> FlowBackend:
        flow = getattr(self._local, "flow", None)
        if flow is None:
            flow = self._local.flow = self._make_flow()
        return flow

    def _measure(self, in0: np.ndarray, in1: np.ndarray, gray0: np.ndarray, gray1: np.ndarray) -> Measured:
        flow = self._backend()
        fwd = flow.pairs([in0, in1])[0]
        bwd = flow.backward_pairs([in0, in1])[0]
        return measure(fwd, bwd, gray0, gray1)

    def submit(self, in0: np.ndarray, in1: np.ndarray, gray0: np.ndarray, gray1: np.ndarray) -> Future:
        return self._pool.submit(self._measure, in0, in1, gray0, gray1)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
