"""Embedding resampling for conversion: exact where it must be, smooth elsewhere, PyTorch's kernels as reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timesformer_jax.convert.resample import (
    interpolation_matrix,
    resample_grid,
    resample_pos_embed,
    resample_time_embed,
)

SIZES = [((4, 4), (7, 5)), ((14, 14), (24, 24)), ((14, 14), (7, 9)), ((6, 3), (2, 8))]


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_same_size_is_identity(method):
    pos = np.random.default_rng(0).normal(size=(1, 1 + 5 * 7, 16)).astype(np.float32)
    np.testing.assert_array_equal(resample_pos_embed(pos, (5, 7), (5, 7), method), pos)
    time = pos[:, :6]
    np.testing.assert_array_equal(resample_time_embed(time, 6, method), time)


@pytest.mark.parametrize("size_in, size_out", SIZES)
def test_linear_ramp_stays_a_linear_ramp_under_bilinear(size_in, size_out):
    def ramp(h, w):  # a plane over the grid's extent, in every channel (with different slopes)
        y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
        return np.stack([3 * y - 2 * x + 1, -y + 0.5 * x], axis=-1)

    out = resample_grid(ramp(*size_in), size_out, "bilinear")
    np.testing.assert_allclose(out, ramp(*size_out), atol=1e-12)


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size_in, size_out", SIZES)
def test_matches_torch_interpolate_align_corners(method, size_in, size_out):
    grid = np.random.default_rng(1).normal(size=(*size_in, 5))
    ours = resample_grid(grid, size_out, method)
    reference = F.interpolate(
        torch.from_numpy(grid).permute(2, 0, 1)[None], size=size_out, mode=method, align_corners=True
    )[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_pos_embed_keeps_cls_apart_and_resamples_row_major_patches():
    rng = np.random.default_rng(2)
    pos = rng.normal(size=(1, 1 + 4 * 6, 3)).astype(np.float32)
    out = resample_pos_embed(pos, (4, 6), (8, 3), "bicubic")
    assert out.shape == (1, 1 + 8 * 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], pos[0, 0])
    reference = F.interpolate(
        torch.from_numpy(pos[0, 1:].reshape(4, 6, 3)).permute(2, 0, 1)[None].double(),
        size=(8, 3), mode="bicubic", align_corners=True,
    )[0].permute(1, 2, 0).reshape(24, 3).numpy()
    np.testing.assert_allclose(out[0, 1:], reference, atol=1e-6)


def test_time_embed_matches_torch_linear():
    time = np.random.default_rng(3).normal(size=(1, 8, 4))
    reference = F.interpolate(torch.from_numpy(time).transpose(1, 2), size=12, mode="linear", align_corners=True)
    np.testing.assert_allclose(resample_time_embed(time, 12), reference.transpose(1, 2).numpy(), atol=1e-12)


def test_rows_are_partitions_of_unity():
    for method in ("bilinear", "bicubic"):
        np.testing.assert_allclose(interpolation_matrix(7, 19, method).sum(axis=1), 1.0, atol=1e-12)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown resampling method 'nearest'"):
        interpolation_matrix(4, 5, "nearest")
    with pytest.raises(ValueError, match=r"expected a position embedding \(1, 1 \+ 4\*4, D\)"):
        resample_pos_embed(np.zeros((1, 10, 3)), (4, 4), (5, 5))
