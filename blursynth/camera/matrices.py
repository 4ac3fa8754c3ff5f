"""The colour matrices of the camera model: linear sRGB <-> XYZ, and the shipped XYZ -> camera matrices.

``CAMERA_MATRICES`` holds published DNG ``ColorMatrix2`` values (XYZ -> camera RGB under D65, the illuminant of
sRGB) as LibRaw's ``adobe_coeff`` table lists them (``src/tables/colordata.cpp``, "All matrices are from
Adobe DNG Converter unless otherwise noted"; dcraw's table before it): integers / 10000. ``sony_a7r3`` is the
Sony ILCE-7RM3 (a7R III), the camera of RealBlur whose matrix RSBlur uses (``Uformer-RSBlur/ISP/utils.py``
loads ``a7r3_xyz2cam.mat``). A matrix is normalised as dcraw's ``cam_xyz_coeff`` does: the rows of
``xyz2cam @ srgb2xyz`` are scaled to sum to 1, so linear-sRGB white maps to camera white (1, 1, 1) and the
colour cast of a real RAW comes from the white-balance gains alone (Brooks et al. 2019 "Unprocessing images"
normalise the same way).
"""

from __future__ import annotations

import functools

import numpy as np

# IEC 61966-2-1 linear sRGB (D65) -> CIE XYZ, rows X, Y, Z.
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])

CAMERA_MATRICES: dict[str, tuple[float, ...]] = {
    name: tuple(v / 10000 for v in values)
    for name, values in {
        # LibRaw src/tables/colordata.cpp adobe_coeff (commit 158e635e), DNG ColorMatrix2 x 10000
        "sony_a7r3": (6640, -1847, -503, -5238, 13010, 2474, -993, 1673, 6527),  # ILCE-7RM3: RealBlur's camera
        "sony_a7m3": (7374, -2389, -551, -5435, 13162, 2519, -1006, 1795, 6552),  # ILCE-7M3
        "canon_5d4": (6446, -366, -864, -4436, 12204, 2513, -952, 2496, 6348),  # EOS 5D Mark IV
        "canon_80d": (7457, -671, -937, -4849, 12495, 2643, -1213, 2354, 5492),  # EOS 80D
        "nikon_d850": (10405, -3755, -1270, -5461, 13787, 1793, -1040, 2015, 6785),  # D850
        "nikon_d7500": (8813, -3210, -1036, -4703, 12868, 2021, -1054, 1940, 6129),  # D7500
        "olympus_em1m2": (9383, -3170, -763, -2457, 10702, 2020, -384, 1236, 5552),  # E-M1 Mark II
        "panasonic_s1": (9744, -3905, -779, -4899, 12807, 2324, -798, 1630, 5827),  # DC-S1
    }.items()
}


@functools.lru_cache(maxsize=32)
def camera_matrices(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(srgb2cam, cam2srgb)`` of a shipped camera, float64 (3, 3), normalised (see the module docstring).

    ``srgb2cam`` = linear sRGB -> XYZ -> camera RGB in one matrix, rows summing to 1; ``cam2srgb`` its inverse
    (camera RGB -> XYZ -> linear sRGB).
    """
    xyz2cam = np.asarray(CAMERA_MATRICES[name], dtype=np.float64).reshape(3, 3)
    srgb2cam = xyz2cam @ SRGB_TO_XYZ
    srgb2cam /= srgb2cam.sum(axis=1, keepdims=True)
    cam2srgb = np.linalg.inv(srgb2cam)
    srgb2cam.setflags(write=False)
    cam2srgb.setflags(write=False)
    return srgb2cam, cam2srgb
