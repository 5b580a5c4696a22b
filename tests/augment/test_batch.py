"""BatchAugmenter: paired geometry, valid class values, seeding, per-sample randomness, dB-scaled photometry."""
import numpy as np
import pytest
import torch

from floodwatch.augment import BatchAugmenter, parse_config
from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.errors import FloodwatchError, SpecError

from .conftest import smooth_db

SPATIAL = {"spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5, "crop_and_resize_prob": 1.0,
                                    "crop_and_resize_ratio": 0.4, "rotate_probability": 1.0, "rotate_max_degrees": 40}}


def batch(n=6, size=48, seed=0):
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(np.stack([smooth_db(rng, size) for _ in range(n)]) / 5.0)  # like normalised input
    mask = (image[:, 0] < 0).long()
    valid = torch.ones(n, size, size, dtype=torch.bool)
    return image, mask, valid


def test_mask_stays_the_threshold_of_the_image():
    image, mask, valid = batch()
    out_img, out_mask, out_valid = BatchAugmenter.from_config(SPATIAL, seed=3)(image, mask, valid)
    inside = out_mask != IGNORE_INDEX
    # bilinear and nearest sampling may disagree only where the image is within a hair of the threshold
    clear = inside & (out_img[:, 0].abs() > 0.15)
    assert torch.equal(out_mask[clear], (out_img[:, 0][clear] < 0).long())
    assert clear.float().mean() > 0.5
    # what rotation brings in from outside the chip is not valid, and ignored in the mask
    assert torch.equal(out_valid, inside)
    assert (~out_valid).any()


