"""Names in exported trees (GOPRO_Large, BasicSR folders and LMDB): one folder or basename per source, unique.

A sequence folder is named after its source key: the key without a video extension, ``/`` as ``__``
(GOPRO_Large's ``GOPR0372_07_00``), and, for the BasicSR layouts, every character other than ASCII letters,
digits, ``_`` and ``-`` as ``_`` (BasicSR splits LMDB keys on dots and ``meta_info.txt`` lines on spaces). Two
keys can then meet (``cam.a`` and ``cam_a``; ``x.mp4`` and ``x.mov``; ``Cam`` and ``cam`` on a case-insensitive
file system): every key of such a group gets ``_`` and a short hash of the key itself appended. The names are
a function of the *set* of keys (the sources the manifest lists), never of the order samples arrive in, so
``average --layout gopro`` and ``export`` name a dataset alike and a rerun names it the same.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable

from blursynth.io.sources import VIDEO_EXTENSIONS  # every extension read as a video (.gif, .ts, ...)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def gopro_dir_name(source_key: str) -> str:
    """GOPRO_Large has one folder per sequence: nested keys become ``a__b``, video extensions are dropped."""
    stem, ext = os.path.splitext(source_key)
    base = stem if ext.lower() in VIDEO_EXTENSIONS else source_key
    return base.replace("/", "__")


def safe_name(text: str) -> str:
    """``text`` with every character but ASCII letters, digits, ``_`` and ``-`` made ``_``."""
    return _UNSAFE.sub("_", text)


def flat_dir_name(source_key: str) -> str:
    """:func:`gopro_dir_name` made :func:`safe_name` (the BasicSR layouts)."""
    return safe_name(gopro_dir_name(source_key))


def frame_name(meta: dict) -> str:
    """A sample's frame name: ``meta["name"]`` (synthesised samples) or the sharp frame's 6-digit index."""
    return str(meta["name"]) if "name" in meta else f"{int(meta.get('center', 0)):06d}"


def key_hash(key: str, size: int = 4) -> str:
    """``2 * size`` hex digits of blake2b over the key (a stable, platform-independent tag)."""
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=size).hexdigest()


class SequenceNames(dict):
    """Source key -> folder name for a set of keys; a key outside the set gets its plain name.

    Attributes:
        renamed: the keys whose plain name was shared, and so carry a hash.
        flat: BasicSR-safe names (:func:`flat_dir_name`) rather than GOPRO ones.
    """

    def __init__(self, names: dict[str, str], renamed: set[str], flat: bool) -> None:
        super().__init__(names)
        self.renamed = renamed
        self.flat = flat

    def __missing__(self, key: str) -> str:
        return flat_dir_name(key) if self.flat else gopro_dir_name(key)


def sequence_names(keys: Iterable[str], *, flat: bool = False) -> SequenceNames:
    """Unique folder names for ``keys`` (compared case-insensitively), as the module docstring says."""
    base = flat_dir_name if flat else gopro_dir_name
    keys = sorted(set(keys))
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(base(key).casefold(), []).append(key)
    shared = {k for group in groups.values() if len(group) > 1 for k in group}
    for size in (4, 8, 16):  # longer tags only if a tagged name meets another name (not seen in practice)
        names = {k: f"{base(k)}_{key_hash(k, size)}" if k in shared else base(k) for k in keys}
        if len({n.casefold() for n in names.values()}) == len(names):
            break
    return SequenceNames(names, shared, flat)
