"""predict_array: a chip held in a numpy array gets the probability `infer` gives its file, and each way a
notebook's array is commonly wrong (bands last, another band count, integer pixels, linear power, 8-bit levels,
VH before VV) is one error naming `image`, where the model used to run on it and map confident nonsense."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from floodwatch.data.harmonise import to_8bit
from floodwatch.data.synthetic import synth_chips
from floodwatch.errors import DataError, FloodwatchError, InvalidArgumentError
from floodwatch.inference import infer_chips, load_predictor, predict_array, predict_samples, read_chip

from tests.data import fakes


@pytest.fixture(scope="module")
def chip():
    """A synthetic dB chip (VV, VH) with water and four rows of no data."""
    s = synth_chips(1, size=64, seed=3)[0]
    image = s.image.copy()
    image[:, :4] = np.nan
    return image


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    return load_predictor(tiny_checkpoint)


def test_an_array_gets_the_probability_infer_gives_its_file(tmp_path, tiny_checkpoint, predictor):
    tif = min((fakes.sen1floods11(tmp_path / "s", chips=1) / "S1Hand").glob("*.tif"))
    sample = read_chip(tif)
    want = predict_samples(predictor, [sample])[0]
    got = predict_array(sample.image, predictor)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.dtype == np.float32 and np.isnan(got).sum() == np.isnan(want).sum()
    # a model reference is loaded as load_predictor loads it; the array may be float64, or even a list
    np.testing.assert_allclose(predict_array(sample.image.astype(np.float64).tolist(), tiny_checkpoint), want,
                               atol=1e-6)


def test_linear_power_and_named_band_order_give_the_same_probability(chip, predictor):
    want = predict_array(chip, predictor)
    assert np.isnan(want[:4]).all() and (np.isnan(want) == ~np.isfinite(chip).all(axis=0)).all()
    np.testing.assert_allclose(predict_array(10 ** (chip / 10), predictor, units="linear"), want, atol=1e-5)
    np.testing.assert_allclose(predict_array(chip[::-1], predictor, bands=["vh", "vv"]), want, atol=1e-6)
    np.testing.assert_allclose(predict_array(np.where(np.isnan(chip), -9999, chip), predictor, nodata=-9999), want,
                               atol=1e-6)


def test_8bit_levels_are_read_as_infer_reads_png_files(chip, predictor, tmp_path):
    levels = np.stack([to_8bit(chip[0], "etci", "VV"), to_8bit(chip[1], "etci", "VH")])
    for band, picture in zip(("vv", "vh"), levels):
        Image.fromarray(picture).save(tmp_path / f"c_{band}.png")
    infer_chips(predictor, [tmp_path / "c_vv.png"], tmp_path / "out", progress=False)
    with Image.open(tmp_path / "out" / "c_prob.png") as im:
        want = np.asarray(im)
    got = predict_array(levels, predictor, units="8bit")
    assert np.abs(np.round(got * 255) - want).max() <= 1


def test_8bit_nodata_is_a_grey_level(chip):
    """`nodata` with units '8bit' is looked for among the grey levels, as given (in dB it matched nothing)."""
    from floodwatch.inference.arrays import array_sample

    levels = np.stack([to_8bit(chip[0], "etci", "VV"), to_8bit(chip[1], "etci", "VH")])
    levels[:, 10:12] = 7
    sample = array_sample(levels, units="8bit", nodata=7)
    assert not sample.valid[10:12].any() and np.isnan(sample.image[:, 10:12]).all()
    assert (sample.valid == (levels != 7).all(axis=0)).all()


def _bad(chip):
    return {
        "bands-last": (np.moveaxis(chip, 0, -1), {}, InvalidArgumentError, r"^image: shape \(64, 64, 2\) has the bands "
                       r"last; expected \(2, H, W\) for bands VV, VH, band axis first"),
        "three-bands": (np.concatenate([chip, chip[:1]]), {}, InvalidArgumentError,
                        r"^image: shape \(3, 64, 64\); expected \(2, H, W\)"),
        "one-band-2d": (chip[0], {}, InvalidArgumentError, r"^image: shape \(64, 64\); expected \(2, H, W\)"),
        "int16": (np.nan_to_num(chip).astype(np.int16), {}, DataError, r"^image: pixel type int16; expected float "
                  "backscatter in dB"),
        "uint8-as-db": (np.zeros((2, 64, 64), np.uint8), {}, DataError, r"^image: pixel type uint8.*units '8bit'"),
        "8bit-levels-as-float": (to_8bit(chip, "etci", "VV").astype(np.float32), {}, DataError,
                                 r"^image: band VV's median is \d+ dB.*units '8bit'"),
        "linear-as-db": (10 ** (chip / 10), {}, DataError, r"^image: .*looks like linear power \(units 'linear'"),
        "db-as-linear": (chip, {"units": "linear"}, DataError, r"^image: .*looks like dB"),
        "vh-before-vv": (chip[::-1].copy(), {}, DataError, r"^image: the band named VH is brighter.*swapped"),
        "float-as-8bit": (chip, {"units": "8bit"}, DataError, r"^image: pixel type float32; units '8bit' takes uint8"),
        "units": (chip, {"units": "dB"}, InvalidArgumentError, r"^units: 'dB' is not one of db, linear, 8bit"),
        "bands-string": (chip, {"bands": "VV"}, InvalidArgumentError, r"^bands: expected a list of band names"),
        "no-pixels": (np.zeros((2, 0, 8), np.float32), {}, InvalidArgumentError, r"^image: shape \(2, 0, 8\) holds no"),
    }


@pytest.mark.parametrize("case", list(_bad(np.zeros((2, 1, 1)))))
def test_wrong_arrays_are_one_error_naming_the_image(chip, predictor, case):
    image, kwargs, error, message = _bad(chip)[case]
    with pytest.raises(error, match=message) as exc:
        predict_array(image, predictor, **kwargs)
    assert "\n" not in str(exc.value) and isinstance(exc.value, FloodwatchError)


def test_infer_chips_refuses_a_model_label_without_a_ready_predictor(tmp_path):
    """model= with predictor None ran the default model and recorded the other file as what made the masks."""
    with pytest.raises(InvalidArgumentError, match=r"^model: names the file a ready `predictor` runs"):
        infer_chips(None, [tmp_path / "x.tif"], tmp_path / "out", model="other.pt")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["India_900498", "Spain_7370579"])
def test_real_chips_map_alike_from_array_and_file(shared_data, name, predictor):
    import rasterio

    path = shared_data / "sen1floods11" / "S1Hand" / f"{name}_S1Hand.tif"
    with rasterio.open(path) as src:
        image = src.read()
    want = predict_samples(predictor, [read_chip(path)])[0]
    np.testing.assert_allclose(predict_array(image, predictor), want, atol=1e-6)
    with pytest.raises(DataError, match="looks like linear power"):
        predict_array(10 ** (image / 10), predictor)
