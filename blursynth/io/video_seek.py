"""Read a few frames of a long video by seeking to the keyframe before each one (``blursynth stats``).

:func:`read_video` decodes every frame up to the last one wanted: a minute at 240 fps is 14400 frames for a few
dozen measured. :func:`read_video_seeking` gives the same frames, bit for bit, decoding only from the keyframe
before each wanted frame (or on from the current position when that keyframe is near).

A decoded frame is mapped to its index by its presentation timestamp, which is only safe where pts order is
decode-output order without gaps. So a demux pass first reads every packet's pts and keyframe flag (no
decoding) and seeking is used only when:

- every packet has a pts, none is flagged corrupt or discarded (edit lists), and there are as many packets as the
  probed frame count (a truncated or damaged file falls back);
- the sorted pts are evenly spaced, up to one tick of rounding (Matroska's 1 ms clock at 240 fps): variable frame
  rates and duplicate pts fall back;
- while decoding, the frames from each keyframe on come with the pts of consecutive indices (the frame
  sequential decoding gives for index i has the i-th smallest pts); where unreferenced H.264 frames are skipped
  (:data:`SKIP_NONREF`), with increasing pts that reach each wanted one. Anything else (a decoder dropping or
  reordering frames after a seek, a seek that landed past the keyframe, a decoding error, a frame size change,
  the file ending early) stops seeking: the frames not yet given are read by :func:`read_video` from the start,
  so errors and truncation are reported exactly as sequential decoding reports them.

Frames after a keyframe in decode order with a pts before it (leading pictures of an open GOP) are never used.
Damage inside packets that are skipped is not seen (only decoding them would show it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from blursynth.errors import SourceError
from blursynth.io.video import SourceInfo, _open, read_video

#: Seek only when the keyframe before the next wanted frame lies more than this many frames ahead of the
#: decoder: a seek flushes the (frame-threaded) decoder, which costs about as much as decoding a few frames.
SEEK_MIN_SKIP = 16
#: FFmpeg threading, as read_video (frame + slice); sparse reads measured about as fast without threading.
THREAD_TYPE = "AUTO"
#: H.264: do not decode the frames that are neither wanted nor referenced by any other frame (``nal_ref_idc`` 0,
#: most B-frames; FFmpeg's ``skip_frame=NONREF`` set per packet). The frames decoded do not change: nothing
#: predicts from the skipped ones. Other codecs' "non-reference" can still be referenced (HEVC sub-layer
#: non-reference pictures by higher temporal layers), so they decode every frame.
SKIP_NONREF = True


@dataclass(frozen=True)
class PacketIndex:
    """What the demux pass found: each frame index's pts, and the keyframes to seek to.

    Attributes:
        pts: the sorted presentation timestamps; frame i has ``pts[i]``.
        key_index: the frame indices of the keyframes, ascending.
    """

    pts: tuple[int, ...]
    key_index: tuple[int, ...]

    def keyframe_before(self, index: int) -> int | None:
        """The index of the last keyframe at or before frame ``index``; None without one."""
        k = bisect.bisect_right(self.key_index, index) - 1
        return self.key_index[k] if k >= 0 else None


def packet_index(path: str, info: SourceInfo) -> PacketIndex | None:
    """Demux ``path`` (no decoding) and check that pts can index its frames; None where they cannot."""
    try:
        container = _open(path)
    except SourceError:  # read_video reports it, as without seeking
        return None
    pts: list[int] = []
    keys: list[int] = []
    try:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if not packet.size:  # the flush packet at the end
                continue
            if packet.pts is None or packet.is_corrupt or packet.is_discard:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except av.error.FFmpegError:
        return None
    finally:
        container.close()
    if len(pts) < 2 or len(pts) != info.num_frames:
        return None
    ordered = np.sort(np.asarray(pts, dtype=np.int64))
    steps = np.diff(ordered)
    if steps.min() <= 0 or steps.max() - steps.min() > 1:
        return None
    where = {int(p): i for i, p in enumerate(ordered)}
    return PacketIndex(tuple(int(p) for p in ordered), tuple(sorted(where[p] for p in keys)))


class _Unsafe(Exception):
    """Seeking cannot continue here: the rest is read sequentially."""


def _decode(container, stream, of_pts: dict[int, int], wanted: set[int], skip: bool):
    """Decode ``stream`` from the demuxer's position; with ``skip``, the frames not ``wanted`` that no other frame
    references (H.264 ``nal_ref_idc`` 0: most B-frames) are not decoded at all (FFmpeg ``skip_frame=NONREF``)."""
    context = stream.codec_context
    for packet in container.demux(stream):
        if skip and packet.pts is not None:
            context.skip_frame = "DEFAULT" if of_pts.get(packet.pts) in wanted else "NONREF"
        yield from packet.decode()


def _seek_frames(path: str, info: SourceInfo, index: PacketIndex,
                 todo: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The frames ``todo`` (ascending), seeking where it pays; raises :class:`_Unsafe` where it is not safe.

    Without skipping, the frames from each keyframe on must come with the pts of consecutive indices; skipping
    (H.264 only, :data:`SKIP_NONREF`) leaves gaps, so there the indices must only increase and reach each
    wanted one.
    """
    fmt = "rgb48le" if info.bit_depth == 16 else "rgb24"
    of_pts = {p: i for i, p in enumerate(index.pts)}
    wanted = set(todo)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = THREAD_TYPE
        skip = SKIP_NONREF and stream.codec_context.name == "h264"
        frames = None
        expect = 0  # the lowest index the next frame from `frames` may have (once at or past the keyframe)
        for target in todo:
            key = index.keyframe_before(target)
            if key is None:
                raise _Unsafe
            if frames is None or key > expect + SEEK_MIN_SKIP:
                if frames is not None or key > 0:  # to the keyframe's pts: FFmpeg lands on it (or before it)
                    container.seek(index.pts[key], stream=stream, backward=True)
                frames, expect, started = _decode(container, stream, of_pts, wanted, skip), key, False
            for frame in frames:
                i = of_pts.get(frame.pts)
                if i is None:
                    raise _Unsafe
                if i < expect and not started:  # before the keyframe: a seek landed earlier, a leading picture
                    continue
                started = True
                if i < expect or i > target or (i != expect and not skip) \
                        or (frame.width, frame.height) != (info.width, info.height):
                    raise _Unsafe
                expect = i + 1
                if i == target:
                    yield i, frame.to_ndarray(format=fmt)
                    break
            else:  # the file ended first
                raise _Unsafe
    except av.error.FFmpegError:
        raise _Unsafe from None
    finally:
        container.close()


def read_video_seeking(path: str, info: SourceInfo, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The ``wanted`` frames of a video, in index order: exactly what ``read_video(path, info, wanted)`` yields.

    Seeks to the keyframe before a wanted frame when that skips more than :data:`SEEK_MIN_SKIP` frames, where
    the stream's pts can index its frames (module docstring); otherwise, and from the first sign that they
    cannot, it reads sequentially with :func:`read_video`.

    Raises:
        SourceError: as :func:`read_video` (decoding fails, the size changes, the file is truncated).
    """
    todo = sorted(wanted)
    index = packet_index(path, info) if todo else None
    done = -1
    if index is not None:
        try:
            for i, frame in _seek_frames(path, info, index, todo):
                done = i
                yield i, frame
            return
        except _Unsafe:
            pass
    rest = {i for i in todo if i > done}
    if rest:
        yield from read_video(path, info, rest)
