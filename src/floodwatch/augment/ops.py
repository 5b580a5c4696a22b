"""Deterministic geometric operators on torch tensors, shared by the batched augmenter, tests and TTA.

Conventions (the same as numpy and DALI, so results can be compared one to one):
- tensors are (..., H, W): an image batch (N, C, H, W), a mask batch (N, H, W) or a single (H, W) plane;
- `rot90(x, k)` equals `np.rot90(x, k, axes=(-2, -1))` (counter-clockwise as displayed);
- `rotate(x, angle)` turns counter-clockwise by `angle` degrees about the centre, like DALI `fn.rotate`
  with `keep_size=True`;
- a region of interest is `(y0, x0, y1, x1)` in pixel *edge* coordinates (the whole image is
  `(0, 0, H, W)`), like DALI's `roi_start`/`roi_end` in absolute coordinates.

Float tensors are sampled bilinearly; integer and bool tensors (masks) with nearest neighbour, so a mask
never gains a class value it did not have. Pixels that come from outside the image take `fill`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import FloodwatchError


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right (np.flip(x, -1))."""
    return x.flip(-1)


def vflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror top-bottom (np.flip(x, -2))."""
    return x.flip(-2)


def rot90(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Rotate by k quarter turns counter-clockwise (np.rot90(x, k, axes=(-2, -1)))."""
    return torch.rot90(x, k, dims=(-2, -1))


def crop_and_resize(x: torch.Tensor, roi: Sequence[float], *, fill: float = 0.0) -> torch.Tensor:
    """Cut the region `roi = (y0, x0, y1, x1)` (pixel edges) out of x and resize it to x's own size."""
    h, w = x.shape[-2:]
    return sample_affine(x, crop_theta(roi, h, w).expand(_batch(x), 2, 3), fill=fill)


def rotate(x: torch.Tensor, angle: float, *, fill: float = 0.0) -> torch.Tensor:
    """Rotate by `angle` degrees counter-clockwise about the centre, keeping the size; corners take `fill`."""
    h, w = x.shape[-2:]
    return sample_affine(x, rotation_theta(torch.tensor([float(angle)]), h, w).expand(_batch(x), 2, 3), fill=fill)


# -- affine machinery -------------------------------------------------------------------------------------
def crop_theta(roi: Sequence[float], h: int, w: int) -> torch.Tensor:
    """(1, 2, 3) affine_grid matrix that maps the output frame onto `roi` of the input."""
    y0, x0, y1, x1 = (float(v) for v in roi)
    if not (y1 > y0 and x1 > x0):
        raise FloodwatchError(f"roi {tuple(roi)}: needs y1 > y0 and x1 > x0 (order is y0, x0, y1, x1)")
    return torch.tensor([[[(x1 - x0) / w, 0.0, (x0 + x1) / w - 1.0],
                          [0.0, (y1 - y0) / h, (y0 + y1) / h - 1.0]]])


def rotation_theta(angles_deg: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 2, 3) matrices rotating each output by angles_deg[i] counter-clockwise.

    The rotation is done in pixel units (D^-1 R D, D = diag(W/2, H/2)) so non-square chips are not sheared.
    """
    a = angles_deg.double() * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(len(a), 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (h / w)
    theta[:, 1, 0] = sin * (w / h)
    theta[:, 1, 1] = cos
    return theta.float()


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """theta of `outer(inner(p))` for (N, 2, 3) matrices: inner is applied to output coordinates first."""
    a = outer[:, :, :2] @ inner[:, :, :2]
    b = outer[:, :, :2] @ inner[:, :, 2:] + outer[:, :, 2:]
    return torch.cat([a, b], dim=2)


def sample_affine(x: torch.Tensor, theta: torch.Tensor, *, fill: float = 0.0,
                  grid: torch.Tensor | None = None) -> torch.Tensor:
    """Resample x (..., H, W) through per-sample affine matrices theta (N, 2, 3), in one grid_sample call.

    Float input: bilinear; integer/bool input: nearest, dtype kept. `grid` may be passed to reuse one
    sampling grid for image, mask and valid.
    """
    if grid is None:
        grid = make_grid(theta, x.shape[-2:], x.device)
    planes, restore = _as_nchw(x)
    integer = not torch.is_floating_point(planes)
    work = planes.to(grid.dtype if integer else planes.dtype)
    # grid_sample pads with zeros; shifting by `fill` first makes the padding come out as `fill`.
    out = F.grid_sample(work - fill, grid.to(work.dtype), mode="nearest" if integer else "bilinear",
                        padding_mode="zeros", align_corners=False) + fill
    if integer:
        out = out.round().to(planes.dtype)
    return restore(out)


def make_grid(theta: torch.Tensor, size: Sequence[int], device: torch.device | str) -> torch.Tensor:
    h, w = int(size[-2]), int(size[-1])
    return F.affine_grid(theta.to(device=device, dtype=torch.float32), [theta.shape[0], 1, h, w],
                         align_corners=False)


def _batch(x: torch.Tensor) -> int:
    return x.shape[0] if x.dim() >= 3 else 1


def _as_nchw(x: torch.Tensor):
    """View x as (N, C, H, W) and return a function that gives the result x's own layout back."""
    if x.dim() == 2:
        return x[None, None], lambda y: y[0, 0]
    if x.dim() == 3:  # (N, H, W): a mask batch
        return x[:, None], lambda y: y[:, 0]
    if x.dim() == 4:
        return x, lambda y: y
    raise FloodwatchError(f"tensor of shape {tuple(x.shape)}: expected (H, W), (N, H, W) or (N, C, H, W)")
