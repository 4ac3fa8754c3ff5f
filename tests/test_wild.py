"""The WILD recipe (Noroozi et al. 2017) and the flow options of `average`, on clips with known motion.

The clips are rendered at full resolution and written losslessly, so the motion of every pair is known
exactly: ``steps[i] / 3`` pixels per frame at the downsampled (x3) scale the filter works at.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from cli_helpers import invoke
from conftest import motion_frames, textured_image, write_video
from motion_fixtures import flat_noise_frames, low_texture_frames

H, W = 240, 360  # -> 80 x 120 after x3
SEG = 40
STEPS = [0.0] * SEG + [1.5] * SEG + [9.0] * SEG  # 0, 0.5 and 3 px/frame after x3


def run_ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def samples(out: Path) -> list[dict]:
    rows = []
    for path in sorted(out.glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            metas = [json.loads(m) for m in f["meta"].asstr()[()]]
            for i, meta in enumerate(metas):
                row = {"meta": meta, "blur": f["blur"][i], "sharp": f["sharp"][i]}
                if "blur_map" in f:
                    row["blur_map"] = f["blur_map"][i].astype(np.float32)
                    row["measurable"] = f["measurable"][i]
                rows.append(row)
    return rows


def stats(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*/*_stats.json"))]


def down3(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (frame.shape[1] // 3, frame.shape[0] // 3), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """still | 0.5 px/frame | 3 px/frame (downsampled scale), 40 frames each, lossless."""
    tmp = tmp_path_factory.mktemp("seg")
    tex = textured_image(H + 8, W + int(sum(STEPS)) + 8, seed=4)
    frames = motion_frames(tex, STEPS, H, W)
    return write_video(tmp / "segments.mkv", frames), frames


@pytest.fixture(scope="module")
def wild_out(segments, tmp_path_factory):
    out = tmp_path_factory.mktemp("wild") / "out"
    run_ok("average", "--recipe", "wild", segments[0], out, "-q")
    return out


def true_steps(meta: dict) -> list[float]:
    return [STEPS[i] / 3 for i in meta["frames"][1:]]


def test_kept_windows_come_only_from_segments_under_the_threshold(wild_out):
    rows = samples(wild_out)
    assert rows
    for r in rows:
        assert max(true_steps(r["meta"]), default=0) <= 0.5, r["meta"]["frames"]
    still = [r for r in rows if max(true_steps(r["meta"]), default=0) == 0]
    slow = [r for r in rows if min(true_steps(r["meta"])) == 0.5]
    assert still and slow
    # The 3 px/frame segment (frames 80..119) cannot hold a window at all.
    assert all(r["meta"]["frames"][-1] <= SEG * 2 for r in rows)
    rejected = sum(s["rejections"].get("flow_threshold", 0) for s in stats(wild_out))
    assert rejected > 0
    manifest = json.loads((wild_out / "manifest.json").read_text())
    assert manifest["sources"][0]["rejections"]["flow_threshold"] == rejected
    assert manifest["totals"]["rejected_windows"]["flow_threshold"] == rejected


def test_blur_map_integrates_flow(wild_out):
    for r in samples(wild_out):
        m, n = r["meta"], r["meta"]["n_frames"]
        interior = r["blur_map"][8:-8, 8:-8]
        speeds = true_steps(m)
        if max(speeds, default=0) == 0:
            assert float(np.abs(r["blur_map"]).max()) < 0.1
            assert m["blurred_area_ratio"] == 0.0
        elif min(speeds) == 0.5:
            expected = (n - 1) * 0.5
            assert np.median(interior) == pytest.approx(expected, rel=0.12)
            assert m["blurred_area_ratio"] > 0.9
            assert m["max_step_px"] == pytest.approx(0.5, abs=0.12)


def test_wild_meta_and_shard_contract(wild_out, segments):
    rows = samples(wild_out)
    frames = segments[1]
    for r in rows:
        m = r["meta"]
        for key in ("flow_method", "flow_stat", "max_step_px", "match_error", "blurred_area_ratio"):
            assert key in m
        assert m["flow_method"] == "dis" and m["flow_stat"] == "p99" and m["downsample"] == 3
        assert m["recipe"] == "wild" and 7 <= m["n_frames"] <= 23 and m["n_frames"] % 2 == 1
        assert len(m["pair_steps"]) == len(m["pair_match_errors"]) == m["n_frames"] - 1
        assert m["max_step_px"] == pytest.approx(max(m["pair_steps"], default=0))
        assert r["blur_map"].shape == r["blur"].shape[:2] == (H // 3, W // 3)
        # sharp: the x3 area-downsampled middle frame, exactly; blur: the linear-light average of the window.
        np.testing.assert_array_equal(r["sharp"], down3(frames[m["center"]]))
        small = np.stack([down3(frames[i]) for i in m["frames"]]).astype(np.float64) / 255
        oracle = np.rint(np.mean(small ** 2.2, axis=0) ** (1 / 2.2) * 255)
        assert np.abs(r["blur"].astype(np.float64) - oracle).max() <= 1
    with h5py.File(next(wild_out.glob("train/*.h5")), "r") as f:
        assert f["blur_map"].dtype == np.float16
        assert f["blur_map"].chunks == (1, H // 3, W // 3)
    manifest = json.loads((wild_out / "manifest.json").read_text())
    cfg = manifest["config"]
    assert (cfg["downsample"], cfg["flow"], cfg["flow_threshold"], cfg["blur_map"]) == (3, "dis", 1.0, True)
    assert cfg["frames"] == [7, 23]


def test_still_and_moving_regions_of_a_local_object(tmp_path):
    steps = [1.5] * 30  # the object moves 0.5 px/frame after x3; the background stays still
    tex = textured_image(H + 8, W + 8, seed=5)
    frames = motion_frames(tex, steps, H, W, patch=(60, 60, 120, 120))
    clip = write_video(tmp_path / "object.mkv", frames)
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", clip, out, "--frames", "9", "-q")
    rows = samples(out)
    assert rows
    for r in rows:
        bm = r["blur_map"]
        obj = bm[26:56, 30:56]  # well inside the object (rows 20..60, cols 20..60 + motion at the x3 scale)
        background = np.concatenate([bm[:, 90:].ravel(), bm[66:, :].ravel()])
        assert np.median(obj) == pytest.approx(8 * 0.5, rel=0.15)
        assert np.percentile(background, 95) < 0.2
        assert 0.05 < r["meta"]["blurred_area_ratio"] < 0.4


def test_scene_cut_is_an_unreliable_pair(tmp_path):
    a = motion_frames(textured_image(H + 8, W + 40, seed=6), [0.3] * 20, H, W)
    b = motion_frames(textured_image(H + 8, W + 40, seed=7), [0.3] * 20, H, W)
    clip = write_video(tmp_path / "cut.mkv", np.concatenate([a, b]))
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", clip, out, "--frames", "7", "-q")
    rej = {}
    for s in stats(out):
        for k, v in s["rejections"].items():
            rej[k] = rej.get(k, 0) + v
    assert rej.get("unreliable_flow", 0) >= 1
    for r in samples(out):
        assert not (r["meta"]["frames"][0] < 20 <= r["meta"]["frames"][-1])  # no window spans the cut
        assert r["meta"]["match_error"] < 12


def test_max_step_px_guards_any_recipe(segments, tmp_path):
    out = tmp_path / "out"
    run_ok("average", segments[0], out, "--frames", "7", "--max-step-px", "4", "-q")
    rows = samples(out)
    assert rows and all(max(STEPS[i] for i in r["meta"]["frames"][1:]) <= 1.5 for r in rows)
    assert all(r["meta"]["flow_method"] == "dis" and r["meta"]["recipe"] == "gopro" for r in rows)
    rej = [s["rejections"] for s in stats(out)]
    assert sum(r.get("max_step", 0) for r in rej) > 0
    assert not any("blur_map" in r for r in rows)  # the guard alone does not store blur maps
    assert rows[0]["blur"].shape == (H, W, 3)  # gopro keeps full resolution


def test_flow_none_turns_the_wild_filter_off(segments, tmp_path):
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", segments[0], out, "--flow", "none", "-q")
    rows = samples(out)
    assert any(r["meta"]["frames"][-1] >= 100 for r in rows)  # windows in the fast segment too
    assert all("blur_map" not in r and "flow_method" not in r["meta"] for r in rows)
    assert rows[0]["blur"].shape == (H // 3, W // 3, 3)


def test_torch_backend_writes_the_same_bytes(segments, wild_out, tmp_path):
    out = tmp_path / "torch"
    run_ok("average", "--recipe", "wild", segments[0], out, "--backend", "torch", "--device", "cpu",
           "--batch-frames", "5", "-q")
    a, b = samples(wild_out), samples(out)
    assert [r["meta"] for r in a] == [r["meta"] for r in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["blur"], y["blur"])
        np.testing.assert_array_equal(x["blur_map"], y["blur_map"])


def test_resume_after_lost_shards_is_byte_identical(segments, tmp_path):
    out = tmp_path / "out"
    args = ["average", "--recipe", "wild", segments[0], out, "--shard-size", "1", "-q"]
    run_ok(*args)
    shards = sorted(out.glob("train/*.h5"))
    assert len(shards) >= 3
    before = {p.name: p.read_bytes() for p in out.glob("train/*")}
    for p in shards[-2:]:  # lose the last two shards and their markers
        p.unlink()
        p.with_name(p.stem + "_stats.json").unlink()
    run_ok(*args)
    after = {p.name: p.read_bytes() for p in out.glob("train/*")}
    assert after == before


def test_gopro_layout_with_wild(segments, tmp_path):
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", segments[0], out, "--layout", "h5,gopro", "-q")
    rows = samples(out)
    pngs = sorted((out / "train" / "segments").glob("blur_gamma/*.png"))
    assert len(pngs) == len(rows)
    png = cv2.cvtColor(cv2.imread(str(pngs[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(png, rows[0]["blur"])


# -- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--flow", "raft"], 1, "torchvision"),
        (["--flow", "none", "--flow-threshold", "1"], 2, "--flow-threshold needs optical flow"),
        (["--flow", "none", "--blur-map"], 2, "--blur-map needs optical flow"),
        (["--flow", "none", "--max-step-px", "2"], 2, "--max-step-px needs optical flow"),
        (["--raft-weights", "w.pt"], 2, "--raft-weights is only used with --flow raft"),
        (["--downsample", "0"], 2, "--downsample"),
        (["--flow-threshold", "-1"], 2, "--flow-threshold"),
        (["--max-match-error", "0"], 2, "--max-match-error"),
        (["--flow", "sift"], 2, "sift"),
        (["--flow-stat", "median"], 2, "median"),
    ],
)
def test_flow_option_errors(segments, tmp_path, args, code, message):
    out = tmp_path / "out"
    result = invoke("average", "--recipe", "wild", segments[0], out, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_raft_weights_file_missing_is_named(segments, tmp_path, monkeypatch):
    """With torchvision present the weights file is checked; without it the dependency error comes first."""
    result = invoke("average", segments[0], tmp_path / "out", "--flow", "raft", "--raft-weights",
                    tmp_path / "nope.pt")
    assert result.exit_code == 1
    assert "torchvision" in result.output or "nope.pt" in result.output
    assert not (tmp_path / "out").exists()


def test_source_shorter_than_one_window_is_skipped(tmp_path):
    clip = write_video(tmp_path / "short.mkv", motion_frames(textured_image(H + 8, W + 8), [0.0] * 5, H, W))
    result = invoke("average", "--recipe", "wild", clip, tmp_path / "out")
    assert result.exit_code == 1
    assert "short.mkv" in result.output and "shorter than one window" in result.output
    assert not (tmp_path / "out").exists()


def test_flow_threshold_moves_the_cut(segments, tmp_path):
    """--flow-threshold 0.25 (below the 0.5 px/frame segment) keeps windows of the still segment only."""
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", segments[0], out, "--flow-threshold", "0.25", "-q")
    rows = samples(out)
    assert rows and all(max(true_steps(r["meta"]), default=0) == 0 for r in rows)
    assert sum(s["rejections"].get("flow_threshold", 0) for s in stats(out)) > 0


def test_blur_map_at_full_resolution_with_the_ghosting_guard(segments, tmp_path):
    """The help's `--max-step-px 2 --blur-map` on a GOPRO run: windows up to 1.5 px/frame, full-size blur maps."""
    out = tmp_path / "out"
    run_ok("average", segments[0], out, "--frames", "7", "--max-step-px", "2", "--blur-map", "-q")
    rows = samples(out)
    assert rows and any(min(STEPS[i] for i in r["meta"]["frames"][1:]) == 1.5 for r in rows)
    for r in rows:
        speeds = [STEPS[i] for i in r["meta"]["frames"][1:]]
        assert max(speeds) <= 1.5
        assert r["blur_map"].shape == r["blur"].shape[:2] == (H, W)
        if min(speeds) == 1.5:  # 6 pairs of 1.5 px each
            assert np.median(r["blur_map"][8:-8, 8:-8]) == pytest.approx(6 * 1.5, rel=0.12)


