"""The fingerprint holds exactly the settings that change the output, checked by behaviour.

Every field of a dataset config is either declared part of the fingerprint (``output_field``) or listed in
``VARIANTS`` here with another value for it; the test runs a tiny job with the defaults and once per listed
field with only that field changed, and asserts the output arrays and meta do not change. A new field that
is neither fingerprinted nor listed fails ``test_every_field_is_classified``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest
from scale_data import local_inputs, video_inputs
from test_golden import dataset_hashes

from blursynth.config import REVISIONS, AverageConfig, LocalConfig
from blursynth.errors import ConfigError
from blursynth.recipes.average import run_average
from blursynth.recipes.local import run_local
from blursynth.shards.manifest import load_manifest

HAS_RAY = importlib.util.find_spec("ray") is not None

# field -> a value that must not change the output (a callable gets the run's root folder)
VARIANTS = {
    AverageConfig: {
        "inputs": lambda root: (str(shutil.copytree(root / "videos", root / "elsewhere" / "videos")),),
        "out": lambda root: str(root / "other_out"),
        "batch_frames": 3,
        "device": "cpu",
        "backend": "torch",
        "overwrite": True,
        "executor": "ray",
        "workers": 2,
        "ray_address": None,  # only meaningful with a cluster to join; executor=ray covers the Ray path
        "retries": 0,
    },
    LocalConfig: {
        "backgrounds": lambda root: (str(shutil.copytree(root / "bg", root / "elsewhere" / "bg")),),
        "out": lambda root: str(root / "other_out"),
        "device": "cpu",
        "overwrite": True,
        "executor": "ray",
        "workers": 2,
        "ray_address": None,
        "retries": 0,
    },
}


def _base(cls, root: Path):
    if cls is AverageConfig:
        return AverageConfig(inputs=(str(video_inputs(root, count=2, frames=17)),), out=str(root / "out"),
                             frames=(7, 7), shard_size=1, val_fraction=0.34, backend="stream")
    inputs = local_inputs(root)
    return LocalConfig(backgrounds=(str(inputs["bg"]),), out=str(root / "out"), voc=str(inputs["voc"]),
                       num_samples=4, shard_size=2, seed=7, frames=(7, 9), backend="stream")


def _run(cfg) -> tuple[str, str, int]:
    (run_average if isinstance(cfg, AverageConfig) else run_local)(cfg)
    return dataset_hashes(Path(cfg.out))


@pytest.mark.parametrize("cls", [AverageConfig, LocalConfig])
def test_every_field_is_classified(cls):
    fingerprinted = {f.name for f in dataclasses.fields(cls) if f.metadata.get("fingerprint")}
    others = {f.name for f in dataclasses.fields(cls)} - fingerprinted
    assert others == set(VARIANTS[cls]), "declare a new field with output_field() or list it in VARIANTS"
    assert "seed" in fingerprinted and "frames" in fingerprinted and "crf" in fingerprinted


@pytest.mark.parametrize("cls", [AverageConfig, LocalConfig])
def test_fields_outside_the_fingerprint_do_not_change_the_output(cls, tmp_path):
    base = _base(cls, tmp_path)
    expected = _run(base)
    assert expected[2] > 0
    for name, value in VARIANTS[cls].items():
        if value is None or (name == "executor" and not HAS_RAY):
            continue
        if name == "overwrite":  # overwrite a folder that holds another job's output
            other = dataclasses.replace(base, out=str(tmp_path / "ow"), seed=base.seed + 1)
            _run(other)
            variant = dataclasses.replace(base, out=other.out, overwrite=True)
        else:
            value = value(tmp_path) if callable(value) else value
            out = value if name == "out" else str(tmp_path / f"out_{name}")
            variant = dataclasses.replace(base, **{name: value, "out": out})
        assert variant.fingerprint() == base.fingerprint()
        assert _run(variant) == expected, f"{cls.__name__}.{name}={value!r} changed the output"


def test_the_fingerprint_carries_the_recipe_revision(tmp_path):
    cfg = _base(AverageConfig, tmp_path)
    assert cfg.fingerprint()["revision"] == REVISIONS["gopro"]
    assert dataclasses.replace(cfg, recipe="wild", flow="dis").fingerprint()["revision"] == REVISIONS["wild"]


def test_a_resume_after_a_revision_change_is_refused(tmp_path, monkeypatch):
    cfg = _base(AverageConfig, tmp_path)
    _run(cfg)
    monkeypatch.setitem(REVISIONS, "gopro", REVISIONS["gopro"] + 1)
    with pytest.raises(ConfigError, match="revision=1 vs 2"):
        run_average(cfg)
    _run(dataclasses.replace(cfg, overwrite=True))  # --overwrite restarts it under the new rules
    assert load_manifest(cfg.out)["fingerprint"]["revision"] == 2


# The fingerprint keys of outputs written before issue 15 (tool 0.1.0 at 79f7049).
KEYS_BEFORE_ISSUE_15 = {
    AverageConfig: {"recipe", "frames", "stride", "max_per_source", "crf", "gamma", "seed", "val_fraction",
                    "shard_size", "layout", "compression", "fps", "downsample", "flow", "flow_threshold",
                    "flow_stat", "max_match_error", "max_step_px", "blur_map", "raft_model", "raft_weights"},
    LocalConfig: {"backend", "voc", "voc_split", "coco", "coco_images", "coco_categories", "num_samples",
                  "moving_objects", "static_objects", "object_scale", "min_object_area", "frames", "translate",
                  "scale", "rotate", "crop", "crf", "gamma", "seed", "val_fraction", "shard_size", "layout",
                  "compression"},
}


@pytest.mark.parametrize("cls", [AverageConfig, LocalConfig])
def test_an_output_from_before_revisions_resumes(cls, tmp_path):
    """A default run's output from before issue 15 (no ``revision``, none of the options added since) is
    resumed, not refused: options added later are left out of the fingerprint at their defaults. Except where
    the defaults' bytes changed on purpose: ``local`` revision 2 (issue 18, continuous exposure by default)
    refuses a revision-1 output."""
    import json

    cfg = _base(cls, tmp_path)
    expected = _run(cfg)
    path = Path(cfg.out) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["fingerprint"] = {k: v for k, v in manifest["fingerprint"].items() if k in KEYS_BEFORE_ISSUE_15[cls]}
    path.write_text(json.dumps(manifest))
    if cls is LocalConfig:
        with pytest.raises(ConfigError, match="revision=1 vs 2"):
            _run(cfg)
        return
    assert _run(cfg) == expected
    assert json.loads(path.read_text())["status"] == "complete"


def test_a_later_option_at_its_default_stays_out_of_the_fingerprint(tmp_path):
    cfg = _base(AverageConfig, tmp_path)
    assert "drop_static" not in cfg.fingerprint()
    assert dataclasses.replace(cfg, drop_static=True).fingerprint()["drop_static"] is True


def test_a_flow_run_made_before_the_measurable_motion_rule_is_refused(tmp_path):
    """``--max-step-px`` runs of gopro changed with the flow measurements (issue 16): an output made before
    (no ``flow_revision`` recorded) must not be resumed under the new rule; a run without flow still resumes."""
    import json

    with_flow = dataclasses.replace(_base(AverageConfig, tmp_path), flow="dis", max_step_px=5.0,
                                    max_match_error=12.0)
    assert with_flow.fingerprint()["flow_revision"] == REVISIONS["flow"]
    assert "flow_revision" not in _base(AverageConfig, tmp_path / "plain").fingerprint()
    _run(with_flow)
    path = Path(with_flow.out) / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["fingerprint"]["flow_revision"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="flow_revision=None vs 2"):
        run_average(with_flow)
