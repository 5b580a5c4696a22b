"""Bad input to `floodwatch export` and `prune`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.bad_inputs import Case, check, params, plain_file, unsafe_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_export")
    f = {"model": tiny_checkpoint, "file": plain_file(d / "a_file"), "unsafe": unsafe_checkpoint(d / "unsafe.pt"),
         "folder": d / "folder.onnx", "garbage": plain_file(d / "garbage.pt"), "onnx": plain_file(d / "m.onnx")}
    f["folder"].mkdir()
    f["own"] = d / "own.pt"  # pruned onto itself: must stay the checkpoint it was
    f["own"].write_bytes(tiny_checkpoint.read_bytes())
    f["empty"] = d / "empty"
    f["empty"].mkdir()
    for name, config in (("cpurepo", 'backend: "python"\n'), ("garbledrepo", "garbage {{{")):
        f[name] = d / name
        (f[name] / "flood" / "1").mkdir(parents=True)
        (f[name] / "flood" / "config.pbtxt").write_text(config)
    nan = np.full((2, 2, 16, 16), np.nan, np.float32)
    sparse = nan.copy()
    sparse[0, :, 0, 0] = -15.0  # 1 valid pixel of 512: under the 1% calibration needs
    good = np.random.default_rng(0).normal(-15, 3, nan.shape).astype(np.float32)
    zero, zero16 = np.zeros(nan.shape, np.float32), np.zeros(nan.shape, np.int16)  # exactly 0.0 dB is nodata
    arrays = {"nan": nan, "sparse": sparse, "flat": np.zeros(10, np.float32), "good": good, "zero": zero,
              "zero16": zero16}
    for name, array in arrays.items():
        np.save(d / f"{name}.npy", array)
        f[name] = d / f"{name}.npy"
    return f


CASES = [
    Case("onnx-under-file", "export -m {model} -o {file}/x.onnx", ("{file} is a file",)),
    Case("onnx-is-folder", "export -m {model} -o {folder}", ("{folder}", "is a folder")),
    Case("triton-repo-under-file", "export -m {model} -o {out}.onnx --triton-repo {file}/repo --model-name m",
         ("{file} is a file",), absent=("{out}.onnx",)),
    Case("unsafe-checkpoint", "export -m {unsafe} -o {out}.onnx", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run"), absent=("{out}.onnx",)),
    Case("garbage-checkpoint", "export -m {garbage} -o {out}.onnx", ("{garbage}", "not a torch file"),
         absent=("{out}.onnx",)),
    Case("onnx-as-model", "export -m {onnx} -o {out}.onnx", ("{onnx}", "ONNX file", "checkpoint")),
    Case("prune-onnx-as-model", "prune -m {onnx} -o {out}.pt --ratio 0.5", ("{onnx}", "ONNX file")),
    Case("prune-unknown-model-name", "prune -m no-such-model -o {out}.pt --ratio 0.5", ("no-such-model",)),
    Case("prune-under-file", "prune -m {model} -o {file}/x.pt --ratio 0.5", ("{file} is a file",)),
    Case("prune-unsafe", "prune -m {unsafe} -o {out}.pt --ratio 0.5", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback"), absent=("{out}.pt",)),
    Case("int8-calibration-all-nan", "export -m {model} -o {out}/x.onnx --precision int8 --calibration-data {nan}",
         ("{nan}", "no valid pixel")),
    Case("int8-validation-all-nan", "export -m {model} -o {out}.onnx --precision int8 --calibration-data {good} "
         "--validation-data {nan}", ("{nan}", "--validation-data", "no valid pixel"), absent=("{out}.onnx",)),
    Case("int8-calibration-few-valid", "export -m {model} -o {out}/x.onnx --precision int8 --calibration-data "
         "{sparse}", ("{sparse}", "only 1 valid pixels of 512")),
    Case("int8-calibration-not-chips", "export -m {model} -o {out}/x.onnx --precision int8 --calibration-data {flat}",
         ("{flat}", "(N, C, H, W)", "C = 2", "(10,)")),
    Case("int8-calibration-all-zero", "export -m {model} -o {out}.onnx --exporter torchscript --precision int8 "
         "--calibration-data {zero}", ("{zero}", "--calibration-data", "no valid pixel"), absent=("{out}.onnx",)),
    Case("int8-calibration-int16-zero", "export -m {model} -o {out}.onnx --exporter torchscript --precision int8 "
         "--calibration-data {zero16}", ("{zero16}", "no valid pixel"), absent=("{out}.onnx",)),
    Case("int8-calibration-other-size", "export -m {model} -o {out}.onnx --exporter torchscript --precision int8 "
         "--calibration-data {good} --height 8 --width 8", ("{good}", "--calibration-data", "16x16", "8x8"),
         absent=("{out}.onnx",)),
    Case("triton-model-name-bad", "export -m {model} -o {out}.onnx --triton-repo {out}/repo --triton-model "
         "'bad name/x'", ("--triton-model", "'bad name/x'"), absent=("{out}", "{out}.onnx",
                                                                "{out}.onnx.nvinfer_config.txt")),
    Case("int8-calibration-text-file", "export -m {model} -o {out}.onnx --precision int8 --calibration-data {file}",
         ("{file}", "--calibration-data", "data set folder or a .npy/.npz"), absent=("{out}.onnx",)),
    Case("int8-calibration-empty-folder", "export -m {model} -o {out}.onnx --precision int8 --calibration-data "
         "{empty}", ("{empty}", "--calibration-data", "empty folder"), absent=("{out}.onnx",)),
    Case("onnx-unwritable-folder", "export -m {model} -o /proc/floodwatch.onnx", ("/proc/floodwatch.onnx",),
         absent=()),
    Case("triton-repo-unwritable", "export -m {model} -o {out}.onnx --triton-repo /proc/floodwatch --triton-model "
         "m", ("--triton-repo", "/proc/floodwatch"), absent=("{out}.onnx",)),
    # refused before the export: the checks after it left -o written by a command that failed
    Case("triton-repo-other-backend", "export -m {model} -o {out}.onnx --exporter torchscript --triton-repo "
         "{cpurepo} --triton-model flood --triton-kind gpu", ("{cpurepo}/flood/config.pbtxt", "python"),
         absent=("{out}.onnx", "{out}.onnx.nvinfer_config.txt")),
    Case("triton-repo-config-unparsable", "export -m {model} -o {out}.onnx --exporter torchscript --triton-repo "
         "{garbledrepo} --triton-model flood", ("{garbledrepo}/flood/config.pbtxt", "not a valid Triton"),
         absent=("{out}.onnx", "{out}.onnx.nvinfer_config.txt")),
    Case("calibration-data-without-int8", "export -m {model} -o {out}.onnx --calibration-data {good}",
         ("--calibration-data", "int8"), absent=("{out}.onnx",)),
    Case("validation-data-without-int8", "export -m {model} -o {out}.onnx --precision fp16 --validation-data {good}",
         ("--validation-data", "int8"), absent=("{out}.onnx",)),
    Case("plan-without-tensorrt-format", "export -m {model} -o {out}.plan", ("{out}.plan", "--format tensorrt"),
         absent=("{out}.plan",)),
    Case("tensorrt-named-onnx", "export -m {model} -o {out}.onnx --format tensorrt", ("{out}.onnx", ".plan"),
         absent=("{out}.onnx",)),
    Case("size-under-smallest-tile", "export -m {model} -o {out}.onnx --height 1 --width 1", ("--height",),
         forbid=("synth_scene", "Traceback"), absent=("{out}.onnx",)),
    Case("height-negative", "export -m {model} -o {out}.onnx --height -5", ("--height",), absent=("{out}.onnx",)),
    Case("width-zero", "export -m {model} -o {out}.onnx --width 0", ("--width",), absent=("{out}.onnx",)),
    Case("prune-onnx-output", "prune -m {model} -o {out}.onnx --ratio 0.5", ("{out}.onnx", ".pt or .pth"),
         absent=("{out}.onnx",)),
    Case("prune-min-filters-negative", "prune -m {model} -o {out}.pt --ratio 0.5 --min-filters -3",
         ("--min-filters",), absent=("{out}.pt",)),
    Case("prune-neither-ratio-nor-norm-threshold", "prune -m {model} -o {out}.pt", ("--ratio, --norm-threshold",),
         absent=("{out}.pt",)),
    Case("prune-ratio-out-of-range", "prune -m {model} -o {out}.pt --ratio 1.5", ("--ratio: 1.5",),
         absent=("{out}.pt",)),
    Case("prune-onto-its-input", "prune -m {own} -o {own} --ratio 0.5", ("{own} is an input",), absent=()),
    Case("prune-multiple-of-zero", "prune -m {model} -o {out}.pt --ratio 0.5 --multiple-of 0", ("--multiple-of",),
         absent=("{out}.pt",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, tiny_checkpoint, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
    assert files["own"].read_bytes() == tiny_checkpoint.read_bytes()
