"""Guided-filter refinement: the filter against a direct implementation of He et al.'s formula, its limits,
edge preservation, no-data handling, the RefinePredictor wrapper and the --refine option of the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import FloodwatchError
from floodwatch.inference.refine import (RefinePredictor, box_sum, guided_filter, parse_refine,
                                         remove_small_regions)


def reference_guided_filter(I, p, r, eps):
    """He et al. 2010, eqs. (5)-(8), by explicit windows: each window is its in-image part."""
    H, W = I.shape

    def window(i, j):
        return slice(max(i - r, 0), min(i + r + 1, H)), slice(max(j - r, 0), min(j + r + 1, W))

    a, b = np.zeros((H, W)), np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            wi, wp = I[window(i, j)], p[window(i, j)]
            mu, var = wi.mean(), ((wi - wi.mean()) ** 2).mean()
            a[i, j] = ((wi * wp).mean() - mu * wp.mean()) / (var + eps)
            b[i, j] = wp.mean() - a[i, j] * mu
    q = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            q[i, j] = a[window(i, j)].mean() * I[i, j] + b[window(i, j)].mean()
    return q


def box_mean(x, r):
    return box_sum(x, r) / box_sum(np.ones_like(x), r)


def test_box_sum_counts_the_in_image_part_of_each_window():
    x = np.random.default_rng(0).random((7, 9))
    s = box_sum(x, 2)
    assert s[3, 4] == pytest.approx(x[1:6, 2:7].sum())  # interior
    assert s[0, 0] == pytest.approx(x[:3, :3].sum())  # corner
    assert s[6, 8] == pytest.approx(x[4:, 6:].sum())
    assert box_sum(np.ones((7, 9)), 2)[0, 4] == 15  # He's N: 3 rows x 5 columns


@pytest.mark.parametrize("r,eps", [(1, 0.01), (2, 0.1), (3, 1e-3)])
def test_guided_filter_matches_the_direct_formula(r, eps):
    rng = np.random.default_rng(r)
    I, p = rng.random((13, 17)), rng.random((13, 17))
    expected = reference_guided_filter(I, p, r, eps)
    got = guided_filter(I, p, r, eps)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)  # everywhere: interior and border
    np.testing.assert_allclose(got[r:-r, r:-r], expected[r:-r, r:-r], atol=1e-5, rtol=0)
    # a batch is filtered image by image
    batch = guided_filter(np.stack([I, p]), np.stack([p, I]), r, eps)
    np.testing.assert_allclose(batch[0], got, atol=1e-12)
    np.testing.assert_allclose(batch[1], reference_guided_filter(p, I, r, eps), atol=1e-5)


def test_limits_huge_eps_is_a_box_mean_and_self_guidance_is_identity():
    rng = np.random.default_rng(1)
    I, p = rng.random((20, 24)), rng.random((20, 24))
    # eps -> inf: a_k -> 0, b_k -> box mean of p, so q is the box mean (over windows) of those box means
    np.testing.assert_allclose(guided_filter(I, p, 3, 1e12), box_mean(box_mean(p, 3), 3), atol=1e-9)
    # at an interior pixel where p is linear in position that is p itself (the box of a box keeps a ramp)
    ramp = np.add.outer(np.arange(20.0), np.zeros(24))
    np.testing.assert_allclose(guided_filter(I, ramp, 2, 1e12)[4:-4, 4:-4], ramp[4:-4, 4:-4], atol=1e-9)
    # guidance == p and eps -> 0: every window fits p exactly (a = 1, b = 0)
    np.testing.assert_allclose(guided_filter(p, p, 3, 1e-12), p, atol=1e-6)


def step_edge(n=64, noise=0.35, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, n), bool)
    truth[:, : n // 2 + 3] = True  # water on the left
    clean = np.where(truth, 0.9, 0.1)
    noisy = np.clip(clean + rng.normal(0, noise, truth.shape), 0, 1)
    guide = np.where(truth, -1.5, 0.8)  # pre-processed SAR: dark water, brighter land
    return truth, noisy, guide


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_edge_preserving_on_a_noisy_step():
    truth, noisy, guide = step_edge()
    before = iou(noisy >= 0.5, truth)
    refined = guided_filter(guide, noisy, 4, 0.01)
    after = iou(refined >= 0.5, truth)
    assert before < 0.85 and after > 0.97 and after > before
    # the edge stays where it is: no pixel within two columns of it changes side
    edge = truth.shape[1] // 2 + 3
    assert ((refined[:, edge - 2:edge + 2] >= 0.5) == truth[:, edge - 2:edge + 2]).all()


def test_constant_guidance_behaves_like_smoothing():
    truth, noisy, _ = step_edge()
    flat = np.zeros_like(noisy)
    refined = guided_filter(flat, noisy, 4, 0.01)
    np.testing.assert_allclose(refined, box_mean(box_mean(noisy, 4), 4), atol=1e-9)
    assert refined.std() < noisy.std()
    # smoothing alone blurs the edge: the step-guided filter is closer to the truth there
    edge = truth.shape[1] // 2 + 3
    band = slice(edge - 3, edge + 3)
    sharp = guided_filter(step_edge()[2], noisy, 4, 0.01)
    err = lambda q: np.abs(q[:, band] - np.where(truth, 0.9, 0.1)[:, band]).mean()  # noqa: E731
    assert err(sharp) < err(refined)


def test_no_data_does_not_bleed():
    rng = np.random.default_rng(3)
    I, p = rng.random((16, 16)), rng.random((16, 16))
    valid = np.ones((16, 16), bool)
    valid[:, 10:] = False
    q1 = guided_filter(I, p, 3, 0.05, valid)
    I2, p2 = I.copy(), p.copy()
    I2[~valid], p2[~valid] = 123.0, 1.0  # whatever the fill and the model's output on it
    q2 = guided_filter(I2, p2, 3, 0.05, valid)
    np.testing.assert_allclose(q1[valid], q2[valid], atol=1e-12)
    np.testing.assert_array_equal(q2[~valid], p2[~valid])  # no-data pixels keep the unrefined value
    # the valid part is filtered as if it were the whole image
    np.testing.assert_allclose(q1[:, :10], guided_filter(I[:, :10], p[:, :10], 3, 0.05), atol=1e-12)


def test_remove_small_regions_flips_specks_and_holes():
    p = np.full((20, 20), 0.1)
    p[2, 2] = 0.8  # a one-pixel water speck
    p[10:18, 10:18] = 0.9  # a water body ...
    p[13, 13] = 0.3  # ... with a one-pixel hole
    out = remove_small_regions(p, 4)
    assert out[2, 2] == pytest.approx(0.1) and out[13, 13] == pytest.approx(0.9)
    assert ((out >= 0.5) == np.pad(np.ones((8, 8), bool), ((10, 2), (10, 2)))).all()
    np.testing.assert_array_equal(remove_small_regions(p, 0), p)
    # a speck with no valid neighbour has nothing to take after: it stays
    valid = np.zeros((20, 20), bool)
    valid[2, 2] = True
    assert remove_small_regions(p, 4, valid=valid)[2, 2] == pytest.approx(0.8)


class NoisyStub:
    """A fake model: the truth of a dark-water step edge, plus noise, in [0, 1]."""

    def __init__(self):
        self.preprocessing = Preprocessing()
        self.meta = {"model_config": {"temporal": "single"}}

    def predict(self, batch):
        water = batch[:, 0] < -0.5
        rng = np.random.default_rng(0)
        return np.clip(np.where(water, 0.85, 0.15) + rng.normal(0, 0.3, water.shape), 0, 1).astype(np.float32)


def step_batch(n=2, size=48):
    x = np.full((n, 2, size, size), 0.8, np.float32)
    x[:, :, :, : size // 2] = -1.5
    return x


def test_refine_predictor_keeps_the_protocol_and_improves_the_mask():
    base = NoisyStub()
    refined = RefinePredictor(base, radius=4, eps=0.05)
    x = step_batch()
    out = refined.predict(x)
    assert out.shape == (2, 48, 48) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert refined.preprocessing is base.preprocessing and refined.meta == base.meta
    truth = np.broadcast_to(x[:, 0] < -0.5, out.shape)
    assert iou(out >= 0.5, truth) > iou(base.predict(x) >= 0.5, truth)
    assert iou(out >= 0.5, truth) > 0.98
    # no-data pixels (fill in every channel) neither move nor pull their neighbours
    x2 = x.copy()
    x2[:, :, :, 40:] = Preprocessing().fill
    out2 = refined.predict(x2)
    np.testing.assert_array_equal(out2[:, :, 40:], base.predict(x2)[:, :, 40:])
    # clean-up only, and guidance by band name
    assert RefinePredictor(base, method="clean", min_region=8).predict(x).shape == (2, 48, 48)
    assert RefinePredictor(base, guide="vh").guide == 1


def test_parse_refine_and_its_errors():
    assert parse_refine(None) is None and parse_refine("none") is None and parse_refine(" ") is None
    assert parse_refine("guided") == {"method": "guided", "threshold": 0.5}
    assert parse_refine("guided:r=8,eps=0.01,guide=VV,min=16", threshold=0.4) == {
        "method": "guided", "threshold": 0.4, "radius": 8, "eps": 0.01, "guide": "VV", "min_region": 16}
    for bad, words in [("foo", "unknown method"), ("guided:r=two", "not a number"), ("guided:x=1", "key=value"),
                       ("guided:r", "key=value")]:
        with pytest.raises(FloodwatchError, match="^refine: ") as exc:
            parse_refine(bad)
        assert words in str(exc.value)
    for kwargs in [dict(radius=0), dict(eps=0.0), dict(eps=-1.0), dict(guide="HH"), dict(min_region=-2),
                   dict(method="clean")]:
        with pytest.raises(FloodwatchError, match="^refine: "):
            RefinePredictor(NoisyStub(), **kwargs)


def test_load_predictor_puts_refinement_last(tiny_checkpoint):
    from floodwatch.inference.temperature import TemperaturePredictor
    from floodwatch.inference import load_predictor

    p = load_predictor(tiny_checkpoint, refine="guided:r=2", temperature=1.5, tta="hflip")
    assert isinstance(p, RefinePredictor) and isinstance(p.base, TemperaturePredictor)
    assert p.radius == 2 and p.predict(step_batch(1, 32)).shape == (1, 32, 32)
    assert type(load_predictor(tiny_checkpoint, refine="none")).__name__ == "TorchPredictor"


# -- the CLI ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from floodwatch.data import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "synth", chips=3, size=32, seed=1)


def test_cli_evaluate_and_infer_with_refine(run_cli, tiny_checkpoint, synth_dir, tmp_path):
    out = run_cli("evaluate", "-m", tiny_checkpoint, "--data", synth_dir, "-q", "--refine", "guided",
                  "-o", tmp_path / "m.json")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["refine"] == "guided:r=1,eps=0.1" and 0.0 <= metrics["water_iou"] <= 1.0
    # a temperature fitted beside --refine is fitted on the unrefined probabilities it will act on
    out = run_cli("evaluate", "-m", tiny_checkpoint, "--data", synth_dir, "-q", "--no-otsu", "--refine",
                  "guided:r=2", "--calibrate", synth_dir)
    assert out.returncode == 0, out.stderr
    assert "+refine guided:r=2,eps=0.1" in out.stdout and "temperature T =" in out.stdout
    out = run_cli("infer", "-m", tiny_checkpoint, synth_dir / "S1Hand", "-o", tmp_path / "o", "-q",
                  "--refine", "guided:r=2,eps=0.05,min=4")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "o").glob("*_prob.png"))) == 3
    out = run_cli("infer", "-m", tiny_checkpoint, synth_dir / "S1Hand", "-o", tmp_path / "d", "-q", "--downsample", "2")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "d").glob("*_prob.png"))) == 3


@pytest.mark.parametrize("command", ["evaluate", "infer", "map"])
def test_cli_bad_refine_is_one_line(run_cli, tiny_checkpoint, synth_dir, tmp_path, command):
    args = {"evaluate": ["--data", synth_dir], "infer": [synth_dir / "S1Hand", "-o", tmp_path / "o"],
            "map": [synth_dir / "S1Hand", "-o", tmp_path / "o"]}[command]
    out = run_cli(command, "-m", tiny_checkpoint, *args, "-q", "--refine", "foo")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--refine" in out.stderr and "foo" in out.stderr


def test_cli_map_with_refine_on_tiles(run_cli, tiny_checkpoint, tmp_path):
    from floodwatch.data.synthetic import synth_scene, write_scene

    write_scene(synth_scene(70, 60, 0, crs="EPSG:32633", origin=(400000.0, 5300000.0), pixel_size=10.0,
                            nodata_border=5, water_fraction=0.3, looks=1e4), tmp_path / "s0.tif")
    out = run_cli("map", tmp_path / "s0.tif", "-m", tiny_checkpoint, "-o", tmp_path / "out", "--tile", "32",
                  "--overlap", "8", "--batch", "2", "-q", "--refine", "guided:r=2")
    assert out.returncode == 0, out.stderr
    stats = json.loads((tmp_path / "out" / "s0" / "stats.json").read_text())
    assert stats["tiles_predicted"] > 1 and stats["backend"] == "torch"
