"""Ghosting guard (issue 18): GOPRO/LODE measure the inter-frame displacement of a few sampled pairs per source
(p99 of measurable motion) and warn once above 1 px. Oracle: the pan velocity the fixtures are rendered with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_ok
from conftest import pan_frames, write_frame_folder, write_video
from textures import textured_image

from blursynth.io.video import SourceInfo
from blursynth.recipes.ghosting import GHOSTING_PX, PairSampler, probe_luma, source_displacement
from blursynth.shards.reader import read_shard

H, W, N = 96, 128, 16


def _texture():
    return textured_image(H + 80, W + 80, seed=3)


def _average(inputs, out, *extra):
    result = run_ok("average", inputs, out, "--device", "cpu", "--fps", 240, *extra)
    sources = json.loads((out / "manifest.json").read_text())["sources"]
    ghost = [line for line in result.output.splitlines() if "staircase" in line]
    return ghost, sources


def _info(width: int, height: int, pix_fmt: str = "rgb24") -> SourceInfo:
    return SourceInfo(width=width, height=height, num_frames=N, fps=240.0, bit_depth=8, pix_fmt=pix_fmt,
                      codec="test", size_bytes=0)


def _sampled(frames: np.ndarray, info: SourceInfo, downsample: int = 1) -> float | None:
    sampler = PairSampler(info)
    list(sampler.watch(iter(frames), len(frames)))
    return source_displacement(sampler, downsample)


def test_fast_pan_video_warns_once_and_manifest_records_it(tmp_path):
    video = write_video(tmp_path / "in" / "fast.mkv", pan_frames(_texture(), N, H, W, 3.0))
    ghost, sources = _average(video, tmp_path / "out")
    assert len(ghost) == 1, ghost  # once per source, at default verbosity
    assert ghost[0].startswith("warning:") and "fast.mkv" in ghost[0], ghost[0]
    assert "3.0 px" in ghost[0] or "2.9 px" in ghost[0] or "3.1 px" in ghost[0], ghost[0]
    assert sources[0]["frame_displacement_p99"] == pytest.approx(3.0, abs=0.3)
    assert "--substeps auto" in ghost[0]  # the remedy that keeps the frame rate and the window


def test_substeps_need_no_warning_their_samples_record_the_displacement(tmp_path):
    video = write_video(tmp_path / "in" / "fast.mkv", pan_frames(_texture(), N, H, W, 3.0))
    ghost, sources = _average(video, tmp_path / "out", "--substeps", "auto", "--frames", "7")
    assert ghost == [] and "frame_displacement_p99" not in sources[0]
    metas = [m for f in sorted((tmp_path / "out" / "train").glob("*.h5")) for m in read_shard(f).meta]
    assert metas and all(m["frame_displacement_p99"] == pytest.approx(3.0, abs=0.3) for m in metas)


def test_slow_pan_frame_folder_does_not_warn(tmp_path):
    folder = write_frame_folder(tmp_path / "in" / "slow", pan_frames(_texture(), N, H, W, 0.3))
    ghost, sources = _average(folder, tmp_path / "out")
    assert ghost == []
    assert sources[0]["frame_displacement_p99"] == pytest.approx(0.3, abs=0.1)


def test_fast_pan_frame_folder_warns_and_downsample_divides(tmp_path):
    folder = write_frame_folder(tmp_path / "in" / "fast", pan_frames(_texture(), N, H, W, 3.0))
    ghost, sources = _average(folder, tmp_path / "out")
    assert len(ghost) == 1 and "fast" in ghost[0]
    assert sources[0]["frame_displacement_p99"] == pytest.approx(3.0, abs=0.3)
    # --downsample 4: the averaged frames move 3 / 4 px per frame, below the threshold.
    ghost, sources = _average(folder, tmp_path / "out4", "--downsample", "4")
    assert ghost == []
    assert sources[0]["frame_displacement_p99"] == pytest.approx(0.75, abs=0.1)


def test_flat_noise_only_clip_does_not_warn(tmp_path):
    """DIS invents pixels of motion on flat noise; only measurable pixels count, and there are none."""
    rng = np.random.default_rng(0)
    flat = np.clip(128 + rng.normal(0, 2.0, (N, H, W, 3)), 0, 255).astype(np.uint8)
    video = write_video(tmp_path / "in" / "flat.mkv", flat)
    ghost, sources = _average(video, tmp_path / "out")
    assert ghost == []
    assert sources[0]["frame_displacement_p99"] < 0.1


def test_flow_selected_windows_are_not_guarded(tmp_path):
    """Windows chosen from the flow itself (WILD, --max-step-px) are not guarded: no warning, no figure."""
    video = write_video(tmp_path / "in" / "fast.mkv", pan_frames(_texture(), N, H, W, 3.0))
    result = run_ok("average", video, tmp_path / "out", "--device", "cpu", "--max-step-px", "10")
    assert "staircase" not in result.output
    sources = json.loads((tmp_path / "out" / "manifest.json").read_text())["sources"]
    assert "frame_displacement_p99" not in sources[0]


def test_reduced_size_reports_full_resolution_pixels():
    """Frames larger than the measuring size are shrunk; the figure is scaled back (640 px wide: x2)."""
    tex = textured_image(280, 760, seed=4)
    frames = pan_frames(tex, N, 200, 640, 4.0)
    assert _sampled(frames, _info(640, 200)) == pytest.approx(4.0, abs=0.4)


def test_repeated_frames_are_skipped_and_static_is_zero():
    """A source that shows every instant twice still measures its real motion; a still one measures 0."""
    doubled = np.repeat(pan_frames(_texture(), N // 2, H, W, 2.0), 2, axis=0)
    assert _sampled(doubled, _info(W, H)) == pytest.approx(2.0, abs=0.2)
    still = np.repeat(pan_frames(_texture(), 1, H, W, 0.0), N, axis=0)
    assert _sampled(still, _info(W, H)) == 0.0


def test_native_yuv_luma_planes():
    """Native decoder layouts: the luma plane comes first; 10-bit planes are shifted to 8 bits."""
    rng = np.random.default_rng(1)
    luma = rng.integers(0, 256, (H, W), dtype=np.uint8)
    yuv420 = np.concatenate([luma, rng.integers(0, 256, (H // 2, W), dtype=np.uint8)])
    np.testing.assert_array_equal(probe_luma(yuv420, _info(W, H, "yuv420p")), luma)
    deep = (yuv420.astype(np.uint16) << 2) | 3
    np.testing.assert_array_equal(probe_luma(deep, _info(W, H, "yuv420p10le")), luma)
    assert probe_luma(np.zeros((H // 2, W), np.uint8), _info(W, H)) is None  # not a layout we know


def test_threshold_is_one_pixel():
    assert GHOSTING_PX == 1.0
