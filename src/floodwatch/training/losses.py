"""Segmentation losses on logits (N, K, H, W) and targets (N, H, W); pixels = IGNORE_INDEX never count.

`cross_dice_sum` is TAO's name for cross-entropy + Dice. Dice is computed over the whole batch (all pixels
pooled), which is stable on chips with little water; class weights weight both the CE terms and the
per-class Dice terms.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..data.sample import IGNORE_INDEX, NOT_WATER, WATER
from ..errors import InvalidArgumentError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _weights(weight: Sequence[float] | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    if weight is None:
        return None
    return torch.as_tensor(weight, dtype=torch.float32, device=logits.device)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
                  ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean over scored pixels (weighted mean with class weights, as torch's)."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0  # keeps the graph; a batch with nothing to learn adds nothing
    return F.cross_entropy(logits.float(), target, weight=_weights(weight, logits), ignore_index=ignore_index)


def dice(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
         ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per class, averaged over classes (weighted average with class weights)."""
    k = logits.shape[1]
    keep = (target != ignore_index).unsqueeze(1).float()
    prob = torch.softmax(logits.float(), dim=1) * keep
    onehot = F.one_hot(torch.where(target == ignore_index, 0, target), k).permute(0, 3, 1, 2).float() * keep
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    per_class = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    w = _weights(weight, logits)
    if w is None:
        return per_class.mean()
    return (per_class * w).sum() / w.sum()


def cross_dice_sum(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    return cross_entropy(logits, target, weight, ignore_index) + dice(logits, target, weight, ignore_index)


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Lovasz-softmax (Berman et al., CVPR 2018): the Lovasz extension of 1 - IoU per class, over all scored
    pixels of the batch pooled (as `dice`), averaged over the classes present (weighted with class weights).
    On hard probabilities (0 or 1) it equals 1 - IoU per class exactly; softmax makes it a tight surrogate."""
    keep = target != ignore_index
    if not keep.any():
        return logits.sum() * 0.0
    prob = torch.softmax(logits.float(), dim=1).permute(0, 2, 3, 1)[keep]  # (P, K)
    labels = target[keep]
    w = _weights(weight, logits)
    losses, weights = [], []
    for c in range(prob.shape[1]):
        fg = (labels == c).float()
        if fg.sum() == 0:  # a class absent from the batch has no IoU to lose
            continue
        errors = (fg - prob[:, c]).abs()
        errors, order = torch.sort(errors, descending=True)
        gt = fg[order]
        inter = gt.sum() - gt.cumsum(0)
        union = gt.sum() + (1.0 - gt).cumsum(0)
        jaccard = 1.0 - inter / union
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])  # the extension's weights
        losses.append(torch.dot(errors, grad))
        weights.append(1.0 if w is None else w[c])
    weights = torch.as_tensor(weights, dtype=torch.float32, device=logits.device)
    return (torch.stack(losses) * weights).sum() / weights.sum()


def cross_lovasz_sum(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy + Lovasz-softmax: `cross_dice_sum` with the IoU surrogate in place of Dice."""
    return cross_entropy(logits, target, weight, ignore_index) + lovasz_softmax(logits, target, weight, ignore_index)


def focal(logits: torch.Tensor, target: torch.Tensor, weight: Sequence[float] | None = None,
          ignore_index: int = IGNORE_INDEX, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): mean over scored pixels of -alpha_t (1 - p_t)^gamma log p_t."""
    keep = target != ignore_index
    if not keep.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits.float(), dim=1)
    t = torch.where(keep, target, 0)
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)[keep]
    loss = -((1.0 - logp_t.exp()) ** gamma) * logp_t
    w = _weights(weight, logits)
    if w is not None:
        loss = loss * w[t[keep]]
    return loss.mean()


LOSSES = {"cross_entropy": cross_entropy, "dice": dice, "cross_dice_sum": cross_dice_sum, "focal": focal,
          "lovasz": lovasz_softmax, "cross_lovasz_sum": cross_lovasz_sum}


def ignore_boundaries(target: torch.Tensor, px: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """`target` (N, H, W) with every labelled pixel within `px` pixels (a (2 px + 1)-square) of both a water
    and a land pixel set to `ignore_index`: a band about 2 px wide along each shore is not learned. Hand labels
    of different sources draw shores differently (and a 10 m pixel there is part water), so the band is the
    labels' least certain part. Scoring never does this."""
    if px <= 0:
        return target
    k = 2 * px + 1
    near = [F.max_pool2d((target == c).float()[:, None], k, stride=1, padding=px)[:, 0] > 0 for c in (NOT_WATER, WATER)]
    return torch.where(near[0] & near[1] & (target != ignore_index), torch.full_like(target, ignore_index), target)


def build_loss(name: str, weight: Sequence[float] | None = None, focal_gamma: float = 2.0) -> LossFn:
    """The spec's `training_config.loss` as a function of (logits, target)."""
    if name not in LOSSES:
        raise InvalidArgumentError(f"training_config.loss: unknown loss '{name}' ({', '.join(LOSSES)})")
    fn = LOSSES[name]
    if name == "focal":
        return lambda logits, target: focal(logits, target, weight, gamma=focal_gamma)
    return lambda logits, target: fn(logits, target, weight)
