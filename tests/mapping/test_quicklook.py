"""quicklook.png as a picture sent on its own: north up whatever the grid's row order, a true scale bar, a title
and legend that say what the red is, and words that read as words."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from floodwatch.inference.overlay import label_font, with_legend
from floodwatch.mapping import map_scene
from floodwatch.mapping.quicklook import Quicklook, nice_length

from .helpers import ThresholdPredictor

TILING = dict(tile=64, overlap=16, batch=4, progress=False)


def _scene(path, transform, crs="EPSG:32633", size=(120, 100)):
    """Bright land, with water (-25 dB) in the first 30 rows as stored."""
    h, w = size
    vv = np.full((h, w), -6.0, np.float32)
    vv[:30] = -25.0
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=2, dtype="float32", crs=crs,
                       transform=transform) as ds:
        ds.write(np.stack([vv, vv - 7]))
        ds.descriptions = ("VV", "VH")
    return path


def _red_rows(png) -> np.ndarray:
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    return np.flatnonzero(red[:, 40:60].any(axis=1))  # a column band clear of the legend, arrow and bar


@pytest.mark.parametrize("bottom_up", [False, True])
def test_the_quicklook_is_north_up_whatever_the_row_order(tmp_path, bottom_up):
    """A bottom-up grid (positive pixel height, as written from ascending-latitude arrays) stores its southern
    rows first: drawn as stored, the picture was upside down. The water sits in the south of the bottom-up
    scene and in the north of the other; the picture must show that."""
    if bottom_up:
        transform = Affine(10, 0, 400000, 0, 10, 5300000)
    else:
        transform = Affine(10, 0, 400000, 0, -10, 5301200)
    scene = _scene(tmp_path / "s.tif", transform)
    result = map_scene(scene, ThresholdPredictor(), tmp_path / "out", **TILING)
    rows = _red_rows(result.paths["quicklook"])
    height = Image.open(result.paths["quicklook"]).size[1]
    assert len(rows) >= 25
    if bottom_up:
        assert rows.min() > height - 35  # the bottom 30 rows
    else:
        assert rows.max() < height - 85


def test_north_arrow_and_scale_follow_the_grid():
    """Metres per picture pixel along its rows, measured on the ellipsoid: 1e-4° of longitude at 60° N is
    about 5.6 m, half of what it is at the equator; a rotated grid's north is not up."""
    look = Quicklook(1000, 1000, max_side=500, transform=Affine(1e-4, 0, 10, 0, -1e-4, 60.05), crs="EPSG:4326")
    flip_rows, flip_cols, angle, metres = look.orientation()
    assert (flip_rows, flip_cols) == (False, False) and angle == pytest.approx(0, abs=1e-6)
    assert metres == pytest.approx(2 * 5.58, rel=0.01)  # 2 scene pixels per picture pixel
    rotated = Affine(10, 0, 400000, 0, -10, 5301200) @ Affine.rotation(30)
    _, _, angle, metres = Quicklook(100, 100, transform=rotated, crs="EPSG:32633").orientation()
    assert abs(angle) == pytest.approx(30, abs=2) and metres == pytest.approx(10, rel=0.01)
    assert Quicklook(10, 10).orientation() == (False, False, None, None)
    # a CRS PROJ cannot take to lon/lat: a picture without arrow and scale, not a map failing at its last step
    assert Quicklook(10, 10, transform=Affine(1, 0, 0, 0, -1, 0), crs="not a crs").orientation() == \
        (False, False, None, None)
    assert nice_length(10.0, 1000) == 2000 and nice_length(7.9, 1024) == 2000 and nice_length(3.0, 100) == 50


def test_title_and_legend_say_water_without_a_permanent_water_reference(tmp_path, monkeypatch):
    """Without water_mask, rivers and lakes are mask value 1 too: 'new flood' in red would overstate."""
    seen = []
    monkeypatch.setattr(Quicklook, "save", lambda self, path, title, classes: seen.append((title, classes)))
    scene = _scene(tmp_path / "s.tif", Affine(10, 0, 400000, 0, -10, 5301200))
    map_scene(scene, ThresholdPredictor(), tmp_path / "a", **TILING)
    map_scene(scene, ThresholdPredictor(), tmp_path / "b", water_mask=scene, name="ref", **TILING)
    (plain, plain_classes), (ref, ref_classes) = seen
    assert "new flood" not in plain and "no water_mask" in plain and plain.startswith("s: ")
    assert plain_classes == ["water", "no data"]
    assert "new flood" in ref and ref.startswith("ref: ") and ref_classes == ["flood", "permanent water", "no data"]


def _gaps(text: str) -> list[int]:
    """Widths of the blank column runs between the inked columns of `text` as with_legend writes a title."""
    strip = with_legend(np.zeros((4, 300, 3), np.uint8), [text], colours={})[4:4 + label_font().size + 4]
    ink = (strip < 128).all(axis=-1).any(axis=0)
    cols = np.flatnonzero(ink)
    runs, run = [], 0
    for on in ink[cols[0]:cols[-1] + 1]:
        if on and run:
            runs.append(run)
        run = 0 if on else run + 1
    return runs


def test_legend_titles_keep_their_word_spaces():
    """Pillow's default 10 px font set 'SAR after' with a 2 px space, as wide as the gaps between its letters:
    it read 'SARafter'. The space must stand out from every gap between letters."""
    gaps = sorted(_gaps("SAR after"))
    assert gaps[-1] >= gaps[-2] + 2
