"""Sharp background images for local blur synthesis: discovery, probing and grouping.

Any folder is searched recursively for images; REDS ``train_sharp/NNN/NNNNNNNN.png`` works as is. Each
background has a stable key (its path relative to the input folder, prefixed by the folder's name) and a
*group*: the folder it lies in (a REDS sequence). Whole groups go to one split, so consecutive, nearly
identical frames of one sequence never end up in both train and val. When every image lies in one folder,
each image is its own group. Backgrounds are decoded with :func:`blursynth.io.images.read_rgb`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from blursynth.errors import InputError
from blursynth.io.sources import is_image, natural_key


@dataclass(frozen=True)
class Background:
    """One background image: ``key`` (stable, relative), ``path`` (absolute), ``group``, ``size`` (h, w)."""

    key: str
    path: str
    group: str
    size: tuple[int, int]


def _walk_images(root: Path, skip: set[Path]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        found.extend(here / f for f in filenames if is_image(Path(f)) and not f.startswith("."))
    return found


def discover_backgrounds(inputs: tuple[str, ...] | list[str], exclude: tuple[str, ...] | list[str] = ()
                         ) -> tuple[list[Background], list[dict]]:
    """Find and probe (header only) every background image.

    Returns:
        (backgrounds sorted by key, skip records ``{path, reason}`` of images whose header cannot be read).

    Raises:
        InputError: an input does not exist, is a file that is not an image, or a folder without images.
    """
    skip = {Path(p).resolve() for p in exclude}
    entries: list[tuple[str, Path]] = []
    for text in inputs:
        path = Path(text)
        if not path.exists():
            raise InputError(f"{text}: no such file or directory (backgrounds)")
        if path.is_file():
            if not is_image(path):
                raise InputError(f"{text}: not an image file (backgrounds are images or folders of images)")
            entries.append((path.name, path))
            continue
        files = _walk_images(path, skip)
        if not files:
            raise InputError(f"{text}: no images found in this folder (backgrounds)")
        name = path.resolve().name
        entries.extend((f"{name}/{f.relative_to(path).as_posix()}", f) for f in files)
    seen: dict[str, Path] = {}
    for key, p in entries:
        if key in seen and seen[key].resolve() != p.resolve():
            raise InputError(f"{p}: background key {key!r} is also the key of {seen[key]}; pass distinct folders")
        seen[key] = p
    keys = sorted(seen, key=natural_key)
    folders = {str(PurePosixPath(k).parent) for k in keys}
    backgrounds, skipped = [], []
    for key in keys:
        p = seen[key]
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            skipped.append({"path": str(p), "reason": f"unreadable image header ({exc.__class__.__name__})"})
            continue
        group = str(PurePosixPath(key).parent) if len(folders) > 1 else key
        backgrounds.append(Background(key, str(p.resolve()), group, (int(h), int(w))))
    return backgrounds, skipped
