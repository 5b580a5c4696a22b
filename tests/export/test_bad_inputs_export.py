"""Bad input to `floodwatch export` and `prune`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest

from tests.bad_inputs import Case, check, params, plain_file, unsafe_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_export")
    f = {"model": tiny_checkpoint, "file": plain_file(d / "a_file"), "unsafe": unsafe_checkpoint(d / "unsafe.pt"),
         "folder": d / "folder.onnx", "garbage": plain_file(d / "garbage.pt"), "onnx": plain_file(d / "m.onnx")}
    f["folder"].mkdir()
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
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
