import numpy as np
import onnx
import pytest

from floodwatch.errors import ExportError
from floodwatch.export.onnx import read_metadata
from floodwatch.export.quantize import compare_models, convert_fp16, load_chips, quantize_int8
from floodwatch.inference.onnx import OnnxPredictor


def test_int8_agrees_with_fp32_and_reports_iou(tmp_path, fp32_onnx, prep, val_chips):
    fp32, _ = fp32_onnx
    calib = tmp_path / "calib.npz"  # calibration from a file, the way --calibration-data passes it
    from floodwatch.data.synthetic import synth_chips

    np.savez(calib, image=np.stack([c.image for c in synth_chips(16, 64, seed=11)]))
    out = tmp_path / "int8.onnx"
    report = quantize_int8(fp32, out, calib, validation=val_chips)
    v = report["validation"]
    assert report["calibration_chips"] == 16 and v["chips"] == len(val_chips)
    assert v["mask_agreement"] >= 0.99
    assert v["iou_fp32"] > 0.5  # the tiny trained net does find the synthetic water
    assert abs(v["iou_change_pt"]) < 2.0
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    init = {t.name: t for t in proto.graph.initializer}
    per_channel = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
                   and init[n.input[0]].data_type == onnx.TensorProto.INT8 and len(init[n.input[1]].dims) == 1]
    assert per_channel  # weights carry one scale per output channel
    assert read_metadata(out)["precision"] == "int8"
    assert OnnxPredictor(out).preprocessing == prep


def test_iou_numbers_match_a_numpy_reference(fp32_onnx, prep, val_chips):
    x, m = load_chips(val_chips, prep)
    report = compare_models(fp32_onnx[0], fp32_onnx[0], x, m)
    pred = OnnxPredictor(fp32_onnx[0]).predict(x) > 0.5
    keep = m != 255
    inter, union = (pred & (m == 1) & keep).sum(), ((pred | (m == 1)) & keep).sum()
    assert report["mask_agreement"] == 1.0 and report["iou_change_pt"] == 0.0
    assert np.isclose(report["iou_fp32"], inter / union)


def test_fp16_conversion_keeps_float32_io(tmp_path, fp32_onnx, prep, val_chips):
    out = convert_fp16(fp32_onnx[0], tmp_path / "half.onnx")
    x, _ = load_chips(val_chips[:4], prep)
    a, b = OnnxPredictor(fp32_onnx[0]).predict(x), OnnxPredictor(out).predict(x)
    assert b.dtype == np.float32 and ((a > 0.5) == (b > 0.5)).mean() >= 0.99


def test_calibration_chips_pick_bands_by_name():
    """A VH-only model must be calibrated on VH, whatever position VH has in the data."""
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.data.synthetic import synth_chips

    chips = synth_chips(3, size=32, seed=5)
    vh_only = Preprocessing(bands=["VH"], clip=[(-50.0, 5.0)], offset=[-20.0], scale=[0.2])
    x, _ = load_chips(chips, vh_only)
    import numpy as np

    expected = np.stack([vh_only.apply(c.image[1:2], c.valid) for c in chips])
    assert np.array_equal(x, expected)


def _db_chips(n: int = 4) -> np.ndarray:
    from floodwatch.data.synthetic import synth_chips

    return np.stack([np.nan_to_num(c.image, nan=-20.0) for c in synth_chips(n, size=32, seed=3)])


@pytest.mark.parametrize("kind, said", [("grey levels", "8-bit grey levels"),
                                        ("grey levels uint8", "8-bit grey levels"), ("linear power", "linear power")])
def test_calibration_arrays_that_are_not_db_are_refused(prep, kind, said):
    """Clipped to the model's dB range, 8-bit grey levels (1-255) or linear power (0.001-1) all sit at its top:
    every calibration chip the same constant, and the INT8 model's ranges say nothing about backscatter."""
    db = _db_chips()
    assert load_chips(db, prep)[0].shape == db.shape  # the same chips in dB are taken
    rng = np.random.default_rng(0)
    data = {"grey levels": rng.integers(1, 256, db.shape).astype(np.float32),
            "grey levels uint8": rng.integers(1, 256, db.shape).astype(np.uint8),
            "linear power": (10.0 ** (db / 10.0)).astype(np.float32)}[kind]
    with pytest.raises(ExportError, match=said) as err:
        load_chips(data, prep, what="the calibration chips")
    assert str(err.value).startswith("the calibration chips: ") and "\n" not in str(err.value)


def test_chips_missing_a_band_name_the_input(prep):
    """A data source whose chips lack a band the model needs: the error says which input (the command's
    --calibration-data or --validation-data), not only the chip, and is an ExportError as the others are."""
    from floodwatch.data.synthetic import synth_chips

    vv_only = []
    for c in synth_chips(2, size=32, seed=4):
        c.image, c.bands = c.image[:1], ("VV",)
        vv_only.append(c)
    with pytest.raises(ExportError, match=r"^validation chips: .*1 band") as err:
        load_chips(vv_only, prep, what="validation chips")
    assert "VH" in str(err.value)
