"""Run a model on chips and write masks, probabilities, overlays.

Chips are files (GeoTIFF in dB, or 8-bit PNG/JPG: grey, or the course's RGB images that `data convert` writes),
`<stem>_vv`/`<stem>_vh` pairs of single-band files, folders of them, or data set folders that `evaluate --data`
reads (see `chip_sources`). For each chip `<stem>` (a file's stem, a pair's stem without _vv/_vh, a data set's
chip id) the output folder receives
    <stem>_mask.png     water 255 / not water 0 (nodata 0)
    <stem>_prob.png     water probability x 255
    <stem>_overlay.png  SAR backdrop | predicted water in cyan, titled, with a legend strip below
and, when the input is georeferenced, GeoTIFFs on the input's grid (CRS and transform copied):
    <stem>_mask.tif     uint8 1 water / 0 not water / 255 nodata
    <stem>_prob.tif     float32 probability, NaN nodata
plus `summary.json` (water fraction per chip). The folder is written whole and atomically: a rerun replaces
it, and one holding files an earlier run did not list in its summary is refused (`infer_outputs`), as
evaluate's and change's are.
"""
from __future__ import annotations

import json
import os
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..data.files import (PNG_SUFFIXES, TIFF_SUFFIXES, band_file, check_band_files, check_vh_darker, chip_files,
                          pair_band_files, partner_file, partner_name)
from ..data.sample import GeoRef, Sample
from ..errors import DataError, InvalidArgumentError, LayoutError
from ..io import atomic_dir, atomic_path, check_replaceable, write_json
from .predictor import Predictor, fixed_map_warning, load_predictor
from .tiling import check_threshold

#: who wrote an output folder, in the refusal to replace one holding other files: both commands run infer_chips
WRITER = "chip inference (infer, client)"


def infer_outputs(out_dir: str | os.PathLike) -> Callable[[Path], bool]:
    """Which entries of `out_dir` an earlier infer_chips wrote (so a rerun may replace them): its summary.json
    and the files that summary lists, with GIS sidecars of theirs (QGIS's .aux.xml). By the summary, not by
    name: a user's own x_mask.tif (ground truth, say) in a folder given as -o is not taken for an output."""
    listed = {"summary.json"}
    try:
        summary = json.loads((Path(out_dir) / "summary.json").read_text(encoding="utf-8"))
        listed |= {Path(p).name for rec in summary.get("chips", []) for p in rec.get("outputs", {}).values()}
    except (OSError, ValueError, AttributeError, TypeError):
        listed = set()  # no summary infer wrote: nothing here is known to be infer's
    return lambda entry: entry.is_file() and (entry.name in listed or entry.name.removesuffix(".aux.xml") in listed)


class ChipSource(NamedTuple):
    """One chip `infer` predicts: where it comes from (its file; a data set chip's first file) and its reader."""

    input: str
    read: Callable[[], Sample]


