"""Segmentation scores for the binary water / not-water task.

Everything is built from one 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` (rows = truth, columns =
prediction), so pixel-aggregated scores, per-chip scores and streaming accumulation all agree.

0/0 cases: a ratio whose denominator is zero is ``nan`` (e.g. water IoU on a chip with no water that
the model also calls dry). ``nan`` is "undefined", not "perfect" or "wrong", so chip means skip it
(``np.nanmean``) and report how many chips contributed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.sample import IGNORE_INDEX, NOT_WATER, WATER
from ..errors import FloodwatchError

SCORE_NAMES = ("water_iou", "not_water_iou", "miou", "f1", "precision", "recall", "accuracy")


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_counts(pred: Any, target: Any, ignore_index: int = IGNORE_INDEX,
                     valid: Any = None) -> np.ndarray:
    """2x2 int64 ``[[tn, fp], [fn, tp]]`` over the pixels where target != ignore_index (and valid).

    pred: class indices (0/1) or booleans, any shape; target: same shape with 0/1/ignore_index;
    valid: optional boolean mask of the same shape (False = excluded, e.g. nodata).
    Accepts numpy arrays or torch tensors.
    """
    p, t = _to_numpy(pred), _to_numpy(target)
    if p.shape != t.shape:
        raise FloodwatchError(f"confusion_counts: prediction shape {p.shape} != target shape {t.shape}")
    keep = t != ignore_index
    if valid is not None:
        v = _to_numpy(valid).astype(bool)
        if v.shape != t.shape:
            raise FloodwatchError(f"confusion_counts: valid shape {v.shape} != target shape {t.shape}")
        keep &= v
    p = p[keep].astype(np.int64)
    t = t[keep].astype(np.int64)
    bad = (t != NOT_WATER) & (t != WATER)
    if bad.any():
        raise FloodwatchError(f"confusion_counts: target holds values other than 0, 1, {ignore_index}: "
                              f"{sorted(set(np.unique(t[bad]).tolist()))[:5]}")
    p = (p != NOT_WATER).astype(np.int64)  # any non-zero prediction counts as water
    return np.bincount(t * 2 + p, minlength=4).reshape(2, 2).astype(np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def scores(counts: Any) -> dict[str, float]:
    """Scores from a 2x2 confusion matrix; undefined ratios (0/0) are nan.

    miou is the mean of the defined class IoUs (nan only if both are undefined, i.e. no pixels).
    f1 equals the Dice coefficient of the water class.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (2, 2):
        raise FloodwatchError(f"scores: confusion matrix must be 2x2, got shape {c.shape}")
    (tn, fp), (fn, tp) = c.tolist()
    water_iou = _ratio(tp, tp + fp + fn)
    not_water_iou = _ratio(tn, tn + fn + fp)
    ious = [v for v in (water_iou, not_water_iou) if not np.isnan(v)]
    return {
        "water_iou": water_iou,
        "not_water_iou": not_water_iou,
        "miou": float(np.mean(ious)) if ious else float("nan"),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "accuracy": _ratio(tp + tn, tn + fp + fn + tp),
    }


class ConfusionAccumulator:
    """Streaming confusion counts: pixel totals plus per-chip scores for chip means.

    >>> acc = ConfusionAccumulator()
    >>> acc.update(pred_batch, mask_batch)          # (N,H,W): each item is a chip
    >>> acc.compute()["water_iou"], acc.compute()["water_iou_chip_mean"]
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros((2, 2), np.int64)
        self.chip_scores: list[dict[str, float]] = []
        self.empty_chips = 0

    def update(self, pred: Any, target: Any, valid: Any = None, *, per_chip: bool = True) -> np.ndarray:
        """Add a batch (N,H,W) or one chip (H,W); returns the counts of what was added.

        Chips without a single scorable pixel are counted in `empty_chips` and not scored.
        """
        p, t = _to_numpy(pred), _to_numpy(target)
        v = None if valid is None else _to_numpy(valid)
        if t.ndim == 2 or not per_chip:
            chips = [(p, t, v)]
        else:
            chips = [(p[i], t[i], None if v is None else v[i]) for i in range(t.shape[0])]
        added = np.zeros((2, 2), np.int64)
        for pi, ti, vi in chips:
            c = confusion_counts(pi, ti, self.ignore_index, vi)
            if c.sum() == 0:
                self.empty_chips += 1
                continue
            added += c
            if per_chip:
                self.chip_scores.append(scores(c))
        self.counts += added
        return added

    def compute(self) -> dict[str, Any]:
        """Pixel-aggregated scores, `<name>_chip_mean` (nan-skipping), counts and chip numbers."""
        out: dict[str, Any] = dict(scores(self.counts))
        for name in SCORE_NAMES:
            vals = np.array([s[name] for s in self.chip_scores], dtype=np.float64)
            defined = vals[~np.isnan(vals)]
            out[f"{name}_chip_mean"] = float(defined.mean()) if defined.size else float("nan")
        out["confusion"] = self.counts.tolist()
        out["pixels"] = int(self.counts.sum())
        out["chips"] = len(self.chip_scores)
        out["empty_chips"] = self.empty_chips
        out["chips_with_defined_water_iou"] = int(sum(not np.isnan(s["water_iou"]) for s in self.chip_scores))
        return out

    def merge(self, other: "ConfusionAccumulator") -> "ConfusionAccumulator":
        """Add another accumulator's state (e.g. from a worker)."""
        self.counts += other.counts
        self.chip_scores.extend(other.chip_scores)
        self.empty_chips += other.empty_chips
        return self
