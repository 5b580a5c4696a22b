"""Change detection: flood = new water, water after the event where there was none before.

Three methods:
  difference  the water model run on both dates; new water = water after and not water before.
  logratio    the classical baseline: the dB difference after - before (= 10 log10 of the linear power
              ratio) below -3 dB, or below an Otsu threshold of that difference ('otsu').
  bitemporal  a U-Net whose input is [before, after] stacked as channels (model_config temporal:
              bitemporal), each half normalised by the model's Preprocessing; it predicts new water directly.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.progress import Progress

from ..data.files import large_regions
from ..data.preprocess import model_band_order, network_input
from ..data.sample import GeoRef, Sample, band_index
from ..errors import DataError, FloodwatchError
from ..inference.tiling import blend_weight, check_prediction, check_tiling, tile_origins
from ..io import atomic_dir, check_replaceable, require_file, write_json
from .geo import feature_collection, geodesic_area_km2, mask_polygons

Method = Literal["difference", "logratio", "bitemporal"]
METHODS = ("difference", "logratio", "bitemporal")
#: A drop of 3 dB (half the backscattered power) is the usual log-ratio flood threshold.
LOGRATIO_DB = -3.0
NODATA = 255
#: What detect_change writes into its output folder (by key of ChangeResult.paths).
OUTPUT_NAMES = {"change_mask": "change_mask.tif", "change_score": "change_score.tif",
                "flood_polygons": "change_polygons.geojson", "stats": "stats.json", "quicklook": "quicklook.png"}


def is_change_output(entry: Path) -> bool:
    """True for an entry of an output folder that an earlier detect_change wrote (so a rerun may replace it)."""
    return entry.name in OUTPUT_NAMES.values() and entry.is_file()


@dataclass
class ChangeResult:
    """Same shape as mapping's MapResult, so `record_map_result` records change runs too."""

    stats: dict[str, Any]
    paths: dict[str, Path]
    new_water: np.ndarray = field(repr=False, default=None)  # (H, W) bool
    valid: np.ndarray = field(repr=False, default=None)


