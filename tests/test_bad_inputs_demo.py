"""Bad input to `floodwatch demo`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest

from tests.bad_inputs import Case, check, params, plain_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return {"file": plain_file(tmp_path_factory.mktemp("bad_demo") / "a_file")}


CASES = [
    Case("output-under-file", "demo -o {file}/d --quick", ("{file} is a file",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
