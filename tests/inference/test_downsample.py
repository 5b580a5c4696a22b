"""Predicting on a coarser grid, against independent numpy block means and known shapes."""
import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import FloodwatchError
from floodwatch.inference.downsample import DownsampledPredictor


class FirstBand:
    """Returns the first input band as the 'probability', remembering what it was given."""

    preprocessing = Preprocessing()

    def predict(self, batch):
        self.seen = np.asarray(batch)
        return self.seen[:, 0].copy()


def test_the_model_sees_block_means():
    x = np.random.default_rng(0).normal(size=(2, 2, 16, 24)).astype(np.float32)
    base = FirstBand()
    DownsampledPredictor(base, 2).predict(x)
    expected = x.reshape(2, 2, 8, 2, 12, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(base.seen, expected, rtol=1e-6, atol=1e-6)


def test_output_is_on_the_input_grid_and_smooth_fields_survive():
    yy, xx = np.mgrid[0:33, 0:50].astype(np.float32)
    ramp = (0.01 * xx + 0.02 * yy)[None, None].repeat(2, axis=1)  # a plane: block means and bilinear keep it
    prob = DownsampledPredictor(FirstBand(), 2).predict(ramp)
    assert prob.shape == (1, 33, 50)  # odd height: the output is cropped back to the input's grid
    inner = (slice(1, 31), slice(1, 48))  # one coarse pixel from the border is approximate (see the module)
    np.testing.assert_allclose(prob[0][inner], ramp[0, 0][inner], atol=1e-5)


def test_a_block_of_water_stays_water_and_factor_one_is_identity():
    x = np.zeros((1, 2, 16, 16), np.float32)
    x[:, :, 4:12, 4:12] = 1.0
    prob = DownsampledPredictor(FirstBand(), 2).predict(x)
    assert ((prob >= 0.5) == (x[:, 0] >= 0.5)).all()
    np.testing.assert_array_equal(DownsampledPredictor(FirstBand(), 1).predict(x), x[:, 0])


@pytest.mark.parametrize("factor", [0, -2, 1.5, True])
def test_bad_factor(factor):
    with pytest.raises(FloodwatchError, match="downsample: the factor"):
        DownsampledPredictor(FirstBand(), factor)


def test_a_factor_leaving_too_few_pixels_is_refused():
    """A 64 px chip at factor 1000 was one coarse pixel: one probability everywhere, exit 0."""
    x = np.zeros((1, 2, 64, 80), np.float32)
    assert DownsampledPredictor(FirstBand(), 9).predict(x).shape == (1, 64, 80)  # ceil(64 / 9) = 8 px: enough
    for factor in (10, 1000):
        with pytest.raises(FloodwatchError, match=rf"^downsample: a factor of {factor} leaves .*64x80 input.*"
                                                  r"at most 9 here"):
            DownsampledPredictor(FirstBand(), factor).predict(x)
