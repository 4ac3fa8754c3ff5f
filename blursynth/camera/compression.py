"""The compression stage of the camera model: a JPEG and/or an H.264 round trip of the encoded image.

RealBlur-J's images are JPEG (Rim et al., ECCV 2020); REDS ships an MPEG-compressed track of its blur (Nah et
al., CVPRW 2019). JPEG goes through OpenCV (libjpeg, 4:2:0); H.264 through PyAV's libx264 as one intra frame
(yuv420p, single-threaded so the bytes do not depend on the core count), encoded and decoded in memory.
"""

from __future__ import annotations

import cv2
import numpy as np

from blursynth.errors import MissingDependencyError


def jpeg_roundtrip(code: np.ndarray, quality: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> JPEG at ``quality`` -> decoded ``(H, W, 3)`` uint8 RGB."""
    bgr = cv2.cvtColor(np.ascontiguousarray(code), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed at quality {quality}")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264_roundtrip(code: np.ndarray, crf: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> one H.264 intra frame at ``crf`` (libx264, yuv420p) -> decoded RGB.

    Odd sizes are edge-padded to even (4:2:0 needs it) and cropped back.
    """
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV is a core dependency
        raise MissingDependencyError("the H.264 camera stage needs PyAV (pip install av)") from None
    h, w = code.shape[:2]
    padded = np.pad(code, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = padded.shape[1], padded.shape[0]
    enc.pix_fmt = "yuv420p"
    enc.options = {"crf": str(int(crf)), "preset": "medium", "threads": "1", "tune": "stillimage"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24").reformat(format="yuv420p")
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create("h264", "r")
    frames = []
    for packet in packets:
        frames += dec.decode(packet)
    frames += dec.decode(None)
    return frames[0].to_ndarray(format="rgb24")[:h, :w].copy()


def compress(code: np.ndarray, params: dict) -> np.ndarray:
    """The draw's compression: H.264 at ``params["h264_crf"]``, then JPEG at ``params["jpeg_quality"]``.

    Shape:
        ``(H, W, 3)`` uint8 RGB in and out; the same array when both are None.
    """
    out = code
    if params.get("h264_crf") is not None:
        out = h264_roundtrip(out, params["h264_crf"])
    if params.get("jpeg_quality") is not None:
        out = jpeg_roundtrip(out, params["jpeg_quality"])
    return out