def test_masks_keep_only_class_values():
    image, mask, valid = batch()
    mask[:, :5] = IGNORE_INDEX
    _, out_mask, out_valid = BatchAugmenter.from_config(SPATIAL, seed=1)(image, mask, valid)
    assert set(out_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    assert out_mask.dtype == torch.long and out_valid.dtype == torch.bool


def test_seeded_and_reproducible():
    image, mask, valid = batch()
    cfg = {**SPATIAL, "speckle": {"probability": 1.0, "std_db": 1.0}, "brightness_augmentation": {"delta": 2.0}}
    a = BatchAugmenter.from_config(cfg, seed=7)(image, mask, valid)
    b = BatchAugmenter.from_config(cfg, seed=7)(image, mask, valid)
    c = BatchAugmenter.from_config(cfg, seed=8)(image, mask, valid)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    aug = BatchAugmenter.from_config(cfg, seed=7)
    first = aug(image, mask, valid)
    assert not torch.equal(aug(image, mask, valid)[0], first[0])  # the stream moves on
    aug.manual_seed(7)
    assert torch.equal(aug(image, mask, valid)[0], first[0])


def test_parameters_differ_across_the_batch():
    image, mask, valid = batch(n=8)
    aug = BatchAugmenter.from_config(SPATIAL, seed=0)
    aug(image, mask, valid)
    p = aug.last_params
    assert len(set(p["angle"].tolist())) == 8
    assert len({tuple(r) for r in p["roi"].tolist()}) == 8
    assert 0 < int(p["hflip"].sum()) < 8  # p=0.5 over 8 chips; this seed draws both outcomes


def test_empty_config_is_identity():
    image, mask, valid = batch()
    out = BatchAugmenter.from_config({}, seed=0)(image, mask, valid)
    assert all(torch.equal(x, y) for x, y in zip(out, (image, mask, valid)))
    assert parse_config({}).is_identity and not parse_config(SPATIAL).is_identity


def test_hflip_probability_one_flips_everything():
    image, mask, valid = batch()
    out = BatchAugmenter.from_config({"spatial_augmentation": {"hflip_probability": 1.0}})(image, mask, valid)
    assert torch.equal(out[0], image.flip(-1)) and torch.equal(out[1], mask.flip(-1))


def test_brightness_delta_is_in_db_through_the_channel_scale():
    image, mask, valid = batch(n=4)
    valid[:, :3] = False
    prep = Preprocessing(derived="diff", offset=[-12, -19, 7], scale=[0.2, 0.25, 0.5])
    image = torch.cat([image, image[:, :1]], dim=1)  # three channels, like a diff model
    aug = BatchAugmenter.from_config({"brightness_augmentation": {"delta": 3.0}}, seed=2, db_scale=prep)
    out, _, _ = aug(image, mask, valid)
    db = aug.last_params["brightness_db"]
    assert db.shape == (4, 3) and (db == db[:, :1]).all()  # one shift per chip, every band
    db = db[:, 0]
    assert (db.abs() <= 3.0).all() and len(set(db.tolist())) == 4
    diff = out - image
    for i in range(4):
        np.testing.assert_allclose(diff[i, 0][valid[i]], 0.2 * float(db[i]), atol=1e-5)
        np.testing.assert_allclose(diff[i, 1][valid[i]], 0.25 * float(db[i]), atol=1e-5)
        assert torch.all(diff[i, 2] == 0)  # VV-VH does not change with a common dB shift
        assert torch.all(diff[i, :, ~valid[i]] == 0)  # nodata keeps its fill


def test_contrast_keeps_the_valid_mean_and_scales_spread():
    image, mask, valid = batch(n=3)
    aug = BatchAugmenter.from_config({"contrast": {"probability": 1.0, "delta": 0.5}}, seed=0)
    out, _, _ = aug(image, mask, valid)
    f = aug.last_params["contrast_factor"]
    np.testing.assert_allclose(out.mean((-2, -1)), image.mean((-2, -1)), atol=1e-5)
    np.testing.assert_allclose(out.std((-2, -1)) / image.std((-2, -1)), f[:, None].expand(3, 2).float(), rtol=1e-4)


def test_speckle_std_is_in_db():
    image, mask, valid = batch(n=2, size=96)
    aug = BatchAugmenter.from_config({"speckle": {"probability": 1.0, "std_db": 2.0}}, seed=0, db_scale=[0.2, 0.2])
    out, _, _ = aug(image, mask, valid)
    assert abs(float((out - image).std()) - 0.4) < 0.02


def test_channel_dropout_zeroes_one_drawn_channel_of_the_chips_that_drew_it():
    image, mask, valid = batch(n=64, size=16)
    image = torch.cat([image, image[:, :1] - 1.0], dim=1)  # three channels, none of them 0 anywhere
    image[image == 0] = 0.5
    valid[:, -3:] = False
    image[:, :, -3:] = -7.0  # nodata at a non-zero Preprocessing.fill: dropout must leave it there
    aug = BatchAugmenter.from_config({"channel_dropout": {"probability": 0.5}}, seed=4)
    out, out_mask, out_valid = aug(image, mask, valid)
    drop = aug.last_params["dropped_channel"]
    assert 16 < int((drop >= 0).sum()) < 48 and set(drop[drop >= 0].tolist()) == {0, 1, 2}
    assert torch.all(out[:, :, -3:] == -7.0)
    for i in range(64):
        zeroed = [ch for ch in range(3) if torch.all(out[i, ch, :-3] == 0)]
        assert zeroed == ([int(drop[i])] if drop[i] >= 0 else [])
        kept = [ch for ch in range(3) if ch not in zeroed]
        assert torch.equal(out[i, kept], image[i, kept])
    assert torch.equal(out_mask, mask) and torch.equal(out_valid, valid)
    # configs without it keep their random stream: the same flips with and without channel dropout
    flips = {"spatial_augmentation": {"hflip_probability": 0.5}}
    a = BatchAugmenter.from_config(flips, seed=4)(image, mask, valid)[0]
    b = BatchAugmenter.from_config({**flips, "channel_dropout": {"probability": 1e-9}}, seed=4)(image, mask, valid)[0]
    assert torch.equal(a, b)


def test_channel_dropout_leaves_a_one_channel_input_alone():
    """Dropping the only channel (VV-only data, OMBRIA) blanked the whole input of a quarter of the chips."""
    image, mask, valid = batch(n=32, size=16)
    image = image[:, :1] + 0.5
    aug = BatchAugmenter.from_config({"channel_dropout": {"probability": 1.0}}, seed=4)
    out, _, _ = aug(image, mask, valid)
    assert torch.equal(out, image) and bool((aug.last_params["dropped_channel"] == -1).all())


def test_bad_config_names_the_field():
    with pytest.raises(SpecError, match="spatial_augmentation.hflip_probability"):
        parse_config({"spatial_augmentation": {"hflip_probability": 1.5}})
    with pytest.raises(SpecError, match="brightness_augmentation.sigma"):
        parse_config({"brightness_augmentation": {"sigma": 1}})


def test_bad_shapes_are_floodwatch_errors():
    image, mask, valid = batch()
    aug = BatchAugmenter.from_config(SPATIAL)
    with pytest.raises(Exception, match="mask has shape"):
        aug(image, mask[:, :10], valid)
    with pytest.raises(Exception, match="db_scale"):
        BatchAugmenter.from_config({"brightness_augmentation": {"delta": 1}}, db_scale=[1.0])(image, mask, valid)


def test_band_delta_shifts_each_band_on_its_own_within_bounds():
    image, mask, valid = batch(n=64)
    valid[:, :2] = False
    prep = Preprocessing(offset=[-12, -19], scale=[0.2, 0.25])
    aug = BatchAugmenter.from_config({"brightness_augmentation": {"delta": 3.0, "band_delta": 2.0}}, seed=5,
                                     db_scale=prep)
    out, _, _ = aug(image, mask, valid)
    db = aug.last_params["brightness_db"].float()
    common = BatchAugmenter.from_config({"brightness_augmentation": {"delta": 3.0}}, seed=5, db_scale=prep)
    common(image, mask, valid)
    own = db - common.last_params["brightness_db"].float()  # the same table: the common shift is the same
    assert (own.abs() <= 2.0).all() and (own[:, 0] != own[:, 1]).all()
    assert own.std() > 0.8  # uniform on [-2, 2]: std 1.15
    assert abs(float(np.corrcoef(own[:, 0], own[:, 1])[0, 1])) < 0.4  # drawn apart per band
    diff = out - image
    for i in range(64):
        np.testing.assert_allclose(diff[i, 0][valid[i]], 0.2 * float(db[i, 0]), atol=1e-5)
        np.testing.assert_allclose(diff[i, 1][valid[i]], 0.25 * float(db[i, 1]), atol=1e-5)
        assert torch.all(diff[i, :, ~valid[i]] == 0)


def test_band_delta_is_refused_with_a_derived_channel():
    with pytest.raises(FloodwatchError, match="band_delta: not with the derived channel 'diff'"):
        BatchAugmenter({"brightness_augmentation": {"band_delta": 1.0}}, db_scale=Preprocessing(derived="diff", offset=[0, 0, 0], scale=[1, 1, 1]))
