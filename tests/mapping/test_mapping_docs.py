"""docs/mapping.md explains every field of stats.json and every file that map writes."""
from __future__ import annotations

import re
from pathlib import Path

from affine import Affine

from floodwatch.mapping import OUTPUT_NAMES, map_scene
from floodwatch.mapping.pipeline import TERRAIN_OUTPUT_NAMES

from .helpers import ThresholdPredictor
from .test_quicklook import TILING, _scene

DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"


def test_every_stats_field_and_file_is_documented(tmp_path):
    scene = _scene(tmp_path / "s.tif", Affine(10, 0, 400000, 0, -10, 5301200))
    stats = map_scene(scene, ThresholdPredictor(), tmp_path / "out", water_mask=scene, **TILING).stats
    documented = set(re.findall(r"`([a-z0-9_]+(?:\.[a-z]+)?)`", DOC.read_text()))
    optional = {"self_training", "terrain"}  # written only with those options
    assert not (set(stats) | optional) - documented
    assert not set(OUTPUT_NAMES.values()) - documented and not set(TERRAIN_OUTPUT_NAMES.values()) - documented
