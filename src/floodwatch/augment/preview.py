"""A picture to check augmentation by eye: original and augmented image + mask, side by side (the course's
DALI preview). `floodwatch data preview` calls `preview_grid`.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data.preprocess import DEFAULT_CLIP, Preprocessing
from ..data.sample import IGNORE_INDEX, Sample
from ..errors import DataError, InvalidArgumentError
from ..io import save_figure
from .batch import BatchAugmenter
from .config import PREVIEW_CONFIG

#: display range of the first band in dB (water ~ -20 dB and darker, land ~ -8 dB)
DB_RANGE = (-30.0, 0.0)


def preview_grid(path: str | os.PathLike, out_png: str | os.PathLike, *, n: int = 8, seed: int = 0,
                 format: str | None = None, augmentation_config: Mapping[str, Any] | Any = None) -> Path:
    """Draw `n` random non-empty chips of the data set at `path`, each beside an augmented copy, into out_png.

    augmentation_config: the spec's section; None shows every operator switched on (PREVIEW_CONFIG).
    """
    from ..data import open_dataset  # the data stage; imported here so the rest of augment does not need it

    if n < 1:  # _pick would take every chip it reads for n <= 0
        raise InvalidArgumentError(f"n: {n} chips to show; must be at least 1")
    dataset = open_dataset(path, format)
    return preview_samples(_pick(dataset, n, seed, str(path)), out_png, seed=seed,
                           augmentation_config=augmentation_config)


def preview_samples(samples: Sequence[Sample], out_png: str | os.PathLike, *, seed: int = 0,
                    augmentation_config: Mapping[str, Any] | Any = None) -> Path:
    """The grid for samples already in hand: one row per chip, original | mask | augmented | augmented mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if not samples:
        raise DataError("preview: no chips to show")
    config = PREVIEW_CONFIG if augmentation_config is None else augmentation_config
    bands = len(samples[0].bands)
    prep = Preprocessing(bands=list(samples[0].bands), clip=[DEFAULT_CLIP] * bands, offset=[-15.0] * bands,
                         scale=[0.2] * bands)
    aug = BatchAugmenter.from_config(config, seed=seed, db_scale=prep)
    # 0 land (tan), 1 water (blue), 2 ignored (grey)
    mask_cmap = ListedColormap(["#d8c99b", "#1f5fbf", "#9a9a9a"])

    # constrained layout makes room for the suptitle, which tight_layout let overlap a tall column heading
    fig, axes = plt.subplots(len(samples), 4, figsize=(10, 2.5 * len(samples)), squeeze=False,
                             layout="constrained")
    for row, s in zip(axes, samples):
        image = torch.from_numpy(prep.apply(s.image, s.valid))[None]
        mask = torch.from_numpy(_mask_of(s))[None]
        valid = torch.from_numpy(np.asarray(s.valid, bool))[None]
        a_img, a_mask, _ = aug(image, mask, valid)
        shown = [(image, mask), (a_img, a_mask)]
        for k, (img, msk) in enumerate(shown):
            db = img[0, 0].numpy() / prep.scale[0] + prep.offset[0]
            row[2 * k].imshow(db, cmap="gray", vmin=DB_RANGE[0], vmax=DB_RANGE[1])
            row[2 * k + 1].imshow(_mask_codes(msk[0].numpy()), cmap=mask_cmap, vmin=0, vmax=2,
                                  interpolation="nearest")
        row[0].set_ylabel(s.id[:28], fontsize=7)
        p = aug.last_params
        # wrapped: a long list ran into the next column's heading
        row[2].set_title("\n".join(textwrap.wrap(_describe(p, s.bands), 40)), fontsize=7)
    for ax, title in zip(axes[0], (f"{samples[0].bands[0]} dB", "mask", "augmented", "augmented mask")):
        ax.set_title(title + ("\n" + ax.get_title() if ax.get_title() else ""), fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("augmentation preview: land tan, water blue, ignored grey", fontsize=9)
    return save_figure(fig, out_png, dpi=80)


def _pick(dataset: Sequence[Sample], n: int, seed: int, where: str) -> list[Sample]:
    order = np.random.default_rng(seed).permutation(len(dataset))
    picked: list[Sample] = []
    for i in order[: max(20 * n, n)]:  # empty chips are skipped, but do not read a whole archive for them
        s = dataset[int(i)]
        if not s.is_empty:
            picked.append(s)
            if len(picked) == n:
                break
    if not picked:
        raise DataError(f"{where}: no chip with valid pixels and labels to preview")
    return picked


def _mask_of(s: Sample) -> np.ndarray:
    if s.mask is None:
        return np.full(s.shape, IGNORE_INDEX, np.int64)
    return np.where(np.asarray(s.valid, bool), np.asarray(s.mask), IGNORE_INDEX).astype(np.int64)


def _mask_codes(mask: np.ndarray) -> np.ndarray:
    return np.where(mask == IGNORE_INDEX, 2, mask)


def _describe(p: dict[str, torch.Tensor], bands: Sequence[str]) -> str:
    parts = [name for name in ("hflip", "vflip") if bool(p[name][0])]
    if bool(p["crop"][0]):
        y0, x0, y1, x1 = p["roi"][0].tolist()
        parts.append(f"crop {y1 - y0:.0f}x{x1 - x0:.0f}")
    if bool(p["rotate"][0]):
        parts.append(f"rot {float(p['angle'][0]):+.0f}°")
    if bool(p["brightness"][0]):
        shifts = [round(float(d), 1) for d in p["brightness_db"][0]]  # per band (band_delta), else all equal
        parts.append(f"{shifts[0]:+.1f} dB" if len(set(shifts)) == 1 else "/".join(f"{d:+.1f}" for d in shifts) + " dB")
    if bool(p["contrast"][0]):
        parts.append(f"contrast x{float(p['contrast_factor'][0]):.2f}")
    if bool(p["speckle"][0]):
        parts.append("speckle")
    dropped = int(p["dropped_channel"][0])
    if dropped >= 0:  # a derived channel (VV-VH) comes after the bands
        parts.append(f"{bands[dropped] if dropped < len(bands) else f'channel {dropped}'} dropped")
    return ", ".join(parts) or "unchanged"
