"""Parsers of the option values that are more than a number: frame ranges, layouts, ranges, sizes.

Each raises :class:`~blursynth.errors.ConfigError` naming the option, what was expected and what was given.
"""

from __future__ import annotations

import re

from blursynth.config.fields import LAYOUTS
from blursynth.errors import ConfigError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def parse_frames(text: str) -> tuple[int, int]:
    """Parse ``--frames``: ``"9"`` or an odd range ``"7-13"``.

    Raises:
        ConfigError: when the text is not a number or range, a bound is even or < 1, or the range is reversed.
    """
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:[-:]\s*(-?\d+)\s*)?", str(text))
    if not match:
        raise ConfigError(f"--frames: expected an odd number like 9 or an odd range like 7-13, got {text!r}")
    lo = int(match.group(1))
    hi = int(match.group(2)) if match.group(2) is not None else lo
    if lo < 1 or hi < 1:
        raise ConfigError(f"--frames: frame counts must be at least 1, got {text!r}")
    if lo > hi:
        raise ConfigError(f"--frames: range is reversed ({lo} > {hi}); write it as {hi}-{lo}")
    if lo % 2 == 0 or hi % 2 == 0:
        raise ConfigError(
            f"--frames: frame counts must be odd so that a middle frame exists, got {text!r}"
        )
    return lo, hi


def parse_layout(text: str) -> tuple[str, ...]:
    """Parse ``--layout h5``, ``gopro`` or ``h5,gopro``."""
    parts = tuple(dict.fromkeys(p.strip().lower() for p in str(text).split(",") if p.strip()))
    bad = [p for p in parts if p not in LAYOUTS]
    if not parts or bad:
        raise ConfigError(f"--layout: expected one or more of {', '.join(LAYOUTS)}, got {text!r}")
    return parts


def parse_range(text: str, option: str, *, integer: bool = False) -> tuple[float, float]:
    """Parse a value ``"2"`` or an inclusive range ``"0-2"`` / ``"-3:3"`` / ``"0.97:1.03"``.

    ``:`` always separates the bounds; ``-`` does too when both bounds are non-negative numbers without a
    sign (``0-2``), so negative bounds must use ``:`` (``-3:3``).

    Raises:
        ConfigError: not a number or range, not an integer where one is needed, or reversed bounds.
    """
    s = str(text).strip()
    m = re.fullmatch(rf"({_NUMBER})\s*(?::\s*({_NUMBER}))?", s) or re.fullmatch(
        r"(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)", s)
    if not m:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{option}: expected {kind} or a range like 1:6, got {text!r}")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else lo
    if integer and (lo != int(lo) or hi != int(hi)):
        raise ConfigError(f"{option}: expected whole numbers, got {text!r}")
    if lo > hi:
        raise ConfigError(f"{option}: range is reversed ({m.group(1)} > {m.group(2)})")
    return (int(lo), int(hi)) if integer else (lo, hi)


def parse_size(text: str, option: str = "--crop") -> tuple[int, int]:
    """Parse ``HxW`` (``720x1280``) into ``(height, width)``."""
    m = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*", str(text))
    if not m:
        raise ConfigError(f"{option}: expected HEIGHTxWIDTH like 256x256, got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h < 1 or w < 1:
        raise ConfigError(f"{option}: height and width must be positive, got {text!r}")
    return h, w
