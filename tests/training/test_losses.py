"""Losses against values worked out by hand on a 3-pixel batch (one pixel ignored)."""
import math

import numpy as np
import pytest
import torch

from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.training.losses import build_loss, cross_entropy, dice, focal, ignore_boundaries, lovasz_softmax

# pixels: A logits (2, 0) target 0; B logits (0, 0) target 1; C logits (5, -5) target 255 (ignored)
LOGITS = torch.tensor([[2.0, 0.0, 5.0], [0.0, 0.0, -5.0]]).reshape(1, 2, 1, 3)
TARGET = torch.tensor([[[0, 1, 255]]])
S = 1 / (1 + math.exp(-2))  # softmax probability of class 0 at A


def test_cross_entropy_by_hand():
    expected = (-math.log(S) - math.log(0.5)) / 2
    assert cross_entropy(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_by_hand():
    w = [1.0, 3.0]
    expected = (1.0 * -math.log(S) + 3.0 * -math.log(0.5)) / (1.0 + 3.0)
    assert cross_entropy(LOGITS, TARGET, weight=w).item() == pytest.approx(expected, rel=1e-6)


def test_dice_by_hand():
    d0 = 1 - 2 * S / (S + 0.5 + 1)
    d1 = 1 - 2 * 0.5 / ((1 - S) + 0.5 + 1)
    assert dice(LOGITS, TARGET, smooth=0.0).item() == pytest.approx((d0 + d1) / 2, rel=1e-6)


def test_focal_by_hand_and_gamma_zero_is_cross_entropy():
    expected = ((1 - S) ** 2 * -math.log(S) + 0.5 ** 2 * -math.log(0.5)) / 2
    assert focal(LOGITS, TARGET, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert focal(LOGITS, TARGET, gamma=0.0).item() == pytest.approx(cross_entropy(LOGITS, TARGET).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["cross_entropy", "dice", "cross_dice_sum", "focal", "lovasz", "cross_lovasz_sum"])
def test_ignored_pixels_do_not_count(name):
    fn = build_loss(name)
    changed = LOGITS.clone()
    changed[0, :, 0, 2] = torch.tensor([-7.0, 9.0])  # only the ignored pixel differs
    assert fn(LOGITS, TARGET).item() == pytest.approx(fn(changed, TARGET).item(), abs=1e-7)
    # and the gradient on the ignored pixel is exactly zero
    x = LOGITS.clone().requires_grad_(True)
    fn(x, TARGET).backward()
    assert torch.all(x.grad[0, :, 0, 2] == 0)


def test_cross_dice_sum_is_the_sum():
    total = build_loss("cross_dice_sum")(LOGITS, TARGET).item()
    assert total == pytest.approx(cross_entropy(LOGITS, TARGET).item() + dice(LOGITS, TARGET).item(), rel=1e-6)


def test_all_ignored_batch_gives_zero_with_a_graph():
    x = LOGITS.clone().requires_grad_(True)
    loss = build_loss("cross_entropy")(x, torch.full_like(TARGET, 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(x.grad == 0)


def test_unknown_loss_names_the_field():
    with pytest.raises(ValueError, match="training_config.loss"):
        build_loss("hinge")


def _iou(pred, truth):
    return (pred & truth).sum().item() / max((pred | truth).sum().item(), 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_on_hard_probabilities_is_one_minus_iou_per_class(seed):
    # the Lovasz extension equals the set function at 0/1 points: with saturated logits, 1 - IoU exactly
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (2, 6, 7), generator=g)
    pred = torch.randint(0, 2, (2, 6, 7), generator=g)
    target[0, 0, :3] = 255  # ignored pixels
    logits = torch.stack([(pred == 0).float(), (pred == 1).float()], dim=1) * 60.0
    keep = target != 255
    expected = sum(1 - _iou((pred == c) & keep, (target == c) & keep) for c in (0, 1)) / 2
    assert lovasz_softmax(logits, target).item() == pytest.approx(expected, abs=1e-6)
    # class weights weight the per-class terms
    w = [1.0, 3.0]
    per_class = [1 - _iou((pred == c) & keep, (target == c) & keep) for c in (0, 1)]
    assert lovasz_softmax(logits, target, weight=w).item() == pytest.approx(
        (per_class[0] + 3 * per_class[1]) / 4, abs=1e-6)


def test_lovasz_falls_as_predictions_improve_and_skips_absent_classes():
    target = torch.tensor([[[1, 1, 0, 0, 0, 0]]])
    good = torch.tensor([[[-2.0, -2.0, 2.0, 2.0, 2.0, 2.0], [2.0, 2.0, -2.0, -2.0, -2.0, -2.0]]]).reshape(1, 2, 1, 6)
    loss_good = lovasz_softmax(good, target).item()
    assert lovasz_softmax(-good, target).item() > loss_good > 0
    # no water in the batch: land's term alone (1 - 4/6 with two pixels called water), not averaged with water's
    assert lovasz_softmax(good * 30.0, torch.zeros_like(target)).item() == pytest.approx(1 / 3, abs=1e-6)


def test_cross_lovasz_sum_is_the_sum():
    total = build_loss("cross_lovasz_sum")(LOGITS, TARGET).item()
    assert total == pytest.approx(cross_entropy(LOGITS, TARGET).item() + lovasz_softmax(LOGITS, TARGET).item(),
                                  rel=1e-6)


@pytest.mark.parametrize("px", [1, 2, 3])
def test_ignore_boundaries_is_the_band_near_both_classes(px):
    """Against scipy's binary dilation: a labelled pixel is ignored iff a (2 px + 1)-square around it holds
    water and land; ignored pixels stay ignored and count as neither class."""
    from scipy.ndimage import binary_dilation

    g = torch.Generator().manual_seed(px)
    target = (torch.rand(3, 40, 37, generator=g) < 0.5).long()
    target[:, 10:20, 5:30] = 1  # a lake with straight shores beside the noise
    target[0, :8] = IGNORE_INDEX
    out = ignore_boundaries(target, px).numpy()
    t = target.numpy()
    square = np.ones((2 * px + 1, 2 * px + 1), bool)
    for i in range(len(t)):
        edge = binary_dilation(t[i] == 0, square) & binary_dilation(t[i] == 1, square) & (t[i] != IGNORE_INDEX)
        np.testing.assert_array_equal(out[i], np.where(edge, IGNORE_INDEX, t[i]))
    assert (out == IGNORE_INDEX).sum() > (t == IGNORE_INDEX).sum()


def test_ignore_boundaries_leaves_one_class_chips_and_zero_alone():
    land = torch.zeros(1, 16, 16, dtype=torch.long)
    torch.testing.assert_close(ignore_boundaries(land, 2), land)
    halves = torch.cat([land, land + 1], dim=2)
    assert ignore_boundaries(halves, 0) is halves
    # a straight shore: columns 14-17 (2 px each side) are ignored, the rest kept
    ignored = (ignore_boundaries(halves, 2) == IGNORE_INDEX)[0].all(dim=0)
    assert ignored.nonzero().flatten().tolist() == [14, 15, 16, 17]
