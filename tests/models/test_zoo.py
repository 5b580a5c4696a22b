"""The model zoo: cards, the registry, what a model reference resolves to, and the checks every registered
model must pass (run here on a tiny generated model; on the shipped default model once it is installed)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from floodwatch.errors import ModelError, NoDefaultModelError
from floodwatch.models import zoo
from floodwatch.models.card import card_markdown, read_card

from tests.models.zoo_checks import (agreement_problems, default_zoo, onnx_checkpoint_agreement,  # noqa: F401
                                     reproduce_card_rows, tiny_onnx, write_test_zoo)


def test_card_reads_and_renders(default_zoo):
    model = zoo.get_model()
    assert model.is_default and model.name == zoo.DEFAULT_MODEL
    md = card_markdown(model.card, default=True)
    for heading in ("## Input", "## Training data", "## Accuracy", "## Intended use", "## Known failure modes"):
        assert heading in md
    assert "| data | licence | used for |" in md and "VV, VH in dB" in md


def test_card_figures_render_as_tables(default_zoo):
    path = default_zoo / zoo.DEFAULT_MODEL / "card.json"
    card = json.loads(path.read_text())
    card["evaluation"]["leave_one_event_out"] = [
        {"held_out": "Bolivia", "chips": 15, "model_water_iou": 0.25, "otsu_water_iou": 0.125}]
    card["evaluation"]["reproduce"] = [{"dataset": "x/y", "format": "folders", "value": 0.5, "otsu": 0.25}]
    path.write_text(json.dumps(card))
    md = card_markdown(read_card(path))
    assert "| Bolivia | 15 | 0.250 | 0.125 |" in md
    # rows without chip counts (the shipped card's): no empty column
    card["evaluation"]["leave_one_event_out"][0].pop("chips")
    path.write_text(json.dumps(card))
    md = card_markdown(read_card(path))
    assert "| Bolivia | 0.250 | 0.125 |" in md and "| chips |" not in md
    assert "| x/y | all | checkpoint | water_iou | 0.500 | 0.250 |" in md


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.update(lisence="x"), "lisence"),
    (lambda c: c["files"]["onnx"].update(sha256="abc"), "files.onnx.sha256"),
    (lambda c: c["files"].pop("checkpoint"), "files.checkpoint"),
    (lambda c: c["evaluation"]["reproduce"].append({"dataset": "d", "value": 1.5}), "evaluation.reproduce.0.value"),
    (lambda c: c.update(name="other"), "name"),
])
def test_bad_card_is_one_line_naming_the_field(default_zoo, edit, field):
    path = default_zoo / zoo.DEFAULT_MODEL / "card.json"
    card = json.loads(path.read_text())
    edit(card)
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError) as exc:
        read_card(path)
    msg = str(exc.value)
    assert str(path) in msg and field in msg and "\n" not in msg


def test_resolve_model(default_zoo, tmp_path, tiny_checkpoint):
    folder = default_zoo / zoo.DEFAULT_MODEL
    assert zoo.resolve_model(None, "onnx") == folder / "model.onnx"
    assert zoo.resolve_model(None, "checkpoint") == folder / "model.pt"
    assert zoo.resolve_model(zoo.DEFAULT_MODEL, "onnx") == folder / "model.onnx"
    assert zoo.resolve_model(str(tiny_checkpoint), "onnx") == tiny_checkpoint  # a file is itself
    assert zoo.resolve_model(tmp_path / "missing.pt") == tmp_path / "missing.pt"  # the loader reports it
    assert zoo.kind_for_backend("auto") == "onnx" and zoo.kind_for_backend("torch") == "checkpoint"
    with pytest.raises(ModelError, match=rf"'nonesuch': not a registered model \(registered: {zoo.DEFAULT_MODEL}\)"):
        zoo.resolve_model("nonesuch")
    # not the default model, and not the current folder
    for empty in ("", " "):
        with pytest.raises(ModelError, match="model: an empty name"):
            zoo.resolve_model(empty)
        with pytest.raises(ModelError, match="model: an empty name"):
            zoo.get_model(empty)
    # another scheme is not a path ('ftp:/host/...') that then is not found
    with pytest.raises(ModelError, match="'ftp://host/m.onnx#sha256=ab': only http:// and https:// URLs"):
        zoo.resolve_model("ftp://host/m.onnx#sha256=ab")


def test_checkpoint_only_model_serves_onnx_requests_with_its_checkpoint(tmp_path, monkeypatch, tiny_checkpoint):
    write_test_zoo(tmp_path, "ckpt-only", tiny_checkpoint)
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path))
    assert zoo.resolve_model("ckpt-only", "onnx").name == "model.pt"


def test_damaged_file_is_refused(default_zoo):
    onnx = default_zoo / zoo.DEFAULT_MODEL / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="does not match the sha256"):
        zoo.resolve_model(None, "onnx")
    onnx.unlink()
    with pytest.raises(ModelError, match="is missing"):
        zoo.resolve_model(None, "onnx")


def test_no_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODWATCH_ZOO", str(tmp_path / "empty"))
    assert zoo.list_models() == []
    with pytest.raises(NoDefaultModelError, match="^no default model installed"):
        zoo.resolve_model(None)


def test_onnx_agrees_with_checkpoint_on_the_generated_model(default_zoo):
    a = onnx_checkpoint_agreement(zoo.get_model())
    assert a["pixels"] > 8 * 64 * 64 * 0.8
    assert agreement_problems(a) == [] and a["max_abs_prob_diff"] < 1e-4


def test_agreement_check_catches_a_different_onnx(default_zoo, tmp_path, tiny_checkpoint):
    """An ONNX file of another model (here: the water logit pushed up by 4) must fail the check."""
    from floodwatch.export.onnx import export_onnx

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    state = ckpt["model_state"]
    bias = [k for k in state if k.endswith("bias") and state[k].numel() == 2][-1]  # the 2-class head
    state[bias] = state[bias] + torch.tensor([0.0, 4.0])
    torch.save(ckpt, tmp_path / "shifted.pt")
    export_onnx(tmp_path / "shifted.pt", tmp_path / "shifted.onnx", exporter="torchscript")
    folder = default_zoo / "shifted"
    write_test_zoo(default_zoo, "shifted", tiny_checkpoint, tmp_path / "shifted.onnx")
    problems = agreement_problems(onnx_checkpoint_agreement(zoo.get_model("shifted")))
    assert problems and "mean |Δp|" in problems[0]
    shutil.rmtree(folder)


def test_reproduce_rows_are_measured_as_evaluate_does(default_zoo, tmp_path, run_cli):
    """The card-figure check's plumbing (data path, format, split, file, metric) against `floodwatch
    evaluate` on a generated dataset; the real check below runs it on the shipped model and shared/data."""
    from floodwatch.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data" / "synth", chips=6, size=32, seed=3)
    path = default_zoo / zoo.DEFAULT_MODEL / "card.json"
    card = json.loads(path.read_text())
    card["evaluation"]["reproduce"] = [{"dataset": "synth", "format": "sen1floods11", "file": "onnx",
                                        "metric": "f1", "value": 0.5, "otsu": 0.5}]
    path.write_text(json.dumps(card))
    [(row, measured, otsu)] = reproduce_card_rows(zoo.get_model(), tmp_path / "data")
    r = run_cli("evaluate", "--data", tmp_path / "data" / "synth", "--format", "sen1floods11", "-q",
                "-o", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    assert measured == pytest.approx(report["f1"], abs=1e-6)
    assert otsu == pytest.approx(report["otsu"]["water_iou"], abs=1e-6)


SHIPPED = zoo.ZOO_DIR / zoo.DEFAULT_MODEL / zoo.CARD


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the default model's files are not installed yet")
def test_shipped_default_model_onnx_agrees_with_its_checkpoint(monkeypatch):
    monkeypatch.delenv("FLOODWATCH_ZOO", raising=False)
    assert agreement_problems(onnx_checkpoint_agreement(zoo.get_model())) == []


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the default model's files are not installed yet")
def test_shipped_default_model_reproduces_its_card(shared_data, monkeypatch):
    """Each figure of the card's `evaluation.reproduce` table, Otsu's beside the model's, within 0.5 points on
    ../shared/data, as `floodwatch evaluate` measures them."""
    monkeypatch.delenv("FLOODWATCH_ZOO", raising=False)
    model = zoo.get_model()
    assert model.card.evaluation.reproduce, "the card lists no reproducible figure"
    for row in model.card.evaluation.reproduce:
        if not (shared_data / row.dataset).exists():
            pytest.skip(f"{shared_data / row.dataset} not found")
    off = [f"{row.dataset} ({row.split or 'all'}, {row.file}) {what}: card {card:.4f}, measured {got:.4f}"
           for row, measured, otsu in reproduce_card_rows(model, shared_data)
           for what, card, got in ((row.metric, row.value, measured), ("Otsu water_iou", row.otsu, otsu))
           if card is not None and abs(got - card) > 0.005]
    assert off == []