def chip_sources(inputs: Sequence[str | os.PathLike], bands: Sequence[str] | None = None) -> list[ChipSource]:
    """The chips that `inputs` (files and folders, in the order given) stand for.

    A folder holding chip files stands for those files (sorted); one holding none but in a data set layout
    (`data.formats.detect_format`: ETCI, Sen1Floods11, ...) gives its chips, unlabelled ones included, read by
    that data set's reader, so `infer` and `evaluate --data` agree on what a chip is. Single-band
    files `<stem>_vv.<ext>` and `<stem>_vh.<ext>` side by side are one chip (`data.files.pair_band_files`, as
    for `map`); every other file is read by `read_chip`. bands: the model's, passed to `read_chip`.
    """
    from ..data.formats import detect_format, open_dataset

    entries: list[Path | ChipSource] = []
    for given in inputs:
        path = Path(given)
        if not path.is_dir():
            entries.append(path)
            continue
        found = chip_files(path)
        layout = None
        if not found:  # chip files in the folder itself are the chips, whatever a reader would make of them
            try:
                layout = detect_format(path)
            except LayoutError:
                pass
        if layout is not None:
            dataset = open_dataset(path, layout, labelled_only=False)
            entries += [ChipSource(str(next(p for p in r.paths.values() if p is not None)),  # ETCI's vv, ...
                                   partial(dataset.__getitem__, i)) for i, r in enumerate(dataset.records)]
            continue
        if not found:
            raise DataError(f"{path}: folder holds no .tif/.tiff/.png/.jpg chips and no data set layout")
        entries += found
    vh_of = dict(pair_band_files([e for e in entries if isinstance(e, Path)]))  # a VH file with its VV: absent
    sources = [e if isinstance(e, ChipSource) else ChipSource(str(e), partial(read_chip, e, bands, vh=vh_of[e]))
               for e in entries if isinstance(e, ChipSource) or e in vh_of]
    chips: dict[tuple[str, str], str] = {}
    for source in sources:  # one chip twice would be predicted twice, under two names
        key = _chip_key(Path(source.input))
        if key not in chips:
            chips[key] = source.input
        elif Path(chips[key]).resolve() == Path(source.input).resolve():  # one file, given twice
            also = "" if chips[key] == source.input else f" (also as {chips[key]})"
            raise DataError(f"{source.input}: given twice{also}")
        else:  # tiles/vv/x_vv.png and tiles/vh/x_vh.png, given apart
            raise DataError(f"{source.input}: the same chip as {chips[key]} (its other band); give one of them")
    return sources


def _chip_key(path: Path) -> tuple[str, str]:
    """What a chip file stands for: itself, or for a `<stem>_vv`/`_vh` band file the chip `<stem>` of its
    folder (ETCI's tiles/vv/ and tiles/vh/ count as one folder, as `_partner` reads them)."""
    path = path.resolve()
    named = band_file(path.name)
    if named is None:
        return str(path), ""
    folder = path.parent.parent if path.parent.name.lower() in ("vv", "vh") else path.parent
    return str(folder), named[0]


def _png_band(path: Path, band: str, picture: np.ndarray) -> np.ndarray:
    """One 8-bit grey picture -> dB of `band` with the readers' fitted 8-bit map (ETCI's, which the course's
    folders use)."""
    from ..data.files import gray
    from ..data.harmonise import EIGHT_BIT_TO_DB, to_db

    if band not in EIGHT_BIT_TO_DB["folders"]:
        raise DataError(f"{path}: no 8-bit-to-dB map for band {band} (known: {', '.join(EIGHT_BIT_TO_DB['folders'])})")
    try:
        grey = gray(picture, path)
    except DataError as exc:  # read_chip has found it no course image either: say what is read
        raise DataError(f"{exc}; nor is it a course image (RGB = VV, VH, (VV+VH)/2, as floodwatch data convert "
                        "writes them): give each band as a grey picture, <stem>_vv.png and <stem>_vh.png") from None
    return to_db(grey, "folders", band)[None]


