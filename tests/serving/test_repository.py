"""Model repository layout and config.pbtxt, parsed back against Triton's own ModelConfig message."""
from __future__ import annotations

import json

import numpy as np
import pytest

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import ServingError
from floodwatch.serving.repository import (CLASS_MAP_KEY, PREPROCESSING_KEY, add_model_version, check_repository,
                                          existing_versions, read_config, version_key, write_config)

from .conftest import export_onnx

#: what a model retrained on more data gets: other offsets and scales than conftest's PREPROCESSING
RETRAINED = Preprocessing(offset=[-12.0, -20.0], scale=[0.2, 0.35])

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")


def test_cpu_variant_layout_and_config(tmp_path, onnx_models):
    v1 = add_model_version(tmp_path, "flood", onnx_models[0], max_batch_size=8, preferred_batch_sizes=[4, 8],
                           max_queue_delay_us=500, instance_count=2)
    assert v1 == tmp_path / "flood" / "1"
    assert sorted(p.name for p in v1.iterdir()) == ["model.onnx", "model.py"]
    assert v1.joinpath("model.onnx").read_bytes() == onnx_models[0].read_bytes()
    cfg = read_config(tmp_path / "flood" / "config.pbtxt")
    assert isinstance(cfg, pb.ModelConfig)
    assert (cfg.name, cfg.backend, cfg.platform, cfg.max_batch_size) == ("flood", "python", "", 8)
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("input", pb.TYPE_FP32, [2, -1, -1])]
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [("logits", pb.TYPE_FP32, [2, -1, -1])]
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(pb.ModelInstanceGroup.KIND_CPU, 2)]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.version_policy.latest.num_versions == 1
    # no preprocessing passed: it came from the ONNX file's floodwatch metadata
    pre = Preprocessing.from_dict(json.loads(cfg.parameters[PREPROCESSING_KEY].string_value))
    assert pre.offset == [-10.0, -17.0] and pre.scale == [0.25, 0.3]


def test_new_export_adds_next_version_and_policies(tmp_path, onnx_models):
    add_model_version(tmp_path, "m", onnx_models[0])
    v2 = add_model_version(tmp_path, "m", onnx_models[1], version_policy="all")
    assert v2.name == "2" and existing_versions(tmp_path / "m") == [1, 2]
    assert read_config(tmp_path / "m" / "config.pbtxt").version_policy.WhichOneof("policy_choice") == "all"
    add_model_version(tmp_path, "m", onnx_models[1], version_policy=[1, 3])
    cfg = read_config(tmp_path / "m" / "config.pbtxt")
    assert list(cfg.version_policy.specific.versions) == [1, 3]
    assert not any(p.name.startswith(".") for p in (tmp_path / "m").iterdir())  # no half-written leftovers


def _pre(cfg, key):
    return Preprocessing.from_dict(json.loads(cfg.parameters[key].string_value)).to_dict()


def test_each_version_keeps_its_own_preprocessing(tmp_path, onnx_models):
    from .conftest import PREPROCESSING

    retrained = export_onnx(tmp_path / "retrained.onnx", 2, RETRAINED)
    add_model_version(tmp_path, "m", onnx_models[0])
    add_model_version(tmp_path, "m", retrained, version_policy="all")
    cfg = read_config(tmp_path / "m" / "config.pbtxt")
    assert _pre(cfg, version_key(PREPROCESSING_KEY, 1)) == PREPROCESSING.to_dict()
    assert _pre(cfg, version_key(PREPROCESSING_KEY, 2)) == RETRAINED.to_dict()
    assert _pre(cfg, PREPROCESSING_KEY) == RETRAINED.to_dict()  # the newest, for clients before numbered keys
    assert json.loads(cfg.parameters[version_key(CLASS_MAP_KEY, 1)].string_value)[1]["name"] == "flood"
    # a repository written before the keys were numbered: version 2's is the unnumbered one, version 1's comes
    # from its ONNX metadata
    for key in [k for k in cfg.parameters if k.startswith(version_key(PREPROCESSING_KEY, ""))
                or k.startswith(version_key(CLASS_MAP_KEY, ""))]:
        del cfg.parameters[key]
    write_config(tmp_path / "m", cfg)
    add_model_version(tmp_path, "m", onnx_models[1], version_policy="all")
    cfg = read_config(tmp_path / "m" / "config.pbtxt")
    assert [_pre(cfg, version_key(PREPROCESSING_KEY, v)) for v in (1, 2, 3)] == [
        PREPROCESSING.to_dict(), RETRAINED.to_dict(), PREPROCESSING.to_dict()]


