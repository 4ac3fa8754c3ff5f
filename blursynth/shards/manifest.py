"""``OUT/manifest.json``: tool version, resolved configuration, every source and every shard.

It is written when a run starts (``status: running``) and rewritten at the end (``complete``). A second run
into the same OUT compares the output-determining settings and the source fingerprints with the recorded
ones: equal means resume, different is refused unless ``--overwrite`` (the new dataset is then staged beside
the old one and swapped in at the end: run/staging.py).

Besides ``command`` (compared on resume) it records how the run was invoked, outside the fingerprint:
``argv``, ``cwd``, ``out_abs`` and an absolute ``path_abs`` / ``paths_abs`` per source (:func:`provenance`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from blursynth import __version__
from blursynth.errors import ConfigError, OutputError
from blursynth.shards.files import PARTIAL, atomic_write_json, read_json

MANIFEST = "manifest.json"
FORMAT = "blursynth-manifest"
MANIFEST_VERSION = 1  # manifests of versions 1 .. this are read; a newer one is refused
SPLITS = ("train", "val")
#: Folders of OUT besides the splits: ``--layout gopro`` writes the val split's GOPRO tree as ``test/``
#: (shards/gopro.py GOPRO_SPLITS).
TREE_FOLDERS = ("test",)
#: Other files a run writes into OUT (the object bank of ``blursynth local``), removed with the outputs.
RUN_FILES = ("objects.h5",)
#: Folders other commands write into OUT about its dataset (``inspect``/``stats``: ``report/``,
#: ``train-check``: ``train_check/``): stale once the dataset is replaced (``--overwrite``).
DERIVED = ("report", "train_check")
#: Hidden folders of a run that replaces a dataset (run/staging.py): the new one being written, the old one
#: being removed. A killed run may leave them; the next run into OUT removes or resumes them.
STAGING, PREVIOUS = ".staging", ".previous"
_CHUNK = 1 << 20


def quick_hash(path: str | os.PathLike) -> str:
    """A cheap content fingerprint: blake2b over the size and the first, middle and last MiB.

    For a frame folder: over the file names and sizes, and the sampled content of its first, middle and
    last frames. Hashing whole multi-GB videos would cost as much as decoding them.
    """
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        for p in files:
            h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
        for p in sorted({files[0], files[len(files) // 2], files[-1]}) if files else ():
            h.update(quick_hash(p).encode())
        return "blake2b-sampled:" + h.hexdigest()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - _CHUNK // 2), max(0, size - _CHUNK)}):
            f.seek(offset)
            h.update(f.read(_CHUNK))
    return "blake2b-sampled:" + h.hexdigest()


class NewerManifestError(OutputError):
    """A manifest written by a newer blursynth, in a format version this one does not know."""


def manifest_path(out: str | os.PathLike) -> Path:
    return Path(out) / MANIFEST


def load_manifest(out: str | os.PathLike, *, writing: bool = True) -> dict | None:
    """The manifest of ``out`` (None if there is none).

    Args:
        writing: the caller is about to write into ``out``: the errors then say how to start over.

    Raises:
        OutputError: unreadable or not a blursynth manifest.
    """
    path = manifest_path(out)
    if not path.exists():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        advice = "; use --overwrite to start over" if writing else ""
        raise OutputError(f"{path}: unreadable manifest ({exc}){advice}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OutputError(f"{path}: not a blursynth manifest" + ("; choose another OUT" if writing else ""))
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise OutputError(f"{path}: manifest format version {version!r} is not a version number")
    if version > MANIFEST_VERSION:  # fields may mean something else there: never guess
        raise NewerManifestError(f"{path}: manifest format version {version} is newer than this blursynth reads "
                          f"({MANIFEST_VERSION}); upgrade blursynth")
    return data


def check_out(out: str | os.PathLike) -> None:
    """Cheap early check that OUT is a folder or can become one (nothing is created).

    Raises:
        OutputError: OUT is a file, lies under a file, or its nearest existing ancestor is not writable.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputError(f"{out}: output folder is not writable")
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: cannot create output folder ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot create output folder ({parent} is not writable)")


