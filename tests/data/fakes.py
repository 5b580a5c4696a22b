"""Tiny fake datasets in every supported layout, written into a tmp folder by code (TorchGeo style)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from floodwatch.data.synthetic import synth_chips, write_synthetic_dataset

SIZE = 32


def sen1floods11(root: Path, chips: int = 4, *, nolabel: int = 0, splits: bool = True) -> Path:
    """Synthetic chips in the Sen1Floods11 layout, plus split lists and unlabelled chips if asked."""
    write_synthetic_dataset(root, chips=chips, size=SIZE, seed=0)
    if splits:
        (root / "splits").mkdir()
        ids = sorted(p.name[:-len("_S1Hand.tif")] for p in (root / "S1Hand").glob("*.tif"))
        (root / "splits" / "flood_train_data.txt").write_text("\n".join(ids[:-1]) + "\n")
        (root / "splits" / "flood_test_data.csv").write_text(f"{ids[-1]}_S1Hand.tif,{ids[-1]}_LabelHand.tif\n")
    if nolabel:
        from floodwatch.data.synthetic import write_scene

        (root / "S1Hand_nolabel").mkdir()
        for s in synth_chips(nolabel, size=SIZE, seed=99):
            write_scene(s, root / "S1Hand_nolabel" / f"Nolabel{s.id}_S1Hand.tif")
    return root


def _png(path: Path, arr: np.ndarray, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([arr] * 3, -1) if rgb else arr).save(path)


def etci(root: Path, scene: str = "scene_20200101t000000", cols: int = 3, rows: int = 2, seed: int = 0) -> Path:
    """ETCI tiles: RGB PNGs with equal channels; flood pixels dark in VV; grid in the names."""
    rng = np.random.default_rng(seed)
    tiles = root / scene / "tiles"
    for x in range(cols):
        for y in range(rows):
            name = f"{scene}_x-{x}_y-{y}"
            flood = rng.random((SIZE, SIZE)) < 0.2
            vv = np.where(flood, rng.integers(0, 30, (SIZE, SIZE)), rng.integers(120, 200, (SIZE, SIZE))).astype(np.uint8)
            vh = np.clip(vv.astype(int) + 30, 0, 255).astype(np.uint8)
            _png(tiles / "vv" / f"{name}_vv.png", vv, rgb=True)
            _png(tiles / "vh" / f"{name}_vh.png", vh, rgb=True)
            _png(tiles / "flood_label" / f"{name}.png", (flood * 255).astype(np.uint8))
            _png(tiles / "water_body_label" / f"{name}.png", (flood & (rng.random((SIZE, SIZE)) < .5)).astype(np.uint8) * 255)
    return root


def ombria(root: Path, per_split: dict[str, list[int]] | None = None, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, numbers in (per_split or {"train": [1, 2, 3], "test": [4]}).items():
        for n in numbers:
            mask = rng.random((SIZE, SIZE)) < 0.3
            _png(root / split / "MASK" / f"S1_mask_{n:04d}.png", (mask * 255).astype(np.uint8))
            _png(root / split / "AFTER" / f"S1_after_{n:04d}.png", np.where(mask, 30, 180).astype(np.uint8))
            _png(root / split / "BEFORE" / f"S1_before_{n:04d}.png", np.full((SIZE, SIZE), 170, np.uint8))
    return root


def folders(root: Path, n: int = 3, *, colour: bool = False, split: str | None = None, mask_values=(0, 255),
            seed: int = 0) -> Path:
    """images/ + masks/ with the same ids; colour images have different VV/VH channels."""
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    for i in range(n):
        mask = rng.random((SIZE, SIZE)) < 0.3
        vv = np.where(mask, 20, 160).astype(np.uint8)
        img = np.stack([vv, vv // 2, vv // 3], -1) if colour else vv
        _png(base / "images" / f"chip_{i}.png", img)
        _png(base / "masks" / f"chip_{i}.png", np.where(mask, mask_values[1], mask_values[0]).astype(np.uint8))
    return root


def stac_overflow(root: Path, chips: tuple[str, ...] = ("awc00", "awc01", "kuo05"), *, metadata: bool = True,
                  features: str = "train_features", labels: str = "train_labels", seed: int = 0) -> Path:
    """STAC Overflow chips: one float32 dB GeoTIFF per band (UTM, 10 m, no nodata tag), uint8 labels 1/0/255,
    0.0 = missing: each chip's top-left 4 x 4 px in VH and 2 x 2 px below it in VV; labels 255 in its last row."""
    import rasterio
    from rasterio.transform import Affine

    from floodwatch.data.synthetic import synth_scene

    for i, chip in enumerate(chips):
        s = synth_scene(SIZE, SIZE, seed=seed + i, water_fraction=0.3)
        vv, vh = s.image[0].copy(), s.image[1].copy()
        vh[:4, :4] = 0.0
        vv[4:6, :2] = 0.0
        label = (s.mask == 1).astype(np.uint8)
        label[-1] = 255
        profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, crs="EPSG:32633", nodata=None,
                       transform=Affine(10.0, 0.0, 400000.0 + 1000 * i, 0.0, -10.0, 5000000.0))
        (root / features).mkdir(parents=True, exist_ok=True)
        for band, arr in (("vv", vv), ("vh", vh)):
            with rasterio.open(root / features / f"{chip}_{band}.tif", "w", dtype="float32", **profile) as dst:
                dst.write(arr[None])
        if labels:
            (root / labels).mkdir(parents=True, exist_ok=True)
            with rasterio.open(root / labels / f"{chip}.tif", "w", dtype="uint8", **{**profile, "nodata": 255}) as dst:
                dst.write(label[None])
    if metadata:
        rows = ["image_id,chip_id,flood_id,polarization,location,scene_start"]
        rows += [f"{c}_{b},{c},{'X' + c[:3]},{b},Somewhere,2020-01-01" for c in chips for b in ("vv", "vh")]
        (root / "flood-training-metadata.csv").write_text("\n".join(rows) + "\n")
    return root
