import numpy as np

from floodwatch.data.harmonise_plot import EDGES, harmonised_histograms_png


def _median(counts):
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    return centres[np.searchsorted(np.cumsum(counts), counts.sum() / 2)]


def test_harmonised_real_sources_line_up(shared_data, tmp_path):
    paths = [shared_data / "sen1floods11", shared_data / "etci2021" / "northal_20190302t234651"]
    hists = harmonised_histograms_png(paths, tmp_path / "h.png", max_chips=12)
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    s1, etci = hists.values()
    for band in ("VV", "VH"):
        # the 8-bit maps were fitted to Sen1Floods11's percentiles: the medians must agree within ~2 dB
        assert abs(_median(s1[band]) - _median(etci[band])) < 2.0, band
    # and they are real dB: VH darker than VV
    assert _median(s1["VH"]) < _median(s1["VV"]) - 3
