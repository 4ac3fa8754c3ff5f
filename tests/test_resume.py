"""Resuming: the same command again keeps completed shards and gives the same dataset; lost shards are
recreated byte for byte; leftovers of a crash are cleaned; other settings are refused unless --overwrite;
a run killed with SIGKILL and rerun equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import invoke, run_ok
from conftest import pan_frames, textured_image, write_frame_folder, write_video

H, W = 24, 32
ARGS = ["--frames", "7", "--shard-size", "2"]  # 40-frame clip -> 5 windows -> shards of 2, 2, 1


# -- helpers -------------------------------------------------------------------------------------------


def make_clip(path: Path, n: int = 40, seed: int = 0, height: int = H, width: int = W) -> Path:
    tex = textured_image(height + 8, width + 64, seed=seed)
    return write_video(path, pan_frames(tex, n, height, width, 0.5 + 0.25 * seed))


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def dataset_files(out: Path) -> list[str]:
    """Relative paths of every file under the split folders."""
    return sorted(p.relative_to(out).as_posix() for p in out.glob("*/**/*") if p.is_file())


def file_state(out: Path) -> dict[str, tuple[int, bytes]]:
    return {rel: ((out / rel).stat().st_mtime_ns, (out / rel).read_bytes()) for rel in dataset_files(out)}


def read_shard(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {"blur": f["blur"][()], "sharp": f["sharp"][()], "meta": list(f["meta"].asstr()[()]),
                "attrs": {k: v for k, v in f.attrs.items()}}


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same files; every shard with equal arrays, meta and attrs; equal stats markers and manifest shards."""
    assert dataset_files(a) == dataset_files(b)
    h5s = [rel for rel in dataset_files(a) if rel.endswith(".h5")]
    assert h5s
    for rel in h5s:
        x, y = read_shard(a / rel), read_shard(b / rel)
        np.testing.assert_array_equal(x["blur"], y["blur"], err_msg=rel)
        np.testing.assert_array_equal(x["sharp"], y["sharp"], err_msg=rel)
        assert x["meta"] == y["meta"], rel
        assert x["attrs"].keys() == y["attrs"].keys()
        for k in x["attrs"]:
            assert np.array_equal(x["attrs"][k], y["attrs"][k]), (rel, k)
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel} differs in bytes"
    for rel in dataset_files(a):
        if rel.endswith("_stats.json"):
            assert json.loads((a / rel).read_text()) == json.loads((b / rel).read_text()), rel
    ma, mb = manifest(a), manifest(b)
    assert ma["status"] == mb["status"] == "complete"
    assert ma["shards"] == mb["shards"]
    assert ma["totals"]["samples"] == mb["totals"]["samples"]
    assert ma["totals"]["by_split"] == mb["totals"]["by_split"]
    assert [(s["key"], s["status"], s.get("samples")) for s in ma["sources"]] == \
           [(s["key"], s["status"], s.get("samples")) for s in mb["sources"]]


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    for i in range(3):
        make_clip(folder / f"c{i}.mkv", seed=i)
    return folder


@pytest.fixture
def reference(clips, tmp_path) -> Path:
    out = tmp_path / "reference"
    run_ok("average", clips, out, *ARGS)
    assert manifest(out)["totals"]["samples"] == 15
    assert len([f for f in dataset_files(out) if f.endswith(".h5")]) == 9
    return out


# -- rerun the same command ----------------------------------------------------------------------------------
def test_rerun_rewrites_nothing_and_gives_the_same_result(clips, tmp_path, reference):
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    old = 1_000_000_000  # mark every file with an old mtime: a rewrite would update it
    for rel in dataset_files(out):
        os.utime(out / rel, ns=(old, old))
    before = file_state(out)
    result = run_ok("average", clips, out, *ARGS)
    assert "wrote 15 samples" in result.stdout
    after = file_state(out)
    assert after.keys() == before.keys()
    for rel in before:
        assert after[rel][0] == old, f"{rel} was rewritten"
        assert after[rel][1] == before[rel][1], rel
    assert_same_dataset(out, reference)


@pytest.mark.parametrize("shard", ["00000", "00001", "00002", "00004", "00008"])
def test_lost_shard_is_recreated_identically(clips, tmp_path, reference, shard):
    """Shards 0-2 belong to c0 (00002 is its last), 3-5 to c1, 6-8 to c2."""
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    (out / "train" / f"{shard}.h5").unlink()
    (out / "train" / f"{shard}_stats.json").unlink()
    kept = {rel: st for rel, st in file_state(out).items()}
    run_ok("average", clips, out, *ARGS)
    assert (out / "train" / f"{shard}.h5").is_file(), f"{shard}.h5 was not recreated"
    assert (out / "train" / f"{shard}.h5").read_bytes() == (reference / "train" / f"{shard}.h5").read_bytes()
    now = file_state(out)
    for rel, (mtime, data) in kept.items():
        assert now[rel] == (mtime, data), f"{rel} was rewritten"
    assert_same_dataset(out, reference)


def test_partial_leftovers_are_removed_and_not_counted(clips, tmp_path, reference):
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    # a crash while writing shard 5 (c1's last) leaves its .partial; junk partials of other shards too
    (out / "train" / "00005.h5").unlink()
    (out / "train" / "00005_stats.json").unlink()
    (out / "train" / "00005.h5.partial").write_bytes(b"half an hdf5 file")
    (out / "train" / "00042.h5.partial").write_bytes(b"junk")
    (out / "train" / "00003_stats.json.partial").write_text("{")
    (out / "val").mkdir(exist_ok=True)
    (out / "val" / "00000.h5.partial").write_bytes(b"junk")
    run_ok("average", clips, out, *ARGS)
    assert not list(out.rglob("*.partial*"))
    assert manifest(out)["totals"]["samples"] == 15
    assert all(".partial" not in s["file"] for s in manifest(out)["shards"])
    (out / "val").rmdir()  # empty split folder left from our own junk
    assert_same_dataset(out, reference)


