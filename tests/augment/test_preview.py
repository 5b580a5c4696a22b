"""preview_grid draws original/augmented pairs into a PNG."""
import numpy as np
import pytest
from PIL import Image

import floodwatch.data
from floodwatch.augment import preview_grid
from floodwatch.augment.preview import preview_samples
from floodwatch.errors import DataError, InvalidArgumentError

from .conftest import make_chip


def test_preview_samples_writes_a_png(chips, tmp_path):
    out = preview_samples(chips[:3], tmp_path / "p.png", seed=1)
    one = preview_samples(chips[:1], tmp_path / "one.png", seed=1)
    with Image.open(out) as im, Image.open(one) as im_one:
        assert im.format == "PNG" and im.width == im_one.width
        assert im.height == pytest.approx(3 * im_one.height, rel=0.05)  # one row per chip
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # there is a picture in it, not a blank canvas
    assert not list(tmp_path.glob(".*part*"))


def test_preview_grid_reads_the_data_set(chips, tmp_path, monkeypatch):
    seen = {}

    def fake_open_dataset(path, format=None):
        seen["args"] = (str(path), format)
        return chips

    monkeypatch.setattr(floodwatch.data, "open_dataset", fake_open_dataset, raising=False)
    out = preview_grid("somewhere", tmp_path / "grid.png", n=2, format="fake",
                       augmentation_config={"spatial_augmentation": {"rotate_probability": 1.0}})
    assert out.exists() and seen["args"] == ("somewhere", "fake")


def test_preview_without_usable_chips_is_a_data_error(tmp_path, monkeypatch):
    empty = [make_chip(np.random.default_rng(0), i, empty=True) for i in range(3)]
    monkeypatch.setattr(floodwatch.data, "open_dataset", lambda p, f=None: empty, raising=False)
    with pytest.raises(DataError, match="no chip"):
        preview_grid("empty_dir", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("n", [0, -3])
def test_preview_grid_needs_at_least_one_chip(chips, tmp_path, monkeypatch, n):
    """n = -3 drew every chip it read (6 of them), and 0 blamed the data ("no chip with valid pixels")."""
    monkeypatch.setattr(floodwatch.data, "open_dataset", lambda p, f=None: chips, raising=False)
    with pytest.raises(InvalidArgumentError, match=f"n: {n} chips"):
        preview_grid("somewhere", tmp_path / "x.png", n=n)
    assert not (tmp_path / "x.png").exists()


def test_the_default_preview_shows_every_operator_and_names_a_dropped_channel():
    """Channel dropout (README's list) was neither in the default preview nor named in a row's title: a chip
    whose VV was zeroed read "unchanged"."""
    import torch

    from floodwatch.augment import PREVIEW_CONFIG, parse_config
    from floodwatch.augment.preview import _describe

    cfg = parse_config(PREVIEW_CONFIG)
    sp = cfg.spatial_augmentation
    assert all((sp.hflip_probability, sp.vflip_probability, sp.crop_and_resize_prob, sp.rotate_probability,
                cfg.brightness_augmentation.delta, cfg.contrast.probability, cfg.speckle.probability,
                cfg.channel_dropout.probability))
    no = torch.tensor([False])
    params = {"hflip": no, "vflip": no, "crop": no, "rotate": no, "brightness": no, "contrast": no, "speckle": no,
              "dropped_channel": torch.tensor([1])}
    assert _describe(params, ["VV", "VH"]) == "VH dropped"
    assert _describe({**params, "dropped_channel": torch.tensor([-1])}, ["VV", "VH"]) == "unchanged"


def test_the_title_does_not_overlap_a_tall_column_heading(chips, tmp_path, monkeypatch):
    """The 'augmented' heading grows by the first chip's operator list (wrapped); the figure title sat on it."""
    import floodwatch.augment.preview as preview

    figures = []
    real = preview.save_figure

    def keep(fig, out, **kw):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        figures.append((fig._suptitle.get_window_extent(r), [ax.title.get_window_extent(r) for ax in fig.axes[:4]]))
        return real(fig, out, **kw)

    monkeypatch.setattr(preview, "save_figure", keep)
    config = {"spatial_augmentation": {"hflip_probability": 1.0, "vflip_probability": 1.0, "rotate_probability": 1.0,
                                       "crop_and_resize_prob": 1.0},
              "brightness_augmentation": {"delta": 2.0}, "contrast": {"probability": 1.0},
              "speckle": {"probability": 1.0}}
    preview_samples(chips[:8] * (8 // len(chips[:8]) or 1), tmp_path / "p.png", seed=1, augmentation_config=config)
    title, headings = figures[0]
    assert all(not title.overlaps(h) for h in headings)
