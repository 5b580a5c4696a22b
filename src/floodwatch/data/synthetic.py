"""Synthetic Sentinel-1 scenes with known water, deterministic from a seed.

The generator builds a smooth random "terrain" (low-resolution noise, upsampled), carves meandering river
valleys into it and adds blocky field parcels; water is everything below a threshold, so rivers widen into
floodplains, lakes fill depressions and whole fields flood. Backscatter is drawn per class in dB (water
VV ~ -20, VH ~ -27; land VV ~ -8, VH ~ -15 with smooth and per-field texture), converted to linear power,
multiplied by gamma speckle (L looks, like a GRD product) and converted back to dB. The speckle's bias in dB
(E[10 log10 G] < 0) is compensated so the class means in dB land on the targets.

`phenomena` adds what a handful of real events cannot teach: land that looks like water (dry sand, radar
shadow), bright land (urban), and water that does not look like open water (flooded vegetation, strong wind).
Each is drawn from its own random stream, so a scene without phenomena is the same as before they existed.

Everything is vectorised numpy / scipy.ndimage: a 4096 x 4096 scene takes a few seconds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, InvalidArgumentError
from ..io import atomic_dir, atomic_path
from .arguments import check_path
from .sample import IGNORE_INDEX, NOT_WATER, WATER, GeoRef, Sample

#: class means in dB (Sen1Floods11-like): open water is dark, VH about 7 dB below VV.
WATER_DB = (-20.0, -27.0)
LAND_DB = (-8.0, -15.0)
#: equivalent number of looks of the speckle (Sentinel-1 IW GRD is about 4.4).
LOOKS = 4.0
#: regions of `synth_chips`, so region-based splits have something to split.
CHIP_REGIONS = ("SynthA", "SynthB", "SynthC", "SynthD")
#: what `synth_scene(phenomena=...)` can add, with C-band VV / VH means in dB (Sentinel-1 IW, mid incidence):
#: sand: dry sand or bare arid soil, as dark as water (VV ~ -21, VH ~ -29), with dune ripples; not water.
#: shadow: slopes facing away from the radar, at the noise floor (VV ~ -23, VH ~ -29), beside bright slopes
#:   facing it (foreshortening, +4 dB) in hilly land; not water.
#: urban: built-up blocks, bright (VV ~ -2, VH ~ -10) with point scatterers; not water.
#: vegetation: flooded vegetation along shores, brightened by double bounce (VV ~ -11, VH ~ -19); water.
#: wind: wind-roughened patches of open water, +4 to +7 dB VV on average (~ -11, as bright as land in
#:   places), half that in VH (~ -22); water.
PHENOMENA = ("sand", "shadow", "urban", "vegetation", "wind")
#: raised whenever a change makes the same options give other chips, so a folder written before is refused
#: (data.sources.synthetic), not silently mixed with chips of a newer generator
GENERATOR_VERSION = 1
#: the record of a generated folder's options, beside its chips
MANIFEST = "synthetic.json"


def _interp_matrix(n: int, m: int, cell: float) -> np.ndarray:
    """(n, m) linear-interpolation weights from m coarse nodes `cell` px apart onto n pixels."""
    pos = np.arange(n, dtype=np.float32) / np.float32(cell)
    lo = np.minimum(pos.astype(np.int64), m - 2)
    frac = pos - lo
    weights = np.zeros((n, m), np.float32)
    weights[np.arange(n), lo] = 1 - frac
    weights[np.arange(n), lo + 1] = frac
    return weights


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Zero-mean, roughly unit-std smooth field with features about `cell` px across.

    Bilinear upsampling is separable, so it is two small matrix products (much faster than ndimage.zoom).
    """
    h, w = shape
    cell = max(float(cell), 1.0)
    ch, cw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    from scipy import ndimage  # here, not at import: data sources import this module's names and records

    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 0.8, mode="wrap").astype(np.float32)
    fine = _interp_matrix(h, ch, cell) @ coarse @ _interp_matrix(w, cw, cell).T
    sub = fine[:: max(1, h // 256), :: max(1, w // 256)]  # statistics of a subsample are plenty
    fine -= np.float32(sub.mean())
    fine *= np.float32(1.0 / max(float(sub.std()), 1e-6))
    return fine


def _river_distance(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Distance (px) to one meandering centreline across the scene, and the local half-width (px)."""
    h, w = shape
    size = float(max(h, w))
    theta = rng.uniform(0, np.pi)
    yy, xx = np.ogrid[:h, :w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    along = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)).astype(np.float32)
    across = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)).astype(np.float32)
    # The centreline is a sum of a few sines of the along-river coordinate, tabulated once in 1-D.
    u = np.linspace(-size, size, int(4 * size) + 2, dtype=np.float32)
    centre = np.full_like(u, rng.uniform(-0.25, 0.25) * size)
    for k in range(1, 4):
        centre += rng.uniform(0.03, 0.12) / k * size * np.sin(2 * np.pi * k * rng.uniform(0.6, 1.6) * u / size
                                                               + rng.uniform(0, 2 * np.pi))
    half_width = np.maximum(1.0, size * rng.uniform(0.006, 0.02) * (1 + 0.4 * np.sin(2 * np.pi * u / size
                                                                                      + rng.uniform(0, 6))))
    # Table lookup at 0.5 px spacing instead of np.interp: no search, and the error is sub-pixel.
    idx = np.clip(((along + size) * np.float32((len(u) - 1) / (2 * size))).astype(np.int32), 0, len(u) - 1)
    dist = np.abs(across - centre.astype(np.float32)[idx])
    return dist, half_width.astype(np.float32)[idx]


def _parcels(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Per-pixel value of a random rectangular field grid (unit normal per field); rows are staggered."""
    h, w = shape
    gh, gw = h // cell + 2, w // cell + 2
    values = rng.standard_normal((gh, gw)).astype(np.float32)
    shift = rng.integers(0, cell, size=gh)  # stagger each row of fields like a real field pattern
    rows = np.arange(h) // cell
    cols = (np.arange(w)[None, :] + shift[rows][:, None]) // cell
    return values[rows[:, None], cols]


def _nodata_valid(rng: np.random.Generator, shape: tuple[int, int], border: int) -> np.ndarray:
    """True inside an irregular frame: at least `border` px on each side, up to 1.5x along wavy edges."""
    h, w = shape
    valid = np.ones(shape, bool)
    if border <= 0:
        return valid
    extra = lambda n: (border + 0.5 * border * (0.5 + 0.5 * np.sin(  # noqa: E731
        np.linspace(0, rng.uniform(2, 8), n) + rng.uniform(0, 6)))).astype(int)
    top, bottom, left, right = extra(w), extra(w), extra(h), extra(h)
    yy, xx = np.ogrid[:h, :w]
    valid &= yy >= top[None, :]
    valid &= yy < (h - bottom)[None, :]
    valid &= xx >= left[:, None]
    valid &= xx < (w - right)[:, None]
    return valid


def _speckle_db(rng: np.random.Generator, mean_db: np.ndarray, looks: float) -> np.ndarray:
    """Multiplicative gamma speckle in linear power; the dB bias of the speckle is removed from the mean."""
    from scipy import special

    bias_db = 10.0 / np.log(10.0) * (special.digamma(looks) - np.log(looks))
    power = np.power(np.float32(10.0), (mean_db - np.float32(bias_db)) / np.float32(10.0))
    power *= rng.standard_gamma(looks, size=mean_db.shape, dtype=np.float32)
    power *= np.float32(1.0 / looks)
    db = np.log10(power, out=power)
    db *= np.float32(10.0)
    return db


def check_phenomena(phenomena: str | Sequence[str]) -> tuple[str, ...]:
    """The names (a list, or one comma-separated string) in PHENOMENA's order, which is the order they are
    painted in; "all" stands for every one. DataError naming an unknown one."""
    if isinstance(phenomena, str):
        phenomena = [p.strip() for p in phenomena.split(",") if p.strip()]
    names = set(phenomena)
    unknown = sorted(names - set(PHENOMENA) - {"all"})
    if unknown:
        raise DataError(f"'{unknown[0]}': not one of the synthetic phenomena {', '.join(PHENOMENA)} (or all)")
    return tuple(PHENOMENA) if "all" in names else tuple(n for n in PHENOMENA if n in names)


def options_record(chips: int, size: int, seed: int, phenomena: str | Sequence[str]) -> dict:
    """What MANIFEST holds: the options that make a folder's chips, phenomena as checked names, and the
    generator's version."""
    return {"chips": int(chips), "size": int(size), "seed": int(seed),
            "phenomena": list(check_phenomena(phenomena)), "generator": GENERATOR_VERSION}


def _blobs(rng: np.random.Generator, shape: tuple[int, int], cell: float, share: float,
           allowed: np.ndarray) -> np.ndarray:
    """Smooth random patches covering about `share` of the `allowed` pixels."""
    field = _smooth_noise(rng, shape, cell)
    sub = field[allowed][:: max(1, int(allowed.sum()) // 200_000)]
    if share <= 0 or sub.size == 0:
        return np.zeros(shape, bool)
    return (field >= np.quantile(sub, 1.0 - share)) & allowed


def _add_phenomena(rng: np.random.Generator, names: tuple[str, ...], water: np.ndarray, valid: np.ndarray,
                   channel: np.ndarray, vv: np.ndarray, vh: np.ndarray) -> dict[str, float]:
    """Paint the phenomena into the mean backscatter (in place); {name: share of valid pixels}."""
    shape = water.shape
    size = max(shape)
    land = valid & ~water
    painted = np.zeros(shape, bool)  # land phenomena do not overlap, so each keeps its own look
    shares = {}
    if "shadow" in names:
        # Hills: a relief field; the slope along range (x: the radar looks from the left) sets the local
        # incidence angle. Steep back slopes fall into shadow, fore slopes brighten.
        hills = _blobs(rng, shape, size / 3, rng.uniform(0.15, 0.4), land)
        relief = _smooth_noise(rng, shape, size / rng.uniform(10, 20))
        slope = np.gradient(relief, axis=1) * np.float32(size / 10)
        back = hills & (slope < -rng.uniform(0.8, 1.2))
        fore = hills & (slope > 0.8) & ~back
        vv[back], vh[back] = -23.0, -29.5
        vv[fore] += 4.0
        vh[fore] += 3.0
        painted |= back | fore
        shares["shadow"] = back
    if "sand" in names:
        dunes = _blobs(rng, shape, size / 4, rng.uniform(0.1, 0.35), land & ~painted)
        theta = rng.uniform(0, np.pi)
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        along = xx * np.cos(theta) + yy * np.sin(theta)
        ripple = np.sin(2 * np.pi * along / rng.uniform(6, 20) + 2.0 * _smooth_noise(rng, shape, size / 8))
        vv[dunes] = (-21.0 + 1.5 * ripple)[dunes]
        vh[dunes] = (-29.0 + 1.0 * ripple)[dunes]
        painted |= dunes
        shares["sand"] = dunes
    if "urban" in names:
        town = _blobs(rng, shape, size / 8, rng.uniform(0.03, 0.12), land & ~painted)
        cell = int(rng.integers(3, 9))
        blocks = _parcels(rng, shape, cell)
        streets = ((np.arange(shape[0]) % cell)[:, None] == 0) | ((np.arange(shape[1]) % cell)[None, :] == 0)
        town_vv = np.where(streets, -7.0, -2.0 + 2.5 * blocks)
        town_vv += np.where(rng.random(shape) < 0.02, 10.0, 0.0)  # corner reflectors: a few very bright pixels
        vv[town] = town_vv[town]
        vh[town] = (town_vv - 8.0)[town]
        painted |= town
        shares["urban"] = town
    if "vegetation" in names and water.any():
        # Flooded vegetation stands in shallow water near the shore, not in river channels: a fringe, in patches.
        from scipy import ndimage

        depth = ndimage.distance_transform_edt(water)
        fringe = water & ~channel & (depth <= rng.uniform(0.01, 0.04) * size)
        flooded = _blobs(rng, shape, size / 10, rng.uniform(0.3, 0.7), fringe)
        brightening = 1.5 * _smooth_noise(rng, shape, size / 30)
        vv[flooded] = (-11.0 + brightening)[flooded]
        vh[flooded] = (-19.0 + brightening)[flooded]
        shares["vegetation"] = flooded
    if "wind" in names and water.any():
        open_water = water & ~shares["vegetation"] if "vegetation" in shares else water
        gust = _blobs(rng, shape, size / 5, rng.uniform(0.1, 0.4), open_water)
        rough = rng.uniform(4.0, 7.0) * np.clip(1.0 + 0.5 * _smooth_noise(rng, shape, size / 12), 0.3, 1.5)
        vv[gust] += rough[gust]
        vh[gust] += 0.5 * rough[gust]  # cross-pol responds less: wind-roughened water stays darker in VH
        shares["wind"] = gust
    n_valid = max(1, int(valid.sum()))  # every name asked for is reported, 0.0 where it found no room
    return {name: float(shares[name].sum() / n_valid) if name in shares else 0.0 for name in names}


def synth_scene(height: int, width: int, seed: int = 0, *, crs: str = "EPSG:32616",
                origin: tuple[float, float] = (500000.0, 3850000.0), pixel_size: float = 10.0,
                nodata_border: int = 0, water_fraction: float | None = None, looks: float = LOOKS,
                id: str | None = None, region: str = "synthetic", phenomena: Sequence[str] = ()) -> Sample:
    """A synthetic dual-pol (VV, VH) dB scene with rivers, lakes and flooded fields, and its water mask.

    water_fraction: share of valid pixels that are water (None: drawn from the seed, 2-40 %; 0: none).
    nodata_border: px of NaN (irregular, at least this wide) around the edge; masked as IGNORE_INDEX.
    phenomena: names from PHENOMENA (or ["all"]) to add; their shares of the valid pixels go in extra.
    """
    if height < 2 or width < 2:
        raise InvalidArgumentError(f"height, width: must be at least 2 (got {height}x{width})")
    if water_fraction is not None and not 0.0 <= water_fraction <= 1.0:
        raise InvalidArgumentError(f"water_fraction: must be in [0, 1] (got {water_fraction})")
    names = check_phenomena(phenomena)
    rng = np.random.default_rng(seed)
    shape = (int(height), int(width))
    size = max(shape)
    if water_fraction is None:
        water_fraction = float(rng.uniform(0.02, 0.4))

    # Terrain: broad hills + finer relief; rivers cut valleys; fields add blocky steps (floods fill whole fields).
    terrain = _smooth_noise(rng, shape, size / 3) + 0.5 * _smooth_noise(rng, shape, size / 10)
    field_cell = max(3, int(size / rng.uniform(12, 30)))
    farmland = _smooth_noise(rng, shape, size / 4) > -0.3
    terrain += np.where(farmland, 0.35 * _parcels(rng, shape, field_cell), 0.0).astype(np.float32)
    channel = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 3))):
        dist, half_width = _river_distance(rng, shape)
        terrain -= 1.5 * np.exp(-dist / (8 * half_width))  # floodplain
        channel |= dist <= half_width
        terrain -= 10.0 * (dist <= half_width)  # the channel itself is water first
    valid = _nodata_valid(rng, shape, int(nodata_border))

    water = np.zeros(shape, bool)
    if water_fraction > 0 and valid.any():
        sub = terrain[valid][:: max(1, int(valid.sum()) // 1_000_000)]  # a quantile on <= 1 M pixels is enough
        water = (terrain <= np.quantile(sub, water_fraction)) & valid

    # Backscatter means in dB: land has smooth texture and per-field crop differences; wind roughens water.
    texture = _smooth_noise(rng, shape, size / 16)
    crops = _parcels(rng, shape, field_cell)
    land_vv = LAND_DB[0] + 1.2 * texture + np.where(farmland, 1.2 * crops, 0.0)
    land_vh = LAND_DB[1] + 1.2 * texture + np.where(farmland, 1.5 * crops, 0.0)
    wind = 0.8 * _smooth_noise(rng, shape, size / 6)
    mean_vv = np.where(water, WATER_DB[0] + wind, land_vv).astype(np.float32)
    mean_vh = np.where(water, WATER_DB[1] + wind, land_vh).astype(np.float32)
    shares = {}
    if names:  # their own stream (after the base scene's), so the base scene does not change
        shares = _add_phenomena(np.random.default_rng([int(seed), 7]), names, water, valid, channel,
                                mean_vv, mean_vh)
    image = np.empty((2,) + shape, np.float32)
    image[0] = _speckle_db(rng, mean_vv, looks)
    image[1] = _speckle_db(rng, mean_vh, looks)
    image[:, ~valid] = np.nan

    mask = np.where(water, WATER, NOT_WATER).astype(np.int64)
    mask[~valid] = IGNORE_INDEX
    x0, y0 = origin
    georef = GeoRef(crs=crs, transform=(float(pixel_size), 0.0, float(x0), 0.0, -float(pixel_size), float(y0)))
    n_valid = int(valid.sum())
    return Sample(image=image, mask=mask, valid=valid, id=id or f"synthetic_{seed}", region=region,
                  georef=georef, bands=("VV", "VH"),
                  extra={"seed": seed, "looks": looks,
                         "water_fraction": float(water.sum() / n_valid) if n_valid else 0.0,
                         **({"phenomena": shares} if names else {})})


def synth_chips(n: int, size: int = 64, seed: int = 0, phenomena: Sequence[str] = ()) -> list[Sample]:
    """`n` small chips over four regions (SynthA..SynthD), varied water share; every 5th chip has no water,
    every 7th a nodata border. Chip i has id '<Region>_<i>' and its own place on the map. `phenomena` as in
    synth_scene, for every chip (each draws its own shares, some near zero)."""
    chips = []
    for i in range(int(n)):
        child = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0])
        frac_rng = np.random.default_rng(child)
        fraction = 0.0 if i % 5 == 4 else float(frac_rng.uniform(0.03, 0.6))
        region = CHIP_REGIONS[i % len(CHIP_REGIONS)]
        origin = (500000.0 + 10.0 * size * (i % 16), 3850000.0 - 10.0 * size * (i // 16))
        chips.append(synth_scene(size, size, seed=child, origin=origin, water_fraction=fraction,
                                 nodata_border=size // 8 if i % 7 == 6 else 0, id=f"{region}_{i}",
                                 region=region, phenomena=phenomena))
    return chips


def _block(n: int) -> int:
    # GeoTIFF tiles must be multiples of 16; no point in tiles larger than the image.
    return int(min(256, 16 * int(np.ceil(n / 16))))


def write_scene(sample: Sample, path: str | os.PathLike, *, label_path: str | os.PathLike | None = None) -> Path:
    """Write the image as a float32 GeoTIFF (one band per `sample.bands`, NaN nodata, tiled, deflate) and,
    optionally, the mask as an int16 Sen1Floods11-style label (1 water, 0 not water, -1 ignore)."""
    import rasterio

    path = check_path(path, "path")
    h, w = sample.shape
    profile = dict(driver="GTiff", height=h, width=w, count=sample.image.shape[0], dtype="float32",
                   nodata=float("nan"), tiled=True, blockxsize=_block(w), blockysize=_block(h),
                   compress="deflate", predictor=3)
    if sample.georef is not None:
        profile.update(crs=sample.georef.rasterio_crs(), transform=sample.georef.affine())
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(sample.image.astype(np.float32, copy=False))
            dst.descriptions = tuple(sample.bands)
    if label_path is not None:
        if sample.mask is None:
            raise DataError(f"{label_path}: sample '{sample.id}' has no mask to write")
        label = np.where(sample.mask == IGNORE_INDEX, -1, sample.mask).astype(np.int16)
        profile.update(count=1, dtype="int16", nodata=None, predictor=2)
        with atomic_path(label_path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(label[None])
    return path


def write_synthetic_dataset(out_dir: str | os.PathLike, chips: int = 16, size: int = 64, seed: int = 0,
                            samples: Sequence[Sample] | None = None, phenomena: Sequence[str] = (),
                            replace: bool = True) -> Path:
    """Write `synth_chips(chips, size, seed)` (or the given samples) in the Sen1Floods11 layout:
    S1Hand/<Region>_<n>_S1Hand.tif and LabelHand/<Region>_<n>_LabelHand.tif, and (when it generates them)
    synthetic.json (`options_record`), for `format: synthetic` sources. Atomic: all or nothing; with
    `replace=False` a folder another process wrote meanwhile is kept (io.atomic_dir)."""
    out_dir = check_path(out_dir, "out_dir")
    generated = samples is None
    if samples is not None and phenomena:
        raise InvalidArgumentError("samples, phenomena: give one of them, not both (samples are written as they are)")
    if samples is None:
        if chips < 1 or size < 2:
            raise InvalidArgumentError(f"chips, size: need at least 1 chip of at least 2 px (got {chips} x {size})")
        samples = synth_chips(chips, size=size, seed=seed, phenomena=phenomena)
    ours = lambda e: e.name == MANIFEST if e.is_file() else e.name in ("S1Hand", "LabelHand")  # noqa: E731
    with atomic_dir(out_dir, replace=replace, ours=ours, writer="data synth") as tmp:
        (tmp / "S1Hand").mkdir()
        (tmp / "LabelHand").mkdir()
        if generated:  # the record that lets a recipe's `format: synthetic` source reuse the folder
            record = options_record(chips, size, seed, phenomena)
            (tmp / MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
        for s in samples:
            write_scene(s, tmp / "S1Hand" / f"{s.id}_S1Hand.tif", label_path=tmp / "LabelHand" / f"{s.id}_LabelHand.tif")
    return out_dir
