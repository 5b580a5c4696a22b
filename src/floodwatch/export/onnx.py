"""Checkpoint -> single-file ONNX with the pre-processing in its metadata, checked against torch.

The file is what Triton, ONNX Runtime, TensorRT and DeepStream read, so everything needed to feed it
(bands, clip, offsets, scale, class map) travels inside it under the metadata key `floodwatch` (JSON), with
a few flat `floodwatch.*` keys for people reading it in Netron. Beside it goes `<out>.nvinfer_config.txt`.

Exporter: torch 2.13 defaults to the dynamo (torch.export) exporter, which needs `onnxscript`; it gives a
clean single file with dynamic batch, height and width. Without onnxscript (older installs) the
TorchScript exporter is used; it makes the same graph with dynamic axes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..errors import ExportError
from ..io import atomic_path, dumps_json
from ..models.checkpoint import HARMONISE_KEY, harmonise_mode, load_model

METADATA_KEY = "floodwatch"
INPUT_NAME, OUTPUT_NAME = "input", "logits"
#: default parity tolerance on max |Δ logits|, relative to max(1, max |logits|)
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}
#: smallest fixed input height/width: the smallest tile `map --tile` cuts a scene into
MIN_SIZE = 8


def export_onnx(checkpoint: str | Path, out_path: str | Path, *, opset: int = 17, precision: str = "fp32",
                parity_inputs: np.ndarray | None = None, tolerance: float | None = None,
                height: int | None = None, width: int | None = None, exporter: str = "auto",
                nvinfer_config: bool = True, max_batch_size: int = 16) -> dict[str, Any]:
    """Export a floodwatch checkpoint; returns a report with the parity numbers.

    parity_inputs: (N, C, H, W) pre-processed chips (real data if you have it); else synthetic chips.
    height/width: fix that spatial dimension (None = dynamic); each is fixed or left dynamic on its own.
    max_batch_size: the DeepStream sidecar's batch size (nvinfer_config).
    Raises ExportError when parity fails; then nothing is written.
    """
    if precision not in TOLERANCE:
        raise ExportError(f"precision: '{precision}' is not one of {', '.join(TOLERANCE)} (int8: use quantize_int8)")
    if opset < 17:
        raise ExportError(f"opset: {opset} is too old; floodwatch exports opset >= 17")
    for name, size in (("height", height), ("width", width)):
        if size is not None and size < MIN_SIZE:
            raise ExportError(f"{name}: {size} is under {MIN_SIZE} px, the smallest tile floodwatch maps with "
                              "(None: dynamic)")
    model, meta = load_model(checkpoint)
    prep: Preprocessing = meta["preprocessing_obj"]
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise ExportError(f"{out_path}: output name must end in .onnx")
    exporter = _pick_exporter(exporter)
    example = torch.randn(2, prep.channels, height or 64, width or 64)
    dynamic = {0: "N", **({2: "H"} if height is None else {}), **({3: "W"} if width is None else {})}

    with atomic_path(out_path) as tmp:
        _torch_export(model, example, tmp, opset=opset, exporter=exporter, dynamic=dynamic)
        import onnx

        proto = onnx.load(str(tmp))
        if precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # keep_io_types: callers still send float32 chips and get float32 logits back.
            proto = convert_float_to_float16(proto, keep_io_types=True)
            topological_sort(proto.graph)  # the converter appends its input Casts at the end
        set_metadata(proto, metadata_for(meta, precision=precision))
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ExportError(f"{out_path}: exported graph is not valid ONNX ({str(exc).splitlines()[0]})") from None
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        inputs = parity_inputs if parity_inputs is not None else synthetic_inputs(prep, 4, height or 64, width or 64)
        parity = check_parity(model, tmp, inputs, tolerance=tolerance if tolerance is not None else TOLERANCE[precision],
                              label=out_path)
    report: dict[str, Any] = {"onnx": str(out_path), "opset": opset, "precision": precision, "exporter": exporter,
                              "dynamic": [{"N": "batch", "H": "height", "W": "width"}[d] for d in dynamic.values()],
                              "size_mb": round(out_path.stat().st_size / 2**20, 2),
                              "parity": {**parity, "inputs": "given" if parity_inputs is not None else "synthetic"}}
    if nvinfer_config:
        report["nvinfer_config"] = str(write_nvinfer_config(out_path, prep, meta.get("class_map"), precision,
                                                            height=height, width=width,
                                                            max_batch_size=max_batch_size))
    return report


def _pick_exporter(exporter: str) -> str:
    have_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if exporter == "auto":
        return "dynamo" if have_onnxscript else "torchscript"
    if exporter == "dynamo" and not have_onnxscript:
        raise ExportError("exporter: 'dynamo' needs the onnxscript package (pip install onnxscript)")
    if exporter not in ("dynamo", "torchscript"):
        raise ExportError(f"exporter: '{exporter}' is not one of auto, dynamo, torchscript")
    return exporter


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, *, opset: int, exporter: str,
                  dynamic: dict[int, str]) -> None:
    """dynamic: {axis: name} of the input (and output) axes left dynamic."""
    # Both exporters chatter on stdout, warnings and loggers; the report says what matters.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if exporter == "dynamo":
                shapes = {"x": {axis: torch.export.Dim.DYNAMIC for axis in dynamic}}
                torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                                  external_data=False, verbose=False)
            else:
                torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}, do_constant_folding=True)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export ({exporter}) failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def topological_sort(graph: Any) -> None:
    """Reorder nodes so each comes after the producers of its inputs (the ONNX checker requires it)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ExportError(f"graph has a cycle or a missing input at node '{rest[0].name}'")
        for n in done:
            ready.update(n.output)
        ordered += done
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


