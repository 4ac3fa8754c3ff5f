"""`--help` of every command: no formatting artifacts, every option explained, and `local` worded for what it
does (objects, backgrounds, samples) with no option that leaves its configuration unchanged.

The option list is read from the click command objects, so a new option is scanned as soon as it exists.
"""

from __future__ import annotations

import click
import pytest
from cli_helpers import assert_clean_error, invoke

from blursynth.cli.main import cli

COMMANDS = sorted(cli.commands)


def flat(text: str) -> str:
    """Help text with click's line wrapping undone."""
    return " ".join(text.split())


def help_text(*command: str) -> str:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_listed():
    assert {"average", "local", "stats", "inspect", "export", "train-check"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_formatting_artifacts(command):
    text = help_text(*([command] if command else []))
    # click does not %-format help strings: "%%" is printed as is; a show_default string or a tuple default
    # is printed in brackets around parentheses.
    assert "%%" not in text, f"{command or 'blursynth'} --help shows '%%':\n{text}"
    options = text.split("Options:", 1)[1]  # the main docstring has a formula: g((1/M) ...)
    for artifact in ("((", "))", "[default: (", "[default: ["):
        assert artifact not in options, f"{command or 'blursynth'} --help shows {artifact!r}:\n{text}"
    assert "Examples:" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_explained(command):
    text = flat(help_text(command))
    for param in cli.commands[command].params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help and param.help.strip(), f"{command} {param.opts[0]} has no help text"
        assert param.opts[-1] in text


def test_average_flow_stat_help_says_one_percent():
    text = flat(help_text("average"))
    assert "p99 ignores the worst 1% of pixels" in text


def test_stats_span_default_is_rendered_once_and_in_ms():
    text = flat(help_text("stats"))
    assert "[default: 8.333 ms = 2 frames at 240 fps]" in text
    assert text.count("8.333") == 1
    assert abs(8.333 - 1000 * 2 / 240) < 5e-4  # the figure shown is LODE's 2 frames at 240 fps


def test_local_help_speaks_of_objects_backgrounds_and_samples():
    text = flat(help_text("local"))
    # average's wording (sources, keys, recipes, an accumulator) does not describe local
    for wrong in ("whole sources", "source key", "recipe default", "Accumulator"):
        assert wrong not in text, wrong
    assert "(seed, split, sample index)" in text
    assert "Fraction of the samples in the val split" in text
    assert "objects (by source image)" in text
    assert "Renderer: stream" in text
    assert "optional ImageSets/Segmentation/" in text
    # options local does not have: average's --batch-frames, --recipe and the flow options
    for absent in ("--batch-frames", "--recipe", "--flow", "--stride", "--fps"):
        assert f" {absent} " not in f" {text} ", absent


def test_inspect_seed_is_the_draw_of_samples():
    text = flat(help_text("inspect"))
    assert "source key" not in text
    assert "Seed of the draws of the measured samples and of the contact-sheet samples" in text


# -- local: every option reaches the configuration ----------------------------------------------------------
BASE = ["local", "--voc", "VOC2012", "--bg", "backgrounds", "out"]

#: A non-default value of every `local` option, and the LocalConfig field it must change.
LOCAL_VALUES = {
    "--bg": (["--bg", "more"], "backgrounds"),
    "--voc": (["--voc", "other"], "voc"),
    "--voc-split": (["--voc-split", "val"], "voc_split"),
    "--coco": (["--coco", "i.json", "--coco-images", "imgs"], "coco"),
    "--coco-images": (["--coco", "i.json", "--coco-images", "imgs"], "coco_images"),
    "--coco-categories": (["--coco", "i.json", "--coco-images", "imgs", "--coco-categories", "dog"],
                          "coco_categories"),
    "--min-object-area": (["--min-object-area", "10"], "min_object_area"),
    "--num-samples": (["--num-samples", "7"], "num_samples"),
    "--moving-objects": (["--moving-objects", "1"], "moving_objects"),
    "--static-objects": (["--static-objects", "1"], "static_objects"),
    "--object-scale": (["--object-scale", "1.5"], "object_scale"),
    "--frames": (["--frames", "9"], "frames"),
    "--translate": (["--translate", "2:3"], "translate"),
    "--scale": (["--scale", "1:1.01"], "scale"),
    "--rotate": (["--rotate", "0:1"], "rotate"),
    "--crop": (["--crop", "32x48"], "crop"),
    "--substeps": (["--substeps", "8"], "substeps"),  # auto is the default since issue 18
    "--duty-cycle": (["--duty-cycle", "0.5"], "duty_cycle"),
    "--crf": (["--crf", "srgb"], "crf"),
    "--gamma": (["--gamma", "2.4"], "gamma"),
    "--seed": (["--seed", "3"], "seed"),
    "--val-fraction": (["--val-fraction", "0.2"], "val_fraction"),
    "--shard-size": (["--shard-size", "5"], "shard_size"),
    "--layout": (["--layout", "h5,gopro"], "layout"),
    "--compression": (["--compression", "lzf"], "compression"),
    "--device": (["--device", "cpu"], "device"),
    "--backend": (["--backend", "torch"], "backend"),
    "--executor": (["--executor", "ray"], "executor"),
    "--workers": (["--workers", "2"], "workers"),
    "--ray-address": (["--executor", "ray", "--ray-address", "auto"], "ray_address"),
    "--retries": (["--retries", "0"], "retries"),
    "--overwrite": (["--overwrite"], "overwrite"),
    "--camera": (["--camera", "rsblur"], "camera"),  # issue 19: the camera pipeline
    "--sat-mask": (["--sat-mask"], "sat_mask"),
    "--camera-saturation": (["--camera", "rsblur", "--no-camera-saturation"], "camera_saturation"),
    "--camera-noise": (["--camera", "rsblur", "--no-camera-noise"], "camera_noise"),
    "--camera-noise-scale": (["--camera", "rsblur", "--camera-noise-scale", "1,2"], "camera_noise_scale"),
    "--camera-matrix": (["--camera", "rsblur", "--camera-matrix", "a,b"], "camera_matrices"),
    "--camera-bayer": (["--camera", "rsblur", "--camera-bayer", "rggb"], "camera_bayer"),
    "--camera-mosaic": (["--camera", "rsblur", "--no-camera-mosaic"], "camera_mosaic"),
    "--camera-jpeg": (["--camera", "rsblur", "--camera-jpeg", "70,90"], "camera_jpeg"),
    "--camera-h264-crf": (["--camera", "rsblur", "--camera-h264-crf", "23"], "camera_h264_crf"),
}
NO_CONFIG = {"--verbose", "--quiet", "--help"}  # logging and help: not settings of the dataset


def local_config(monkeypatch, *extra: str):
    """The LocalConfig the command builds (run_local is replaced by a stub that records it)."""
    import blursynth.recipes.local as recipe

    seen = []

    def fake_run_local(cfg, progress=None):
        seen.append(cfg)
        raise click.exceptions.Exit(0)

    monkeypatch.setattr(recipe, "run_local", fake_run_local)
    result = invoke(*BASE, *extra)
    assert result.exit_code == 0 and len(seen) == 1, result.output
    return seen[0]


def test_every_local_option_is_listed_here():
    options = {p.opts[-1] if p.opts[-1].startswith("--") else p.opts[0]
               for p in cli.commands["local"].params if isinstance(p, click.Option)}
    assert options - NO_CONFIG == set(LOCAL_VALUES)


@pytest.mark.parametrize("option", sorted(LOCAL_VALUES))
def test_no_local_option_is_inert(monkeypatch, option):
    """Each option changes the field it stands for (a field every run of local reads)."""
    args, field = LOCAL_VALUES[option]
    base = local_config(monkeypatch)
    changed = local_config(monkeypatch, *args)
    assert getattr(changed, field) != getattr(base, field), option


def test_local_gamma_with_another_crf_is_an_error():
    """--gamma does nothing unless the CRF is the gamma curve: refused instead of silently ignored."""
    result = invoke(*BASE, "--crf", "srgb", "--gamma", "2.4")
    assert_clean_error(result, "--gamma")
    assert "--crf srgb" in result.output
