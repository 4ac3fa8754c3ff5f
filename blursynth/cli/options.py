"""Options shared by the commands that write datasets (rasterio-style shared option module)."""

from __future__ import annotations

import click

from blursynth.camera.matrices import CAMERA_MATRICES  # names only: no torch (contract-changes.md)
from blursynth.cli.logs import configure_logging
from blursynth.config import BACKENDS, COMPRESSIONS, CRF_NAMES

seed = click.option("--seed", type=int, default=0, show_default=True,
                    help="Global seed; every random choice derives from (seed, source key).")
val_fraction = click.option("--val-fraction", type=float, default=0.0, show_default=True,
                            help="Fraction of whole sources assigned to the val split.")
shard_size = click.option("--shard-size", type=int, default=100, show_default=True, help="Samples per shard.")
layout = click.option("--layout", default="h5", show_default=True,
                      help="Output layouts: h5, gopro or both (h5,gopro).")
compression = click.option("--compression", type=click.Choice(COMPRESSIONS), default=None,
                           help="HDF5 compression of the image datasets (default: none, fastest).")
crf = click.option("--crf", type=click.Choice(CRF_NAMES), default=None,
                   help="Camera response model; frames are averaged in linear light [default: gamma].")
gamma = click.option("--gamma", type=float, default=None,
                     help="Exponent of the gamma CRF (--crf gamma only) [default: 2.2].")
device = click.option("--device", default="auto", show_default=True,
                      help="auto (cuda when available), cpu, cuda or cuda:N.")
backend = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                       help="Accumulator: stream (CPU running sums) or torch (batched on --device); "
                            "auto = torch on CUDA, stream on CPU.")
batch_frames = click.option("--batch-frames", type=int, default=16, show_default=True,
                            help="Frames uploaded per batch by the torch backend.")
executor = click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Where work units run: local (this machine, see --workers) or ray (a Ray cluster, "
                             "pip install 'blursynth[ray]'). The output bytes are the same.")
workers = click.option("--workers", type=int, default=1, show_default=True,
                       help="Worker processes of --executor local (1: in this process).")
ray_address = click.option("--ray-address", default=None,
                           help="Ray cluster to join: auto (the one `ray start` runs here) or HOST:PORT "
                                "[default: $RAY_ADDRESS, else a private local Ray].")
retries = click.option("--retries", type=int, default=2, show_default=True,
                       help="More attempts for a work unit that raised or whose worker died; after them the "
                            "unit is reported as failed and the run goes on (exit status 1).")
executors = (executor, workers, ray_address, retries)

# -- `local`: the same settings, worded for objects, backgrounds and samples (no source videos there) ----------
local_seed = click.option("--seed", type=int, default=0, show_default=True,
                          help="Global seed; every random choice of a sample derives from (seed, split, sample "
                               "index), so the samples do not depend on --shard-size or --workers.")
local_val_fraction = click.option(
    "--val-fraction", type=float, default=0.0, show_default=True,
    help="Fraction of the samples in the val split. Backgrounds (by folder; by image when they share one) and "
         "objects (by source image) are split too, so val samples use no train background or object.")
local_backend = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                             help="Renderer: stream (OpenCV on the CPU) or torch (batched on --device); auto = "
                                  "torch on CUDA, stream on CPU. The two may differ by 1 LSB on object edges.")
local_device = click.option("--device", default="auto", show_default=True,
                            help="Where the torch renderer runs: auto (cuda when available), cpu, cuda or cuda:N.")

overwrite = click.option("--overwrite", is_flag=True,
                         help="Replace an existing output made with other settings (default: refuse).")


def _set_verbosity(ctx: click.Context, param: click.Parameter, value):
    """-v/-q are accepted after the subcommand too (``blursynth average ... -v``)."""
    if not value:
        return value
    root = ctx.find_root()
    root.ensure_object(dict)
    level = -1 if param.name == "quiet" else int(value)
    root.obj["verbosity"] = level
    configure_logging(level)
    return value


verbose = click.option("-v", "--verbose", count=True, expose_value=False, callback=_set_verbosity,
                       help="More output (-vv for debug).")
