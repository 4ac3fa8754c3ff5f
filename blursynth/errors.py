"""Typed errors. All of them are click exceptions so the CLI prints ``Error: ...`` without a traceback.

The library raises these; it never calls ``sys.exit``. Messages are one line and name the file and the
reason, e.g. ``clip.mp4: not a decodable video (Invalid data found when processing input)``.
"""

from __future__ import annotations

import click


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class BlurSynthError(click.ClickException):
    """Base class of every error blursynth reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class InputError(BlurSynthError):
    """An input (video, frame folder, image) is missing, unreadable or unusable."""


class ConfigError(BlurSynthError):
    """Options are invalid or inconsistent with each other or with an existing output."""

    exit_code = 2


class MissingDependencyError(BlurSynthError):
    """An optional dependency needed for the chosen backend is not installed."""


class OutputError(BlurSynthError):
    """The output folder cannot be created or written."""


class SourceError(Exception):
    """One source cannot be used. Inside a multi-source run it is recorded and the run goes on.

    Args:
        path: the file or folder at fault (it is named in the message).
        reason: a short human-readable reason.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")
