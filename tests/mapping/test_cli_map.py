"""`floodwatch map` with a real (untrained, tiny) torch checkpoint, and its one-line errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from floodwatch.cli.main import main

from .helpers import make_scene, read


def run(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_map_folder_with_a_torch_checkpoint(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "scenes").mkdir()
    make_scene(tmp_path / "scenes" / "s0.tif", 60, 50)
    (tmp_path / "scenes" / "notes.txt").write_text("ignored: not a GeoTIFF")
    code = run(["map", str(tmp_path / "scenes"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
                "--tile", "64", "--overlap", "16", "--batch", "2", "-q"])
    assert code in (0, None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0"]
    stats = json.loads((tmp_path / "out" / "s0" / "stats.json").read_text())
    assert stats["tiles"] == 1 and stats["tiles_predicted"] == 1 and stats["width"] == 50
    assert stats["valid_km2"] == pytest.approx(60 * 50 * 100 / 1e6, rel=0.01)
    assert stats["backend"] == "torch"
    assert stats["model"] == str(Path(tiny_checkpoint).absolute())  # what made the map, as infer/evaluate say
    assert "s0.tif" in capsys.readouterr().out


def test_single_band_without_vh_is_a_one_line_error(tmp_path, tiny_checkpoint, capsys):
    import rasterio

    make_scene(tmp_path / "both.tif", 40, 40)
    with rasterio.open(tmp_path / "both.tif") as src:
        with rasterio.open(tmp_path / "vv.tif", "w", **(src.profile | {"count": 1})) as dst:
            dst.write(src.read(1), 1)
    capsys.readouterr()
    code = run(["map", str(tmp_path / "vv.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "vv.tif" in err and "--vh" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "vv").exists()


def test_map_with_acquired_records_the_result_in_intersecting_aois(tmp_path, tiny_checkpoint):
    from pyproj import Transformer
    from shapely.geometry import box, mapping

    from floodwatch.monitoring.aoi import add_aoi
    from floodwatch.monitoring.store import Store

    make_scene(tmp_path / "s1.tif", 64, 64)  # UTM 33N, origin (400000, 5300000), 10 m pixels
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    (lon0, lat0), (lon1, lat1) = to_wgs84.transform(400000, 5299360), to_wgs84.transform(400640, 5300000)
    db = tmp_path / "fw.db"
    with Store(db) as store:
        add_aoi(store, "inside", mapping(box(lon0, lat0, lon1, lat1)))
        add_aoi(store, "elsewhere", mapping(box(lon0 + 5, lat0, lon1 + 5, lat1)))
    code = run(["map", str(tmp_path / "s1.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
                "--tile", "64", "--overlap", "16", "-q", "--acquired", "2026-11-20T06:00:00Z", "--db", str(db)])
    assert code in (0, None)
    with Store(db) as store:
        inside, elsewhere = store.history("inside"), store.history("elsewhere")
    assert len(inside) == 1 and elsewhere == []
    assert inside[0]["scene_id"] == "s1" and inside[0]["acquired"].startswith("2026-11-20")


def test_map_with_acquired_refuses_a_scene_without_a_grid_in_one_line(tmp_path, tiny_checkpoint, capsys):
    import warnings

    import rasterio

    make_scene(tmp_path / "s.tif", 40, 40)
    with rasterio.open(tmp_path / "s.tif") as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        profile = {k: v for k, v in src.profile.items() if k not in ("crs", "transform")}
        with rasterio.open(tmp_path / "nogrid.tif", "w", **profile) as dst:
            dst.write(src.read())
    from floodwatch.monitoring.store import Store

    with Store(tmp_path / "fw.db"):  # scenes are checked against a database that exists
        pass
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rasterio's warning reached stderr above the error line
        code = run(["map", str(tmp_path / "nogrid.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
                    "--acquired", "2024-05-01", "--db", str(tmp_path / "fw.db")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() == f"error: {tmp_path / 'nogrid.tif'}: no coordinate reference system, cannot map areas"


def test_map_with_tta_runs_the_tta_predictor_and_keeps_the_georeference(tmp_path, tiny_checkpoint):
    make_scene(tmp_path / "s2.tif", 64, 64)
    for name, extra in (("plain", []), ("tta", ["--tta-transforms", "hflip,vflip"])):
        code = run(["map", str(tmp_path / "s2.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / name),
                    "--tile", "64", "--overlap", "16", "-q", *extra])
        assert code in (0, None)
    _, meta_p = read(tmp_path / "plain" / "s2" / "flood_mask.tif")
    _, meta_t = read(tmp_path / "tta" / "s2" / "flood_mask.tif")
    assert meta_p["transform"] == meta_t["transform"] and meta_p["crs"] == meta_t["crs"]
    assert json.loads((tmp_path / "tta" / "s2" / "stats.json").read_text())["backend"] == "torch"  # what ran TTA
    # stats.json says what made the map besides the model, as evaluate's JSON and infer's summary.json do
    plain, tta = (json.loads((tmp_path / n / "s2" / "stats.json").read_text()) for n in ("plain", "tta"))
    assert (plain["tta"], plain["refine"], plain["downsample"]) == (None, None, 1)
    assert tta["tta"] == ["hflip", "vflip"]


def test_map_runs_onnx_runtime_without_spinning_threads(tmp_path, tiny_checkpoint, monkeypatch):
    """The reader and writer threads need the CPU that idle ONNX Runtime threads would spin on."""
    from floodwatch.export.onnx import export_onnx
    from floodwatch.inference import onnx as onnx_backend
    from floodwatch.mapping import predictor_options

    assert predictor_options("m.onnx") == {"spinning": False, "memory_pattern": False} == predictor_options("m.bin",
                                                                                                             "onnx")
    assert predictor_options("m.pt") == {"bf16_cpu": True} == predictor_options("m.onnx", "torch")
    assert predictor_options(None, "triton") == {}
    monkeypatch.setenv("FLOODWATCH_TORCH_BF16", "0")
    assert predictor_options("m.pt") == {"bf16_cpu": False}
    monkeypatch.delenv("FLOODWATCH_TORCH_BF16")
    seen = []
    real = onnx_backend.onnx_session
    monkeypatch.setattr(onnx_backend, "onnx_session",
                        lambda path, providers=None, threads=None, spinning=None, memory_pattern=None:
                        seen.append((spinning, memory_pattern)) or real(path, providers, threads, spinning,
                                                                        memory_pattern))
    model = tmp_path / "m.onnx"
    export_onnx(tiny_checkpoint, model)
    make_scene(tmp_path / "s.tif", 40, 40)
    assert run(["map", str(tmp_path / "s.tif"), "-m", str(model), "-o", str(tmp_path / "out"), "--tile", "32",
                "--overlap", "8", "-q"]) in (0, None)
    assert seen == [(False, False)]


def test_map_downsample_predicts_on_a_coarser_grid_and_keeps_the_georeference(tmp_path, tiny_checkpoint, monkeypatch):
    from floodwatch.inference.predictor import TorchPredictor

    seen = []
    real = TorchPredictor.predict
    monkeypatch.setattr(TorchPredictor, "predict",
                        lambda self, batch: seen.append(batch.shape[-2:]) or real(self, batch))
    make_scene(tmp_path / "s2.tif", 64, 64)
    for name, extra in (("plain", []), ("coarse", ["--downsample", "2"])):
        seen.clear()
        code = run(["map", str(tmp_path / "s2.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / name),
                    "--tile", "64", "--overlap", "16", "-q", *extra])
        assert code in (0, None)
        assert seen and set(seen) == ({(64, 64)} if name == "plain" else {(32, 32)})  # what the model sees
    mask_p, meta_p = read(tmp_path / "plain" / "s2" / "flood_mask.tif")
    mask_c, meta_c = read(tmp_path / "coarse" / "s2" / "flood_mask.tif")
    assert mask_p.shape == mask_c.shape and meta_p["transform"] == meta_c["transform"]
    assert json.loads((tmp_path / "coarse" / "s2" / "stats.json").read_text())["backend"] == "torch"
    assert json.loads((tmp_path / "plain" / "s2" / "stats.json").read_text())["backend"] == "torch"


def test_map_runs_torch_in_bfloat16_only_where_the_cpu_has_it(tiny_checkpoint, monkeypatch):
    """`map`'s torch predictor asks for bfloat16; a CPU without it in hardware keeps float32 (emulated bf16 is
    slower), and the probabilities stay close to float32's where it is used."""
    import numpy as np
    import torch

    from floodwatch.inference import predictor as torch_backend
    from floodwatch.mapping import predictor_options

    x = np.random.default_rng(0).normal(0, 1, (2, 2, 64, 64)).astype(np.float32)
    fp32 = torch_backend.TorchPredictor(tiny_checkpoint, device="cpu")
    assert fp32.autocast_dtype is None
    for native in (False, True):
        monkeypatch.setattr(torch_backend, "cpu_has_native_bf16", lambda: native)
        p = torch_backend.TorchPredictor(tiny_checkpoint, device="cpu", **predictor_options(tiny_checkpoint))
        assert p.autocast_dtype == (torch.bfloat16 if native else None)
        np.testing.assert_allclose(p.predict(x), fp32.predict(x), atol=0.02 if native else 1e-6)