def compare_job(out: str | os.PathLike, command: str, fingerprint: dict, sources: dict, overwrite: bool) -> str:
    """What a run may do with the folder ``out``: nothing is changed here.

    Args:
        out: an existing output folder.
        command: ``average``, ``local``, ...
        fingerprint: output-determining settings.
        sources: ``{key: hash}`` of the sources.
        overwrite: a previous dataset made with other settings may be replaced.

    Returns:
        ``"new"`` (no manifest, and nothing in the folder but a staging folder), ``"resume"`` (the same job)
        or ``"replace"`` (another job, or an unreadable manifest, and ``overwrite``).

    Raises:
        OutputError: unreadable manifest, or a non-empty folder that is not a blursynth output.
        ConfigError: OUT holds a different job and ``overwrite`` is False.
    """
    out = Path(out)
    try:
        previous = load_manifest(out)
    except OutputError:
        if overwrite and _unreadable(manifest_path(out)):  # what the error advises: start over
            return "replace"
        raise
    if previous is None:
        leftovers = [p.name for p in out.iterdir() if p.name != STAGING]
        if leftovers:
            raise OutputError(
                f"{out}: folder is not empty and holds no blursynth manifest ({leftovers[0]} ...); "
                "choose a new or empty OUT"
            )
        return "new"
    same = (
        previous.get("command") == command
        and recorded_fingerprint(previous) == fingerprint
        and {s["key"]: s.get("hash") for s in previous.get("sources", [])} == sources
    )
    if same:
        return "resume"
    if not overwrite:
        what = _difference(previous, command, fingerprint, sources)
        raise ConfigError(
            f"{out}: holds a dataset made with other settings ({what}); "
            "rerun with the same settings to resume, or pass --overwrite"
        )
    return "replace"


def _unreadable(path: Path) -> bool:
    """The manifest cannot be parsed (a torn or damaged file), as opposed to a JSON file of another tool."""
    try:
        read_json(path)
    except (OSError, ValueError):
        return True
    return False


def recorded_fingerprint(manifest: dict) -> dict:
    """The fingerprint a manifest recorded. Outputs written before fingerprints carried the recipe's
    algorithm ``revision`` were made by revision 1 of every recipe."""
    return {"revision": 1, **(manifest.get("fingerprint") or {})}


def _difference(previous: dict, command: str, fingerprint: dict, sources: dict) -> str:
    if previous.get("command") != command:
        return f"command {previous.get('command')!r} vs {command!r}"
    old = recorded_fingerprint(previous)
    for key in sorted(set(old) | set(fingerprint)):
        if old.get(key) != fingerprint.get(key):
            return f"{key}={old.get(key)!r} vs {fingerprint.get(key)!r}"
    recorded = {s["key"]: s.get("hash") for s in previous.get("sources", [])}
    for key in sorted(set(recorded) | set(sources)):
        if key not in sources:
            return f"source {key!r} is no longer given"
        if key not in recorded:
            return f"source {key!r} is new"
        if recorded[key] != sources[key]:
            return f"source {key!r} changed"
    return "different sources"


def remove_partials(out: Path) -> None:
    for split in (*SPLITS, *TREE_FOLDERS):
        folder = out / split
        if folder.is_dir():
            for p in folder.rglob(f"*{PARTIAL}*"):
                p.unlink(missing_ok=True)


def remove_outputs(out: str | os.PathLike) -> None:
    """Remove what a blursynth run writes into OUT (splits, run files and manifest), nothing else."""
    out = Path(out)
    for split in (*SPLITS, *TREE_FOLDERS):
        shutil.rmtree(out / split, ignore_errors=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
        (out / (name + PARTIAL)).unlink(missing_ok=True)
    manifest_path(out).unlink(missing_ok=True)


def provenance(out: str | os.PathLike, argv: Sequence[str], sources: list[dict]) -> dict:
    """How a run was invoked, for the manifest (outside the fingerprint: a resume never compares it).

    Adds ``path_abs`` (and ``paths_abs`` for entries that list several paths) to every source entry that
    names a path, so a manifest still leads to its inputs when it is read from another working directory.

    Returns:
        ``{"argv": [...], "cwd": ..., "out_abs": ...}``.
    """
    for entry in sources:
        if isinstance(entry.get("path"), str):
            entry["path_abs"] = os.path.abspath(entry["path"])
        if isinstance(entry.get("paths"), list):
            entry["paths_abs"] = [os.path.abspath(p) for p in entry["paths"]]
    return {"argv": [str(a) for a in argv], "cwd": os.getcwd(), "out_abs": os.path.abspath(out)}


def write_manifest(out: str | os.PathLike, *, command: str, status: str, config: dict, fingerprint: dict,
                   sources: list[dict], shards: list[dict], totals: dict | None = None,
                   extra: dict | None = None) -> dict:
    data = {
        "format": FORMAT,
        "version": MANIFEST_VERSION,
        "tool": "blursynth",
        "tool_version": __version__,
        "command": command,
        "status": status,
        "config": config,
        "fingerprint": fingerprint,
        "sources": sources,
        "shards": shards,
        "totals": totals or {},
        **(extra or {}),
    }
    atomic_write_json(manifest_path(out), data)
    return data
