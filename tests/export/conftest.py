"""A tiny ResNet-10 U-Net trained for a few dozen steps on synthetic SAR chips.

A randomly initialised net's water probability hovers near 0.5 everywhere, so any rounding flips its mask
and agreement tests say nothing. Trained to convergence on synth_chips (160 steps, then BatchNorm statistics
recomputed over the whole set) the net separates dark (water) from bright land with confident logits, as a
real model does, and INT8/pruning comparisons become meaningful. Stopping after a few dozen steps left the
BatchNorm running statistics mid-way, so the eval-mode loss depended on the machine's BLAS and thread count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.synthetic import synth_chips
from floodwatch.models import build_model
from floodwatch.models.checkpoint import save_checkpoint

CONFIG = {"num_layers": 10, "in_channels": 2}
SIZE = 64


def chips_and_masks(n: int, seed: int, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    chips = synth_chips(n, size=SIZE, seed=seed)
    x = np.stack([prep.apply(c.image, c.valid) for c in chips])
    y = np.stack([c.mask for c in chips]).astype(np.int64)
    return x, y


def train_steps(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, seed: int = 0,
                crop: int = 32) -> list[float]:
    """Adam on random 32 px crops (the net is fully convolutional; crops keep the tests cheap)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (8,), generator=gen)
        r, c = (int(v) for v in torch.randint(0, xt.shape[-1] - crop + 1, (2,), generator=gen))
        xb, yb = xt[idx, :, r:r + crop, c:c + crop], yt[idx, r:r + crop, c:c + crop]
        loss = torch.nn.functional.cross_entropy(model(xb), yb, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def recalibrate_batchnorm(model: torch.nn.Module, x: np.ndarray, batch: int = 8) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over x (eval mode after)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: independent of the order and count of batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(x[i:i + batch]))
    for bn in norms:
        bn.momentum = 0.1
    model.eval()


def mean_loss(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y),
                                                       ignore_index=255))


@pytest.fixture(scope="session")
def trainer():
    """(train_steps, mean_loss, recalibrate_batchnorm) for tests that fine-tune."""
    return train_steps, mean_loss, recalibrate_batchnorm


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # On a shared 2-core machine two spinning threads per process cost more CPU than they save.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_chips(prep):
    """make_chips(n, seed) -> (pre-processed chips, masks)."""
    return lambda n, seed: chips_and_masks(n, seed, prep)


@pytest.fixture(scope="session")
def prep() -> Preprocessing:
    return Preprocessing()


@pytest.fixture(scope="session")
def train_data(prep):
    return chips_and_masks(32, seed=1, prep=prep)


@pytest.fixture(scope="session")
def val_chips():
    return synth_chips(12, size=SIZE, seed=7)


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory, prep, train_data) -> Path:
    torch.manual_seed(0)
    model = build_model(**CONFIG)
    train_steps(model, *train_data, steps=160)
    recalibrate_batchnorm(model, train_data[0])
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model, model_config=CONFIG, preprocessing=prep, epoch=1)


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory, trained_ckpt):
    from floodwatch.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    report = export_onnx(trained_ckpt, out, exporter="torchscript")
    return out, report