def _course_image(picture: np.ndarray) -> bool:
    """Whether a picture is one of the course's images that `data convert` writes: RGB = VV, VH and their integer
    mean, VV and VH differing. No photograph has that third channel, and ETCI's RGB copies of grey have VV = VH,
    so a single file is told apart from both; the folders reader, which knows its folder is a data set, reads
    any two differing channels as VV, VH."""
    if picture.ndim != 3 or picture.shape[2] != 3:
        return False
    vv, vh, mean = (picture[..., c].astype(np.uint16) for c in range(3))
    return not np.array_equal(vv, vh) and np.array_equal(mean, (vv + vh) // 2)


def _read_course_image(path: Path) -> Sample:
    """A course image read as `infer course/data` (the folders reader) reads it: VV, VH through the ETCI map."""
    from ..data.dataset import Record
    from ..data.sources.folders import load_pair

    sample = load_pair(Record(path.stem, "", {"image": path, "mask": None}), table={}, bands=("VV", "VH"))
    sample.extra["path"] = str(path)
    return sample


def _partner(path: Path, band: str, wanted: Sequence[str]) -> Path:
    """`data.files.partner_file`, or a DataError naming the file when there is none."""
    found = partner_file(path)
    if found is None:
        other = "vh" if band == "vv" else "vv"
        raise DataError(f"{path}: the model needs {' and '.join(wanted)}; no {partner_name(path.name)} beside it "
                        f"or in ../{other}/")
    return found


def _read_pair(vv: Path, vh: Path) -> Sample:
    """A VV file and its VH file, by the data set reader of their kind: STAC Overflow's for GeoTIFFs (dB),
    ETCI's for 8-bit pictures."""
    from ..data.dataset import Record
    from ..data.sources import etci, stac_overflow

    kinds = {p.suffix.lower() in TIFF_SUFFIXES for p in (vv, vh)}
    if len(kinds) != 1:
        raise DataError(f"{vh}: one band is a GeoTIFF and the other a picture ({vv.name}); expected two of a kind")
    if not vh.is_file():
        raise DataError(f"{vh}: input chip not found")
    named = band_file(vv.name)
    chip_id = named[0] if named else vv.stem
    if kinds == {True}:
        sample = stac_overflow.load_chip(Record(chip_id, "", {"vv": vv, "vh": vh, "label": None}))
        check_band_files(sample.image[0], sample.image[1], vv, vh)
    else:
        from ..data.harmonise import to_8bit

        sample = etci.load_tile(Record(chip_id, "", {"vv": vv, "vh": vh, "label": None, "water_body": None}))
        # the pictures' own levels (the fixed map undone, exactly): in dB a swapped 8-bit pair still reads VH
        # the darker (see data.files.VV_ABOVE_VH_LEVELS)
        levels = [np.where(sample.valid, to_8bit(sample.image[i], "etci", band), np.nan)
                  for i, band in enumerate(etci.BANDS)]
        check_band_files(*levels, vv, vh, eight_bit=True)
    sample.extra["path"] = str(vv)
    return sample


def read_chip(path: str | os.PathLike, bands: Sequence[str] | None = None,
              vh: str | os.PathLike | None = None) -> Sample:
    """One chip as an unlabelled Sample (dB; valid: not missing, see data.files.missing_db; georef when the
    file has one).

    GeoTIFFs hold float dB (Sen1Floods11's S1Hand layout); PNG/JPG hold 8-bit renderings, one grey picture
    per band, or the course's images (RGB = VV, VH, (VV+VH)/2, which `data convert` writes; `_course_image`),
    read as the folders reader reads them. bands: the model's bands, to name unnamed bands. vh: the VH file of
    the VV file `path` (`data.files.pair_band_files`): the two are read as STAC Overflow (GeoTIFFs) or ETCI
    (pictures) reads its chips, id the stem without `_vv`, and refused where their content says they hold each
    other's band (`data.files.check_band_files`). A `<stem>_vv` or `<stem>_vh` file read alone holds that band;
    when the model needs the other one too, its partner beside it (or in ETCI's ../vh/) is read with it, and
    with none there the error names the file.
    """
    from ..data.files import read_backscatter

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input chip not found")
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES + PNG_SUFFIXES:
        raise DataError(f"{path}: not a chip file floodwatch reads (GeoTIFF .tif/.tiff or 8-bit .png/.jpg)")
    wanted = [b.upper() for b in bands] if bands else []
    named = band_file(path.name)
    tag = named[1].upper() if named else None
    if vh is not None:
        return _read_pair(path, Path(vh))
    if named is not None and ("VH" if tag == "VV" else "VV") in wanted:
        partner = _partner(path, named[1], wanted)
        return _read_pair(*((path, partner) if tag == "VV" else (partner, path)))
    georef = None
    if suffix in TIFF_SUFFIXES:
        data, georef, descriptions = read_backscatter(path)
        image = data.astype(np.float32)
        if descriptions and any(descriptions) and len(descriptions) == image.shape[0]:
            names = tuple(d or f"B{i + 1}" for i, d in enumerate(descriptions))  # band_order fills the unnamed
        elif tag is not None and image.shape[0] == 1:
            names = (tag,)
        elif bands is not None and len(bands) == image.shape[0]:
            names = tuple(bands)
            if {"VV", "VH"} <= set(wanted):  # taken by their order: as map, refused if that order is VH, VV
                check_vh_darker(image[wanted.index("VV")], image[wanted.index("VH")], path,
                                wanted.index("VV") + 1, wanted.index("VH") + 1)
        else:
            names = tuple(f"B{i + 1}" for i in range(image.shape[0]))
    else:
        from ..data.files import read_picture

        picture = read_picture(path)
        if tag is None and _course_image(picture):
            return _read_course_image(path)
        names = (tag or (wanted[0] if len(wanted) == 1 else "VV"),)
        image = _png_band(path, names[0], picture)
    valid = np.isfinite(image).all(axis=0)  # GeoTIFF nodata is NaN by now (read_backscatter)
    return Sample(image=image, mask=None, valid=valid, id=named[0] if named else path.stem, georef=georef,
                  bands=names, extra={"path": str(path)})


def _write_geotiff(path: Path, array: np.ndarray, georef: GeoRef, nodata: float) -> None:
    import rasterio

    h, w = array.shape
    profile = dict(driver="GTiff", height=h, width=w, count=1, dtype=array.dtype.name, nodata=nodata,
                   crs=georef.rasterio_crs(), transform=georef.affine(), compress="deflate")
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array[None])