def test_stats_record_the_precision_that_ran(tmp_path, tiny_checkpoint, monkeypatch):
    """The same command gives slightly different masks in bfloat16 and float32: stats.json says which ran,
    through wrappers and ensembles."""
    from floodwatch.inference import load_predictor
    from floodwatch.inference import predictor as torch_backend
    from floodwatch.mapping import map_scene
    from floodwatch.mapping.pipeline import predictor_precision

    from .helpers import make_scene

    monkeypatch.setattr(torch_backend, "cpu_has_native_bf16", lambda: True)
    fp32 = load_predictor(tiny_checkpoint, device="cpu")
    bf16 = load_predictor(tiny_checkpoint, device="cpu", bf16_cpu=True)
    assert predictor_precision(fp32) == "float32" and predictor_precision(bf16) == "bfloat16"
    assert predictor_precision(load_predictor(tiny_checkpoint, device="cpu", bf16_cpu=True, tta=True)) == "bfloat16"
    both = load_predictor([tiny_checkpoint, tiny_checkpoint], device="cpu")
    assert predictor_precision(both) == "float32"

    class Onnx:  # what OnnxPredictor carries: the file's floodwatch metadata
        def __init__(self, precision):
            self.meta = {"precision": precision}
    assert predictor_precision(Onnx("int8")) == "int8"
    # the metadata's 'fp32'/'fp16' (export's --precision) in torch's words: the same arithmetic, the same name
    assert predictor_precision(Onnx("fp32")) == "float32" and predictor_precision(Onnx("fp16")) == "float16"

    make_scene(tmp_path / "s.tif", 96, 80, seed=4)
    result = map_scene(tmp_path / "s.tif", bf16, tmp_path / "out", tile=64, overlap=16, progress=False)
    assert result.stats["precision"] == "bfloat16"


