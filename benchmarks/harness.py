"""The measuring machinery every benchmark script shares.

A script is a parent that stays light (this module imports only the standard library: a child's ``ru_maxrss``
starts from the parent's RSS at fork time, so a heavy parent would inflate every peak) and runs each
configuration in a fresh child, ``python SCRIPT --worker KIND --spec JSON --result FILE``, or as the real command
line, ``python -m blursynth ...``. The parent alternates configurations within each round (a b a b) so they see
the same background load, keeps the best run of each, and prints ratios against a baseline of the same run.

Children use only what exists in every version of the package the benchmarks compare (the CLI, the configs,
``run_average``/``run_local``, ``probe_video``/``read_video``, ``create_flow``): ``PYTHONPATH=OLD_TREE python
benchmarks/bench_x.py`` measures the old code with this harness. Stage profiles come from cProfile (every Python
thread), aggregated by function name, never from patching the package.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
#: --what-if: glibc keeps freed frame-sized blocks in the heap instead of returning them to the kernel, so a new
#: 2.7 MB frame buffer is not paid for again in page faults.
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


# -- parent ----------------------------------------------------------------------------------------------------
def parser(doc: str) -> argparse.ArgumentParser:
    """The options every script has, plus the hidden ones a script passes to its own children."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "blursynth-bench",
                   help="cached inputs and temporary outputs (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=None, help="rounds, best run of each configuration kept")
    p.add_argument("--label", default=None, help="name of the code measured, printed and written to --json")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    for hidden in ("--worker", "--spec", "--result"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    return p


def parse(p: argparse.ArgumentParser, workers: dict[str, Callable[[dict], dict]], argv=None):
    """Parse the command line; in a child, run the worker, write its JSON result and exit."""
    args = p.parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(TESTS))  # tests/textures.py, tests/objects_data.py: input generators
        Path(args.result).write_text(json.dumps(workers[args.worker](json.loads(args.spec))))
        sys.exit(0)
    return args


def package() -> tuple[str, str]:
    """Where ``blursynth`` comes from (without importing it) and its git commit, to tell trees apart."""
    spec = importlib.util.find_spec("blursynth")
    path = str(Path(spec.origin).parent) if spec and spec.origin else "not installed"
    git = subprocess.run(["git", "-C", path, "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--", "."], capture_output=True, text=True)
    commit = git.stdout.strip() + (" +uncommitted" if dirty.stdout.strip() else "") if git.returncode == 0 else "?"
    return path, commit


