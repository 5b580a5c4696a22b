"""Loading encoder weights from torchvision-format ImageNet checkpoints (file or URL)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import require_file


def read_state_dict(source: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file or an http(s) URL (downloaded into torch's hub cache)."""
    src = str(source)
    try:
        if src.startswith(("http://", "https://")):
            obj = torch.hub.load_state_dict_from_url(src, map_location="cpu", weights_only=True, progress=True)
        else:
            require_file(src, "weights file", error=CheckpointError)
            obj = torch.load(src, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # pickle errors, truncated zip, network errors: one line for the user
        raise CheckpointError(f"{src}: not a readable torch weights file ({load_failure(exc, src)})") from None
    for key in ("state_dict", "model_state", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{src}: does not hold a state dict of tensors")
    return obj


def load_failure(exc: BaseException, path: str | Path | None = None) -> str:
    """Why torch.load failed, in a few words. Safe loading's own message runs to several lines and
    advises weights_only=False, i.e. running the file's code: floodwatch never does, nor suggests it."""
    if path is not None and Path(path).is_file():
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:2] != b"PK" and head[:1] != b"\x80":  # neither torch's zip format nor a legacy pickle
            return "not a torch file"
    text = str(exc)
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds Python objects besides tensors, which safe loading refuses to run"
    if "zip archive" in text:
        return "truncated or corrupt file"
    if isinstance(exc, (KeyError, EOFError)) or "load key" in text:
        return "not a torch file"
    first = text.strip().splitlines()[0][:160] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB conv1 weights (O,3,k,k) -> (O,C,k,k): each new channel gets the RGB mean, rescaled by 3/C so the
    activation magnitude stays that of the pretrained network."""
    if weight.shape[1] == in_channels:
        return weight
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def load_encoder_weights(encoder: nn.Module, source: str | Path) -> dict[str, list[str]]:
    """Load torchvision ResNet weights into an encoder; returns the missing / unexpected / skipped keys.

    Accepts keys with or without an 'encoder.' prefix (floodwatch checkpoints) and drops the classifier (fc).
    """
    sd = read_state_dict(source)
    sd = {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if "conv1.weight" not in sd:
        raise CheckpointError(f"{source}: no 'conv1.weight' key; not a ResNet (torchvision-format) state dict")
    sd["conv1.weight"] = adapt_first_conv(sd["conv1.weight"], encoder.conv1.weight.shape[1])
    own = encoder.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    for k in skipped:
        sd.pop(k)
    if not any(k in own for k in sd):
        raise CheckpointError(f"{source}: no key matches the ResNet-{getattr(encoder, 'depth', '?')} encoder")
    result = encoder.load_state_dict(sd, strict=False)
    return {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys), "skipped": skipped}
