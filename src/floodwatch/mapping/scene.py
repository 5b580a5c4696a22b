"""Open a Sentinel-1 scene for windowed reading: one GeoTIFF with VV and VH bands, or one file per band.

Nothing here reads the whole scene: `read_window` returns one window in dB with its validity mask.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse
from typing import Sequence

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from ..data.files import (band_file, check_band_files, check_not_db, check_not_linear, check_vh_darker, gdal_reason,
                          missing_db, partner_file, require_float)
from ..data.sample import band_order, is_unnamed
from ..errors import DataError, InvalidArgumentError
from ..io import require_file
from .locations import input_stem, is_remote_input

UNITS = ("db", "linear")


def _open(path: str):
    if not is_remote_input(path):
        require_file(path, error=DataError)
    try:
        with warnings.catch_warnings():  # a scene without a grid is refused in one line (SceneReader)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise DataError(f"{path}: not a raster GeoTIFF ({gdal_reason(exc, 120)})") from None


def _check_pixel_type(ds, path: str) -> None:
    # integer pixels (DN, 8-bit quick-looks) have no dB or power scale that could be assumed; infer and
    # evaluate refuse them alike (data.files.require_float)
    for dtype in set(ds.dtypes):
        require_float(np.dtype(dtype), path)


class SceneReader:
    """VV/VH (or whichever bands the model wants) of one scene, read by windows, in dB. `scene` and `vh`
    are local paths or URLs GDAL reads (https://, s3://, gs://: see `floodwatch.mapping.locations`)."""

    def __init__(self, scene: str | Path, *, vh: str | Path | None = None, units: str = "db",
                 bands: Sequence[str] = ("VV", "VH")):
        if units not in UNITS:
            raise InvalidArgumentError(f"units: '{units}' is not one of {', '.join(UNITS)}")
        self.path = str(scene) if is_remote_input(scene) else Path(scene)
        self.units = units
        self.bands = [b.upper() for b in bands]
        self._datasets = []
        self._by_position = False  # set by _resolve where no band is named: VV, VH taken in stored order
        self._pair: tuple[str, str] | None = None  # set by _resolve for one file per band: (VV file, VH file)
        try:
            self._sources = self._resolve(str(scene), str(vh) if vh else None)
        except BaseException:
            self.close()
            raise
        # (dataset, [(channel, band index, nodata), ...]) per file, in first-use order: one read call each
        groups: dict[int, tuple] = {}
        for c, (ds, band, nodata) in enumerate(self._sources):
            groups.setdefault(id(ds), (ds, []))[1].append((c, band, nodata))
        self._reads = list(groups.values())
        ref = self._sources[0][0]
        self.crs, self.transform = ref.crs, ref.transform
        self.height, self.width = ref.height, ref.width
        if self.crs is None:
            raise DataError(f"{self.path}: no coordinate reference system, cannot map areas")
        # unnamed bands, or band files whose names (or the caller) may be wrong: their content must agree
        if (self._by_position or self._pair) and {"VV", "VH"} <= set(self.bands):
            try:
                self._check_vh_darker()
            except BaseException:
                self.close()
                raise

    def _check_vh_darker(self, size: int = 256) -> None:
        """data.files.check_vh_darker on four windows on the diagonal, not the whole scene: a scene-wide read
        would cost seconds."""
        vv_at, vh_at = self.bands.index("VV"), self.bands.index("VH")
        pixels: list[np.ndarray] = []
        for k in range(4):
            row = min(max(0, (2 * k + 1) * self.height // 8 - size // 2), max(0, self.height - size))
            col = min(max(0, (2 * k + 1) * self.width // 8 - size // 2), max(0, self.width - size))
            image, valid = self.read_window(row, min(row + size, self.height), col, min(col + size, self.width))
            pixels.append(image[[vv_at, vh_at]][:, valid])  # dB, whatever the file's units
        vv, vh = np.concatenate(pixels, axis=1)
        if self._pair is None:
            check_vh_darker(vv, vh, self.path, vv_at + 1, vh_at + 1)
        else:  # the same rule for two files, in infer's words
            check_band_files(vv, vh, *self._pair)

    # -- opening -------------------------------------------------------------------------------------
    def _resolve(self, scene: str, vh: str | None) -> list[tuple]:
        """[(dataset, band index, nodata)] in the order of self.bands."""
        main = _open(scene)
        self._datasets.append(main)
        _check_pixel_type(main, scene)
        named = None if is_remote_input(scene) else band_file(Path(scene).name)  # <stem>_vv.tif: its band
        tag = named[1].upper() if named and main.count == 1 else None
        partner = partner_file(scene) if vh is None and tag and any(b != tag for b in self.bands) else None
        if partner is not None:  # a lone band file takes its other band from beside it, as infer does
            main.close()
            self._datasets.remove(main)
            return self._resolve(*((scene, str(partner)) if tag == "VV" else (str(partner), scene)))
        if vh is None:
            if main.count < len(self.bands):
                raise DataError(f"{scene}: {main.count} band(s) but the model needs {'+'.join(self.bands)}; "
                                f"give the VH file as `vh`")
            names = (tag,) if tag and not main.descriptions[0] else main.descriptions
            index = band_order(names, self.bands, scene)
            self._by_position = all(is_unnamed(n) for n in names)
            return [(main, i + 1, main.nodatavals[i]) for i in index]
        for p, want in ((scene, "vv"), (vh, "vh")):
            # VV and VH swapped map silently wrong (VH is the darker band: far less water); the names tell
            tagged = band_file(Path(urlparse(p).path if is_remote_input(p) else p).name)
            if tagged and tagged[1] != want:
                raise DataError(f"{p}: named as the {tagged[1].upper()} band but given as the {want.upper()} one; "
                                f"give the VV file as the scene and the VH file as `vh`")
        other = _open(vh)
        self._datasets.append(other)
        _check_pixel_type(other, vh)
        for ds, p in ((main, scene), (other, vh)):
            if ds.count != 1:
                raise DataError(f"{p}: with a separate VH file (`vh`) each file must have one band, found {ds.count}")
        if (main.crs, main.transform, main.shape) != (other.crs, other.transform, other.shape):
            raise DataError(f"{vh}: grid ({other.crs}, {other.shape}, {tuple(other.transform)[:6]}) does not match "
                            f"{scene} ({main.crs}, {main.shape}, {tuple(main.transform)[:6]})")
        self._pair = (scene, vh)
        by_name = {"VV": main, "VH": other}
        out = []
        for b in self.bands:
            if b not in by_name:
                raise DataError(f"{scene}: the model needs band {b}; only VV and VH files were given")
            out.append((by_name[b], 1, by_name[b].nodatavals[0]))
        return out

    # -- reading -------------------------------------------------------------------------------------
    def read_rows(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, n, W) float32 dB with NaN at nodata, valid (n, W) bool) for rows [row0, row1)."""
        return self.read_window(row0, row1, 0, self.width)

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, n, m) float32 dB with NaN at nodata, valid (n, m) bool) for rows [row0, row1) and
        columns [col0, col1)."""
        window = Window(col0, row0, col1 - col0, row1 - row0)
        image = np.empty((len(self._sources), row1 - row0, col1 - col0), np.float32)
        valid = np.ones((row1 - row0, col1 - col0), bool)
        for ds, channels in self._reads:
            # All of a file's bands in one call: a pixel-interleaved GeoTIFF stores VV and VH in the same
            # blocks, so reading them band by band would decompress every block twice (the real-size scene
            # of benchmarks/map_scene.py: 39 -> 20 CPU s of reading).
            try:
                data = ds.read([band for _, band, _ in channels], window=window, out_dtype=np.float32)
            except RasterioIOError as exc:
                raise DataError(f"{ds.name}: read failed at rows {row0}-{row1} ({gdal_reason(exc, 160)})") from None
            for x, (c, _, nodata) in zip(data, channels):
                ok = ~missing_db(x, nodata)
                if self.units == "db":
                    check_not_linear(x, ok, ds.name, "units 'linear'")
                elif self.units == "linear":
                    check_not_db(x, ok, ds.name, "units 'db', map's default")
                    ok &= x > 0  # zero power is the usual fill value of linear products
                    with np.errstate(divide="ignore", invalid="ignore"):
                        x = 10.0 * np.log10(x)
                valid &= ok
                image[c] = x
        image[:, ~valid] = np.nan
        return image, valid

    @property
    def stem(self) -> str:
        return input_stem(self.path)

    def close(self) -> None:
        for ds in self._datasets:
            ds.close()
        self._datasets = []

    def __enter__(self) -> "SceneReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sample_tiles(reader: SceneReader, tile: int, count: int, seed: int = 0,
                 min_valid: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to `count` windows of tile² px (the whole scene along an axis shorter than a tile), drawn at random
    with `seed` from the scene's grid of non-overlapping tiles, each at least `min_valid` data: [(image (C, t, t)
    dB with NaN at nodata, valid (t, t))]. For steps that learn from the scene itself (`map --self-train`)."""
    th, tw = min(tile, reader.height), min(tile, reader.width)
    origins = [(r, c) for r in range(0, reader.height - th + 1, th) for c in range(0, reader.width - tw + 1, tw)]
    order = np.random.default_rng(seed).permutation(len(origins))
    windows = []
    for k in order:  # reads only until enough are found: a scene mostly of data reads about `count` windows
        r, c = origins[k]
        image, valid = reader.read_window(r, r + th, c, c + tw)
        if valid.mean() >= min_valid:
            windows.append((image, valid))
            if len(windows) == count:
                break
    return windows
