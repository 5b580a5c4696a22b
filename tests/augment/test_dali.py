"""DALI back-end (CPU): the deterministic operators agree with the torch ones; the loader delivers aligned
batches. Skipped without NVIDIA DALI (the `floodwatch[dali]` extra)."""
import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")

from floodwatch.augment import ops  # noqa: E402
from floodwatch.augment.dali import DaliChipLoader, dali_geometric  # noqa: E402
from floodwatch.data.preprocess import Preprocessing  # noqa: E402
from floodwatch.data.sample import IGNORE_INDEX  # noqa: E402

from .conftest import WATER_THRESHOLD_DB, away_from_class_edges, chip_index, make_chip, smooth_db  # noqa: E402

CASES = [("hflip", {}, ops.hflip), ("vflip", {}, ops.vflip),
         ("rot90", {"k": 1}, lambda t, fill: ops.rot90(t, 1)),
         ("rotate", {"angle": 30.0}, lambda t, fill: ops.rotate(t, 30.0, fill=fill)),
         ("crop_and_resize", {"roi": (2, 3, 14, 12)}, lambda t, fill: ops.crop_and_resize(t, (2, 3, 14, 12), fill=fill)),
         ("crop_and_resize", {"roi": (0, 0, 16, 16)}, lambda t, fill: ops.crop_and_resize(t, (0, 0, 16, 16)))]


@pytest.mark.parametrize("op,params,torch_op", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_torch_and_dali_agree(op, params, torch_op):
    rng = np.random.default_rng(0)
    image = np.stack([smooth_db(rng, 16) for _ in range(2)])
    mask = (image[:, 0] < WATER_THRESHOLD_DB).astype(np.int64)
    d_img, d_mask = dali_geometric(op, image, mask, **params)
    if op in ("hflip", "vflip"):
        t_img, t_mask = torch_op(torch.from_numpy(image)), torch_op(torch.from_numpy(mask))
    else:
        t_img, t_mask = torch_op(torch.from_numpy(image), 0.0), torch_op(torch.from_numpy(mask), IGNORE_INDEX)
    np.testing.assert_allclose(d_img, t_img.numpy(), atol=1e-4)
    assert np.array_equal(d_mask, t_mask.numpy())


def test_dali_loader_yields_every_chip_with_aligned_masks(chips, valid_classes):
    prep = Preprocessing()
    rng = np.random.default_rng(3)
    plain_chips = [make_chip(rng, i, plain=True) for i in range(11)]
    cfg = {"spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5,
                                    "crop_and_resize_prob": 1.0, "crop_and_resize_ratio": 0.2}}
    loader = DaliChipLoader(plain_chips, prep, 4, cfg, seed=0, workers=0, shuffle=False)
    for e in range(2):
        loader.set_epoch(e)
        batches = list(loader)
        assert [b[0].shape[0] for b in batches] == [4, 4, 3]
        for image, mask, valid in batches:
            assert image.shape[1:] == (2, 32, 32) and mask.dtype == torch.long and valid.dtype == torch.bool
            assert set(mask.unique().tolist()) <= valid_classes
            db = image[:, 0] / prep.scale[0] + prep.offset[0]
            clear = away_from_class_edges(mask)
            assert torch.equal(mask[clear], (db[clear] < WATER_THRESHOLD_DB).long())
    # without spatial operators the marker pixel survives, so every chip can be counted
    plain = DaliChipLoader(chips, prep, 4, {"brightness_augmentation": {"delta": 0.0}}, workers=0)
    assert sorted(i for b in plain for i in chip_index(b[0], prep)) == list(range(len(chips)))