def test_stats_name_the_back_end_that_ran_in_one_vocabulary(tmp_path, tiny_checkpoint):
    """stats.json's backend was the predictor's class with --backend auto ('OnnxPredictor'; 'TTAPredictor', TTA
    of what?) and 'onnx' with --backend onnx: one file, two words. It names what ran the model, through wrappers
    and ensembles; what the wrappers did has its own entries (tta, downsample, ...)."""
    from floodwatch.export.onnx import export_onnx

    onnx = tmp_path / "m.onnx"
    export_onnx(tiny_checkpoint, onnx)
    make_scene(tmp_path / "s.tif", 64, 64)
    runs = {"auto": ["-m", onnx], "onnx": ["-m", onnx, "--backend", "onnx"],
            "auto-wrapped": ["-m", onnx, "--tta-transforms", "hflip", "--downsample", "2"],
            "onnx-wrapped": ["-m", onnx, "--backend", "onnx", "--downsample", "2"],
            "ensemble": ["-m", tiny_checkpoint, "-m", onnx]}
    stats = {}
    for name, args in runs.items():
        code = run(["map", str(tmp_path / "s.tif"), *map(str, args), "-o", str(tmp_path / name), "--tile", "64",
                    "--overlap", "16", "-q"])
        assert code in (0, None)
        stats[name] = json.loads((tmp_path / name / "s" / "stats.json").read_text())
    assert {n: s["backend"] for n, s in stats.items()} == {"auto": "onnx", "onnx": "onnx", "auto-wrapped": "onnx",
                                                           "onnx-wrapped": "onnx", "ensemble": "torch+onnx"}
    assert (stats["auto-wrapped"]["tta"], stats["auto-wrapped"]["downsample"]) == (["hflip"], 2)
    # float32 both: the ONNX file's 'fp32' and torch's float32 are one arithmetic
    assert stats["auto"]["precision"] == stats["ensemble"]["precision"] == "float32"


