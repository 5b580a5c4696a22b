"""OMBRIA's masks mark the flood, not all water (a river dark in both dates is left 0): evaluate said "water IoU"
and drew "missed water" on them, as if a water model's permanent water were wrong water."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from floodwatch.data import open_dataset, write_synthetic_dataset
from floodwatch.data.preprocess import Preprocessing
from floodwatch.evaluation.evaluate import evaluate, legend_colours
from tests.data import fakes

VV = Preprocessing(bands=["VV"], offset=[-12.0], scale=[0.2])


def test_ombria_scores_are_named_flood_and_say_what_that_means(tmp_path, oracle):
    samples = list(open_dataset(fakes.ombria(tmp_path / "om")))
    result = evaluate(oracle(samples, preprocessing=VV), samples, progress=False,
                      save_predictions=tmp_path / "pred")
    assert result["label"] == "flood" and result["water_iou"] == 1.0
    assert "single-date model" in result["label_note"] and "false alarm" in result["label_note"]
    assert result["otsu"]["method"].startswith("Otsu on VV of the after pictures")
    assert list(legend_colours("flood"))[:3] == ["hit (flood, found)", "false alarm", "missed flood"]
    assert Image.open(tmp_path / "pred" / "0001.png").size[0] > 0


def test_a_bitemporal_model_on_ombria_is_told_apart(tmp_path):
    samples = list(open_dataset(fakes.ombria(tmp_path / "om")))
    # a bi-temporal oracle: its input is before+after, so key the truth by the stacked input
    from floodwatch.data.preprocess import network_input
    from floodwatch.data.sample import WATER

    class Bitemporal:
        preprocessing, temporal = VV, "bitemporal"

        def predict(self, batch):
            truth = {network_input(s, VV, "bitemporal").tobytes(): (s.mask == WATER).astype(np.float32)
                     for s in samples}
            return np.stack([truth[x.tobytes()] for x in np.asarray(batch, np.float32)])

    result = evaluate(Bitemporal(), samples, progress=False)
    assert result["label"] == "flood" and result["water_iou"] == 1.0
    assert "bi-temporal model's change" in result["label_note"]


def test_water_labelled_data_stays_water(tmp_path, oracle):
    samples = list(open_dataset(write_synthetic_dataset(tmp_path / "s1", chips=2, size=32, seed=0)))
    result = evaluate(oracle(samples), samples, progress=False)
    assert result["label"] == "water" and "label_note" not in result
    assert "after" not in result["otsu"]["method"]


def test_cli_names_flood_in_table_and_json(tmp_path, run_cli):
    import torch

    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = dict(num_layers=10, in_channels=1, num_classes=2, all_projections=False, use_batch_norm=True)
    model = save_checkpoint(tmp_path / "vv.pt", build_model(**cfg), model_config=cfg, preprocessing=VV)
    data = fakes.ombria(tmp_path / "om")
    out = tmp_path / "m.json"
    r = run_cli("evaluate", "-m", model, "--data", data, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "flood IoU over" in r.stdout and "label: the masks mark the flood" in r.stdout
    written = json.loads(out.read_text())
    assert written["label"] == "flood" and written["label_note"].startswith("the masks mark the flood")
