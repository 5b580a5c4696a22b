"""ChipLoader: every chip once per epoch, caching and workers change nothing, reproducible shuffles, shards."""
import numpy as np
import pytest
import torch

from floodwatch.augment import BatchAugmenter, ChipLoader
from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.errors import DataError

from .conftest import chip_index, make_chip

PREP = Preprocessing()


def epoch(loader, e=0):
    loader.set_epoch(e)
    return list(loader)


def indices(batches):
    return [i for image, _, _ in batches for i in chip_index(image, PREP)]


def test_every_chip_once_per_epoch(chips):
    loader = ChipLoader(chips, PREP, 4, workers=0, seed=1)
    for e in range(2):
        batches = epoch(loader, e)
        assert sorted(indices(batches)) == list(range(len(chips)))
        assert [b[0].shape[0] for b in batches] == [4, 4, 3]
    assert loader.throughput() > 0


def test_batches_hold_preprocessed_chips(chips, valid_classes):
    image, mask, valid = epoch(ChipLoader(chips, PREP, 11, workers=0, shuffle=False))[0]
    assert image.dtype == torch.float32 and mask.dtype == torch.long and valid.dtype == torch.bool
    np.testing.assert_allclose(image[3].numpy(), PREP.apply(chips[3].image, chips[3].valid), atol=1e-6)
    assert torch.all(mask[:, -2:] == IGNORE_INDEX)  # nodata is not learned from
    assert set(mask.unique().tolist()) <= valid_classes


def test_cache_and_workers_change_nothing(chips):
    runs = {}
    for cache in (False, True):
        for workers in (0, 2):
            loader = ChipLoader(chips, PREP, 4, workers=workers, cache=cache, seed=5)
            runs[cache, workers] = [epoch(loader, e) for e in range(2)]
            assert loader.cached is cache
    ref = runs[False, 0]
    for run in runs.values():
        for ep, ep_ref in zip(run, ref):
            assert all(torch.equal(a, b) for batch, batch_ref in zip(ep, ep_ref) for a, b in zip(batch, batch_ref))


def test_auto_cache_respects_the_budget(chips):
    small = ChipLoader(chips, PREP, 4, workers=0, cache="auto", cache_budget=1000)
    epoch(small)
    assert not small.cached
    big = ChipLoader(chips, PREP, 4, workers=0, cache="auto")
    epoch(big)
    assert big.cached


def test_set_epoch_gives_reproducible_shuffles(chips):
    loader = ChipLoader(chips, PREP, 4, workers=0, seed=0)
    e0, e1, e0_again = indices(epoch(loader, 0)), indices(epoch(loader, 1)), indices(epoch(loader, 0))
    assert e0 == e0_again and e0 != e1
    assert indices(epoch(ChipLoader(chips, PREP, 4, workers=0, shuffle=False))) == list(range(len(chips)))


def test_empty_chips_are_skipped_and_remembered():
    rng = np.random.default_rng(0)
    chips = [make_chip(rng, i, empty=i in (2, 5)) for i in range(8)]
    loader = ChipLoader(chips, PREP, 3, workers=0, shuffle=False)
    assert sorted(indices(epoch(loader, 0))) == [0, 1, 3, 4, 6, 7]
    assert [b[0].shape[0] for b in epoch(loader, 1)] == [3, 3]  # known empties no longer split batches
    assert len(indices(epoch(ChipLoader(chips, PREP, 3, workers=0, skip_empty=False)))) == 8


@pytest.mark.parametrize("n", [10, 11])
def test_shards_split_each_epoch(chips, n):
    chips = chips[:n]
    shards = [indices(epoch(ChipLoader(chips, PREP, 2, workers=0, rank=r, world_size=2, seed=3), 1))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == (n + 1) // 2
    assert set(shards[0]) | set(shards[1]) == set(range(n))
    assert len(set(shards[0]) & set(shards[1])) == n % 2  # an odd set is padded by one repeat


def test_drop_last(chips):
    loader = ChipLoader(chips, PREP, 4, workers=0, drop_last=True)
    assert [b[0].shape[0] for b in epoch(loader)] == [4, 4] and len(loader) == 2


def test_augmenter_runs_on_batches(chips):
    flip = BatchAugmenter.from_config({"spatial_augmentation": {"hflip_probability": 1.0}})
    plain = epoch(ChipLoader(chips, PREP, 4, workers=0, seed=2))
    flipped = epoch(ChipLoader(chips, PREP, 4, workers=0, seed=2, augmenter=flip))
    for (a, ma, _), (b, mb, _) in zip(plain, flipped):
        assert torch.equal(a.flip(-1), b) and torch.equal(ma.flip(-1), mb)


def test_bad_mask_is_a_one_line_data_error_from_a_worker(chips):
    chips[4].mask[3, 3] = 7
    with pytest.raises(DataError, match="chip004: mask has values") as info:
        epoch(ChipLoader(chips, PREP, 4, workers=2))
    assert "\n" not in str(info.value)


def test_chips_of_different_sizes_are_a_data_error(chips):
    chips[1] = make_chip(np.random.default_rng(1), 1, size=16)
    with pytest.raises(DataError, match="differ in shape"):
        epoch(ChipLoader(chips, PREP, 11, workers=0))
