"""Fault injection through the real command line, in subprocesses: kill -9 of the driver and of a worker,
a full disk (RLIMIT_FSIZE), and Ctrl-C of the whole process group.

Every scenario checks the crash-safety contract of the shard format (a shard is complete iff its
``_stats.json`` marker exists; no marker ever points to a corrupt HDF5 file), that nothing is left running or
half-written, and that rerunning the same command produces exactly the dataset of an uninterrupted run.

Interruptions are timed by watching OUT (markers, the manifest's status, the workers' open ``.partial`` files),
never by sleeping; a kill that lands after the run already finished fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from scale_data import assert_same_dataset, average_args, local_args, local_inputs, video_inputs

pytestmark = [pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]
# `local`: 64 samples in shards of 2 = 32 work units (a `--workers 2` run takes a few seconds).
LOCAL_SAMPLES, LOCAL_SHARD = 64, 2
LOCAL_SHARDS = LOCAL_SAMPLES // LOCAL_SHARD
# `average`: 4 clips of 121 frames, one unit per clip, 17 one-sample shards each.
VIDEO_COUNT, VIDEO_FRAMES = 4, 121
RUN_TIMEOUT = 90  # seconds for one uninterrupted CLI run (a loaded CI machine included)


# -- running the CLI ------------------------------------------------------------------------------------------
def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def cli_cmd(args) -> list[str]:
    return [sys.executable, "-m", "blursynth", *map(str, args)]


def run_cli(args, cwd: Path, *, timeout: float = RUN_TIMEOUT, env: dict | None = None,
            **popen_kw) -> subprocess.CompletedProcess:
    """Run the CLI to its end (stdout and stderr captured through pipes, which no file size limit affects)."""
    try:
        return subprocess.run(cli_cmd(args), cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, **popen_kw)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"blursynth {' '.join(map(str, args[:1]))} did not finish within {timeout} s\n{exc.stderr}")


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


class Started:
    """A CLI run in the background; its output goes to files (never a pipe that could fill up)."""

    def __init__(self, args, cwd: Path, name: str, **popen_kw) -> None:
        self.err_path = cwd / f"{name}.stderr"
        with open(cwd / f"{name}.stdout", "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cli_cmd(args), cwd=cwd, env=cli_env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, **popen_kw)
        self.pid = self.proc.pid
        self.session = bool(popen_kw.get("start_new_session"))
        self.family: dict[int, str] = {}  # every descendant ever seen (pid -> start time)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float, what: str) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not exit within {timeout} s {what}\n{self.stderr}")

    def watch_family(self) -> dict[int, str]:
        """Descendants of the driver now (and remember them for the leftover checks)."""
        now = descendants(self.pid)
        self.family.update(now)
        return now

    def workers(self) -> list[int]:
        return [pid for pid in self.watch_family() if "spawn_main" in cmdline(pid)]


@pytest.fixture
def started():
    """Start CLI runs in the background; whatever is still running at teardown is killed."""
    runs: list[Started] = []

    def start(args, cwd: Path, name: str = "run", **popen_kw) -> Started:
        run = Started(args, cwd, name, **popen_kw)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.watch_family()
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if run.session else os.kill)(run.pid, signal.SIGKILL)
            run.proc.wait(10)
        for pid in alive(run.family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- processes, from /proc ----------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """Living descendants of ``root``: pid -> start time (to tell a reused pid from the original)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None and st[1] not in "ZX":
            table[int(name)] = st
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _state, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def alive(family: dict[int, str]) -> list[int]:
    """The processes of ``family`` still running (zombies waiting for their reaper count as gone)."""
    return [pid for pid, start in family.items()
            if (st := _stat(pid)) is not None and st[1] not in "ZX" and st[2] == start]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(family: dict[int, str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := alive(family)) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [(pid, cmdline(pid)) for pid in left]
    assert not left, f"processes of the run still alive {timeout:g} s after it ended: {survivors}"


def open_partial(pid: int, out: Path) -> str | None:
    """The ``*.partial`` file under OUT that process ``pid`` has open (it is writing a shard), if any."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(out)) and ".partial" in target:
            return target
    return None


# -- OUT ------------------------------------------------------------------------------------------------------
def markers(out: Path) -> list[Path]:
    return sorted(Path(out).glob("*/*_stats.json"))


def partials(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.partial*"))


def manifest_status(out: Path) -> str | None:
    try:
        return json.loads((Path(out) / "manifest.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def assert_markers_valid(out: Path) -> int:
    """Every marker points to an HDF5 file that opens and holds the marker's ``count`` samples (no corrupt
    shard ever looks complete). Returns the number of markers."""
    found = markers(out)
    for marker in found:
        meta = json.loads(marker.read_text())
        if not meta.get("count"):
            continue  # an empty final marker (no sample): no file to check
        shard = marker.with_name(meta["file"])
        assert shard.exists(), f"{marker} points to a missing {shard.name}"
        try:
            with h5py.File(shard, "r") as f:
                for name in ("blur", "sharp", "meta"):
                    data = f[name][()]  # reads every chunk: a truncated file fails here
                    assert len(data) == meta["count"], f"{shard}: {name} holds {len(data)}, marker {meta['count']}"
                assert int(f.attrs["count"]) == meta["count"], shard
        except OSError as exc:
            pytest.fail(f"{marker} marks {shard.name} complete but it does not open: {exc}")
    return len(found)


def poll(ready, run: Started, what: str, timeout: float = 60.0):
    """Call ``ready()`` until it returns something truthy; fail clearly if the run ends first or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if run.proc.poll() is not None:
            pytest.fail(f"the run ended (exit {run.proc.returncode}) before {what}; the run is too small to be "
                        f"interrupted reliably, make it larger\n{run.stderr}")
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting until {what}\n{run.stderr}")