def infer_chips(predictor: Predictor | str | os.PathLike | None, inputs: Sequence[str | os.PathLike],
                out_dir: str | os.PathLike, threshold: float = 0.5, progress: bool = True,
                model: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Predict water on each chip and write its outputs (see the module doc); returns one record per chip.

    Args:
        predictor: a Predictor (`load_predictor`, for options such as TTA), or a model reference it loads: a
            file, a registered name, None for the default model (`floodwatch models info`).
        inputs: chip files and folders, as `chip_sources` reads them (GeoTIFFs in dB, 8-bit PNGs, <stem>_vv/_vh
            pairs, data set folders).
        out_dir: the output folder, written whole: a rerun replaces it; one holding other files is refused.
        threshold: water probability at or above which a pixel is water in the masks.
        progress: show a progress bar.
        model: only with a ready `predictor`: the model file(s) it runs, as summary.json records them (default:
            `predictor_model_file`, which knows the back-ends' own).

    Returns:
        One record per chip, as in summary.json: input, id, water_fraction (of its valid pixels; None for a chip
        without any), valid_pixels, outputs (absolute paths of its files by kind: mask_png, prob_png,
        overlay_png, and mask_tif, prob_tif for georeferenced chips). summary.json also records the predictor's
        options (`predictor_settings`: TTA, downsampling, temperature, refinement, ensemble weights), so a
        command and a notebook record alike.

    Raises:
        DataError: a chip that cannot be read or does not fit the model (the folder is then left as it was).
        InvalidArgumentError: `threshold` outside 0..1, or `model` given without a ready predictor.
        ModelError, CheckpointError: a model reference that cannot be loaded.
    """
    from .base import predictor_model_file, predictor_settings, predictor_temporal

    # the user's folder: one holding other files is refused now, not after the predictions
    out_dir = check_replaceable(out_dir, infer_outputs(out_dir), WRITER)
    if not isinstance(predictor, Predictor):
        if model is not None:  # else the default model would run while summary.json named `model`
            raise InvalidArgumentError("model: names the file a ready `predictor` runs; to choose the model, give "
                                       "it as `predictor` (a file or a registered name; None: the default model)")
        predictor = load_predictor(predictor)
    check_threshold(threshold)
    if not inputs:
        raise DataError("inputs: no input chips given")
    temporal = predictor_temporal(predictor)
    if temporal == "bitemporal":  # "predictor": the CLI names its -m
        raise DataError("predictor: a bi-temporal model needs before/after pairs and a chip holds one date; score "
                        "it with evaluate on a data set of pairs")
    pp = predictor.preprocessing
    sources = chip_sources(inputs, bands=pp.bands)
    inside = next((s.input for s in sources if out_dir.resolve() in Path(s.input).resolve().parents), None)
    if inside is not None:  # named like an output (x_mask.tif), it would go with the folder it is replaced by
        raise DataError(f"{inside}: inside the output folder {out_dir}, which infer replaces; give another folder")
    # every picture here goes through the fixed 8-bit map (data set folders too: no reader option is passed)
    note = fixed_map_warning(predictor, [s.input for s in sources if Path(s.input).suffix.lower() in PNG_SUFFIXES])
    if note is not None:
        warnings.warn(note, stacklevel=2)
    records: list[dict[str, Any]] = []
    # the folder appears whole at the end: a chip that fails (unreadable, wrong bands) leaves it as it was
    with atomic_dir(out_dir, ours=infer_outputs(out_dir), writer=WRITER) as stage:
        _infer_each(predictor, sources, stage, out_dir, threshold, progress, records)
        write_json(stage / "summary.json", {"model": predictor_model_file(predictor) if model is None else model,
                                            "threshold": threshold, **predictor_settings(predictor),
                                            "chips": records})
    return records


def _infer_each(predictor, sources, stage: Path, out_dir: Path, threshold: float, progress: bool,
                records: list) -> None:
    """infer_chips' loop: writes each chip's files into `stage` and appends its record (paths in `out_dir`)."""
    from ..data.sample import band_index
    from .base import predict_samples, progress_bar
    from .overlay import WATER_COLOUR, safe_name, sar_backdrop, save_png, side_by_side, water_rgb, with_legend

    stems: set[str] = set()
    with progress_bar(progress, len(sources), "inferring") as bar:
        for source in sources:
            sample = source.read()
            prob = predict_samples(predictor, [sample], batch=1)[0]
            water = sample.valid & (prob >= threshold)
            stem = safe_name(sample.id)
            if stem in stems:  # same file name in two folders: keep both
                stem = f"{stem}_{len(stems)}"
            stems.add(stem)
            files = {"mask_png": stage / f"{stem}_mask.png", "prob_png": stage / f"{stem}_prob.png",
                     "overlay_png": stage / f"{stem}_overlay.png"}
            if sample.georef is not None:
                files |= {"mask_tif": stage / f"{stem}_mask.tif", "prob_tif": stage / f"{stem}_prob.tif"}
            save_png(files["mask_png"], np.where(water, 255, 0).astype(np.uint8))
            save_png(files["prob_png"], np.round(np.nan_to_num(prob) * 255).astype(np.uint8))
            band = band_index(sample, "VH")
            backdrop = sar_backdrop(sample.image[band], sample.valid)
            # titled, with its colours named: the picture is often passed on alone
            name = sample.bands[band] if len(sample.bands) == sample.image.shape[0] else "SAR"
            titles = [f"SAR ({name})" if name != "SAR" else name, f"water (p >= {threshold:g})"]
            save_png(files["overlay_png"], with_legend(side_by_side([backdrop, water_rgb(backdrop, water)]), titles,
                                                       {"water": WATER_COLOUR, "no data": (0, 0, 0)}))
            if sample.georef is not None:
                mask = np.where(sample.valid, water.astype(np.uint8), 255).astype(np.uint8)
                _write_geotiff(files["mask_tif"], mask, sample.georef, nodata=255)
                _write_geotiff(files["prob_tif"], prob, sample.georef, nodata=float("nan"))
            n_valid = int(sample.valid.sum())
            records.append({"input": source.input, "id": sample.id,
                            "water_fraction": float(water.sum() / n_valid) if n_valid else None,
                            "valid_pixels": n_valid,
                            # absolute, as the input and the model are: usable from another folder
                            "outputs": {k: str(out_dir.absolute() / v.name) for k, v in files.items()}})
            if bar is not None:
                bar.advance(bar.task_ids[0])
