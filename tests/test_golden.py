"""Golden hashes: the bytes the default recipes produce are a contract.

Recorded on main before the restructuring of issue 15 (tool 0.1.0). The restructured code must reproduce
them byte for byte. A later issue that is *asked* to change a recipe's output re-records only that case
and says so in its note; the default ``average`` cases (``quickstart``, ``pan_*``) stay fixed for good.

Each case builds its inputs here (self-contained: fixture helpers elsewhere may change), runs the real CLI
and hashes every complete shard: per dataset its name, dtype, shape and bytes (``arrays``), and the
per-sample meta as canonical JSON (``meta``). HDF5 files themselves are not byte-stable (object headers),
so the arrays are hashed, not the files.

To print the current hashes: ``python tests/test_golden.py [case ...]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from blursynth.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]

GOLDEN = {
    # case: (sha256 of the arrays, sha256 of the meta), recorded 2026-12-06 before issue 15
    "quickstart": (
        "f20ced47c50ca802785852acf18a1ee6d966b9473494269c9950d2f538e27488",
        "d9b38b37c084cd55da567c8bbf7dd33bfce8faad2a763d2177599c5de76009c4",
    ),
    "pan_planned": (
        "f4369a0adfea98dfa2ee96c013c5b33f1ae20a8ca19924f91a8dff1e6d671bc1",
        "8ad32853efb4bc4b9edcd0b8f3caddff89011b307969bf1afc068778eac17324",
    ),
    "pan_overlap_gopro": (
        "083e9d4083d7d8cfb6223fe28ce3055b003294b708e1ee1cde3c3d6f1163522c",
        "8b092f8e4b508219762e4bd4eefe8f8e71d4843f4522621bd2e8d865a416608a",
    ),
    "pan_torch": (
        "f4369a0adfea98dfa2ee96c013c5b33f1ae20a8ca19924f91a8dff1e6d671bc1",
        "8ad32853efb4bc4b9edcd0b8f3caddff89011b307969bf1afc068778eac17324",
    ),
    "wild": (  # re-recorded for issue 16 (WILD revision 2: measurable motion only; DIS ULTRAFAST at scale 0)
        "91e37d2e049ec77e0dd13b72ac343a9580586b3253fb8001ea64fbcb690d1cc4",
        "24859d8705f47af5fed9f5154338587637fe51a4f2a208a5216f8a162b790cdd",
    ),
    # The local cases were re-recorded for issue 18 (REVISIONS["local"] 2): `local` renders a continuous
    # exposure by default (--substeps auto), and objects are keyed by their path relative to the VOC root, so
    # the object split no longer depends on how --voc was spelled (the meta's object `source` is that key, and
    # every sample records substeps, exposure_samples, substep_px, duty_cycle, interpolation "render" and
    # sample_spacing). `local_substeps1` is revision 2 at
    # --substeps 1: the same discrete frames as revision 1 (with --val-fraction 0, where the split plays no part,
    # its arrays are revision 1's bit for bit: tests/test_local_revision.py), another object split here.
    # Revision 1's values (issue 17): local (bb5d6177..., 85dc1a15...), local_torch (13002a2a..., 85dc1a15...).
    "local": (
        "d2fa6094a3954e008b37b220b94dcea570217462e42ae6d39b622874de3c70f2",
        "5910d3cc06b39ede1f3c5d38bd1cff65c238b8eabb6606499c4d3802b6f1efda",
    ),
    "local_torch": (
        "bf335ad0b9f400f672dca3d62ea2b62bcc4593e493cad3e730d28fc486cfc304",
        "5910d3cc06b39ede1f3c5d38bd1cff65c238b8eabb6606499c4d3802b6f1efda",
    ),
    "local_substeps1": (
        "f98c52235fdbacd7c8035e7bf7ba17c2d483b0f8db5c15ce34ae050a9d13cf15",
        "edae2b85131b47468557227811b5a84f1e4c583e9fe0a93a7306d851042b0b12",
    ),
    "pan_gopro_only": (
        "41c8becb4ed15042e8257be470e955a90eebca4f350ac73e818e9ae7e462b842",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
}


# -- inputs ---------------------------------------------------------------------------------------------
def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random RGB texture, (height, width, 3) float32 in [0, 1] (numpy's PCG64 is stable)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for cell in (3, 9):
        small = rng.random((height // cell + 3, width // cell + 3, 3)).astype(np.float32)
        img += cv2.resize(small, (width + 3 * cell, height + 3 * cell), interpolation=cv2.INTER_LINEAR)[
            :height, :width]
    img -= img.min()
    return img / img.max()


def _pan_folder(folder: Path, n: int, height: int, width: int, velocity: float, seed: int) -> Path:
    """A lossless PNG frame folder of a texture panning ``velocity`` px/frame to the right."""
    tex = _texture(height + 8, width + int(velocity * n) + 8, seed)
    folder.mkdir(parents=True)
    for i in range(n):
        m = np.float32([[1, 0, 2 + velocity * i], [0, 1, 2]])
        warped = cv2.warpAffine(tex, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        frame = np.clip(np.rint(warped * 255), 0, 255).astype(np.uint8)
        assert cv2.imwrite(str(folder / f"{i:04d}.png"), frame[..., ::-1])
    return folder


def _voc(root: Path) -> Path:
    """A two-image PASCAL VOC 2012 tree: JPEGs, palette PNGs with a 255 void border, the split file."""
    palette = np.zeros((256, 3), np.uint8)
    palette[1], palette[2], palette[255] = (128, 0, 0), (0, 128, 0), (224, 224, 192)
    names = []
    for k in range(2):
        name = f"2008_00000{k + 1}"
        names.append(name)
        h, w = 72, 96
        img = (_texture(h, w, 30 + k) * 200 + 30).astype(np.uint8)
        yy, xx = np.mgrid[:h, :w]
        obj = np.zeros((h, w), np.uint8)
        disc = (yy - 36) ** 2 + (xx - 30 - 30 * k) ** 2
        obj[disc <= 16**2] = 1
        obj[(yy >= 10) & (yy < 30) & (xx >= 60 - 50 * k) & (xx < 90 - 50 * k) & (obj == 0)] = 2
        inner = cv2.erode(obj, np.ones((3, 3), np.uint8))
        void = (cv2.dilate(obj, np.ones((3, 3), np.uint8)) > 0) & (inner != obj)
        seg = obj.copy()
        seg[void] = 255
        cls = np.where(seg == 255, 255, np.where(seg == 1, 15, np.where(seg == 2, 8, 0))).astype(np.uint8)
        for sub, data in (("SegmentationObject", seg), ("SegmentationClass", cls)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            png = Image.fromarray(data, mode="P")
            png.putpalette(palette.tobytes())
            png.save(root / sub / f"{name}.png")
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split in ("train", "val", "trainval"):
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def _backgrounds(root: Path) -> Path:
    for g in range(2):
        for i in range(2):
            p = root / f"seq{g}" / f"{i:03d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(p), (_texture(48, 64, 50 + 10 * g + i) * 220 + 20).astype(np.uint8))
    return root


def _args(case: str, tmp: Path) -> list[str]:
    """The case's CLI arguments; inputs are written under ``tmp``, the current folder, and passed relative,
    except ``local``'s, passed absolute: since issue 18 its objects are keyed relative to the VOC root, so the
    bytes do not depend on the spelling (before, they were recorded with ``VOC2012`` relative)."""
    out = "out"
    tmp = Path(".")
    if case == "quickstart":  # the README quickstart on the bundled clips
        return ["average", str(ROOT / "examples" / "clips"), out, "--val-fraction", "0.5"]
    if case.startswith("pan_"):
        src = _pan_folder(tmp / "pan", 40, 36, 48, 1.5, seed=3)
        args = ["average", str(src), out, "--fps", "240", "--seed", "5"]
        if case == "pan_planned":
            return args + ["--frames", "9"]
        if case == "pan_overlap_gopro":
            return args + ["--frames", "7-11", "--stride", "4", "--layout", "h5,gopro"]
        if case == "pan_gopro_only":
            return args + ["--frames", "7", "--layout", "gopro", "--val-fraction", "0.5"]
        if case == "pan_torch":
            return args + ["--frames", "9", "--backend", "torch", "--device", "cpu"]
    if case == "wild":
        src = _pan_folder(tmp / "slow", 60, 72, 96, 0.6, seed=4)
        return ["average", str(src), out, "--recipe", "wild", "--fps", "240", "--seed", "2", "--frames", "7-9"]
    if case.startswith("local"):
        backend = ["--backend", "torch", "--device", "cpu", "--layout", "h5,gopro"] if case == "local_torch" else []
        backend += ["--substeps", "1"] if case == "local_substeps1" else []
        here = Path.cwd()
        return ["local", "--voc", str(_voc(here / "VOC2012")), "--bg", str(_backgrounds(tmp / "bg")), out,
                "--num-samples", "6", "--shard-size", "3", "--seed", "7", "--frames", "7-9", "--val-fraction",
                "0.34", "--min-object-area", "50", *backend]
    raise KeyError(case)


def dataset_hashes(out: Path) -> tuple[str, str, int]:
    """(sha256 of every array, sha256 of every sample's meta, samples) over the complete shards of OUT."""
    arrays, meta = hashlib.sha256(), hashlib.sha256()
    samples = 0
    for marker in sorted(out.glob("*/*_stats.json")):
        shard = marker.with_name(marker.name.replace("_stats.json", ".h5"))
        if not shard.exists():
            continue
        with h5py.File(shard, "r") as f:
            for name in sorted(f):
                if name == "meta":
                    for text in f[name].asstr()[()]:
                        meta.update(json.dumps(json.loads(text), sort_keys=True).encode() + b"\n")
                        samples += 1
                    continue
                data = np.ascontiguousarray(f[name][()])
                arrays.update(f"{shard.parent.name}/{shard.name}:{name}:{data.dtype.str}:{data.shape}".encode())
                arrays.update(data.tobytes())
    for path in sorted(p for p in out.rglob("*.png") if p.is_file()):  # GOPRO_Large trees (--layout gopro)
        arrays.update(f"{path.relative_to(out)}:".encode() + _png_pixels(path))
    return arrays.hexdigest(), meta.hexdigest(), samples


def _png_pixels(path: Path) -> bytes:
    """A PNG's decoded pixels (the file bytes depend on the encoder's version, the pixels do not)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return f"{image.dtype.str}:{image.shape}".encode() + image.tobytes()


def tree_hash(root: Path) -> str:
    """sha256 over an export tree: every file's relative path and content (PNG: decoded pixels)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root)}:".encode())
        digest.update(_png_pixels(path) if path.suffix == ".png" else path.read_bytes())
    return digest.hexdigest()


EXPORTS = {
    # (case whose output is exported, layout): sha256 of DEST, recorded with GOLDEN
    # issue 17: the gopro export has no blur/ without a plain mean (it was a link to blur_gamma/), val is test/
    ("pan_overlap_gopro", "gopro"): "10f7b63c5d098028bbb3594dfe7d144394a28e9e4999f0445106076b02646085",
    ("pan_overlap_gopro", "basicsr"): "aa33ec2d23c8013296c38b959d87933c9f9b038e6e949f6a2d496ee9aac83520",
    # issue 18: the local exports re-recorded with the local case (revision 1: 134d6a24..., 6eb9e30a...)
    ("local", "gopro"): "205094ec9681175db2904d2489b2bf4eab2e318c3ba8186ffe5a8f51a09075eb",
    ("local", "basicsr"): "c034ba7fc7497f539c4cffc161b80f58679f05ea7a7bb523068216388b3b093b",
}


def run_case(case: str, tmp: Path) -> tuple[str, str, int]:
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        result = CliRunner().invoke(cli, [*_args(case, tmp), "-q"], catch_exceptions=False)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return dataset_hashes(tmp / "out")


def export_case(case: str, layout: str, tmp: Path) -> str:
    run_case(case, tmp)
    result = CliRunner().invoke(cli, ["export", str(tmp / "out"), str(tmp / "dest"), "--layout", layout, "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return tree_hash(tmp / "dest")


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_output_bytes_are_unchanged(case: str, tmp_path: Path) -> None:
    arrays, meta, samples = run_case(case, tmp_path)
    assert samples > 0 or any((tmp_path / "out").rglob("*.png"))
    assert (arrays, meta) == GOLDEN[case], f"{case}: the output changed ({samples} samples)"


@pytest.mark.parametrize(("case", "layout"), sorted(EXPORTS))
def test_export_bytes_are_unchanged(case: str, layout: str, tmp_path: Path) -> None:
    assert export_case(case, layout, tmp_path) == EXPORTS[case, layout], f"export --layout {layout} of {case}"


if __name__ == "__main__":
    for name in sys.argv[1:] or sorted(GOLDEN):
        with tempfile.TemporaryDirectory() as d:
            a, m, n = run_case(name, Path(d))
            print(f'    "{name}": ("{a}", "{m}"),  # {n} samples')
    for case, layout in sorted(EXPORTS):
        if sys.argv[1:] and case not in sys.argv[1:]:
            continue
        with tempfile.TemporaryDirectory() as d:
            print(f'    ("{case}", "{layout}"): "{export_case(case, layout, Path(d))}",')
