"""The seeking reader (io/video_seek.py) gives the frames sequential decoding gives, bit for bit (issue 20).

Every clip shows its frame index as its brightness (``40 + 2 i``), so a frame's index is checked against the
picture itself (the oracle), not only against ``read_video``. Clips: H.264 with and without B-frames, a GOP of
8, open and closed, in MP4 and in Matroska (whose 1 ms clock rounds 240 fps pts unevenly); clips that must fall back to
sequential decoding: variable frame rate, a raw H.264 stream without pts, a truncated file.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cli_helpers import cut, invoke
from conftest import pan_frames, textured_image, write_video

import blursynth.io.video_seek as video_seek
from blursynth.errors import SourceError
from blursynth.io.video import probe_video, read_video
from blursynth.io.video_seek import packet_index, read_video_seeking
from blursynth.stats import source_pairs

N, H, W = 80, 48, 64


def level(i: int) -> int:
    return 40 + 2 * i


def numbered(n: int = N) -> np.ndarray:
    """Frame i: brightness 40 + 2 i plus a fixed texture (so the encoder has detail to predict)."""
    tex = (textured_image(H, W, seed=5) * 16).astype(np.int16)  # 0..15
    return np.stack([np.clip(level(i) - 8 + tex, 0, 255).astype(np.uint8) for i in range(n)])


def h264(path: Path, bframes: int, gop: int = 8, n: int = N, extra: str = "") -> Path:
    opts = {"g": str(gop), "bf": str(bframes), "crf": "4", "preset": "ultrafast" if bframes == 0 else "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}{extra}"}
    return write_video(path, numbered(n), fps=240, codec="libx264", options=opts)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seek")
    return {"bframes.mp4": h264(root / "bframes.mp4", 3), "no-bframes.mkv": h264(root / "no-bframes.mkv", 0),
            "bframes.mkv": h264(root / "bframes.mkv", 2),
            "open-gop.mkv": h264(root / "open-gop.mkv", 3, extra=":open-gop=1")}  # leading B-frames before each I


def sequential(path: Path) -> list[np.ndarray]:
    info = probe_video(str(path))
    return [f for _, f in read_video(str(path), info)]


def no_fallback(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("fell back to sequential decoding")
        yield

    monkeypatch.setattr(video_seek, "read_video", refuse)


def seeked(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    return dict(read_video_seeking(str(path), probe_video(str(path)), wanted))


@pytest.mark.parametrize("skip", [True, False], ids=["skip-nonref", "decode-all"])
@pytest.mark.parametrize("name", ["bframes.mp4", "no-bframes.mkv", "bframes.mkv", "open-gop.mkv"])
def test_sparse_random_frames_equal_sequential_decoding(clips, name, skip, monkeypatch):
    path = clips[name]
    frames = sequential(path)
    assert len(frames) == N
    base = float(frames[0].mean()) - level(0)  # the texture's mean
    assert [round((float(f.mean()) - base - level(0)) / 2) for f in frames] == list(range(N))  # the index oracle
    index = packet_index(str(path), probe_video(str(path)))
    assert index is not None and index.key_index == tuple(range(0, N, 8))
    no_fallback(monkeypatch)
    monkeypatch.setattr(video_seek, "SKIP_NONREF", skip)
    rng = np.random.default_rng(sum(map(ord, name)))
    for trial in range(6):
        wanted = {int(i) for i in rng.choice(N, size=int(rng.integers(1, 9)), replace=False)}
        if trial == 0:
            wanted = {1, 2, 70, 79}  # neighbours, a long jump, the last frame
        got = seeked(path, wanted)
        assert sorted(got) == sorted(wanted)
        for i in wanted:
            assert got[i].dtype == np.uint8 and np.array_equal(got[i], frames[i]), (name, i)


@pytest.mark.parametrize("skip", [True, False], ids=["skip-nonref", "decode-all"])
def test_seeking_skips_the_frames_between_far_apart_keyframes(clips, monkeypatch, skip):
    """Frames 3 and 75: decoding stops after 3, then resumes at the keyframe 72 (a seek), not at 4."""
    decoded = []
    real = video_seek._decode

    def spy(*a, **k):
        for frame in real(*a, **k):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_seek, "_decode", spy)
    monkeypatch.setattr(video_seek, "SKIP_NONREF", skip)
    no_fallback(monkeypatch)
    path = clips["bframes.mp4"]
    frames = sequential(path)
    got = seeked(path, {3, 75})
    assert sorted(got) == [3, 75] and all(np.array_equal(got[i], frames[i]) for i in got)
    index = packet_index(str(path), probe_video(str(path)))
    indices = [index.pts.index(p) for p in decoded]
    assert max(i for i in indices if i < 40) == 3 and min(i for i in indices if i > 3) >= 72, indices
    if skip:  # 3 B-frames between P-frames: those not wanted and not referenced are not decoded
        assert len(decoded) < 8, indices
    else:
        assert indices == [0, 1, 2, 3, 72, 73, 74, 75]


def vfr(path: Path) -> Path:
    """H.264 in MP4 with pts 0, 1, 4, 5, 8, ... (time base 1/480): uneven spacing, no seeking."""
    frames = numbered(40)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=240)
        stream.height, stream.width, stream.pix_fmt = H, W, "yuv420p"
        stream.options = {"g": "8", "crf": "4", "preset": "ultrafast"}
        stream.codec_context.time_base = stream.time_base = Fraction(1, 480)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = i * 2 - (i % 2), Fraction(1, 480)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def raw_h264(path: Path) -> Path:
    """An Annex B elementary stream: packets without pts."""
    return write_video(path, numbered(40), fps=240, codec="libx264",
                       options={"g": "8", "crf": "4", "preset": "ultrafast"})


@pytest.mark.parametrize("make", [vfr, raw_h264], ids=["vfr", "no-pts"])
def test_streams_whose_pts_cannot_index_frames_fall_back(make, tmp_path):
    path = make(tmp_path / ("clip.h264" if make is raw_h264 else "clip.mp4"))
    info = probe_video(str(path))
    assert packet_index(str(path), info) is None
    frames = sequential(path)
    wanted = {0, 9, 30, len(frames) - 1}
    got = seeked(path, wanted)
    assert sorted(got) == sorted(wanted)
    assert all(np.array_equal(got[i], frames[i]) for i in wanted)


def test_a_truncated_file_falls_back_and_raises_like_sequential_decoding(tmp_path):
    path = cut(h264(tmp_path / "cut.mkv", 2), 0.5)
    info = probe_video(str(path))
    assert packet_index(str(path), info) is None  # fewer packets than frames
    wanted = {1, 5, 60, 75}

    def collect(reader):
        got = {}
        with pytest.raises(SourceError) as err:
            for i, f in reader(str(path), info, wanted):
                got[i] = f
        return got, err.value.reason

    seq, seq_reason = collect(read_video)
    got, reason = collect(read_video_seeking)
    assert reason == seq_reason and "truncated" in reason
    assert sorted(got) == sorted(seq) and all(np.array_equal(got[i], seq[i]) for i in seq)


# -- stats: the same numbers with and without seeking --------------------------------------------------------
def pan_clip(path: Path, n: int = 160) -> Path:
    tex = textured_image(H + 8, W + 2 * n + 8, seed=3)
    opts = {"g": "8", "crf": "8", "preset": "veryfast", "x264-params": "keyint=8:min-keyint=8:scenecut=0"}
    return write_video(path, pan_frames(tex, n, H, W, 2.0), fps=240, codec="libx264", options=opts)


def stats_outputs(args: list, out: Path, seek: bool, monkeypatch) -> tuple[dict, str]:
    monkeypatch.setattr(source_pairs, "SEEK_FRAMES", seek)
    result = invoke("stats", *args, "--flow", "dis", "--flow-threshold", "0.5,1,2,4", "--pairs-per-source", 6,
                    "--out", out, "-q")
    assert result.exit_code == 0, result.output
    return (json.loads((out / "blurred_area_ratio.json").read_text()),
            (out / "blurred_area_ratio.csv").read_text())


@pytest.mark.parametrize("truncate", [False, True], ids=["whole", "truncated"])
def test_stats_numbers_are_identical_with_and_without_seeking(tmp_path, monkeypatch, truncate):
    path = pan_clip(tmp_path / ("pan.mkv" if truncate else "pan.mp4"))  # a cut MP4 loses its index (at the end)
    if truncate:
        cut(path, 0.6)
    args = [f"PAN={path}"]
    if truncate:
        args.append(f"OTHER={pan_clip(tmp_path / 'other.mkv', 60)}")
    seek_json, seek_csv = stats_outputs(args, tmp_path / "seek", True, monkeypatch)
    seq_json, seq_csv = stats_outputs(args, tmp_path / "seq", False, monkeypatch)
    assert seek_csv == seq_csv
    for doc in (seek_json, seq_json):
        doc.pop("out", None)
    assert json.dumps(seek_json, sort_keys=True).replace("seek", "X") == \
        json.dumps(seq_json, sort_keys=True).replace("seq", "X")
    (src,) = seek_json["datasets"][0]["sources"]
    if truncate:
        assert src["status"] == "partial" and src["frames_decoded"] < 160 and src["pairs"] >= 1
    else:
        assert src["status"] == "ok" and src["pairs"] == 6
