"""Validate an output folder against the format contract (docs/shard-format.md), shard by shard.

Every problem is reported with the file it concerns; a corrupt, truncated or foreign file is a finding, never
a crash. Checks:

* ``manifest.json``: present, a blursynth manifest, ``status: complete``; its shard list and sample total agree
  with the markers;
* per marker (``NNNNN_stats.json``): parses, names an existing ``.h5`` (unless count 0);
* per shard: opens as HDF5; attrs ``format``, ``version``, ``split``, ``shard``, ``count``, ``height``,
  ``width`` agree with the marker and the datasets; ``blur``/``sharp`` uint8 (n, H, W, 3) chunked one image
  per chunk; ``meta`` (n,) strings that parse as JSON objects with ``n_frames``; ``mask`` uint8 (n, H, W);
  ``blur_map`` float16 (n, H, W) finite and >= 0; ``measurable`` uint8 (n, H, W) of 0/1, and ``blur_map`` 0
  wherever it is 0; ``blur_linear`` and ``sat_mask`` uint8 (n, H, W, 3); blur differs from sharp for most
  samples; a marker or shard of a newer format version is reported as such (never checked against this
  version's rules);
* ``.partial`` files and ``.h5`` files without a marker are listed as ignored (never counted).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blursynth.errors import OutputError
from blursynth.shards.listing import ShardListing, list_shards
from blursynth.shards.manifest import load_manifest, manifest_path
from blursynth.shards.markers import FORMAT, ShardMarker
from blursynth.shards.reader import ShardReader, UnreadableShard, UnsupportedShard

#: A shard fails when fewer than this fraction of its samples have blur != sharp.
MIN_DIFFERENT = 0.5


@dataclass
class ShardCheck:
    path: str
    split: str
    shard: int
    count: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"path": self.path, "split": self.split, "shard": self.shard, "count": self.count, "ok": self.ok,
                "errors": self.errors, "warnings": self.warnings}


@dataclass
class Validation:
    out: str
    shards: list[ShardCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # not tied to one shard (manifest, totals)
    ignored: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(s.ok for s in self.shards)

    @property
    def samples(self) -> int:
        return sum(s.count for s in self.shards if s.ok)

    def to_dict(self) -> dict:
        return {"out": self.out, "ok": self.ok, "samples": self.samples, "errors": self.errors,
                "shards": [s.to_dict() for s in self.shards], "ignored": self.ignored}


#: Optional datasets: their dtype and whether they are RGB images ((n, H, W, 3)) rather than maps ((n, H, W)).
EXTRAS = {"mask": (np.uint8, False), "blur_map": (np.float16, False), "measurable": (np.uint8, False),
          "blur_linear": (np.uint8, True), "sat_mask": (np.uint8, True)}


def _check_shard(check: ShardCheck, path: Path, marker: ShardMarker, sample_limit: int) -> None:
    try:
        reader = ShardReader(path).open()
    except UnreadableShard as exc:
        check.errors.append(f"{path}: not a readable HDF5 file ({exc.reason.split(';')[0]})")
        return
    except UnsupportedShard as exc:  # a newer format: said, not checked against rules it may not follow
        check.errors.append(str(exc))
        return
    with reader:
        if _check_attrs(check, reader, marker):
            return
        n = _check_datasets(check, reader, marker)
        if not check.errors:
            _check_pixels(check, reader, n, sample_limit)


def _check_attrs(check: ShardCheck, reader: ShardReader, marker: ShardMarker) -> bool:
    """Format, version and the attributes the marker repeats. Returns True when the file is not a shard."""
    path, attrs = reader.path, reader.attrs
    if attrs.get("format") != FORMAT:
        check.errors.append(f"{path}: format attribute {attrs.get('format')!r}, expected {FORMAT!r}")
        return True
    if attrs.get("version") is None:  # readers take it for version 1; the contract says it is written
        check.errors.append(f"{path}: no version attribute")
    for key, want in (("split", check.split), ("shard", check.shard), ("count", marker.count)):
        got = attrs.get(key)
        got = got.decode() if isinstance(got, bytes) else got
        if got is None or (str(got) if key == "split" else int(got)) != want:
            check.errors.append(f"{path}: attribute {key}={got!r} but the marker says {want!r}")
    return False


def _check_datasets(check: ShardCheck, reader: ShardReader, marker: ShardMarker) -> int:
    """Dtypes, shapes and chunking of every dataset, and the meta strings. Returns the sample count."""
    path, attrs = reader.path, reader.attrs
    for name in ("blur", "sharp", "meta"):
        if name not in reader:
            check.errors.append(f"{path}: missing dataset {name!r}")
    if check.errors:
        return 0
    n = check.count = len(reader)
    h, w = int(attrs.get("height", -1)), int(attrs.get("width", -1))
    if (marker.height, marker.width) != (h, w):
        check.errors.append(f"{path}: {w}x{h} images but the marker says {marker.width}x{marker.height}")
    for name in ("blur", "sharp"):
        d = reader.info(name)
        if d.dtype != np.uint8 or d.shape != (n, h, w, 3):
            check.errors.append(f"{path}: {name} is {d.dtype} {d.shape}, expected uint8 {(n, h, w, 3)}")
        elif d.chunks != (1, h, w, 3):
            check.errors.append(f"{path}: {name} chunks {d.chunks}, expected one image per chunk {(1, h, w, 3)}")
    if n != marker.count:
        check.errors.append(f"{path}: holds {n} samples, the marker says {marker.count}")
    meta_shape = reader.info("meta").shape
    if meta_shape != (n,):
        check.errors.append(f"{path}: meta has shape {meta_shape}, expected ({n},)")
    else:
        _check_meta(check, reader)
    for name in reader.names:
        if name in ("blur", "sharp", "meta"):
            continue
        if name not in EXTRAS:
            check.warnings.append(f"{path}: unknown dataset {name!r}")
            continue
        d = reader.info(name)
        dtype, rgb = EXTRAS[name]
        shape = (n, h, w, 3) if rgb else (n, h, w)
        if d.dtype != dtype or d.shape != shape:
            check.errors.append(f"{path}: {name} is {d.dtype} {d.shape}, expected {np.dtype(dtype)} {shape}")
    return n


def _check_meta(check: ShardCheck, reader: ShardReader) -> None:
    for i, text in enumerate(reader.meta_texts()):
        try:
            meta = json.loads(text)
        except ValueError:
            check.errors.append(f"{reader.path}: meta[{i}] is not valid JSON")
            return
        if not isinstance(meta, dict) or "n_frames" not in meta:
            check.errors.append(f"{reader.path}: meta[{i}] is not an object with n_frames")
            return


def _check_pixels(check: ShardCheck, reader: ShardReader, n: int, sample_limit: int) -> None:
    """Blur differs from sharp for most samples; blur maps are finite and >= 0, measurable masks 0/1 with no
    blur where not measurable (evenly spaced samples)."""
    path = reader.path
    step = max(1, math.ceil(n / sample_limit)) if sample_limit else 1
    different = checked = 0
    for i in range(0, n, step):
        checked += 1
        different += not np.array_equal(reader.array("blur", i), reader.array("sharp", i))
        problem = _blur_map_problem(reader, i)
        if problem:
            check.errors.append(f"{path}: {problem}")
            break
    if checked and different < MIN_DIFFERENT * checked:
        check.errors.append(f"{path}: blur equals sharp in {checked - different} of {checked} checked samples")


def _blur_map_problem(reader: ShardReader, i: int) -> str | None:
    """What is wrong with sample ``i``'s ``blur_map`` and ``measurable`` datasets, if anything."""
    bm = reader.array("blur_map", i).astype(np.float32) if "blur_map" in reader else None
    if bm is not None and not np.isfinite(bm).all():
        return f"blur_map[{i}] has NaN or Inf values"
    if bm is not None and (bm < 0).any():
        return f"blur_map[{i}] has negative blur lengths"
    if "measurable" not in reader:
        return None
    measurable = reader.array("measurable", i)
    if measurable.max(initial=0) > 1:
        return f"measurable[{i}] has values other than 0 and 1 (max {int(measurable.max())})"
    if bm is not None and (bm[measurable == 0] != 0).any():
        return f"blur_map[{i}] is not 0 where measurable[{i}] is 0"
    return None


