"""Checks of a registered model that run on any zoo entry: the tiny generated one of the tests now, the
shipped default model once its files are in src/floodwatch/models/zoo/ (docs/models.md).

- onnx_checkpoint_agreement: the entry's ONNX and checkpoint, run on the same synthetic chips.
- reproduce_card_rows: each `evaluation.reproduce` row of the card, measured again on shared/data.
- write_test_zoo: a zoo folder around given files, with a card that claims no accuracy;
- fixtures: tiny_onnx (the tiny checkpoint as ONNX), default_zoo (a zoo whose default model is those two).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from floodwatch.models.download import sha256_file
from floodwatch.models.zoo import ZooModel

#: an INT8 model may move probabilities a little and flip pixels near the threshold, not decided ones
MIN_DECIDED_AGREEMENT = 0.99
MAX_MEAN_PROB_DIFF = 0.02
DECIDED_MARGIN = 0.1  # pixels whose checkpoint probability is at least this far from the threshold


def onnx_checkpoint_agreement(model: ZooModel, *, chips: int = 8, size: int = 64, seed: int = 0,
                              threshold: float = 0.5) -> dict:
    """Probability differences and mask agreement of the entry's ONNX file against its checkpoint on
    synthetic dB chips (valid pixels only); 'decided_agreement' is None when no pixel is decided."""
    from floodwatch.data.synthetic import synth_chips
    from floodwatch.inference import load_predictor

    reference = load_predictor(model.file("checkpoint"), "torch")
    candidate = load_predictor(model.file("onnx"), "onnx")
    samples = synth_chips(chips, size=size, seed=seed)
    batch = np.stack([reference.preprocessing.apply(s.image, s.valid) for s in samples]).astype(np.float32)
    valid = np.stack([s.valid for s in samples])
    p_ref, p_cand = reference.predict(batch)[valid], candidate.predict(batch)[valid]
    diff = np.abs(p_ref - p_cand)
    same = (p_ref >= threshold) == (p_cand >= threshold)
    decided = np.abs(p_ref - threshold) >= DECIDED_MARGIN
    return {"pixels": int(valid.sum()), "max_abs_prob_diff": float(diff.max()),
            "mean_abs_prob_diff": float(diff.mean()), "mask_agreement": float(same.mean()),
            "decided_pixels": int(decided.sum()),
            "decided_agreement": float(same[decided].mean()) if decided.any() else None}


def agreement_problems(a: dict) -> list[str]:
    """What is wrong with an agreement report (empty: the ONNX file stands in for the checkpoint)."""
    problems = []
    if a["mean_abs_prob_diff"] > MAX_MEAN_PROB_DIFF:
        problems.append(f"mean |Δp| {a['mean_abs_prob_diff']:.4f} > {MAX_MEAN_PROB_DIFF}")
    if a["decided_agreement"] is not None and a["decided_agreement"] < MIN_DECIDED_AGREEMENT:
        problems.append(f"agreement on decided pixels {a['decided_agreement']:.4f} < {MIN_DECIDED_AGREEMENT}")
    return problems


def reproduce_card_rows(model: ZooModel, data_root: Path) -> list[tuple[object, float, float | None]]:
    """(row, measured, Otsu's water IoU) for each `evaluation.reproduce` row of the card: the row's file of the
    model scored on data_root/row.dataset (its format and split) at the card's threshold, with the Otsu
    baseline `evaluate` reports beside it where the row states one (None where it does not)."""
    from floodwatch.evaluation.evaluate import evaluate
    from floodwatch.training.data import evaluation_samples
    from floodwatch.inference import load_predictor

    ev = model.card.evaluation
    out = []
    for row in ev.reproduce:
        samples, _ = evaluation_samples(data_root / row.dataset, format=row.format, split=row.split)
        predictor = load_predictor(model.file(row.file), "onnx" if row.file == "onnx" else "torch")
        result = evaluate(predictor, samples, threshold=ev.threshold, otsu=row.otsu is not None, progress=False)
        otsu = float(result["otsu"]["water_iou"]) if row.otsu is not None else None
        out.append((row, float(result[row.metric]), otsu))
    return out


def card_for_test_files(name: str, files: dict[str, tuple[str, str, Path]],
                        reproduce: list[dict] | None = None) -> dict:
    """A card for generated test files: every field filled, no accuracy claimed (no figures)."""
    return {
        "format_version": 1, "name": name, "version": "0.0.test",
        "summary": "Generated for the tests: an untrained tiny U-Net, not a flood model.",
        "architecture": "U-Net, ResNet-10 encoder, 2 input channels (VV, VH)", "licence": "CC0-1.0",
        "files": {kind: {"path": path, "sha256": sha256_file(src), "precision": precision}
                  for kind, (path, precision, src) in files.items()},
        "training_data": [{"name": "none (random weights)", "licence": "n/a", "use": "nothing"}],
        "recipe": "examples/none.yaml",
        "evaluation": {"protocol": "not evaluated", "leave_one_event_out": [], "reproduce": reproduce or []},
        "input": {"bands": ["VV", "VH"], "units": "dB", "pixel_size_m": 10, "products": ["RTC", "GRD"],
                  "linear_power": "converted to dB by `map --units linear`; otherwise read as dB: wrong"},
        "intended_use": "tests only", "failure_modes": ["everything: it was never trained"],
    }


def write_test_zoo(root: Path, name: str, checkpoint: Path, onnx: Path | None = None,
                   reproduce: list[dict] | None = None) -> Path:
    """root/name/{model.pt, model.onnx, card.json}; returns the model's folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    files = {"checkpoint": ("model.pt", "fp32", shutil.copyfile(checkpoint, folder / "model.pt"))}
    if onnx is not None:
        files["onnx"] = ("model.onnx", "fp32", shutil.copyfile(onnx, folder / "model.onnx"))
    card = card_for_test_files(name, {k: (p, prec, Path(src)) for k, (p, prec, src) in files.items()}, reproduce)
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    return folder


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from floodwatch.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_checkpoint, out, exporter="torchscript")
    return out


@pytest.fixture
def default_zoo(tmp_path, monkeypatch, tiny_checkpoint, tiny_onnx) -> Path:
    """A zoo whose default model is the tiny generated one ($FLOODWATCH_ZOO points at it)."""
    from floodwatch.models.zoo import DEFAULT_MODEL

    root = tmp_path / "zoo"
    write_test_zoo(root, DEFAULT_MODEL, tiny_checkpoint, tiny_onnx)
    monkeypatch.setenv("FLOODWATCH_ZOO", str(root))
    return root
