"""Do the harmonised inputs line up? Per-band dB histograms of several datasets drawn on shared axes.

Every reader returns dB (Sen1Floods11 natively, ETCI/OMBRIA through harmonise.py's fitted 8-bit maps), so
a model trained on one source sees another in the same units; this picture shows how far that holds.

    from floodwatch.data.harmonise_plot import harmonised_histograms_png
    harmonised_histograms_png(["../shared/data/sen1floods11", "../shared/data/etci2021/northal_20190302t234651"],
                              "harmonised.png")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from ..io import atomic_path
from .progress import track

#: histogram edges: the pre-processing clip range in 0.5 dB bins
EDGES = np.arange(-50.0, 5.01, 0.5)


def band_histograms(dataset: Any, max_chips: int | None = 200, seed: int = 0,
                    progress: bool | None = None) -> dict[str, np.ndarray]:
    """band -> pixel counts over EDGES of the valid pixels (at most `max_chips` chips, chosen at random)."""
    n = len(dataset)
    if n == 0:
        raise DataError(f"{getattr(dataset, 'root', 'dataset')}: no chips")
    order = np.arange(n)
    if max_chips is not None and n > max_chips:
        order = np.sort(np.random.default_rng(seed).choice(n, max_chips, replace=False))
    counts: dict[str, np.ndarray] = {}
    for i in track(order, "histograms", total=len(order), show=progress):
        s = dataset[int(i)]
        for band, image in zip(s.bands, s.image):
            v = image[s.valid & np.isfinite(image)]
            h, _ = np.histogram(np.clip(v, EDGES[0], EDGES[-1]), bins=EDGES)
            counts[band.upper()] = counts.get(band.upper(), 0) + h
    return counts


def harmonised_histograms_png(paths: Sequence[str | os.PathLike], out_png: str | os.PathLike,
                              formats: Sequence[str | None] | None = None, max_chips: int | None = 200,
                              progress: bool | None = None) -> dict[str, dict[str, np.ndarray]]:
    """One panel per band (VV, VH, ...), one density curve per dataset, with each curve's median marked.
    Returns {dataset label: {band: counts}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .formats import open_dataset

    formats = list(formats) if formats else [None] * len(paths)
    if len(formats) != len(paths):
        raise DataError(f"formats: {len(formats)} formats for {len(paths)} datasets")
    hists: dict[str, dict[str, np.ndarray]] = {}
    for path, fmt in zip(paths, formats):
        ds = open_dataset(path, fmt)
        source, name = str(getattr(ds, "format", None) or fmt or ""), Path(path).resolve().name
        label = name if source.lower() in name.lower() else f"{source}: {name}"
        if label in hists:
            label = str(path)
        hists[label] = band_histograms(ds, max_chips=max_chips, progress=progress)
    bands = sorted({b for h in hists.values() for b in h}, key=lambda b: (b != "VV", b))
    fig, axes = plt.subplots(1, len(bands), figsize=(5.2 * len(bands), 3.8), squeeze=False)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    for ax, band in zip(axes[0], bands):
        for i, (label, h) in enumerate(hists.items()):
            if band not in h or h[band].sum() == 0:
                continue
            density = h[band] / h[band].sum() / np.diff(EDGES)
            median = centres[np.searchsorted(np.cumsum(h[band]), h[band].sum() / 2)]
            line, = ax.plot(centres, density, lw=1.5, label=f"{label} (median {median:.1f} dB)")
            ax.axvline(median, color=line.get_color(), ls=":", lw=1)
        ax.set_title(f"{band} after harmonisation")
        ax.set_xlabel("backscatter (dB)")
        ax.set_ylabel("density")
        ax.set_xlim(-40, 5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return hists
