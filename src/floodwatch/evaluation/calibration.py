"""Is a probability of 0.8 right 80 % of the time? Expected calibration error, reliability diagrams and
temperature scaling.

ECE here is the binary form (as torchmetrics' BinaryCalibrationError): the water probability p is binned
into 15 equal bins over [0, 1], and ECE = sum_b (n_b / n) * |mean p in b - water share in b|, over valid,
labelled pixels only.

Temperature scaling (Guo et al. 2017) divides the logits by one number T fitted on held-out data. For a
2-class softmax only the logit difference matters, so p' = sigmoid(logit(p) / T) does the same from
probabilities, and any Predictor can be wrapped (`inference.temperature.TemperaturePredictor`). T > 1 softens an over-confident
model; the ranking of pixels, hence the 0.5-threshold mask, does not change.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.sample import IGNORE_INDEX, WATER, Sample
from ..errors import DataError
from ..inference.base import predictor_temporal, progress_bar
from ..inference.temperature import _EPS, apply_temperature, logit
from ..io import atomic_path

N_BINS = 15


class CalibrationAccumulator:
    """Streaming reliability bins: pixel count, summed probability and water count per bin."""

    def __init__(self, bins: int = N_BINS):
        self.bins = int(bins)
        self.count = np.zeros(self.bins, np.int64)
        self.prob_sum = np.zeros(self.bins, np.float64)
        self.water = np.zeros(self.bins, np.int64)

    def update(self, prob: Any, target: Any, valid: Any = None) -> None:
        p = np.asarray(prob, np.float64)
        t = np.asarray(target)
        keep = (t != IGNORE_INDEX) & np.isfinite(p)
        if valid is not None:
            keep &= np.asarray(valid, bool)
        p, t = p[keep], t[keep]
        # bin b holds (b/B, (b+1)/B]; 0 goes to the first bin
        idx = np.clip(np.ceil(p * self.bins).astype(np.int64) - 1, 0, self.bins - 1)
        self.count += np.bincount(idx, minlength=self.bins)
        self.prob_sum += np.bincount(idx, weights=p, minlength=self.bins)
        self.water += np.bincount(idx, weights=(t == WATER), minlength=self.bins).astype(np.int64)

    def ece(self) -> float:
        n = self.count.sum()
        if n == 0:
            return float("nan")
        used = self.count > 0
        gap = np.abs(self.prob_sum[used] / self.count[used] - self.water[used] / self.count[used])
        return float((self.count[used] / n * gap).sum())

    def reliability(self) -> dict[str, list]:
        """Per bin: edges, pixel count, mean probability and observed water share (None where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = self.prob_sum / self.count
            freq = self.water / self.count
        nan_to_none = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
        return {"edges": np.linspace(0, 1, self.bins + 1).tolist(), "count": self.count.tolist(),
                "mean_probability": nan_to_none(conf), "water_share": nan_to_none(freq)}


def expected_calibration_error(prob: Any, target: Any, valid: Any = None, bins: int = N_BINS) -> float:
    """ECE of water probabilities against 0/1 labels (IGNORE_INDEX and invalid pixels left out)."""
    acc = CalibrationAccumulator(bins)
    acc.update(prob, target, valid)
    return acc.ece()


def reliability_png(reliability: dict[str, list] | Sequence[tuple[str, dict[str, list]]],
                    out_png: str | os.PathLike, title: str = "reliability") -> Path:
    """Reliability diagram: observed water share against mean probability per bin, with pixel counts below.
    `reliability`: one `CalibrationAccumulator.reliability()` dict or (label, dict) pairs to overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [("model", reliability)] if isinstance(reliability, dict) else list(reliability)
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    for label, r in curves:
        pts = [(c, f) for c, f in zip(r["mean_probability"], r["water_share"]) if c is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=4, label=label)
        centres = (np.array(r["edges"][:-1]) + np.array(r["edges"][1:])) / 2
        hist.bar(centres, np.maximum(r["count"], 1), width=1 / len(centres), alpha=0.5, label=label)
    ax.set_ylabel("observed water share")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    hist.set_yscale("log")
    hist.set_xlabel("predicted water probability")
    hist.set_ylabel("pixels")
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out_png


# -- temperature scaling (the wrapper itself, TemperaturePredictor, is in inference/temperature.py) -------
#: the range fit_temperature searches; a fit at either end is no minimum (see `bound_note`)
TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(prob: Any, target: Any, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """T minimising the binary NLL of sigmoid(logit(prob)/T) against 0/1 `target` (1-D, bounded, in log T)."""
    from scipy.optimize import minimize_scalar

    z = logit(np.asarray(prob).ravel())
    y = np.asarray(target).ravel().astype(np.float64)
    if z.size == 0:
        raise DataError("temperature: no labelled pixels to fit on")
    if z.size != y.size:
        raise DataError(f"temperature: {z.size} probabilities for {y.size} labels")

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        # -log sigmoid(s) = logaddexp(0, -s); the label picks s or -s
        return float(np.mean(np.logaddexp(0.0, np.where(y > 0.5, -s, s))))

    res = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


def check_calibration_data(predictor: Any, samples: Sequence[Sample], name: str | None = None) -> None:
    """What calibration_pixels would refuse, found on one chip before anything is predicted: no labelled,
    non-empty chip, or chips the model cannot take (bands, a bi-temporal model without 'before'). DataError
    naming `name` (the data) and the chip: a caller scoring first learns it before, not after, the scoring."""
    from ..data.preprocess import network_input

    where = f"{name}: " if name else ""
    chip = next((s for s in samples if s.mask is not None and not s.is_empty), None)
    if chip is None:
        raise DataError(f"{where}temperature: the calibration data has no labelled, non-empty chip")
    try:
        network_input(chip, predictor.preprocessing, predictor_temporal(predictor))
    except DataError as exc:  # a data set's chip names only its id ("0013: ..."): say which data it is of
        what = str(exc) if "path" in chip.extra else f"chip {chip.id}: {str(exc).removeprefix(chip.id + ': ')}"
        raise DataError(f"{where}{what}") from None


def calibration_pixels(predictor: Any, samples: Sequence[Sample], max_pixels: int = 1_000_000, seed: int = 0,
                       batch_size: int = 8, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(probability, label) of a random subset of the valid, labelled pixels of `samples` under `predictor`,
    at most `max_pixels` in all (an equal share per chip), for fitting a temperature."""
    from ..data.preprocess import network_input

    chips = [s for s in samples if s.mask is not None and not s.is_empty]
    if not chips:
        raise DataError("temperature: the calibration data has no labelled, non-empty chip")
    rng = np.random.default_rng(seed)
    per_chip = max(1, max_pixels // len(chips))
    temporal = predictor_temporal(predictor)
    probs, labels = [], []
    with progress_bar(progress, len(chips), "calibrating") as bar:
        for i in range(0, len(chips), batch_size):
            group = chips[i:i + batch_size]
            for s, p in zip(group, _predict_group(predictor, group, temporal, network_input)):
                keep = np.flatnonzero((s.valid & (s.mask != IGNORE_INDEX)).ravel())
                take = rng.choice(keep, min(per_chip, keep.size), replace=False)
                probs.append(p.ravel()[take])
                labels.append((s.mask.ravel()[take] == WATER).astype(np.uint8))
            if bar is not None:
                bar.advance(bar.task_ids[0], len(group))
    return np.concatenate(probs), np.concatenate(labels)


def _predict_group(predictor: Any, group: list[Sample], temporal: str, network_input) -> list[np.ndarray]:
    inputs = [network_input(s, predictor.preprocessing, temporal) for s in group]
    if len({x.shape for x in inputs}) == 1:
        return list(np.asarray(predictor.predict(np.stack(inputs))))
    return [np.asarray(predictor.predict(x[None]))[0] for x in inputs]  # mixed chip sizes cannot stack


def _before_after(prob: np.ndarray, label: np.ndarray, temperature: float) -> dict[str, Any]:
    after = apply_temperature(prob, temperature)
    out: dict[str, Any] = {"pixels": int(prob.size)}
    for key, p in (("before", prob), ("after", after)):
        acc = CalibrationAccumulator()
        acc.update(p, label)
        q = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
        out[f"ece_{key}"] = acc.ece()
        out[f"nll_{key}"] = float(-np.mean(np.where(label == 1, np.log(q), np.log1p(-q))))
        out[f"reliability_{key}"] = acc.reliability()
    return out


def calibrate(predictor: Any, fit_samples: Sequence[Sample], check_samples: Sequence[Sample] | None = None, *,
              max_pixels: int = 1_000_000, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Fit a temperature on `fit_samples` (validation chips) and measure ECE/NLL before and after it on
    them ('fit') and, when given, on held-out `check_samples` ('check'). Returns {'temperature', 'fit',
    'check'?}, each part with ece_before/after, nll_before/after and reliability_before/after."""
    prob, label = calibration_pixels(predictor, fit_samples, max_pixels, seed, progress=progress)
    t = fit_temperature(prob, label)
    out: dict[str, Any] = {"temperature": t, "fit": _before_after(prob, label, t)}
    if (note := bound_note(t)) is not None:
        out["note"] = note
    if check_samples is not None:
        prob, label = calibration_pixels(predictor, check_samples, max_pixels, seed, progress=progress)
        out["check"] = _before_after(prob, label, t)
    return out


def bound_note(t: float, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> str | None:
    """A line for a temperature at the end of the searched range: the likelihood still fell there, so T is a
    clamp, not a fit; at the top the probabilities barely relate to the labels (an untrained model, other data)."""
    lo, hi = bounds
    if t >= hi * 0.999:
        return (f"T reached the largest value searched ({hi:g}): the model's probabilities barely relate to "
                "these labels (untrained, or other data); a temperature cannot make them informative")
    if t <= lo * 1.001:
        return f"T reached the smallest value searched ({lo:g}): the model is far too unsure for these labels"
    return None
