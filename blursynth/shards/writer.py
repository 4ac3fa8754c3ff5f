"""ShardWriter: one shard = one ``NNNNN.h5`` (and/or GOPRO PNG tree entries) + its ``NNNNN_stats.json``.

Commit protocol (img2dataset's stats-last marker, plus atomic files): the HDF5 file is written as
``NNNNN.h5.partial``, flushed, fsynced and renamed; only then is ``NNNNN_stats.json`` written (itself
atomically). A shard is complete if and only if its stats marker exists, so a crash at any point never
leaves a shard that looks complete. See docs/shard-format.md for the contract.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from pathlib import Path

import h5py
import numpy as np

from blursynth import __version__, interrupt
from blursynth.errors import OutputError
from blursynth.sample import Sample
from blursynth.shards.files import PARTIAL, GuardedFile, atomic_write_json, create_h5, fsync_path, write_failure
from blursynth.shards.gopro import BlurFolder, sample_folder, write_gopro_sample
from blursynth.shards.markers import FORMAT, FORMAT_VERSION, ShardMarker, h5_path, stats_path
from blursynth.shards.names import SequenceNames


class ShardWriter:
    """Writes the samples of one shard.

    Args:
        out: output root.
        split: ``train`` or ``val``.
        shard: shard number (5 digits in file names).
        layouts: ``h5`` and/or ``gopro``.
        compression: None, ``lzf`` or ``gzip`` for the HDF5 image datasets.
        capacity: expected number of samples (datasets are resized down if fewer arrive).
        extra_datasets: names of ``Sample.extras`` arrays to store in the HDF5 file as well.
        sequence_names: GOPRO folder names of the run's sources (``shards/names.py``; None: plain names).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        split: str,
        shard: int,
        *,
        layouts: tuple[str, ...] = ("h5",),
        compression: str | None = None,
        capacity: int = 1,
        extra_datasets: tuple[str, ...] = (),
        sequence_names: SequenceNames | None = None,
    ) -> None:
        self.out = Path(out)
        self.split = split
        self.shard = shard
        self.layouts = layouts
        self.compression = compression
        self.capacity = max(1, int(capacity))
        self.extra_datasets = extra_datasets
        self.sequence_names = sequence_names
        self.count = 0
        self.size: tuple[int, int] | None = None
        self._h5: h5py.File | None = None
        self._raw: GuardedFile | None = None
        self._final = h5_path(self.out, split, shard)
        self._partial = self._final.with_name(self._final.name + PARTIAL)
        self._pngs: list[Path] = []
        self._renamed = False  # the HDF5 file has its final name but no marker yet
        try:
            (self.out / split).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.out / split}: cannot create folder ({write_failure(exc)})") from None

    # -- writing ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self):
        """A failed write (disk full, quota, file size limit, I/O error) drops the shard and is reported as
        one :class:`OutputError` naming the shard; nothing is left that could look complete."""
        reason = None
        try:
            yield
        except (OSError, RuntimeError) as exc:  # HDF5 reports some failed writes as RuntimeError
            if isinstance(exc, RuntimeError) and "write failed" not in str(exc) and "flush" not in str(exc):
                raise
            reason = write_failure(exc)
        if reason is not None:
            # Out of the except block: the traceback (and the h5py objects its frames hold) is gone, so the
            # file really closes. Closing HDF5 while a dataset of a failed file is alive can crash.
            gc.collect()
            self.abort()
            raise OutputError(f"{self._final}: cannot write ({reason})")

    def add(self, sample: Sample) -> None:
        """Append one sample. All samples of a shard have one resolution.

        Raises:
            OutputError: the shard cannot be written (it has been dropped).
        """
        with interrupt.deferred(), self._writing():
            self._add(sample)
            if self._raw is not None:
                self._raw.check()
        interrupt.check()  # a Ctrl-C during the write stops here, with the shard intact up to this sample

    def _add(self, sample: Sample) -> None:
        if self.size is None:
            self.size = sample.size
            if "h5" in self.layouts:
                self._open_h5(*self.size, sample)
        elif sample.size != self.size:
            raise ValueError(f"shard {self.shard} holds {self.size} images, got {sample.size}")
        if self._h5 is not None:
            self._write_h5(sample)
        if "gopro" in self.layouts:
            self._write_gopro(sample)
        self.count += 1

    def _open_h5(self, height: int, width: int, sample: Sample) -> None:
        self._partial.unlink(missing_ok=True)
        f, self._raw = create_h5(self._partial)  # write errors are kept from HDF5 (see GuardedFile)
        self._h5 = f
        kw = {"compression": self.compression} if self.compression else {}
        n = self.capacity
        for name in ("blur", "sharp"):
            f.create_dataset(
                name, shape=(n, height, width, 3), maxshape=(None, height, width, 3), dtype=np.uint8,
                chunks=(1, height, width, 3), **kw,
            )
        for name in self.extra_datasets:
            arr = sample.extras[name]
            f.create_dataset(
                name, shape=(n, *arr.shape), maxshape=(None, *arr.shape), dtype=arr.dtype,
                chunks=(1, *arr.shape), **kw,
            )
        f.create_dataset("meta", shape=(n,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"))

    def _write_h5(self, sample: Sample) -> None:
        f = self._h5
        i = self.count
        if i >= f["blur"].shape[0]:
            for name in ("blur", "sharp", "meta", *self.extra_datasets):
                f[name].resize(i + 1, axis=0)
        self._put(f["blur"], i, sample.blur)
        self._put(f["sharp"], i, sample.sharp)
        for name in self.extra_datasets:
            self._put(f[name], i, sample.extras[name])
        f["meta"][i] = json.dumps(sample.meta, sort_keys=True)

    def _put(self, dset: h5py.Dataset, i: int, array: np.ndarray) -> None:
        """Write one image as one chunk. h5py's ``dset[i] = a`` costs ~5.6 ms for 1280x720x3; writing the
        chunk directly costs ~0.6 ms (uncompressed) and ``write_direct`` ~0.8 ms plus the filter."""
        array = np.ascontiguousarray(array, dtype=dset.dtype)
        if array.shape != dset.shape[1:]:
            raise ValueError(f"{dset.name}: expected shape {dset.shape[1:]}, got {array.shape}")
        if self.compression is None:  # the array itself, not array.tobytes(): no 2.7 MB copy (0.25 vs 2.8 ms)
            dset.id.write_direct_chunk((i,) + (0,) * array.ndim, array)
        else:
            dset.write_direct(array[None], dest_sel=np.s_[i : i + 1])

    def _write_gopro(self, sample: Sample) -> None:
        """GOPRO_Large tree (``shards/gopro.py``, the writer ``export --layout gopro`` uses): every array of
        the sample; ``blur/`` is the plain mean of code values when the recipe averaged one
        (``extras["blur_linear"]``), as in GOPRO_Large."""
        folder, frame = sample_folder(self.out, self.split, sample.meta, seq_names=self.sequence_names)
        arrays = {"blur": sample.blur, "sharp": sample.sharp, **sample.extras}
        self._pngs += write_gopro_sample(folder, frame, arrays, blur=BlurFolder.PLAIN)

    # -- committing ------------------------------------------------------------------------------------
    def close(self, stats: dict) -> ShardMarker:
        """Finish the shard: finalise and rename the HDF5 file, then write the stats marker (last).

        Args:
            stats: the marker's other fields, by :class:`ShardMarker` field name (sources, failures,
                windows, final, rejections, resume, skipped).

        Returns:
            The marker as written.

        Raises:
            OutputError: the shard cannot be written (it has been dropped, no marker exists).
        """
        with interrupt.deferred(), self._writing():  # never torn between the HDF5 file and its marker
            marker = self._close(stats)
        interrupt.check()
        return marker

    def _close(self, stats: dict) -> ShardMarker:
        file_name = None
        if self._h5 is not None:
            f = self._h5
            if f["blur"].shape[0] != self.count:
                for name in ("blur", "sharp", "meta", *self.extra_datasets):
                    f[name].resize(self.count, axis=0)
            f.attrs["format"] = FORMAT
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["split"] = self.split
            f.attrs["shard"] = self.shard
            f.attrs["count"] = self.count
            f.attrs["height"], f.attrs["width"] = self.size
            f.attrs["tool_version"] = __version__
            f.flush()
            f.close()
            self._h5 = None
            self._raw.sync_close()
            self._raw = None
            os.replace(self._partial, self._final)
            self._renamed = True
            fsync_path(self._final.parent)
            file_name = self._final.name
        marker = ShardMarker(
            split=self.split, shard=self.shard, file=file_name, layouts=tuple(self.layouts), count=self.count,
            height=self.size[0] if self.size else None, width=self.size[1] if self.size else None, **stats,
        )
        atomic_write_json(stats_path(self.out, self.split, self.shard), marker.to_dict())
        self._pngs.clear()  # committed: abort() must not touch them any more
        self._renamed = False
        return marker

    def abort(self) -> None:
        """Drop everything this writer produced (used on errors and Ctrl-C)."""
        if self._h5 is not None:
            try:
                self._h5.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway
                pass
            self._h5 = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._partial.unlink(missing_ok=True)
        if self._renamed:
            # Renamed, and its marker not written: drop it. Once the marker exists (an interrupt that lands
            # after the marker's rename) the shard is complete and must stay.
            if not stats_path(self.out, self.split, self.shard).exists():
                self._final.unlink(missing_ok=True)
            self._renamed = False
        if not stats_path(self.out, self.split, self.shard).exists():  # committed PNGs stay
            for png in self._pngs:
                png.unlink(missing_ok=True)
        self._pngs.clear()
