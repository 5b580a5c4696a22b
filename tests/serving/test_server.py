"""A real tritonserver on loopback: endpoints, parity with in-process ONNX Runtime, versions, bad requests."""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from floodwatch.errors import ServingError
from floodwatch.serving.client import FloodClient, TritonPredictor, softmax_water
from floodwatch.serving.repository import add_model_version

from tests.ports import free_port

from .conftest import CHIP, PREPROCESSING, ort_logits

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def url(triton, protocol: str) -> str:
    return triton.http_url if protocol == "http" else triton.grpc_url


def raw_chips(n: int, seed: int = 0, size: int = CHIP) -> np.ndarray:
    """dB-like chips with some NaN (nodata)."""
    rng = np.random.default_rng(seed)
    chips = rng.normal([-12, -19], 4, (n, size, size, 2)).transpose(0, 3, 1, 2).astype(np.float32)
    chips[:, :, :3, :5] = np.nan
    return chips


def get(address: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(address, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_health_metadata_config_endpoints(triton):
    base = f"http://{triton.http_url}"
    assert get(f"{base}/v2/health/live")[0] == 200
    assert get(f"{base}/v2/health/ready")[0] == 200
    assert get(f"{base}/v2/models/flood/versions/1/ready")[0] == 200
    status, body = get(f"{base}/v2/models/flood")
    assert status == 200 and b'"name":"input"' in body and b'"FP32"' in body
    assert get(f"{base}/v2/models/flood/config")[0] == 200
    assert get(f"{base}/v2/models/nope/ready")[0] != 200


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predictions_equal_in_process_onnxruntime(triton, onnx_models, protocol):
    with FloodClient(url(triton, protocol), protocol=protocol, model_name="flood", model_version="1") as c:
        assert (c.input_name, c.input_dtype, c.input_shape) == ("input", "FP32", [-1, 2, -1, -1])
        assert c.max_batch_size == 4
        assert c.preprocessing.to_dict() == PREPROCESSING.to_dict()  # read from the server, not assumed
        chips = raw_chips(6)  # more than max_batch_size: the client splits it into two requests
        x = PREPROCESSING.apply(chips, np.isfinite(chips).all(axis=1))
        logits = c.infer(x)
        expected = ort_logits(onnx_models[0], x)
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
        prob = c.predict_db(chips, np.isfinite(chips).all(axis=1))
        np.testing.assert_allclose(prob, softmax_water(expected), atol=1e-6)
        # an independent softmax (the torch one the other back-ends use)
        import torch

        np.testing.assert_allclose(prob, torch.softmax(torch.from_numpy(expected), 1)[:, 1].numpy(), atol=1e-6)


def test_two_versions_side_by_side(triton, onnx_models):
    x = PREPROCESSING.apply(raw_chips(2, seed=3))
    outs = []
    for version, path in zip(("1", "2"), onnx_models):
        with FloodClient(triton.http_url, model_name="flood", model_version=version) as c:
            out = c.infer(x)
        np.testing.assert_allclose(out, ort_logits(path, x), rtol=1e-5, atol=1e-5)
        outs.append(out)
    assert not np.allclose(outs[0], outs[1])  # really two different models


def test_version_added_while_polling_becomes_ready(triton, onnx_models):
    base = f"http://{triton.http_url}/v2/models/flood_poll/versions"
    assert get(f"{base}/2/ready")[0] != 200
    add_model_version(triton.model_repository, "flood_poll", onnx_models[1], max_batch_size=4, ort_threads=1)
    triton.wait_model_ready("flood_poll", "2", timeout_s=60)
    x = PREPROCESSING.apply(raw_chips(1, seed=5))
    with FloodClient(triton.grpc_url, protocol="grpc", model_name="flood_poll") as c:  # latest = 2
        np.testing.assert_allclose(c.infer(x), ort_logits(onnx_models[1], x), rtol=1e-5, atol=1e-5)
    deadline = time.monotonic() + 30  # policy 'latest': the old version is unloaded
    while get(f"{base}/1/ready")[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get(f"{base}/1/ready")[0] != 200


def test_versions_with_their_own_preprocessing(triton, onnx_models, tmp_path):
    """A model retrained on more data (other offsets) added as version 2: each version gets its own."""
    from .conftest import export_onnx
    from .test_repository import RETRAINED

    retrained = export_onnx(tmp_path / "retrained.onnx", 2, RETRAINED)
    for path in (onnx_models[0], retrained):
        add_model_version(triton.model_repository, "flood_pre", path, max_batch_size=4, version_policy="all",
                          ort_threads=1)
    chips = raw_chips(2, seed=13)
    valid = np.isfinite(chips).all(axis=1)
    for version, path, pre in (("1", onnx_models[0], PREPROCESSING), ("2", retrained, RETRAINED),
                               ("", retrained, RETRAINED)):
        triton.wait_model_ready("flood_pre", version or "2", timeout_s=60)
        with FloodClient(triton.grpc_url, protocol="grpc", model_name="flood_pre", model_version=version) as c:
            prob = c.predict_db(chips, valid)
        # as `infer -m` with that version's ONNX file: its own metadata's pre-processing
        np.testing.assert_allclose(prob, softmax_water(ort_logits(path, pre.apply(chips, valid))), atol=1e-5)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_clear_errors_and_server_keeps_serving(triton, protocol):
    import tritonclient.grpc as tg
    import tritonclient.http as th

    tc = th if protocol == "http" else tg
    c = FloodClient(url(triton, protocol), protocol=protocol, model_name="flood", retries=0)
    good = np.zeros((1, 2, CHIP, CHIP), np.float32)

    def send(array, name="input", dtype="FP32", model="flood"):
        inp = tc.InferInput(name, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        return c._call("inference", c._client.infer, model, [inp])

    cases = {
        "wrong shape": (lambda: send(np.zeros((1, 3, CHIP, CHIP), np.float32)),
                        r"unexpected shape for input 'input'.*got \[1,3,32,32\]"),
        "wrong dtype": (lambda: send(np.zeros((1, 2, CHIP, CHIP), np.float64), dtype="FP64"),
                        r"data-type is 'FP64', but model 'flood' expects 'FP32'"),
        "wrong name": (lambda: send(good, name="image"), r"unexpected inference input 'image'"),
        "empty batch": (lambda: send(np.zeros((0, 2, CHIP, CHIP), np.float32)),
                        r"input 'input' for model 'flood'"),
        "oversized batch": (lambda: send(np.zeros((5, 2, CHIP, CHIP), np.float32)), r"batch-size must be <= 4"),
        "unknown model": (lambda: send(good, model="nope"), r"unknown model: 'nope'"),
    }
    for what, (call, pattern) in cases.items():
        with pytest.raises(ServingError, match=pattern) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "inference failed" in message and "NOTE" not in message, what
    # the client's own checks catch the same mistakes before sending
    with pytest.raises(ServingError, match="axis 1 is 3"):
        c.infer(np.zeros((1, 3, CHIP, CHIP), np.float32))
    with pytest.raises(ServingError, match="empty batch"):
        c.infer(np.zeros((0, 2, CHIP, CHIP), np.float32))
    with pytest.raises(ServingError, match="model 'nope' version 'latest' is not ready .*flood"):
        FloodClient(url(triton, protocol), protocol=protocol, model_name="nope", retries=0)
    assert c.infer(good).shape == (1, 2, CHIP, CHIP)  # still serving
    c.close()


def test_statistics_and_prometheus_metrics(triton):
    with FloodClient(triton.http_url, model_name="flood", model_version="1") as c:
        c.infer(PREPROCESSING.apply(raw_chips(2)))
        stats = c.statistics()["model_stats"]
    assert stats[0]["name"] == "flood" and int(stats[0]["inference_count"]) >= 2
    with FloodClient(triton.grpc_url, protocol="grpc", model_name="flood", model_version="1") as c:
        assert int(c.statistics()["model_stats"][0]["inference_count"]) >= 2
    status, body = get(triton.metrics_url)
    assert status == 200
    text = body.decode()
    assert 'nv_inference_request_success{model="flood",version="1"}' in text


def test_predictor_protocol_via_load_predictor(triton, onnx_models):
    from floodwatch.inference.predictor import Predictor, load_predictor

    p = load_predictor("ignored.onnx", backend="triton", url=f"http://{triton.http_url}", model_name="flood",
                       protocol="http")
    assert isinstance(p, TritonPredictor) and isinstance(p, Predictor)
    x = PREPROCESSING.apply(raw_chips(3, seed=9))
    prob = p.predict(x)
    assert prob.shape == (3, CHIP, CHIP) and prob.dtype == np.float32
    # no version pinned: policy 'all' serves the highest version
    np.testing.assert_allclose(prob, softmax_water(ort_logits(onnx_models[1], x)), atol=1e-6)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_client_against_stopped_server_fails_fast(protocol):
    port = free_port()  # nothing listens here
    with pytest.raises(ServingError, match=rf"127.0.0.1:{port} model 'flood': server liveness check failed"):
        FloodClient(f"127.0.0.1:{port}", protocol=protocol, retries=2, backoff_s=0.05, timeout_s=2)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_one_client_shared_by_threads(triton, onnx_models, protocol):
    """A predictor handed to several threads (in-process dask workers) must work from each of them."""
    from concurrent.futures import ThreadPoolExecutor

    x = PREPROCESSING.apply(raw_chips(1, seed=11))
    with FloodClient(url(triton, protocol), protocol=protocol, model_name="flood", model_version="1") as c:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: c.infer(x), range(6)))
    expected = ort_logits(onnx_models[0], x)
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-5)