def read_scene(path: str | os.PathLike) -> Sample:
    """A dB GeoTIFF (bands VV[, VH]; no data as data.files.missing_db) -> Sample without a mask. An 8-bit
    PNG/JPG picture is read as OMBRIA's are (one band, VV, through data.harmonise's OMBRIA map; its areas of
    255 no data), with no georeference. A GeoTIFF that looks like linear power is a DataError
    (data.files.check_not_linear, as map's and infer's). extra['bands_by_position'] is True where the file
    names no band (a picture, a GeoTIFF of one or two bands without descriptions): their names are assumed
    from their order."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path = require_file(path, "scene", error=DataError)
    from ..data.files import PNG_SUFFIXES, check_not_linear, missing_db, require_float

    if path.suffix.lower() in PNG_SUFFIXES:
        return _read_picture(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a scene without one is align's to judge
            with rasterio.open(path) as src:
                for dtype in set(src.dtypes):
                    require_float(np.dtype(dtype), path)
                image = src.read(masked=True).astype(np.float32).filled(np.nan)
                image[missing_db(image)] = np.nan  # NaN, nodata (masked above) and untagged 0.0 fill alike
                for band in image:  # band by band, as map checks them
                    check_not_linear(band, np.isfinite(band), path, "convert it to dB, 10 * log10(power), "
                                     "first: change reads dB only")
                georef = GeoRef.from_rasterio(src) if src.crs else None
                # Unnamed bands are VV, VH in that order only where they can be nothing else (the rule of
                # data.sample.band_order): in a file of one or two bands that names none. Otherwise they stay
                # unnamed, and asking for one fails.
                defaults = ("VV", "VH") if src.count <= 2 and not any(src.descriptions) else ()
                bands = tuple(d or (defaults[i] if i < len(defaults) else f"B{i + 1}")
                              for i, d in enumerate(src.descriptions))
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(f"{path}: not a readable raster ({exc})") from None
    valid = np.isfinite(image).all(axis=0)
    return Sample(image=image, mask=None, valid=valid, id=path.stem, georef=georef, bands=bands,
                  extra={"path": str(path), "bands_by_position": bool(defaults)})


def _read_picture(path: Path) -> Sample:
    from ..data.files import gray, read_picture
    from ..data.harmonise import to_db
    from ..data.sources.ombria import no_data

    picture = gray(read_picture(path), path)
    image = to_db(picture, "ombria", "VV")[None]
    valid = ~no_data(picture)
    image[:, ~valid] = np.nan
    return Sample(image=image, mask=None, valid=valid, id=path.stem, georef=None,
                  bands=("VV",), extra={"path": str(path), "bands_by_position": True, "picture": True})


def _name(sample: Sample) -> str:
    """The file a scene came from (what error messages name), else its id."""
    return sample.extra.get("path", f"'{sample.id}'")


def _as_sample(x: Sample | str | os.PathLike) -> Sample:
    return x if isinstance(x, Sample) else read_scene(x)


def align(before: Sample, after: Sample) -> Sample:
    """`before` on the grid of `after` (bilinear), when the two scenes' grids differ."""
    if before.shape == after.shape and before.georef == after.georef:
        return before
    if (before.georef is None) != (after.georef is None):  # same size or not: one of them cannot be placed
        placed, unplaced = (after, before) if before.georef is None else (before, after)
        raise DataError(f"{_name(unplaced)}: has no georeference, and {_name(placed)} has one, so they cannot be "
                        "aligned; give both dates as GeoTIFFs, or both as pictures of the same size")
    if before.georef is None:
        raise DataError(f"{_name(before)}: {before.shape[0]}x{before.shape[1]} px and after {_name(after)} "
                        f"{after.shape[0]}x{after.shape[1]} px, pictures without georeference: they must be the "
                        "same size to be compared pixel by pixel")
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds

    # Footprints first: a scene elsewhere (wrong file, wrong CRS label) is a mistake, not "no change".
    b_west, b_south, b_east, b_north = array_bounds(*before.shape, before.georef.affine())
    a_west, a_south, a_east, a_north = array_bounds(*after.shape, after.georef.affine())
    try:
        a_west, a_south, a_east, a_north = transform_bounds(after.georef.rasterio_crs(), before.georef.rasterio_crs(),
                                                            a_west, a_south, a_east, a_north)
    except Exception:  # no transformation between the two CRSs: they cannot describe the same place
        a_west = a_south = a_east = a_north = float("nan")
    if not (a_west < b_east and b_west < a_east and a_south < b_north and b_south < a_north):
        raise DataError(f"{_name(before)}: does not overlap the after scene {_name(after)} "
                        f"(CRS {before.georef.crs} vs {after.georef.crs}); expected two images of the same place")

    out = np.full((before.image.shape[0],) + after.shape, np.nan, np.float32)
    reproject(before.image, out, src_transform=before.georef.affine(), src_crs=before.georef.rasterio_crs(),
              dst_transform=after.georef.affine(), dst_crs=after.georef.rasterio_crs(),
              src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.bilinear)
    return Sample(image=out, mask=None, valid=np.isfinite(out).all(axis=0), id=before.id, georef=after.georef,
                  bands=before.bands, extra=before.extra)