def test_predictor_backend_looks_through_wrappers_and_a_users_predictor_keeps_its_name(tiny_checkpoint):
    from floodwatch.inference import load_predictor
    from floodwatch.inference.base import predictor_backend
    from floodwatch.inference.ensemble import EnsemblePredictor
    from floodwatch.inference.predictor import TorchPredictor
    from floodwatch.inference.tta import TTAPredictor

    assert predictor_backend(load_predictor(tiny_checkpoint, tta=True, refine="guided", temperature=1.5)) == "torch"
    assert predictor_backend(load_predictor([tiny_checkpoint] * 2, downsample=2)) == "torch"

    class Notebook:  # a user's own Predictor, none of floodwatch's back-ends
        def __init__(self):
            self.preprocessing = TorchPredictor(tiny_checkpoint).preprocessing

        def predict(self, batch):
            return np.zeros((len(batch),) + batch.shape[2:], np.float32)

    class Labelled(Notebook):
        backend = "threshold"

    class Tuned(TorchPredictor):  # still runs torch
        pass

    assert predictor_backend(Notebook()) == "Notebook" == predictor_backend(TTAPredictor(Notebook(), ["hflip"]))
    assert predictor_backend(Labelled()) == "threshold" and predictor_backend(Tuned(tiny_checkpoint)) == "torch"
    assert predictor_backend(EnsemblePredictor([Notebook(), TorchPredictor(tiny_checkpoint)])) == "Notebook+torch"