def test_dali_channel_dropout_zeroes_one_channel_per_chip_that_drew_it():
    prep = Preprocessing(fill=-3.0)  # a non-zero nodata fill, which dropout must leave alone
    rng = np.random.default_rng(5)
    plain_chips = [make_chip(rng, i, plain=True) for i in range(24)]
    for c in plain_chips:
        c.valid[-2:] = False
    reference = torch.cat([b[0] for b in DaliChipLoader(plain_chips, prep, 8, {}, workers=0, shuffle=False)])
    loader = DaliChipLoader(plain_chips, prep, 8, {"channel_dropout": {"probability": 0.5}}, seed=1, workers=0,
                            shuffle=False)
    out = torch.cat([b[0] for b in loader])
    assert torch.all(out[:, :, -2:] == -3.0) and torch.all(reference[:, :, -2:] == -3.0)
    zeroed = [[ch for ch in range(2) if torch.all(out[i, ch, :-2] == 0)] for i in range(24)]
    assert all(len(z) <= 1 for z in zeroed) and 4 < sum(map(len, zeroed)) < 20
    assert {z[0] for z in zeroed if z} == {0, 1}
    for i, z in enumerate(zeroed):
        kept = [ch for ch in range(2) if ch not in z]
        assert torch.equal(out[i, kept], reference[i, kept])


def test_dali_channel_dropout_leaves_a_one_channel_input_alone():
    """As the torch augmenter: dropping the only channel would blank the chip."""
    import dataclasses

    prep = Preprocessing(bands=["VV"], offset=[-12.0], scale=[0.2])
    rng = np.random.default_rng(5)
    chips = [make_chip(rng, i, plain=True) for i in range(8)]
    chips = [dataclasses.replace(c, image=c.image[:1], bands=("VV",)) for c in chips]
    reference = torch.cat([b[0] for b in DaliChipLoader(chips, prep, 8, {}, workers=0, shuffle=False)])
    loader = DaliChipLoader(chips, prep, 8, {"channel_dropout": {"probability": 1.0}}, seed=1, workers=0,
                            shuffle=False)
    out = torch.cat([b[0] for b in loader])
    assert out.shape[1] == 1 and torch.equal(out, reference)


def test_dali_band_delta_shifts_each_band_by_its_own_amount():
    prep = Preprocessing(fill=-3.0, offset=[-12.0, -19.0], scale=[0.2, 0.25])
    rng = np.random.default_rng(6)
    plain_chips = [make_chip(rng, i, plain=True) for i in range(16)]
    for c in plain_chips:
        c.valid[-2:] = False
    reference = torch.cat([b[0] for b in DaliChipLoader(plain_chips, prep, 8, {}, workers=0, shuffle=False)])
    loader = DaliChipLoader(plain_chips, prep, 8, {"brightness_augmentation": {"band_delta": 2.0}}, seed=1,
                            workers=0, shuffle=False)
    out = torch.cat([b[0] for b in loader])
    assert torch.all(out[:, :, -2:] == -3.0)  # nodata keeps its fill
    shift = (out - reference)[:, :, :-2]
    db = shift.mean((-2, -1)) / torch.tensor(prep.scale)  # (N, 2) dB per chip and band
    assert torch.allclose(shift, (db * torch.tensor(prep.scale))[:, :, None, None].expand_as(shift), atol=1e-4)
    assert (db.abs() <= 2.0 + 1e-4).all() and (db[:, 0] - db[:, 1]).abs().max() > 0.5


def test_dali_epoch_is_the_same_after_a_restart():
    """As ChipLoader's: epoch e augments alike whether epochs 0..e-1 ran before in this loader or not (a
    resumed run). Epoch 1 continued epoch 0's DALI random stream instead of starting its own."""
    prep = Preprocessing()
    rng = np.random.default_rng(8)
    chips = [make_chip(rng, i, plain=True) for i in range(6)]
    cfg = {"spatial_augmentation": {"hflip_probability": 0.5, "rotate_probability": 0.5},
           "brightness_augmentation": {"delta": 2.0}}

    def epoch_images(loader):
        return torch.cat([b[0] for b in loader])

    going = DaliChipLoader(chips, prep, 3, cfg, seed=4, workers=0)
    going.set_epoch(0)
    first = epoch_images(going)
    second = epoch_images(going)  # epochs count up without set_epoch
    fresh = DaliChipLoader(chips, prep, 3, cfg, seed=4, workers=0)
    fresh.set_epoch(1)
    assert not torch.equal(first, second)
    assert torch.equal(second, epoch_images(fresh))