def test_truncated_wild_source_keeps_complete_windows(segments, tmp_path):
    data = Path(segments[0]).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = invoke("average", "--recipe", "wild", cut, out, "-q")
    man = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    if result.exit_code == 0:
        assert man["sources"][0]["status"] == "partial"
        assert samples(out)
        assert any(s["final"] for s in stats(out))
    else:  # nothing usable before the cut
        assert "cut.mkv" in result.output and not out.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


# -- measurable motion (issue 16): flat + noise, low texture, textured motion, every backend ------------------
FLOW_BACKENDS = ("dis", "deepflow", "farneback", "raft")


def skip_without(backend: str) -> None:
    """RAFT runs where torchvision (and its weights) can be loaded; the OpenCV methods always."""
    if backend == "raft":
        pytest.importorskip("torchvision")
        from blursynth.errors import MissingDependencyError
        from blursynth.flow import create_flow

        try:
            create_flow("raft")
        except MissingDependencyError as exc:
            pytest.skip(exc.message)


@pytest.fixture(scope="module")
def flat_clip(tmp_path_factory):
    """40 frames of static flat grey with sigma = 1 noise, 240x360 (80x120 after x3), lossless."""
    return write_video(tmp_path_factory.mktemp("flat") / "flat.mkv", flat_noise_frames(40, H, W, seed=21))


