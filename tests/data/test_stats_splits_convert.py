"""Statistics (vs numpy), splits, conversion to the course's PNG layout, inspection."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.data import open_dataset
from floodwatch.data.convert import to_images_masks
from floodwatch.data.harmonise import EIGHT_BIT_TO_DB
from floodwatch.data.inspect import inspect_dataset
from floodwatch.data.splits import make_split, read_split_csv, split_problems, write_split_csv
from floodwatch.data.stats import compute_stats, preprocessing_from_stats
from floodwatch.errors import DataError, InvalidArgumentError

from . import fakes


def test_stats_match_numpy(tmp_path):
    ds = open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=7, splits=False))
    st = compute_stats(ds, max_pixels=10**7)
    pixels = np.concatenate([s.image[:, s.valid] for s in ds], axis=1)
    masks = np.concatenate([s.mask.ravel() for s in ds])
    for i, band in enumerate(("VV", "VH")):
        assert st["band_stats"][band]["mean"] == pytest.approx(pixels[i].mean(), abs=1e-4)
        assert st["band_stats"][band]["std"] == pytest.approx(pixels[i].std(), abs=1e-4)
        assert st["band_stats"][band]["p50"] == pytest.approx(np.percentile(pixels[i], 50), abs=1e-4)
    assert st["class_balance"]["water"] == int((masks == 1).sum())
    assert st["nodata_share"] == pytest.approx(1 - pixels.shape[1] / masks.size)
    pre = preprocessing_from_stats(st, "diff")
    x = pre.apply(np.stack([s.image for s in ds]), np.stack([s.valid for s in ds]))
    valid = np.stack([s.valid for s in ds])
    for c in range(3):  # standardised inputs: mean 0, std 1 over valid pixels
        assert abs(x[:, c][valid].mean()) < 1e-3 and x[:, c][valid].std() == pytest.approx(1, abs=1e-3)


def test_random_and_region_splits(tmp_path):
    ds = open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=20, splits=False))
    rnd = make_split(ds, "random", seed=1)
    assert sorted(sum(rnd.values(), [])) == sorted(ds.ids) and [len(v) for v in rnd.values()] == [14, 3, 3]
    assert rnd == make_split(ds, "random", seed=1) and rnd != make_split(ds, "random", seed=2)
    reg = make_split(ds, "region", fractions=(0.5, 0.25, 0.25))
    region_of = dict(zip(ds.ids, ds.regions))
    seen = [{region_of[i] for i in ids} for ids in reg.values()]
    assert all(not (a & b) for k, a in enumerate(seen) for b in seen[k + 1:])  # no region in two splits
    assert sum(len(v) for v in reg.values()) == 20
    path = write_split_csv(reg, tmp_path / "split.csv")
    assert read_split_csv(path) == reg
    with pytest.raises(DataError, match="no tile grid position"):
        make_split(ds, "blocked")
    with pytest.raises(InvalidArgumentError, match="^fractions: "):
        make_split(ds, "random", fractions=(0.5, 0.6))


def test_split_problems_name_useless_splits(tmp_path):
    ds = open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=5, splits=False))
    dry = [s.id for s in ds if not s.class_counts()["water"]]
    wet = [s.id for s in ds if s.class_counts()["water"]]
    assert dry and len(wet) >= 2
    assert split_problems(ds, {"train": dry, "val": wet[:1], "test": wet[1:2]}, (0.6, 0.2, 0.2)) == []
    useless = {"train": wet, "val": [], "test": dry}
    assert split_problems(ds, useless, (0.7, 0.15, 0.15)) == [
        "val: no chip (asked for 15%; fewer, larger groups than the shares need)",
        f"test: no labelled water pixel in its {len(dry)} chip(s) ({', '.join(dry[:3])}"
        f"{' ...' if len(dry) > 3 else ''}): its water IoU is undefined"]
    assert split_problems(ds, {"train": wet + dry, "val": []}, (1.0, 0.0)) == []  # no share asked: no chip


def test_blocked_split_is_spatially_separated(tmp_path):
    ds = open_dataset(fakes.etci(tmp_path / "e", cols=8, rows=8))
    split = make_split(ds, "blocked", block=2)
    where = {i: name for name, ids in split.items() for i in ids}
    grid = {r.id: r.extra["grid"] for r in ds.records}
    for a in ds.ids:
        for b in ds.ids:  # tiles in the same 2x2 block share a split
            if (grid[a][0] // 2, grid[a][1] // 2) == (grid[b][0] // 2, grid[b][1] // 2):
                assert where[a] == where[b]
    assert len(split["train"]) > len(split["val"]) > 0 and len(split["test"]) > 0


def test_convert_round_trip(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=7, splits=False)  # chip 6 has a nodata border
    ds = open_dataset(root)
    out = to_images_masks(ds, tmp_path / "png")
    back = open_dataset(out)
    assert back.format == "folders" and back.bands == ("VV", "VH") and sorted(back.ids) == sorted(ds.ids)
    for s in ds:
        b = back.get(s.id)
        np.testing.assert_array_equal(b.mask, s.mask)  # incl. IGNORE_INDEX via class_map.json
        slope, intercept = EIGHT_BIT_TO_DB["folders"]["VV"]
        ok = s.valid & (s.image[0] > intercept) & (s.image[0] < intercept + 255 * slope)  # inside the 8-bit range
        assert np.abs(b.image[0][ok] - s.image[0][ok]).max() <= slope / 2 + 1e-4  # half an 8-bit step


def test_convert_marks_no_data_ignore_whatever_the_label_says(tmp_path):
    """ETCI labels its no-data (white) pixels as ground or flood; other samples mark no data by NaN or `valid`:
    all of it is the ignore class (127) in the masks, never a class, and reads back as IGNORE_INDEX."""
    from PIL import Image

    from floodwatch.data import IGNORE_INDEX, Sample

    root = fakes.etci(tmp_path / "e", cols=1, rows=1)
    tiles = root / "scene_20200101t000000" / "tiles"
    for band in ("vv", "vh"):  # ETCI's no data: a white stripe of 8 x 32 px in both bands
        png = next((tiles / band).glob("*.png"))
        a = np.asarray(Image.open(png)).copy()
        a[:8] = 255
        Image.fromarray(a).save(png)
    [tile] = list(open_dataset(root))
    image = np.full((2, 4, 4), -10, np.float32)
    image[1, 0, 0] = np.nan  # no data in one band only, `valid` not saying so
    odd = Sample(image=image, mask=np.zeros((4, 4), np.int64), valid=np.ones((4, 4), bool), id="odd")
    valid = np.ones((4, 4), bool)
    valid[3] = False  # no data said by `valid` alone
    said = Sample(image=image.copy(), mask=np.ones((4, 4), np.int64), valid=valid, id="said")
    said.image[1, 0, 0] = -10
    out = to_images_masks([tile, odd, said], tmp_path / "png")
    masks = {p.stem: np.asarray(Image.open(p)) for p in (out / "masks").glob("*.png")}
    assert (masks[tile.id][:8] == 127).all() and not (masks[tile.id][8:] == 127).any()
    assert masks["odd"][0, 0] == 127 and (masks["odd"] == 127).sum() == 1
    assert (masks["said"][3] == 127).all() and (masks["said"][:3] == 255).all()
    back = open_dataset(out).get(tile.id)
    assert (back.mask[:8] == IGNORE_INDEX).all()


def test_inspect_counts(tmp_path):
    root = fakes.sen1floods11(tmp_path / "s1", chips=5, nolabel=1)
    r = inspect_dataset(root)
    assert r["format"] == "sen1floods11" and r["chips"] == 6
    assert r["per_region"]["SynthA"]["chips"] == 2 and r["per_split"] == {"train": 4, "test": 1, "-": 1}
    assert r["no_water_chips"] == ["SynthA_4"] and len(r["unlabelled_chips"]) == 1
    ds = open_dataset(root)
    assert r["class_balance"]["water"] == sum(int((s.mask == 1).sum()) for s in ds)


def test_inspect_counts_the_pixels_evaluate_scores(tmp_path):
    """ETCI labels its no-data pixels too: the class balance counts only labelled pixels that hold data."""
    from PIL import Image

    root = fakes.etci(tmp_path / "e", cols=1, rows=1)
    tiles = root / "scene_20200101t000000" / "tiles"
    for band in ("vv", "vh"):  # a white (ETCI's no-data) stripe of 8 x 32 px over ground labelled flood
        png = next((tiles / band).glob("*.png"))
        a = np.asarray(Image.open(png)).copy()
        a[:8] = 255
        Image.fromarray(a).save(png)
    label = next((tiles / "flood_label").glob("*.png"))
    m = np.asarray(Image.open(label)).copy()
    m[:8] = 255
    Image.fromarray(m).save(label)
    [s] = list(open_dataset(root))
    assert (~s.valid[:8]).all() and (s.mask[:8] == 1).all()
    r = inspect_dataset(root)
    assert r["class_balance"]["water"] == int(((s.mask == 1) & s.valid).sum()) < int((s.mask == 1).sum())
    assert r["class_balance"]["water"] + r["class_balance"]["not_water"] + r["class_balance"]["ignore"] == s.mask.size


def test_split_problems_name_an_unreadable_chip_instead_of_failing(tmp_path):
    ds = open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=3, splits=False))
    ids = list(ds.ids)
    (tmp_path / "s1" / "S1Hand" / f"{ids[-1]}_S1Hand.tif").write_bytes(b"not a tiff")
    problems = split_problems(ds, {"train": ids[:-1], "test": ids[-1:]}, (0.7, 0.3))
    assert any(f"{ids[-1]}_S1Hand.tif: unreadable GeoTIFF" in p for p in problems)


def test_convert_real_etci_no_data_is_ignore(shared_data, tmp_path):
    from PIL import Image

    tile = "northal_20190302t234651_x-12_y-2"  # 14,162 no-data pixels, labelled 0 (ground) by ETCI
    ds = open_dataset(shared_data / "etci2021" / "northal_20190302t234651").subset([tile])
    [s] = list(ds)
    mask = np.asarray(Image.open(to_images_masks(ds, tmp_path / "png") / "masks" / f"{tile}.png"))
    assert int((mask == 127).sum()) == int((~s.valid).sum()) == int(np.isnan(s.image[0]).sum()) == 14162
