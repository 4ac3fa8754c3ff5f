"""Crash-safe file primitives: write to a temporary name, flush, fsync, rename."""

from __future__ import annotations

import io
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


def write_failure(exc: Exception) -> str:
    """The short reason of a failed write: ``No space left on device``, ``File too large``..."""
    if getattr(exc, "errno", None):
        return os.strerror(exc.errno)
    text = str(exc)
    found = re.search(r"error message = '([^']+)'", text) or re.search(r"\[Errno (\d+)\]", text)
    if found and found.group(1).isdigit():
        return os.strerror(int(found.group(1)))
    if found:
        return found.group(1)
    return " ".join(text.split())[:200] or type(exc).__name__


class GuardedFile(io.RawIOBase):
    """The file under an HDF5 file that is being written (h5py's ``fileobj`` driver).

    HDF5 does not survive a failed write: after ENOSPC/EFBIG in a metadata flush its state is corrupt,
    closing the file crashes the interpreter (seen with h5py 3.16, HDF5 1.14) and ``__dealloc__`` prints
    tracebacks. So write errors never reach HDF5: the first one is kept in ``error``, later writes are
    dropped (reads of unwritten ranges give zeros), HDF5 carries on unaware, and the writer checks
    :meth:`check` after every sample and drops the file. Costs about 1 ms per 1280x720 sample (a copy in
    h5py's driver).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self.error: BaseException | None = None  # OSError, or an interrupt that tore a write
        self._pos = 0
        self._size = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self._size + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = b""
        if self.error is None:
            try:
                data = os.pread(self._fd, len(view), self._pos)
            except BaseException as exc:  # noqa: BLE001 - nothing may propagate into HDF5; see check()
                self.error = exc
        view[: len(data)] = data
        view[len(data):] = bytes(len(view) - len(data))
        self._pos += len(view)
        return len(view)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += os.pwrite(self._fd, view[done:], self._pos + done)
            except BaseException as exc:  # noqa: BLE001 - nothing may propagate into HDF5; see check()
                self.error = exc
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except BaseException as exc:  # noqa: BLE001 - nothing may propagate into HDF5; see check()
                self.error = exc
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def check(self) -> None:
        """Raise the first write error (as an OSError naming the file), or the interrupt that tore a write."""
        if isinstance(self.error, OSError):
            raise OSError(self.error.errno, self.error.strerror or str(self.error), str(self.path))
        if self.error is not None:
            raise self.error

    def sync_close(self) -> None:
        """fsync and close; raises the first write error, or the fsync's."""
        self.check()
        os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        super().close()


def create_h5(path: str | os.PathLike):
    """A new HDF5 file over a :class:`GuardedFile`: returns ``(h5py.File, GuardedFile)``."""
    import h5py

    raw = GuardedFile(path)
    try:
        return h5py.File(raw, "w"), raw
    except BaseException:
        raw.close()
        raise


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
