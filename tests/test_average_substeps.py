"""``average --substeps`` / ``--duty-cycle`` / ``--recipe reds`` (issue 18) end to end, against the
continuous-exposure oracle of tests/exposure_fixtures.py: the scene rendered at 32 sub-steps per frame interval,
the tool given only the integer frames (a lossless video or a frame folder)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import pan_frames, write_frame_folder, write_video
from exposure_fixtures import ExposureScene, encode
from textures import textured_image

from blursynth.flow import create_flow
from blursynth.ops.accumulate import Channel
from blursynth.ops.crf import create_crf
from blursynth.ops.exposure import ExposureAccumulator
from blursynth.ops.windows import Window
from blursynth.shards.reader import read_shard

N = 7


def samples(out: Path) -> list[dict]:
    return [s for f in sorted(glob.glob(str(out / "*" / "*.h5"))) for s in (lambda sh: [sh[i] for i in range(len(sh))])(
        read_shard(f))]


def psnr(a: np.ndarray, b: np.ndarray, border: int = 20) -> float:
    a = a[border:-border, border:-border].astype(np.float64)
    b = b[border:-border, border:-border].astype(np.float64)
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize(("velocity", "with_object", "target", "preset"), [
    (8.0, False, 50.0, "balanced"), (16.0, True, 43.0, "balanced"), (8.0, True, 46.0, "balanced"),
    (16.0, True, 43.0, "quality"), (8.0, False, 50.0, "fast"),
])
def test_substeps_auto_meets_the_oracle_from_a_video(tmp_path, velocity, with_object, target, preset):
    scene = ExposureScene(velocity=velocity, with_object=with_object)
    frames = scene.frames(N)
    video = write_video(tmp_path / "scene.mkv", frames, fps=240)
    run_ok("average", video, tmp_path / "out", "--frames", str(N), "--substeps", "auto", "--interpolation", preset,
           "-q")
    (s,) = samples(tmp_path / "out")
    truth = encode(scene.truth(0.0, N - 1.0))
    assert psnr(s["blur"], truth) >= target
    np.testing.assert_array_equal(s["sharp"], frames[N // 2])  # the sharp frame stays bit-exact
    # the plain average of the same frames is far from the truth (the scene discriminates)
    run_ok("average", video, tmp_path / "plain", "--frames", str(N), "-q")
    (p,) = samples(tmp_path / "plain")
    assert psnr(p["blur"], truth) <= 35.0
    meta = s["meta"]
    k = meta["substeps"]
    assert velocity <= k <= 32 and meta["exposure_samples"] == (N - 1) * k + 1
    assert meta["virtual_fps"] == pytest.approx(240.0 * k) and meta["substep_px"] <= 1.0
    assert meta["exposure"] == pytest.approx(((N - 1) * k + 1) / (240.0 * k))
    assert meta["interpolation_flow"] == "dis" and meta["duty_cycle"] == 1.0


def test_duty_cycle_against_a_shorter_exposure(tmp_path):
    scene = ExposureScene(velocity=8.0)
    folder = write_frame_folder(tmp_path / "seq", scene.frames(N))
    run_ok("average", folder, tmp_path / "out", "--frames", str(N), "--substeps", "8", "--duty-cycle", "0.5",
           "--fps", "240", "-q")
    (s,) = samples(tmp_path / "out")
    c, half = (N - 1) / 2, 0.5 * (N - 1) / 2
    assert psnr(s["blur"], encode(scene.truth(c - half, c + half))) >= 50.0
    assert s["meta"]["exposure"] == pytest.approx((6 * 8 + 1) * (0.5 * 6 / 48) / 240.0)


def test_substeps_1_is_the_plain_average_byte_for_byte(tmp_path):
    frames = pan_frames(textured_image(96, 160, seed=5), 20, 48, 64, velocity=2.5)
    folder = write_frame_folder(tmp_path / "seq", frames)
    run_ok("average", folder, tmp_path / "plain", "--frames", "7", "--fps", "240", "-q")
    run_ok("average", folder, tmp_path / "k1", "--frames", "7", "--fps", "240", "--substeps", "1", "-q")
    a, b = samples(tmp_path / "plain"), samples(tmp_path / "k1")
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["blur"], y["blur"])
        assert x["meta"] == y["meta"]
    fingerprint = json.loads((tmp_path / "k1" / "manifest.json").read_text())["fingerprint"]
    assert "substeps" not in fingerprint and "duty_cycle" not in fingerprint  # old datasets still resume


def test_auto_on_a_still_scene_is_the_plain_average(tmp_path):
    still = np.repeat(textured_image(48, 64, seed=2)[None], 9, axis=0)
    frames = np.clip(np.rint(still * 255), 0, 255).astype(np.uint8)
    folder = write_frame_folder(tmp_path / "seq", frames)
    run_ok("average", folder, tmp_path / "plain", "--frames", "9", "--fps", "240", "-q")
    run_ok("average", folder, tmp_path / "auto", "--frames", "9", "--fps", "240", "--substeps", "auto", "-q")
    (a,), (b,) = samples(tmp_path / "plain"), samples(tmp_path / "auto")
    np.testing.assert_array_equal(a["blur"], b["blur"])
    assert b["meta"]["substeps"] == 1 and b["meta"]["interpolation"] == "none"


def test_reds_recipe(tmp_path):
    frames = pan_frames(textured_image(96, 160, seed=7), 15, 48, 64, velocity=3.0)
    video = write_video(tmp_path / "reds.mkv", frames, fps=120)
    run_ok("average", "--recipe", "reds", video, tmp_path / "out", "-q")
    got = samples(tmp_path / "out")
    assert [s["meta"]["frames"] for s in got] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    for s in got:
        m = s["meta"]
        assert (m["n_frames"], m["substeps"], m["exposure_samples"]) == (5, 16, 65)
        assert m["virtual_fps"] == pytest.approx(1920.0) and m["exposure"] == pytest.approx(65 / 1920)
        np.testing.assert_array_equal(s["sharp"], frames[m["center"]])
    # the middle real frame is the sharp one, and the blur is a smear rather than five copies
    assert got[0]["meta"]["center"] == 2


def test_resume_and_workers_give_the_same_bytes(tmp_path):
    frames = pan_frames(textured_image(96, 200, seed=9), 40, 48, 64, velocity=2.0)
    video = write_video(tmp_path / "v.mkv", frames, fps=240)
    opts = ["--frames", "7", "--substeps", "auto", "--shard-size", "2", "-q"]
    run_ok("average", video, tmp_path / "a", *opts)
    run_ok("average", video, tmp_path / "b", *opts, "--workers", "2")
    first = samples(tmp_path / "a")
    assert len(first) >= 4
    for x, y in zip(first, samples(tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(x["blur"], y["blur"])
    # drop the last shard and resume: the same bytes come back
    last = sorted(glob.glob(str(tmp_path / "a" / "*" / "*.h5")))[-1]
    Path(last).unlink()
    Path(last.replace(".h5", "_stats.json")).unlink()  # its commit marker too: the shard is lost
    run_ok("average", video, tmp_path / "a", *opts)
    for x, y in zip(first, samples(tmp_path / "a"), strict=True):
        np.testing.assert_array_equal(x["blur"], y["blur"])
    # another K is another dataset: resuming it into OUT is refused
    result = invoke("average", video, tmp_path / "a", "--frames", "7", "--substeps", "4", "--shard-size", "2")
    assert result.exit_code != 0 and "substeps" in result.output


def test_ten_bit_source(tmp_path):
    scene = ExposureScene(height=96, width=128, velocity=4.0)
    frames8 = scene.frames(5)
    frames16 = (frames8.astype(np.uint16) * 257)  # the same picture at 16 bits
    write_video(tmp_path / "v16.mkv", frames16, fps=240, codec="ffv1", pix_fmt="rgb48le")
    write_video(tmp_path / "v8.mkv", frames8, fps=240)
    for name in ("v8", "v16"):
        run_ok("average", tmp_path / f"{name}.mkv", tmp_path / name, "--frames", "5", "--substeps", "4", "-q")
    (a,), (b,) = samples(tmp_path / "v8"), samples(tmp_path / "v16")
    assert b["meta"]["bit_depth"] == 16 and b["meta"]["substeps"] == 4
    assert np.abs(a["blur"].astype(int) - b["blur"].astype(int)).max() <= 1


def test_accumulator_holds_only_the_pending_windows_frames():
    frames = pan_frames(textured_image(64, 400, seed=4), 60, 32, 48, velocity=1.5)
    windows = [Window(i, 7 * i, 7) for i in range(8)]
    channels = [Channel.create(create_crf("gamma", 2.2), 8, 7)]
    acc = ExposureAccumulator(windows, channels, substeps=2, duty_cycle=1.0, flow=create_flow("dis"))
    emitted, held = [], 0
    for i, f in enumerate(frames):
        emitted += acc.push(i, f)
        held = max(held, len(acc._frames), len(acc._pairs))
        assert len(acc._queue) <= 1  # at most one window waits in the worker
    emitted += acc.finish()
    assert [w.index for w, _ in emitted] == list(range(8))  # in order, every one
    assert held <= 7  # never more than one window's frames, whatever the video's length


@pytest.mark.parametrize(("args", "message"), [
    (["--substeps", "0"], "--substeps"), (["--substeps", "fast"], "--substeps"),
    (["--duty-cycle", "0"], "--duty-cycle"), (["--duty-cycle", "1.5"], "--duty-cycle"),
    (["--duty-cycle", "0.5", "--frames", "1"], "--duty-cycle"), (["--interpolation", "quality"], "--interpolation"),
    (["--substeps", "2", "--interpolation", "best"], "--interpolation"),
    (["--interpolation", "balanced"], "--interpolation"), (["--substeps", "257"], "--substeps"),
    (["--substeps", "4", "--flow", "none"], "--flow none"), (["--recipe", "reds", "--flow", "none"], "--flow none"),
    (["--substeps", "2", "--interpolator", "missing.pt"], "missing.pt"),
])
def test_bad_options(tmp_path, args, message):
    folder = write_frame_folder(tmp_path / "seq", np.zeros((9, 16, 16, 3), np.uint8))
    result = invoke("average", folder, tmp_path / "out", "--fps", "240", *args)
    assert_clean_error(result, message)
    assert not (tmp_path / "out").exists()


def test_wild_recipe_with_substeps_and_a_duty_cycle(tmp_path):
    """Flow-selected windows get the same continuous exposure; the blur map covers tau of the motion."""
    frames = pan_frames(textured_image(120, 200, seed=11), 24, 96, 128, velocity=0.6)
    folder = write_frame_folder(tmp_path / "seq", frames)
    common = ["--frames", "7", "--downsample", "1", "--fps", "240", "-q"]
    run_ok("average", "--recipe", "wild", folder, tmp_path / "full", *common)
    run_ok("average", "--recipe", "wild", folder, tmp_path / "half", *common, "--substeps", "2", "--duty-cycle", "0.5")
    full, half = samples(tmp_path / "full"), samples(tmp_path / "half")
    assert len(full) == len(half) >= 1
    for a, b in zip(full, half, strict=True):
        assert b["meta"]["substeps"] == 2 and b["meta"]["duty_cycle"] == 0.5
        np.testing.assert_allclose(b["blur_map"].astype(np.float32), 0.5 * a["blur_map"].astype(np.float32),
                                   rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(a["sharp"], b["sharp"])


def test_ray_executor_gives_the_same_bytes(tmp_path):
    pytest.importorskip("ray")
    frames = pan_frames(textured_image(96, 200, seed=9), 21, 48, 64, velocity=2.0)
    video = write_video(tmp_path / "v.mkv", frames, fps=240)
    opts = ["--frames", "7", "--substeps", "auto", "-q"]
    run_ok("average", video, tmp_path / "local", *opts)
    run_ok("average", video, tmp_path / "ray", *opts, "--executor", "ray")
    a, b = samples(tmp_path / "local"), samples(tmp_path / "ray")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["blur"], y["blur"])
        assert x["meta"] == y["meta"]


class _Blend(torch.nn.Module):
    """A stand-in learned interpolator: the cross-fade of the encoded frames (its output is known exactly)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = t.view(-1, 1, 1, 1)
        return a * (1 - w) + b * w