def wait_mid_run(run: Started, out: Path, *, workers: int = 0, min_markers: int = 1) -> None:
    """Until at least ``min_markers`` shards are complete, the manifest still says ``running`` and (with
    ``workers``) that many worker processes are alive."""
    def ready():
        if len(markers(out)) < min_markers or manifest_status(out) != "running":
            return False
        return len(run.workers()) >= workers if workers else True

    poll(ready, run, f"the run is half-way ({min_markers} shard(s) complete, {workers} worker(s))")
    run.watch_family()


def assert_interrupted_mid_run(out: Path, total: int) -> int:
    """After the interruption: the run had not finished, and only complete shards carry markers."""
    status = manifest_status(out)
    assert status != "complete", ("the interruption landed after the run had finished (manifest complete); "
                                  "make the run larger")
    done = assert_markers_valid(out)
    assert 0 < done < total, f"{done} of {total} shards complete: not interrupted half-way"
    return done


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


# -- inputs and references (once per module) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_in(tmp_path_factory) -> dict[str, Path]:
    return local_inputs(tmp_path_factory.mktemp("local_in"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return video_inputs(tmp_path_factory.mktemp("video_in"), count=VIDEO_COUNT, frames=VIDEO_FRAMES)


def local_cmd(local_in, out: Path, *extra: str) -> list[str]:
    return local_args(local_in, out, samples=LOCAL_SAMPLES, shard_size=LOCAL_SHARD) + list(extra)


def average_cmd(videos: Path, out: Path, *extra: str) -> list[str]:
    return average_args(videos, out) + list(extra)


@pytest.fixture(scope="module")
def local_reference(local_in, tmp_path_factory) -> Path:
    """An uninterrupted serial `local` run: what every interrupted-then-resumed run must equal."""
    root = tmp_path_factory.mktemp("local_ref")
    out = root / "out"
    assert_ok(run_cli(local_cmd(local_in, out), root))
    assert len(markers(out)) == LOCAL_SHARDS
    return out


@pytest.fixture(scope="module")
def average_reference(videos, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("average_ref")
    out = root / "out"
    assert_ok(run_cli(average_cmd(videos, out), root))
    return out


def without_quiet(args: list[str]) -> list[str]:
    return [a for a in args if a != "-q"]


def assert_resumes_to(args, cwd: Path, out: Path, reference: Path) -> None:
    """Rerunning the same command completes and gives exactly the uninterrupted dataset."""
    assert_ok(run_cli(args, cwd))
    assert manifest_status(out) == "complete"
    assert not partials(cwd), partials(cwd)
    assert_same_dataset(out, reference)


# -- 1, 3: kill -9 of the driver ----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["local", "average"])
def test_kill_driver_stops_workers_and_resumes(command, request, tmp_path, started):
    out = tmp_path / "out"
    if command == "local":
        args = local_cmd(request.getfixturevalue("local_in"), out, "--workers", "2")
        reference = request.getfixturevalue("local_reference")
    else:
        args = average_cmd(request.getfixturevalue("videos"), out, "--workers", "2")
        reference = request.getfixturevalue("average_reference")
    total = len(markers(reference))
    run = started(args, tmp_path)
    wait_mid_run(run, out, workers=2)
    workers = run.workers()
    assert len(workers) == 2, [cmdline(p) for p in workers]

    os.kill(run.pid, signal.SIGKILL)
    assert run.wait(10, "after SIGKILL") == -signal.SIGKILL
    wait_gone(run.family, timeout=5)  # the workers (and multiprocessing's helper) die with the driver

    # Nothing is running any more: what is on disk now is what a crash leaves.
    assert_interrupted_mid_run(out, total)
    assert_resumes_to(args, tmp_path, out, reference)


# -- 2: kill -9 of one worker -----------------------------------------------------------------------------------
NOTICE_SECONDS = 8  # a healthy driver notices a dead worker within ~1 s (its sentinel wakes the wait)


def kill_busy_worker(run: Started, out: Path) -> tuple[int, str]:
    """SIGKILL a worker while it has a shard ``.partial`` file open (it is surely in the middle of a unit)."""
    def busy():
        if len(markers(out)) < 2:  # half-way, not while the run starts
            return None
        for pid in run.workers():
            if (target := open_partial(pid, out)) is not None:
                return pid, target
        return None

    pid, target = poll(busy, run, "a worker is writing a shard")
    os.kill(pid, signal.SIGKILL)
    return pid, target


def wait_after_worker_death(run: Started, out: Path, victim: int, target: str) -> int:
    """Wait for the run to end after a worker was killed; fail fast (not after a long timeout) when the driver
    does not notice the death, or when it stops completing shards."""
    what = f"worker {victim} was killed while writing {target}"
    shard = Path(target.removesuffix(".partial"))
    unit = f"{shard.parent.name}/{shard.stem}"  # `local` has one unit per shard, named split/NNNNN
    deadline = time.monotonic() + NOTICE_SECONDS
    while unit not in run.stderr and run.proc.poll() is None:  # retried (warning) or failed (error) is logged
        if time.monotonic() > deadline:
            pytest.fail(f"{what}; {NOTICE_SECONDS} s later the driver has not noticed (no retry or failure of "
                        f"{unit} logged; {len(markers(out))} of {LOCAL_SHARDS} shards complete): it hangs\n"
                        f"{run.stderr}")
        time.sleep(0.05)
    done, last = len(markers(out)), time.monotonic()
    end = time.monotonic() + RUN_TIMEOUT
    while run.proc.poll() is None:
        now = time.monotonic()
        if (count := len(markers(out))) != done:
            done, last = count, now
        if now - last > 15 or now > end:
            pytest.fail(f"{what}; the run stalled with {done} of {LOCAL_SHARDS} shards complete\n{run.stderr}")
        time.sleep(0.05)
    return run.proc.returncode


KILLED = "worker process killed by signal 9"


def run_killing_a_worker(args_for, tmp_path: Path, started) -> tuple[Started, Path, int, str, int]:
    """Start ``args_for(out)`` with ``--workers 2``, SIGKILL a worker half-way through a unit and wait for the end.

    In the rare case the kill lands just after the worker finished its unit (nothing to retry: no
    ``KILLED`` line), the scenario is repeated in a new OUT. Returns (run, out, victim, its shard, exit status).
    """
    missed = []
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        run = started(args_for(out), tmp_path, name=f"run{attempt}")
        victim, target = kill_busy_worker(run, out)
        rc = wait_after_worker_death(run, out, victim, target)
        if KILLED in run.stderr:
            return run, out, victim, target, rc
        missed.append(f"worker {victim} killed writing {target}: exit {rc}, no failed attempt logged")
    pytest.fail("the kill never hit a unit in progress (or the driver never reported it):\n" + "\n".join(missed))


def test_killed_worker_unit_is_retried(local_in, local_reference, tmp_path, started):
    # Warnings shown (no -q): the retry is logged.
    run, out, victim, target, rc = run_killing_a_worker(
        lambda out: without_quiet(local_cmd(local_in, out, "--workers", "2")), tmp_path, started)
    stderr = run.stderr
    assert rc == 0, f"exit {rc} after worker {victim} was killed writing {target}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    retried = [line for line in stderr.splitlines() if KILLED in line]
    assert len(retried) == 1 and "retrying" in retried[0], f"the killed worker's unit was not retried\n{stderr}"
    assert not error_lines(stderr), stderr
    assert manifest_status(out) == "complete"
    assert not partials(tmp_path), partials(tmp_path)
    wait_gone(run.family, timeout=5)
    # The replacement worker rewrote the unit: the first run already equals the reference.
    assert_same_dataset(out, local_reference)




def test_killed_worker_without_retries_fails_the_unit_then_resumes(local_in, local_reference, tmp_path, started):
    run, out, victim, target, rc = run_killing_a_worker(
        lambda out: local_cmd(local_in, out, "--workers", "2", "--retries", "0"), tmp_path, started)
    stderr = run.stderr
    assert rc == 1, f"exit {rc} after worker {victim} was killed writing {target} with --retries 0\n{stderr}"
    assert "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert f"1 of {LOCAL_SHARDS} work unit(s) failed after 1 attempt(s)" in errors[0], errors[0]
    assert KILLED in errors[0], errors[0]
    assert "rerun the same command" in errors[0], errors[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert [e["attempts"] for e in manifest["totals"]["errors"]] == [1]
    assert assert_markers_valid(out) == LOCAL_SHARDS - 1
    wait_gone(run.family, timeout=5)
    assert not partials(tmp_path), partials(tmp_path)

    assert_resumes_to(local_cmd(local_in, out, "--workers", "2"), tmp_path, out, local_reference)  # default retries


# -- 4: disk full ---------------------------------------------------------------------------------------------------
def limit_file_size(limit: int):
    """preexec_fn: no file of the CLI (or of its workers, which inherit it) may grow past ``limit`` bytes;
    a write beyond fails with EFBIG ("File too large") instead of raising SIGXFSZ."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def file_limit(reference: Path, stage: str) -> tuple[int, str]:
    """A file size limit under which the run fails at ``stage``, from the sizes of the reference run's files;
    returns it with the name (suffix) of the file expected to fail.

    Stages: ``manifest`` (the very first write), ``objects`` (local's object bank; the manifest fits),
    ``shard-data`` (the manifest and object bank fit, the image chunks of a shard do not) and ``shard-flush``
    (a shard's images fit but not its metadata, written when HDF5 flushes the file).
    """
    manifest = (reference / "manifest.json").stat().st_size  # the final manifest: larger than the first one
    bank = reference / "objects.h5"
    bank_size = bank.stat().st_size if bank.exists() else 0
    smallest_shard = min(p.stat().st_size for p in reference.glob("*/*.h5"))
    fits = max(manifest, bank_size)
    if stage == "manifest":
        assert manifest > 4096
        return 512, "manifest.json"
    if stage == "objects":
        assert bank_size - manifest > 4096, (manifest, bank_size)
        return (manifest + bank_size) // 2, "objects.h5"
    if stage == "shard-data" and not bank_size:  # average: small manifest when the run starts, no bank
        return smallest_shard // 2, ".h5"
    if stage == "shard-data":
        assert smallest_shard - fits > 4096, (manifest, bank_size, smallest_shard)
        return (fits + smallest_shard) // 2, ".h5"
    assert stage == "shard-flush" and smallest_shard - fits > 1024, (manifest, bank_size, smallest_shard)
    return smallest_shard - 512, ".h5"




@pytest.mark.parametrize("command, stage, workers", [
    pytest.param("local", "manifest", 1, id="local-manifest"),
    pytest.param("local", "objects", 1, id="local-objects"),
    pytest.param("local", "shard-data", 1, id="local-shard-data"),
    pytest.param("local", "shard-data", 2, id="local-shard-data-workers2"),
    pytest.param("local", "shard-flush", 1, id="local-shard-flush"),
    pytest.param("average", "shard-data", 1, id="average-shard-data"),
    pytest.param("average", "shard-flush", 1, id="average-shard-flush"),
])
def test_disk_full_is_one_clean_error_and_resumes(command, stage, workers, request, tmp_path):
    out = tmp_path / "out"
    extra = ("--workers", str(workers)) if workers > 1 else ()
    if command == "local":
        args = local_cmd(request.getfixturevalue("local_in"), out, *extra)
        reference = request.getfixturevalue("local_reference")
    else:
        args = average_cmd(request.getfixturevalue("videos"), out, *extra)
        reference = request.getfixturevalue("average_reference")
    limit, failing = file_limit(reference, stage)

    proc = run_cli(args, tmp_path, preexec_fn=limit_file_size(limit), env=cli_env(PYTHONDONTWRITEBYTECODE="1"))
    stderr = proc.stderr
    assert proc.returncode > 0, f"exit {proc.returncode} under a {limit}-byte file size limit\n{stderr}"
    assert "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    line = errors[0]
    named = line.removeprefix("Error:").strip().split(":", 1)[0]
    assert named.startswith(str(out) + os.sep) and named.endswith(failing), line
    assert "File too large" in line, line
    assert not partials(tmp_path), partials(tmp_path)
    if out.exists():
        assert_markers_valid(out)

    assert_resumes_to(args, tmp_path, out, reference)


def test_disk_full_at_first_write_leaves_no_out_behind(local_in, local_reference, tmp_path):
    new = tmp_path / "new"  # OUT and a missing parent: the run creates both
    out = new / "out"
    limit, _ = file_limit(local_reference, "manifest")
    proc = run_cli(local_cmd(local_in, out), tmp_path, preexec_fn=limit_file_size(limit),
                   env=cli_env(PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == 1, proc.stderr
    assert not new.exists(), f"{new} left behind: {sorted(str(p.relative_to(new)) for p in new.rglob('*'))}"


# -- 5: Ctrl-C ------------------------------------------------------------------------------------------------------


def orphan_markers(out: Path) -> list[str]:
    """Markers of shards with samples whose HDF5 file does not exist."""
    found = []
    for marker in markers(out):
        meta = json.loads(marker.read_text())
        if meta.get("count") and not marker.with_name(meta["file"]).exists():
            found.append(f"{marker.parent.name}/{marker.name}")
    return found


def default_sigint() -> None:
    """preexec_fn: a terminal's foreground job handles SIGINT; pytest itself may run with it ignored (a background
    job of a non-interactive shell), which the CLI would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("workers", [2, 1], ids=["workers2", "serial"])
def test_ctrl_c_stops_cleanly_and_resumes(workers, local_in, local_reference, tmp_path, started):
    out = tmp_path / "out"
    args = local_cmd(local_in, out, *(("--workers", "2") if workers > 1 else ()))
    run = started(args, tmp_path, start_new_session=True, preexec_fn=default_sigint)
    wait_mid_run(run, out, workers=workers if workers > 1 else 0, min_markers=2)

    os.killpg(run.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group
    t0 = time.monotonic()
    rc = run.wait(15, "after Ctrl-C")
    took = time.monotonic() - t0
    stderr = run.stderr
    assert took < 10, f"took {took:.1f} s to stop after Ctrl-C"
    assert rc != 0, f"exit 0 after Ctrl-C\n{stderr}"
    assert not partials(tmp_path), partials(tmp_path)
    assert "Traceback" not in stderr, stderr  # neither from the driver nor from a worker (they share stderr)
    wait_gone(run.family, timeout=5)
    assert not orphan_markers(out), f"markers without their shard: {orphan_markers(out)}"
    assert_interrupted_mid_run(out, LOCAL_SHARDS)

    assert_resumes_to(args, tmp_path, out, local_reference)


# The CLI with a Ctrl-C injected at one exact moment: just after the third shard marker has been committed
# (atomic_write_bytes is syncing the split folder), before ShardWriter.close returns.
INTERRUPT_AFTER_MARKER = r"""
import os, signal, sys
from pathlib import Path

import blursynth.shards.files as files

real, committed = files.fsync_path, []


def fsync_path(path):
    real(path)
    if Path(path).name in ("train", "val") and sys._getframe(1).f_code.co_name == "atomic_write_bytes":
        committed.append(path)  # a marker has just been renamed into place
        if len(committed) == 3:
            os.kill(os.getpid(), signal.SIGINT)


files.fsync_path = fsync_path
from blursynth.cli.main import main

sys.argv[0] = "blursynth"
main()
"""


def test_ctrl_c_after_a_marker_is_committed(local_in, local_reference, tmp_path):
    out = tmp_path / "out"
    args = local_cmd(local_in, out)
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_AFTER_MARKER, *args], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT,
                          preexec_fn=default_sigint)
    assert proc.returncode != 0, f"exit 0: the injected Ctrl-C was not delivered\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not partials(tmp_path), partials(tmp_path)
    assert len(markers(out)) == 3, [m.name for m in markers(out)]
    assert not orphan_markers(out), f"markers without their shard: {orphan_markers(out)}"
    assert_markers_valid(out)
    assert_resumes_to(args, tmp_path, out, local_reference)


# -- an interrupt that arrives while HDF5 is writing ----------------------------------------------------------
TORN_WRITE = r"""
import os, signal, sys
import h5py, numpy as np
from blursynth import interrupt
from blursynth.sample import Sample
from blursynth.shards import files
from blursynth.shards.markers import stats_path
from blursynth.shards.writer import ShardWriter

interrupt.install()
real_write = files.GuardedFile.write
root = sys.argv[1]
rng = np.random.default_rng(0)
images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
stopped = 0
for n in range(1, 31):  # deliver SIGINT during the n-th write HDF5 makes
    calls = [0]

    def write(self, data, n=n, calls=calls):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs inside this callback from HDF5
        return real_write(self, data)

    files.GuardedFile.write = write
    out = os.path.join(root, f"n{n}")
    w = ShardWriter(out, "train", 0, compression="gzip", capacity=3)
    try:
        for i, img in enumerate(images):
            w.add(Sample(blur=img, sharp=img[::-1].copy(), meta={"source": "s", "center": i}))
        w.close({})
    except KeyboardInterrupt:
        w.abort()
        stopped += 1
    interrupt._requested.clear()
    files.GuardedFile.write = real_write
    if stats_path(w.out, "train", 0).exists():  # committed: every sample must read back exactly
        with h5py.File(os.path.join(out, "train", "00000.h5"), "r") as f:
            for i, img in enumerate(images[: f["blur"].shape[0]]):
                assert np.array_equal(f["blur"][i], img) and np.array_equal(f["sharp"][i], img[::-1]), (n, i)
            assert f["blur"].shape[0] == len(images), n
    else:
        assert not os.listdir(os.path.join(out, "train")), (n, os.listdir(os.path.join(out, "train")))
print("stopped", stopped)
"""


def test_an_interrupt_during_an_hdf5_write_never_tears_the_shard(tmp_path):
    """Ctrl-C delivered inside h5py's file callbacks (gzip shards: writes happen as HDF5 flushes chunks):
    the write finishes, the interrupt is raised after it, the shard is dropped or complete, never corrupt,
    and the interpreter does not crash."""
    proc = subprocess.run([sys.executable, "-c", TORN_WRITE, str(tmp_path)], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=cli_env())
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-3000:]
    stopped = int(proc.stdout.split()[-1])
    assert stopped >= 20, proc.stdout  # most injection points fall inside a shard's writes


def test_abort_after_the_marker_keeps_a_committed_gopro_shard(tmp_path):
    """An interrupt after the marker's rename (e.g. in the folder fsync) aborts a writer whose shard is
    complete: its HDF5 file and its PNG tree must stay."""
    import numpy as np

    from blursynth.sample import Sample
    from blursynth.shards.markers import stats_path
    from blursynth.shards.writer import ShardWriter

    w = ShardWriter(tmp_path, "train", 0, layouts=("h5", "gopro"), capacity=1)
    img = np.full((8, 12, 3), 77, np.uint8)
    w.add(Sample(blur=img, sharp=img, meta={"source": "clip", "center": 3}))
    pngs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert len(pngs) == 2, pngs
    w._close({})  # the commit as close() does it, up to the marker
    w._renamed, w._pngs = True, [tmp_path / p for p in pngs]  # state of a close interrupted after the marker
    w.abort()
    assert stats_path(tmp_path, "train", 0).exists() and (tmp_path / "train" / "00000.h5").exists()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == pngs
