import math

import numpy as np
import pytest
from PIL import Image

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.sample import IGNORE_INDEX, Sample
from floodwatch.data.synthetic import synth_chips
from floodwatch.errors import DataError, FloodwatchError
from floodwatch.data.preprocess import network_input
from floodwatch.evaluation.evaluate import evaluate, to_json_safe
from floodwatch.evaluation.metrics import confusion_counts, scores
from floodwatch.evaluation.otsu import OtsuBaseline


@pytest.fixture(scope="module")
def chips():
    data = synth_chips(10, size=32, seed=3)
    nodata = Sample(image=np.full((2, 32, 32), np.nan, np.float32), mask=np.full((32, 32), IGNORE_INDEX),
                    valid=np.zeros((32, 32), bool), id="all_nodata", region="SynthA")
    unlabelled = Sample(image=data[0].image.copy(), mask=None, valid=data[0].valid, id="unlabelled", region="SynthA")
    return data + [nodata, unlabelled]


def test_oracle_scores_one_and_counts_skipped_chips(chips, oracle):
    r = evaluate(oracle(chips), chips, batch_size=4, progress=False)
    assert r["water_iou"] == 1.0 and r["f1"] == 1.0 and r["accuracy"] == 1.0
    assert r["confusion"][0][1] == 0 and r["confusion"][1][0] == 0
    assert r["chips"] == 10 and r["empty_chips"] == 1 and r["unlabelled_chips"] == 1
    # chips 4 and 9 have no water: their water IoU is undefined and left out of the chip mean
    assert r["chips_with_defined_water_iou"] == 8
    assert r["water_iou_chip_mean"] == 1.0
    assert set(r["regions"]) == {"SynthA", "SynthB", "SynthC", "SynthD"}
    assert all(reg["water_iou"] == 1.0 for reg in r["regions"].values())
    # the pixels scored are exactly the labelled, valid ones
    expected = sum(int(((s.mask != IGNORE_INDEX) & s.valid).sum()) for s in chips if s.mask is not None)
    assert r["pixels"] == expected


def test_inverted_oracle_scores_zero(chips, oracle):
    r = evaluate(oracle(chips, invert=True), chips, progress=False, otsu=False)
    assert r["water_iou"] == 0.0 and r["accuracy"] == 0.0
    assert "otsu" not in r
    # every error is false water or missed water, and the per-chip counts add up to the confusion matrix
    assert sum(c["false_water"] for c in r["per_chip"]) == r["confusion"][0][1] > 0
    assert sum(c["missed_water"] for c in r["per_chip"]) == r["confusion"][1][0] > 0


def test_regions_and_otsu_add_up_to_independent_counts(chips, oracle):
    r = evaluate(oracle(chips), chips, batch_size=3, progress=False)
    total = np.sum([reg["confusion"] for reg in r["regions"].values()], axis=0)
    np.testing.assert_array_equal(total, r["confusion"])
    base = OtsuBaseline(band="VH", scope="chip")
    scored = [s for s in chips if s.mask is not None and not s.is_empty]
    otsu_counts = sum(confusion_counts(base.predict(s), s.mask, valid=s.valid) for s in scored)
    np.testing.assert_array_equal(r["otsu"]["confusion"], otsu_counts)
    assert r["otsu"]["pixels"] == r["pixels"]  # same pixels as the model
    # speckled but well separated synthetic classes: Otsu does well, not perfectly
    assert 0.6 < r["otsu"]["water_iou"] < 1.0
    region_b = [s for s in scored if s.region == "SynthB"]
    b_counts = sum(confusion_counts(base.predict(s), s.mask, valid=s.valid) for s in region_b)
    assert r["regions"]["SynthB"]["otsu"]["water_iou"] == pytest.approx(scores(b_counts)["water_iou"])
    assert r["regions"]["SynthB"]["chips"] == len(region_b)