def test_pair_band_files_pairs_vv_with_vh_and_keeps_the_rest():
    from floodwatch.errors import DataError
    from floodwatch.mapping import pair_band_files

    files = [Path("d/a_vh.tif"), Path("d/a_vv.tif"), Path("d/b.tif"), Path("d/c_VV.TIF"), Path("d/c_VH.TIF"),
             Path("d/lonely_vh.tif"), Path("e/a_vv.tif"), "https://h/x/s_vv.tif?sig=1", "https://h/x/s_vh.tif?sig=2"]
    assert pair_band_files(files) == [
        (Path("d/a_vv.tif"), Path("d/a_vh.tif")), (Path("d/b.tif"), None), (Path("d/c_VV.TIF"), Path("d/c_VH.TIF")),
        (Path("d/lonely_vh.tif"), None), (Path("e/a_vv.tif"), None),  # another folder's a_vv has no VH beside it
        ("https://h/x/s_vv.tif?sig=1", "https://h/x/s_vh.tif?sig=2")]  # signed URLs pair by their paths
    # paths are case-sensitive: only the band tag and the suffix are not
    assert pair_band_files([Path("D/a_vv.tif"), Path("d/a_vh.tif"), Path("A_vv.tif"), Path("a_vh.tiff")]) == [
        (Path("D/a_vv.tif"), None), (Path("d/a_vh.tif"), None), (Path("A_vv.tif"), None), (Path("a_vh.tiff"), None)]
    assert pair_band_files([Path("a_vv.tiff"), Path("a_VH.tif")]) == [(Path("a_vv.tiff"), Path("a_VH.tif"))]
    assert pair_band_files(["a_vv.tif", "./a_vh.tif"]) == [("a_vv.tif", "./a_vh.tif")]  # one folder, two spellings
    # ETCI's layout: tiles/vv/<stem>_vv.png and tiles/vh/<stem>_vh.png; other folders do not pair
    assert pair_band_files(["t/vh/x_vh.png", "t/vv/x_vv.png", "t/vv/y_vv.png", "u/vh/y_vh.png", "t/vv/z_vh.png"]) == [
        ("t/vv/x_vv.png", "t/vh/x_vh.png"), ("t/vv/y_vv.png", None), ("u/vh/y_vh.png", None), ("t/vv/z_vh.png", None)]
    # side by side wins, even in a folder called vv: files are paired across band folders only when left over
    assert pair_band_files(["d/vv/x_vv.tif", "d/vv/x_vh.tif", "d/vh/x_vh.tif"]) == [
        ("d/vv/x_vv.tif", "d/vv/x_vh.tif"), ("d/vh/x_vh.tif", None)]
    with pytest.raises(DataError, match=r"a_VH.tif: the same VH band as d/a_vh.tif"):
        pair_band_files([Path("d/a_vv.tif"), Path("d/a_vh.tif"), Path("d/a_VH.tif")])
    with pytest.raises(DataError, match=r"^d/a_vv.tif: given twice$"):
        pair_band_files([Path("d/a_vv.tif"), Path("d/a_vh.tif"), Path("d/a_vv.tif")])


def test_map_folder_of_single_band_pairs_equals_the_stacked_scene(tmp_path, tiny_checkpoint):
    import rasterio

    make_scene(tmp_path / "both.tif", 64, 64)
    (tmp_path / "chips").mkdir()
    with rasterio.open(tmp_path / "both.tif") as src:
        for band, name in ((1, "vv"), (2, "vh")):  # STAC Overflow's layout: one file per band, no descriptions
            with rasterio.open(tmp_path / "chips" / f"awc00_{name}.tif", "w",
                               **(src.profile | {"count": 1})) as dst:
                dst.write(src.read(band), 1)
    common = ["-m", str(tiny_checkpoint), "--tile", "64", "--overlap", "16", "-q"]
    assert run(["map", str(tmp_path / "chips"), "-o", str(tmp_path / "paired"), *common]) in (0, None)
    assert run(["map", str(tmp_path / "both.tif"), "-o", str(tmp_path / "stacked"), *common]) in (0, None)
    assert sorted(p.name for p in (tmp_path / "paired").iterdir()) == ["awc00"]  # the pair's name, not its VV file's
    paired, _ = read(tmp_path / "paired" / "awc00" / "flood_probability.tif")
    stacked, _ = read(tmp_path / "stacked" / "both" / "flood_probability.tif")
    assert (paired == stacked).all()

    # the library's parallel path pairs the same way (threads of an in-process cluster here)
    from floodwatch.mapping import map_scenes

    results = map_scenes([tmp_path / "chips"], tiny_checkpoint, tmp_path / "parallel", workers=1, processes=False,
                         progress=False, tile=64, overlap=16)
    assert [Path(r.scene).name for r in results] == ["awc00_vv.tif"]
    parallel, _ = read(tmp_path / "parallel" / "awc00" / "flood_probability.tif")
    assert (parallel == stacked).all()
    assert run(["map", "--vv", str(tmp_path / "chips" / "awc00_vv.tif"), "--vh", str(tmp_path / "chips" / "awc00_vh.tif"),
                "-o", str(tmp_path / "flags"), *common]) in (0, None)
    assert sorted(p.name for p in (tmp_path / "flags").iterdir()) == ["awc00"]
    # either band file alone finds its partner beside it, as infer reads a lone band file (named as given)
    for given in ("awc00_vv", "awc00_vh"):
        assert run(["map", str(tmp_path / "chips" / f"{given}.tif"), "-o", str(tmp_path / given), *common]) in (0, None)
        lone, _ = read(tmp_path / given / given / "flood_probability.tif")
        assert (lone == stacked).all()


