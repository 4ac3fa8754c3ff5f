"""Export shards to the layouts trainers already read: GOPRO_Large, BasicSR paired folders, BasicSR LMDB.

* ``gopro``: ``DEST/<split>/<seq>/{blur,blur_gamma,sharp[,mask]}/NNNNNN.png`` as in GOPRO_Large, written by
  ``shards/gopro.py`` like ``average --layout gopro``. The shards keep one blurry image, the average with the
  configured CRF (GOPRO_Large's ``blur_gamma`` semantics); it is written as ``blur_gamma/`` and hard-linked as
  ``blur/`` (``BlurFolder.GAMMA_LINK``), the folder most GOPRO loaders read (GOPRO_Large's own ``blur/`` is a
  plain code-value mean, which the shards do not store).
* ``basicsr``: ``DEST/<split>/{blur,sharp[,mask]}/<name>.png`` with identical basenames in every folder and
  ``DEST/<split>/meta_info.txt`` (``<name>.png (h,w,c)`` per line), as BasicSR's ``PairedImageDataset``
  reads with ``meta_info_file`` (it takes the first token of each line).
* ``lmdb``: ``DEST/<split>/{blur,sharp[,mask]}.lmdb`` each with ``data.mdb`` and ``meta_info.txt`` lines
  ``<name>.png (h,w,c) <compress_level>``; keys are ``<name>`` (no extension, no other dot: BasicSR derives
  keys with ``line.split('.')[0]``), values PNG-encoded BGR bytes (as BasicSR's ``make_lmdb_from_imgs``), and
  the same keys in every database.

``<name>`` is ``<seq>_<NNNNNN>`` (sequence folder name with dots replaced, and the sharp frame index or the
sample index). Files are written under temporary names and renamed; LMDB databases are built in
``<db>.partial`` and renamed when complete.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blursynth.errors import ConfigError, InputError, MissingDependencyError, OutputError
from blursynth.shards.files import PARTIAL, make_folder
from blursynth.shards.gopro import BlurFolder, sample_name, write_gopro_sample
from blursynth.shards.listing import list_shards
from blursynth.shards.png import PNG_LEVEL, encode_png, write_png
from blursynth.shards.reader import ShardReader

EXPORT_LAYOUTS = ("gopro", "basicsr", "lmdb")


def flat_name(meta: dict) -> str:
    """``<seq>_<frame>``: one basename per sample of ASCII letters, digits, ``_`` and ``-`` only. BasicSR splits
    LMDB keys on dots and ``meta_info.txt`` lines on spaces, and LMDB keys are ASCII here; any other character
    becomes ``_`` (two samples that then collide are refused by the exporters)."""
    seq, frame = sample_name(meta)
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{seq}_{frame}")


def iter_samples(out: Path) -> Iterator[tuple[str, dict, dict[str, np.ndarray]]]:
    """``(split, meta, images)`` of every sample of every complete shard; images: blur, sharp[, mask]."""
    shards = list_shards(out).with_samples()
    if not shards:
        raise InputError(f"{out}: no complete HDF5 shard to export")
    for entry in shards:
        with ShardReader(entry.path) as reader:
            names = [n for n in ("blur", "sharp", "mask") if n in reader]
            for i, meta in enumerate(reader.metas()):
                yield entry.split, meta, {n: reader.array(n, i) for n in names}


def _shape(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    return f"({h},{w},{image.shape[2] if image.ndim == 3 else 1})"


def export(out: str | os.PathLike, dest: str | os.PathLike, layout: str, *, overwrite: bool = False) -> dict:
    """Export the complete shards of ``out`` to ``dest`` in ``layout``.

    Returns:
        ``{"samples": n, "by_split": {...}, "files": k, "layout": layout}``.

    Raises:
        ConfigError: unknown layout, or ``dest`` is not empty and ``overwrite`` is False.
        InputError: ``out`` has nothing to export. MissingDependencyError: ``lmdb`` without the package.
    """
    if layout not in EXPORT_LAYOUTS:
        raise ConfigError(f"--layout: expected one of {', '.join(EXPORT_LAYOUTS)}, got {layout!r}")
    out, dest = Path(out), Path(dest)
    if not out.is_dir():
        raise InputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest}: exists and is not a folder")
    d, o = dest.resolve(), out.resolve()
    if d == o or o in d.parents or d in o.parents:
        raise ConfigError(f"{dest}: export into a folder of its own, neither inside {out} nor containing it")
    if dest.exists() and any(dest.iterdir()):
        if not overwrite:
            raise ConfigError(f"{dest}: not empty; choose an empty DEST or pass --overwrite")
        shutil.rmtree(dest)
    created = make_folder(dest)
    try:
        if layout == "lmdb":
            stats = _export_lmdb(out, dest)
        else:
            stats = _export_folders(out, dest, layout)
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for p in dest.rglob(f"*{PARTIAL}*"):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise
    return stats | {"layout": layout}


def _export_folders(out: Path, dest: Path, layout: str) -> dict:
    by_split: dict[str, int] = {}
    meta_lines: dict[str, list[str]] = {}
    files = 0
    seen: set[tuple[str, str]] = set()
    for split, meta, images in iter_samples(out):
        key = (split, "/".join(sample_name(meta)) if layout == "gopro" else flat_name(meta))
        if key in seen:
            raise OutputError(f"{dest}: two samples map to the name {key[1]!r} in {split}")
        seen.add(key)
        if layout == "gopro":
            files += len(write_gopro_sample(dest, split, meta, blur_gamma=images["blur"], sharp=images["sharp"],
                                            blur=BlurFolder.GAMMA_LINK, mask=images.get("mask")))
        else:
            for kind, image in images.items():
                write_png(dest / split / kind / f"{key[1]}.png", encode_png(image))
                files += 1
            meta_lines.setdefault(split, []).append(f"{key[1]}.png {_shape(images['sharp'])}")
        by_split[split] = by_split.get(split, 0) + 1
    for split, lines in meta_lines.items():
        (dest / split / "meta_info.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files += 1
    return {"samples": sum(by_split.values()), "by_split": by_split, "files": files}


def _export_lmdb(out: Path, dest: Path) -> dict:
    try:
        import lmdb
    except ImportError:
        raise MissingDependencyError("--layout lmdb needs the lmdb package: pip install lmdb") from None
    envs: dict[tuple[str, str], object] = {}
    txns: dict[tuple[str, str], object] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    by_split: dict[str, int] = {}
    pending = 0
    map_size = 1 << 40  # a sparse reservation, not allocated

    def txn(split: str, kind: str):
        key = (split, kind)
        if key not in envs:
            path = dest / split / f"{kind}.lmdb{PARTIAL}"
            path.mkdir(parents=True, exist_ok=True)
            envs[key] = lmdb.open(str(path), map_size=map_size)
            txns[key] = envs[key].begin(write=True)
            lines[key] = []
        return txns[key]

    seen: set[tuple[str, str]] = set()
    try:
        for split, meta, images in iter_samples(out):
            name = flat_name(meta)
            if (split, name) in seen:
                raise OutputError(f"{dest}: two samples map to the key {name!r} in {split}")
            seen.add((split, name))
            for kind, image in images.items():
                txn(split, kind).put(name.encode("ascii"), encode_png(image))
                lines[(split, kind)].append(f"{name}.png {_shape(image)} {PNG_LEVEL}")
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
    for (split, kind), meta_lines in lines.items():
        partial = dest / split / f"{kind}.lmdb{PARTIAL}"
        (partial / "meta_info.txt").write_text("\n".join(meta_lines) + "\n", encoding="utf-8")
        os.replace(partial, dest / split / f"{kind}.lmdb")
    return {"samples": sum(by_split.values()), "by_split": by_split, "files": len(lines)}