def test_regions_count_their_own_skipped_chips(chips, oracle):
    """An all-ignore chip is counted in its region; a region whose only chip is all no data is still listed,
    with nothing scored (as Sen1Floods11's Ghana_83483 and Paraguay)."""
    s = chips[0]
    ignored = Sample(image=s.image.copy(), mask=np.full(s.shape, IGNORE_INDEX), valid=s.valid.copy(),
                     id="all_ignore", region="SynthB")
    blank = Sample(image=np.full_like(s.image, np.nan), mask=np.zeros(s.shape, np.int64),
                   valid=np.zeros(s.shape, bool), id="blank", region="SynthE")
    r = evaluate(oracle(chips), chips + [ignored, blank], progress=False)
    regions = r["regions"]
    assert set(regions) == {"SynthA", "SynthB", "SynthC", "SynthD", "SynthE"}
    for key in ("chips", "empty_chips", "unlabelled_chips"):  # the regions add up to the whole
        assert sum(reg[key] for reg in regions.values()) == r[key], key
    assert (regions["SynthA"]["empty_chips"], regions["SynthA"]["unlabelled_chips"]) == (1, 1)
    assert regions["SynthB"]["empty_chips"] == 1 and regions["SynthB"]["water_iou"] == 1.0
    assert r["otsu"]["empty_chips"] == 3 and regions["SynthB"]["otsu"]["empty_chips"] == 1  # same chips skipped
    e = regions["SynthE"]
    assert (e["chips"], e["empty_chips"], e["pixels"]) == (0, 1, 0)
    assert math.isnan(e["water_iou"]) and math.isnan(e["ece"]) and math.isnan(e["otsu"]["water_iou"])
    assert to_json_safe(e)["water_iou"] is None and to_json_safe(e)["ece"] is None


def test_threshold_applies_to_probabilities(chips, oracle):
    class Half(oracle):
        def predict(self, batch):
            return super().predict(batch) * 0.6  # water at 0.6, land at 0

    assert evaluate(Half(chips), chips, threshold=0.5, progress=False, otsu=False)["water_iou"] == 1.0
    assert evaluate(Half(chips), chips, threshold=0.7, progress=False, otsu=False)["recall"] == 0.0