@pytest.fixture(scope="module")
def low_clip(tmp_path_factory):
    """Low-texture high-fps content: 24 frames, 180x320, an object creeping 0.3 px/frame (no downsampling)."""
    return write_video(tmp_path_factory.mktemp("low") / "low.mkv", low_texture_frames(24, 180, 320, seed=22))


def check_measurable_maps(rows: list[dict]) -> None:
    """The shard contract of blur maps with their masks: finite, >= 0, 0 where not measurable, mask 0/1."""
    for r in rows:
        bm, mask, m = r["blur_map"], r["measurable"], r["meta"]
        assert mask.dtype == np.uint8 and mask.shape == bm.shape and set(np.unique(mask)) <= {0, 1}
        assert np.isfinite(bm).all() and (bm >= 0).all() and (bm[mask == 0] == 0).all()
        assert m["measurable_fraction"] == pytest.approx(mask.mean(), abs=1e-6)
        assert m["blurred_area_ratio"] == pytest.approx(np.mean(bm > 1.0), abs=2e-3)  # float16 map vs float32


@pytest.mark.parametrize("backend", FLOW_BACKENDS)
def test_flat_noise_clip_keeps_its_windows(flat_clip, tmp_path, backend):
    """Nothing moves: no window is rejected, and no pixel is blurred at 1 px (DIS used to see ~1 px of motion
    on half the frame and reject every window)."""
    skip_without(backend)
    out = tmp_path / "out"
    run_ok("average", "--recipe", "wild", flat_clip, out, "--flow", backend, "-q")
    rows = samples(out)
    assert rows and sum(sum(s.get("rejections", {}).values()) for s in stats(out)) == 0
    assert rows[-1]["meta"]["frames"][-1] >= 40 - 23  # windows up to the end of the clip
    check_measurable_maps(rows)
    for r in rows:
        assert r["meta"]["blurred_area_ratio"] <= 0.01
        assert r["meta"]["max_step_px"] <= 1.0