class _Crop(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return a[:, :, 1:, :]


def _export(module: torch.nn.Module, path: Path) -> None:
    b, h, w = torch.export.Dim("B", max=64), torch.export.Dim("H", max=4096), torch.export.Dim("W", max=4096)
    x, y = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)  # two tensors: export would alias one given twice
    shapes = ({0: b, 2: h, 3: w}, {0: b, 2: h, 3: w}, {0: b})
    torch.export.save(torch.export.export(module, (x, y, torch.rand(2)), dynamic_shapes=shapes), str(path))


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_learned_interpolator_against_its_own_formula(tmp_path, kind):
    model = tmp_path / ("blend.pt" if kind == "torchscript" else "blend.pt2")
    if kind == "torchscript":
        torch.jit.script(_Blend()).save(str(model))
    else:
        _export(_Blend(), model)
    frames = pan_frames(textured_image(64, 120, seed=3), 5, 40, 56, velocity=2.0)
    folder = write_frame_folder(tmp_path / "seq", frames)
    run_ok("average", folder, tmp_path / "out", "--frames", "5", "--substeps", "4", "--interpolator", model,
           "--fps", "240", "-q")
    (s,) = samples(tmp_path / "out")
    # the oracle: every sample at t = j / 4, synthesised ones the rounded cross-fade, averaged in gamma-2.2 light
    f = frames.astype(np.float64)
    codes = [f[j // 4] if j % 4 == 0 else np.rint(f[j // 4] * (1 - (j % 4) / 4) + f[j // 4 + 1] * (j % 4) / 4)
             for j in range(17)]
    mean = np.mean([(c / 255.0) ** 2.2 for c in codes], axis=0)
    expected = np.rint(255.0 * mean ** (1 / 2.2))
    assert np.abs(s["blur"].astype(float) - expected).max() <= 1
    assert s["meta"]["interpolation"] == f"learned:{model.name}" and s["meta"]["exposure_samples"] == 17


@pytest.mark.parametrize(("content", "message"), [("not a model", "not a TorchScript or torch.export interpolator"),
                                                   ("crop", "must return (B, 3, H, W)")])
def test_a_bad_interpolator_file_is_one_line_and_no_output(tmp_path, content, message):
    model = tmp_path / "model.pt"
    if content == "crop":
        torch.jit.script(_Crop()).save(str(model))
    else:
        model.write_text(content)
    folder = write_frame_folder(tmp_path / "seq", np.zeros((5, 16, 16, 3), np.uint8))
    result = invoke("average", folder, tmp_path / "out", "--fps", "240", "--frames", "5", "--substeps", "2",
                    "--interpolator", model)
    line = assert_clean_error(result, "model.pt")
    assert message in line
    assert not (tmp_path / "out").exists()


def test_an_interpolator_needs_sub_frame_samples(tmp_path):
    model = tmp_path / "blend.pt"
    torch.jit.script(_Blend()).save(str(model))
    folder = write_frame_folder(tmp_path / "seq", np.zeros((5, 16, 16, 3), np.uint8))
    result = invoke("average", folder, tmp_path / "out", "--fps", "240", "--interpolator", model)
    assert_clean_error(result, "--interpolator")


def test_a_plain_cpu_run_does_not_import_torch(tmp_path):
    """The continuous-exposure code is reached only when asked for: a plain CPU run never pays torch's import
    (~1.3 s and ~180 MB; bench_average showed it as a 20 % slowdown when it crept in)."""
    import subprocess
    import sys

    folder = write_frame_folder(tmp_path / "seq", pan_frames(textured_image(48, 80, seed=1), 9, 32, 48, 1.0))
    code = ("import sys; from blursynth.config import AverageConfig; from blursynth.recipes.average import run_average;"
            f"run_average(AverageConfig(inputs=({str(folder)!r},), out={str(tmp_path / 'out')!r}, device='cpu', "
            "fps=240.0, frames=(7, 7))); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr


def test_window_p99_from_pair_histograms():
    """K comes from the p99 of the window's measurable motion, read from per-pair histograms (1/64-px bins)."""
    from blursynth.ops.exposure import histogram_p99, motion_histogram

    values = np.arange(1000, dtype=np.float32) / 100.0  # 0.00 .. 9.99 px: the p99 (rank 989) is 9.89
    halves = [motion_histogram(values[:500], 1.0, 32), motion_histogram(values[500:], 1.0, 32)]
    assert histogram_p99(halves) == pytest.approx(9.89, abs=1 / 128)
    assert histogram_p99([motion_histogram(values, 0.5, 32)]) == pytest.approx(19.78, abs=1 / 128)  # frame px
    assert histogram_p99([motion_histogram(np.zeros(0, np.float32), 1.0, 32)]) == 0.0
    assert histogram_p99([motion_histogram(np.full(9, 1e6, np.float32), 1.0, 32)]) > 32  # beyond the cap: K = cap


def test_auto_accounts_for_the_duty_cycle(tmp_path):
    """Samples are tau / K frames apart: a ~6 px/frame pan at tau = 0.5 needs K ~ 3, not ~ 6."""
    frames = pan_frames(textured_image(96, 200, seed=2), 9, 64, 96, velocity=6.0)
    folder = write_frame_folder(tmp_path / "seq", frames)
    run_ok("average", folder, tmp_path / "out", "--frames", "9", "--substeps", "auto", "--duty-cycle", "0.5",
           "--fps", "240", "-q")
    (s,) = samples(tmp_path / "out")
    m = s["meta"]
    assert m["frame_displacement_p99"] == pytest.approx(6.0, abs=0.3)
    assert m["substeps"] == int(np.ceil(0.5 * m["frame_displacement_p99"])) in (3, 4)
    assert 0.7 <= m["substep_px"] <= 1.0


def test_frames_too_small_for_a_reduced_flow_use_their_own_size(tmp_path):
    frames = pan_frames(textured_image(40, 60, seed=2), 7, 22, 22, velocity=1.5)
    run_ok("average", write_video(tmp_path / "small.mkv", frames), tmp_path / "out", "--frames", "7",
           "--substeps", "2", "-q")
    (s,) = samples(tmp_path / "out")
    assert s["meta"]["substeps"] == 2


def test_frames_too_small_for_any_flow_fail_the_source_in_one_line(tmp_path):
    frames = pan_frames(textured_image(30, 40, seed=2), 7, 10, 11, velocity=1.0)
    result = invoke("average", write_video(tmp_path / "tiny.mkv", frames), tmp_path / "out", "--frames", "7",
                    "--substeps", "2")
    line = assert_clean_error(result, "tiny.mkv")
    assert "optical flow failed on 11x10 frames" in line and "attempt" not in result.output


class _OnlySixteen(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if a.shape[-1] != 16:
            raise ValueError("only 16 px frames")
        return a


def test_an_interpolator_failing_on_real_frames_stops_the_run_in_one_line(tmp_path):
    model = tmp_path / "only16.pt"
    torch.jit.script(_OnlySixteen()).save(str(model))
    folder = write_frame_folder(tmp_path / "seq", pan_frames(textured_image(40, 60, seed=2), 5, 24, 32, 1.0))
    result = invoke("average", folder, tmp_path / "out", "--fps", "240", "--frames", "5", "--substeps", "2",
                    "--interpolator", model)
    line = assert_clean_error(result, "only16.pt")
    assert "fails on 32x24 frames" in line and "only 16 px frames" in line and len(line) < 300
    assert "attempt" not in result.output


def test_backward_flows_in_a_thread_are_the_same_flows():
    from blursynth.ops.interpolate import compute_window_flows

    gray = np.stack([np.clip(np.rint(f.mean(-1)), 0, 255).astype(np.uint8)
                     for f in pan_frames(textured_image(80, 140, seed=6), 4, 64, 96, velocity=2.5)])
    one = compute_window_flows(None, create_flow("dis"), gray=gray, flow_scale=0.5)
    two = compute_window_flows(None, create_flow("dis"), gray=gray, flow_scale=0.5, backward=create_flow("dis"))
    np.testing.assert_array_equal(one.forward, two.forward)
    np.testing.assert_array_equal(one.backward, two.backward)
