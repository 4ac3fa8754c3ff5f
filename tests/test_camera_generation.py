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
    base = rng.integers(0, int(vmax * 0.97), (H, W, 3)).astype(np.uint16 if bits == 16 else np.uint8)
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
