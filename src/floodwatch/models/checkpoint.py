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

        raise CheckpointError(f"{path}: not a floodwatch checkpoint ({load_failure(exc, path)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a floodwatch checkpoint (no '{FORMAT}' header)")
    return state


def checkpoint_or_none(path: str | Path | None) -> dict[str, Any] | None:
    """The floodwatch checkpoint at `path`, or None when `path` is empty, a URL or another kind of file
    (e.g. torchvision encoder weights), so callers can tell the two kinds of `pretrained` apart."""
    if not path or str(path).startswith(("http://", "https://")):
        return None
    try:
        return read_checkpoint(path)
    except CheckpointError:
        return None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint dict without the weights). The model is rebuilt from model_config."""
    state = read_checkpoint(path)
    missing = [k for k in ("model_config", "model_state", "preprocessing") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    try:
        model = model_from_config(state["model_config"])
        model.load_state_dict(state["model_state"])
        preprocessing = Preprocessing.from_dict(state["preprocessing"])
    except (TypeError, ValueError, RuntimeError, FloodwatchError) as exc:
        raise CheckpointError(f"{path}: model_config/weights/preprocessing do not fit "
                              f"({str(exc).splitlines()[0]})") from None
    meta = {k: v for k, v in state.items() if k != "model_state"}
    meta["preprocessing_obj"] = preprocessing
    return model.to(device).eval(), meta