def test_save_predictions_writes_one_panel_per_chip(chips, oracle, tmp_path):
    out = tmp_path / "pred"
    evaluate(oracle(chips), chips[:3], save_predictions=out, progress=False)
    pngs = sorted(out.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(s.id for s in chips[:3])
    with Image.open(pngs[0]) as im:
        assert im.size[0] == 3 * 32 + 2 * 4 and im.size[1] > 32 and im.mode == "RGB"
        legend = np.asarray(im)[32:]
    # below the panels, a legend: a swatch of each comparison colour that fits the width
    from floodwatch.inference.overlay import COLOURS

    hit = tuple(COLOURS["hit (water, found)"])
    assert (legend == hit).all(axis=-1).sum() >= 50
    assert not list(tmp_path.glob(".*part"))  # nothing half-written left beside it


def test_band_mismatch_is_one_line_data_error(chips, oracle):
    three = Preprocessing(bands=["VV", "VH", "HH"], clip=[(-50, 5)] * 3, offset=[0, 0, 0], scale=[1, 1, 1])
    pred = oracle([], preprocessing=three)
    with pytest.raises(DataError, match=r"SynthA_0: data has 2 band\(s\) \(VV, VH\) but the model expects 3"):
        evaluate(pred, chips, progress=False)


def test_single_band_model_selects_its_band(chips):
    vh = Preprocessing(bands=["VH"], clip=[(-50, 5)], offset=[0.0], scale=[1.0])
    x = network_input(chips[0], vh)
    np.testing.assert_allclose(x[0], np.clip(np.nan_to_num(chips[0].image[1]), -50, 5))


def test_bitemporal_stacks_before_then_after(chips):
    s = chips[1]
    bi = Sample(image=s.image, mask=s.mask, valid=s.valid, id="bi", before=s.image - 5.0)
    pp = Preprocessing(offset=[-10.0, -20.0], scale=[0.5, 0.25])
    x = network_input(bi, pp, "bitemporal")
    assert x.shape == (4, 32, 32)
    np.testing.assert_allclose(x[:2], pp.apply(s.image - 5.0, s.valid))
    np.testing.assert_allclose(x[2:], pp.apply(s.image, s.valid))
    with pytest.raises(DataError, match="no 'before' image"):
        network_input(s, pp, "bitemporal")


def test_real_checkpoint_path_runs(chips, tiny_checkpoint):
    r = evaluate(str(tiny_checkpoint), chips[:4], progress=False)
    assert r["chips"] == 4 and 0.0 <= r["accuracy"] <= 1.0
    assert not math.isnan(r["otsu"]["water_iou"])


def test_nothing_scorable_raises(chips, oracle):
    with pytest.raises(DataError, match="no labelled chip"):
        evaluate(oracle(chips), chips[-2:], progress=False)


def test_save_predictions_refuses_a_folder_holding_the_users_files(chips, oracle, tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    predictor = oracle(chips)
    with pytest.raises(FloodwatchError) as err:
        evaluate(predictor, chips[:3], save_predictions=keep, progress=False)
    assert str(err.value) == f"{keep}: holds notes.txt, which evaluate did not write; give a new or empty folder"
    assert predictor.calls == 0  # refused before any chip was scored
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_save_predictions_replaces_an_earlier_run_and_fills_an_empty_folder(chips, oracle, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()  # empty
    evaluate(oracle(chips), chips[:3], save_predictions=out, progress=False)
    assert sorted(p.stem for p in out.iterdir()) == sorted(s.id for s in chips[:3])
    evaluate(oracle(chips), chips[3:5], save_predictions=out, progress=False)  # rerun: its PNGs replace the last
    assert sorted(p.stem for p in out.iterdir()) == sorted(s.id for s in chips[3:5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]


def test_bands_stored_in_another_order_are_picked_by_name(chips):
    # a GeoTIFF written VH, VV (band descriptions say so) must reach the model as VV, VH, as map reads it
    s = chips[0]
    swapped = Sample(image=s.image[::-1].copy(), mask=s.mask, valid=s.valid, id="swapped", bands=("VH", "VV"))
    pp = Preprocessing(offset=[-10.0, -20.0], scale=[0.5, 0.25])
    np.testing.assert_array_equal(network_input(swapped, pp), network_input(s, pp))
    unnamed = Sample(image=s.image, mask=s.mask, valid=s.valid, id="unnamed", bands=("B1", "B2"))
    np.testing.assert_array_equal(network_input(unnamed, pp), network_input(s, pp))  # no names: kept as stored
    half = Sample(image=s.image[::-1].copy(), mask=s.mask, valid=s.valid, id="half", bands=("VH", "B2"))
    np.testing.assert_array_equal(network_input(half, pp), network_input(s, pp))  # the named band fixes the order
    with pytest.raises(DataError, match=r"other: data has 2 band\(s\) \(HH, HV\).*no band is named VV/VH"):
        network_input(Sample(image=s.image, mask=s.mask, valid=s.valid, id="other", bands=("HH", "HV")), pp)
    # a VH-only model on a one-channel sample whose names do not fit its image: taken as stored
    one = Sample(image=s.image[1:], mask=s.mask, valid=s.valid, id="one")  # bands default to VV, VH
    vh_model = Preprocessing(bands=["VH"], clip=[(-50, 5)], offset=[0.0], scale=[1.0])
    np.testing.assert_array_equal(network_input(one, vh_model), network_input(s, vh_model))


def test_an_image_with_its_bands_last_is_named_so_not_listed_band_by_band():
    """A (H, W, 2) array in a Sample had its 64 rows listed as 64 "unnamed" bands."""
    from floodwatch.data.sample import band_order

    with pytest.raises(DataError) as err:
        band_order([None] * 64, ["VV", "VH"], "chip")
    msg = str(err.value)
    assert msg.startswith("chip: data has 64 band(s) (unnamed, ") and "56 more; is the band axis last?" in msg
    assert msg.count("unnamed") == 8 and "no band is named VV/VH" in msg


def test_a_chip_valid_only_where_ignored_is_empty_in_its_region_and_the_whole(chips, oracle):
    """Valid pixels only where the label says ignore, labels only where there is no data: not Sample.is_empty,
    yet nothing to score. Counted empty once, in its region and at the top, so the regions add up."""
    s = chips[0]
    half = s.valid.copy()
    half[: s.shape[0] // 2] = False
    crossed = Sample(image=s.image.copy(), mask=np.where(half, IGNORE_INDEX, 0), valid=half, id="crossed",
                     region="SynthC")
    assert not crossed.is_empty
    data = chips + [crossed]
    r = evaluate(oracle(data), data, progress=False)
    assert r["empty_chips"] == 2 and r["regions"]["SynthC"]["empty_chips"] == 1
    assert sum(reg["empty_chips"] for reg in r["regions"].values()) == r["empty_chips"]


def test_the_result_records_the_model_and_its_options_as_the_cli_json_does(chips, tiny_checkpoint):
    """From Python the result lacked `model`, `tta`, `weights`, ...: only the CLI added them."""
    from floodwatch.inference import load_predictor

    r = evaluate(load_predictor(tiny_checkpoint, tta=["hflip"], temperature=1.5), chips[:4], progress=False,
                 data_name="synthetic chips")
    assert list(r)[:8] == ["model", "data", "tta", "downsample", "temperature", "refine", "weights", "threshold"]
    assert r["model"] == str(tiny_checkpoint.absolute()) and r["data"] == "synthetic chips"
    assert (r["tta"], r["downsample"], r["temperature"], r["refine"], r["weights"]) == (["hflip"], 1, 1.5, None, None)
    assert "data" not in evaluate(str(tiny_checkpoint), chips[:2], progress=False, otsu=False)
