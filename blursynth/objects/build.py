"""Building the object bank of a ``local`` run: ``OUT/objects.h5`` from VOC 2012 and/or COCO, once.

The driver calls :func:`build_store` after OUT is prepared; a store built with the same bank settings (its
fingerprint attribute) is reused, so a resumed run does not read VOC/COCO again. Workers never build: they
open the file (``objects/splits.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from blursynth.objects.store import ObjectStore, store_matches, write_store

if TYPE_CHECKING:  # only its fields are read
    from blursynth.config import LocalConfig

log = logging.getLogger("blursynth.objects")


def store_fingerprint(cfg: LocalConfig) -> dict:
    """The settings that decide the bank's content: the datasets, the COCO categories and ``min_object_area``."""
    return {"voc": cfg.voc, "voc_split": cfg.voc_split, "coco": cfg.coco, "coco_images": cfg.coco_images,
            "coco_categories": list(cfg.coco_categories) if cfg.coco_categories else None,
            "min_object_area": cfg.min_object_area}


def build_store(cfg: LocalConfig, path: Path, section: dict | None = None) -> None:
    """Write ``OUT/objects.h5`` unless a store built with the same settings is already there.

    Args:
        cfg: the run's configuration (its VOC/COCO settings).
        path: the store file.
        section: filled with the bank's summary for the manifest (count, classes, skips by kind).

    Raises:
        InputError: not a single usable object.
        OutputError: the store cannot be written.
    """
    fingerprint = store_fingerprint(cfg)
    if path.exists() and store_matches(path, fingerprint):
        log.info("reusing the object bank %s", path)
    else:
        _write_bank(cfg, path, fingerprint)
    if section is not None:
        store = ObjectStore(path)
        section.update(count=len(store), classes=store.class_counts(), skipped=store.skip_counts())


def _write_bank(cfg: LocalConfig, path: Path, fingerprint: dict) -> None:
    sources = []
    if cfg.voc is not None:
        from blursynth.objects import voc

        sources.append((cfg.voc, voc.iter_voc(cfg.voc, cfg.voc_split)))
    if cfg.coco is not None:
        from blursynth.objects import coco  # needs pycocotools, an optional dependency: import on use

        sources.append((cfg.coco, coco.iter_coco(cfg.coco, cfg.coco_images, categories=cfg.coco_categories)))
    log.info("building the object bank from %s", " and ".join(name for name, _ in sources))
    count, skipped = write_store(path, sources, min_area=cfg.min_object_area, fingerprint=fingerprint)
    log.info("object bank: %d objects, %d skipped", count, len(skipped))
