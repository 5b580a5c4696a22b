import numpy as np
import onnx
import pytest
import torch

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import CheckpointError, DataError, ExportError
from floodwatch.export.onnx import export_onnx, read_metadata
from floodwatch.inference.onnx import OnnxPredictor
from floodwatch.inference.predictor import TorchPredictor, load_predictor
from floodwatch.models.checkpoint import load_model


@pytest.mark.slow  # the dynamo exporter takes ~10 s of CPU for ResNet-10
def test_default_exporter_matches_torch_at_batch_1_and_5_and_any_size(tmp_path, trained_ckpt, make_chips):
    out = tmp_path / "default.onnx"
    report = export_onnx(trained_ckpt, out)  # dynamo when onnxscript is installed, as torch 2.13 wants
    proto = onnx.load(str(out))
    assert not list(tmp_path.glob("*.data")) and report["parity"]["max_abs_diff"] <= report["parity"]["allowed"]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    model, _ = load_model(trained_ckpt)
    predictor = OnnxPredictor(out)
    x, _ = make_chips(5, 3)
    for batch in (x[:1], x, x[:2, :, :48, :40]):  # batch 1, batch 5, a smaller non-square chip
        with torch.no_grad():
            ref = model(torch.from_numpy(batch)).numpy()
        got = predictor.logits(batch)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-3 * max(1.0, np.abs(ref).max()))
        assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999


def test_metadata_round_trips_preprocessing_and_sidecar(fp32_onnx, trained_ckpt):
    path, report = fp32_onnx
    _, meta = load_model(trained_ckpt)
    predictor = load_predictor(path)
    assert isinstance(predictor, OnnxPredictor)
    assert predictor.preprocessing == meta["preprocessing_obj"] == Preprocessing()
    info = read_metadata(path)
    assert info["class_map"] == meta["class_map"] and info["model_config"]["num_layers"] == 10
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert props["floodwatch.offsets"] == "-12;-19" and props["floodwatch.bands"] == "VV,VH"
    sidecar = (path.parent / (path.name + ".nvinfer_config.txt")).read_text().splitlines()
    for line in ("network-type=2", "offsets=-12;-19", "net-scale-factor=0.2", "num-detected-classes=2",
                 "output-blob-names=logits", "network-mode=0"):
        assert line in sidecar
    assert report["parity"]["chips"] == 4 and report["parity"]["inputs"] == "synthetic"


def test_onnx_and_torch_predictors_agree(fp32_onnx, trained_ckpt, make_chips):
    x, _ = make_chips(5, 4)
    p_onnx, p_torch = OnnxPredictor(fp32_onnx[0], threads=1), TorchPredictor(trained_ckpt, device="cpu")
    a, b = p_onnx.predict(x), p_torch.predict(x)
    assert a.shape == (5, 64, 64) and np.abs(a - b).max() < 1e-4
    with pytest.raises(DataError, match=r"shape \(N, 2, H, W\)"):  # the torch back-end's class and words
        p_onnx.predict(x[:, :1])


def test_fp16_export_agrees_and_failed_parity_writes_nothing(tmp_path, trained_ckpt, make_chips):
    x, _ = make_chips(4, 5)
    out = tmp_path / "half.onnx"
    report = export_onnx(trained_ckpt, out, precision="fp16", parity_inputs=x, exporter="torchscript")
    assert report["parity"]["inputs"] == "given" and report["parity"]["mask_agreement"] >= 0.99
    assert read_metadata(out)["precision"] == "fp16"
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(out)).graph.initializer)
    strict = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match="parity check failed"):
        export_onnx(trained_ckpt, strict, precision="fp16", parity_inputs=x, tolerance=1e-9, exporter="torchscript")
    assert not strict.exists() and not list(tmp_path.glob(".*part*"))


def test_bad_inputs_raise_one_line_errors(tmp_path, trained_ckpt):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        export_onnx(junk, tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="must end in .onnx"):
        export_onnx(trained_ckpt, tmp_path / "a.bin")
    with pytest.raises(ExportError, match="precision"):
        export_onnx(trained_ckpt, tmp_path / "a.onnx", precision="int4")
    with pytest.raises(ExportError, match="no 'floodwatch' metadata|not a readable"):
        read_metadata(junk)


def test_an_anchored_models_onnx_file_carries_the_anchor(tmp_path):
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    config = {"num_layers": 10, "in_channels": 2}
    torch.manual_seed(0)
    prep = Preprocessing(anchor_percentile=80.0, anchor_db=[-9.0, -16.0])
    ckpt = save_checkpoint(tmp_path / "anchored.pt", build_model(**config).eval(), model_config=config,
                           preprocessing=prep, epoch=1)
    out = tmp_path / "anchored.onnx"
    export_onnx(ckpt, out, exporter="torchscript")
    assert OnnxPredictor(out).preprocessing == prep
    props = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert props["floodwatch.anchor"] == "p80->-9;-16"
    sidecar = (out.parent / (out.name + ".nvinfer_config.txt")).read_text()
    assert "floodwatch-anchor: each chip's p80" in sidecar
