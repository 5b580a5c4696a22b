"""Bad input to `floodwatch train`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest
import yaml

from tests.bad_inputs import Case, binary_file, check, params, plain_file, unsafe_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory, synth_root, make_spec):
    d = tmp_path_factory.mktemp("bad_train")
    f = {"file": plain_file(d / "a_file"), "binary_spec": binary_file(d / "spec.yaml"),
         "unsafe": unsafe_checkpoint(d / "unsafe.pt"), "garbage": plain_file(d / "garbage.pt"),
         "spec": d / "good.yaml"}
    f["spec"].write_text(yaml.safe_dump(make_spec(synth_root)))
    return f


CASES = [
    Case("binary-spec", "train -e {binary_spec} -r {out}", ("{binary_spec}", "not UTF-8")),
    Case("results-under-file", "train -e {spec} -r {file}/x", ("{file} is a file",)),
    Case("unsafe-pretrained", "train -e {spec} -r {out} -m {unsafe}", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run")),
    Case("garbage-pretrained", "train -e {spec} -r {out} -m {garbage}", ("{garbage}", "not a torch file")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