# -- metadata -------------------------------------------------------------------------------------------
def metadata_for(meta: dict[str, Any], *, precision: str) -> dict[str, Any]:
    """The `floodwatch` JSON: everything a consumer needs to feed the model and read its output."""
    return {"format": "floodwatch-onnx", "version": 1, "input": INPUT_NAME, "output": OUTPUT_NAME,
            "output_kind": "logits", "precision": precision, "preprocessing": dict(meta["preprocessing"]),
            "class_map": meta.get("class_map"), "model_config": dict(meta.get("model_config", {})),
            "epoch": meta.get("epoch"), "metrics": meta.get("metrics", {}),
            # an ONNX file carries no training spec: say whether its 8-bit data had per-scene maps (infer warns)
            **({HARMONISE_KEY: "scene"} if harmonise_mode(meta) == "scene" else {})}


def set_metadata(proto: Any, info: dict[str, Any]) -> None:
    prep = Preprocessing.from_dict(info["preprocessing"])
    readable = {METADATA_KEY: dumps_json(info, default=str),
                f"{METADATA_KEY}.bands": ",".join(prep.bands) + ("" if prep.derived == "none" else f",{prep.derived}"),
                f"{METADATA_KEY}.offsets": ";".join(f"{v:.6g}" for v in prep.offset),
                f"{METADATA_KEY}.scales": ";".join(f"{v:.9g}" for v in prep.scale),
                f"{METADATA_KEY}.clip_db": ";".join(f"{a:g}:{b:g}" for a, b in prep.clip),
                f"{METADATA_KEY}.classes": ",".join(c["name"] for c in info.get("class_map") or []),
                f"{METADATA_KEY}.precision": info["precision"]}
    if prep.anchor_db is not None:  # a consumer that misses it would feed absolute levels
        readable[f"{METADATA_KEY}.anchor"] = (f"p{prep.anchor_percentile:g}->"
                                              + ";".join(f"{v:g}" for v in prep.anchor_db))
    keep = [p for p in proto.metadata_props if not p.key.startswith(METADATA_KEY)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in readable.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "floodwatch"
    proto.doc_string = (f"floodwatch U-Net: input '{INPUT_NAME}' (N,{prep.channels},H,W) float32 = "
                        f"scale*(clip(dB)-offset); output '{OUTPUT_NAME}' (N,2,H,W), class 1 = water")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `floodwatch` JSON of an ONNX file (without loading its weights)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: ONNX file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    raw = {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
    if raw is None:
        raise ExportError(f"{path}: no '{METADATA_KEY}' metadata (not exported by floodwatch export)")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ExportError(f"{path}: metadata '{METADATA_KEY}' is not valid JSON") from None


def input_size(path: str | Path) -> tuple[int | None, int | None]:
    """(height, width) an ONNX file's input is fixed at; None for a dynamic dimension."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return (fixed[2], fixed[3]) if len(fixed) == 4 else (None, None)


def write_nvinfer_config(onnx_path: Path, prep: Preprocessing, class_map: list[dict] | None, precision: str,
                         *, height: int | None = None, width: int | None = None, max_batch_size: int = 16) -> Path:
    """DeepStream nvinfer [property] file for semantic segmentation (network-type=2)."""
    mode = {"fp32": 0, "int8": 1, "fp16": 2}[precision]
    # nvinfer colour formats are RGB/BGR (3 channels) or GRAY (1); 2-channel SAR needs nvdspreprocess.
    color = {3: "0", 1: "2"}.get(prep.channels)
    lines = ["[property]", "gpu-id=0", *prep.nvinfer_lines(),
             f"model-color-format={color}" if color else
             f"# model-color-format: nvinfer has no {prep.channels}-channel format; feed tensors via nvdspreprocess",
             f"onnx-file={onnx_path.name}",
             f"model-engine-file={onnx_path.stem}_b{max_batch_size}_gpu0_{precision}.engine",
             f"infer-dims={prep.channels};{height or 512};{width or 512}",
             f"batch-size={max_batch_size}", f"network-mode={mode}", "network-type=2",
             f"num-detected-classes={len(class_map or [0, 1])}", "segmentation-threshold=0.5",
             f"output-blob-names={OUTPUT_NAME}", "gie-unique-id=1", "output-tensor-meta=1"]
    if class_map:
        lines.append("# classes: " + ", ".join(f"{c['label_id']}={c['name']}" for c in class_map))
    path = onnx_path.with_name(onnx_path.name + ".nvinfer_config.txt")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


# -- parity -----------------------------------------------------------------------------------------------
def synthetic_inputs(prep: Preprocessing, n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Pre-processed synthetic SAR chips (realistic value ranges) when no real ones are given."""
    if list(prep.bands) == ["VV", "VH"] and height == width:
        from ..data.synthetic import synth_chips

        chips = synth_chips(n, size=height, seed=seed)
        return np.stack([prep.apply(c.image, c.valid) for c in chips])
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, prep.channels, height, width)).astype(np.float32)