quiet = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity,
                     help="Only errors; no progress.")


def apply(*decorators):
    """Apply several option decorators in the order they are listed."""

    def wrap(fn):
        for deco in reversed(decorators):
            fn = deco(fn)
        return fn

    return wrap


# -- the camera pipeline (issue 19), `average` and `local` -----------------------------------------------------
camera = click.option(
    "--camera", type=click.Choice(["none", "rsblur"]), default="none", show_default=True,
    help="Camera pipeline applied to the blurry image (Rim et al. 2022, RSBlur): saturation, inverse ISP, "
         "Poisson-Gaussian noise on the RAW mosaic, ISP (Malvar demosaic), optional JPEG/H.264; re-encoded with "
         "--crf/--gamma; the sharp image stays clean; the draw goes to meta[\"camera\"]. It runs on the CPU "
         "whatever --device, so the bytes do not depend on the device.")
sat_mask = click.option("--sat-mask", is_flag=True, default=False,
                        help="Store sat_mask (n, H, W, 3) uint8: 255 x the fraction of the exposure's samples at "
                             "the maximum code value (always stored with --camera rsblur).")
camera_saturation = click.option("--camera-saturation/--no-camera-saturation", default=True, show_default=True,
                                 help="Saturation stage: blur + alpha x sat_mask, alpha ~ U(0.25, 1.75), clipped.")
camera_noise = click.option("--camera-noise/--no-camera-noise", default=True, show_default=True,
                            help="Poisson-Gaussian noise on the RAW mosaic (RSBlur's RealBlur beta1, beta2).")
camera_noise_scale = click.option("--camera-noise-scale", default=None, metavar="LO,HI",
                                  help="beta1 and beta2 drawn per sample from U(LO x beta, HI x beta) [0.5,1.5].")
camera_matrix = click.option("--camera-matrix", default=None, metavar="NAME[,NAME...]",
                             help="Camera colour matrices one is drawn from per sample, of "
                                  f"{', '.join(CAMERA_MATRICES)} [all of them].")
camera_bayer = click.option("--camera-bayer", default=None, metavar="P[,P...]",
                            help="Bayer patterns one is drawn from per sample: RGGB, BGGR, GRBG, GBRG [all four].")
camera_mosaic = click.option("--camera-mosaic/--no-camera-mosaic", default=True, show_default=True,
                             help="Bayer mosaic and demosaic (off: the noise is added to the camera RGB image).")
camera_jpeg = click.option("--camera-jpeg", default=None, metavar="LO,HI",
                           help="JPEG round trip at a quality drawn per sample from LO..HI (or one value Q) "
                                "[default: no JPEG].")
camera_h264_crf = click.option("--camera-h264-crf", type=int, default=None, metavar="N",
                               help="H.264 encode/decode round trip at CRF N, as REDS' compressed track "
                                    "[default: none].")
cameras = (camera, sat_mask, camera_saturation, camera_noise, camera_noise_scale, camera_matrix, camera_bayer,
           camera_mosaic, camera_jpeg, camera_h264_crf)


def camera_fields(kwargs: dict) -> dict:
    """Take the camera options out of a command's keyword arguments, as ``config.camera.CameraFields`` values."""
    from blursynth.config.camera import parse_names, parse_pair

    return {
        "camera": kwargs.pop("camera"), "sat_mask": kwargs.pop("sat_mask"),
        "camera_saturation": kwargs.pop("camera_saturation"), "camera_noise": kwargs.pop("camera_noise"),
        "camera_noise_scale": parse_pair(kwargs.pop("camera_noise_scale"), "--camera-noise-scale"),
        "camera_matrices": parse_names(kwargs.pop("camera_matrix"), "--camera-matrix"),
        "camera_bayer": parse_names(kwargs.pop("camera_bayer"), "--camera-bayer", upper=True),
        "camera_mosaic": kwargs.pop("camera_mosaic"),
        "camera_jpeg": parse_pair(kwargs.pop("camera_jpeg"), "--camera-jpeg", integer=True),
        "camera_h264_crf": kwargs.pop("camera_h264_crf"),
    }
