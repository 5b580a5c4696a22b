"""INT8 (ONNX Runtime static quantisation, QDQ) and FP16 variants of an exported ONNX model.

INT8 follows ONNX Runtime's recipe: `quant_pre_process` (shape inference + graph optimisation), then
`quantize_static` in QDQ format with per-channel weights, calibrated on real chips run through the
model's own Preprocessing. A validation pass reports how much water IoU the INT8 model gives up.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..data.preprocess import Preprocessing
from ..data.sample import IGNORE_INDEX
from ..errors import DataError, ExportError
from ..io import atomic_path
from .onnx import INPUT_NAME, input_size, onnx_session, read_metadata, set_metadata, topological_sort

ChipSource = "str | Path | np.ndarray | Sequence[Sample]"

#: Fewer valid (finite, not nodata) pixels than this fraction of the chips refuse calibration: the rest are
#: `fill`, so the activation ranges (and entropy/percentile histograms) would describe the fill value rather
#: than backscatter, and an INT8 model calibrated that way can lose the water/land contrast unnoticed.
MIN_VALID_FRACTION = 0.01


def load_chips(source: Any, prep: Preprocessing, *, limit: int | None = None,
               what: str = "calibration/validation data") -> tuple[np.ndarray, np.ndarray | None]:
    """(N,C,H,W) pre-processed chips and (N,H,W) masks (or None) from a dataset folder, a .npy/.npz of
    dB images (N,bands,H,W) [with 'mask' in the .npz], an array of dB images, or a list of Samples.
    `what` names the data in errors (after the file's name, if it is one)."""
    masks = None
    where = what
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = f"{path} ({what})"
        if not path.exists():
            raise ExportError(f"{where}: not found")
        if path.suffix in (".npy", ".npz"):
            try:
                data = np.load(path)
                images = data if isinstance(data, np.ndarray) else data["image"]
                masks = None if isinstance(data, np.ndarray) or "mask" not in data else data["mask"]
            except KeyError:
                raise ExportError(f"{where}: the .npz has no 'image' array (dB images (N, bands, H, W))") from None
            except (OSError, ValueError, EOFError) as exc:
                raise ExportError(f"{where}: not a readable {path.suffix} file ({str(exc).splitlines()[0]})") from None
            return _from_array(images, masks, prep, limit, where)
        if not path.is_dir():
            raise ExportError(f"{where}: expected a data set folder or a .npy/.npz of dB images (N, bands, H, W)")
        try:
            from ..data import open_dataset
        except ImportError:
            raise ExportError(f"{path}: reading a dataset folder needs floodwatch.data.open_dataset") from None
        try:
            source = open_dataset(path)
        except DataError as exc:  # its message names the folder, not which of the command's inputs it is
            raise ExportError(f"{where}: {str(exc).removeprefix(f'{path}: ')}") from None
    if isinstance(source, np.ndarray):
        return _from_array(source, None, prep, limit, where)
    from ..data.preprocess import network_input  # bands picked by name, as everywhere else

    samples = []
    try:  # a reader's or the band check's message names a chip, not which of the command's inputs it is in
        for i, s in enumerate(source):
            if limit is not None and i >= limit:
                break
            samples.append(s)
        if not samples:
            raise ExportError(f"{where}: no chips")
        shapes = {s.shape for s in samples}
        if len(shapes) > 1:
            raise ExportError(f"{where}: chips differ in size {sorted(shapes)[:3]}")
        _check_valid(np.stack([s.valid & np.isfinite(s.image).all(0) for s in samples]), where)
        x = np.stack([network_input(s, prep) for s in samples])
    except DataError as exc:
        raise ExportError(f"{where}: {exc}") from None
    if all(s.mask is not None for s in samples):
        masks = np.stack([np.where(s.valid, s.mask, IGNORE_INDEX) for s in samples])
    return x, masks

def _from_array(images: np.ndarray, masks: np.ndarray | None, prep: Preprocessing, limit: int | None,
                where: str) -> tuple[np.ndarray, np.ndarray | None]:
    bands = len(prep.bands)
    if images.ndim != 4 or images.shape[1] != bands or not np.issubdtype(images.dtype, np.number):
        raise ExportError(f"{where}: expected dB images of shape (N, C, H, W) with the model's C = {bands} "
                          f"({', '.join(prep.bands)}); got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ExportError(f"{where}: no chips (shape {images.shape})")
    images = images[:limit]
    from ..data.files import missing_db

    # exactly 0.0 dB is no data too, as infer and map read it: an all-zero array must not calibrate
    valid = ~missing_db(images).any(1)
    _check_valid(valid, where)
    _check_db(images, valid, where)
    return prep.apply(images, valid), None if masks is None else masks[:limit]


def _check_db(images: np.ndarray, valid: np.ndarray, where: str) -> None:
    """Refuse arrays that are not dB (floodwatch.units): clipped to the model's dB range, 8-bit grey levels or
    linear power all saturate at the top of it, so the INT8 ranges would be calibrated on a constant."""
    from ..units import looks_db, looks_linear

    ok = np.broadcast_to(valid[:, None], images.shape)
    if looks_linear(images, ok):
        raise ExportError(f"{where}: most values lie between 0 and 2, where backscatter in dB almost never is; "
                          "they look like linear power (convert them to dB, 10 * log10(power), first)")
    if not looks_db(images, ok):
        median = float(np.median(images[ok]))
        raise ExportError(f"{where}: most values are above -1 (median {median:g}), where backscatter in dB almost "
                          "never is; they look like 8-bit grey levels, not dB (give the data set folder, whose "
                          "reader maps 8-bit pictures to dB, or convert them to dB first)")

def _check_valid(valid: np.ndarray, where: str) -> None:
    n = int(valid.sum())
    if n == 0:
        raise ExportError(f"{where}: no valid pixel (all NaN, nodata or exactly 0.0 dB)")
    if n < MIN_VALID_FRACTION * valid.size:
        raise ExportError(f"{where}: only {n} valid pixels of {valid.size} (finite, not nodata or 0.0 dB); "
                          f"at least {MIN_VALID_FRACTION:.0%} must be valid")

class ChipReader:
    """onnxruntime.quantization.CalibrationDataReader over pre-processed chips, a few at a time."""

    def __init__(self, chips: np.ndarray, batch_size: int = 4):
        self.chips, self.batch_size, self.pos = chips, batch_size, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.chips):
            return None
        x = np.ascontiguousarray(self.chips[self.pos:self.pos + self.batch_size], dtype=np.float32)
        self.pos += self.batch_size
        return {INPUT_NAME: x}

    def rewind(self) -> None:
        self.pos = 0

@contextlib.contextmanager
def _working_directory(path: str | Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def quantize_int8(onnx_fp32: str | Path, out_path: str | Path, calibration: Any, *, validation: Any = None,
                  max_calibration: int = 64, per_channel: bool = True, method: str = "minmax",
                  labels: tuple[str, str] = ("calibration data", "validation data")) -> dict[str, Any]:
    """Write an INT8 QDQ copy of an fp32 floodwatch ONNX file; report IoU (fp32 vs int8) and mask agreement.

    calibration / validation: see `load_chips`. Without validation data the agreement is measured on the
    calibration chips (then no IoU against labels unless they carry masks). labels: how errors name the two.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # absolute: the pre-processing step below runs in another working directory
    onnx_fp32, out_path = Path(onnx_fp32).resolve(), Path(out_path)
    meta = read_metadata(onnx_fp32)
    if meta.get("precision", "fp32") != "fp32":
        raise ExportError(f"{onnx_fp32}: INT8 quantisation needs the fp32 export, this one is {meta['precision']}")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ExportError(f"calibration method: '{method}' is not one of {', '.join(methods)}")
    prep = Preprocessing.from_dict(meta["preprocessing"])
    calib, calib_masks = load_chips(calibration, prep, limit=max_calibration, what=labels[0])
    # read before the INT8 file is written: bad validation data must leave no model behind
    val, val_masks = (calib, calib_masks) if validation is None else load_chips(validation, prep,
                                                                                what=labels[1])
    fixed = input_size(onnx_fp32)
    for source, label, chips in ((calibration, labels[0], calib), (validation, labels[1], val)):
        if any(f is not None and f != n for f, n in zip(fixed, chips.shape[2:])):
            where = f"{source} ({label})" if isinstance(source, (str, Path)) else label
            size = "x".join("any" if f is None else str(f) for f in fixed)
            raise ExportError(f"{where}: chips of {chips.shape[2]}x{chips.shape[3]} px do not fit the model's "
                              f"input, fixed at {size} (height x width)")
    with tempfile.TemporaryDirectory(dir=out_path.parent if out_path.parent.exists() else None) as tmpdir:
        tmpdir = str(Path(tmpdir).resolve())
        pre = Path(tmpdir) / "pre.onnx"
        # ORT's symbolic shape inference drops scratch files into the working directory: keep them in tmpdir.
        with _quiet(), _working_directory(tmpdir):
            try:
                quant_pre_process(str(onnx_fp32), str(pre), skip_symbolic_shape=False)
            except Exception:  # symbolic shape inference can fail on exotic graphs; ORT's own fallback
                quant_pre_process(str(onnx_fp32), str(pre), skip_symbolic_shape=True)
        with atomic_path(out_path) as tmp:
            with _quiet():
                quantize_static(str(pre), str(tmp), ChipReader(calib), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=methods[method])
            import onnx

            proto = onnx.load(str(tmp))
            set_metadata(proto, {**meta, "precision": "int8"})
            onnx.save_model(proto, str(tmp))
    report = {"onnx": str(out_path), "precision": "int8", "calibration_chips": int(len(calib)),
              "method": method, "per_channel": per_channel,
              "size_mb": round(out_path.stat().st_size / 2**20, 2),
              "validation": compare_models(onnx_fp32, out_path, val, val_masks)}
    return report

def convert_fp16(onnx_fp32: str | Path, out_path: str | Path) -> Path:
    """FP16 weights and activations with float32 input/output (for GPUs: TensorRT, CUDA EP)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    meta = read_metadata(onnx_fp32)
    proto = convert_float_to_float16(onnx.load(str(onnx_fp32)), keep_io_types=True)
    topological_sort(proto.graph)
    set_metadata(proto, {**meta, "precision": "fp16"})
    with atomic_path(out_path) as tmp:
        onnx.save_model(proto, str(tmp))
    return Path(out_path)

def compare_models(reference: str | Path, candidate: str | Path, chips: np.ndarray, masks: np.ndarray | None,
                   batch_size: int = 8) -> dict[str, Any]:
    """Mask agreement of two ONNX models and, where labels exist, each one's water IoU and the change."""
    ref_sess, cand_sess = onnx_session(reference, ["CPUExecutionProvider"]), onnx_session(candidate, ["CPUExecutionProvider"])
    agree = total = 0
    counts = {"reference": np.zeros(3, np.int64), "candidate": np.zeros(3, np.int64)}  # tp, fp, fn
    for i in range(0, len(chips), batch_size):
        x = np.ascontiguousarray(chips[i:i + batch_size], dtype=np.float32)
        a = ref_sess.run(None, {INPUT_NAME: x})[0].argmax(1)
        b = cand_sess.run(None, {INPUT_NAME: x})[0].argmax(1)
        agree += int((a == b).sum())
        total += a.size
        if masks is not None:
            m = masks[i:i + batch_size]
            for key, pred in (("reference", a), ("candidate", b)):
                keep = m != IGNORE_INDEX
                p, t = pred[keep] == 1, m[keep] == 1
                counts[key] += [int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())]
    out: dict[str, Any] = {"chips": int(len(chips)), "mask_agreement": agree / max(total, 1)}
    if masks is not None:
        iou = {k: float(c[0] / max(c.sum(), 1)) for k, c in counts.items()}
        out.update(iou_fp32=iou["reference"], iou_candidate=iou["candidate"],
                   iou_change_pt=100.0 * (iou["candidate"] - iou["reference"]))
    return out

@contextlib.contextmanager
def _quiet():
    # ORT's quantiser logs every node at INFO and prints progress; keep the CLI output to the report.
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.getLogger().setLevel(level)
