"""The shard format's version and its ``final`` marker field (issue 17; docs/shard-format.md).

* A marker or an HDF5 shard of a newer format version is refused by every reader (listing, the torch dataset,
  ``read_shard``, the validator, ``export``) and by resume, with one message naming the version; an early
  file without a version is read as version 1.
* ``final`` marks the real last shard of a source (and of a ``local`` unit), in a fresh and in a resumed run.

Datasets are made with the real CLI from PNG frame folders (24 frames, 7 per window: 3 windows per source,
shards of 2: each source has a shard of 2 samples then one of 1) and doctored with ``json``/``h5py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from cli_helpers import assert_clean_error, invoke, run_ok
from conftest import pan_frames, write_frame_folder
from scale_data import assert_same_dataset, local_args, local_inputs
from textures import textured_image

from blursynth.data import ShardDataset
from blursynth.errors import InputError
from blursynth.shards.listing import list_shards
from blursynth.shards.markers import FORMAT_VERSION, MarkerError, ShardMarker
from blursynth.shards.reader import read_shard
from blursynth.shards.validate import validate_output

NEWER = FORMAT_VERSION + 2
MESSAGE = f"shard format version {NEWER} is newer than this blursynth reads ({FORMAT_VERSION}); upgrade blursynth"


def markers(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*/*_stats.json"))]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmt")
    for k in range(2):
        write_frame_folder(root / "in" / f"seq{k}", pan_frames(textured_image(40, 90, seed=k), 24, 32, 48, 1.5))
    args = ["average", root / "in", root / "out", "--fps", 240, "--frames", 7, "--shard-size", 2,
            "--val-fraction", 0.5, "--seed", 1, "-q"]
    run_ok(*args)
    return root, args


def copy(made, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(made[0] / "out", out)
    return out


# -- 3. versions -------------------------------------------------------------------------------------------------
def test_newer_marker_version_is_refused_everywhere(made, tmp_path):
    out = copy(made, tmp_path)
    marker = out / "train" / "00000_stats.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps(data | {"version": NEWER}))
    with pytest.raises(MarkerError, match="newer"):
        ShardMarker.from_dict(data | {"version": NEWER})
    bad = list_shards(out).bad_markers
    assert bad == [{"path": str(marker), "reason": MESSAGE, "newer": True}]
    with pytest.raises(InputError, match=r"00000_stats\.json: shard format version"):
        ShardDataset(out)
    assert f"{marker}: {MESSAGE}" in validate_output(out).errors
    line = assert_clean_error(invoke("export", out, tmp_path / "d", "--layout", "basicsr"), "00000_stats.json", 1)
    assert MESSAGE in line and not (tmp_path / "d").exists()
    line = assert_clean_error(invoke("inspect", out, "--report", tmp_path / "rep"), "00000_stats.json", 1)
    assert MESSAGE in line and not (tmp_path / "rep").exists()  # never a report of half the dataset


def test_resume_refuses_to_overwrite_a_newer_marker(made, tmp_path):
    out = copy(made, tmp_path)
    args = [a if a != made[0] / "out" else out for a in made[1]]
    marker = out / "train" / "00000_stats.json"
    text = json.dumps(json.loads(marker.read_text()) | {"version": NEWER})
    marker.write_text(text)
    line = assert_clean_error(invoke(*args), "00000_stats.json")
    assert MESSAGE in line
    assert marker.read_text() == text


def test_newer_shard_attribute_is_refused_everywhere(made, tmp_path):
    out = copy(made, tmp_path)
    shard = out / "val" / "00000.h5"
    with h5py.File(shard, "r+") as f:
        f.attrs["version"] = NEWER
    for call in (lambda: ShardDataset(out), lambda: ShardDataset(shard), lambda: read_shard(shard)):
        with pytest.raises(InputError) as exc:
            call()
        assert str(exc.value.message) == f"{shard}: {MESSAGE}"
    assert any(MESSAGE in e for s in validate_output(out).shards for e in s.errors)
    line = assert_clean_error(invoke("export", out, tmp_path / "d", "--layout", "gopro"), "00000.h5", 1)
    assert MESSAGE in line and not (tmp_path / "d").exists()


def test_newer_manifest_version_is_refused_everywhere(made, tmp_path):
    """The manifest carries its own format version: a newer one is refused by every reader, and a resume
    neither goes ahead nor rewrites it."""
    out = copy(made, tmp_path)
    manifest = out / "manifest.json"
    text = json.dumps(json.loads(manifest.read_text()) | {"version": NEWER})
    manifest.write_text(text)
    message = f"manifest format version {NEWER} is newer than this blursynth reads (1); upgrade blursynth"
    assert f"{manifest}: {message}" in validate_output(out).errors
    for args in (["export", out, tmp_path / "d", "--layout", "basicsr"], ["inspect", out, "--report", tmp_path / "r"],
                 [a if a != made[0] / "out" else out for a in made[1]]):
        line = assert_clean_error(invoke(*args), "manifest.json")
        assert message in line
    assert manifest.read_text() == text and not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


def test_files_without_a_version_are_read_as_version_1(made, tmp_path):
    out = copy(made, tmp_path)
    for marker in out.glob("*/*_stats.json"):
        data = json.loads(marker.read_text())
        del data["version"]
        marker.write_text(json.dumps(data))
    for shard in out.glob("*/*.h5"):
        with h5py.File(shard, "r+") as f:
            del f.attrs["version"]
    ds = ShardDataset(out)
    assert len(ds) == 2 * 3
    assert all(e.marker.version == 1 for e in list_shards(out).shards)
    run_ok("export", out, tmp_path / "d", "--layout", "basicsr", "-q")


@pytest.mark.parametrize("version", [0, "1", True, -1])
def test_a_marker_version_that_is_no_version_number_is_unreadable(version):
    with pytest.raises(MarkerError, match="not a version number") as exc:
        ShardMarker.from_dict({"shard": 0, "version": version})
    assert "newer" not in str(exc.value)


def test_a_marker_of_another_format_is_unreadable():
    with pytest.raises(MarkerError, match="not a blursynth shard marker"):
        ShardMarker.from_dict({"shard": 0, "format": "img2dataset-stats"})


# -- 2. final ------------------------------------------------------------------------------------------------------
def finals(out: Path) -> dict[str, list[bool]]:
    """Per source, the ``final`` field of its shards in shard order."""
    found: dict[str, list[bool]] = {}
    for m in sorted(markers(out), key=lambda m: (m["split"], m["shard"])):
        (key,) = m["sources"]
        found.setdefault(key, []).append(m["final"])
    return found


def test_the_last_shard_of_each_source_is_final(made):
    assert finals(made[0] / "out") == {"seq0": [False, True], "seq1": [False, True]}


@pytest.mark.parametrize("lose", [0, 1])
def test_a_resumed_run_marks_final_alike(made, tmp_path, lose):
    out = copy(made, tmp_path)
    split = next(m["split"] for m in markers(out) if "seq0" in m["sources"])
    shard = sorted(m["shard"] for m in markers(out) if "seq0" in m["sources"])[lose]
    (out / split / f"{shard:05d}_stats.json").unlink()
    (out / split / f"{shard:05d}.h5").unlink()
    run_ok(*[a if a != made[0] / "out" else out for a in made[1]])
    assert finals(out) == {"seq0": [False, True], "seq1": [False, True]}
    assert (out / split / f"{shard:05d}.h5").is_file()
    assert_same_dataset(made[0] / "out", out)


def test_every_local_unit_shard_is_final(tmp_path):
    run_ok(*local_args(local_inputs(tmp_path), tmp_path / "out", samples=5, shard_size=2))
    found = markers(tmp_path / "out")
    assert len(found) == 3 and all(m["final"] for m in found)