def test_gpu_variant_uses_onnxruntime_platform(tmp_path, onnx_models):
    v = add_model_version(tmp_path, "g", onnx_models[0], kind="gpu", dynamic_batching=False,
                          preprocessing=Preprocessing())
    assert sorted(p.name for p in v.iterdir()) == ["model.onnx"]
    cfg = read_config(tmp_path / "g" / "config.pbtxt")
    assert (cfg.platform, cfg.backend) == ("onnxruntime_onnx", "")
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert not cfg.HasField("dynamic_batching")
    with pytest.raises(ServingError, match="served by onnxruntime_onnx"):
        add_model_version(tmp_path, "g", onnx_models[0], kind="cpu")


def test_check_repository_takes_what_the_local_server_runs(tmp_path, onnx_models):
    add_model_version(tmp_path / "cpu", "flood", onnx_models[0])
    add_model_version(tmp_path / "cpu", "flood_b", onnx_models[1])
    assert check_repository(tmp_path / "cpu") == ["flood", "flood_b"]
    add_model_version(tmp_path / "gpu", "g", onnx_models[0], kind="gpu")
    with pytest.raises(ServingError, match=r"g/config.pbtxt: names platform 'onnxruntime_onnx'"):
        check_repository(tmp_path / "gpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServingError, match="no model in it"):
        check_repository(tmp_path / "empty")
    assert check_repository(tmp_path / "empty", allow_empty=True) == []  # `serve --poll`: models come later


def test_tensorrt_plan_needs_gpu(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"not really a plan")
    with pytest.raises(ServingError, match="needs kind='gpu'"):
        add_model_version(tmp_path / "repo", "t", plan, preprocessing=Preprocessing())
    add_model_version(tmp_path / "repo", "t", plan, kind="gpu", preprocessing=Preprocessing())
    cfg = read_config(tmp_path / "repo" / "t" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and list(cfg.input[0].dims) == [2, -1, -1]
    assert (tmp_path / "repo" / "t" / "1" / "model.plan").is_file()


def test_bad_inputs_raise_clear_errors(tmp_path, onnx_models):
    with pytest.raises(ServingError, match="missing.onnx: model file not found"):
        add_model_version(tmp_path, "m", tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ServingError, match="junk.onnx: not a readable ONNX file"):
        add_model_version(tmp_path, "m", junk)
    with pytest.raises(ServingError, match="version_policy"):
        add_model_version(tmp_path, "m", onnx_models[0], version_policy="newest")
    with pytest.raises(ServingError, match="takes 2 channels but the pre-processing makes 3"):
        add_model_version(tmp_path, "m", onnx_models[0], preprocessing=Preprocessing(
            derived="diff", offset=[0, 0, 0], scale=[1, 1, 1]))
    with pytest.raises(ServingError, match="preferred_batch_sizes"):
        add_model_version(tmp_path, "m", onnx_models[0], max_batch_size=4, preferred_batch_sizes=[8])
    assert not (tmp_path / "m").exists() or existing_versions(tmp_path / "m") == []
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "x"\nmax_batch_sise: 4\n')
    with pytest.raises(ServingError, match="config.pbtxt: not a valid Triton ModelConfig"):
        read_config(bad)


def test_onnx_without_metadata_needs_preprocessing(tmp_path, onnx_models):
    import onnx

    proto = onnx.load(str(onnx_models[0]))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ServingError, match="no pre-processing given"):
        add_model_version(tmp_path / "repo", "m", plain)
    add_model_version(tmp_path / "repo", "m", plain, preprocessing=Preprocessing())



def test_floodwatch_export_output_is_accepted(tmp_path):
    """The export engineer's ONNX (metadata key `floodwatch`) feeds the repository without extra arguments."""
    export = pytest.importorskip("floodwatch.export.onnx")
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    pre = Preprocessing(offset=[-9.0, -16.0], scale=[0.5, 0.5])
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model(num_layers=10, in_channels=2),
                           model_config={"num_layers": 10, "in_channels": 2}, preprocessing=pre)
    onnx_path = tmp_path / "m.onnx"
    export.export_onnx(ckpt, onnx_path, parity_inputs=np.zeros((1, 2, 32, 32), np.float32), nvinfer_config=False,
                       exporter="torchscript")  # the dynamo exporter takes a minute on two shared cores
    add_model_version(tmp_path / "repo", "flood", onnx_path)
    cfg = read_config(tmp_path / "repo" / "flood" / "config.pbtxt")
    assert json.loads(cfg.parameters[PREPROCESSING_KEY].string_value) == pre.to_dict()
