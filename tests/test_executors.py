"""Executors: ordering, retries, worker deaths, fatal errors, progress/log forwarding, and the same bytes from
``--workers 1``, ``--workers 2`` and Ray.

Unit functions live in ``executor_units.py`` (importable by spawned workers and Ray tasks). The Ray tests
start a private 2-CPU Ray instance once for the module (``ray.init(num_cpus=2)``), as CI does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import executor_units as units
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from scale_data import assert_same_dataset, average_args, local_args, local_inputs, video_inputs

from blursynth.config import ExecutorOptions
from blursynth.errors import ConfigError, MissingDependencyError, OutputError
from blursynth.run.executors import run_units
from blursynth.run.executors.forwarding import ForwardingProgress, apply_events
from blursynth.run.executors.ray_cluster import import_ray
from blursynth.run.progress import ProgressSink

TESTS = Path(__file__).parent


class Recording(ProgressSink):
    def __init__(self) -> None:
        self.frames = self.samples = 0
        self.started: list[str] = []
        self.finished: list[tuple[str, str]] = []

    def source_started(self, key, frames):
        self.started.append(key)

    def advance(self, frames=0, samples=0):
        self.frames += frames
        self.samples += samples

    def source_finished(self, key, status, samples, reason=None):
        self.finished.append((key, status))


@contextlib.contextmanager
def captured(logger: str):
    """Messages logged to ``logger`` (CLI tests turn off propagation of "blursynth", so caplog cannot see them)."""
    records: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())
    target = logging.getLogger(logger)
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield records
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


def run(fn, values, out, **options):
    progress = Recording()
    outcomes = run_units(fn, values, [f"u{v}" for v in values], str(out), progress, ExecutorOptions(**options))
    return outcomes, progress


LOCAL = [pytest.param({"workers": 1}, id="serial"), pytest.param({"workers": 2}, id="processes")]


# -- contract: order, values, progress ---------------------------------------------------------------------
@pytest.mark.parametrize("options", LOCAL)
def test_outcomes_come_back_in_unit_order_with_aggregated_progress(options, tmp_path):
    values = [5, 3, 8, 1, 9, 2, 7]
    outcomes, progress = run(units.square, values, tmp_path, **options)
    assert [o.result["value"] for o in outcomes] == [v * v for v in values]
    assert all(o.ok and o.attempts == 1 for o in outcomes)
    pids = {o.result["pid"] for o in outcomes}
    if options["workers"] == 1:
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # every worker's events reached the driver's sink
    assert progress.frames == sum(values) and progress.samples == len(values)
    assert sorted(progress.started) == sorted(f"u{v}" for v in values)
    assert sorted(progress.finished) == sorted((f"u{v}", "ok") for v in values)
    assert not multiprocessing.active_children()


def test_forwarding_progress_batches_advances_and_keeps_event_order():
    sent: list[list] = []
    sink = ForwardingProgress(sent.append)
    sink.source_started("a", 10)
    for _ in range(10):
        sink.advance(frames=1)
    sink.advance(samples=2)
    sink.source_finished("a", "ok", 2)
    events = [e for batch in sent for e in batch]
    assert events[0] == ("source_started", ("a", 10))
    assert events[-1] == ("source_finished", ("a", "ok", 2, None))
    replay = Recording()
    apply_events(replay, events)
    assert (replay.frames, replay.samples, replay.finished) == (10, 2, [("a", "ok")])
    assert len(sent) <= 3  # batched, not one message per frame


# -- retries -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", LOCAL)
def test_a_unit_that_fails_once_is_retried_and_succeeds(options, tmp_path):
    with captured("blursynth.run") as messages:
        outcomes, progress = run(units.flaky, [0, 1, 2], tmp_path, **options)
    assert [o.result["value"] for o in outcomes] == [0, 1, 4]
    assert [o.attempts for o in outcomes] == [2, 2, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flaky-0", "flaky-1", "flaky-2"]
    assert "u0: attempt 1 of 3 failed (RuntimeError: transient failure of unit 0); retrying" in messages
    assert sorted(progress.finished) == [("u0", "ok"), ("u1", "ok"), ("u2", "ok")]


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("options", LOCAL)
def test_a_unit_that_always_fails_is_recorded_and_the_run_goes_on(options, retries, tmp_path):
    outcomes, progress = run(units.broken, [0, 1, 2, 3], tmp_path, retries=retries, **options)
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert outcomes[1].error == "ValueError: unit 1 is broken"
    assert outcomes[1].attempts == retries + 1
    assert len(list(tmp_path.glob("attempt-1-*"))) == retries + 1
    assert ("u1", "error") in progress.finished and len(progress.finished) == 4


def test_a_killed_worker_is_replaced_and_its_unit_retried(tmp_path):
    outcomes, _ = run(units.dies_once, [0, 1, 2, 3], tmp_path, workers=2)
    assert [o.result["value"] for o in outcomes] == [0, 1, 4, 9]
    assert outcomes[0].attempts == 2 and [o.attempts for o in outcomes[1:]] == [1, 1, 1]
    assert not multiprocessing.active_children()


def test_a_killed_worker_without_retries_is_reported_with_the_signal(tmp_path):
    outcomes, _ = run(units.dies_once, [0, 1], tmp_path, workers=2, retries=0)
    assert not outcomes[0].ok and outcomes[0].error == "worker process killed by signal 9"
    assert outcomes[1].ok


# -- fatal errors, logs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", LOCAL)
def test_a_fatal_error_stops_every_worker_and_is_raised_as_is(options, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(OutputError, match=r"00002\.h5: cannot write \(No space left on device\)"):
        run(units.disk_full, list(range(12)), tmp_path, **options)
    assert time.monotonic() - t0 < 30
    assert not multiprocessing.active_children()


def test_worker_log_records_reach_the_driver(tmp_path):
    with captured("blursynth.worker") as records:
        run(units.logs, [1, 2], tmp_path, workers=2)
    assert sorted(records) == ["unit 1 says hello", "unit 2 says hello"]


def test_workers_die_with_a_killed_driver(tmp_path):
    """``kill -9`` of the driver must not leave workers writing into OUT."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import executor_units
        from blursynth.config import ExecutorOptions
        from blursynth.run.executors import run_units
        from blursynth.run.progress import ProgressSink
        run_units(executor_units.sleeper, [0, 1], ["a", "b"], {str(tmp_path)!r}, ProgressSink(),
                  ExecutorOptions(workers=2))
    """)
    driver = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"pid-{i}").exists() for i in (0, 1)):
            assert time.monotonic() < deadline, "workers did not start"
            assert driver.poll() is None, "driver ended early"
            time.sleep(0.1)
        pids = [int((tmp_path / f"pid-{i}").read_text()) for i in (0, 1)]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, f"orphaned workers still running: {pids}"
            time.sleep(0.1)
    finally:
        if driver.poll() is None:
            driver.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


# -- options -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    ({"workers": 0}, "--workers: expected a positive number, got 0"),
    ({"retries": -1}, "--retries: expected 0 or more, got -1"),
    ({"executor": "dask"}, "--executor: unknown executor 'dask'"),
    ({"ray_address": "auto"}, "--ray-address: only used with --executor ray"),
    ({"executor": "ray", "workers": 2}, "--workers: only used with --executor local"),
])
def test_executor_options_are_checked(kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExecutorOptions(**kw).check()


def test_missing_ray_is_one_clean_error_before_out_is_touched(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'blursynth\[ray\]'"):
        import_ray()
    inputs = local_inputs(tmp_path)
    out = tmp_path / "out"
    result = invoke(*local_args(inputs, out), "--executor", "ray")
    assert_clean_error(result, "--executor ray: Ray is not installed")
    assert not out.exists()


# -- same bytes whatever the executor ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-inputs")
    return {**local_inputs(root), "videos": video_inputs(root), "root": root}


@pytest.fixture(scope="module")
def reference(inputs):
    """``--workers 1`` outputs of local and average."""
    root = inputs["root"]
    run_ok(*local_args(inputs, root / "local-w1"))
    run_ok(*average_args(inputs["videos"], root / "average-w1"))
    return {"local": root / "local-w1", "average": root / "average-w1"}


def test_local_with_two_workers_equals_one_worker(inputs, reference, tmp_path):
    run_ok(*local_args(inputs, tmp_path / "out"), "--workers", "2")
    assert_same_dataset(tmp_path / "out", reference["local"])


def test_average_with_two_workers_equals_one_worker(inputs, reference, tmp_path):
    run_ok(*average_args(inputs["videos"], tmp_path / "out"), "--workers", "2")
    assert_same_dataset(tmp_path / "out", reference["average"])


def test_a_unit_error_exits_1_keeps_the_rest_and_a_rerun_completes(inputs, reference, tmp_path, monkeypatch):
    """A unit that raises on every attempt: the others are written, the manifest says incomplete, exit 1 with
    a summary; the same command again retries it and the result equals an uninterrupted run."""
    import blursynth.recipes.local as local_recipe

    real = local_recipe.run_local_unit

    def failing(unit, out, progress=None):
        if unit.key == "train/00001":
            raise RuntimeError("simulated crash")
        return real(unit, out, progress)

    out = tmp_path / "out"
    monkeypatch.setattr(local_recipe, "run_local_unit", failing)
    result = invoke(*local_args(inputs, out), "--retries", "1")
    line = assert_clean_error(result, "1 of 7 work unit(s) failed after 2 attempt(s): train/00001: "
                                      "RuntimeError: simulated crash", exit_code=1)
    assert "rerun the same command" in line
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert manifest["totals"]["errors"] == [
        {"source": "train/00001", "reason": "RuntimeError: simulated crash", "attempts": 2}]
    assert not (out / "train" / "00001_stats.json").exists()
    assert (out / "train" / "00000_stats.json").exists() and (out / "train" / "00002_stats.json").exists()
    monkeypatch.setattr(local_recipe, "run_local_unit", real)
    run_ok(*local_args(inputs, out))
    assert_same_dataset(out, reference["local"])


def test_an_unreachable_ray_address_fails_fast_before_out_is_touched(inputs, tmp_path):
    """Runs before the Ray fixture starts an instance in this process (an initialised Ray is reused as is)."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "precondition: no Ray instance in this process yet"
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = invoke(*local_args(inputs, out), "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert_clean_error(result, "--ray-address 127.0.0.1:1: no Ray cluster answers there")
    assert time.monotonic() - t0 < 30 and not out.exists()


# -- Ray ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    """A private 2-CPU Ray instance whose workers can import ``executor_units`` (tests/ on PYTHONPATH)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def test_ray_local_equals_local_workers(ray_cluster, inputs, reference, tmp_path):
    run_ok(*local_args(inputs, tmp_path / "out"), "--executor", "ray")
    assert_same_dataset(tmp_path / "out", reference["local"])


def test_ray_average_equals_local_workers(ray_cluster, inputs, reference, tmp_path):
    run_ok(*average_args(inputs["videos"], tmp_path / "out"), "--executor", "ray")
    assert_same_dataset(tmp_path / "out", reference["average"])


def test_ray_retries_a_failing_task_and_aggregates_progress(ray_cluster, tmp_path):
    outcomes, progress = run(units.flaky, [0, 1, 2], tmp_path, executor="ray")
    assert [o.result["value"] for o in outcomes] == [0, 1, 4] and [o.attempts for o in outcomes] == [2, 2, 2]
    assert progress.samples == 3 and sorted(progress.finished) == [("u0", "ok"), ("u1", "ok"), ("u2", "ok")]
    outcomes, _ = run(units.broken, [0, 1], tmp_path, executor="ray", retries=1)
    assert outcomes[1].error == "ValueError: unit 1 is broken" and outcomes[1].attempts == 2


def test_ray_a_fatal_error_is_raised(ray_cluster, tmp_path):
    with pytest.raises(OutputError, match="No space left on device"):
        run(units.disk_full, list(range(6)), tmp_path, executor="ray")


def test_ray_address_joins_a_running_cluster_from_another_process(ray_cluster, inputs, reference, tmp_path):
    """``--ray-address HOST:PORT``: a second driver (the CLI in a subprocess) joins the module's cluster."""
    address = ray_cluster.get_runtime_context().gcs_address
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "blursynth", *local_args(inputs, out), "--executor", "ray",
                           "--ray-address", address], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert_same_dataset(out, reference["local"])



