"""Bad input to `floodwatch serve` and `client`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import socket

import pytest

from floodwatch.errors import InvalidArgumentError

from tests.bad_inputs import Case, check, params, plain_file
from tests.ports import free_port


def model_folder(repo, config: str | None, version: bool = True):
    """repo/flood/ with this config.pbtxt text and a version folder holding a model.onnx (by its name,
    tritonserver picks a backend for a config that names none)."""
    model = repo / "flood"
    model.mkdir(parents=True)
    if config is not None:
        (model / "config.pbtxt").write_text(config)
    if version:
        (model / "1").mkdir()
        (model / "1" / "model.onnx").write_bytes(b"")
    return repo


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_serve")
    repo = d / "repo"
    repo.mkdir()
    return {"file": plain_file(d / "a_file"), "missing": d / "missing_repo", "repo": repo,
            "garbled": model_folder(d / "garbled", "garbage {{{"),
            "nobackend": model_folder(d / "nobackend", 'name: "flood"\nmax_batch_size: 4\n'),
            "gpu": model_folder(d / "gpu", 'platform: "onnxruntime_onnx"\n'),
            "noconfig": model_folder(d / "noconfig", None),
            "noversion": model_folder(d / "noversion", 'backend: "python"\n', version=False),
            # passes every check made without tritonserver (which could not load its empty model.onnx)
            "python": model_folder(d / "python", 'backend: "python"\n'),
            "chip": plain_file(d / "chip.tif")}


# Rows that must fail before tritonserver starts use a repository it could not load either: a check that
# slipped would end in tritonserver's own error, not a server that never stops.
CASES = [
    Case("repository-is-file", "serve --model-repository {file}", ("{file}", "is a file, not a model repository")),
    Case("repository-missing", "serve --model-repository {missing}", ("{missing}", "not found")),
    Case("log-file-under-file", "serve --model-repository {repo} --log-file {file}/log.txt", ("{file} is a file",)),
    Case("log-file-is-folder", "serve --model-repository {repo} --log-file {repo}",
         ("--log-file: {repo} is a folder",)),  # the library's log_file, which its message names, is the flag
    Case("http-port-above-65535", "serve --model-repository {garbled} --http-port 70000", ("--http-port", "65535")),
    Case("grpc-port-zero", "serve --model-repository {garbled} --grpc-port 0", ("--grpc-port",)),
    Case("metrics-port-negative", "serve --model-repository {garbled} --metrics-port -5", ("--metrics-port",)),
    Case("poll-zero", "serve --model-repository {garbled} --poll 0", ("--poll: 0 is not a number of seconds >= 1",)),
    Case("startup-timeout-negative", "serve --model-repository {garbled} --startup-timeout -1",
         ("--startup-timeout", "> 0")),
    Case("log-verbose-negative", "serve --model-repository {garbled} --log-verbose -1", ("--log-verbose",)),
    Case("ports-equal", "serve --model-repository {garbled} --http-port 18030 --grpc-port 18030",
         ("--http-port, --grpc-port: both 18030",)),
    Case("host-malformed", "serve --model-repository {garbled} --host 127.0.0..1", ("--host", "'127.0.0..1'")),
    Case("repository-empty", "serve --model-repository {repo}", ("{repo}: no model in it",)),
    Case("config-unparsable", "serve --model-repository {garbled}",
         ("{garbled}/flood/config.pbtxt", "not a valid Triton ModelConfig")),
    Case("config-names-no-backend", "serve --model-repository {nobackend}",
         ("{nobackend}/flood/config.pbtxt", "names no backend", "'python'")),
    Case("config-gpu-platform", "serve --model-repository {gpu}",
         ("{gpu}/flood/config.pbtxt", "platform 'onnxruntime_onnx'")),
    Case("config-missing", "serve --model-repository {noconfig}", ("{noconfig}/flood/config.pbtxt", "not found")),
    Case("model-without-version", "serve --model-repository {noversion}", ("{noversion}/flood", "no version folder")),
    # nothing listens on port 1: a check that slipped fails on the connection, naming no flag
    Case("client-retries-negative", "client {chip} -o {out} --url 127.0.0.1:1 --retries -1", ("--retries",)),
    Case("client-threshold-above-1", "client {chip} -o {out} --url 127.0.0.1:1 --threshold 2",
         ("--threshold: 2.0 must lie strictly between 0 and 1",)),
    Case("client-timeout-zero", "client {chip} -o {out} --url 127.0.0.1:1 --timeout 0", ("--timeout", "> 0")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)


@pytest.mark.parametrize("kwargs, field", [({"http_port": 70000}, "http_port: 70000"),
                                           ({"metrics_port": 0}, "metrics_port: 0"),
                                           ({"startup_timeout_s": -1.0}, "startup_timeout_s: -1.0")])
def test_server_arguments_are_checked(tmp_path, kwargs, field):
    from floodwatch.serving.server import TritonServer

    with pytest.raises(InvalidArgumentError, match=field):
        TritonServer(tmp_path, **kwargs)


def test_log_tail_skips_the_no_cuda_line(tmp_path):
    from floodwatch.serving.server import TritonServer

    log = tmp_path / "triton.log"
    log.write_text('I1201 model_lifecycle.cc:473] loading: flood:1\n'
                   'E1201 server.cc:241] "CudaDriverHelper has not been initialized."\n'
                   "E1201 model_lifecycle.cc:642] failed to load 'flood' version 1\n")
    tail = TritonServer(tmp_path, log_file=log).log_tail()
    assert tail == "E1201 model_lifecycle.cc:642] failed to load 'flood' version 1"


def test_log_tail_keeps_the_first_line_of_a_python_backend_error(tmp_path):
    """The Python backend logs its traceback inside one glog line with escaped newlines; the error that serve
    prints keeps what failed (the model file named) and drops the traceback."""
    from floodwatch.serving.server import TritonServer

    log = tmp_path / "triton.log"
    log.write_text('E1202 backend_model.cc:692] "ERROR: Failed to create instance: InvalidProtobuf: Load model '
                   'from /r/flood/1/model.onnx failed:Protobuf parsing failed.\\n\\nAt:\\n  /venv/onnxruntime/'
                   'capi/onnxruntime_inference_collection.py(753): _create_inference_session\\n"\n')
    tail = TritonServer(tmp_path, log_file=log).log_tail()
    assert tail.endswith("/r/flood/1/model.onnx failed:Protobuf parsing failed.")
    assert "At:" not in tail and "\\n" not in tail


def test_log_tail_of_a_server_logging_to_the_terminal_points_there(tmp_path):
    """`serve` without --log-file shows Triton's log on the terminal: a failed start said "(no log)" under it."""
    from floodwatch.serving.server import TritonServer

    assert TritonServer(tmp_path, echo=True).log_tail() == "(Triton's log is above)"
    assert TritonServer(tmp_path).log_tail() == "(no log)"


def test_port_in_use_is_refused_before_tritonserver_starts(files, run_cli, tmp_path):
    """tritonserver binds its ports only after loading the models, then exits; until then the readiness check
    reached the server already on the HTTP port and `serve` printed "Triton is ready"."""
    pytest.importorskip("pytriton")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        case = Case("http-port-in-use", f"serve --model-repository {{python}} --http-port {port} --grpc-port "
                    f"{free_port()} --metrics-port {free_port()} --startup-timeout 30",
                    ("--http-port", f"127.0.0.1:{port}", "in use"), absent=())
        check(case, files, run_cli, tmp_path)
