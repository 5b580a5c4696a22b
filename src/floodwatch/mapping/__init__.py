"""Scene-scale flood mapping: any-size Sentinel-1 GeoTIFF in, georeferenced flood map and km² out."""
from .parallel import map_scenes, pair_band_files, scene_files
from .pipeline import OUTPUT_NAMES, TERRAIN_OUTPUT_NAMES, MapResult, map_scene, predictor_options
from .terrain import Terrain

__all__ = ["map_scene", "map_scenes", "pair_band_files", "predictor_options", "scene_files", "MapResult", "OUTPUT_NAMES",
           "TERRAIN_OUTPUT_NAMES", "Terrain"]
