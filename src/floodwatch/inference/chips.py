"""Run a model on individual chip files (GeoTIFF in dB, or 8-bit PNG) and write masks, probabilities, overlays.

For each input `<stem>` the output folder receives
    <stem>_mask.png     water 255 / not water 0 (nodata 0)
    <stem>_prob.png     water probability x 255
    <stem>_overlay.png  SAR backdrop | predicted water in cyan
and, when the input is georeferenced, GeoTIFFs on the input's grid (CRS and transform copied):
    <stem>_mask.tif     uint8 1 water / 0 not water / 255 nodata
    <stem>_prob.tif     float32 probability, NaN nodata
plus `summary.json` (water fraction per chip). Every file is written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.sample import GeoRef, Sample
from ..errors import DataError
from ..io import atomic_path, check_output_dir, write_json
from .predictor import Predictor, load_predictor

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png", ".jpg", ".jpeg")


def _png_bands(path: Path, bands: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """8-bit picture(s) -> dB with the readers' fitted 8-bit map (ETCI's, which the course's folders use).

    One grey picture is one band (the model's, when it takes one). ETCI-style pairs are joined: for a
    two-band VV+VH model, `<tile>_vv.png` is read with `<tile>_vh.png` beside it or in `../vh/`.
    """
    from ..data.files import check_same_size, gray, read_picture
    from ..data.harmonise import EIGHT_BIT_TO_DB, to_db

    wanted = [b.upper() for b in bands] if bands else ["VV"]
    vv = gray(read_picture(path), path)
    if wanted == ["VV", "VH"] and path.stem.lower().endswith("_vv"):
        name = path.stem[:-3] + "_vh" + path.suffix
        partner = next((p for p in (path.with_name(name), path.parent.parent / "vh" / name) if p.is_file()), None)
        if partner is None:
            raise DataError(f"{path}: the model needs VV and VH; no {name} beside it or in ../vh/")
        vh = gray(read_picture(partner), partner)
        check_same_size(vv.shape, path, vh.shape, partner)
        return np.stack([to_db(vv, "folders", "VV"), to_db(vh, "folders", "VH")]), ("VV", "VH")
    band = wanted[0] if len(wanted) == 1 else "VV"
    if band not in EIGHT_BIT_TO_DB["folders"]:
        raise DataError(f"{path}: no 8-bit-to-dB map for band {band} (known: {', '.join(EIGHT_BIT_TO_DB['folders'])})")
    return to_db(vv, "folders", band)[None], (band,)


def read_chip(path: str | os.PathLike, bands: Sequence[str] | None = None) -> Sample:
    """One chip file as an unlabelled Sample (dB; valid: not missing, see data.files.missing_db; georef when
    the file has one).

    GeoTIFFs hold float dB (Sen1Floods11's S1Hand layout); PNG/JPG hold 8-bit renderings (see _png_bands).
    bands: the model's bands, to name unnamed GeoTIFF bands and to choose how PNGs are read.
    """
    from ..data.files import read_backscatter

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input chip not found")
    suffix = path.suffix.lower()
    georef = None
    if suffix in TIFF_SUFFIXES:
        data, georef, descriptions = read_backscatter(path)
        image = data.astype(np.float32)
        if descriptions and all(descriptions) and len(descriptions) == image.shape[0]:
            names = tuple(descriptions)
        elif bands is not None and len(bands) == image.shape[0]:
            names = tuple(bands)
        else:
            names = tuple(f"B{i + 1}" for i in range(image.shape[0]))
    elif suffix in PNG_SUFFIXES:
        image, names = _png_bands(path, bands)
    else:
        raise DataError(f"{path}: not a chip file floodwatch reads (GeoTIFF .tif/.tiff or 8-bit .png/.jpg)")
    valid = np.isfinite(image).all(axis=0)  # GeoTIFF nodata is NaN by now (read_backscatter)
    return Sample(image=image, mask=None, valid=valid, id=path.stem, georef=georef, bands=names,
                  extra={"path": str(path)})


def _write_geotiff(path: Path, array: np.ndarray, georef: GeoRef, nodata: float) -> None:
    import rasterio

    h, w = array.shape
    profile = dict(driver="GTiff", height=h, width=w, count=1, dtype=array.dtype.name, nodata=nodata,
                   crs=georef.rasterio_crs(), transform=georef.affine(), compress="deflate")
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array[None])


def infer_chips(predictor: Predictor | str | os.PathLike, inputs: Sequence[str | os.PathLike],
                out_dir: str | os.PathLike, threshold: float = 0.5, progress: bool = True) -> list[dict[str, Any]]:
    """Predict water on each chip file and write its outputs (see the module doc); returns one record per chip."""
    from ..data.preprocess import network_input
    from ..data.sample import band_index
    from .base import predictor_temporal, progress_bar
    from .overlay import safe_name, sar_backdrop, save_png, side_by_side, water_rgb

    if not isinstance(predictor, Predictor):
        predictor = load_predictor(predictor)
    if not 0.0 < threshold < 1.0:
        raise DataError(f"threshold: {threshold} is not between 0 and 1")
    if not inputs:
        raise DataError("infer: no input chips given")
    temporal = predictor_temporal(predictor)
    if temporal == "bitemporal":
        raise DataError("infer: bi-temporal models need before/after pairs; use `floodwatch evaluate` on a dataset")
    pp = predictor.preprocessing
    out_dir = check_output_dir(out_dir)
    records: list[dict[str, Any]] = []
    stems: set[str] = set()
    with progress_bar(progress, len(inputs), "inferring") as bar:
        for path in inputs:
            sample = read_chip(path, bands=pp.bands)
            prob = np.asarray(predictor.predict(network_input(sample, pp, temporal)[None]))[0]
            prob = np.where(sample.valid, prob, np.nan).astype(np.float32)
            water = sample.valid & (prob >= threshold)
            stem = safe_name(sample.id)
            if stem in stems:  # same file name in two folders: keep both
                stem = f"{stem}_{len(stems)}"
            stems.add(stem)
            files = {"mask_png": out_dir / f"{stem}_mask.png", "prob_png": out_dir / f"{stem}_prob.png",
                     "overlay_png": out_dir / f"{stem}_overlay.png"}
            save_png(files["mask_png"], np.where(water, 255, 0).astype(np.uint8))
            save_png(files["prob_png"], np.round(np.nan_to_num(prob) * 255).astype(np.uint8))
            backdrop = sar_backdrop(sample.image[band_index(sample, "VH")], sample.valid)
            save_png(files["overlay_png"], side_by_side([backdrop, water_rgb(backdrop, water)]))
            if sample.georef is not None:
                files["mask_tif"] = out_dir / f"{stem}_mask.tif"
                files["prob_tif"] = out_dir / f"{stem}_prob.tif"
                mask = np.where(sample.valid, water.astype(np.uint8), 255).astype(np.uint8)
                _write_geotiff(files["mask_tif"], mask, sample.georef, nodata=255)
                _write_geotiff(files["prob_tif"], prob, sample.georef, nodata=float("nan"))
            n_valid = int(sample.valid.sum())
            records.append({"input": str(path), "id": sample.id,
                            "water_fraction": float(water.sum() / n_valid) if n_valid else None,
                            "valid_pixels": n_valid, "outputs": {k: str(v) for k, v in files.items()}})
            if bar is not None:
                bar.advance(bar.task_ids[0])
    write_json(out_dir / "summary.json", {"threshold": threshold, "chips": records})
    return records
