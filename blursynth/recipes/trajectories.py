"""Seeded object trajectories for local blur synthesis (LODE/BladeNet, Sec. 4.1).

The paper: "we simulate the movement of these objects through 3 different transformations ... translation
of the objects on image to simulate the movement along x and y axis, ... scaling to simulate the movement of
objects along z axis and ... rotation to simulate the rotation of the object. ... we first create a
trajectory with length N where N is randomly selected as an odd number ranging from 7 to 13. At each step in
the trajectory, the three pre-defined transformations and their order are randomly selected".

Our reading, and what we do differently from the public code (which moves objects only down/right, lets the
scaling overwrite the rotation, truncates and is unseeded):

* Each object gets one **motion** drawn once: a speed in ``translate`` px/step in a direction uniform over
  360 degrees (so left/up are as likely as right/down), a per-step scale factor drawn log-uniformly from
  ``scale`` (approaching and receding balance), and a per-step rotation from ``rotate`` degrees. Keeping the
  motion per object makes the exposure a coherent movement; re-drawing the direction every step would be a
  random walk whose average barely blurs.
* At every step a random non-empty **subset** of {translate, scale, rotate} is applied in a random **order**.
* Scale and rotation act about the object's centre *at the start of the step* (the step's pivot). So the
  order matters: a translation applied before a scaling is scaled with it (an object coming closer also
  appears to move faster), and one applied before a rotation is rotated.

A pose is a 2x3 affine matrix mapping patch pixel coordinates (pixel centres at integers) to frame
coordinates. Frame ``k`` of ``N`` shows pose ``k``; pose 0 is the initial placement and the middle frame
``(N - 1) / 2`` is the sharp ground truth. Rotation angles follow OpenCV (``getRotationMatrix2D``):
positive is counter-clockwise as seen on screen (y pointing down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ("translate", "scale", "rotate")


@dataclass(frozen=True)
class MotionRanges:
    """Per-step motion ranges (inclusive).

    Attributes:
        translate: speed range, pixels per step (direction uniform over 360 degrees).
        scale: per-step scale factor range (drawn log-uniformly).
        rotate: per-step rotation range, degrees.
    """

    translate: tuple[float, float] = (1.0, 6.0)
    scale: tuple[float, float] = (0.97, 1.03)
    rotate: tuple[float, float] = (-3.0, 3.0)


@dataclass(frozen=True)
class Motion:
    """One object's motion per step: translation (dx, dy) px, scale factor, rotation in degrees."""

    dx: float
    dy: float
    scale: float
    rotate: float

    def to_dict(self) -> dict:
        return {"dx": self.dx, "dy": self.dy, "scale": self.scale, "rotate": self.rotate}


def draw_motion(rng: np.random.Generator, ranges: MotionRanges) -> Motion:
    """Draw one object's per-step motion (always four draws, so later draws never shift with the ranges)."""
    speed = rng.uniform(*ranges.translate)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    log_scale = rng.uniform(math.log(ranges.scale[0]), math.log(ranges.scale[1]))
    rotate = rng.uniform(*ranges.rotate)
    return Motion(float(speed * math.cos(angle)), float(speed * math.sin(angle)), float(math.exp(log_scale)),
                  float(rotate))


def draw_steps(rng: np.random.Generator, n_steps: int) -> list[list[str]]:
    """For every step, a random non-empty subset of :data:`KINDS` in a random order."""
    steps = []
    for _ in range(n_steps):
        while True:
            chosen = [k for k in KINDS if rng.random() < 0.5]
            if chosen:
                break
        order = rng.permutation(len(chosen))
        steps.append([chosen[i] for i in order])
    return steps


def _affine(m: np.ndarray) -> np.ndarray:
    """2x3 -> 3x3."""
    return np.vstack([m, [0.0, 0.0, 1.0]])


def placement(patch_size: tuple[int, int], centre: tuple[float, float], scale: float,
              rotate: float = 0.0) -> np.ndarray:
    """The 2x3 pose that puts a patch's centre at ``centre`` (frame coordinates), scaled and rotated.

    Args:
        patch_size: ``(h, w)`` of the patch.
        centre: ``(x, y)`` in the frame.
        scale: size factor (LODE's 1.2).
        rotate: degrees, counter-clockwise on screen.
    """
    h, w = patch_size
    pc = ((w - 1) / 2.0, (h - 1) / 2.0)
    a = math.radians(rotate)
    c, s = scale * math.cos(a), scale * math.sin(a)
    # Same convention as cv2.getRotationMatrix2D: [[c, s], [-s, c]] about the patch centre, then moved.
    return np.array([[c, s, centre[0] - (c * pc[0] + s * pc[1])],
                     [-s, c, centre[1] - (-s * pc[0] + c * pc[1])]], dtype=np.float64)


def step_matrix(kind: str, motion: Motion, pivot: tuple[float, float]) -> np.ndarray:
    """The 3x3 frame-space transform of one elementary step about ``pivot``."""
    px, py = pivot
    if kind == "translate":
        return np.array([[1.0, 0.0, motion.dx], [0.0, 1.0, motion.dy], [0.0, 0.0, 1.0]])
    if kind == "scale":
        f = motion.scale
        return np.array([[f, 0.0, px - f * px], [0.0, f, py - f * py], [0.0, 0.0, 1.0]])
    if kind == "rotate":
        a = math.radians(motion.rotate)
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, s, px - (c * px + s * py)], [-s, c, py - (-s * px + c * py)], [0.0, 0.0, 1.0]])
    raise ValueError(f"unknown transformation {kind!r}; expected one of {KINDS}")


def centre_of(pose: np.ndarray, patch_size: tuple[int, int]) -> tuple[float, float]:
    """Frame position of the patch centre under ``pose``."""
    h, w = patch_size
    x, y = (w - 1) / 2.0, (h - 1) / 2.0
    return (float(pose[0, 0] * x + pose[0, 1] * y + pose[0, 2]), float(pose[1, 0] * x + pose[1, 1] * y + pose[1, 2]))


def trajectory(start: np.ndarray, patch_size: tuple[int, int], motion: Motion,
               steps: list[list[str]]) -> np.ndarray:
    """Poses of all frames: pose 0 is ``start``; pose k+1 applies ``steps[k]`` in order to pose k.

    Returns:
        ``(len(steps) + 1, 2, 3)`` float64.
    """
    poses = [np.asarray(start, dtype=np.float64)]
    for kinds in steps:
        current = _affine(poses[-1])
        pivot = centre_of(poses[-1], patch_size)
        for kind in kinds:
            current = step_matrix(kind, motion, pivot) @ current
        poses.append(current[:2])
    return np.stack(poses)


def corners(pose: np.ndarray, patch_size: tuple[int, int]) -> np.ndarray:
    """Frame coordinates ``(4, 2)`` of the patch's outer corners (pixel edges, half a pixel out)."""
    h, w = patch_size
    pts = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    return pts @ pose[:, :2].T + pose[:, 2]
