"""Scoring change detection on OMBRIA-S1 (bi-temporal chips with flood masks), beside the log-ratio baseline.

IoU of the flood class, pixel-aggregated over the split (sum of intersections / sum of unions), for:
  logratio_-3db   after - before < -3 dB (the classical threshold)
  logratio_otsu   the same difference, thresholded per chip with Otsu
  difference      (single-date water model) water after and not water before
  water_after     (single-date water model) water after, ignoring the before image
  bitemporal      (bi-temporal model) its new-water prediction
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from .change import LOGRATIO_DB, logratio_change, model_temporal


def _iou(counts: np.ndarray) -> float | None:
    inter, union = counts
    return float(inter / union) if union else None  # nothing predicted, nothing labelled: no IoU (strict JSON)


def score_change_on_ombria(root: str | Path, predictor: Any = None, *, split: str = "test", threshold: float = 0.5,
                           batch: int = 8, progress: bool = False) -> dict[str, Any]:
    """{'chips': n, 'flood_fraction': f, 'iou': {method: IoU, None where nothing was predicted or labelled}}
    on `root`'s split (the OMBRIA folder), over the pixels inside both dates' swath."""
    from ..data.sources.ombria import open_ombria
    from ..data.preprocess import network_input

    ds = open_ombria(Path(root), split=split)
    methods = ["logratio_-3db", "logratio_otsu"]
    kind = model_temporal(predictor) if predictor is not None else None
    if kind == "bitemporal":
        methods.append("bitemporal")
    elif predictor is not None:
        methods += ["difference", "water_after"]
    counts = {m: np.zeros(2, np.int64) for m in methods}
    flood_px = total_px = 0

    def add(method: str, pred: np.ndarray, truth: np.ndarray) -> None:
        counts[method] += ((pred & truth).sum(), (pred | truth).sum())

    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"OMBRIA {split}", total=len(ds))
        for start in range(0, len(ds), batch):
            chips = [ds[i] for i in range(start, min(len(ds), start + batch))]
            # pixels outside either date's swath are scored by no method
            truths = [(s.mask == 1) & s.valid for s in chips]
            for s, truth in zip(chips, truths):
                flood_px += int(truth.sum())
                total_px += int(s.valid.sum())
                add("logratio_-3db", logratio_change(s.before[0], s.image[0], s.valid, LOGRATIO_DB)[0], truth)
                add("logratio_otsu", logratio_change(s.before[0], s.image[0], s.valid, "otsu")[0], truth)
            if predictor is not None:
                pre = predictor.preprocessing
                if kind == "bitemporal":  # network_input stacks before+after exactly as training does
                    prob = predictor.predict(np.stack([network_input(s, pre, "bitemporal") for s in chips]))
                    for p, s, truth in zip(prob, chips, truths):
                        add("bitemporal", (p >= threshold) & s.valid, truth)
                else:  # each date through network_input, as change maps it: bands by name, a chip's misfit named
                    xa = np.stack([network_input(s, pre) for s in chips])
                    xb = np.stack([network_input(replace(s, image=s.before), pre) for s in chips])
                    pa, pb = predictor.predict(xa) >= threshold, predictor.predict(xb) >= threshold
                    for a, b, s, truth in zip(pa, pb, chips, truths):
                        add("difference", a & ~b & s.valid, truth)
                        add("water_after", a & s.valid, truth)
            bar.advance(task, len(chips))
    return {"split": split, "chips": len(ds), "flood_fraction": flood_px / max(1, total_px),
            "iou": {m: _iou(c) for m, c in counts.items()}}
