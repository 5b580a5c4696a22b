"""benchmarks/self_train_cost.py end to end on a tiny scene: both runs map it, the self-trained one says so."""
import numpy as np
import rasterio

from tests.mapping.helpers import make_scene

from .helpers import load_benchmark


def test_maps_plain_and_self_trained_and_prints_the_ratio(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    bench = load_benchmark("self_train_cost")
    sample = make_scene(tmp_path / "scene_64x64.tif", 64, 64, seed=3)
    with rasterio.open(tmp_path / "scene_64x64.tif") as src:
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 255}
    with rasterio.open(tmp_path / "truth_64x64.tif", "w", **profile) as dst:
        dst.write(np.where(sample.valid, sample.mask, 255).astype(np.uint8), 1)
    monkeypatch.setattr(bench, "scene_path", lambda h, w: (tmp_path / "scene_64x64.tif", tmp_path / "truth_64x64.tif"))
    assert bench.main(["--size", "64", "--rounds", "1", "-m", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "round 1 plain" in out and "round 1 self-train" in out and "self-training" in out
    assert "x the wall time" in out