def onnx_session(path: str | Path, providers: Iterable[str] | None = None, threads: int | None = None,
                 spinning: bool | None = None, memory_pattern: bool | None = None):
    """spinning: False stops idle intra-op threads from busy-waiting (ONNX Runtime's default spins), which
    leaves the CPU to the reader and writer threads of a pipeline. memory_pattern: False stops ONNX Runtime
    from pre-planning one block for all of a run's intermediate tensors per input shape (batches of 1 to 4
    tiles are different shapes); None keeps either default."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if memory_pattern is not None:
        opts.enable_mem_pattern = bool(memory_pattern)
    available = ort.get_available_providers()
    wanted = [p for p in (providers or ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                                        "CPUExecutionProvider")) if p in available]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=wanted or ["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None


def check_parity(model: torch.nn.Module, onnx_path: str | Path, inputs: np.ndarray, *, tolerance: float,
                 batch_size: int = 8, label: str | Path | None = None) -> dict[str, Any]:
    """max |Δ logits| and argmax-mask agreement of ONNX Runtime vs the torch model on the same inputs."""
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if inputs.ndim != 4:
        raise ExportError(f"parity inputs: expected (N, C, H, W), got shape {inputs.shape}")
    sess = onnx_session(onnx_path, providers=["CPUExecutionProvider"])
    max_abs, scale, agree, total = 0.0, 0.0, 0, 0
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size]
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float32)
        max_abs = max(max_abs, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        total += int(ref[:, 0].size)
    allowed = tolerance * max(1.0, scale)
    result = {"max_abs_diff": max_abs, "max_abs_logit": scale, "allowed": allowed,
              "mask_agreement": agree / max(total, 1), "chips": int(len(inputs))}
    if not np.isfinite(max_abs) or max_abs > allowed:
        raise ExportError(f"{label or onnx_path}: parity check failed: max |Δ logits| {max_abs:.3g} > {allowed:.3g} "
                          f"(mask agreement {result['mask_agreement']:.4f})")
    return result