def test_flat_noise_clip_passes_the_ghosting_guard(flat_clip, tmp_path):
    """--max-step-px on a GOPRO run at full resolution: nothing moves, so no window is rejected."""
    out = tmp_path / "out"
    run_ok("average", flat_clip, out, "--frames", "7", "--max-step-px", "1", "-q")
    rows = samples(out)
    assert len(rows) == 40 // 7 and sum(sum(s.get("rejections", {}).values()) for s in stats(out)) == 0
    assert all(r["meta"]["max_step_px"] == 0.0 for r in rows)


def low_texture_ratios(clip: Path, out: Path, backend: str) -> dict[tuple, float]:
    run_ok("average", "--recipe", "wild", clip, out, "--flow", backend, "--downsample", "1", "--frames", "7",
           "-q")
    rows = samples(out)
    check_measurable_maps(rows)
    return {tuple(r["meta"]["frames"]): r["meta"]["blurred_area_ratio"] for r in rows}


def test_low_texture_dis_agrees_with_deepflow(low_clip, tmp_path):
    """Same windows, blurred-area ratios within 0.1 (raw DIS flow: 1.0 against DeepFlow's 0.02). The object
    (30x30 of 180x320, 1.8 px of blur per window) is the only blur: ~0.016 of the frame."""
    dis = low_texture_ratios(low_clip, tmp_path / "dis", "dis")
    deep = low_texture_ratios(low_clip, tmp_path / "deepflow", "deepflow")
    assert dis and dis.keys() == deep.keys()
    for frames, ratio in dis.items():
        assert abs(ratio - deep[frames]) <= 0.1
        assert ratio <= 0.05 and deep[frames] <= 0.05