def test_ray_stats_equals_local_workers(ray_cluster, inputs, tmp_path):
    """``stats`` sends one unit per source to Ray; the CSV is the same bytes as with ``--workers 1``."""
    base = ["stats", f"PAN={inputs['videos']}", "--flow", "dis", "--flow-threshold", "0:4:0.5",
            "--pairs-per-source", 3, "-q"]
    run_ok(*base, "--out", tmp_path / "w1")
    run_ok(*base, "--executor", "ray", "--out", tmp_path / "ray")
    csv = "blurred_area_ratio.csv"
    assert (tmp_path / "ray" / csv).read_bytes() == (tmp_path / "w1" / csv).read_bytes()
    assert len((tmp_path / "w1" / csv).read_text().splitlines()) == 1 + 9


def test_a_swallowed_interrupt_is_raised_at_the_next_check_and_not_reported(monkeypatch):
    """A Ctrl-C that landed in a GC callback was dropped (and printed as "Exception ignored"): the flag makes
    the next ``check()`` raise it, and the unraisable hook keeps the report off stderr."""
    from types import SimpleNamespace

    from blursynth import interrupt

    interrupt.check()  # nothing requested: no-op
    reported = []
    monkeypatch.setattr(interrupt, "_default_unraisable", reported.append)
    monkeypatch.setattr(interrupt, "_requested", type(interrupt._requested)())
    interrupt._requested.set()
    with pytest.raises(KeyboardInterrupt):
        interrupt.check()
    interrupt._unraisable(SimpleNamespace(exc_value=KeyboardInterrupt()))
    assert reported == []
    other = SimpleNamespace(exc_value=ValueError("a real problem"))
    interrupt._unraisable(other)
    assert reported == [other]


