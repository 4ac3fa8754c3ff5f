"""Video decoding with PyAV (FFmpeg), threaded, to RGB at full bit depth.

8-bit sources decode to ``rgb24`` (uint8). Sources with more than 8 bits per component (10-bit HEVC/H.264,
ProRes, ...) decode to ``rgb48le`` (uint16, full 16-bit range) so they are linearised from their full
precision instead of being truncated to 8 bits first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from blursynth.errors import SourceError

# We report problems ourselves, one line each, so FFmpeg's own log stays silent. ``set_level(None)`` (PyAV's
# default) drops FFmpeg's messages in C. Any level installs PyAV's Python log callback instead, which takes the
# GIL from FFmpeg's decoder threads: freeing a decoder we stopped reading early (every recipe stops at its last
# needed frame) while a decoder thread logs then deadlocks (PyAV#751, #909; 4 of 8 processes hung in a
# reproduction, none in 253 early stops with None).
av.logging.set_level(None)


@dataclass(frozen=True)
class SourceInfo:
    """What probing a source found.

    Attributes:
        width, height: frame size in pixels.
        num_frames: frames in the source (for videos: container count, or a demux count when absent).
        fps: frames per second, or None when unknown (frame folders without ``--fps``); ``--fps`` given for a
            video overrides its container's rate.
        bit_depth: 8 or 16, the dtype frames are delivered in.
        pix_fmt: decoder pixel format (``yuv420p``, ``yuv420p10le``, ``png`` for frame folders, ...).
        codec: codec name or image format.
        size_bytes: size on disk (sum of files for a frame folder).
        container_fps: the rate the video's container states, kept when ``--fps`` overrides it (else None).
    """

    width: int
    height: int
    num_frames: int
    fps: float | None
    bit_depth: int
    pix_fmt: str
    codec: str
    size_bytes: int
    container_fps: float | None = None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0] if text else type(exc).__name__


def _open(path: str):
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise SourceError(path, f"not a decodable video ({_reason(exc)})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceError(path, f"cannot open ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise SourceError(path, "contains no video stream")
    return container


def _bit_depth(stream) -> int:
    fmt = stream.codec_context.format
    bits = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
    return 16 if bits > 8 else 8


def _duration_frames(container, stream, fps: float | None) -> int | None:
    """Frames the container's recorded duration implies (for containers without a frame count)."""
    if not fps:
        return None
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1e6
    return int(round(seconds * fps)) if seconds and seconds > 0 else None


def _count_frames(path: str, container, stream, fps: float | None) -> int:
    """The container's frame count, or the packets a demux pass finds.

    Without a stored count (Matroska, ...), a file cut short still has a whole header: when its recorded
    duration implies clearly more frames than packets were found, the larger number is used so that
    decoding reports the truncation instead of silently producing fewer frames.
    """
    stored = int(stream.frames or 0)
    if stored > 0:
        return stored
    try:
        counted = sum(1 for p in container.demux(stream) if p.size)
    except av.error.FFmpegError as exc:
        raise SourceError(path, f"truncated or corrupt: cannot read packets ({_reason(exc)})") from None
    expected = _duration_frames(container, stream, fps)
    if expected is not None and counted < 0.98 * expected - 1:
        return expected
    return counted


def probe_video(path: str) -> SourceInfo:
    """Open a video, count its frames and decode the first one.

    Raises:
        SourceError: not a video, no video stream, unreadable packets, no decodable frame.
    """
    size = os.path.getsize(path)
    if size == 0:
        raise SourceError(path, "empty file (0 bytes)")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(Fraction(rate)) if rate else None
        num = _count_frames(path, container, stream, fps)
    finally:
        container.close()
    container = _open(path)  # a fresh demuxer: seeking back is not possible in every damaged file
    try:
        stream = container.streams.video[0]
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise SourceError(path, f"cannot decode the first frame ({_reason(exc)})") from None
        if first is None:
            raise SourceError(path, "no decodable video frame")
        return SourceInfo(
            width=first.width,
            height=first.height,
            num_frames=num,
            fps=fps,
            bit_depth=_bit_depth(stream),
            pix_fmt=str(first.format.name),
            codec=stream.codec_context.name,
            size_bytes=size,
        )
    finally:
        container.close()


def _native_array(frame, fmt: str) -> np.ndarray:
    """The frame in the decoder's own pixel format, or converted to ``fmt`` where numpy cannot take that
    format as it is (``bgr0``, ``pal8``)."""
    try:
        array = frame.to_ndarray()
    except (ValueError, OSError):
        array = None
    return array if isinstance(array, np.ndarray) else frame.to_ndarray(format=fmt)


def read_video(path: str, info: SourceInfo, wanted: set[int] | None = None, *,
               native: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Decode every frame of a video in presentation order.

    With ``wanted``, only those frames are converted to arrays and yielded (the others are still decoded,
    as inter-frame codecs need them, but not converted: -31 % read time at 1280x720 when few are kept), and
    decoding stops after the last wanted frame.

    With ``native``, frames come in the decoder's own pixel format (planar YUV for most codecs) instead of
    RGB: enough to tell identical frames apart (equal decoded bytes are the same picture) without the
    conversion to RGB (io/repeats.py).

    Yields:
        (index, frame) with frame (H, W, 3) RGB, uint8 for 8-bit sources and uint16 for deeper ones
        (``native``: the decoder's layout, e.g. (H * 3 / 2, W) for yuv420p).

    Raises:
        SourceError: decoding fails, the frame size changes, or fewer frames than probed are decoded
            (a truncated or corrupt file).
    """
    fmt = "rgb48le" if info.bit_depth == 16 else "rgb24"
    last_wanted = max(wanted) if wanted else -1
    container = _open(path)
    index = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threading inside FFmpeg
        try:
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (info.width, info.height):
                    raise SourceError(
                        path,
                        f"frame {index} is {frame.width}x{frame.height}, expected {info.width}x{info.height}",
                    )
                if wanted is None or index in wanted:
                    yield index, (_native_array(frame, fmt) if native else frame.to_ndarray(format=fmt))
                index += 1
                if wanted is not None and index > last_wanted:
                    return
        except av.error.FFmpegError as exc:
            raise SourceError(path, f"decoding failed at frame {index} ({_reason(exc)})") from None
    finally:
        container.close()
    if index < info.num_frames:
        raise SourceError(path, f"truncated or corrupt: decoded {index} of {info.num_frames} frames")
