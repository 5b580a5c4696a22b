"""Deterministic operators against numpy / scipy references."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from floodwatch.augment import crop_and_resize, hflip, rot90, rotate, vflip
from floodwatch.errors import FloodwatchError


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.standard_normal((3, 2, 24, 40)), (0, 0, 3, 3)).astype(np.float32)
    mask = rng.choice([0, 1, 255], size=(3, 24, 40)).astype(np.int64)
    return image, mask


def test_flips_equal_np_flip(batch):
    image, mask = batch
    for arr in (image, mask):
        t = torch.from_numpy(arr)
        assert np.array_equal(hflip(t).numpy(), np.flip(arr, -1))
        assert np.array_equal(vflip(t).numpy(), np.flip(arr, -2))


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_rot90_equals_np_rot90(batch, k):
    image, mask = batch
    for arr in (image, mask):
        assert np.array_equal(rot90(torch.from_numpy(arr), k).numpy(), np.rot90(arr, k, axes=(-2, -1)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate_by_quarter_turns_equals_np_rot90(batch, k):
    image, mask = batch
    square_img, square_mask = image[..., :24, :24], mask[..., :24, :24]
    out = rotate(torch.from_numpy(np.ascontiguousarray(square_img)), 90.0 * k).numpy()
    np.testing.assert_allclose(out, np.rot90(square_img, k, axes=(-2, -1)), atol=1e-5)
    out_mask = rotate(torch.from_numpy(np.ascontiguousarray(square_mask)), 90.0 * k, fill=255).numpy()
    assert np.array_equal(out_mask, np.rot90(square_mask, k, axes=(-2, -1)))


def test_rotate_matches_scipy_away_from_borders(batch):
    image, _ = batch
    out = rotate(torch.from_numpy(image[0, 0]), 25.0).numpy()
    ref = ndimage.rotate(image[0, 0], 25.0, reshape=False, order=1, mode="constant", cval=0.0)
    np.testing.assert_allclose(out[6:-6, 6:-6], ref[6:-6, 6:-6], atol=1e-5)


def test_rotate_fills_corners(batch):
    image, mask = batch
    out = rotate(torch.from_numpy(image), 45.0, fill=-7.0).numpy()
    assert np.all(out[..., 0, 0] == -7.0) and np.all(out[..., -1, -1] == -7.0)
    out_mask = rotate(torch.from_numpy(mask), 45.0, fill=255).numpy()
    assert np.all(out_mask[:, 0, 0] == 255)
    assert set(np.unique(out_mask)) <= {0, 1, 255}


def test_crop_and_resize_identity_roi_is_identity(batch):
    image, mask = batch
    h, w = image.shape[-2:]
    np.testing.assert_allclose(crop_and_resize(torch.from_numpy(image), (0, 0, h, w)).numpy(), image, atol=1e-5)
    assert np.array_equal(crop_and_resize(torch.from_numpy(mask), (0, 0, h, w), fill=255).numpy(), mask)


def test_crop_and_resize_matches_scipy_zoom(batch):
    image, mask = batch
    # the top-left quarter blown up 2x: bilinear = scipy's zoom on the pixel grid, nearest = pixel repetition
    quarter = image[0, 0, :12, :20]
    out = crop_and_resize(torch.from_numpy(image[0, 0]), (0, 0, 12, 20)).numpy()
    ref = ndimage.zoom(quarter, 2, order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(out[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-5)
    out_mask = crop_and_resize(torch.from_numpy(mask), (0, 0, 12, 20), fill=255).numpy()
    assert np.array_equal(out_mask, mask[:, :12, :20].repeat(2, axis=1).repeat(2, axis=2))


def test_bool_and_dtype_kept(batch):
    _, mask = batch
    valid = torch.from_numpy(mask != 255)
    out = rotate(valid, 30.0)
    assert out.dtype == torch.bool and not out[0, 0, 0]


def test_bad_roi_is_a_floodwatch_error(batch):
    image, _ = batch
    with pytest.raises(FloodwatchError, match="roi"):
        crop_and_resize(torch.from_numpy(image), (10, 0, 5, 8))
