"""Per-band statistics of a dataset and the Preprocessing fitted from them."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .arguments import check_dataset, check_seed, check_whole
from .preprocess import Derived, Preprocessing
from .progress import track

PERCENTILES = (1, 5, 50, 95, 99)


def compute_stats(dataset, max_pixels: int = 2_000_000, seed: int = 0, progress: bool | None = None) -> dict[str, Any]:
    """Mean/std (exact, over all valid pixels) and percentiles (on a random sample of at most `max_pixels`
    valid pixels) per band; class balance; nodata share; and the mean/std of every normalisation input
    (after Preprocessing's dB clipping, with and without a derived channel) for `preprocessing_from_stats`.

    dataset: a ChipDataset (open_dataset's) or a sequence of Samples."""
    max_pixels = check_whole(max_pixels, "max_pixels", 1)  # 0 or less sampled one pixel a chip, silently
    seed = check_seed(seed)
    dataset = check_dataset(dataset)
    if len(dataset) == 0:
        raise DataError(f"{getattr(dataset, 'root', 'dataset')}: no chips to compute statistics on")
    rng = np.random.default_rng(seed)
    bands = tuple(getattr(dataset, "bands", None) or dataset[0].bands)
    per_chip = max(1, max_pixels // len(dataset))
    total = np.zeros(len(bands)); total_sq = np.zeros(len(bands))
    n_valid = n_pixels = 0
    counts = {"water": 0, "not_water": 0, "ignore": 0}
    samples = []
    for s in track(dataset, "statistics", total=len(dataset), show=progress):
        if s.image.shape[0] != len(bands):
            raise DataError(f"chip {s.id}: {s.image.shape[0]} bands, the dataset has {len(bands)}")
        n_pixels += s.valid.size
        for name, count in s.class_counts().items():
            counts[name] += count
        pixels = s.image[:, s.valid & np.isfinite(s.image).all(0)].astype(np.float64)  # (C, n)
        if pixels.shape[1] == 0:
            continue
        n_valid += pixels.shape[1]
        total += pixels.sum(1); total_sq += (pixels ** 2).sum(1)
        take = rng.choice(pixels.shape[1], min(per_chip, pixels.shape[1]), replace=False)
        samples.append(pixels[:, take].astype(np.float32))
    if not n_valid:
        raise DataError(f"{getattr(dataset, 'root', 'dataset')}: no valid pixels in any chip")
    sample = np.concatenate(samples, axis=1)
    mean = total / n_valid
    std = np.sqrt(np.maximum(total_sq / n_valid - mean ** 2, 0))
    band_stats = {}
    for i, b in enumerate(bands):
        q = np.percentile(sample[i], PERCENTILES)
        band_stats[b] = {"mean": float(mean[i]), "std": float(std[i]),
                         **{f"p{p}": float(v) for p, v in zip(PERCENTILES, q)}}
    labelled = counts["water"] + counts["not_water"]
    return {
        "chips": len(dataset), "bands": list(bands), "pixels": n_pixels, "valid_pixels": n_valid,
        "sampled_pixels": int(sample.shape[1]), "nodata_share": 1.0 - n_valid / n_pixels,
        "band_stats": band_stats,
        "class_balance": {**counts, "water_share": counts["water"] / labelled if labelled else None},
        "normalisation": _normalisation_inputs(sample, bands),
    }


def _normalisation_inputs(sample: np.ndarray, bands: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    # Same clipping and derived channel as Preprocessing.apply, so offsets/scales fit what the model sees.
    out = {}
    for derived in ("none", "diff", "ratio") if len(bands) >= 2 else ("none",):
        x = Preprocessing(bands=list(bands), derived=derived, offset=[0.0] * (len(bands) + (derived != "none")),
                          scale=[1.0] * (len(bands) + (derived != "none"))).derive(sample[:, None, :])[:, 0, :]
        out[derived] = {"mean": [float(v) for v in x.mean(1)], "std": [float(v) for v in x.std(1)]}
    return out


def preprocessing_from_stats(stats: dict[str, Any], derived: Derived = "none") -> Preprocessing:
    """Standardise each network input channel with the dataset's mean and std (Preprocessing.from_stats)."""
    try:
        norm = stats["normalisation"][derived]
        bands = stats["bands"]
    except (KeyError, TypeError):
        raise DataError(f"statistics: no normalisation entry for derived='{derived}' "
                        "(derived channels need 2 bands; recompute with compute_stats)") from None
    return Preprocessing.from_stats(norm["mean"], norm["std"], bands=bands, derived=derived)


# -- Otsu's threshold: the generic histogram split (the Otsu baseline is evaluation.otsu) ------------------
def otsu_from_histogram(counts: np.ndarray, edges: np.ndarray) -> float:
    """Threshold (a bin edge) maximising the between-class variance of a histogram; nan if it is empty."""
    counts = np.asarray(counts, np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    total = counts.sum()
    if total == 0:
        return float("nan")
    w0 = np.cumsum(counts)[:-1]  # pixels at or below each candidate split
    w1 = total - w0
    s0 = np.cumsum(counts * centres)[:-1]
    s1 = float((counts * centres).sum()) - s0
    with np.errstate(divide="ignore", invalid="ignore"):
        # between-class variance times total**2 (same argmax): w0 * w1 * (mean0 - mean1)**2
        between = w0 * w1 * (s0 / w0 - s1 / w1) ** 2
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    if between.max() < 0:  # a single occupied bin: no split exists
        return float(edges[-1])
    return float(edges[1:-1][int(np.argmax(between))])


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of the finite values (256 bins over their range, as in scikit-image)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return hi
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return otsu_from_histogram(counts, edges)
