"""Camera response functions: float64 round trips, the fast 8-bit forms (numpy and torch), integer inverse
tables and the exact rounding forward pass of window sums.

Expectations are computed from the textbook formulas written out here, not from blursynth's own functions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from crf_oracle import CRFS, ref_decode, ref_encode

from blursynth.errors import ConfigError
from blursynth.ops.crf import CRF, create_crf, encode_sum, linear_table

INT32_MAX = 2**31 - 1
CRF_NAMES = ("gamma", "srgb", "linear")


def srgb_decode(c: float) -> float:
    """IEC 61966-2-1 electro-optical transfer function (encoded -> linear), scalar, written independently."""
    if c <= 0.04045:
        return c / 12.92
    return ((c + 0.055) / 1.055) ** 2.4


def srgb_encode(y: float) -> float:
    """IEC 61966-2-1 inverse (linear -> encoded), scalar."""
    if y <= 0.0031308:
        return 12.92 * y
    return 1.055 * y ** (1 / 2.4) - 0.055


def reference_decode(name: str, c: float) -> float:
    if name == "gamma":
        return c**2.2
    if name == "srgb":
        return srgb_decode(c)
    return c


def all_codes_image() -> np.ndarray:
    """A (16, 16, 3) uint8 image holding every code value 0..255 in every channel (shifted per channel)."""
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([codes, np.roll(codes, 7), np.roll(codes, 101)], axis=-1)


# -- float64 round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CRF_NAMES)
def test_round_trip_is_identity_in_float64(name):
    crf = create_crf(name)
    x = np.linspace(0.0, 1.0, 10001)
    np.testing.assert_allclose(crf.from_linear(crf.to_linear(x)), x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(crf.to_linear(crf.from_linear(x)), x, rtol=0, atol=1e-12)
    assert crf.to_linear(np.array([0.0]))[0] == 0.0
    assert crf.to_linear(np.array([1.0]))[0] == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", CRF_NAMES)
def test_to_linear_matches_reference_formula(name):
    crf = create_crf(name)
    x = np.linspace(0.0, 1.0, 1001)
    expected = np.array([reference_decode(name, float(c)) for c in x])
    np.testing.assert_allclose(crf.to_linear(x), expected, rtol=1e-13, atol=1e-15)


def test_gamma_default_is_2_2_and_custom_gamma_is_used():
    assert create_crf("gamma").gamma == 2.2
    crf = create_crf("gamma", 1.8)
    assert crf.to_linear(np.array([0.5]))[0] == pytest.approx(0.5**1.8, rel=1e-14)
    assert crf.from_linear(np.array([0.25]))[0] == pytest.approx(0.25 ** (1 / 1.8), rel=1e-14)


def test_srgb_matches_standard_formula_both_ways():
    crf = create_crf("srgb")
    codes = np.arange(256) / 255.0
    decoded = np.array([srgb_decode(float(c)) for c in codes])
    np.testing.assert_allclose(crf.to_linear(codes), decoded, rtol=1e-13, atol=1e-16)
    lin = np.linspace(0.0, 1.0, 2001)
    encoded = np.array([srgb_encode(float(y)) for y in lin])
    np.testing.assert_allclose(crf.from_linear(lin), encoded, rtol=1e-13, atol=1e-16)
    # Spot values of the standard: 0.5 encodes to ~0.7354, code 128/255 decodes to ~0.2158.
    assert crf.from_linear(np.array([0.5]))[0] == pytest.approx(0.735356983, abs=1e-8)
    assert crf.to_linear(np.array([128 / 255]))[0] == pytest.approx(0.215860500, abs=1e-8)
    # The torch forward agrees with the formula in float32.
    got = crf.from_linear_torch(torch.from_numpy(lin.astype(np.float32))).double().numpy()
    np.testing.assert_allclose(got, encoded, rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", CRF_NAMES)
def test_torch_forward_matches_float64(name):
    crf = create_crf(name)
    y = np.linspace(0.0, 1.0, 4097)
    got = crf.from_linear_torch(torch.from_numpy(y.astype(np.float32))).double().numpy()
    np.testing.assert_allclose(got, crf.from_linear(y), rtol=0, atol=2e-6)


# -- fast 8-bit forms: decode / encode and their torch twins ----------------------------------------------
def fast_encodings(crf: CRF, y: np.ndarray, device: str) -> dict[str, np.ndarray]:
    """``crf.encode`` and ``crf.encode_torch`` (on ``device``) of the same float32 values."""
    y = np.asarray(y, dtype=np.float32)
    torch_out = crf.encode_torch(torch.from_numpy(y).to(device))
    assert torch_out.dtype == torch.uint8
    return {"numpy": crf.encode(y), "torch": torch_out.cpu().numpy()}


@pytest.mark.parametrize("key", CRFS)
def test_decode_is_the_float32_table_of_every_code(key, device):
    crf = CRFS[key]
    expected = ref_decode(key, np.arange(256) / 255.0).astype(np.float32)
    table = linear_table(crf)
    assert table.shape == (256,) and table.dtype == np.float32 and not table.flags.writeable
    np.testing.assert_array_equal(table, expected)
    img = np.random.default_rng(1).integers(0, 256, (17, 19, 3)).astype(np.uint8)
    lin = crf.decode(img)
    assert lin.shape == img.shape and lin.dtype == np.float32
    np.testing.assert_array_equal(lin, expected[img])
    on_device = crf.decode_torch(torch.from_numpy(img).to(device))
    assert on_device.dtype == torch.float32
    np.testing.assert_array_equal(on_device.cpu().numpy(), expected[img])


@pytest.mark.parametrize("key", CRFS)
def test_encode_rounds_instead_of_truncating(key, device):
    k = np.array([0, 1, 2, 10, 63, 100, 128, 200, 253, 254], dtype=np.float64)
    low = ref_decode(key, (k + 0.4) / 255.0).astype(np.float32)
    high = ref_decode(key, (k + 0.6) / 255.0).astype(np.float32)
    y = np.stack([low, high])[..., None].repeat(3, axis=-1)  # (2, 10, 3)
    for kind, out in fast_encodings(CRFS[key], y, device).items():
        assert out.dtype == np.uint8 and out.shape == y.shape, kind
        np.testing.assert_array_equal(out[0, :, 0], k.astype(np.uint8), err_msg=kind)
        np.testing.assert_array_equal(out[1, :, 0], (k + 1).astype(np.uint8), err_msg=kind)


@pytest.mark.parametrize("key", CRFS)
def test_encode_clips_to_zero_and_255(key, device):
    # Regression: the linear branch used to hand y to cv2.convertScaleAbs, which takes |255 y| (-0.5 -> 128).
    y = np.float32([[0.0, 1.0, 1.0 + 1e-6, 1.5, 7.0, -1e-3, -0.01, -0.5, -1.0]])
    for kind, out in fast_encodings(CRFS[key], y, device).items():
        np.testing.assert_array_equal(out, [[0, 255, 255, 255, 255, 0, 0, 0, 0]], err_msg=kind)


@pytest.mark.parametrize("key", CRFS)
def test_encode_matches_float64_reference(key, device):
    y = np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)
    exact = 255.0 * ref_encode(key, y.astype(np.float64))
    safe = np.abs(exact - np.floor(exact) - 0.5) > 1e-3  # away from a rounding boundary
    assert safe.mean() > 0.99
    for kind, out in fast_encodings(CRFS[key], y, device).items():
        np.testing.assert_array_equal(out[safe], np.rint(exact[safe]).astype(np.uint8), err_msg=kind)


@pytest.mark.parametrize("key", CRFS)
def test_encode_of_mean_of_identical_frames_is_exact(key, device):
    """The exactness contract of compositing: a pixel no object covers is bit-identical after averaging."""
    crf = CRFS[key]
    codes = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)
    lin = crf.decode(codes)
    assert crf.encode(lin).tolist() == codes.tolist()
    for n in range(3, 24, 2):
        nf = np.float32(n)
        acc = np.zeros_like(lin)
        for _ in range(n):
            acc += lin
        for y in ((lin * nf) / nf, acc / nf):
            for kind, out in fast_encodings(crf, y, device).items():
                assert np.flatnonzero(out[0, :, 0] != codes[0, :, 0]).size == 0, (kind, n)
        frames = torch.from_numpy(lin).to(device).unsqueeze(0).repeat(n, 1, 1, 1)
        assert torch.equal(crf.encode_torch(frames.mean(dim=0)).cpu(), torch.from_numpy(codes)), n


@pytest.mark.parametrize("name", CRF_NAMES)
def test_encode_of_scaled_integer_sums_is_within_one_code(name):
    """The float estimate inside encode_sum: integer sums with ``scale = 1 / (n q)``, never off by more than
    one code (the exact integer correction then fixes it), and exact away from a rounding boundary."""
    crf = create_crf(name)
    n = 9
    _, q = crf.inverse_lut(8, 13)
    sums = np.random.default_rng(5).integers(0, n * q + 1, size=(40, 150), dtype=np.int64).astype(np.int32)
    sums[0, :3] = (0, n * q, 1)
    exact = 255.0 * ref_encode("gamma2.2" if name == "gamma" else name, sums / (n * q))
    out = crf.encode(sums, 1.0 / (n * q)).astype(np.float64)
    assert np.abs(out - exact).max() <= 1.0
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-3
    np.testing.assert_array_equal(out[clear], np.rint(exact[clear]))


def test_encode_keeps_its_work_arrays_and_the_input():
    crf, scratch = create_crf("srgb"), {}
    y = np.random.default_rng(4).random((8, 9, 3)).astype(np.float32) * 1.2 - 0.1
    before = y.copy()
    first = crf.encode(y, scratch=scratch).copy()
    arrays = {k: id(v) for k, v in scratch.items()}
    np.testing.assert_array_equal(crf.encode(y, scratch=scratch), first)
    assert {k: id(v) for k, v in scratch.items()} == arrays  # reused, not reallocated
    np.testing.assert_array_equal(y, before)
    t = torch.from_numpy(y)
    crf.encode_torch(t)
    crf.from_linear_torch(t)
    np.testing.assert_array_equal(t.numpy(), before)


# -- inverse lookup tables ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CRF_NAMES)
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("n_max", [1, 7, 13, 255])
def test_inverse_lut_shape_ends_monotone_and_fits_int32(name, bit_depth, n_max):
    crf = create_crf(name)
    lut, q = crf.inverse_lut(bit_depth, n_max)
    vmax = (1 << bit_depth) - 1
    assert lut.dtype == np.int32
    assert lut.shape == (vmax + 1,)
    assert lut[0] == 0
    assert lut[vmax] == q
    assert q >= vmax
    assert q * n_max <= INT32_MAX
    assert int(lut.astype(np.int64).max()) * n_max <= INT32_MAX  # n_max frames of white sum within int32
    diffs = np.diff(lut.astype(np.int64))
    assert (diffs >= 0).all()
    if bit_depth == 8:
        assert (diffs > 0).all(), "every 8-bit code must map to a distinct linear value"
    # Each entry is round(g^-1(v / vmax) * q), checked against the independent formula on a sample of codes.
    for v in np.linspace(0, vmax, 97).astype(int):
        assert lut[v] == round(reference_decode(name, v / vmax) * q)


def test_linear_lut_is_the_identity():
    for bits in (8, 16):
        lut, q = create_crf("linear").inverse_lut(bits, 13)
        assert q == (1 << bits) - 1
        np.testing.assert_array_equal(lut, np.arange(1 << bits))


def test_gamma_full_scale_uses_the_int32_headroom():
    lut, q = create_crf("gamma").inverse_lut(8, 13)
    assert q == INT32_MAX // 13
    assert (q + 1) * 13 > INT32_MAX


def test_full_scale_rejects_impossible_windows():
    with pytest.raises(ConfigError):
        create_crf("gamma").inverse_lut(8, 0)
    # 16-bit codes need q >= 65535, so more than INT32_MAX // 65535 frames cannot be summed in int32.
    with pytest.raises(ConfigError):
        create_crf("gamma").inverse_lut(16, INT32_MAX // 65535 + 1)


def test_create_crf_validates():
    with pytest.raises(ConfigError):
        create_crf("log")
    with pytest.raises(ConfigError):
        create_crf("gamma", 0.0)
    with pytest.raises(ConfigError):
        create_crf("gamma", -2.2)
    assert create_crf("srgb") == CRF("srgb")


def encode(sums: np.ndarray, n: int, q: int, crf: CRF, kind: str) -> np.ndarray:
    """encode_sum through the CPU path (numpy int32) or the torch path (int32/int64 tensor)."""
    if kind == "numpy":
        out = encode_sum(np.ascontiguousarray(sums, dtype=np.int32), n, q, crf)
        assert isinstance(out, np.ndarray)
        return out
    dtype = torch.int32 if kind == "torch32" else torch.int64
    out = encode_sum(torch.from_numpy(np.asarray(sums, dtype=np.int64)).to(dtype), n, q, crf)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    return out.numpy()


def reference_encode(name: str, sums: np.ndarray, n: int, q: int) -> np.ndarray:
    """Exact value 255 * g(S / (n q)) in float64, written independently of blursynth."""
    y = np.asarray(sums, dtype=np.float64) / (n * q)
    if name == "gamma":
        return 255 * y ** (1 / 2.2)
    if name == "srgb":
        return 255 * np.array([srgb_encode(float(v)) for v in y.ravel()]).reshape(y.shape)
    return 255 * y


# -- encode_sum ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CRF_NAMES)
@pytest.mark.parametrize("n", [1, 7])
@pytest.mark.parametrize("kind", ["numpy", "torch32", "torch64"])
def test_encode_sum_of_identical_frames_returns_the_frame(name, n, kind):
    crf = create_crf(name)
    lut, q = crf.inverse_lut(8, max(n, 13))
    frame = all_codes_image()
    sums = lut.astype(np.int64)[frame] * n
    out = encode(sums, n, q, crf, kind)
    assert out.dtype == np.uint8
    assert out.shape == frame.shape
    np.testing.assert_array_equal(out, frame)


def test_encode_sum_keeps_batch_dimensions():
    crf = create_crf("gamma")
    lut, q = crf.inverse_lut(8, 9)
    frames = np.stack([all_codes_image(), all_codes_image()[::-1]])
    for kind in ("numpy", "torch64"):
        np.testing.assert_array_equal(encode(lut.astype(np.int64)[frames] * 9, 9, q, crf, kind), frames)


@pytest.mark.parametrize("kind", ["numpy", "torch64"])
def test_encode_sum_rounds_linear(kind):
    # Linear, 8-bit: q = 255, so the encoded value is exactly sum / n.
    crf = create_crf("linear")
    _, q = crf.inverse_lut(8, 5)
    assert q == 255
    sums = np.array([[[53, 52, 48]]])  # 10.6, 10.4, 9.6
    np.testing.assert_array_equal(encode(sums, 5, q, crf, kind), [[[11, 10, 10]]])


@pytest.mark.parametrize("name", ["gamma", "srgb"])
@pytest.mark.parametrize("kind", ["numpy", "torch64"])
def test_encode_sum_rounds_instead_of_truncating(name, kind):
    """Sums whose exact encoded value is k + f must give k for f < 0.5 and k + 1 for f > 0.5."""
    crf = create_crf(name)
    n = 7
    _, q = crf.inverse_lut(8, 13)
    targets = []
    for k in range(0, 255):
        for f in (0.1, 0.4, 0.6, 0.9):
            targets.append(k + f)
    targets.append(10.6)
    t = np.array(targets)
    sums = np.array([round(reference_decode(name, v / 255) * n * q) for v in t], dtype=np.int64)
    # The sums are exact integers: check their exact encoded value is within 1e-4 of the target.
    exact = 255 * np.array([srgb_encode(s / (n * q)) if name == "srgb" else (s / (n * q)) ** (1 / 2.2)
                            for s in sums])
    np.testing.assert_allclose(exact, t, atol=1e-4)
    out = encode(sums.reshape(1, -1, 1), n, q, crf, kind).ravel().astype(int)
    np.testing.assert_array_equal(out, np.floor(t + 0.5).astype(int))
    assert out[-1] == 11  # 10.6 rounds up; truncation would give 10


@pytest.mark.parametrize("name", CRF_NAMES)
@pytest.mark.parametrize("kind", ["numpy", "torch64"])
def test_encode_sum_black_and_white(name, kind):
    crf = create_crf(name)
    _, q = crf.inverse_lut(8, 3)
    sums = np.array([[[0, 3 * q, 1]]])
    out = encode(sums, 3, q, crf, kind)
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 255 and out[0, 0, 2] <= 1


@pytest.mark.parametrize("name", ["gamma", "srgb", "linear"])
@pytest.mark.parametrize("n", [1, 7, 13])
def test_encode_sum_is_exact_at_every_rounding_boundary(name, n):
    """Around each half-code boundary (k - 0.5), sums just below round down and sums at/above round up,
    identically on the numpy and torch paths."""
    crf = create_crf(name)
    _, q = crf.inverse_lut(8, 13)
    k = np.arange(1, 256)
    # Smallest integer sum whose exact encoded value is >= k - 0.5, from the independent formula.
    x = np.array([reference_decode(name, (v - 0.5) / 255) * n * q for v in k])
    t = np.ceil(x).astype(np.int64)
    sums = np.concatenate([t - 2, t - 1, t, t + 1])
    sums = sums[(sums >= 0) & (sums <= n * q)]
    exact = reference_encode(name, sums, n, q)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-9  # ties (only possible for linear) are left out
    expected = np.floor(exact + 0.5).astype(int)
    grid = sums.reshape(1, -1, 1)
    out_np = encode(grid, n, q, crf, "numpy").ravel().astype(int)
    out_t = encode(grid, n, q, crf, "torch64").ravel().astype(int)
    np.testing.assert_array_equal(out_np, out_t)
    np.testing.assert_array_equal(out_np[clear], expected[clear])


@pytest.mark.parametrize("name", ["gamma", "srgb"])
def test_encode_sum_is_exact_for_random_sums(name):
    rng = np.random.default_rng(11)
    crf = create_crf(name)
    n = 9
    _, q = crf.inverse_lut(8, 13)
    sums = rng.integers(0, n * q + 1, size=(40, 50, 3))
    exact = reference_encode(name, sums, n, q)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-9
    assert clear.mean() > 0.999
    for kind in ("numpy", "torch32", "torch64"):
        out = encode(sums, n, q, crf, kind).astype(int)
        np.testing.assert_array_equal(out[clear], np.floor(exact + 0.5).astype(int)[clear])


def test_encode_sum_of_mixed_frames_matches_float64_oracle():
    rng = np.random.default_rng(3)
    crf = create_crf("gamma")
    n = 9
    lut, q = crf.inverse_lut(8, 13)
    frames = rng.integers(0, 256, size=(n, 20, 30, 3), dtype=np.uint8)
    sums = lut.astype(np.int64)[frames].sum(axis=0)
    got = encode(sums, n, q, crf, "numpy").astype(int)
    np.testing.assert_array_equal(got, encode(sums, n, q, crf, "torch64"))
    exact = 255 * np.mean((frames / 255.0) ** 2.2, axis=0) ** (1 / 2.2)
    assert np.abs(got - exact).max() <= 0.5 + 1e-3
    assert (got == np.rint(exact)).mean() > 0.999
    assert math.isclose(float(np.abs(got - exact).mean()), 0.25, abs_tol=0.02)  # rounding, not truncation


# -- the root-table estimate of encode_sum ------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [1.0, 1.8, 2.2, 2.4, 3.0, 5.0])
@pytest.mark.parametrize("n", [1, 7, 13])
def test_encode_sum_is_exact_at_every_boundary_for_any_gamma(gamma, n):
    """Whichever estimate encode_sum takes (a square-root table, a fourth-root table, or cv2.pow where no table
    is close enough), sums on either side of every half-code boundary encode to the exact rounded value."""
    crf = create_crf("gamma", gamma)
    _, q = crf.inverse_lut(8, 23)
    k = np.arange(1, 256)
    t = np.ceil(((k - 0.5) / 255) ** gamma * n * q).astype(np.int64)  # first sum at or above k - 0.5
    sums = np.concatenate([t - 1, t, t + 1, [0, n * q]])
    sums = sums[(sums >= 0) & (sums <= n * q)]
    exact = 255 * (sums / (n * q)) ** (1 / gamma)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-9
    got = encode(sums.reshape(1, -1, 1), n, q, crf, "numpy").ravel().astype(int)
    np.testing.assert_array_equal(got[clear], np.floor(exact + 0.5).astype(int)[clear])
    np.testing.assert_array_equal(got, encode(sums.reshape(1, -1, 1), n, q, crf, "torch64").ravel())


@pytest.mark.parametrize(("name", "gamma", "root"), [("gamma", 2.2, 2), ("srgb", 2.2, 2), ("gamma", 2.4, 4),
                                                     ("gamma", 5.0, None), ("linear", 2.2, None)])
def test_estimate_table_is_within_one_code_of_every_sum(name, gamma, root):
    from blursynth.ops.crf import estimate_table

    crf = create_crf(name, gamma)
    n = 9
    _, q = crf.inverse_lut(8, 13)
    got = estimate_table(crf, n, q)
    if root is None:
        assert got is None
        return
    table, r = got
    assert r == root and table.dtype == np.uint8 and table.shape == (256,)
    rng = np.random.default_rng(2)
    sums = np.concatenate([rng.integers(0, n * q + 1, 200_000), np.arange(0, 5000), [n * q]])
    x = sums.astype(np.float32).reshape(1, -1)  # the index as encode_sum computes it, in float32 with OpenCV
    for _ in range(root // 2):
        x = cv2.sqrt(x)
    j = cv2.convertScaleAbs(x, alpha=255.0 / (n * q) ** (1.0 / root)).ravel().astype(int)
    exact = reference_encode(name, sums, n, q) if name == "srgb" else 255 * (sums / (n * q)) ** (1 / gamma)
    assert np.abs(table[j].astype(float) - exact).max() < 1.5  # within one code of the rounded value


def test_encode_sum_writes_into_out():
    crf = create_crf("gamma")
    lut, q = crf.inverse_lut(8, 7)
    frame = all_codes_image()
    sums = lut[frame] * 7
    image = np.zeros((2, *frame.shape), np.uint8)
    got = encode_sum(sums, 7, q, crf, scratch={}, out=image[1])
    np.testing.assert_array_equal(image[1], frame)
    assert np.shares_memory(got, image) and not image[0].any()
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        encode_sum(sums, 7, q, crf, out=np.zeros((16, 32, 3), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        encode_sum(sums, 7, q, crf, out=np.zeros(frame.shape, np.int32))
