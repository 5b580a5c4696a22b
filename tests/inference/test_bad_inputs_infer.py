"""Bad input to `floodwatch infer`: the catalogue (see tests/bad_inputs.py), and strict JSON for a chip
without one valid pixel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.bad_inputs import (Case, check, first_image, params, plain_file, rewrite_raster, unsafe_checkpoint)
from tests.data import fakes


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_infer")
    good = fakes.sen1floods11(d / "good", chips=2)
    chip = first_image(good)
    (d / "lone").mkdir()
    f = {"chip": chip, "model": tiny_checkpoint, "file": plain_file(d / "a_file"), "bitemporal": _bitemporal(d),
         "unsafe": unsafe_checkpoint(d / "unsafe.pt"),
         "int8": rewrite_raster(chip, d / "int8.tif", dtype="int8"),
         "uint16": rewrite_raster(chip, d / "uint16.tif", dtype="uint16"),
         "one_band": rewrite_raster(chip, d / "one_band.tif", bands=[1]),
         "lone_vv": rewrite_raster(chip, d / "lone" / "c_vv.tif", bands=[1]),  # its c_vh.tif is missing
         "png_dir": d / "pngs"}
    from PIL import Image

    f["kept"] = d / "kept"
    f["kept"].mkdir()
    (f["kept"] / "notes.txt").write_text("the user's")
    f["png_dir"].mkdir()
    Image.fromarray(np.full((32, 32), 120, np.uint8)).save(f["png_dir"] / "t_vv.png")  # no t_vh.png
    # names right, each file holding the other's band: as GeoTIFFs (dB) and as ETCI-like 8-bit pictures
    (d / "swapped").mkdir()
    f["c_vv"] = rewrite_raster(chip, d / "swapped" / "c_vv.tif", bands=[2])
    f["c_vh"] = rewrite_raster(chip, d / "swapped" / "c_vh.tif", bands=[1])
    vv, vh = _etci_like(64)
    f["p_vv"], f["p_vh"] = d / "swapped" / "p_vv.png", d / "swapped" / "p_vh.png"
    Image.fromarray(vh).save(f["p_vv"])
    Image.fromarray(vv).save(f["p_vh"])
    rng = np.random.default_rng(0)
    f["photo"] = d / "photo.png"  # a colour picture, not a course image (whose blue is (red + green) // 2)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f["photo"])
    f["onnx"] = _onnx_file(d / "identity.onnx")
    return f


def _etci_like(size):
    """(VV, VH) 8-bit pictures rendered as ETCI's: flood dark in both, VH drawn some 50 levels above VV."""
    rng = np.random.default_rng(4)
    flood = rng.random((size, size)) < 0.1
    vv = np.where(flood, rng.normal(16, 6, flood.shape), rng.normal(147, 20, flood.shape))
    vh = np.where(flood, rng.normal(46, 8, flood.shape), rng.normal(205, 15, flood.shape))
    return [np.clip(np.rint(b), 0, 255).astype(np.uint8) for b in (vv, vh)]


