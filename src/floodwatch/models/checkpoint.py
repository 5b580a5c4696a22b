"""Checkpoints: one file carries the weights, the spec, the pre-processing and the class map.

Format (a plain dict, so `torch.load(..., weights_only=True)` reads it):
    {"format": "floodwatch-checkpoint", "version": 1,
     "model_state": state_dict, "model_config": {...build_model kwargs, temporal...},
     "preprocessing": Preprocessing.to_dict(), "class_map": [{"name", "label_id", "mapping_class"}...],
     "spec": full spec dict or {}, "epoch": int, "metrics": {...},
     "optimizer_state": ... (optional), "scheduler_state": ... (optional), "rng_state": ... (optional)}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocess import Preprocessing
from ..errors import CheckpointError, FloodwatchError
from ..io import atomic_path, require_file
from .build import model_from_config

FORMAT = "floodwatch-checkpoint"

DEFAULT_CLASS_MAP = [{"name": "notflood", "label_id": 0, "mapping_class": "notflood"},
                     {"name": "flood", "label_id": 1, "mapping_class": "flood"}]


def save_checkpoint(path: str | Path, model: nn.Module, *, model_config: dict[str, Any],
                    preprocessing: Preprocessing, class_map: list[dict] | None = None,
                    spec: dict[str, Any] | None = None, epoch: int = 0, metrics: dict[str, Any] | None = None,
                    **extra: Any) -> Path:
    """Write atomically; `extra` may hold optimizer_state, scheduler_state, rng_state, step, ..."""
    model = getattr(model, "module", model)  # unwrap DDP
    state = {"format": FORMAT, "version": 1,
             "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "model_config": dict(model_config), "preprocessing": preprocessing.to_dict(),
             "class_map": class_map or DEFAULT_CLASS_MAP, "spec": spec or {}, "epoch": int(epoch),
             "metrics": metrics or {}, **extra}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = require_file(path, "checkpoint", error=CheckpointError)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        from .weights import load_failure

        check_not_onnx(path)
        raise CheckpointError(f"{path}: not a floodwatch checkpoint ({load_failure(exc, path)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a floodwatch checkpoint (no '{FORMAT}' header)")
    return state


def checkpoint_or_none(path: str | Path | None) -> dict[str, Any] | None:
    """The floodwatch checkpoint at `path`, or None when `path` is empty, a URL or another kind of file
    (e.g. torchvision encoder weights), so callers can tell the two kinds of `pretrained` apart. An ONNX file is
    neither kind: refused (`check_not_onnx`), not left to be read as encoder weights."""
    if not path or str(path).startswith(("http://", "https://")):
        return None
    try:
        return read_checkpoint(path)
    except CheckpointError:
        check_not_onnx(path)
        return None


def _head(path: str | Path, size: int = 4) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def is_torch_file(path: str | Path) -> bool:
    """Whether `path` holds what torch.save writes, by content: a zip holding a data.pkl, or a legacy pickle."""
    import zipfile

    head = _head(path)
    if head[:1] == b"\x80":  # a pickle's PROTO opcode
        return True
    if head[:2] != b"PK":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("data.pkl") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def is_onnx_file(path: str | Path) -> bool:
    """Whether `path` holds an ONNX model, by content (a ModelProto with a graph), whatever its name."""
    head = _head(path)
    if not head or head[:2] == b"PK" or head[:1] == b"\x80":  # torch's zip or pickle: not worth parsing
        return False
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # a protobuf decode error, or anything else: not an ONNX model
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def check_not_onnx(path: str | Path) -> None:
    """A CheckpointError in one line where a torch checkpoint was expected and `path` is an ONNX file (an
    exported model runs on ONNX Runtime and cannot be trained on or loaded by torch)."""
    if is_onnx_file(path):
        raise CheckpointError(f"{path}: is an ONNX file, not a torch checkpoint (.pt); give the checkpoint it was "
                              "exported from (an ONNX file runs on backend 'onnx')")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint dict without the weights). The model is rebuilt from model_config."""
    state = read_checkpoint(path)
    missing = [k for k in ("model_config", "model_state", "preprocessing") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    try:
        model = model_from_config(state["model_config"])
        mismatch = state_mismatch(model, state["model_state"])
        if mismatch:  # torch's message starts "Error(s) in loading state_dict for UNet:", the cause lines below
            raise ValueError(mismatch)
        model.load_state_dict(state["model_state"])
        preprocessing = Preprocessing.from_dict(state["preprocessing"])
    except (TypeError, ValueError, RuntimeError, FloodwatchError) as exc:
        raise CheckpointError(f"{path}: model_config/weights/preprocessing do not fit "
                              f"({str(exc).splitlines()[0]})") from None
    meta = {k: v for k, v in state.items() if k != "model_state"}
    meta["preprocessing_obj"] = preprocessing
    return model.to(device).eval(), meta


def state_mismatch(model: nn.Module, weights: Any) -> str | None:
    """The first way `weights` (a state_dict) does not fit `model`, in words; None where they fit."""
    if not isinstance(weights, dict):
        return f"model_state is a {type(weights).__name__}, not a state_dict"
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            return f"model_state lacks '{key}' ({len(expected) - len(set(expected) & set(weights))} missing)"
        given = getattr(weights[key], "shape", None)
        if given is None:
            return f"model_state '{key}' is a {type(weights[key]).__name__}, not a tensor"
        if tuple(given) != tuple(tensor.shape):
            return (f"model_state '{key}' is {tuple(given)}, the network model_config builds has "
                    f"{tuple(tensor.shape)} there")
    extra = [k for k in weights if k not in expected]
    if extra:
        return f"model_state has '{extra[0]}', which the network model_config builds has not ({len(extra)} such)"
    return None


#: the key of a checkpoint's (or an ONNX file's) meta that says how its 8-bit training data were put into dB
HARMONISE_KEY = "harmonise"


def harmonise_mode(meta: dict[str, Any]) -> str | None:
    """'scene' when the model of `meta` (a checkpoint's, or an ONNX file's `floodwatch` JSON) was trained on
    8-bit data put into dB by per-scene maps: its HARMONISE_KEY, else its training spec's sources; None when
    neither says so."""
    if meta.get(HARMONISE_KEY) is not None:
        return meta[HARMONISE_KEY]
    sources = ((meta.get("spec") or {}).get("dataset_config") or {}).get("sources") or []
    return "scene" if any(((s or {}).get("options") or {}).get("harmonise") == "scene" for s in sources) else None
