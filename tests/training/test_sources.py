"""dataset_config.sources: several labelled data sets trained together, each kept to its regions and split."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from floodwatch.config import load_spec, save_spec, spec_from_dict
from floodwatch.errors import DataError, SpecError
from floodwatch.training.data import load_samples

from tests.data import fakes


@pytest.fixture
def two_sources(tmp_path, synth_root):
    etci = fakes.etci(tmp_path / "etci", cols=8, rows=8)  # 64 tiles, 4 blocks of 4x4: a blocked split is possible
    return {"dataset_config": {"sources": [
        {"path": str(etci), "format": "etci2021", "split": {"method": "blocked", "fractions": [0.75, 0.25, 0.0]}},
        {"path": str(synth_root), "format": "sen1floods11", "exclude_regions": ["SynthA"], "repeat": 3,
         "split": {"method": "random", "fractions": [1.0, 0.0, 0.0]}}]},
        "model_config": {"num_layers": 10, "model_input_height": 32, "model_input_width": 32}}


def test_sources_are_split_on_their_own_filtered_and_repeated(two_sources):
    parts = load_samples(spec_from_dict(two_sources), progress=False)
    etci_train = [s for s in parts["train"] if s.extra.get("source") == "etci2021"]
    synth_train = [s for s in parts["train"] if s.extra.get("source") != "etci2021"]
    assert len(etci_train) + len([s for s in parts["val"]]) == 64 and len(parts["val"]) == 16
    assert all(s.extra.get("source") == "etci2021" for s in parts["val"])  # the synthetic source keeps no val
    # 8 synthetic chips less SynthA's 2, each drawn 3 times (the same Sample, not a copy)
    assert len(synth_train) == 18 and len({id(s) for s in synth_train}) == 6
    assert "SynthA" not in {s.region for s in synth_train}


def test_only_regions_and_bad_sources(two_sources):
    two_sources["dataset_config"]["sources"][1].update(regions=["SynthB"], exclude_regions=[])
    parts = load_samples(spec_from_dict(two_sources), progress=False)
    assert {s.region for s in parts["train"] if s.extra.get("source") != "etci2021"} == {"SynthB"}
    two_sources["dataset_config"]["sources"][1]["regions"] = ["Atlantis"]
    with pytest.raises(DataError, match=r"sources\[\].regions: .* no region 'Atlantis'"):
        load_samples(spec_from_dict(two_sources), progress=False)
    two_sources["dataset_config"]["sources"][1].update(regions=None, exclude_regions=["Atlantis"])  # a typo
    with pytest.raises(DataError, match=r"sources\[\].exclude_regions: .* no region 'Atlantis'"):
        load_samples(spec_from_dict(two_sources), progress=False)
    two_sources["dataset_config"]["sources"][1].update(regions=["SynthB"], exclude_regions=["SynthB"])
    with pytest.raises(DataError, match="no chips .* left"):
        load_samples(spec_from_dict(two_sources), progress=False)
    with pytest.raises(SpecError, match="not both"):
        spec_from_dict({**two_sources, "dataset_config": {**two_sources["dataset_config"], "data_root": "x"}})


def test_sources_paths_round_trip_relative(tmp_path, two_sources):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(two_sources))
    saved = save_spec(load_spec(spec_file), tmp_path / "out" / "spec.yaml")
    written = yaml.safe_load(saved.read_text())["dataset_config"]["sources"]
    assert all(not s["path"].startswith("/") for s in written)  # relative to the written spec's folder
    again = load_spec(saved)
    assert [s.path for s in again.dataset_config.sources] == [s["path"] for s in two_sources["dataset_config"]["sources"]]


def test_model_config_widths_build_a_slimmer_net(two_sources):
    from floodwatch.models import build_model

    two_sources["model_config"]["widths"] = {"encoder.layer4.0.conv1": 128, "decoder.0.conv1": 128,
                                             "decoder.0.conv2": 128}
    slim = build_model(**spec_from_dict(two_sources).model.build_kwargs())
    full = build_model(num_layers=10)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(slim) < 0.5 * count(full) and slim.encoder.layer4[0].conv1.out_channels == 128


def test_clip_per_band_is_kept_in_the_fitted_preprocessing(synth_root):
    from floodwatch.data import open_dataset
    from floodwatch.training.data import fit_preprocessing

    chips = list(open_dataset(synth_root))
    spec = {"dataset_config": {"data_root": str(synth_root), "format": "sen1floods11",
                               "preprocessing": {"clip": [[-15.1, -4.5], [-28.4, -12.3]]}},
            "model_config": {"num_layers": 10}}
    pp = fit_preprocessing(spec_from_dict(spec), chips)
    assert pp.clip == [(-15.1, -4.5), (-28.4, -12.3)]
    x = pp.derive(np.array([[[-40.0]], [[0.0]]], np.float32))  # darker than VV's floor, brighter than VH's top
    assert x[:, 0, 0].tolist() == pytest.approx([-15.1, -12.3])
    spec["dataset_config"]["preprocessing"]["clip"] = [[-15.1, -4.5]]
    with pytest.raises(SpecError, match=r"preprocessing.clip: 1 ranges, but the data have 2 band\(s\) \(VV\+VH"):
        spec_from_dict(spec)  # sen1floods11 always gives VV+VH: the spec alone tells
    del spec["dataset_config"]["format"]  # detected: the bands come from the data, so training tells
    spec["model_config"]["model_input_channels"] = 1  # as the clip says, or the spec alone contradicts itself
    with pytest.raises(SpecError, match="preprocessing.clip: 1 ranges for 2 bands"):
        fit_preprocessing(spec_from_dict(spec), chips)
    spec["dataset_config"]["preprocessing"]["clip"] = [-30, 0]  # one range for every band, as before
    assert fit_preprocessing(spec_from_dict(spec), chips).clip == [(-30.0, 0.0)] * 2


def test_anchor_is_kept_in_the_fitted_preprocessing_and_checked_against_the_bands(synth_root):
    from floodwatch.data import open_dataset
    from floodwatch.training.data import fit_preprocessing

    chips = list(open_dataset(synth_root))
    spec = {"dataset_config": {"data_root": str(synth_root), "format": "sen1floods11",
                               "preprocessing": {"anchor": {"percentile": 80, "db": [-9.0, -16.0]}}},
            "model_config": {"num_layers": 10}}
    pp = fit_preprocessing(spec_from_dict(spec), chips)
    assert (pp.anchor_percentile, pp.anchor_db) == (80.0, [-9.0, -16.0])
    x = pp.apply(chips[0].image, chips[0].valid)
    assert np.allclose(x, pp.apply(chips[0].image + np.float32(3.0), chips[0].valid), atol=1e-5)
    spec["dataset_config"]["preprocessing"]["anchor"]["db"] = [-9.0]
    with pytest.raises(SpecError, match=r"preprocessing.anchor.db: 1 levels, but the data have 2 band\(s\)"):
        spec_from_dict(spec)
    del spec["dataset_config"]["format"]  # detected: training tells
    with pytest.raises(SpecError, match="preprocessing.anchor.db: 1 levels for 2 bands"):
        fit_preprocessing(spec_from_dict(spec), chips)
    spec["dataset_config"]["preprocessing"]["anchor"] = {"percentile": 101, "db": [-9.0, -16.0]}
    with pytest.raises(SpecError, match="anchor.percentile"):
        spec_from_dict(spec)


@pytest.mark.parametrize("clip, message", [
    ([], r"clip: \[\]: give \[low, high\] in dB for every band, or one \[low, high\] per band"),
    ([[-15, -4.5], [-28]], r"clip: \[\[-15, -4.5\], \[-28\]\]: give \[low, high\]"),
    ([[-15, -16], [-28, -12]], r"clip\[0\]: low -15.0 must be below high -16.0"),
    ([0, -1], r"clip: low 0.0 must be below high -1.0"),
])
def test_bad_clips_are_one_line_errors_naming_the_range(clip, message):
    spec = {"dataset_config": {"data_root": "/tmp", "format": "sen1floods11", "preprocessing": {"clip": clip}},
            "model_config": {"num_layers": 10}}
    with pytest.raises(SpecError, match=message):
        spec_from_dict(spec)


def test_a_synthetic_source_writes_its_chips_once_and_trains_on_them(tmp_path, two_sources):
    cache = tmp_path / "cache" / "look_alikes"
    two_sources["dataset_config"]["sources"][1] = {
        "path": str(cache), "format": "synthetic", "split": {"method": "random", "fractions": [1.0, 0.0, 0.0]},
        "options": {"chips": 6, "size": 32, "seed": 7, "phenomena": "all"}}
    parts = load_samples(spec_from_dict(two_sources), progress=False)
    synth = [s for s in parts["train"] if s.extra.get("source") != "etci2021"]
    assert sorted(s.id for s in synth) == sorted(p.name[:-len("_S1Hand.tif")] for p in (cache / "S1Hand").iterdir())
    assert len(synth) == 6
    two_sources["dataset_config"]["sources"][1]["options"]["seed"] = 8
    with pytest.raises(DataError, match="written with seed 7"):
        load_samples(spec_from_dict(two_sources), progress=False)
