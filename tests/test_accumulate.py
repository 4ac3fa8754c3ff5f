"""Streaming (CPU running sums) and torch (batched prefix sums) accumulators against a float64 oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blursynth.device import cuda_possible, resolve_device
from blursynth.errors import ConfigError, MissingDependencyError
from blursynth.ops.accumulate import (
    Channel,
    StreamingAccumulator,
    TorchAccumulator,
    create_accumulator,
)
from blursynth.ops.crf import create_crf
from blursynth.ops.windows import Window, plan_windows
from blursynth.seeding import create_rng

H, W = 6, 8


def random_frames(n: int, bits: int = 8, seed: int = 0) -> np.ndarray:
    """Random frames that also contain the extreme code values."""
    rng = np.random.default_rng(seed)
    vmax = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    frames = rng.integers(0, vmax + 1, size=(n, H, W, 3)).astype(dtype)
    frames[:, 0, 0] = 0
    frames[:, 0, 1] = vmax
    return frames


def oracle(frames: np.ndarray, window: Window, crf: str = "gamma") -> np.ndarray:
    """Independent float64 reference: round(255 * g(mean(g^-1(f / vmax))))."""
    vmax = 255.0 if frames.dtype == np.uint8 else 65535.0
    f = frames[window.start : window.stop].astype(np.float64) / vmax
    if crf == "gamma":
        return np.rint(255 * np.mean(f**2.2, axis=0) ** (1 / 2.2))
    if crf == "srgb":
        lin = np.where(f <= 0.04045, f / 12.92, ((f + 0.055) / 1.055) ** 2.4).mean(axis=0)
        enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
        return np.rint(255 * enc)
    return np.rint(255 * f.mean(axis=0))


def channels_for(names, bits, n_max):
    return [Channel.create(create_crf(name), bits, n_max) for name in names]


def drive(acc, frames, windows, extra_frames=0):
    """Push every frame in order (plus ``extra_frames`` past the end) and collect the emitted windows."""
    got = {}
    order = []
    total = len(frames)
    for i in range(total + extra_frames):
        frame = frames[min(i, total - 1)]
        for w, encoded in acc.push(i, frame):
            assert w.index not in got, f"window {w.index} emitted twice"
            got[w.index] = encoded
            order.append(w.index)
    for w, encoded in acc.finish():
        assert w.index not in got
        got[w.index] = encoded
        order.append(w.index)
    assert order == [w.index for w in windows], "windows must be emitted once each, in plan order"
    return got


def check_against_oracle(frames, windows, names, results, exact_fraction=0.99):
    for w in windows:
        for c, name in enumerate(names):
            out = results[w.index][c]
            assert out.dtype == np.uint8 and out.shape == frames.shape[1:]
            ref = oracle(frames, w, name)
            diff = np.abs(out.astype(int) - ref)
            assert diff.max() <= 1, f"window {w} channel {name}: off by {diff.max()}"
            assert (diff == 0).mean() >= exact_fraction


def run_both(frames, windows, names, device, batch_frames, bits=8):
    n_max = max(w.n for w in windows)
    ch = channels_for(names, bits, n_max)
    stream = drive(StreamingAccumulator(windows, ch), frames, windows)
    torch_ = drive(
        TorchAccumulator(windows, ch, device=torch.device(device), batch_frames=batch_frames), frames, windows
    )
    for w in windows:
        for c in range(len(names)):
            np.testing.assert_array_equal(stream[w.index][c], torch_[w.index][c])
    return stream


NAMES = ("gamma", "linear", "srgb")


@pytest.mark.parametrize("batch_frames", [1, 3, 5, 64])
def test_back_to_back_windows(device, batch_frames):
    frames = random_frames(70)
    windows = plan_windows(len(frames), (7, 13), create_rng(0, "windows", "b2b"))
    assert len(windows) >= 5 and len({w.n for w in windows}) > 1
    res = run_both(frames, windows, NAMES, device, batch_frames)
    check_against_oracle(frames, windows, NAMES, res)


STRIDED = [
    # (frames, sizes, stride, seed key, check on the first two windows)
    pytest.param(40, (9, 9), 2, "o", lambda a, b: b.start < a.stop, id="overlapping"),
    pytest.param(60, (5, 9), 13, "g", lambda a, b: b.start > a.stop, id="gapped"),
]


@pytest.mark.parametrize("batch_frames", [3, 5])
@pytest.mark.parametrize("count, sizes, stride, key, layout_ok", STRIDED)
def test_strided_windows(device, batch_frames, count, sizes, stride, key, layout_ok):
    frames = random_frames(count, seed=stride)
    windows = plan_windows(len(frames), sizes, create_rng(0, "w", key), stride=stride)
    assert all(layout_ok(a, b) for a, b in zip(windows, windows[1:], strict=False))
    res = run_both(frames, windows, NAMES, device, batch_frames)
    check_against_oracle(frames, windows, NAMES, res)


VARIABLE = [
    # A long window, then windows inside it that end earlier (later windows ending before earlier ones),
    # a window far enough ahead that the running sum is restarted, and a gap before the last one.
    Window(0, 0, 13),
    Window(1, 2, 7),
    Window(2, 3, 3),
    Window(3, 4, 11),
    Window(4, 10, 3),
    Window(5, 11, 1),
    Window(6, 12, 13),
    Window(7, 30, 5),
]


@pytest.mark.parametrize("batch_frames", [1, 3, 5])
def test_variable_n_with_later_window_ending_first(device, batch_frames):
    frames = random_frames(40, seed=3)
    res = run_both(frames, VARIABLE, NAMES, device, batch_frames)
    check_against_oracle(frames, VARIABLE, NAMES, res)


def test_variable_n_from_the_planner(device):
    frames = random_frames(80, seed=4)
    windows = plan_windows(len(frames), (3, 13), create_rng(1, "w", "v"), stride=3)
    assert any(b.stop < a.stop for a, b in zip(windows, windows[1:], strict=False))
    res = run_both(frames, windows, ("gamma",), device, 5)
    check_against_oracle(frames, windows, ("gamma",), res)


@pytest.mark.parametrize("batch_frames", [3, 5])
def test_16_bit_input(device, batch_frames):
    frames = random_frames(40, bits=16, seed=5)
    windows = plan_windows(len(frames), (7, 13), create_rng(0, "w", "16"), stride=5)
    res = run_both(frames, windows, NAMES, device, batch_frames, bits=16)
    check_against_oracle(frames, windows, NAMES, res)


def test_16_bit_precision_is_used():
    """Two 16-bit frames that are equal after 8-bit rounding must still average to the 16-bit result."""
    frames = np.zeros((3, H, W, 3), np.uint16)
    # 8-bit code 100.45 -> 100 when pre-rounded; 16-bit frames at 100.45, 100.45, 100.7 average to > 100.5.
    frames[0] = frames[1] = round(100.45 * 257)
    frames[2] = round(100.7 * 257)
    w = Window(0, 0, 3)
    out = drive(StreamingAccumulator([w], channels_for(("linear",), 16, 3)), frames, [w])[0][0]
    assert (out == 101).all()  # mean 100.53; an 8-bit pipeline would give round((100 + 100 + 101) / 3) = 100


def test_single_frame_windows_return_the_frames(device):
    frames = random_frames(12, seed=6)
    windows = [Window(i, i, 1) for i in range(12)]
    res = run_both(frames, windows, NAMES, device, 5)
    for w in windows:
        for c in range(len(NAMES)):
            np.testing.assert_array_equal(res[w.index][c], frames[w.start])


def test_frames_past_the_last_window_are_ignored(device):
    frames = random_frames(30, seed=7)
    windows = [Window(0, 0, 9), Window(1, 9, 9)]
    ch = channels_for(("gamma",), 8, 9)
    stream = drive(StreamingAccumulator(windows, ch), frames, windows, extra_frames=5)
    acc = TorchAccumulator(windows, ch, device=torch.device(device), batch_frames=4)
    torch_ = drive(acc, frames, windows, extra_frames=5)
    for w in windows:
        np.testing.assert_array_equal(stream[w.index][0], torch_[w.index][0])
    check_against_oracle(frames, windows, ("gamma",), stream)


def test_streaming_emits_each_window_on_its_last_frame():
    frames = random_frames(40, seed=8)
    acc = StreamingAccumulator(VARIABLE, channels_for(("gamma",), 8, 13))
    emitted_at = {}
    for i, f in enumerate(frames):
        for w, _ in acc.push(i, f):
            emitted_at[w.index] = i
    # Windows come out in plan order: a window is emitted when its own last frame arrived and all earlier
    # windows are out.
    for w in VARIABLE:
        earlier = max(v.stop for v in VARIABLE[: w.index + 1])
        assert emitted_at[w.index] == earlier - 1


@pytest.mark.parametrize("backend", ["stream", "torch"])
def test_accumulators_reject_out_of_order_frames(backend, device):
    frames = random_frames(10)
    ch = channels_for(("gamma",), 8, 9)
    if backend == "stream":
        acc = StreamingAccumulator([Window(0, 0, 9)], ch)
    else:
        acc = TorchAccumulator([Window(0, 0, 9)], ch, device=torch.device(device), batch_frames=4)
    with pytest.raises(ValueError):
        acc.push(1, frames[1])
    acc.push(0, frames[0])
    with pytest.raises(ValueError):
        acc.push(2, frames[2])
    with pytest.raises(ValueError):
        acc.push(0, frames[0])
    acc.push(1, frames[1])
    acc.push(2, frames[2])
    acc.push(3, frames[3])  # completes a batch of 4
    with pytest.raises(ValueError):
        acc.push(5, frames[5])


def test_channel_create_matches_inverse_lut():
    crf = create_crf("gamma")
    ch = Channel.create(crf, 8, 13)
    lut, q = crf.inverse_lut(8, 13)
    np.testing.assert_array_equal(ch.lut, lut)
    assert ch.q == q and ch.crf == crf


def test_create_accumulator_backends():
    windows = [Window(0, 0, 3)]
    ch = channels_for(("gamma",), 8, 3)
    cpu = torch.device("cpu")
    assert isinstance(create_accumulator("stream", windows, ch, device=cpu), StreamingAccumulator)
    assert isinstance(create_accumulator("auto", windows, ch, device=cpu), StreamingAccumulator)
    acc = create_accumulator("torch", windows, ch, device=cpu, batch_frames=7)
    assert isinstance(acc, TorchAccumulator) and acc.batch_frames == 7
    with pytest.raises(ConfigError):
        create_accumulator("gpu", windows, ch, device=cpu)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu0", "mps"):
        with pytest.raises(ConfigError):
            resolve_device(bad)
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(ConfigError):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(MissingDependencyError):
            resolve_device("cuda")


@pytest.mark.parametrize("batch_frames", [3, 5])
def test_plan_subset_not_starting_at_frame_zero(device, batch_frames):
    """A resumed run only accumulates the windows of unfinished shards: the first one starts mid-source."""
    frames = random_frames(50, seed=9)
    windows = [Window(3, 20, 9), Window(4, 29, 7), Window(5, 31, 11), Window(6, 45, 5)]
    res = run_both(frames, windows, ("gamma", "linear"), device, batch_frames)
    check_against_oracle(frames, windows, ("gamma", "linear"), res)


def test_cpu_run_does_not_import_torch(tmp_path, pan_video):
    """torch costs ~1.3 s to import; a CPU streaming run (the default without a GPU driver) must not need it."""
    import subprocess
    import sys

    if cuda_possible():
        pytest.skip("an NVIDIA driver is present: auto may pick CUDA")
    code = (
        "import sys\n"
        "from blursynth.config import AverageConfig\n"
        "from blursynth.recipes.average import run_average\n"
        f"run_average(AverageConfig(inputs=({str(pan_video[0])!r},), out={str(tmp_path / 'out')!r}, frames=(7, 7)))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "train" / "00000.h5").exists()
