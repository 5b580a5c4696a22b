"""Public terrain layers read by AOI window from tiled COGs on a loopback HTTP server with range requests:
tile naming, mosaicking across tiles, missing (ocean) tiles, water classes, and only-the-window transfers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from pyproj import Transformer
from rasterio.transform import from_origin

from floodwatch.mapping import map_scene
from floodwatch.mapping.terrain import Terrain
from floodwatch.mapping.terrain_sources import PUBLIC_LAYERS, Grid, fetch_layer, read_cog_window

from .helpers import ThresholdPredictor, read
from .range_server import RangeServer
from .terrain_scenes import write_sar

UTM32 = "EPSG:32632"


def elevation(lon, lat):
    """A smooth surface that continues across tile edges, so a mosaic seam would show."""
    return 100.0 + 300.0 * (lat - 45.0) + 200.0 * (lon - 10.0)


def write_cog(path, data, transform, nodata=None, crs="EPSG:4326"):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".plain.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data, 1)
    rasterio.shutil.copy(tmp, path, driver="COG", blocksize=128, compress="deflate")
    tmp.unlink()


def dem_tile(root, lat, lon, n=1200):
    """A 1-degree GLO-30-named tile (at 3 arc-seconds to stay small) with `elevation` at pixel centres."""
    d = 1.0 / n
    cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    z = elevation(lon + cols * d, lat + 1 - rows * d).astype(np.float32)
    path = root / PUBLIC_LAYERS["glo30-dem"].path(lat, lon)
    write_cog(path, z, from_origin(lon, lat + 1, d, d), nodata=-32767.0)
    return path


def utm_grid(lon0, lat0, lon1, lat1, pixel=100.0) -> Grid:
    to_utm = Transformer.from_crs("EPSG:4326", UTM32, always_xy=True)
    (x0, y0), (x1, y1) = to_utm.transform(lon0, lat0), to_utm.transform(lon1, lat1)
    return Grid(UTM32, from_origin(x0, y1, pixel, pixel), int((y1 - y0) // pixel), int((x1 - x0) // pixel))


def centres_lonlat(grid: Grid):
    rows, cols = np.mgrid[0:grid.height, 0:grid.width] + 0.5
    x, y = grid.transform @ (cols, rows)
    return Transformer.from_crs(UTM32, "EPSG:4326", always_xy=True).transform(x, y)


def test_tile_names_follow_each_providers_scheme():
    dem, hand = PUBLIC_LAYERS["glo30-dem"], PUBLIC_LAYERS["glo30-hand"]
    assert dem.tile_urls((10.2, 50.1, 10.8, 50.9)) == [
        "https://copernicus-dem-30m.s3.amazonaws.com/Copernicus_DSM_COG_10_N50_00_E010_00_DEM/"
        "Copernicus_DSM_COG_10_N50_00_E010_00_DEM.tif"]
    assert hand.tile_urls((-61.5, -0.5, -61.2, -0.2)) == [
        "https://glo-30-hand.s3.amazonaws.com/v1/2021/Copernicus_DSM_COG_10_S01_00_W062_00_HAND.tif"]
    assert len(dem.tile_urls((10.5, 45.5, 11.5, 46.5))) == 4
    jrc = PUBLIC_LAYERS["jrc-gsw"].tile_urls((10.5, 45.5, 10.6, 45.6))
    assert jrc == ["https://storage.googleapis.com/global-surface-water/downloads2021/occurrence/"
                   "occurrence_10E_50Nv1_4_2021.tif"]  # named by its north-west corner
    assert PUBLIC_LAYERS["jrc-gsw"].tile_urls((-74.1, 4.6, -74.0, 4.7))[0].endswith("occurrence_80W_10Nv1_4_2021.tif")
    wc = PUBLIC_LAYERS["worldcover"].tile_urls((4.2, 51.5, 4.3, 51.6))
    assert wc == ["https://esa-worldcover.s3.eu-central-1.amazonaws.com/v200/2021/map/"
                  "ESA_WorldCover_10m_2021_v200_N51E003_Map.tif"]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiles")
    paths = [dem_tile(root, 45, 10), dem_tile(root, 45, 11)]  # E012 is missing: "ocean"
    occ = np.full((1000, 1000), 255, np.uint8)  # 0.01-degree JRC tile 10-20 E, 40-50 N
    rows = slice(round((50 - 45.56) / 0.01), round((50 - 45.50) / 0.01))
    occ[rows, round((10.90 - 10) / 0.01):round((10.96 - 10) / 0.01)] = 90  # a lake
    occ[rows, round((10.96 - 10) / 0.01):round((11.00 - 10) / 0.01)] = 20  # seasonal wetland: not permanent
    jrc = root / PUBLIC_LAYERS["jrc-gsw"].path(40, 10)
    write_cog(jrc, occ, from_origin(10, 50, 0.01, 0.01), nodata=255)
    return root, paths


def test_windowed_read_mosaics_tiles_and_transfers_only_the_window(tiles):
    root, paths = tiles
    srv = RangeServer(root)
    grid = utm_grid(10.95, 45.50, 11.05, 45.56)  # straddles the E010/E011 tile edge
    with srv.serve() as base:
        layer = dataclasses.replace(PUBLIC_LAYERS["glo30-dem"], base_url=base)
        z = fetch_layer(layer, grid)
    lon, lat = centres_lonlat(grid)
    np.testing.assert_allclose(z, elevation(lon, lat), atol=2.0)  # bilinear on a plane
    gets = [r for r in srv.requests if r[0] == "GET"]
    assert gets and all(rng and rng.startswith("bytes=") for _, _, rng in gets)
    assert srv.bytes_sent < 0.5 * sum(p.stat().st_size for p in paths)  # only the AOI's blocks came over


def test_missing_dem_tile_is_sea_level_and_a_missing_file_reads_none(tiles):
    root, _ = tiles
    grid = utm_grid(11.97, 45.50, 12.03, 45.52)  # half in E011, half in the absent E012
    with RangeServer(root).serve() as base:
        z = fetch_layer(dataclasses.replace(PUBLIC_LAYERS["glo30-dem"], base_url=base), grid)
        assert read_cog_window(f"{base}/nothing_here.tif", grid) is None
    lon, lat = centres_lonlat(grid)
    assert (z[lon > 12.001] == 0).all()
    np.testing.assert_allclose(z[lon < 11.999], elevation(lon, lat)[lon < 11.999], atol=2.0)


def test_public_dem_and_reference_water_in_map_scene(tiles, tmp_path, monkeypatch):
    """`dem='glo30-dem'` and `water_mask='jrc-gsw'` end to end through the loopback mirror."""
    root, _ = tiles
    grid = utm_grid(10.88, 45.49, 11.02, 45.57, pixel=50.0)
    lon, lat = centres_lonlat(grid)
    lake = (lon > 10.905) & (lon < 10.955) & (lat > 45.505) & (lat < 45.555)
    wetland = (lon > 10.965) & (lon < 10.995) & (lat > 45.505) & (lat < 45.555)
    scene = write_sar(tmp_path / "s.tif", lake | wetland, origin=(grid.transform.c, grid.transform.f), pixel=50.0)
    with rasterio.open(scene, "r+") as ds:
        ds.crs = UTM32
    with RangeServer(root).serve() as base:
        for name in ("glo30-dem", "jrc-gsw"):
            monkeypatch.setitem(PUBLIC_LAYERS, name, dataclasses.replace(PUBLIC_LAYERS[name], base_url=base))
        r = map_scene(scene, ThresholdPredictor(), tmp_path / "out", water_mask="jrc-gsw",
                      terrain=Terrain(dem="glo30-dem", hand_from_dem=False, orbit="ascending"),
                      tile=64, overlap=16, progress=False)
        water = fetch_layer(PUBLIC_LAYERS["jrc-gsw"], grid)
    jrc_lake = (lon > 10.90) & (lon < 10.96) & (lat > 45.50) & (lat < 45.56)
    edge = (np.abs(lon - 10.90) < 0.001) | (np.abs(lon - 10.96) < 0.001) | (np.abs(lat - 45.50) < 0.001) \
        | (np.abs(lat - 45.56) < 0.001)
    np.testing.assert_array_equal((water > 0)[~edge], jrc_lake[~edge])  # 255 (no data) and 20 % are not water
    mask, _ = read(r.paths["mask"])
    assert (mask[lake] == 2).all() and (mask[wetland] == 1).all()
    assert r.stats["terrain"]["dem"] == "glo30-dem" and r.stats["terrain"]["terrain_grid_m"][0] > 40


def test_a_dem_url_is_read_in_place_as_its_file_is(tiles, tmp_path):
    """`dem='https://.../x.tif'` (any raster URL, as --water-mask takes): the same exclusions as the local file,
    read by COG windows."""
    root, paths = tiles
    grid = utm_grid(10.95, 45.50, 11.0, 45.53, pixel=50.0)
    scene = write_sar(tmp_path / "s.tif", np.ones((grid.height, grid.width), bool),  # all water-dark
                      origin=(grid.transform.c, grid.transform.f), pixel=50.0)
    with rasterio.open(scene, "r+") as ds:
        ds.crs = UTM32
    jrc = PUBLIC_LAYERS["jrc-gsw"].path(40, 10)
    local = map_scene(scene, ThresholdPredictor(), tmp_path / "local", tile=64, overlap=16, progress=False,
                      water_mask=str(root / jrc), terrain=Terrain(dem=str(paths[0]), slope_max=0.1, orbit="ascending"))
    srv = RangeServer(root)
    with srv.serve() as base:
        remote = map_scene(scene, ThresholdPredictor(), tmp_path / "remote", tile=64, overlap=16, progress=False,
                           water_mask=f"{base}/{jrc}",  # --water-mask's URL, opened as the DEM's
                           terrain=Terrain(dem=f"{base}/{paths[0].relative_to(root)}", slope_max=0.1,
                                           orbit="ascending"))
    assert any(r[0] == "GET" for r in srv.requests)
    a, b = read(local.paths["exclusion"])[0], read(remote.paths["exclusion"])[0]
    assert (a == b).all() and (a & 2).any()  # the plane slopes about 0.2 degrees
    mask = read(remote.paths["mask"])[0]
    assert (read(local.paths["mask"])[0] == mask).all() and (mask == 2).any()  # the lake's edge is known water
    # a download link without a file suffix (a presigned URL, an API endpoint) is read too
    (root / "dem_download").write_bytes(paths[0].read_bytes())
    with RangeServer(root).serve() as base:
        bare = map_scene(scene, ThresholdPredictor(), tmp_path / "bare", tile=64, overlap=16, progress=False,
                         terrain=Terrain(dem=f"{base}/dem_download", slope_max=0.1, orbit="ascending"))
    assert (read(bare.paths["exclusion"])[0] == a).all()
    assert remote.stats["terrain"]["terrain_grid_m"] == local.stats["terrain"]["terrain_grid_m"]
