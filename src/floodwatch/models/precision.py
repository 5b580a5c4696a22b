"""Mixed precision, one convention for training and inference: a dtype of None means float32, autocast off."""
from __future__ import annotations

import torch


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in `dtype` on `device`'s type; float32 (autocast off) when dtype is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