def test_textured_motion_is_measurable(wild_out):
    rows = samples(wild_out)
    check_measurable_maps(rows)
    assert all(r["meta"]["measurable_fraction"] >= 0.9 for r in rows)


class CountingFlow:
    """DIS in batches of 4 pairs (as RAFT batches), counting the pairs computed each way."""

    batch_size, wants_rgb, name = 4, False, "dis"

    def __init__(self) -> None:
        from blursynth.flow import create_flow

        self.inner = create_flow("dis")
        self.forward = self.backward = 0

    def pairs(self, frames):
        self.forward += len(frames) - 1
        return self.inner.pairs(frames)

    def backward_pairs(self, frames):
        self.backward += len(frames) - 1
        return self.inner.backward_pairs(frames)


def test_backward_flow_only_for_pairs_the_sampler_needs(segments, tmp_path, monkeypatch):
    """Batched flow selects the same windows as pair-by-pair flow, and once the sampler is done (one window
    per source) no pair is measured either way: far fewer than the clip's 119 pairs."""
    import blursynth.recipes.wild as wild

    args = ("average", "--recipe", "wild", segments[0], "--max-per-source", "1", "-q")
    run_ok(*args[:4], tmp_path / "plain", *args[4:])
    backends: list[CountingFlow] = []
    monkeypatch.setattr(wild, "create_flow", lambda *a, **k: backends.append(CountingFlow()) or backends[-1])
    run_ok(*args[:4], tmp_path / "batched", *args[4:])
    plain, batched = samples(tmp_path / "plain"), samples(tmp_path / "batched")
    assert [r["meta"]["frames"] for r in batched] == [r["meta"]["frames"] for r in plain]
    for x, y in zip(plain, batched, strict=True):
        np.testing.assert_array_equal(x["blur_map"], y["blur_map"])
    (flow,) = backends
    last = batched[-1]["meta"]["frames"][-1]
    assert flow.backward == flow.forward and last <= flow.forward <= last + flow.batch_size


# -- the validator's measurable checks ------------------------------------------------------------------------
def corrupted_copy(wild_out: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(wild_out, out)
    with h5py.File(next(out.glob("train/*.h5")), "r+") as f:
        edit(f)
    return out


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f["measurable"].__setitem__(0, np.full(f["measurable"].shape[1:], 2, np.uint8)),
     "values other than 0 and 1"),
    (lambda f: (f["measurable"].__setitem__(0, np.zeros(f["measurable"].shape[1:], np.uint8)),
                f["blur_map"].__setitem__(0, np.ones(f["blur_map"].shape[1:], np.float16))),
     "is not 0 where measurable"),
    (lambda f: (f.__delitem__("measurable"), f.create_dataset("measurable", data=np.zeros(
        f["blur_map"].shape, np.float32))), "measurable is float32"),
])
def test_validator_checks_measurable(wild_out, tmp_path, edit, message):
    from blursynth.shards.validate import validate_output

    assert validate_output(wild_out).ok
    result = validate_output(corrupted_copy(wild_out, tmp_path, edit))
    errors = [e for s in result.shards for e in s.errors]
    assert not result.ok and any(message in e for e in errors), errors


def test_frames_too_small_for_flow_fail_the_source_once_with_a_clean_reason(tmp_path):
    """30x30 frames are 10x10 after WILD's ↓3, which DIS refuses (both sides under 12 px): the source fails
    once (no retries: every attempt would fail alike) with a readable reason, and nothing is left in OUT."""
    from cli_helpers import assert_clean_error
    from conftest import pan_frames, write_frame_folder

    frames = pan_frames(textured_image(120, 120), 30, 30, 30, 0.2)
    src = write_frame_folder(tmp_path / "tiny", frames)
    result = invoke("average", str(src), str(tmp_path / "out"), "--recipe", "wild", "--fps", "240")
    line = assert_clean_error(result, "tiny", exit_code=1)
    assert "optical flow failed on 30x30 frames, 10x10 after downsampling by 3" in line and ">= 12" in line
    assert "attempt" not in result.output and "OpenCV(" not in result.output
    assert not (tmp_path / "out").exists()
