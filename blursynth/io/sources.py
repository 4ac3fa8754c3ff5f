"""Discovery of sources: video files and frame folders.

Each source has a stable *key*: its path relative to the input root it was found under (for an input that
is itself a video or a frame folder, its own name). Keys are used for seeding, split assignment and sample
metadata, so they must not depend on where the dataset lives on disk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from blursynth.errors import InputError

#: Files decoded as videos (PyAV). An animated GIF is a video too: one source, its frame delays giving the rate.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .avi .webm .mts .m2ts .ts .mpg .mpeg .wmv .flv .3gp .y4m .nut .mxf .ogv .gif".split()
)
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .tif .tiff .bmp .webp .ppm .pgm".split())


@dataclass(frozen=True)
class Source:
    """One sequence of frames.

    Attributes:
        key: stable identifier (POSIX path relative to the input root).
        path: absolute path of the video file or frame folder.
        kind: ``video`` or ``frames``.
    """

    key: str
    path: str
    kind: str


def natural_key(text: str) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural sort order."""
    names = [e.name for e in os.scandir(folder) if e.is_file() and is_image(Path(e.name))]
    return [folder / n for n in sorted(names, key=natural_key)]


def discover_sources(inputs: list[str] | tuple[str, ...], exclude: list[str] | tuple[str, ...] = ()) -> list[Source]:
    """Expand INPUT arguments into sources, sorted by key.

    A video file is one source. A folder is searched recursively: every video file in it (animated GIFs
    included) is a source, and every folder that directly contains images is a frame-folder source
    (``GOPRO_Large_all/<seq>/*.png``, REDS ``train_sharp/<seq>/*.png``).

    Raises:
        InputError: an input does not exist, is not a video, image folder or folder of those, or two inputs
            yield the same key.

    ``exclude`` lists folders never searched (the output folder, so that a GOPRO tree written inside an
    input folder is not read back as frame folders).
    """
    skip = {Path(p).resolve() for p in exclude}
    found: dict[str, Source] = {}
    for text in inputs:
        path = Path(text)
        if not path.exists():
            raise InputError(f"{text}: no such file or directory")
        if path.is_file():
            if is_image(path):
                raise InputError(f"{text}: is an image; pass the folder that holds the frame sequence")
            # Any file given explicitly is treated as a video; a non-video fails when it is probed.
            new = [Source(path.name, str(path.resolve()), "video")]
        else:
            new = _walk(path, skip)
            if not new:
                raise InputError(f"{text}: no videos (.mp4, .mkv, .mov, .gif, ...) or image sequences (folders of "
                                 ".png, .jpg, ...) found in this folder")
        for src in new:
            if src.key in found and found[src.key].path != src.path:
                raise InputError(
                    f"{src.path}: source key {src.key!r} is also the key of {found[src.key].path}; "
                    "pass the common parent folder instead"
                )
            found[src.key] = src
    return sorted(found.values(), key=lambda s: natural_key(s.key))


def _walk(root: Path, skip: set[Path]) -> list[Source]:
    sources = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip
        )
        rel = here.relative_to(root).as_posix()
        if any(is_image(Path(f)) for f in filenames):
            key = root.resolve().name if rel == "." else rel
            sources.append(Source(key, str(here.resolve()), "frames"))
        for f in sorted(filenames, key=natural_key):
            if is_video(Path(f)) and not f.startswith("."):
                key = f if rel == "." else f"{rel}/{f}"
                sources.append(Source(key, str((here / f).resolve()), "video"))
    return sources
