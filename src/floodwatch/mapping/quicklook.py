"""quicklook.png: the scene's VV backdrop with the mask painted over it, north up, with a legend, a north
arrow and a scale bar, so that a picture sent on its own can be read."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .area import pixel_to_crs
from .outputs import EXCLUDED, MASK_NODATA, PERMANENT

#: legend: name -> (mask value, RGB); value 1 is "water" where no permanent-water reference sets rivers apart
CLASSES = {"flood": (1, (242, 38, 25)), "water": (1, (242, 38, 25)), "permanent water": (PERMANENT, (25, 90, 242)),
           "excluded (terrain)": (EXCLUDED, (245, 200, 40)), "no data": (MASK_NODATA, (0, 0, 0))}


class Quicklook:
    """Keeps every step-th row/column of the SAR backdrop and the mask in arrays of the quicklook's size
    (filled window by window); renders a PNG at the end. With the scene's `transform` and `crs` the picture
    is turned north up (a bottom-up grid would show the scene upside down) and gets a north arrow and a scale
    bar."""

    def __init__(self, height: int, width: int, max_side: int = 1200, transform=None, crs=None):
        self.step = max(1, math.ceil(max(height, width) / max_side))
        shape = (math.ceil(height / self.step), math.ceil(width / self.step))
        self.sar = np.full(shape, np.nan, np.float32)
        self.mask = np.full(shape, MASK_NODATA, np.uint8)
        self.height, self.width, self.transform, self.crs = height, width, transform, crs

    def add_sar(self, row0: int, vv_db: np.ndarray, col0: int = 0) -> None:
        """The backdrop alone: `map_scene` keeps it as soon as a window is read, so that the window's full
        VV need not wait in the writer's queue."""
        self._put(self.sar, row0, col0, vv_db)

    def add_mask(self, row0: int, mask: np.ndarray, col0: int = 0) -> None:
        self._put(self.mask, row0, col0, mask)

    def _put(self, target: np.ndarray, row0: int, col0: int, window: np.ndarray) -> None:
        r, c = (-row0) % self.step, (-col0) % self.step
        part = window[r::self.step, c::self.step]
        i, j = (row0 + r) // self.step, (col0 + c) // self.step
        target[i:i + part.shape[0], j:j + part.shape[1]] = part

    def rgb(self) -> np.ndarray:
        """(H, W, 3) float 0-1: VV from -25 to 0 dB in grey, every mask class painted over it."""
        grey = np.clip((np.nan_to_num(self.sar, nan=-25.0) + 25.0) / 25.0, 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        for value, colour in dict(CLASSES.values()).items():
            sel = self.mask == value
            alpha = 1.0 if value == MASK_NODATA else 0.65
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.array(colour) / 255.0
        return rgb

    def orientation(self) -> tuple[bool, bool, float | None, float | None]:
        """(flip rows, flip columns, north's angle in the flipped picture in degrees clockwise from up, metres
        per quicklook pixel along its rows), both None without a grid. Measured at the scene's centre, where
        true north may differ from grid north (a UTM zone's edge: a few degrees)."""
        if self.transform is None or self.crs is None:
            return False, False, None, None
        try:
            return self._orientation()
        except Exception:  # pyproj/PROJ errors for a CRS it cannot take to lon/lat: a plain picture, not a failed map
            return False, False, None, None

    def _orientation(self) -> tuple[bool, bool, float | None, float | None]:
        from pyproj import CRS, Geod, Transformer

        t = self.transform
        to_lonlat = Transformer.from_crs(CRS.from_user_input(self.crs), "EPSG:4326", always_xy=True)
        from_lonlat = Transformer.from_crs("EPSG:4326", CRS.from_user_input(self.crs), always_xy=True)
        col, row = self.width / 2, self.height / 2
        lon, lat = to_lonlat.transform(*pixel_to_crs(t, col, row))
        lat_n = lat + 0.01 if lat < 89.99 else lat - 0.01  # a point to the north (at the pole: south, flipped)
        x, y = from_lonlat.transform(lon, lat_n)
        inv = ~t
        dcol, drow = np.subtract(pixel_to_crs(inv, x, y), (col, row)) * (1 if lat < 89.99 else -1)
        east_col = pixel_to_crs(inv, *from_lonlat.transform(lon + 0.01, lat))[0] - col
        flip_rows, flip_cols = drow > 0, east_col < 0
        dcol, drow = -dcol if flip_cols else dcol, -drow if flip_rows else drow
        angle = math.degrees(math.atan2(dcol, -drow))
        lon1, lat1 = to_lonlat.transform(*pixel_to_crs(t, col + self.step, row))
        metres = Geod(ellps="WGS84").inv(lon, lat, lon1, lat1)[2]
        return bool(flip_rows), bool(flip_cols), angle, metres

    def save(self, path: Path, title: str, classes=("flood", "permanent water", "excluded (terrain)", "no data")
             ) -> None:
        """PNG: SAR backdrop (VV, -25..0 dB) with flood red, permanent water blue, excluded water yellow,
        no data black; the legend names `classes` (those the run could produce)."""
        from PIL import Image, ImageDraw

        from ..inference.overlay import label_font

        flip_rows, flip_cols, angle, metres = self.orientation()
        rgb = self.rgb()
        rgb = rgb[::-1] if flip_rows else rgb
        rgb = rgb[:, ::-1] if flip_cols else rgb
        font = label_font()
        line = font.size + 6 if hasattr(font, "size") else 16
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        legend_w = sum(22 + probe.textlength(name, font=font) + 14 for name in classes)
        h, w = rgb.shape[:2]
        width = int(max(w, probe.textlength(title, font=font) + 12, legend_w + 6))
        header = 2 * line + 6
        canvas = Image.new("RGB", (width, h + header), (255, 255, 255))
        canvas.paste(Image.fromarray((rgb * 255).astype(np.uint8)), (0, header))
        draw = ImageDraw.Draw(canvas)
        draw.text((6, 3), title, fill=(0, 0, 0), font=font)
        x = 6
        for name in classes:
            draw.rectangle((x, line + 4, x + 14, line + 4 + 14), fill=CLASSES[name][1], outline=(0, 0, 0))
            draw.text((x + 20, line + 4), name, fill=(0, 0, 0), font=font)
            x += int(22 + draw.textlength(name, font=font) + 14)
        if angle is not None and math.isfinite(angle):  # a grid pyproj cannot place gets neither
            _north_arrow(draw, font, (w - 34, header + 50), angle)
            _scale_bar(draw, font, (8, header + h - 10), metres, w)
        canvas.save(path)


def _north_arrow(draw, font, centre: tuple[int, int], angle: float) -> None:
    """An arrow pointing `angle` degrees clockwise from up on a white disc, and 'N' beyond its tip."""
    cx, cy = centre
    a = math.radians(angle)
    ux, uy = math.sin(a), -math.cos(a)  # unit vector of north in the picture
    px, py = -uy, ux
    draw.ellipse((cx - 16, cy - 16, cx + 16, cy + 16), fill=(255, 255, 255), outline=(0, 0, 0))
    tip, tail = (cx + 13 * ux, cy + 13 * uy), (cx - 11 * ux, cy - 11 * uy)
    draw.polygon([tip, (tail[0] + 6 * px, tail[1] + 6 * py), (cx - 5 * ux, cy - 5 * uy),
                  (tail[0] - 6 * px, tail[1] - 6 * py)], fill=(0, 0, 0))
    left, top, right, bottom = draw.textbbox((0, 0), "N", font=font)  # no anchor: bitmap fonts lack it
    nx, ny = cx + 26 * ux - (left + right) / 2, cy + 26 * uy - (top + bottom) / 2
    draw.rectangle((nx + left - 2, ny + top - 2, nx + right + 2, ny + bottom + 2), fill=(255, 255, 255))
    draw.text((nx, ny), "N", fill=(0, 0, 0), font=font)


def nice_length(metres_per_px: float, width_px: int) -> float:
    """The bar's ground length: 1, 2 or 5 times a power of ten metres, at most a quarter of the picture."""
    most = metres_per_px * width_px / 4
    power = 10 ** math.floor(math.log10(most))
    return max(f * power for f in (1, 2, 5) if f * power <= most)


def _scale_bar(draw, font, origin: tuple[int, int], metres_per_px: float, width_px: int) -> None:
    """A bar at `origin` (its bottom left) for a round length, labelled in m or km, on a white box."""
    if not metres_per_px > 0:
        return
    length = nice_length(metres_per_px, width_px)
    px = int(round(length / metres_per_px))
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    x0, y0 = origin
    box_w = max(px, int(draw.textlength(label, font=font))) + 12
    draw.rectangle((x0 - 4, y0 - 28, x0 + box_w - 4, y0 + 4), fill=(255, 255, 255))
    draw.rectangle((x0 + 2, y0 - 6, x0 + 2 + px, y0 - 1), fill=(0, 0, 0))
    draw.text((x0 + 2, y0 - 25), label, fill=(0, 0, 0), font=font)
