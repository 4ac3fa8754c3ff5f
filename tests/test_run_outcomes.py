"""How a run ends when it goes wrong, and what it tells: a run that keeps no window says why in one line; a
rerun with ``--overwrite`` never destroys the dataset it replaces unless it finishes with samples (staging,
run/staging.py); logs of runs without a terminal show periodic progress; resumed sources show no rate; the
manifest records how the run was invoked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import pan_frames, write_video
from textures import textured_image

from blursynth.cli import progress as cli_progress
from blursynth.config import AverageConfig
from blursynth.recipes import average as average_recipe
from blursynth.recipes import wild
from blursynth.run.rejections import ADVICE, STATIC, rejection_message

H, W = 24, 32
ARGS = ["--frames", "7", "--shard-size", "2"]  # 40-frame clips -> 5 windows each
#: Settings that reject every window of the clips below: they pan 2 px per frame or more, 4x the threshold.
REJECT_ALL = [*ARGS, "--flow", "dis", "--flow-threshold", "0.5"]


def make_clip(path: Path, velocity: float, n: int = 40, seed: int = 0) -> Path:
    tex = textured_image(H + 8, W + int(velocity * n) + 8, seed=seed)
    return write_video(path, pan_frames(tex, n, H, W, velocity))


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    for i in range(2):
        make_clip(folder / f"c{i}.mkv", velocity=2.0 + i, seed=i)
    return folder


@pytest.fixture
def dataset(clips, tmp_path) -> Path:
    """A complete dataset (10 samples) with the reports other commands write into OUT."""
    out = tmp_path / "out"
    run_ok("average", clips, out, *ARGS)
    (out / "report").mkdir()
    (out / "report" / "report.json").write_text("{}")
    (out / "train_check").mkdir()
    (out / "train_check" / "report.json").write_text("{}")
    return out


def snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under OUT (hidden ones too) with its mtime and bytes."""
    return {p.relative_to(out).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*")) if p.is_file()}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# -- 1. a run that keeps no window says why --------------------------------------------------------------------
def test_every_window_rejected_is_explained_at_default_verbosity(clips, tmp_path):
    out = tmp_path / "out"
    result = invoke("average", clips, out, *REJECT_ALL)
    line = assert_clean_error(result, "windows", exit_code=1)
    found = re.search(r"all (\d+) windows of 2 sources rejected: ([^;]+); (.+)$", line)
    assert found, line
    counts = {k: int(v) for k, v in (item.rsplit(" ", 1) for item in found.group(2).split(", "))}
    assert sum(counts.values()) == int(found.group(1))
    # a 2-3 px pan is 4-6x the threshold: the flow filter rejects most windows and is the option to change
    assert max(counts, key=counts.get) == "flow_threshold"
    assert found.group(3) == "raise --flow-threshold (now 0.5 px)"
    assert not out.exists()


def test_static_windows_dropped_is_explained(tmp_path):
    still = tmp_path / "still"
    make_clip(still / "s.mkv", velocity=0.0, n=30)  # nothing moves: 30 // 7 = 4 windows, all static
    result = invoke("average", still, tmp_path / "out", "--frames", "7", "--drop-static")
    line = assert_clean_error(result, "s.mkv")
    assert line.endswith(f"all 4 windows dropped: {STATIC} 4; nothing moved in them: "
                         "leave out --drop-static to keep them"), line


@pytest.mark.parametrize("rejections, static, config, expected", [
    ({"flow_threshold": 204, "unreliable_flow": 8}, 0, {"flow_threshold": 1.0},
     "all 212 windows rejected: flow_threshold 204, unreliable_flow 8; raise --flow-threshold (now 1 px)"),
    ({"flow_threshold": 3, "unreliable_flow": 9}, 0, {"flow_threshold": 1.0, "max_match_error": 12.0},
     "all 12 windows rejected: unreliable_flow 9, flow_threshold 3; "
     "raise --max-match-error (now 12 gray levels) or try another --flow"),
    ({"max_step": 5}, 2, {"max_step_px": 2.5},
     f"all 7 windows rejected: max_step 5, {STATIC} 2; raise --max-step-px (now 2.5 px)"),
    ({}, 0, {}, None),
], ids=["threshold", "unreliable", "max-step", "none"])
def test_rejection_message_names_the_dominant_reason_and_its_option(rejections, static, config, expected):
    assert rejection_message(rejections, static, config, ["a.mp4", "b.mp4"]) == (
        expected.replace("windows", "windows of 2 sources", 1) if expected else None)
    single = rejection_message(rejections, static, config, ["a.mp4"])
    assert single == (f"a.mp4: {expected}" if expected else None)


def test_every_rejection_reason_has_advice_on_an_existing_option():
    fields = {f for f in AverageConfig.__dataclass_fields__}
    for reason in (wild.UNRELIABLE, wild.OVER_THRESHOLD, wild.OVER_MAX_STEP):
        option, key, _ = ADVICE[reason]
        assert key in fields, key
        assert option == "--" + key.replace("_", "-"), option
    result = invoke("average", "--help")
    for option, _, _ in ADVICE.values():
        assert option in result.output


# -- 2. --overwrite never destroys a good dataset --------------------------------------------------------------
def test_empty_overwrite_leaves_the_old_dataset_byte_identical(dataset, clips):
    before = snapshot(dataset)
    result = invoke("average", clips, dataset, *REJECT_ALL, "--overwrite")
    line = assert_clean_error(result, "windows")
    assert line.endswith(f"; {dataset} keeps its previous dataset"), line
    assert snapshot(dataset) == before
    assert sorted(p.name for p in dataset.iterdir()) == ["manifest.json", "report", "train", "train_check"]


def test_overwrite_whose_units_fail_leaves_the_old_dataset(dataset, clips, monkeypatch):
    before = snapshot(dataset)
    real = average_recipe.run_average_unit

    def second_fails(unit, out, progress=None):
        if unit.source.key == "c1.mkv":
            raise RuntimeError("decoder exploded")
        return real(unit, out, progress)

    monkeypatch.setattr(average_recipe, "run_average_unit", second_fails)
    result = invoke("average", clips, dataset, *ARGS, "--seed", "1", "--overwrite", "--retries", "0")
    line = assert_clean_error(result, "c1.mkv")
    assert "decoder exploded" in line and f"{dataset} keeps its previous dataset" in line
    assert snapshot(dataset) == before


def test_interrupted_overwrite_leaves_the_old_dataset(dataset, clips, monkeypatch):
    before = snapshot(dataset)
    real = average_recipe.run_average_unit
    seen = []

    def interrupted(unit, out, progress=None):
        if seen:  # the first source is finished (its shards are in the staging folder), then Ctrl-C
            assert any(Path(out).glob("train/*_stats.json"))
            raise KeyboardInterrupt
        seen.append(unit)
        return real(unit, out, progress)

    monkeypatch.setattr(average_recipe, "run_average_unit", interrupted)
    result = invoke("average", clips, dataset, *ARGS, "--seed", "1", "--overwrite")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{dataset} keeps its previous dataset" in result.output  # not only click's "Aborted!"
    assert seen
    assert snapshot(dataset) == before


@pytest.mark.parametrize("extra", [[], ["--layout", "h5,gopro", "--val-fraction", "0.5"]], ids=["h5", "gopro"])
def test_successful_overwrite_replaces_everything_and_drops_stale_reports(dataset, clips, tmp_path, extra):
    result = run_ok("average", clips, dataset, *ARGS, "--seed", "1", *extra, "--overwrite")
    assert "wrote 10 samples" in result.output
    fresh = tmp_path / "fresh"
    run_ok("average", clips, fresh, *ARGS, "--seed", "1", *extra)
    # no report/, train_check/, .staging or .previous: exactly what a fresh run writes
    assert sorted(p.name for p in dataset.iterdir()) == sorted(p.name for p in fresh.iterdir())
    got, want = snapshot(dataset), snapshot(fresh)
    assert sorted(got) == sorted(want)
    for rel in got:
        if rel != "manifest.json":
            assert got[rel][1] == want[rel][1], rel
    assert manifest(dataset)["config"]["seed"] == 1 and manifest(dataset)["status"] == "complete"


def test_staging_left_by_a_killed_overwrite_is_resumed_by_the_same_command(dataset, clips, tmp_path):
    # what SIGKILL leaves: OUT/.staging with finished shards of the new settings and a "running" manifest
    done = tmp_path / "done"
    run_ok("average", clips, done, *ARGS, "--seed", "1")
    staging = dataset / ".staging"
    done.rename(staging)
    data = manifest(staging)
    data["status"] = "running"
    (staging / "manifest.json").write_text(json.dumps(data))
    shards = snapshot(staging)
    run_ok("average", clips, dataset, *ARGS, "--seed", "1", "--overwrite")
    after = snapshot(dataset)
    for rel, state in shards.items():
        if rel.startswith("train/"):
            assert after[rel] == state, f"{rel} was rewritten"  # resumed: same bytes and mtime
    assert not staging.exists() and manifest(dataset)["status"] == "complete"


def test_stale_staging_is_removed_by_a_resume(dataset, clips):
    (dataset / ".staging" / "train").mkdir(parents=True)
    (dataset / ".staging" / "train" / "00000.h5").write_bytes(b"junk")
    before = {k: v for k, v in snapshot(dataset).items() if not k.startswith(".staging") and k != "manifest.json"}
    run_ok("average", clips, dataset, *ARGS)
    assert {k: v for k, v in snapshot(dataset).items() if k != "manifest.json"} == before
    assert not (dataset / ".staging").exists()


def test_resume_still_works_in_place(dataset, clips):
    before = snapshot(dataset)
    run_ok("average", clips, dataset, *ARGS)
    after = snapshot(dataset)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
           {k: v for k, v in before.items() if k != "manifest.json"}


# -- 3./4./5. progress and summary lines -----------------------------------------------------------------------
def test_status_line_reports_rates_and_eta():
    p = cli_progress.LogProgress(interval=1e9)
    p.start(2, 100, 10)
    p.advance(frames=50, samples=5)
    # 50 of 100 frames in 10 s: 5 frames/s, 50 frames left -> 10 s
    assert p.status_line(10.0) == "progress: 0/2 sources, 5/10 samples (0.5/s), 50/100 frames (5/s), ETA 10s"
    q = cli_progress.LogProgress(interval=1e9)
    q.start(4, 0, 400)
    q.source_finished("u0", "resumed", 100)
    q.advance(samples=60)
    # units without frames: 240 samples left at 60 per 120 s -> 480 s
    assert q.status_line(120.0) == "progress: 1/4 units, 160/400 samples (0.5/s), ETA 8m00s"


def test_runs_without_a_terminal_print_periodic_progress(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("BLURSYNTH_PROGRESS_INTERVAL", "0")
    result = run_ok("average", clips, tmp_path / "out", *ARGS)
    lines = [line for line in result.output.splitlines() if "progress: " in line]
    assert lines, result.output
    assert re.search(r"progress: \d/2 sources, \d+/10 samples \([\d.]+/s\), \d+/70 frames \(\d+/s\), ETA ", lines[-1])
    monkeypatch.setenv("BLURSYNTH_PROGRESS_INTERVAL", "1e9")
    quiet = run_ok("average", clips, tmp_path / "out2", *ARGS)
    assert "progress: " not in quiet.output


def test_progress_interval_default_and_override(monkeypatch):
    monkeypatch.delenv("BLURSYNTH_PROGRESS_INTERVAL", raising=False)
    assert cli_progress.progress_interval() == cli_progress.PROGRESS_INTERVAL_S == 10.0
    monkeypatch.setenv("BLURSYNTH_PROGRESS_INTERVAL", "2.5")
    assert cli_progress.progress_interval() == 2.5
    monkeypatch.setenv("BLURSYNTH_PROGRESS_INTERVAL", "soon")
    assert cli_progress.progress_interval() == 10.0


def test_fully_resumed_run_prints_no_zero_rate(dataset, clips):
    result = run_ok("average", clips, dataset, *ARGS)
    assert "0.0 samples/s" not in result.output
    assert "c0.mkv: resumed, 5 samples already done" in result.output
    assert "resumed 10 samples, nothing left to do" in result.output


def test_wrote_line_is_printed_once_with_verbose(clips, tmp_path):
    result = run_ok("-v", "average", clips, tmp_path / "out", *ARGS)
    assert sum("wrote 10 samples" in line for line in result.output.splitlines()) == 1, result.output


# -- 6. provenance -----------------------------------------------------------------------------------------------
def test_manifest_records_argv_cwd_and_absolute_paths(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_ok("average", "clips", "out", *ARGS)
    data = manifest(tmp_path / "out")
    assert data["command"] == "average"
    assert data["argv"] == ["blursynth", "average", "clips", "out", *ARGS]
    assert data["cwd"] == str(tmp_path)
    assert data["out_abs"] == str(tmp_path / "out")
    assert [s["path_abs"] for s in data["sources"]] == [str(clips / "c0.mkv"), str(clips / "c1.mkv")]

    # provenance is not compared on resume: the same job from another directory with absolute paths resumes
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    before = snapshot(tmp_path / "out")
    run_ok("average", clips, tmp_path / "out", *ARGS)
    after = snapshot(tmp_path / "out")
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
           {k: v for k, v in before.items() if k != "manifest.json"}
    assert manifest(tmp_path / "out")["cwd"] == str(other)


def test_library_runs_record_sys_argv(monkeypatch):
    from blursynth.run import provenance

    monkeypatch.setattr(provenance, "_argv", None)
    monkeypatch.setattr("sys.argv", ["train.py", "--data", "x"])
    assert provenance.invocation() == ["train.py", "--data", "x"]


# -- the object bank of `local` is staged too ------------------------------------------------------------------
@pytest.fixture
def local_inputs(tmp_path):
    import cv2
    from objects_data import Shape, texture, write_voc

    voc = write_voc(tmp_path / "VOC2012", {"2007_000001": [Shape("disc", (40, 40, 18))]})
    bg = tmp_path / "bg"
    bg.mkdir()
    for i in range(2):
        assert cv2.imwrite(str(bg / f"img{i}.png"), cv2.cvtColor(texture(64, 96, i), cv2.COLOR_RGB2BGR))
    return voc, bg


def test_local_overwrite_stages_its_object_bank(local_inputs, tmp_path, monkeypatch):
    from blursynth.recipes import local as local_recipe

    voc, bg = local_inputs
    out = tmp_path / "lbs"
    run_ok("local", "--voc", voc, "--bg", bg, out, "--num-samples", 2)
    before = snapshot(out)

    def interrupted(unit, out, progress=None):
        assert (Path(out) / "objects.h5").is_file() and Path(out).name == ".staging"
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(local_recipe, "run_local_unit", interrupted)
        result = invoke("local", "--voc", voc, "--bg", bg, out, "--num-samples", 3, "--overwrite")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert snapshot(out) == before  # the old bank and shards are untouched

    result = run_ok("-v", "local", "--voc", voc, "--bg", bg, out, "--num-samples", 3, "--overwrite")
    assert "reusing the object bank" in result.output  # same object settings: linked, not rebuilt
    assert manifest(out)["totals"]["samples"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "objects.h5", "train"]


def test_overwrite_starts_over_from_an_unreadable_manifest_as_the_error_advises(dataset, clips):
    (dataset / "manifest.json").write_text("{torn")
    line = assert_clean_error(invoke("average", clips, dataset, *ARGS), "manifest.json")
    assert "unreadable manifest" in line and "--overwrite" in line
    run_ok("average", clips, dataset, *ARGS, "--overwrite")
    assert manifest(dataset)["status"] == "complete" and manifest(dataset)["totals"]["samples"] == 10
    assert sorted(p.name for p in dataset.iterdir()) == ["manifest.json", "train"]


def test_overwrite_never_replaces_a_folder_of_another_tool(tmp_path, clips):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "manifest.json").write_text('{"format": "something-else"}')
    line = assert_clean_error(invoke("average", clips, out, *ARGS, "--overwrite"), "manifest.json")
    assert "not a blursynth manifest" in line
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