class Bench:
    """One benchmark run: work dir, children, the report that ``finish`` writes."""

    def __init__(self, script: str, args, dists: tuple[str, ...], **extra) -> None:
        self.script, self.args, self.t0 = os.path.abspath(script), args, time.perf_counter()
        self.work = args.work.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        path, commit = package()
        env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(), **extra}
        for dist in dists:
            try:
                env[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                env[dist] = None
        label = args.label or commit
        print(f"measuring blursynth at {path} ({label}); env: {env}", flush=True)
        load = os.getloadavg()[0]
        if load > 0.5:
            print(f"warning: 1-min load average is {load:.1f} before the benchmark; other processes share the "
                  f"{os.cpu_count()} cores, so absolute figures are noisy (runs alternate to keep ratios fair)")
        self.report: dict = {"label": label, "package": path, "commit": commit, "env": env, "load_start": load}

    def child(self, kind: str, spec: dict, env: dict | None = None, timeout: float | None = None) -> dict:
        """Run one worker of this script in a fresh process; its JSON result plus the process figures."""
        result_file = self.work / f"result_{kind}_{os.getpid()}.json"
        cmd = [sys.executable, self.script, "--worker", kind, "--spec", json.dumps(spec), "--result", str(result_file)]
        try:
            res = {**run(cmd, env=env, timeout=timeout), **json.loads(result_file.read_text())}
        finally:
            result_file.unlink(missing_ok=True)
        samples = res.pop("rss_samples")
        if "t_begin" in res:
            res["rss_halves_mb"] = rss_halves(samples, res["t_begin"], res["t_end"])
        return res

    def cli(self, args: list[str], env: dict | None = None) -> dict:
        """``python -m blursynth ARGS``, timed from start to exit (start-up and imports included)."""
        out = run([sys.executable, "-m", "blursynth", *args], env=env, cwd=self.work, quiet=True)
        del out["rss_samples"]
        return {**out, "seconds": out["process_s"], "cpu_s": out["process_cpu_s"]}

    def finish(self) -> None:
        self.report.update(load_end=os.getloadavg()[0], wall_s=time.perf_counter() - self.t0)
        print(f"benchmark wall time {self.report['wall_s']:.0f} s", flush=True)
        if self.args.json:
            self.args.json.write_text(json.dumps(self.report, indent=2, default=str) + "\n")
            print(f"wrote {self.args.json}")


def alternate(plan: list[tuple[str, Callable[[], dict]]], repeat: int, unit: str) -> dict[str, list[dict]]:
    """Run every configuration of ``plan`` once per round, in order (a b a b ...); all runs by name."""
    runs: dict[str, list[dict]] = {name: [] for name, _ in plan}
    for r in range(repeat):
        for name, fn in plan:
            res = fn()
            runs[name].append(res)
            rss = f"  peak RSS {res['peak_rss_mb']:5.0f} MB" if "peak_rss_mb" in res else ""
            print(f"  round {r + 1}/{repeat}  {name:<28} {rate(res):8.2f} {unit}/s  {res['seconds']:6.2f} s  "
                  f"CPU {res['cpu_s']:5.1f} s{rss}", flush=True)
    return runs


def run(cmd: list[str], env: dict | None = None, cwd=None, timeout: float | None = None, quiet: bool = False) -> dict:
    """Run ``cmd``; wall and CPU time, peak RSS of the process (``ru_maxrss`` from ``wait4``) and of its process
    tree (summed, and its largest process; sampled from /proc every 50 ms: a forked worker inherits ``ru_maxrss``
    and is not waited for by us) and the samples (epoch seconds, tree MB, largest MB). A child still running
    after ``timeout`` s is killed (a hung child ends the benchmark with a message instead of blocking it)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=None if env is None else {**os.environ, **env}, cwd=cwd,
                            stdout=subprocess.DEVNULL if quiet else None)
    samples = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout and time.perf_counter() - t0 > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise RuntimeError(f"still running after {timeout:.0f} s, killed (hung?): {' '.join(cmd)[:300]}")
        sizes = [_rss_mb(p) for p in _tree(proc.pid)]
        samples.append((time.time(), sum(sizes), max(sizes)))
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"exit code {os.waitstatus_to_exitcode(status)}: {' '.join(cmd)[:300]}")
    return {"process_s": time.perf_counter() - t0, "process_cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "tree_rss_mb": max((s[1] for s in samples), default=0.0),
            "max_process_rss_mb": max((s[2] for s in samples), default=0.0), "rss_samples": samples}


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError):
        return 0.0


def rss_halves(samples: list, begin: float, end: float) -> tuple[float, float] | None:
    """Largest tree RSS in the first and in the second half of a child's timed section (epoch seconds)."""
    inside = [(t, mb) for t, mb, _ in samples if begin <= t <= end]
    if len(inside) < 4:
        return None
    mid = (begin + end) / 2
    return max(mb for t, mb in inside if t <= mid), max(mb for t, mb in inside if t > mid)


def rate(res: dict) -> float:
    return res["n"] / res["seconds"]


def best(runs: list[dict]) -> dict:
    """The fastest run's figures, with the largest peak RSS over all runs and every run's rate."""
    out = dict(min(runs, key=lambda r: r["seconds"]))
    out["runs_rate"] = [round(rate(r), 2) for r in runs]
    if "peak_rss_mb" in out:  # runs in fresh processes
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return out


def table(head: tuple, rows: list) -> None:
    """Columns as wide as their widest cell, the first left-aligned; a row that is a string prints as is."""
    cells = [tuple(str(c) for c in r) for r in rows if not isinstance(r, str)]
    widths = [max(len(r[i]) for r in [tuple(head), *cells] if i < len(r)) for i in range(len(head))]

    def line(r) -> str:
        pairs = enumerate(zip(r, widths[: len(r)], strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    print("\n" + line(tuple(head)) + "\n" + "-" * (sum(widths) + 2 * len(widths) - 2))
    for r in rows:
        print(r if isinstance(r, str) else line(tuple(str(c) for c in r)))


def verdict(name: str, value: float, target: float, fmt: str = ".2f", *, higher: bool = True) -> bool:
    """Print ``name = value target PASS|FAIL``; True when the target is met."""
    ok = value >= target if higher else value <= target
    print(f"{name} = {value:{fmt}}   target {'>=' if higher else '<='} {target:g}   {'PASS' if ok else 'FAIL'}")
    return ok


# -- child -----------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> tuple[object, dict]:
    """Call ``fn``; its value and wall time, CPU time (all threads), minor page faults and epoch bounds."""
    import resource

    f0, c0, e0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), time.time(), \
        time.perf_counter()
    value = fn()
    seconds, cpu, e1 = time.perf_counter() - t0, time.process_time() - c0, time.time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return value, {"seconds": seconds, "cpu_s": cpu, "minor_faults": faults, "t_begin": e0, "t_end": e1}


def profiled(fn: Callable[[], object], top: int = 25) -> tuple[object, list[dict]]:
    """Call ``fn`` under cProfile in this thread and in every Python thread started meanwhile (the decode
    thread, thread pools); the ``top`` functions by own time (C calls into FFmpeg, OpenCV, HDF5 are rows of their
    own), aggregated by name and module name, so rows survive modules moving between folders."""
    import cProfile
    import pstats
    import threading

    profiles = [cProfile.Profile()]

    def start_in_thread(*_) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    threading.setprofile(start_in_thread)
    profiles[0].enable()
    try:
        value = fn()
    finally:
        profiles[0].disable()
        threading.setprofile(None)
    rows: dict[str, dict] = {}
    for i, profile in enumerate(profiles):
        for (file, _line, name), (_cc, calls, own, cum, _callers) in pstats.Stats(profile).stats.items():
            if file.startswith(str(HERE)):  # the benchmark's own frames
                continue
            where = "C" if file == "~" else Path(file).stem
            row = rows.setdefault(f"{name} ({where})", {"calls": 0, "own_s": 0.0, "cum_s": 0.0, "threads": set()})
            row["calls"] += calls
            row["own_s"] += own
            row["cum_s"] += cum
            row["threads"].add("main" if i == 0 else "other")
    ranked = sorted(rows.items(), key=lambda kv: -kv[1]["own_s"])[:top]
    return value, [{"function": k, **v, "threads": "+".join(sorted(v["threads"]))} for k, v in ranked]


def print_profile(rows: list[dict], per: int, unit: str) -> None:
    """The profile of :func:`profiled` as a table, times in ms per ``unit``."""
    table(("function (module)", "thread", "calls", f"cum ms/{unit}", f"own ms/{unit}"),
          [(r["function"][:70], r["threads"], r["calls"], f"{1000 * r['cum_s'] / per:.2f}",
            f"{1000 * r['own_s'] / per:.2f}") for r in rows])


def cli_here(args: list[str]) -> None:
    """Run ``python -m blursynth ARGS`` in this process; the first call also pays the CLI's imports (call
    ``cli_here(["--version"])`` before the clock starts)."""
    import contextlib
    import io
    import runpy

    saved = sys.argv
    sys.argv = ["blursynth", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module("blursynth", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"blursynth {' '.join(args)}: exit status {exc.code}") from None
    finally:
        sys.argv = saved


def decoded(clip: str, mode: str, fn=None):
    """Every frame of ``clip`` as RGB, decoded with PyAV's ``thread_type`` ``mode`` (bench_average.MODES; "+thread":
    in a thread of its own, 16 frames ahead); ``fn`` is applied to each frame in the decoding thread and its
    result is what comes out (the frame where it returns None)."""
    import queue
    import threading

    import av

    kind, _, where = mode.partition("+")

    def frames():
        with av.open(clip) as container:
            stream = container.streams.video[0]
            stream.thread_type = kind
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                out = None if fn is None else fn(rgb)
                yield rgb if out is None else out

    if where != "thread":
        yield from frames()
        return
    handoff: queue.Queue = queue.Queue(16)
    failed: list[BaseException] = []
    stop = threading.Event()  # the consumer left early: the producer closes the file and ends

    def offer(item) -> bool:
        """Hand ``item`` over unless the consumer has left; whether it was handed over."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in frames():
                if not offer(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            failed.append(exc)
        finally:
            offer(None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not None:
            yield item
    finally:
        stop.set()
        thread.join()
    if failed:
        raise failed[0]


def shard_metas(out: str | Path) -> list[tuple[Path, int, dict]]:
    """(shard file, index, meta) of every sample in the HDF5 shards under ``out`` (the on-disk format)."""
    import h5py

    found = []
    for path in sorted(Path(out).glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            found += [(path, j, json.loads(m)) for j, m in enumerate(f["meta"].asstr()[:])]
    return found


def check_package(spec: dict) -> None:
    """In a worker given ``spec["package"]`` (another tree's ``blursynth`` folder, put first on PYTHONPATH): fail
    unless that is the package imported, so a baseline is never silently this tree."""
    import blursynth

    if spec.get("package") and not blursynth.__file__.startswith(spec["package"]):
        raise RuntimeError(f"expected blursynth from {spec['package']}, imported {blursynth.__file__}")


def as_the_cli() -> None:
    """In a worker about to run blursynth in-process: the process settings the ``blursynth`` command applies at
    start (``blursynth/run/host.py``), where the measured revision has them (older ones ran without)."""
    try:
        from blursynth.run.host import tune_process
    except ImportError:
        return
    tune_process()