def test_map_keeps_same_named_scenes_from_different_folders_apart(tmp_path, tiny_checkpoint):
    # the layout fetch writes: one scene.tif per date
    for day, seed in (("2024-05-01", 1), ("2024-05-13", 2)):
        make_scene(tmp_path / "s1" / day / "scene.tif", 40, 40, seed=seed)
    code = run(["map", *(str(tmp_path / "s1" / d / "scene.tif") for d in ("2024-05-01", "2024-05-13")),
                "-m", str(tiny_checkpoint), "-o", str(tmp_path / "maps"), "--tile", "64", "--overlap", "16", "-q"])
    assert code in (0, None)
    for day in ("2024-05-01", "2024-05-13"):
        stats = json.loads((tmp_path / "maps" / day / "scene" / "stats.json").read_text())
        assert stats["scene"] == str(tmp_path / "s1" / day / "scene.tif")


def test_map_records_the_scene_absolute_so_the_web_map_finds_its_backdrop(tmp_path, tiny_checkpoint, monkeypatch):
    """`map scene.tif` (the README's form) records where the scene is, not the path as typed: the web map shows a
    record's SAR backdrop only from a path it can open from anywhere."""
    from floodwatch.monitoring.web.tiles import layer_sources

    make_scene(tmp_path / "in" / "scene.tif", 40, 40)
    monkeypatch.chdir(tmp_path / "in")
    code = run(["map", "scene.tif", "-m", str(tiny_checkpoint), "-o", "maps", "--tile", "64", "--overlap", "16", "-q"])
    assert code in (0, None)
    out = tmp_path / "in" / "maps" / "scene"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["scene"] == str((tmp_path / "in" / "scene.tif").resolve())
    monkeypatch.chdir(tmp_path)
    assert "sar" in layer_sources({"stats": str(out / "stats.json"), "flood_mask": str(out / "flood_mask.tif")})


