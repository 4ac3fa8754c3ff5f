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


# -- continuous exposure: the trajectory sampled between its frames (issue 18) ---------------------------------
#: ``--substeps auto`` never goes beyond this many sub-steps per trajectory step.
AUTO_SUBSTEPS_CAP = 32


def _step_similarities(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step k, the frame-space similarity ``z -> alpha z + beta`` (complex ``z = x + i y``) taking pose k to
    pose k + 1: ``alpha`` ``(N - 1,)`` complex (scale times rotation), ``beta`` ``(N - 1,)`` complex."""
    a = poses[:, :, :2]
    step = a[1:] @ np.linalg.inv(a[:-1])  # (N - 1, 2, 2): [[p, -q], [q, p]] up to rounding
    alpha = (step[:, 0, 0] + step[:, 1, 1]) / 2 + 1j * (step[:, 1, 0] - step[:, 0, 1]) / 2
    origin = poses[:-1, :, 2] @ np.array([1.0, 1j])
    beta = poses[1:, :, 2] @ np.array([1.0, 1j]) - alpha * origin
    return alpha, beta


def _fractional(alpha: np.ndarray, beta: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity ``T^s`` of ``T: z -> alpha z + beta`` for ``0 <= s <= 1``: the constant-velocity screw
    motion (uniform rotation and log-uniform scaling about T's fixed point, or a uniform translation) that
    reaches T at s = 1. Arrays broadcast; returns ``(alpha^s, beta_s)``."""
    log_alpha = np.log(alpha)  # principal branch: a step turns by at most 90 degrees (config checks --rotate)
    power = np.exp(s * log_alpha)
    tiny = np.abs(log_alpha) < 1e-12
    # beta_s = beta (alpha^s - 1) / (alpha - 1); expm1 keeps it exact as alpha -> 1 (pure translation: s beta)
    ratio = np.where(tiny, s, np.expm1(s * log_alpha) / np.where(tiny, 1.0, np.expm1(log_alpha)))
    return power, beta * ratio


def exposure_times(n: int, substeps: int, duty_cycle: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The M = (N - 1) K + 1 sample times of an exposure of N trajectory poses, as ``(step, fraction)``: sample
    j is at time ``step[j] + fraction[j]`` (frame units, ``0 <= fraction < 1``), uniform over
    ``[c - tau (N - 1) / 2, c + tau (N - 1) / 2]`` with ``c = (N - 1) / 2`` (``--duty-cycle`` tau, issue 18).

    With tau = 1 the times are ``j / K`` exactly (integer times on the trajectory's poses). Otherwise sample j
    is at ``c + tau (j - (M - 1) / 2) / K``: the middle sample (M is odd for odd N) is at c exactly, so it is
    the sharp frame, and the others are off the poses even at K = 1. Same times as ``average``'s
    ``ops/interpolate.sample_times``.

    Returns:
        ``step`` ``(M,)`` int64 in ``[0, N - 1]``, ``fraction`` ``(M,)`` float64 (0 where ``step`` is a pose).
    """
    m = (n - 1) * substeps + 1
    j = np.arange(m)
    if duty_cycle == 1.0:
        return j // substeps, (j % substeps) / substeps
    times = (n - 1) / 2.0 + duty_cycle * (j - (m - 1) / 2.0) / substeps
    step = np.clip(np.floor(times), 0, n - 1).astype(np.int64)
    return step, np.clip(times - step, 0.0, 1.0)  # t - floor(t) is exact in floating point


def poses_at(poses: np.ndarray, step: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """The trajectory's poses at times ``step + fraction`` (``0 <= fraction <= 1``; ``step`` an integer array).

    Within step k the object follows the constant-velocity screw motion from pose k to pose k + 1 (the step's
    translation, rotation and scaling happen together and uniformly, whatever order drew them); a fraction of
    0 gives pose ``step`` bit for bit, a fraction of 1 pose ``step + 1``. Nothing is drawn: the trajectory does
    not depend on where it is sampled.

    Returns:
        ``(len(step), 2, 3)`` float64.
    """
    poses = np.asarray(poses, np.float64)
    step, fraction = np.asarray(step, np.int64), np.asarray(fraction, np.float64)
    whole = fraction >= 1.0
    step, fraction = np.where(whole, step + 1, step), np.where(whole, 0.0, fraction)
    out = poses[step]  # a copy (fancy indexing)
    between = np.flatnonzero(fraction > 0.0)
    if len(between) == 0:
        return out
    alpha, beta = _step_similarities(poses)
    k, s = step[between], fraction[between]
    power, shift = _fractional(alpha[k], beta[k], s)
    rot = np.stack([np.stack([power.real, -power.imag], -1), np.stack([power.imag, power.real], -1)], -2)
    moved = rot @ poses[k]  # T^s applied to pose k
    moved[:, 0, 2] += shift.real
    moved[:, 1, 2] += shift.imag
    out[between] = moved
    return out


def subsample(poses: np.ndarray, substeps: int, duty_cycle: float = 1.0) -> np.ndarray:
    """The trajectory's poses at the ``M = (N - 1) substeps + 1`` times of :func:`exposure_times`.

    With ``duty_cycle`` 1 the poses at integer times are the trajectory's own, bit for bit; with any duty cycle
    the middle sample is the middle pose, the sharp frame. The trajectory does not depend on ``substeps`` or
    ``duty_cycle``, which only set where it is sampled (:func:`poses_at`).

    Args:
        poses: ``(N, 2, 3)`` float64 from :func:`trajectory`.
        substeps: K >= 1 sub-steps per step.
        duty_cycle: tau in (0, 1], the fraction of the N - 1 steps the exposure covers, centred.

    Returns:
        ``(M, 2, 3)`` float64.
    """
    poses = np.asarray(poses, np.float64)
    if (substeps == 1 and duty_cycle == 1.0) or len(poses) == 1:
        return poses
    return poses_at(poses, *exposure_times(len(poses), substeps, duty_cycle))


def substep_displacement(poses: np.ndarray, patch_size: tuple[int, int], substeps: np.ndarray,
                         duty_cycle: float = 1.0) -> np.ndarray:
    """Largest distance any point of the patch moves between two consecutive samples, for each K in ``substeps``.

    Exact for the patch rectangle, no bound: a sample-to-sample motion is affine in the point, so its largest
    length over the (convex) rectangle is at a corner; and within step k the motion from sample j to j + 1 is
    ``alpha^(j/K)`` times the first one about the same fixed point, so the largest is the first or the last.
    With a duty cycle tau < 1 the samples are tau / K steps apart and a pair may straddle two steps: the
    motion between two samples is still affine in the point, so its largest length is at a corner, and it is
    measured between the sampled poses themselves (:func:`subsample`), also exact.

    Args:
        poses: ``(N, 2, 3)``; patch_size: ``(h, w)``; substeps: ``(C,)`` candidate K values; duty_cycle: tau.

    Returns:
        ``(C,)`` float64 pixels (0 for a single pose).
    """
    substeps = np.asarray(substeps, np.int64)
    if len(poses) < 2:
        return np.zeros(len(substeps))
    if duty_cycle != 1.0:
        return np.array([_sampled_displacement(poses, patch_size, int(k), duty_cycle) for k in substeps])
    alpha, beta = _step_similarities(np.asarray(poses, np.float64))
    q = np.stack([corners(p, patch_size) @ np.array([1.0, 1j]) for p in poses[:-1]])  # (N - 1, 4) at step start
    power, shift = _fractional(alpha[None, :], beta[None, :], 1.0 / substeps[:, None])  # (C, N - 1)
    first = np.abs((power - 1.0)[..., None] * q[None] + shift[..., None]).max(axis=-1)  # (C, N - 1)
    growth = np.maximum(1.0, np.abs(alpha)[None, :] ** ((substeps[:, None] - 1) / substeps[:, None]))
    return (first * growth).max(axis=-1)


def auto_substeps(moving: list[tuple[np.ndarray, tuple[int, int]]], cap: int = AUTO_SUBSTEPS_CAP,
                  max_px: float = 1.0, duty_cycle: float = 1.0) -> tuple[int, float]:
    """``--substeps auto``: the smallest K <= ``cap`` with which no point of any moving object moves more than
    ``max_px`` between consecutive samples (:func:`substep_displacement`), and that largest motion at K.
    Samples are ``duty_cycle / K`` steps apart, so a duty cycle tau needs about tau times the K of tau = 1.

    Args:
        moving: per moving object, its poses ``(N, 2, 3)`` and patch size ``(h, w)``.
    """
    if duty_cycle != 1.0:  # measured per K on the sampled poses: stop at the first K that fits
        for k in range(1, cap + 1):
            worst = max(substep_displacement(p, size, [k], duty_cycle)[0] for p, size in moving)
            if worst <= max_px * (1 + 1e-9):
                break
        return k, float(worst)
    candidates = np.arange(1, cap + 1)
    worst = np.max([substep_displacement(p, size, candidates) for p, size in moving], axis=0)
    fits = np.flatnonzero(worst <= max_px * (1 + 1e-9))
    k = int(candidates[fits[0]]) if len(fits) else cap
    return k, float(worst[k - 1])


def _sampled_displacement(poses: np.ndarray, patch_size: tuple[int, int], substeps: int, duty_cycle: float
                          ) -> float:
    """Largest motion of a patch corner between consecutive samples of :func:`subsample` (exact, see
    :func:`substep_displacement`)."""
    sampled = subsample(poses, substeps, duty_cycle)
    h, w = patch_size
    pts = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    q = np.einsum("mij,pj->mpi", sampled[:, :, :2], pts) + sampled[:, None, :, 2]  # (M, 4, 2)
    return float(np.linalg.norm(np.diff(q, axis=0), axis=-1).max()) if len(q) > 1 else 0.0
