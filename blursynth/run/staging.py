"""Where a run writes: OUT itself, or a staging folder when it replaces a dataset (``--overwrite``).

A new OUT, and a resume (same settings), are written in place, as always. A run that replaces a dataset made
with other settings writes into ``OUT/.staging`` while the old dataset stays whole (and readable) in OUT;
only when the new run has finished with samples and without units in error are the two swapped:

1. the old outputs (manifest first, so OUT never shows the old manifest over new shards; the splits, a GOPRO
   tree's ``test/``, the object bank) move into ``OUT/.previous``, with the reports other commands wrote
   about them (``report/``, ``train_check/``);
2. the new outputs move out of ``.staging`` into OUT, the manifest last (it is the commit marker);
3. ``.previous`` and ``.staging`` are deleted.

Every move is a rename inside OUT (one filesystem), so the swap takes milliseconds whatever the size. A run
that fails, is interrupted or keeps nothing deletes ``.staging`` and leaves OUT as it was. A run killed
outright (SIGKILL, power loss) leaves ``.staging`` behind: rerunning the same ``--overwrite`` command
resumes it, any other run into OUT deletes it. Killed during the swap itself (a few renames), it leaves OUT
without a manifest and the old outputs in ``.previous``; the next run then refuses OUT rather than guess.
Until the swap OUT needs room for both datasets.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from blursynth.errors import OutputError
from blursynth.shards.files import PARTIAL, fsync_path, make_folder, write_failure
from blursynth.shards.manifest import (
    DERIVED,
    MANIFEST,
    PREVIOUS,
    RUN_FILES,
    SPLITS,
    STAGING,
    TREE_FOLDERS,
    compare_job,
    load_manifest,
    remove_outputs,
    remove_partials,
)

log = logging.getLogger("blursynth.run")


@dataclass
class Workspace:
    """The folder a run writes into, and how to finish or undo it.

    Attributes:
        out: the output folder the user named.
        folder: where this run writes: ``out``, or ``out/.staging`` when it replaces a dataset.
        created: the topmost folder created for OUT (removed if the run leaves nothing), or None.
        had_manifest: OUT held a manifest before the run (a resume, or the dataset being replaced).
    """

    out: Path
    folder: Path
    created: Path | None
    had_manifest: bool

    @property
    def staged(self) -> bool:
        """The run replaces a dataset: it writes beside it and swaps at the end."""
        return self.folder != self.out

    def has_finished_shards(self) -> bool:
        return any(self.folder.glob("*/*_stats.json"))

    def discard(self, *, keep_finished: bool = False) -> None:
        """Undo what the run wrote: after a failure, an interrupt, or a run that kept nothing.

        Args:
            keep_finished: in place, keep the finished shards and a resumed run's manifest (a rerun resumes
                them); otherwise remove every output. An OUT this run created goes entirely when it holds no
                finished shard. A staged run is always removed entirely: OUT keeps the dataset it had.
        """
        if self.staged:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        remove_partials(self.out)
        if keep_finished and self.has_finished_shards():
            return
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif not keep_finished or not self.had_manifest:  # an OUT found empty is left empty
            remove_outputs(self.out)

    def commit(self) -> None:
        """Swap a staged run's outputs into OUT (nothing to do for an in-place run).

        Raises:
            OutputError: a rename failed (OUT is then left with the old dataset where possible).
        """
        if not self.staged:
            return
        previous = self.out / PREVIOUS
        shutil.rmtree(previous, ignore_errors=True)
        old = [MANIFEST, *SPLITS, *TREE_FOLDERS, *RUN_FILES, *DERIVED]
        new = [*SPLITS, *TREE_FOLDERS, *RUN_FILES, MANIFEST]
        moved_out: list[str] = []  # old outputs now in .previous
        moved_in: list[str] = []  # new outputs now in OUT
        try:
            previous.mkdir()
            for name in old:
                if os.path.lexists(self.out / name):
                    os.replace(self.out / name, previous / name)
                    moved_out.append(name)
            for name in new:
                if os.path.lexists(self.folder / name):
                    os.replace(self.folder / name, self.out / name)
                    moved_in.append(name)
        except OSError as exc:
            self._restore(previous, moved_out, moved_in)
            raise OutputError(f"{self.out}: cannot move the new dataset in ({write_failure(exc)}); "
                              "the previous dataset is kept") from None
        fsync_path(self.out)
        shutil.rmtree(previous, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _restore(self, previous: Path, moved_out: list[str], moved_in: list[str]) -> None:
        """Best effort after a failed swap: the new outputs go, the old ones come back."""
        for name in moved_in:
            target = self.out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        for name in reversed(moved_out):
            try:
                os.replace(previous / name, self.out / name)
            except OSError:
                log.error("%s: could not move %s back from %s", self.out, name, previous)
        shutil.rmtree(self.folder, ignore_errors=True)


def open_workspace(out: str | os.PathLike, command: str, fingerprint: dict, sources: dict,
                   overwrite: bool) -> Workspace:
    """Check OUT and choose where the run writes (see the module docstring).

    Args:
        out: output folder (created if missing).
        command, fingerprint, sources: the job, compared with OUT's manifest (``{key: hash}`` of the sources).
        overwrite: a dataset made with other settings may be replaced.

    Raises:
        OutputError: OUT is a file, not writable, or a non-empty folder that is not a blursynth output.
        ConfigError: OUT holds a different job and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    created = make_folder(out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: output folder is not writable")
    verdict = compare_job(out, command, fingerprint, sources, overwrite)
    if verdict != "new":  # OUT has its manifest: a .previous is what a swap killed before its end left over
        shutil.rmtree(out / PREVIOUS, ignore_errors=True)
    staging = out / STAGING
    if verdict != "replace":
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed --overwrite run: another job now
        remove_partials(out)
        return Workspace(out, out, created, verdict == "resume")
    if not _resumable(staging, command, fingerprint, sources):
        shutil.rmtree(staging, ignore_errors=True)
    make_folder(staging)
    remove_partials(staging)
    _link_run_files(out, staging)
    return Workspace(out, staging, created, True)


def _resumable(staging: Path, command: str, fingerprint: dict, sources: dict) -> bool:
    """A staging folder left by a killed run of this very job (its finished shards are kept)."""
    if not staging.is_dir():
        return False
    try:
        return load_manifest(staging) is not None and compare_job(staging, command, fingerprint, sources,
                                                                    overwrite=False) == "resume"
    except Exception:  # unreadable or another job: start the staging afresh  # noqa: BLE001
        return False


def _link_run_files(out: Path, staging: Path) -> None:
    """Hard-link OUT's run files (the object bank) into the staging folder, so that a bank built with the
    same settings is reused instead of rebuilt. Safe: a bank that does not match is replaced by a rename
    (``objects.h5.partial``), never written through the link."""
    for name in RUN_FILES:
        source, target = out / name, staging / name
        if source.is_file() and not os.path.lexists(target) and not (staging / (name + PARTIAL)).exists():
            try:
                os.link(source, target)
            except OSError:
                pass  # no hard links here: the bank is rebuilt
