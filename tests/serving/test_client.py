"""Client logic that needs no server: the retry policy and Triton's error messages made one line."""
from __future__ import annotations

import numpy as np
import pytest

from floodwatch.errors import ServingError
from floodwatch.serving.client import FloodClient, softmax_water

pytest.importorskip("tritonclient.http")


def test_softmax_water_matches_torch():
    import torch

    logits = np.random.default_rng(0).normal(0, 30, (2, 2, 8, 8)).astype(np.float32)  # large: overflow-prone
    expected = torch.softmax(torch.from_numpy(logits), 1)[:, 1].numpy()
    np.testing.assert_allclose(softmax_water(logits), expected, atol=1e-6)


def test_client_retries_transient_errors_only():
    from tritonclient.utils import InferenceServerException

    client = object.__new__(FloodClient)  # no server needed to check the retry policy
    client.url, client.protocol, client.model_name = "127.0.0.1:1", "http", "flood"
    client.timeout_s, client.retries, client.backoff_s = 1.0, 3, 0.0
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise InferenceServerException("server is starting", status="503")
        return "ok"

    assert client._call("inference", flaky) == "ok" and len(calls) == 3
    calls.clear()

    def bad_request():
        calls.append(1)
        raise InferenceServerException("[request id: <id_unknown>] bad input. NOTE: long advice", status="400")

    with pytest.raises(ServingError, match=r"inference failed: bad input\. \(400\)$"):
        client._call("inference", bad_request)
    assert len(calls) == 1  # a bad request is not worth retrying


def test_bad_url_leaves_no_half_built_client_behind(monkeypatch):
    import gc
    import sys

    unraisable = []  # what a destructor raises: printed as "Exception ignored in ..." after the one-line error
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    try:
        FloodClient("notaurl::::", retries=0)
    except ServingError as exc:
        assert "notaurl" in str(exc) and "cannot create a Triton client" in str(exc)
    else:
        pytest.fail("no ServingError")
    gc.collect()
    assert not unraisable, [u.exc_value for u in unraisable]


@pytest.mark.parametrize("kwargs, field", [({"retries": -1}, "retries: -1"), ({"timeout_s": 0}, "timeout_s: 0")])
def test_arguments_are_checked_before_connecting(kwargs, field):
    from floodwatch.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=field):
        FloodClient("127.0.0.1:1", **kwargs)


def _fake_client(repo, name, version):
    """A FloodClient over what a Triton server would answer for the model `name` in `repo` (its config as
    Triton's JSON, its ready versions in the metadata)."""
    from google.protobuf import json_format

    from floodwatch.serving.repository import existing_versions, read_config

    cfg = json_format.MessageToDict(read_config(repo / name / "config.pbtxt"), preserving_proto_field_name=True)
    meta = {"name": name, "versions": [str(v) for v in existing_versions(repo / name)],
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2, -1, -1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2, -1, -1]}]}
    client = object.__new__(FloodClient)
    client.model_name, client.model_version = name, version
    client.metadata, client.config = lambda: meta, lambda: cfg
    client._read_model()
    return client


def test_each_version_is_fed_its_own_preprocessing(tmp_path, onnx_models):
    from floodwatch.serving.repository import add_model_version

    from .conftest import PREPROCESSING, export_onnx
    from .test_repository import RETRAINED

    add_model_version(tmp_path, "flood", onnx_models[0])
    add_model_version(tmp_path, "flood", export_onnx(tmp_path / "v2.onnx", 2, RETRAINED), version_policy="all")
    for version, pre in (("1", PREPROCESSING), ("2", RETRAINED)):
        assert _fake_client(tmp_path, "flood", version).preprocessing.to_dict() == pre.to_dict()
    # no version asked for: the highest one ready, and requests stay with it
    latest = _fake_client(tmp_path, "flood", "")
    assert latest.model_version == "2" and latest.preprocessing.to_dict() == RETRAINED.to_dict()