def tiled_probability(x: np.ndarray, predictor: Any, tile: int = 512, overlap: int = 32,
                      batch: int = 4, bar: Progress | None = None, label: str = "") -> np.ndarray:
    """Blended sliding-window water probability of a normalised (C, H, W) array; `bar` shows the windows
    done as a task called `label`."""
    c, h, w = x.shape
    t = min(tile, max(h, w))
    t = max(32, 32 * int(np.ceil(t / 32)))  # U-Nets need sizes divisible by 32
    ov = min(overlap, t // 2)
    pad = ((0, 0), (0, max(0, t - h)), (0, max(0, t - w)))
    xp = np.pad(x, pad) if any(p[1] for p in pad) else x
    H, W = xp.shape[1:]
    weight = blend_weight(t, ov)
    acc = np.zeros((H, W), np.float32)
    wsum = np.zeros((H, W), np.float32)
    windows = [(r, c0) for r in tile_origins(H, t, ov) for c0 in tile_origins(W, t, ov)]
    task = bar.add_task(label, total=len(windows)) if bar is not None else None
    for i in range(0, len(windows), batch):
        group = windows[i:i + batch]
        prob = np.asarray(predictor.predict(np.stack([xp[:, r:r + t, c0:c0 + t] for r, c0 in group])))
        for (r, c0), p in zip(group, prob):
            acc[r:r + t, c0:c0 + t] += p * weight
            wsum[r:r + t, c0:c0 + t] += weight
        if bar is not None:
            bar.advance(task, len(group))
    return (acc / np.maximum(wsum, 1e-12))[:h, :w]


def model_temporal(predictor: Any) -> str:
    """'bitemporal' for a stacked before/after model, else 'single' (from the checkpoint's model_config)."""
    meta = getattr(predictor, "meta", None) or {}
    return str((meta.get("model_config") or {}).get("temporal", "single"))


def _band(sample: Sample, name: str) -> tuple[np.ndarray, str]:
    """(the band called `name` in any case, 'name' or 'position': how it was found). Bands the file does not
    name (read_scene's bands_by_position) are known by their order only, so such a scene of one band serves
    as any band; a band the file names is that band and no other."""
    names = [b.upper() for b in sample.bands]
    by_position = bool(sample.extra.get("bands_by_position"))
    if name.upper() in names:
        return sample.image[names.index(name.upper())], "position" if by_position else "name"
    if by_position and len(names) == 1:
        return sample.image[0], "position"
    unnamed = all(re.fullmatch(r"B\d+", b) for b in names)  # read_scene's placeholders
    raise FloodwatchError(f"band: '{name}' is not one of the bands of {_name(sample)} ({', '.join(sample.bands)})"
                          + ("; unnamed bands are taken as VV, VH only in a file of one or two bands: name them "
                             "(band descriptions)" if unnamed else ""))


def check_logratio_threshold(threshold: float | str) -> None:
    """A log-ratio threshold is 'otsu' or a finite drop in dB (flood water darkens a scene)."""
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise FloodwatchError(f"logratio_threshold: '{threshold}' is neither a number of dB nor 'otsu'")
    elif not (np.isfinite(threshold) and threshold < 0):
        raise FloodwatchError(f"logratio_threshold: {threshold} is not a drop in dB; give a finite number below 0 "
                              f"(default {LOGRATIO_DB:g}) or 'otsu'")


def otsu_drop_warning(fitted: float, level: float, before: str, after: str) -> str:
    """What a log-ratio run says when Otsu's split of after - before is no drop (see change_arrays)."""
    return (f"'otsu' fitted {fitted:+.2f} dB on the after - before difference of {before} and {after}, at or above "
            f"the unchanged pixels' level ({level:+.2f} dB), so not a drop: the pair shows no separate darker mode "
            f"and no new water is mapped; give `logratio_threshold` as a drop in dB (default {LOGRATIO_DB:g}) to map "
            "any darkening")


def logratio_change(before_db: np.ndarray, after_db: np.ndarray, valid: np.ndarray,
                    threshold: float | str = LOGRATIO_DB) -> tuple[np.ndarray, np.ndarray, float]:
    """(new water, dB difference, threshold used). `threshold` in dB, or 'otsu' to fit it on the difference.
    An Otsu fit is cut at even where it is no drop (the classical per-chip baseline that score_change_on_ombria
    scores); change_arrays maps no new water then."""
    check_logratio_threshold(threshold)
    diff = (np.asarray(after_db, np.float32) - np.asarray(before_db, np.float32))
    valid = valid & np.isfinite(diff)
    if isinstance(threshold, str):
        from ..data.stats import otsu_threshold

        threshold = otsu_threshold(diff[valid]) if valid.any() else LOGRATIO_DB
    return (diff < float(threshold)) & valid, np.where(valid, diff, np.nan), float(threshold)


def change_arrays(before: Sample, after: Sample, predictor: Any = None, *, method: Method = "difference",
                  threshold: float = 0.5, logratio_threshold: float | str = LOGRATIO_DB, band: str = "VV",
                  tile: int = 512, overlap: int = 32, batch: int = 4,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(new water bool, score float32, valid bool, record) on `after`'s grid; the score is the new-water
    probability (difference: P(water after) * (1 - P(water before))), or the dB difference for logratio.
    `record`: stats entries saying how the mask was cut (threshold, threshold_from, threshold_applied, band,
    band_from, warnings). `progress`: a bar per model pass."""
    if method not in METHODS:
        raise FloodwatchError(f"method: '{method}' is not one of {', '.join(METHODS)}")
    # map_scene's limits; the overlap is clamped to the tile below, so only its sign is checked here
    check_prediction(threshold, batch)
    check_tiling(tile, min(overlap, tile // 2))
    if method == "logratio":
        check_logratio_threshold(logratio_threshold)
        for s in (before, after):
            _band(s, band)
    elif predictor is not None:
        for s in (before, after):  # before any work: bands picked by name as map picks them (network_input)
            model_band_order(s, predictor.preprocessing.bands)
    record: dict[str, Any] = {"threshold": threshold, "threshold_from": "given", "threshold_applied": True,
                              "band": None, "band_from": None, "warnings": []}
    before = align(before, after)
    valid = before.valid & after.valid
    if not valid.any():
        raise DataError(f"{_name(before)}: no valid pixel in common with {_name(after)} (they do not overlap, "
                        "or one of them is all no-data)")
    if method == "logratio":
        (b, b_from), (a, a_from) = _band(before, band), _band(after, band)
        new, score, used = logratio_change(b, a, valid, logratio_threshold)
        record.update(threshold=used, band=band.upper(), band_from={"before": b_from, "after": a_from})
        if logratio_threshold == "otsu":
            # Otsu splits any histogram in two. At or above the unchanged pixels' level it splits them from
            # brightened ones, and cutting there would call them new water. That level is 0 dB for calibrated
            # dB scenes (whatever share flooded); 8-bit pictures such as OMBRIA's are offset by several dB, so
            # there it is taken as the median difference (the unchanged pixels being most of a pair).
            pictures = before.extra.get("picture") or after.extra.get("picture")
            level = float(np.median(score[valid & np.isfinite(score)])) if pictures else 0.0
            record.update(threshold_from="otsu", unchanged_level_db=level)
            if not used < level:
                new = np.zeros_like(new)
                record["threshold_applied"] = False
                record["warnings"].append(otsu_drop_warning(used, level, _name(before), _name(after)))
        return new, score, valid, record
    if predictor is None:
        raise FloodwatchError(f"predictor: method '{method}' needs a model")
    pre = predictor.preprocessing
    kind = model_temporal(predictor)
    if method == "bitemporal" and kind != "bitemporal":
        raise FloodwatchError("method: 'bitemporal' needs a bi-temporal model (this one's model_config temporal "
                              f"is '{kind}'); use 'difference' with a single-date model")
    if method == "difference" and kind == "bitemporal":
        raise FloodwatchError("method: 'difference' needs a single-date model; this one is bi-temporal: use 'bitemporal'")
    with Progress(disable=not progress) as bar:
        if method == "bitemporal":
            x = np.concatenate([network_input(before, pre), network_input(after, pre)], axis=0)
            score = tiled_probability(x, predictor, tile, overlap, batch, bar, "before + after")
            new = score >= threshold
        else:
            p_before = tiled_probability(network_input(before, pre), predictor, tile, overlap, batch, bar, "before")
            p_after = tiled_probability(network_input(after, pre), predictor, tile, overlap, batch, bar, "after")
            # Hard rule for the mask (water after, not before); soft product as the score for plotting.
            score = p_after * (1.0 - p_before)
            new = (p_after >= threshold) & (p_before < threshold)
    return new & valid, np.where(valid, score, np.nan).astype(np.float32), valid, record


def detect_change(before: Sample | str | os.PathLike, after: Sample | str | os.PathLike, predictor: Any,
                  out_dir: str | os.PathLike, *, method: Method = "difference", threshold: float = 0.5,
                  logratio_threshold: float | str = LOGRATIO_DB, band: str = "VV", min_pixels: int = 4,
                  tile: int = 512, overlap: int = 32, batch: int = 4, quicklook: bool = True,
                  progress: bool = False) -> ChangeResult:
    """Map new water between two dates and write it to `out_dir` (atomically):

    change_mask.tif (uint8 1 new water, 0 none, 255 no data; georeferenced like `after`), change_score.tif,
    change_polygons.geojson (EPSG:4326), stats.json, quicklook.png. Scenes without georeference (8-bit
    pictures) give the two rasters in pixel coordinates, no polygons, and areas in pixels only (stats
    flooded_km2, valid_km2 and crs null). `min_pixels`: patches smaller than this are sieved out (speckle).
    `predictor` may be None for logratio. stats.json records how the mask was cut (change_arrays' record: the
    threshold used, in dB for logratio, also when Otsu fitted it; the log-ratio's band and whether each
    scene's was found by name or by position; warnings). An existing `out_dir` is replaced only when it holds
    nothing but these files (an earlier run's); one holding anything else is a FloodwatchError. `progress`: a
    bar per model pass.
    """
    # The folder is the user's: one holding other files is refused now, before the work, not replaced after it.
    check_replaceable(out_dir, is_change_output, "change")
    b, a = _as_sample(before), _as_sample(after)
    new, score, valid, record = change_arrays(b, a, predictor, method=method, threshold=threshold,
                                              logratio_threshold=logratio_threshold, band=band, tile=tile,
                                              overlap=overlap, batch=batch, progress=progress)
    # specks dropped (8-connected): a sieve would also fill small holes, calling old water (or no data) new
    new = large_regions(new, min_pixels, diagonal=True)
    georef = a.georef
    transform = georef.affine() if georef else None
    crs = georef.crs if georef else None
    polygons = mask_polygons(new, transform, crs) if georef else None
    valid_poly = mask_polygons(valid, transform, crs) if georef else None
    h, w = a.shape
    from ..inference.base import predictor_model_file  # torch: loaded only where a change is mapped

    fraction = float(new.sum() / valid.sum()) if valid.any() else None
    stats: dict[str, Any] = {
        "method": method, "before": b.id, "after": a.id,
        # as map's stats.json, infer's summary.json and evaluate's JSON record theirs (none for the log-ratio)
        "model": predictor_model_file(predictor) if method != "logratio" else None,
        # what change_score.tif holds: the web map draws a probability, never a log-ratio in dB as one
        "score_units": "dB" if method == "logratio" else "probability",
        # new water is the flood: named as map's stats.json names its flood (flooded_km2, which AOI records read)
        "flooded_pixels": int(new.sum()), "valid_pixels": int(valid.sum()),
        "flooded_fraction": fraction,  # of nothing seen no share is flooded (null, as map's)
        "flooded_km2": geodesic_area_km2(polygons) if georef else None,
        "valid_km2": geodesic_area_km2(valid_poly) if georef else None,
        "permanent_water_km2": None, "crs": crs, "transform": list(georef.transform) if georef else None,
        "bounds": _bounds(georef, h, w), "width": w, "height": h, **record}
    out_dir = Path(out_dir)
    names = dict(OUTPUT_NAMES)
    with atomic_dir(out_dir, ours=is_change_output, writer="change") as tmp:
        code = np.where(valid, new.astype(np.uint8), NODATA).astype(np.uint8)
        _write_raster(tmp / names["change_mask"], code[None], georef, "uint8", NODATA)
        _write_raster(tmp / names["change_score"], score[None].astype(np.float32), georef, "float32", np.nan)
        if polygons is not None:
            write_json(tmp / names["flood_polygons"], feature_collection(polygons, {"class": "new_water",
                                                                                    "method": method}))
        else:
            names.pop("flood_polygons")
        if quicklook:
            _quicklook(tmp / names["quicklook"], b, a, new, valid, band)
        else:
            names.pop("quicklook")
        write_json(tmp / names["stats"], stats)
    paths = {k: out_dir / v for k, v in names.items()}
    return ChangeResult(stats=stats, paths=paths, new_water=new, valid=valid)


def _bounds(georef: GeoRef | None, h: int, w: int) -> list[float] | None:
    if georef is None:
        return None
    from rasterio.transform import array_bounds

    return list(array_bounds(h, w, georef.affine()))  # west, south, east, north, as rasterio's dataset.bounds


def _write_raster(path: Path, data: np.ndarray, georef: GeoRef | None, dtype: str, nodata: float) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    profile = dict(driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0], dtype=dtype,
                   nodata=nodata, compress="deflate")
    if georef is not None:
        profile.update(crs=georef.rasterio_crs(), transform=georef.affine())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # pictures' outputs are in pixels, as documented
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data.astype(dtype))


def _quicklook(path: Path, before: Sample, after: Sample, new: np.ndarray, valid: np.ndarray, band: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), constrained_layout=True)
    # the log-ratio's band, checked by then; a model's run shows `band` where the scene has it, else its first
    for ax, s, title in ((axes[0], align(before, after), "before"), (axes[1], after, "after")):
        i = band_index(s, band)
        # a lone unnamed band was read as the asked one (_band): titled so, as stats.json says
        name = band.upper() if s.extra.get("bands_by_position") and len(s.bands) == 1 else s.bands[i]
        ax.imshow(s.image[i], cmap="gray", vmin=-25, vmax=0)
        ax.set_title(f"{title} ({name}, dB)")
    axes[2].imshow(after.image[band_index(after, band)], cmap="gray", vmin=-25, vmax=0)
    overlay = np.zeros(new.shape + (4,), np.float32)
    overlay[new] = (0.1, 0.4, 1.0, 0.85)
    overlay[~valid] = (0.5, 0.5, 0.5, 0.6)
    axes[2].imshow(overlay)
    axes[2].set_title(f"new water: {int(new.sum())} px ({new.sum() / max(1, valid.sum()):.1%} of valid)")
    for ax in axes:
        ax.set_axis_off()
    fig.savefig(path, dpi=80)
    plt.close(fig)
