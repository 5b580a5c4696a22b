"""Bad input to `floodwatch evaluate`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest

from tests.bad_inputs import (Case, binary_file, check, first_label, params, plain_file, rewrite_raster,
                              sen1floods11_copy, unsafe_checkpoint)
from tests.data import fakes


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_evaluate")
    good = fakes.sen1floods11(d / "good", chips=3)
    f = {"good": good, "model": tiny_checkpoint, "file": plain_file(d / "a_file"),
         "unsafe": unsafe_checkpoint(d / "unsafe.pt"), "binary_json": binary_file(d / "t.json")}
    f["keep"] = d / "keep"  # the user's own folder, holding a file evaluate does not write
    f["keep"].mkdir()
    (f["keep"] / "notes.txt").write_text("mine\n")
    f["empty"] = d / "empty"
    f["empty"].mkdir()
    f["ombria"] = fakes.ombria(d / "ombria")  # VV only: the two-band model cannot score it
    f["label_crs"] = sen1floods11_copy(good, d / "label_crs", lambda i, l: rewrite_raster(l, l, crs="EPSG:32634"))
    f["label_shifted"] = sen1floods11_copy(good, d / "label_shifted", lambda i, l: rewrite_raster(l, l, shift_px=3))
    f["label_crs_label"], f["label_shifted_label"] = first_label(f["label_crs"]), first_label(f["label_shifted"])
    # files a refused run must leave byte for byte: a checkpoint, and a temperature file read as an input
    f["victim"] = d / "victim.pt"
    f["victim"].write_bytes(tiny_checkpoint.read_bytes())
    f["t_json"] = d / "t.ok.json"
    f["t_json"].write_text('{"temperature": 1.5}\n')
    return f


KEPT = ("victim", "t_json")


CASES = [
    Case("threshold-0", "evaluate -m {model} --data {good} -o {out}.json --threshold 0",
         ("--threshold: 0.0 must lie strictly between 0 and 1",), absent=("{out}.json",)),
    Case("label-other-crs", "evaluate -m {model} --data {label_crs} -o {out}.json", ("{label_crs_label}", "CRS"),
         absent=("{out}.json",)),
    Case("label-shifted", "evaluate -m {model} --data {label_shifted} -o {out}.json",
         ("{label_shifted_label}", "transform"), absent=("{out}.json",)),
    Case("neither-data-nor-spec", "evaluate -m {model} -o {out}",
         ("--data, --experiment-spec: give one of them",), forbid=("not both", "Traceback")),
    # a data set's chip names no file of its own: the folder and the chip say where
    Case("one-band-data-set", "evaluate -m {model} --data {ombria} -o {out}.json",
         ("{ombria}: chip ", "data has 1 band(s) (VV)"), absent=("{out}.json",)),
    Case("metrics-under-file", "evaluate -m {model} --data {good} -o {file}/m.json", ("{file} is a file",)),
    Case("report-under-file", "evaluate -m {model} --data {good} --report {file}/r", ("{file} is a file",)),
    Case("predictions-under-file", "evaluate -m {model} --data {good} --save-predictions {file}/p",
         ("{file} is a file",)),
    Case("predictions-in-user-folder", "evaluate -m {model} --data {good} --save-predictions {keep}",
         ("{keep}: holds notes.txt, which evaluate did not write",), absent=()),
    Case("unsafe-checkpoint", "evaluate -m {unsafe} --data {good}", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run")),
    Case("self-train-onnx-backend", "evaluate -m {model} --data {good} -o {out}.json --backend onnx --self-train",
         ("--self-train", "cannot learn"), absent=("{out}.json",)),
    Case("self-train-downsample", "evaluate -m {model} --data {good} -o {out}.json --self-train --downsample 2",
         ("--self-train", "not with --downsample"), absent=("{out}.json",)),
    Case("self-train-ensemble", "evaluate -m {model} -m {model} --data {good} -o {out}.json --self-train",
         ("--self-train", "an ensemble"), absent=("{out}.json",)),
    Case("self-train-and-calibrate", "evaluate -m {model} --data {good} -o {out} --self-train --calibrate {good}",
         ("--self-train", "--calibrate")),
    # --calibrate's data is read before the evaluation, so nothing of it is written (--save-predictions: {out})
    Case("calibrate-empty-folder", "evaluate -m {model} --data {good} --save-predictions {out} --calibrate {empty}",
         ("{empty}", "empty folder")),
    Case("calibrate-missing", "evaluate -m {model} --data {good} --save-predictions {out} --calibrate {empty}/nope",
         ("{empty}/nope", "not found")),
    Case("binary-temperature", "evaluate -m {model} --data {good} --temperature {binary_json}",
         ("{binary_json}", "not UTF-8")),
    # JSON written over a file of another kind (a checkpoint), or over an input of the run: refused before scoring
    Case("metrics-over-checkpoint", "evaluate -m {model} --data {good} -o {victim}", ("-o {victim}", ".json"),
         absent=()),
    Case("temperature-over-checkpoint",
         "evaluate -m {model} --data {good} --calibrate {good} --save-temperature {victim}",
         ("--save-temperature {victim}", ".json"), absent=()),
    Case("metrics-over-temperature-input", "evaluate -m {model} --data {good} --temperature {t_json} -o {t_json}",
         ("-o: {t_json} is an input",), absent=()),
]


@pytest.fixture(scope="module")
def kept_bytes(files):
    return {name: files[name].read_bytes() for name in KEPT}


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, kept_bytes, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
    assert sorted(p.name for p in files["keep"].iterdir()) == ["notes.txt"]  # never replaced by a refused run
    assert {name: files[name].read_bytes() for name in KEPT} == kept_bytes
