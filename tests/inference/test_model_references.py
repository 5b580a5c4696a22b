"""Which back-end runs a model reference (`backend_for`) follows the file the reference resolves to: a registered
model's name and None (the default model) name its ONNX file under 'auto', as load_predictor runs it. Read
from the name alone they were taken for checkpoints, and `map_scene(scene, 'floodwatch-s1', out)` handed torch's
options to the ONNX back-end: a TypeError traceback where the CLI's `map -m floodwatch-s1` mapped."""
from __future__ import annotations

import json

import pytest

from floodwatch.errors import ModelError
from floodwatch.inference.predictor import backend_for
from floodwatch.models.zoo import DEFAULT_MODEL

from tests.models.zoo_checks import default_zoo, tiny_onnx  # noqa: F401


def test_names_and_the_default_run_their_onnx_file_under_auto(default_zoo, tmp_path):
    assert backend_for(None) == backend_for(DEFAULT_MODEL) == "onnx"
    assert backend_for(DEFAULT_MODEL, "torch") == "torch"
    assert backend_for(tmp_path / "m.pt") == "torch" and backend_for(str(tmp_path / "m.ONNX")) == "onnx"
    url = "https://example.org/models/flood.onnx#sha256=" + "a" * 64
    assert backend_for(url) == "onnx" and backend_for(url.replace(".onnx", ".pt")) == "torch"  # nothing fetched
    with pytest.raises(ModelError, match="'nope': not a registered model"):
        backend_for("nope")


def test_map_scene_maps_with_a_registered_name(default_zoo, tmp_path):
    from floodwatch.mapping import map_scene

    from tests.mapping.helpers import make_scene

    make_scene(tmp_path / "s.tif", 48, 48)
    result = map_scene(tmp_path / "s.tif", DEFAULT_MODEL, tmp_path / "out", tile=64, overlap=16, progress=False)
    assert json.loads(result.paths["stats"].read_text())["backend"] == "onnx"


def test_map_scene_records_the_file_a_name_or_the_default_runs(default_zoo, tmp_path, monkeypatch):
    """A registered name was recorded as "<cwd>/floodwatch-s1", a path that does not exist; None (the default
    model, as `map` without -m) was refused as no predictor."""
    from floodwatch.mapping import map_scene

    from tests.mapping.helpers import make_scene

    make_scene(tmp_path / "s.tif", 48, 48)
    monkeypatch.chdir(tmp_path)
    onnx = str((default_zoo / DEFAULT_MODEL / "model.onnx").resolve())
    for name, ref in (("by_name", DEFAULT_MODEL), ("default", None)):
        result = map_scene(tmp_path / "s.tif", ref, tmp_path / name, tile=64, overlap=16, progress=False)
        stats = json.loads(result.paths["stats"].read_text())
        assert stats["model"] == onnx and stats["backend"] == "onnx", name
