"""Issue 19 at generation: ``sat_mask`` against the clipped-sample count, ``--camera`` options and their errors,
and the camera applied by ``average`` (the reader side is tested with the camera package).

Sources are PNG frame folders, so code values are exact: the oracle counts the frames at the maximum code value
itself (never through the tool's accumulators)."""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import write_frame_folder

from blursynth.ops.interpolate import sample_times
from blursynth.shards.reader import read_shard

H, W, N = 24, 32, 5


def samples(out: Path) -> list[dict]:
    found = []
    for path in sorted(glob.glob(str(out / "*" / "*.h5"))):
        shard = read_shard(path)
        found += [shard[i] for i in range(len(shard))]
    return sorted(found, key=lambda s: s["meta"]["sample"])


def highlight_frames(n: int = 15, *, bits: int = 8, seed: int = 0) -> np.ndarray:
    """A textured scene below the maximum code value with a clipped block moving 2 px per frame (R and G at
    the maximum, B at the maximum in its left half only) and a static clipped stripe in R."""
    vmax = (1 << bits) - 1
    rng = np.random.default_rng(seed)
    small = rng.random((H // 6, W // 6, 3)).astype(np.float32)  # smooth, as natural images are (the demosaic)
    smooth = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    base = np.rint(smooth * vmax * 0.9 + vmax * 0.05).astype(np.uint16 if bits == 16 else np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for k in range(n):
        x = 2 + 2 * k
        frames[k, 6:14, x:x + 6, :2] = vmax
        frames[k, 6:14, x:x + 3, 2] = vmax
    frames[:, 20:22, :, 0] = vmax
    return frames


def write_frames_16(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"frame{i}.png"), np.ascontiguousarray(f[..., ::-1]))
    return folder


def expected_mask(frames: np.ndarray, meta: dict, vmax: int = 255) -> np.ndarray:
    clipped = (frames[meta["frames"]] == vmax).sum(axis=0)
    return np.rint(255.0 * clipped / len(meta["frames"])).astype(np.uint8)


def test_sat_mask_counts_the_clipped_frames_of_each_window(tmp_path):
    frames = highlight_frames()
    src = write_frame_folder(tmp_path / "clip", frames)
    run_ok("average", src, tmp_path / "out", "--frames", N, "--fps", 240, "--sat-mask", "-q")
    found = samples(tmp_path / "out")
    assert len(found) == 3
    for s in found:
        np.testing.assert_array_equal(s["sat_mask"], expected_mask(frames, s["meta"]))
        assert "camera" not in s["meta"]
    assert {0, 51, 102, 255} <= set(np.unique(found[0]["sat_mask"]).tolist())  # partial fractions occur
    # the mask is extra: blur and sharp are those of the run without it
    run_ok("average", src, tmp_path / "plain", "--frames", N, "--fps", 240, "-q")
    for s, p in zip(found, samples(tmp_path / "plain"), strict=True):
        np.testing.assert_array_equal(s["blur"], p["blur"])
        assert "sat_mask" not in p


@pytest.mark.parametrize("backend", ["torch"])
def test_sat_mask_overlapping_windows_and_the_torch_accumulator(tmp_path, backend):
    frames = highlight_frames()
    src = write_frame_folder(tmp_path / "clip", frames)
    for name, extra in (("stream", ()), (backend, ("--backend", backend, "--device", "cpu"))):
        run_ok("average", src, tmp_path / name, "--frames", N, "--stride", 2, "--fps", 240, "--sat-mask", "-q",
               *extra)
    found = samples(tmp_path / "stream")
    assert len(found) == 6
    for s, t in zip(found, samples(tmp_path / backend), strict=True):
        np.testing.assert_array_equal(s["sat_mask"], expected_mask(frames, s["meta"]))
        np.testing.assert_array_equal(t["sat_mask"], s["sat_mask"])


def test_sat_mask_of_a_16_bit_source_uses_65535(tmp_path):
    frames = highlight_frames(bits=16)
    frames[:, 0:2, :, 1] = 65534  # one below the maximum: never counted
    src = write_frames_16(tmp_path / "clip16", frames)
    run_ok("average", src, tmp_path / "out", "--frames", N, "--fps", 240, "--sat-mask", "-q")
    found = samples(tmp_path / "out")
    assert found and found[0]["meta"]["bit_depth"] == 16
    for s in found:
        np.testing.assert_array_equal(s["sat_mask"], expected_mask(frames, s["meta"], 65535))
    assert found[0]["sat_mask"][0:2, :, 1].max() == 0


def blinking_frames(n: int = 9) -> np.ndarray:
    """Spatially flat frames (every warp of them is the frame itself, whatever the flow): R clipped in frames
    0-3 then 200, G clipped in the even frames, B never clipped."""
    frames = np.zeros((n, H, W, 3), np.uint8)
    for k in range(n):
        frames[k, ..., 0] = 255 if k <= 3 else 200
        frames[k, ..., 1] = 255 if k % 2 == 0 else 180
        frames[k, ..., 2] = 120
    return frames


def substep_fraction(clipped: np.ndarray, n: int, k: int, tau: float) -> float:
    """The oracle: a sample at time t is clipped when it is a clipped frame, or between two clipped frames (a
    convex blend of 1.0 and a value below 1 with a positive weight on it is below 1)."""
    times = sample_times(n, k, tau)
    hits = 0
    for t in times:
        lo, hi = int(np.floor(t + 1e-9)), int(np.ceil(t - 1e-9))
        hits += bool(clipped[lo] and clipped[hi])
    return hits / len(times)


@pytest.mark.parametrize(("k", "tau"), [(4, 1.0), (3, 0.5)])
def test_sat_mask_counts_synthesised_samples(tmp_path, k, tau):
    n = 7
    frames = blinking_frames(n)
    src = write_frame_folder(tmp_path / "clip", frames)
    run_ok("average", src, tmp_path / "out", "--frames", n, "--fps", 240, "--substeps", k, "--duty-cycle", tau,
           "--sat-mask", "-q")
    (s,) = samples(tmp_path / "out")
    assert s["meta"]["exposure_samples"] == (n - 1) * k + 1
    for c in range(3):
        want = round(255 * substep_fraction(frames[:, 0, 0, c] == 255, n, k, tau))
        assert (s["sat_mask"][..., c] == want).all(), (c, want, np.unique(s["sat_mask"][..., c]))
    assert s["sat_mask"][..., 2].max() == 0 and s["sat_mask"][..., 0].min() > 0


def test_camera_none_writes_the_bytes_of_no_option(tmp_path):
    src = write_frame_folder(tmp_path / "clip", highlight_frames())
    run_ok("average", src, tmp_path / "a", "--frames", N, "--fps", 240, "-q")
    run_ok("average", src, tmp_path / "b", "--frames", N, "--fps", 240, "--camera", "none", "-q")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.h5"))
    assert files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


@pytest.mark.parametrize(("args", "names"), [
    (("--camera-jpeg", "80"), "--camera-jpeg"),
    (("--no-camera-noise",), "--no-camera-noise"),
    (("--camera", "rsblur", "--camera-jpeg", "0,90"), "--camera-jpeg"),
    (("--camera", "rsblur", "--camera-jpeg", "95,70"), "--camera-jpeg"),
    (("--camera", "rsblur", "--camera-jpeg", "x"), "--camera-jpeg"),
    (("--camera", "rsblur", "--camera-noise-scale", "2,1"), "--camera-noise-scale"),
    (("--camera", "rsblur", "--camera-noise-scale", "-1,1"), "--camera-noise-scale"),
    (("--camera", "rsblur", "--no-camera-noise", "--camera-noise-scale", "1,2"), "--camera-noise-scale"),
    (("--camera", "rsblur", "--camera-bayer", "RGBG"), "--camera-bayer"),
    (("--camera", "rsblur", "--camera-bayer", "RGGB", "--no-camera-mosaic"), "--camera-bayer"),
    (("--camera", "rsblur", "--camera-h264-crf", "60"), "--camera-h264-crf"),
    (("--camera", "rsblur", "--camera-matrix", ","), "--camera-matrix"),
    (("--camera", "rsblur", "--layout", "h5,gopro"), "--layout gopro"),
    (("--camera", "rsblur", "--keep-plain-mean"), "--keep-plain-mean"),
])
def test_bad_camera_options_are_one_line_errors(tmp_path, args, names):
    src = write_frame_folder(tmp_path / "clip", highlight_frames(7))
    result = invoke("average", src, tmp_path / "out", "--frames", N, *args)
    assert_clean_error(result, names)
    assert not (tmp_path / "out").exists()


CONTRACT_KEYS = {"camera", "seed", "alpha", "matrix", "pattern", "red_gain", "blue_gain", "beta1", "beta2",
                 "jpeg_quality", "h264_crf"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("camera")
    frames = highlight_frames()
    src = write_frame_folder(tmp / "clip", frames)
    run_ok("average", src, tmp / "plain", "--frames", N, "--fps", 240, "-q")
    run_ok("average", src, tmp / "cam", "--frames", N, "--fps", 240, "--camera", "rsblur", "-q")
    return tmp, src, frames


def test_camera_renders_blur_records_the_draw_and_leaves_sharp(clip):
    tmp, src, frames = clip
    plain, cam = samples(tmp / "plain"), samples(tmp / "cam")
    assert len(cam) == len(plain) == 3
    for p, c in zip(plain, cam, strict=True):
        draw = c["meta"]["camera"]
        assert set(draw) >= CONTRACT_KEYS and draw["camera"] == "rsblur"
        assert draw["alpha"] is not None and draw["beta1"] is not None and draw["jpeg_quality"] is None
        assert {k: v for k, v in c["meta"].items() if k != "camera"} == p["meta"]
        np.testing.assert_array_equal(c["sharp"], p["sharp"])
        np.testing.assert_array_equal(c["sat_mask"], expected_mask(frames, c["meta"]))  # stored with the camera
        assert (c["blur"] != p["blur"]).mean() > 0.3
        assert np.abs(c["blur"].astype(int) - p["blur"]).mean() < 20  # the same scene through a camera
    assert len({c["meta"]["camera"]["seed"] for c in cam}) == 3


def test_camera_same_command_same_bytes_with_two_workers_other_seed_other_draw(clip):
    tmp, src, _ = clip
    run_ok("average", src, tmp / "w2", "--frames", N, "--fps", 240, "--camera", "rsblur", "--workers", 2, "-q")
    for a, b in zip(samples(tmp / "cam"), samples(tmp / "w2"), strict=True):
        assert a["meta"] == b["meta"]
        for name in ("blur", "sharp", "sat_mask"):
            np.testing.assert_array_equal(a[name], b[name])
    run_ok("average", src, tmp / "seed1", "--frames", N, "--fps", 240, "--camera", "rsblur", "--seed", 1, "-q")
    other = samples(tmp / "seed1")
    for a, b in zip(samples(tmp / "cam"), other, strict=True):
        assert a["meta"]["camera"]["seed"] != b["meta"]["camera"]["seed"]
        assert a["meta"]["camera"]["alpha"] != b["meta"]["camera"]["alpha"]


def test_camera_options_reach_the_draw(clip):
    tmp, src, _ = clip
    run_ok("average", src, tmp / "opts", "--frames", N, "--fps", 240, "--camera", "rsblur", "--camera-jpeg", "50,60",
           "--camera-bayer", "grbg", "--camera-matrix", "sony_a7r3", "--no-camera-saturation", "--no-camera-noise",
           "-q")
    for s in samples(tmp / "opts"):
        draw = s["meta"]["camera"]
        assert 50 <= draw["jpeg_quality"] <= 60 and draw["pattern"] == "GRBG" and draw["matrix"] == "sony_a7r3"
        assert draw["alpha"] is None and draw["beta1"] is None and draw["beta2"] is None
    result = invoke("average", src, tmp / "bad", "--frames", N, "--camera", "rsblur", "--camera-matrix", "leica_x")
    assert "leica_x" in assert_clean_error(result, "--camera-matrix")
    assert not (tmp / "bad").exists()


def test_a_resume_with_other_camera_options_is_refused(clip):
    tmp, src, _ = clip
    for args in (("--camera", "none"), ("--camera", "rsblur", "--camera-jpeg", "90"), ("--sat-mask",)):
        result = invoke("average", src, tmp / "cam", "--frames", N, "--fps", 240, *args)
        assert "--overwrite" in assert_clean_error(result, "other settings")
    before = {p: p.read_bytes() for p in (tmp / "cam").rglob("*.h5")}
    run_ok("average", src, tmp / "cam", "--frames", N, "--fps", 240, "--camera", "rsblur", "-q")  # resumes
    assert before == {p: p.read_bytes() for p in (tmp / "cam").rglob("*.h5")}


def test_camera_with_substeps_and_a_16_bit_source(tmp_path):
    frames = highlight_frames(bits=16)
    src = write_frames_16(tmp_path / "clip16", frames)
    run_ok("average", src, tmp_path / "plain", "--frames", N, "--fps", 240, "--substeps", 2, "-q")
    run_ok("average", src, tmp_path / "cam", "--frames", N, "--fps", 240, "--substeps", 2, "--camera", "rsblur",
           "--camera-jpeg", "90", "-q")
    for p, c in zip(samples(tmp_path / "plain"), samples(tmp_path / "cam"), strict=True):
        assert c["meta"]["bit_depth"] == 16 and c["meta"]["camera"]["jpeg_quality"] == 90
        np.testing.assert_array_equal(c["sharp"], p["sharp"])
        assert (c["blur"] != p["blur"]).any() and c["sat_mask"].max() == 255


def test_shards_with_sat_mask_validate_inspect_and_export(clip):
    tmp, _, _ = clip
    from blursynth.shards.validate import validate_output

    check = validate_output(tmp / "cam")
    assert check.ok, check.to_dict()
    run_ok("inspect", tmp / "cam", "-q")
    for layout in ("gopro", "basicsr"):
        run_ok("export", tmp / "cam", tmp / f"x_{layout}", "--layout", layout, "-q")
        pngs = sorted((tmp / f"x_{layout}").rglob("sat_mask/*.png"))
        assert len(pngs) == 3
        image = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (H, W, 3)


def test_sat_mask_and_camera_on_flow_selected_windows(tmp_path):
    """The WILD path (windows chosen online from the flow, recipes/wild.py) shares the accumulators."""
    frames = highlight_frames()
    src = write_frame_folder(tmp_path / "clip", frames)
    run_ok("average", src, tmp_path / "out", "--frames", N, "--fps", 240, "--max-step-px", 50, "--sat-mask", "-q")
    found = samples(tmp_path / "out")
    assert found and all("max_step_px" in s["meta"] for s in found)
    for s in found:
        np.testing.assert_array_equal(s["sat_mask"], expected_mask(frames, s["meta"]))
    run_ok("average", src, tmp_path / "cam", "--frames", N, "--fps", 240, "--max-step-px", 50, "--camera", "rsblur",
           "-q")
    for s, c in zip(found, samples(tmp_path / "cam"), strict=True):
        assert c["meta"]["camera"]["camera"] == "rsblur"
        np.testing.assert_array_equal(c["sharp"], s["sharp"])
        np.testing.assert_array_equal(c["sat_mask"], s["sat_mask"])


def test_substep_counting_near_clipped_pixels_only_matches_the_whole_frame():
    """Under --substeps a pair's samples are synthesised again only around its clipped pixels (ops/saturation.py
    ``_regions``): the count there is that of the whole frame, but for samples within float rounding of 1.0."""
    import torch

    from blursynth.flow import create_flow
    from blursynth.ops import saturation
    from blursynth.ops.exposure import INTERPOLATIONS
    from blursynth.ops.interpolate import compute_window_flows

    h, w, n = 192, 256, 5
    rng = np.random.default_rng(1)
    small = rng.random((h // 8, w // 8, 3)).astype(np.float32)
    base = np.clip(cv2.resize(small, (w + 40, h), interpolation=cv2.INTER_CUBIC) * 0.8 + 0.05, 0.0, 0.95)
    frames = np.stack([base[:, 3 * k:3 * k + w] for k in range(n)])
    for k in range(n):
        frames[k, 60:84, 80 + 3 * k:104 + 3 * k] = 1.0
    linear = torch.from_numpy(frames).permute(0, 3, 1, 2)
    gray = np.stack([cv2.cvtColor(np.rint(f ** (1 / 2.2) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames])
    options = dict(INTERPOLATIONS["balanced"])
    flows = compute_window_flows(None, create_flow("dis"), gray=gray, flow_scale=options.pop("flow_scale"))
    assert saturation._regions(linear[0], linear[1], flows.forward[0], flows.backward[0], flows.scale)
    near = saturation.saturated_fraction(linear, 8, 1.0, flows, **options)
    original = saturation._regions
    try:
        saturation._regions = lambda *args: None
        whole = saturation.saturated_fraction(linear, 8, 1.0, flows, **options)
    finally:
        saturation._regions = original
    assert (near > 0).sum() > 1000
    assert (near != whole).mean() < 0.002 and np.abs(near - whole).max() <= 0.2


def test_camera_resumes_byte_for_byte_and_the_torch_accumulator_agrees(clip, tmp_path):
    tmp, src, _ = clip
    args = ("--frames", N, "--fps", 240, "--camera", "rsblur", "--shard-size", 1, "-q")
    out = tmp_path / "out"
    run_ok("average", src, out, *args)
    shards = sorted(out.rglob("*.h5"))
    assert len(shards) == 3
    before = {p: p.read_bytes() for p in shards}
    shards[1].unlink()
    shards[1].with_name(shards[1].stem + "_stats.json").unlink()
    run_ok("average", src, out, *args)  # redraws the missing sample's camera from (seed, sample key) alone
    assert before == {p: p.read_bytes() for p in sorted(out.rglob("*.h5"))}
    run_ok("average", src, tmp_path / "torch", *args, "--backend", "torch", "--device", "cpu")
    for a, b in zip(samples(out), samples(tmp_path / "torch"), strict=True):
        for name in ("blur", "sharp", "sat_mask"):
            np.testing.assert_array_equal(a[name], b[name])
