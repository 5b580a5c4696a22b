"""-m is optional on map, evaluate, infer, change and export: without it they run the default model (its
INT8/ONNX file where ONNX runs, its checkpoint for torch and export), and say in one line when none is
installed. `floodwatch models list|info` show the registry."""
from __future__ import annotations

import json

import pytest

from floodwatch.models.zoo import DEFAULT_MODEL

from tests.mapping.helpers import make_scene
from tests.models.zoo_checks import default_zoo, tiny_onnx  # noqa: F401


@pytest.fixture
def scene(tmp_path):
    make_scene(tmp_path / "scene.tif", 40, 40)
    return tmp_path / "scene.tif"


@pytest.fixture
def chips(tmp_path):
    from floodwatch.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "chips", chips=4, size=32, seed=0)
    return tmp_path / "chips"


def _argv(command, tmp_path, scene, chips):
    out = tmp_path / "out"
    return {"map": ["map", scene, "-o", out, "--tile", "64", "--overlap", "16", "-q"],
            "evaluate": ["evaluate", "--data", chips, "-q", "-o", out / "m.json"],
            "infer": ["infer", *sorted((chips / "S1Hand").glob("*.tif"))[:2], "-o", out, "-q"],
            "change": ["change", "--before", scene, "--after", scene, "-o", out],
            "export": ["export", "-o", out / "m.onnx", "--exporter", "torchscript"]}[command]


COMMANDS = ["map", "evaluate", "infer", "change", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_without_a_default_model_one_line_and_exit_2(command, run_cli, tmp_path, monkeypatch, scene, chips):
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path / "no-zoo"))
    r = run_cli(*_argv(command, tmp_path, scene, chips))
    assert r.returncode == 2
    assert r.stderr.startswith("error: no default model installed") and "-m" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_without_m_the_default_model_runs(command, run_cli, tmp_path, default_zoo, scene, chips):
    r = run_cli(*_argv(command, tmp_path, scene, chips))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    if command == "map":
        assert json.loads((out / "scene" / "stats.json").read_text())["backend"] == "onnx"
    elif command == "evaluate":
        assert json.loads((out / "m.json").read_text())["model"] == str(default_zoo / DEFAULT_MODEL / "model.onnx")
    elif command == "export":
        assert (out / "m.onnx").is_file()  # exported from the default model's checkpoint
    else:
        assert any(out.iterdir())


def test_map_backend_torch_takes_the_checkpoint(run_cli, tmp_path, default_zoo, scene):
    r = run_cli("map", scene, "-o", tmp_path / "out", "--backend", "torch", "--tile", "64", "--overlap", "16", "-q")
    assert r.returncode == 0, r.stderr
    # torch cannot load an ONNX file: it ran the checkpoint
    assert json.loads((tmp_path / "out" / "scene" / "stats.json").read_text())["backend"] == "torch"


def test_a_registered_name_works_as_m(run_cli, tmp_path, default_zoo, scene):
    r = run_cli("map", scene, "-m", DEFAULT_MODEL, "-o", tmp_path / "out", "--tile", "64", "--overlap", "16", "-q")
    assert r.returncode == 0, r.stderr


def test_prune_takes_a_registered_name_as_m_like_every_command(run_cli, tmp_path, default_zoo):
    import torch

    r = run_cli("prune", "-m", DEFAULT_MODEL, "-o", tmp_path / "p.pt", "--ratio", "0.5")
    assert r.returncode == 0, r.stderr
    assert "model_state" in torch.load(tmp_path / "p.pt", weights_only=True)


def test_models_list_and_info(run_cli, default_zoo):
    r = run_cli("models", "list")
    assert r.returncode == 0 and f"{DEFAULT_MODEL} *" in r.stdout
    r = run_cli("models", "info")
    assert r.returncode == 0 and "Known failure modes" in r.stdout and "Training data" in r.stdout
    r = run_cli("models", "info", DEFAULT_MODEL, "--markdown")
    assert r.returncode == 0 and r.stdout.startswith(f"# {DEFAULT_MODEL} ") and "## Intended use" in r.stdout
    r = run_cli("models", "info", "nonesuch")
    assert r.returncode == 2 and "nonesuch" in r.stderr and DEFAULT_MODEL in r.stderr


def test_models_list_names_a_damaged_card_after_the_others(run_cli, default_zoo):
    """One broken card.json in the zoo does not hide the good models: they are listed, the bad card is named with
    its field, exit status 2; an unknown name's error still lists the good ones."""
    (default_zoo / "broken").mkdir()
    (default_zoo / "broken" / "card.json").write_text('{"name": "broken"}')
    r = run_cli("models", "list")
    assert r.returncode == 2 and f"{DEFAULT_MODEL} *" in r.stdout and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "broken" in r.stderr and "card.json" in r.stderr
    r = run_cli("models", "info", "nonesuch")
    assert r.returncode == 2 and f"registered: {DEFAULT_MODEL}" in r.stderr


def test_models_list_and_info_say_a_file_is_damaged(run_cli, default_zoo):
    """They exited 0 for a model whose file no longer matches its card; only loading it said so."""
    onnx = default_zoo / DEFAULT_MODEL / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    r = run_cli("models", "list")
    assert r.returncode == 2 and "damaged" in r.stdout and f"{DEFAULT_MODEL} *" in r.stdout
    assert r.stderr.startswith("error: ") and "model.onnx does not match the sha256" in r.stderr
    r = run_cli("models", "info")
    assert r.returncode == 2 and "does not match the sha256" in r.stderr and DEFAULT_MODEL in r.stdout  # card first
    assert "Traceback" not in r.stderr


def test_models_without_any_installed(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path / "none"))
    r = run_cli("models", "list")
    assert r.returncode == 0 and "no models installed" in r.stdout
    r = run_cli("models", "info")
    assert r.returncode == 2 and r.stderr.startswith("error: no default model installed")
