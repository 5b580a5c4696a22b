"""Bad input to `floodwatch serve` and `client`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest

from tests.bad_inputs import Case, check, params, plain_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_serve")
    repo = d / "repo"
    repo.mkdir()
    return {"file": plain_file(d / "a_file"), "missing": d / "missing_repo", "repo": repo}


CASES = [
    Case("repository-is-file", "serve --model-repository {file}", ("{file}", "is a file, not a model repository")),
    Case("repository-missing", "serve --model-repository {missing}", ("{missing}", "not found")),
    Case("log-file-under-file", "serve --model-repository {repo} --log-file {file}/log.txt", ("{file} is a file",)),
    Case("log-file-is-folder", "serve --model-repository {repo} --log-file {repo}", ("{repo}", "is a folder")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
