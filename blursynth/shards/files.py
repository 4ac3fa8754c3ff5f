"""Crash-safe file primitives: write to a temporary name, flush, fsync, rename."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from blursynth.errors import OutputError

PARTIAL = ".partial"


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or directory (directories: best effort, not supported everywhere)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_failure(exc: OSError) -> str:
    """The short reason of a failed write: ``No space left on device``, ``File too large``..."""
    if exc.errno:
        return os.strerror(exc.errno)
    text = str(exc)
    found = re.search(r"error message = '([^']+)'", text) or re.search(r"\[Errno (\d+)\]", text)
    if found and found.group(1).isdigit():
        return os.strerror(int(found.group(1)))
    if found:
        return found.group(1)
    return " ".join(text.split())[:200] or type(exc).__name__


def make_folder(path: str | os.PathLike) -> Path | None:
    """Create ``path`` and any missing parents; return the topmost folder created (None if it existed).

    Remove that folder, not just ``path``, to leave the filesystem as it was found.

    Raises:
        OutputError: ``path`` (or one of its parents) is a file, or cannot be created.
    """
    path = Path(path)
    if path.is_dir():
        return None
    if path.exists():
        raise OutputError(f"{path}: exists and is not a folder")
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return None if path.is_dir() else _not_a_folder(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder ({write_failure(exc)})") from None
    return top


def _not_a_folder(path: Path):
    raise OutputError(f"{path}: exists and is not a folder")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one.

    Raises:
        OutputError: the file cannot be written (disk full, permissions...); the old file is untouched.
    """
    path = Path(path)
    tmp = path.with_name(path.name + PARTIAL)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({write_failure(exc)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
