import json
import re

import numpy as np
import pytest
import rasterio


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    from rich.console import Console

    from floodwatch.demo import run_demo

    console = Console(record=True, width=120)
    result = run_demo(tmp_path / "demo", quick=True, progress=False, console=console)
    text = console.export_text()
    # every stage left its output where the printout says
    for path in (result.spec, result.checkpoint, result.metrics_json, result.report):
        assert path.is_file() and str(path) in text
    metrics = json.loads(result.metrics_json.read_text())
    assert metrics["chips"] > 0 and metrics["otsu"]["chips"] == metrics["chips"]
    assert 0.0 <= metrics["water_iou"] <= 1.0 and 0.5 < metrics["otsu"]["water_iou"] <= 1.0
    # the test split is regions training did not see
    spec_regions = set(metrics["regions"])
    assert spec_regions and spec_regions <= {"SynthA", "SynthB", "SynthC", "SynthD"}
    assert len(list(result.predictions_dir.glob("*.png"))) == metrics["chips"]
    masks = sorted(result.inference_dir.glob("*_mask.tif"))
    assert len(masks) == 3
    with rasterio.open(masks[0]) as m:
        src_path = result.data_dir / "S1Hand" / masks[0].name.replace("_mask.tif", ".tif")
        with rasterio.open(src_path) as src:
            assert m.crs == src.crs and m.transform == src.transform
        assert set(np.unique(m.read(1))) <= {0, 1, 255}
    # only best.pt is kept (training_config.checkpoints: best): last.pt went when training ended
    assert sorted(p.name for p in result.checkpoint.parent.glob("*.pt")) == ["best.pt"]
    # the flood map of the synthetic scene, on the scene's grid, with its km2 beside the known truth
    stats = json.loads((result.map_dir / "stats.json").read_text())
    assert stats["flooded_km2"] == pytest.approx(result.map_stats["flooded_km2"])
    assert 0 < stats["flooded_km2"] < stats["valid_km2"]
    with rasterio.open(result.map_dir / "flood_mask.tif") as m, rasterio.open(
            result.out_dir / "scene" / "synthetic_scene.tif") as scene:
        assert m.crs == scene.crs and m.transform == scene.transform and m.shape == scene.shape
    assert (result.map_dir / "quicklook.png").is_file() and str(result.map_dir) in text
    html = result.report.read_text()
    # learning curve + 3 overlays + the map against the truth + the map's quicklook
    assert "Otsu" in html and html.count("data:image/png;base64") >= 6
    assert "U-Net with a ResNet-10 encoder" in html  # the architecture is named
    assert "SAR backscatter (VH)" in html and "Otsu threshold vs truth" in html  # panels labelled
    assert "TP / (TP + FP)" in html and "TP / (TP + FN)" in html  # precision and recall defined
    assert f"{stats['flooded_km2']:.2f} km²" in html and "Next steps" in html
    # opened from the folder, offline: every picture embedded, every link relative and there
    assert not re.search(r'(?:src|href)="?(?:https?:)?//', html)
    links = re.findall(r'href="([^"]+)"', html)
    assert "metrics.json" in links and all((result.out_dir / link).exists() for link in links)
    assert "<b>Synthetic data.</b>" in html and "scored below on SynthD" in html


def test_the_demo_maps_its_scene_again_into_the_same_folders(tmp_path):
    """Its comparison picture sat inside the map's scene folder, which a rerun's map then refused."""
    from floodwatch.demo import map_synthetic_scene
    from tests.monitoring.monitoring_helpers import DarkWaterPredictor

    for _ in range(2):
        result = map_synthetic_scene(DarkWaterPredictor(), tmp_path / "scene", tmp_path / "map", side=96,
                                     progress=False)
        assert result["comparison"].is_file() and result["comparison"].parent == tmp_path / "map"
