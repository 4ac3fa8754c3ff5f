"""The quick check's data: the camera-motion example clip, shipped inside the package.

``blursynth/train/assets/pan_zoom.mp4`` is package data (setup.cfg ``[options.package_data]``), a copy of
``examples/clips/pan_zoom.mp4`` (``examples/make_examples.py`` writes both), so ``blursynth train-check``
without OUT works from an installed wheel, in any folder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from blursynth.errors import InputError

EXAMPLE_NAME = "pan_zoom.mp4"


@contextlib.contextmanager
def example_clip() -> Iterator[Path]:
    """The bundled clip as a file path (extracted to a temporary file if the package is zipped).

    Raises:
        InputError: the installation lacks the clip.
    """
    resource = resources.files("blursynth.train").joinpath("assets").joinpath(EXAMPLE_NAME)
    if not resource.is_file():
        raise InputError(f"blursynth/train/assets/{EXAMPLE_NAME}: the bundled example clip is missing from this "
                         "installation; reinstall blursynth or pass an OUT folder to check")
    with resources.as_file(resource) as path:
        yield Path(path)


def build_example_dataset(out: Path) -> Path:
    """The bundled camera-motion clip averaged with the GOPRO recipe (16 pairs of 320x180) into ``out``.

    Only the global-blur clip: after 300 steps the tiny model gains 1.4-3.9 dB on its held-out windows, but on
    the moving-object clip it still *loses* 1-4 dB (it sharpens the static background too; telling local blur
    from sharp texture is the hard part LODE is about and needs far longer training than a 2-minute check).
    """
    from blursynth.config import AverageConfig
    from blursynth.recipes.average import run_average

    # The clip moves ~1.5 px per frame on purpose (visible blur at N = 7-13): the ghosting advice of
    # `average` is about the user's footage, not about the bundled clip, so it is not printed here.
    quiet = logging.getLogger("blursynth.average")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with example_clip() as clip:
            run_average(AverageConfig(inputs=(str(clip),), out=str(out), recipe="gopro", seed=0, shard_size=100,
                                      device="cpu"))
    finally:
        quiet.setLevel(level)
    return out