def test_ray_tasks_request_a_gpu_only_on_cuda():
    from blursynth.config import AverageConfig

    cfg = AverageConfig(inputs=("a.mp4",), out="out", executor="ray", retries=1)
    assert cfg.executor_options("cuda:0") == ExecutorOptions("ray", 1, None, 1, num_gpus=1.0)
    assert cfg.executor_options("cpu").num_gpus == 0.0
    assert "workers" not in cfg.fingerprint() and "executor" not in cfg.fingerprint()


def test_an_unpicklable_unit_is_one_clean_error_with_worker_processes(tmp_path):
    with pytest.raises(ConfigError, match=r"work unit u0 cannot be sent to a worker process"):
        run_units(units.square, [lambda: 0], ["u0"], str(tmp_path), ProgressSink(), ExecutorOptions(workers=2))
    assert not multiprocessing.active_children()


def test_ray_tasks_run_in_the_drivers_working_directory(ray_cluster, inputs, reference, tmp_path, monkeypatch):
    """A relative OUT means the same folder to every task as to the user (Ray workers start elsewhere)."""
    monkeypatch.chdir(tmp_path)
    run_ok(*local_args(inputs, Path("relative-out")), "--executor", "ray")
    assert_same_dataset(tmp_path / "relative-out", reference["local"])