def _onnx_file(path):
    """A valid ONNX model (one Identity node), not a floodwatch export: what a torch loader must recognise."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def _bitemporal(d):
    """A tiny model of before+after stacks (4 channels): chips hold one date."""
    import torch

    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = dict(num_layers=10, in_channels=4, num_classes=2, use_batch_norm=True)
    return save_checkpoint(d / "bitemporal.pt", build_model(**cfg), model_config={**cfg, "temporal": "bitemporal"},
                           preprocessing=Preprocessing())


CASES = [
    # one rule and one message for every command's --threshold (inference.tiling.check_threshold)
    Case("threshold-above-1", "infer {chip} -m {model} -o {out} --threshold 2",
         ("--threshold: 2.0 must lie strictly between 0 and 1",)),
    Case("threshold-nan", "infer {chip} -m {model} -o {out} --threshold nan",
         ("--threshold: nan must lie strictly between",)),
    Case("int8-chip", "infer {int8} -m {model} -o {out}", ("{int8}", "int8")),
    Case("uint16-chip", "infer {uint16} -m {model} -o {out}", ("{uint16}", "uint16")),
    Case("vv-tif-without-vh", "infer {lone_vv} -m {model} -o {out}", ("{lone_vv}", "needs VV and VH", "c_vh.tif")),
    Case("vv-png-without-vh", "infer {png_dir} -m {model} -o {out}", ("{png_dir}/t_vv.png", "t_vh.png")),
    # the good chip's outputs, written first, go with the run when a later chip fails
    Case("good-chip-then-one-band", "infer {chip} {one_band} -m {model} -o {out}", ("{one_band}: data has 1 band(s)",)),
    # one coarse pixel for the whole chip would be one probability everywhere
    Case("downsample-past-the-chip", "infer {chip} -m {model} -o {out} --downsample 1000",
         ("--downsample: a factor of 1000", "at most")),
    Case("weights-negative", "infer {chip} -m {model} -m {model} -o {out} --weights 1,-1",
         ("--weights: an ensemble of 2 needs 2 non-negative numbers", "[1.0, -1.0]")),
    Case("weights-nan", "infer {chip} -m {model} -m {model} -o {out} --weights nan,1", ("--weights", "[nan, 1.0]")),
    Case("chip-given-twice", "infer {chip} {chip} -m {model} -o {out}", ("{chip}: given twice",)),
    Case("png-given-twice", "infer {png_dir}/t_vv.png {png_dir} -m {model} -o {out}", ("t_vv.png: given twice",)),
    Case("output-under-file", "infer {chip} -m {model} -o {file}/i", ("{file} is a file",)),
    # a rerun replaces the output folder whole, so one holding the user's own files is refused, not mixed into
    Case("output-holds-user-file", "infer {chip} -m {model} -o {kept}", ("{kept}", "notes.txt", "infer"), absent=()),
    # the library names its argument (`predictor`), which the CLI reports as -m's flag; no command named
    Case("bitemporal-model", "infer {chip} -m {bitemporal} -o {out}",
         ("--model: a bi-temporal model needs before/after pairs",), forbid=("Traceback", "floodwatch evaluate")),
    Case("unsafe-checkpoint", "infer {chip} -m {unsafe} -o {out}", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run")),
    # the names agree, the content does not: refused as map refuses such files (VH is the darker band in dB;
    # 8-bit renderings draw it the brighter, so pictures are judged on their levels)
    Case("tif-pair-content-swapped", "infer {c_vv} -m {model} -o {out}",
         ("{c_vv}, {c_vh}: look swapped", "VH is the darker band")),
    # a course image (RGB = VV, VH, mean) is read; any other colour picture is refused, saying what is read
    Case("colour-picture", "infer {photo} -m {model} -o {out}", ("{photo}: colour picture", "course image")),
    # a model file of the other kind, by content: one line saying which kind it is
    Case("checkpoint-on-onnx-backend", "infer {chip} -m {model} --backend onnx -o {out}",
         ("{model}: is a torch checkpoint, not an ONNX file", "backend 'torch'"), forbid=("Traceback", "DecodeError")),
    Case("onnx-file-on-torch-backend", "infer {chip} -m {onnx} --backend torch -o {out}",
         ("{onnx}: is an ONNX file, not a torch checkpoint", "backend 'onnx'"),
         forbid=("Traceback", "not a torch file")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)


def _no_nan(token):
    raise AssertionError(f"non-standard JSON constant {token}")


def test_all_nan_chip_writes_strict_json(files, run_cli, tmp_path):
    import rasterio

    nan_chip = tmp_path / "nan.tif"
    with rasterio.open(files["chip"]) as src:
        profile = src.profile
    with rasterio.open(nan_chip, "w", **profile) as dst:
        dst.write(np.full((profile["count"], profile["height"], profile["width"]), np.nan, np.float32))
    out = run_cli("infer", nan_chip, "-m", files["model"], "-o", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert "no valid pixels" in out.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(), parse_constant=_no_nan)
    assert summary["chips"][0]["water_fraction"] is None and summary["chips"][0]["valid_pixels"] == 0


def test_an_8bit_pair_that_looks_swapped_is_warned_of_on_one_line(files, run_cli, tmp_path):
    """8-bit pictures judged by their levels cannot be told from a real chip whose VH lies far under VV, so a
    swapped-looking pair is mapped with a one-line warning, not refused (data.files.VV_ABOVE_VH_LEVELS)."""
    out = run_cli("infer", files["p_vv"], files["p_vh"], "-m", files["model"], "-o", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stderr.splitlines() if "look swapped" in line]
    assert len(said) == 1 and said[0].startswith("warning: ") and "VV picture is brighter" in said[0]
