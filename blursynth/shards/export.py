"""Export shards to the layouts trainers already read: GOPRO_Large, BasicSR paired folders, BasicSR LMDB.

Every per-sample array the shards hold is exported (``blur``, ``sharp``, and ``mask``, ``blur_map``,
``measurable``, ``blur_linear``... where present), 8-bit images as PNG and other arrays as ``.npy``
(``shards/encoding.py``):

* ``gopro``: ``DEST/<train|test>/<seq>/{blur_gamma,sharp[,blur][,<array>...]}/NNNNNN.png`` as in GOPRO_Large,
  written by ``shards/gopro.py`` like ``average --layout gopro`` (the folders mean the same there). ``blur/``
  is the plain mean of code values when the shards keep one (``average --keep-plain-mean``), else absent
  unless ``gopro_blur="gamma"`` asks for the CRF average there. The split ``val`` is ``test/`` by default.
* ``basicsr``: ``DEST/<split>/{blur,sharp[,<array>...]}/<name>.png`` with identical basenames in every folder
  and ``DEST/<split>/meta_info.txt`` (``<name>.png (h,w,c)`` per line), as BasicSR's ``PairedImageDataset``
  reads with ``meta_info_file`` (it takes the first token of each line).
* ``lmdb``: ``DEST/<split>/{blur,sharp[,<array>...]}.lmdb`` each with ``data.mdb`` and ``meta_info.txt`` lines
  ``<name>.png (h,w,c) <compress_level>``; keys are ``<name>`` (no extension, no other dot: BasicSR derives
  keys with ``line.split('.')[0]``), values the file bytes (PNG of BGR pixels, as BasicSR's
  ``make_lmdb_from_imgs``; ``.npy`` for other arrays), and the same keys in every database.

``<name>`` is ``<seq>_<frame>`` in ASCII letters, digits, ``_`` and ``-``; sequence names are unique
(``shards/names.py``: sources whose names meet get a hash of their key, listed in
``DEST/renamed_sources.json``). Only finished datasets are exported unless ``allow_incomplete`` (then
``DEST/INCOMPLETE.txt`` says so). Files are written under temporary names and renamed; LMDB databases are
built in ``<db>.partial`` and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blursynth.errors import ConfigError, InputError, MissingDependencyError, OutputError
from blursynth.shards.completeness import DatasetState, dataset_state
from blursynth.shards.encoding import encode_array, suffix, write_array, write_file
from blursynth.shards.files import PARTIAL, make_folder
from blursynth.shards.gopro import GOPRO_SPLITS, PLAIN_MEAN, BlurFolder, sample_folder, write_gopro_sample
from blursynth.shards.listing import ShardEntry, list_shards
from blursynth.shards.names import SequenceNames, frame_name, safe_name, sequence_names
from blursynth.shards.png import PNG_LEVEL
from blursynth.shards.reader import ShardReader

log = logging.getLogger(__name__)

EXPORT_LAYOUTS = ("gopro", "basicsr", "lmdb")
GOPRO_BLUR = tuple(b.value for b in BlurFolder)
INCOMPLETE_NOTE = "INCOMPLETE.txt"
RENAMED_SOURCES = "renamed_sources.json"


def flat_name(meta: dict, names: SequenceNames | None = None) -> str:
    """``<seq>_<frame>``: one basename per sample of ASCII letters, digits, ``_`` and ``-`` only."""
    seq = (names if names is not None else sequence_names((), flat=True))[str(meta.get("source", "sample"))]
    return f"{seq}_{safe_name(frame_name(meta))}"


def iter_samples(shards: list[ShardEntry]) -> Iterator[tuple[str, dict, dict[str, np.ndarray]]]:
    """``(split, meta, arrays)`` of every sample of ``shards``; arrays: every per-sample dataset by name."""
    for entry in shards:
        with ShardReader(entry.path) as reader:
            names = reader.sample_datasets()
            for i, meta in enumerate(reader.metas()):
                yield entry.split, meta, {n: reader.array(n, i) for n in names}


def _shape(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    return f"({h},{w},{image.shape[2] if image.ndim == 3 else 1})"


def export(out: str | os.PathLike, dest: str | os.PathLike, layout: str, *, overwrite: bool = False,
           allow_incomplete: bool = False, gopro_blur: str = "plain", val_name: str | None = None) -> dict:
    """Export the complete shards of ``out`` to ``dest`` in ``layout``.

    Args:
        allow_incomplete: export a dataset whose run did not finish (manifest status not ``complete``, or no
            manifest); ``DEST/INCOMPLETE.txt`` then records the status and counts.
        gopro_blur: what ``blur/`` of the gopro layout holds: ``plain`` (the plain mean, when the shards
            keep one) or ``gamma`` (the CRF average, a hard link to ``blur_gamma/``).
        val_name: the folder of the ``val`` split (default: ``test`` for gopro, ``val`` otherwise).

    Returns:
        ``{"samples", "by_split", "files", "layout", "incomplete": DatasetState | None, "renamed"}``.

    Raises:
        ConfigError: unknown layout or option value, or ``dest`` is not empty and ``overwrite`` is False.
        InputError: ``out`` has nothing to export, is not finished (see ``allow_incomplete``), or has a damaged
            or newer-version marker or shard. MissingDependencyError: ``lmdb`` without the package.
    """
    if layout not in EXPORT_LAYOUTS:
        raise ConfigError(f"--layout: expected one of {', '.join(EXPORT_LAYOUTS)}, got {layout!r}")
    if gopro_blur not in GOPRO_BLUR:
        raise ConfigError(f"--gopro-blur: expected one of {', '.join(GOPRO_BLUR)}, got {gopro_blur!r}")
    splits = _split_folders(layout, val_name)
    out, dest = Path(out), Path(dest)
    if not out.is_dir():
        raise InputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest}: exists and is not a folder")
    d, o = dest.resolve(), out.resolve()
    if d == o or o in d.parents or d in o.parents:
        raise ConfigError(f"{dest}: export into a folder of its own, neither inside {out} nor containing it")
    listing = list_shards(out)
    listing.raise_for_bad_markers()
    shards = listing.with_samples()
    if not shards:
        raise InputError(f"{out}: no complete HDF5 shard to export")
    state = dataset_state(out, listing)
    if not state.finished and not allow_incomplete:
        raise InputError(f"{state.describe()}; rerun the command that made it to finish it, or pass "
                         f"--allow-incomplete to export the {state.complete} complete samples")
    names = _plan_names(shards, state, flat=layout != "gopro")
    replacing = dest.exists() and any(dest.iterdir())
    if replacing and not overwrite:
        raise ConfigError(f"{dest}: not empty; choose an empty DEST or pass --overwrite")
    # --overwrite: the new export is written beside DEST and swapped in when complete, so a failed or
    # interrupted export leaves the previous one whole.
    target = dest.with_name(f".{dest.name}{PARTIAL}") if replacing else dest
    if replacing:
        shutil.rmtree(target, ignore_errors=True)
    created = make_folder(target)
    try:
        if layout == "lmdb":
            stats = _export_lmdb(shards, target, names, splits)
        else:
            stats = _export_folders(shards, target, layout, names, splits, BlurFolder(gopro_blur))
        stats["renamed"] = _note_names(target, dest, names, stats.pop("sources"))
        stats["incomplete"] = None if state.finished else _note_incomplete(target, dest, out, state)
    except BaseException:
        if created or replacing:
            shutil.rmtree(created or target, ignore_errors=True)
        else:  # DEST existed, empty: leave it empty
            for p in list(dest.iterdir()):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise
    if replacing:
        previous = dest.with_name(f".{dest.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(dest, previous)
        os.replace(target, dest)
        shutil.rmtree(previous, ignore_errors=True)
    return stats | {"layout": layout}


def _split_folders(layout: str, val_name: str | None) -> dict[str, str]:
    """Split -> folder of DEST; ``val`` is ``test`` in the gopro layout (GOPRO_Large), ``val`` otherwise."""
    splits = dict(GOPRO_SPLITS) if layout == "gopro" else {"train": "train", "val": "val"}
    if val_name is not None:
        if not val_name or val_name in (".", "..", "train") or "/" in val_name or os.sep in val_name:
            raise ConfigError(f"--val-name: expected a folder name other than train, got {val_name!r}")
        splits["val"] = val_name
    return splits


def _plan_names(shards: list[ShardEntry], state: DatasetState, *, flat: bool) -> SequenceNames:
    """Sequence names of every source (from the manifest's sources and the samples' own), and a check, before
    anything is written, that no two samples of a split get one file name."""
    keys, frames = set(state.source_keys), {}
    for entry in shards:
        with ShardReader(entry.path) as reader:
            for i, text in enumerate(reader.meta_texts()):
                meta = json.loads(text)
                source = str(meta.get("source", "sample"))
                keys.add(source)
                frames.setdefault((entry.split, source, frame_name(meta)), []).append((entry.path, i))
    for (split, source, frame), where in frames.items():
        if len(where) > 1:
            (p1, i1), (p2, i2) = where[:2]
            raise InputError(f"{p2}: sample {i2} and sample {i1} of {p1.name} have the same sharp frame "
                             f"({frame}) of source {source!r} in {split}: one file name for two samples")
    return sequence_names(keys, flat=flat)


def _note_names(target: Path, dest: Path, names: SequenceNames, sources: set[str]) -> dict[str, str]:
    """Log and record (``DEST/renamed_sources.json``) the exported sources whose names carry a hash.

    ``target``: where the export is being written (DEST, or the folder it is staged in)."""
    renamed = {key: names[key] for key in sorted(names.renamed & sources)}
    if renamed:
        log.warning("%d source(s) share a folder name with another once made file-safe; each got a hash of its "
                    "key: %s (listed in %s)", len(renamed), ", ".join(f"{k} -> {v}" for k, v in renamed.items()),
                    dest / RENAMED_SOURCES)
        data = {"format": "blursynth-export-names", "version": 1, "renamed": renamed}
        write_file(target / RENAMED_SOURCES, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode())
    return renamed


def _note_incomplete(target: Path, dest: Path, out: Path, state: DatasetState) -> DatasetState:
    """Mark an export of an unfinished dataset: ``DEST/INCOMPLETE.txt`` and a warning line."""
    text = (f"This export of {out} is INCOMPLETE (exported with --allow-incomplete).\n{state.describe()}.\n"
            f"Rerun the command that made {out} to finish it, then export again.\n")
    write_file(target / INCOMPLETE_NOTE, text.encode())
    log.warning("exported an unfinished dataset: %s (noted in %s)", state.describe(), dest / INCOMPLETE_NOTE)
    return state


def _export_folders(shards: list[ShardEntry], dest: Path, layout: str, names: SequenceNames,
                    splits: dict[str, str], blur: BlurFolder) -> dict:
    by_split: dict[str, int] = {}
    meta_lines: dict[str, list[str]] = {}
    sources: set[str] = set()
    files = no_plain = no_plain_camera = 0
    for split, meta, arrays in iter_samples(shards):
        sources.add(str(meta.get("source", "sample")))
        if layout == "gopro":
            folder, frame = sample_folder(dest, split, meta, split_names=splits, seq_names=names)
            files += len(write_gopro_sample(folder, frame, arrays, blur=blur))
            no_plain += PLAIN_MEAN not in arrays
            no_plain_camera += PLAIN_MEAN not in arrays and meta.get("camera") is not None
        else:
            name = flat_name(meta, names)
            for kind, array in arrays.items():
                write_array(dest / splits[split] / kind / name, array)
                files += 1
            meta_lines.setdefault(splits[split], []).append(f"{name}.png {_shape(arrays['sharp'])}")
        by_split[split] = by_split.get(split, 0) + 1
    for folder, lines in meta_lines.items():
        (dest / folder / "meta_info.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files += 1
    if layout == "gopro" and blur is BlurFolder.PLAIN and no_plain - no_plain_camera:
        log.warning("%d sample(s) have no plain mean of code values (the shards keep it with average "
                    "--keep-plain-mean): their sequences have blur_gamma/ but no blur/; pass --gopro-blur gamma "
                    "to put the CRF average under blur/ as well", no_plain - no_plain_camera)
    if layout == "gopro" and blur is BlurFolder.PLAIN and no_plain_camera:
        log.warning("%d sample(s) went through the camera (--camera): a camera dataset has no plain mean of code "
                    "values, so their sequences have blur_gamma/ (the camera's image) but no blur/; pass "
                    "--gopro-blur gamma to put it under blur/ as well", no_plain_camera)
    return {"samples": sum(by_split.values()), "by_split": by_split, "files": files, "sources": sources}


def _export_lmdb(shards: list[ShardEntry], dest: Path, names: SequenceNames, splits: dict[str, str]) -> dict:
    try:
        import lmdb
    except ImportError:
        raise MissingDependencyError("--layout lmdb needs the lmdb package: pip install lmdb") from None
    envs: dict[tuple[str, str], object] = {}
    txns: dict[tuple[str, str], object] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    by_split: dict[str, int] = {}
    sources: set[str] = set()
    pending = 0
    map_size = 1 << 40  # a sparse reservation, not allocated

    def txn(folder: str, kind: str):
        key = (folder, kind)
        if key not in envs:
            path = dest / folder / f"{kind}.lmdb{PARTIAL}"
            path.mkdir(parents=True, exist_ok=True)
            envs[key] = lmdb.open(str(path), map_size=map_size)
            txns[key] = envs[key].begin(write=True)
            lines[key] = []
        return txns[key]

    try:
        for split, meta, arrays in iter_samples(shards):
            sources.add(str(meta.get("source", "sample")))
            name = flat_name(meta, names)
            for kind, array in arrays.items():
                txn(splits[split], kind).put(name.encode("ascii"), encode_array(array))
                level = PNG_LEVEL if suffix(array) == ".png" else 0
                lines[(splits[split], kind)].append(f"{name}{suffix(array)} {_shape(array)} {level}")
            by_split[split] = by_split.get(split, 0) + 1
            pending += 1
            if pending >= 200:  # commit in batches: bounded transaction size
                for key in txns:
                    txns[key].commit()
                    txns[key] = envs[key].begin(write=True)
                pending = 0
        for key in txns:
            txns[key].commit()
    except BaseException:
        for t in txns.values():
            try:
                t.abort()
            except Exception:  # noqa: BLE001 - already committed or closed
                pass
        raise
    finally:
        for env in envs.values():
            env.close()
    for (folder, kind), meta_lines in lines.items():
        partial = dest / folder / f"{kind}.lmdb{PARTIAL}"
        (partial / "meta_info.txt").write_text("\n".join(meta_lines) + "\n", encoding="utf-8")
        os.replace(partial, dest / folder / f"{kind}.lmdb")
    return {"samples": sum(by_split.values()), "by_split": by_split, "files": len(lines), "sources": sources}
