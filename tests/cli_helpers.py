"""Helpers shared by the test modules that drive the command line (CliRunner on ``blursynth.cli.main.cli``),
and the file-damaging helpers of the bad-input tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from blursynth.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="blursynth")


def run_ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    return result


def assert_clean_error(result, names: str, exit_code: int | None = None) -> str:
    """Non-zero exit (``exit_code`` if given), exactly one ``Error:`` line naming ``names`` with a reason after
    it, no traceback; returns the line."""
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert names in errors[0], errors[0]
    assert errors[0].split(names, 1)[1].strip(" :'\"."), f"no reason given: {errors[0]}"
    return errors[0]


def cut(path: Path, fraction: float = 0.5) -> Path:
    """Truncate a file to ``fraction`` of its bytes (a download or copy that stopped)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def scramble(path: Path, start: float, stop: float, seed: int = 0) -> Path:
    """Overwrite bytes ``start .. stop`` (fractions of the size) with seeded noise (a corrupt file)."""
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * start), int(len(data) * stop)
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path