def test_a_scene_without_valid_pixels_maps_with_a_warning(tmp_path, tiny_checkpoint, capsys):
    import rasterio

    make_scene(tmp_path / "s.tif", 40, 40)
    with rasterio.open(tmp_path / "s.tif", "r+") as ds:
        ds.write(np.full((2, 40, 40), np.nan, np.float32))
    code = run(["map", str(tmp_path / "s.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
                "--tile", "64", "--overlap", "16", "-q"])
    assert code in (0, None)
    stats = json.loads((tmp_path / "out" / "s" / "stats.json").read_text())
    # nothing seen is no share flooded (infer's summary.json says null too); the areas are 0 km²
    assert stats["flooded_fraction"] is None
    assert stats["valid_km2"] == stats["flooded_km2"] == stats["permanent_water_km2"] == 0.0
    out, err = capsys.readouterr()
    assert re.search(r"s\.tif\s*│ 0\.000\s*│ 0\.00\s*│ -\s*│", out), out
    assert "warning" in err and "s.tif" in err and "no valid pixels" in err


def test_map_self_train_learns_per_scene_and_each_scene_starts_from_the_same_model(tmp_path, tiny_checkpoint):
    """`map_scene(self_train=...)` fine-tunes on tiles of the scene (stats.json says what it did) and puts the
    weights back, so a second scene starts from the model as loaded."""
    import torch

    from floodwatch.inference import load_predictor
    from floodwatch.inference.selftrain import SelfTraining
    from floodwatch.mapping import map_scene

    make_scene(tmp_path / "a.tif", 150, 140, seed=1)
    predictor = load_predictor(tiny_checkpoint, device="cpu")
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    # confidence 0.51: the untrained model is unsure of everything, and this test wants steps that change weights
    options = SelfTraining(steps=2, batch=2, crop=32, max_chips=3, learning_rate=0.1, confidence=0.51)
    result = map_scene(tmp_path / "a.tif", predictor, tmp_path / "out", tile=64, overlap=16, progress=False,
                       self_train=options)
    st = result.stats["self_training"]
    assert st["chips"] == 3 and st["crop"] == 32 and st["pixels"] == 3 * 64 * 64  # 4 whole 64 px tiles fit; 3 drawn
    assert st["steps_run"] == 2 and st["labelled_pixels"] > 0 and st["seconds"] >= st["read_seconds"] >= 0
    for k, v in predictor.model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    make_scene(tmp_path / "edge.tif", 150, 140, seed=1, nodata_border=50)  # no tile is half data: mapped as it is
    result = map_scene(tmp_path / "edge.tif", predictor, tmp_path / "out", tile=64, overlap=16, progress=False,
                       self_train=options)
    assert result.stats["self_training"]["chips"] == 0 and "half data" in result.stats["self_training"]["skipped"]


def test_map_self_train_takes_the_default_models_checkpoint(tmp_path, monkeypatch, capsys):
    """Without -m, --self-train maps with the default model's torch checkpoint (its ONNX file cannot learn)."""
    import functools

    from floodwatch.inference import selftrain

    monkeypatch.setattr(selftrain, "SelfTraining", functools.partial(selftrain.SelfTraining, steps=1, batch=1,
                                                                     max_chips=1))
    make_scene(tmp_path / "s.tif", 64, 64, seed=2)
    code = run(["map", str(tmp_path / "s.tif"), "-o", str(tmp_path / "out"), "--self-train", "-q"])
    assert code in (0, None), capsys.readouterr().err
    stats = json.loads((tmp_path / "out" / "s" / "stats.json").read_text())
    assert stats["backend"] == "torch" and stats["self_training"]["chips"] == 1


def test_map_scenes_refuses_to_self_train_one_predictor_shared_by_threads(tmp_path, tiny_checkpoint):
    from floodwatch.errors import FloodwatchError
    from floodwatch.inference import load_predictor
    from floodwatch.inference.selftrain import SelfTraining
    from floodwatch.mapping import map_scenes

    make_scene(tmp_path / "a.tif", 64, 64)
    with pytest.raises(FloodwatchError, match="self_train: each scene fine-tunes its own copy"):
        map_scenes([tmp_path / "a.tif"], load_predictor(tiny_checkpoint, device="cpu"), tmp_path / "out",
                   workers=2, processes=False, self_train=SelfTraining())
    assert not (tmp_path / "out").exists()


def test_map_refuses_a_scene_folder_holding_the_users_files_and_keeps_them(tmp_path, tiny_checkpoint, capsys):
    make_scene(tmp_path / "s0.tif", 40, 40)
    argv = ["map", str(tmp_path / "s0.tif"), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
            "--tile", "64", "--overlap", "16", "-q"]
    assert run(argv) in (0, None)
    assert run(argv) in (0, None)  # a rerun replaces its own outputs
    # ...and what a desktop or QGIS leaves beside them (Finder's .DS_Store, external pyramids)
    (tmp_path / "out" / "s0" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "out" / "s0" / "flood_mask.tif.ovr").write_bytes(b"\0")
    assert run(argv) in (0, None)
    (tmp_path / "out" / "s0" / "notes.docx").write_text("the user's")
    assert run(argv) == 2
    assert "notes.docx, which map did not write" in capsys.readouterr().err
    assert (tmp_path / "out" / "s0" / "notes.docx").read_text() == "the user's"
