"""The demo's output folder and its report as a first-time user meets them, without training a model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from floodwatch.errors import FloodwatchError


def test_a_folder_holding_the_users_files_is_refused_before_any_work(tmp_path):
    """`demo -o DIR` wrote spec.yaml, metrics.json, report.html ... over whatever DIR held."""
    from floodwatch.demo import run_demo

    user = tmp_path / "project"
    user.mkdir()
    (user / "spec.yaml").write_text("my spec\n")
    (user / "metrics.json").write_text('{"mine": 1}\n')
    with pytest.raises(FloodwatchError, match=r"project: holds metrics\.json \(and 1 more\), which floodwatch demo"):
        run_demo(user, quick=True, progress=False)
    assert sorted(p.name for p in user.iterdir()) == ["metrics.json", "spec.yaml"]
    assert (user / "spec.yaml").read_text() == "my spec\n"


def test_an_earlier_demos_folder_is_written_over(tmp_path):
    from floodwatch.demo import MARKER, TITLE, _claim_output

    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text("")
    (marked / "spec.yaml").write_text("an earlier demo's\n")
    before_marker = tmp_path / "older"  # a demo from before the marker: recognised by its report
    before_marker.mkdir()
    (before_marker / "report.html").write_text(f"<!doctype html><html><head><meta charset=utf-8><title>{TITLE}"
                                               "</title>")
    for folder in (marked, before_marker, tmp_path / "new"):
        _claim_output(folder)
        assert (folder / MARKER).is_file()


@pytest.fixture(scope="module")
def flood_map(tmp_path_factory):
    from floodwatch.demo import map_synthetic_scene
    from tests.monitoring.monitoring_helpers import DarkWaterPredictor

    out = tmp_path_factory.mktemp("demo")
    return out, map_synthetic_scene(DarkWaterPredictor(), out / "scene", out / "map_default_model", side=96,
                                    progress=False)


def test_the_default_models_section_names_that_model_not_the_trained_one(flood_map):
    """It said 'The trained model maps ...' above the default model's numbers, and did not say why the
    default model scores lower on the generator's scene than the model trained on it."""
    from floodwatch.demo import DEFAULT_MODEL_NOTE, _map_html

    out, result = flood_map
    html = _map_html({**result, "model": "the shipped default model (floodwatch-s1 7.0)"}, out)
    assert html.startswith("<p>The shipped default model (floodwatch-s1 7.0) maps a new 96 x 96 px")
    assert "trained model" not in html
    assert '<a href="map_default_model/synthetic_scene/">' in html
    assert "never seen this generator" in DEFAULT_MODEL_NOTE


def test_the_files_section_links_every_output_relative_to_the_report(flood_map):
    from floodwatch.demo import _files_html

    out, result = flood_map
    for name in ("spec.yaml", "metrics.json"):
        (out / name).write_text("x")
    for name in ("predictions", "inference", "data", "results/demo"):
        (out / name).mkdir(parents=True, exist_ok=True)
    (out / "results/demo/best.pt").write_bytes(b"x")
    links = re.findall(r'href="([^"]+)"', _files_html(out, out / "results/demo/best.pt", result["dir"]))
    assert len(links) == 7 and "results/demo/best.pt" in links
    for link in links:
        assert not link.startswith(("/", "http")) and (out / link).exists(), link


def test_the_intro_says_the_data_is_synthetic_and_which_regions_were_held_out():
    from floodwatch.demo import FULL, _intro_html

    html = _intro_html(FULL, 8_050_000, {"train": ["SynthA", "SynthB"], "val": ["SynthC"], "test": ["SynthD"]})
    assert "trained on SynthA, SynthB; validated" in html and "scored below on SynthD" in html
    assert "<b>Synthetic data.</b>" in html and "not how well a model maps real floods" in html


def test_the_example_pictures_are_the_panels_alone(tmp_path):
    """The report showed evaluate's pictures, whose own titles and legend strip (cut off on a narrow chip)
    sat under the report's labels and legend: everything said twice, once unreadably."""
    from floodwatch.data.synthetic import synth_chips
    from floodwatch.demo import _example_pictures
    from tests.monitoring.monitoring_helpers import DarkWaterPredictor

    chips = synth_chips(3, size=32, seed=1)
    pictures = _example_pictures(DarkWaterPredictor(), chips, [chips[2].id, chips[0].id], tmp_path)
    assert [p.stem for p in pictures] == [chips[2].id, chips[0].id]
    for p in pictures:
        with Image.open(p) as im:
            assert im.size == (3 * 32 + 2 * 4, 32)  # three panels and their gaps, nothing below


def test_the_command_refuses_it_in_one_line(run_cli, tmp_path):
    """The same row as tests/test_bad_inputs_demo.py's: one line, exit 2, the folder and a file named."""
    from tests.bad_inputs import Case, check

    user = tmp_path / "project"
    user.mkdir()
    (user / "spec.yaml").write_text("my spec\n")
    check(Case("output-holds-user-files", "demo -o {user} --quick", ("{user}: holds spec.yaml",)),
          {"user": user}, run_cli, tmp_path)
    assert (user / "spec.yaml").read_text() == "my spec\n"