def validate_output(out: str | os.PathLike, *, sample_limit: int = 200) -> Validation:
    """Check every complete shard of ``out`` and the manifest.

    Args:
        sample_limit: at most this many samples per shard are compared pixel by pixel (evenly spaced).

    Raises:
        OutputError: ``out`` is not a folder.
    """
    out = Path(out)
    if not out.is_dir():
        raise OutputError(f"{out}: {'not a folder' if out.exists() else 'no such folder'}")
    result = Validation(str(out))
    listing = list_shards(out)
    result.ignored = {"partial_files": listing.partials, "orphan_h5": listing.orphans}
    result.errors += [f"{b['path']}: {b['reason']}" for b in listing.bad_markers]
    for entry in listing.shards:
        check = ShardCheck(str(entry.path or f"{out}/{entry.split}/{entry.shard:05d}"), entry.split, entry.shard)
        result.shards.append(check)
        if entry.path is None:
            if entry.count:
                check.errors.append(f"{check.path}: marker counts {entry.count} samples but names no file")
            continue
        if not entry.path.exists():
            check.errors.append(f"{entry.path}: missing (its marker says {entry.count} samples)")
            continue
        try:
            _check_shard(check, entry.path, entry.marker, sample_limit)
        except Exception as exc:  # noqa: BLE001 - any malformed content is a finding about this file
            message = " ".join(str(exc).split()) or type(exc).__name__
            check.errors.append(f"{entry.path}: malformed content ({type(exc).__name__}: {message})")

    mpath = manifest_path(out)
    try:
        manifest = load_manifest(out, writing=False)  # also refuses a manifest of a newer format version
    except OutputError as exc:
        result.errors.append(str(exc))
        return result
    if manifest is None:
        result.errors.append(f"{mpath}: missing")
        return result
    try:
        _check_manifest(result, mpath, manifest, listing)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        result.errors.append(f"{mpath}: malformed manifest ({type(exc).__name__}: {exc})")
    return result


def _check_manifest(result: Validation, mpath: Path, manifest: dict, listing: ShardListing) -> None:
    if manifest.get("status") != "complete":
        result.errors.append(f"{mpath}: status {manifest.get('status')!r} (the run did not finish; rerun it)")
        if manifest.get("status") == "running":  # the shard list and totals are written when the run ends
            return
    listed = {(s.get("split"), s.get("shard")): s.get("count") for s in manifest.get("shards", [])}
    found = {(e.split, e.shard): e.count for e in listing.shards if e.count}
    for key in sorted(set(listed) | set(found), key=str):
        if listed.get(key) != found.get(key):
            result.errors.append(f"{mpath}: shard {key[0]}/{int(key[1]):05d} has {found.get(key)} samples on disk, "
                                 f"{listed.get(key)} in the manifest")
    total = (manifest.get("totals") or {}).get("samples")
    if total is not None and total != sum(found.values()):
        result.errors.append(f"{mpath}: totals.samples {total} != {sum(found.values())} in the shard markers")
