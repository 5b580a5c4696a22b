"""Pictures of predictions: a SAR backdrop in grey with water or errors painted over it."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..io import atomic_path

#: colours (RGB) of the comparison overlay; the HTML report's legend uses the same.
COLOURS = {"hit (water, found)": (30, 110, 255), "false alarm": (235, 45, 45),
           "missed water": (255, 200, 0), "not scored (nodata / ignore)": (60, 0, 70)}
_TP, _FP, _FN, _IGN = (np.array(c, np.uint8) for c in COLOURS.values())
WATER_COLOUR = np.array((0, 200, 255), np.uint8)
#: text size (px) of the pictures' titles and legends. Pillow's bundled font at its default 10 px sets a word
#: space no wider than the gaps between letters ("SAR after" reads "SARafter", "no data" "nodata"); at 13 px
#: the space is 5 px against their 1-3.
LABEL_FONT_PX = 13


def label_font(size: int = LABEL_FONT_PX):
    """Pillow's bundled font at `size` px; its fixed bitmap font where Pillow (before 10.1) takes no size."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def sar_backdrop(band_db: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) dB -> (H, W, 3) uint8 grey, stretched between the 2nd and 98th percentile of valid pixels."""
    b = np.asarray(band_db, np.float32)
    ok = np.isfinite(b) if valid is None else (np.asarray(valid, bool) & np.isfinite(b))
    grey = np.zeros(b.shape, np.uint8)
    if ok.any():
        lo, hi = np.percentile(b[ok], [2, 98])
        scaled = (np.clip(b, lo, hi) - lo) / max(float(hi - lo), 1e-6) * 255
        grey = np.where(ok, np.nan_to_num(scaled), 0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _blend(rgb: np.ndarray, where: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    rgb[where] = (rgb[where] * (1 - alpha) + colour * alpha).astype(np.uint8)


def comparison_rgb(backdrop: np.ndarray, pred: np.ndarray, truth: np.ndarray, scored: np.ndarray,
                   alpha: float = 0.65) -> np.ndarray:
    """Prediction vs truth over the backdrop: hits blue, false alarms red, misses yellow, unscored dark."""
    rgb = backdrop.copy()
    pred, truth, scored = (np.asarray(a, bool) for a in (pred, truth, scored))
    _blend(rgb, scored & pred & truth, _TP, alpha)
    _blend(rgb, scored & pred & ~truth, _FP, alpha)
    _blend(rgb, scored & ~pred & truth, _FN, alpha)
    _blend(rgb, ~scored, _IGN, 0.6)
    return rgb


def water_rgb(backdrop: np.ndarray, water: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Predicted water in cyan over the backdrop (no truth needed)."""
    rgb = backdrop.copy()
    _blend(rgb, np.asarray(water, bool), WATER_COLOUR, alpha)
    return rgb


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels of equal height joined left to right with white gaps."""
    h = panels[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [spacer, p]
    return np.concatenate(out, axis=1)


def with_legend(rgb: np.ndarray, titles: Sequence[str] = (), colours: dict = COLOURS) -> np.ndarray:
    """`rgb` with a white strip below: the panels' titles (left to right, evenly spaced) on one line and a
    swatch and name per colour on the next, so a saved picture explains itself."""
    from PIL import ImageDraw

    font = label_font()
    line = getattr(font, "size", 10) + 4
    strip = Image.new("RGB", (rgb.shape[1], 2 * line + 8), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, title in enumerate(titles):
        draw.text((4 + i * rgb.shape[1] // len(titles), 2), title, fill=(0, 0, 0), font=font)
    x = 4
    for name, colour in colours.items():
        if x > rgb.shape[1]:
            break  # a narrow chip shows what fits; the colours are also in the report's legend
        draw.rectangle((x, line + 5, x + 11, line + 16), fill=tuple(colour))
        draw.text((x + 15, line + 4), name, fill=(0, 0, 0), font=font)
        x += 15 + int(draw.textlength(name, font=font)) + 14
    return np.concatenate([rgb, np.asarray(strip, np.uint8)], axis=0)


def save_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """uint8 (H, W) or (H, W, 3) -> PNG, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return path


def safe_name(chip_id: str) -> str:
    """A chip id usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", chip_id).strip("._") or "chip"
