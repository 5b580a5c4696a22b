"""Synthetic chips for the augmentation tests: smooth dB images whose water mask is a threshold of VV."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from floodwatch.data.sample import IGNORE_INDEX, Sample

WATER_THRESHOLD_DB = -15.0
MARKER_DB = -49.0


def smooth_db(rng: np.random.Generator, size: int, channels: int = 2) -> np.ndarray:
    """Blobs a few pixels across, -25..-5 dB: smooth enough that bilinear resampling barely moves a threshold."""
    noise = ndimage.gaussian_filter(rng.standard_normal((channels, size, size)), sigma=(0, size / 10, size / 10))
    noise /= noise.std(axis=(1, 2), keepdims=True)
    return (-15.0 + 5.0 * noise).astype(np.float32)


def make_chip(rng: np.random.Generator, i: int, size: int = 32, *, empty: bool = False, plain: bool = False) -> Sample:
    """plain: no index marker and no nodata strip, so the mask is exactly the threshold of the image."""
    image = smooth_db(rng, size)
    mask = (image[0] < WATER_THRESHOLD_DB).astype(np.int64)
    valid = np.ones((size, size), bool)
    if not plain:
        # the chip's index (inside the clip range), readable back after pre-processing (see `chip_index`)
        image[0, 0, 0] = MARKER_DB + i
        valid[-2:, :] = False  # a nodata strip at the bottom, as at a swath edge
    if empty:
        valid[:] = False
    return Sample(image=image, mask=mask, valid=valid, id=f"chip{i:03d}", region="R")


def chip_index(image_batch, preprocessing) -> list[int]:
    """Inverse of the marker `make_chip` writes at pixel (0, 0) of VV."""
    x = image_batch[:, 0, 0, 0].double() / preprocessing.scale[0] + preprocessing.offset[0]
    return [int(round(v - MARKER_DB)) for v in x.tolist()]


@pytest.fixture
def chips() -> list[Sample]:
    rng = np.random.default_rng(0)
    return [make_chip(rng, i) for i in range(11)]


@pytest.fixture
def valid_classes() -> set[int]:
    return {0, 1, IGNORE_INDEX}


def away_from_class_edges(mask):
    """(N, H, W) bool: labelled pixels whose 3x3 neighbourhood holds one class only. Nearest-neighbour masks and
    bilinear images may disagree within a pixel of a class edge; everywhere else they must agree."""
    import torch.nn.functional as F

    water = (mask == 1).float()[:, None]
    land = (mask == 0).float()[:, None]
    all_water = -F.max_pool2d(-water, 3, 1, 1)[:, 0] > 0
    all_land = -F.max_pool2d(-land, 3, 1, 1)[:, 0] > 0
    clear = all_water | all_land
    clear[:, [0, -1], :] = False  # at the frame the 3x3 window is cut short
    clear[:, :, [0, -1]] = False
    return clear