def test_rerun_keeps_the_record_of_failed_sources(clips, tmp_path):
    """A source that failed while being read stays recorded as failed when the run is resumed."""
    folder = write_frame_folder(tmp_path / "frames" / "cutimg", pan_frames(
        textured_image(H + 8, W + 64, seed=9), 20, H, W, 0.5))
    data = (folder / "frame5.png").read_bytes()
    (folder / "frame5.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    out = tmp_path / "out"
    args = ["average", clips / "c0.mkv", folder, notes, out, *ARGS, "--fps", "240"]
    run_ok(*args)
    first = manifest(out)
    before = {s["key"]: (s["status"], s.get("reason"), s.get("samples")) for s in first["sources"]}
    assert before["cutimg"][0] == "failed" and before["cutimg"][1]
    assert before["notes.mp4"][0] == "failed"
    second_run = run_ok(*args)
    assert "skipped or incomplete" in second_run.stdout
    again = manifest(out)
    after = {s["key"]: (s["status"], s.get("reason"), s.get("samples")) for s in again["sources"]}
    assert after == before
    assert sorted(f["source"] for f in again["totals"]["failures"]) == ["cutimg", "notes.mp4"]
    assert again["totals"]["samples"] == first["totals"]["samples"]


_HASH = "import sys; from blursynth.shards.manifest import quick_hash; print(quick_hash(sys.argv[1]))"


def test_rerun_in_a_new_process_resumes_a_frame_folder(tmp_path):
    """Source fingerprints must not depend on the interpreter's string-hash seed (PYTHONHASHSEED)."""
    folder = write_frame_folder(tmp_path / "seqs" / "walk", pan_frames(
        textured_image(H + 8, W + 64, seed=5), 24, H, W, 0.5))
    out = tmp_path / "out"
    args = ["average", str(folder), str(out), "--frames", "7", "--fps", "240", "-q"]
    run_ok(*args)
    recorded = manifest(out)["sources"][0]["hash"]
    by_seed = {}
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        by_seed[seed] = subprocess.run([sys.executable, "-c", _HASH, str(folder)], env=env, check=True,
                                       capture_output=True, text=True, timeout=60).stdout.strip()
    differing = [seed for seed, h in by_seed.items() if h != recorded]
    env = {**os.environ, "PYTHONHASHSEED": str(differing[0] if differing else 0)}
    proc = subprocess.run([sys.executable, "-m", "blursynth", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"rerun refused: {proc.stderr.strip()}"
    assert not differing, f"frame-folder hash varies with PYTHONHASHSEED: {by_seed} vs recorded {recorded}"


# -- another configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, setting", [
    ([*ARGS, "--seed", "1"], "seed"),
    (["--frames", "9", "--shard-size", "2"], "frames"),
    (["--frames", "7", "--shard-size", "3"], "shard_size"),
    ([*ARGS, "--crf", "linear"], "crf"),
    ([*ARGS, "--val-fraction", "0.34"], "val_fraction"),
], ids=["seed", "frames", "shard_size", "crf", "val_fraction"])
def test_other_settings_refused_then_overwritten(clips, tmp_path, args, setting):
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    before = file_state(out)
    manifest_before = (out / "manifest.json").read_bytes()

    refused = invoke("average", clips, out, *args)
    assert refused.exit_code != 0
    assert isinstance(refused.exception, SystemExit), repr(refused.exception)
    errors = [line for line in refused.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, refused.output
    assert setting in errors[0], errors[0]
    assert "--overwrite" in errors[0]
    assert file_state(out) == before
    assert (out / "manifest.json").read_bytes() == manifest_before

    run_ok("average", clips, out, *args, "--overwrite")
    fresh = tmp_path / "fresh"
    run_ok("average", clips, fresh, *args)
    assert_same_dataset(out, fresh)  # no stale shard of the first configuration is left


def test_changed_source_is_refused(clips, tmp_path):
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    make_clip(clips / "c1.mkv", seed=7)
    result = invoke("average", clips, out, *ARGS)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert [line for line in result.output.splitlines() if line.startswith("Error:")]
    run_ok("average", clips, out, *ARGS, "--overwrite")


def test_settings_that_do_not_change_bytes_resume(clips, tmp_path, reference):
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    run_ok("average", clips, out, *ARGS, "--device", "cpu", "--backend", "stream", "-q")
    assert_same_dataset(out, reference)


# -- SIGKILL in the middle of a run --------------------------------------------------------------------------
def test_kill_9_then_rerun_equals_uninterrupted_run(tmp_path):
    src = tmp_path / "big"
    for i in range(5):
        make_clip(src / f"k{i}.mkv", n=60, seed=i, height=120, width=160)
    args = ["--frames", "7", "--shard-size", "2"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "blursynth", "-q", "average", str(src), str(out), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("train/*_stats.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no shard was completed within 60 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    markers = list((out / "train").glob("*_stats.json"))
    assert 1 <= len(markers) < 20, "the run was not interrupted in the middle"
    assert manifest(out)["status"] == "running"

    result = run_ok("average", src, out, *args)
    assert "wrote 40 samples" in result.stdout
    assert not list(out.rglob("*.partial*"))
    reference = tmp_path / "uninterrupted"
    run_ok("average", src, reference, *args)
    assert_same_dataset(out, reference)
