"""Edge-aware refinement of the water probability: a guided filter with the SAR image as guidance, and an
optional clean-up of small water/land specks.

The guided filter (He, Sun & Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013) models the output
as locally linear in a guidance image I: in each (2r+1)² window w_k,

    a_k = cov_k(I, p) / (var_k(I) + eps),    b_k = mean_k(p) - a_k mean_k(I)
    q_i = mean over the windows k that hold i of (a_k I_i + b_k)

so the smoothed probability q follows the edges of I (the SAR backscatter, where water is dark) and is
flattened where I is flat: speckle-like noise in p is averaged away, a land/water boundary in the image
is kept. eps sets what counts as an edge: a window whose variance of I is well below eps is smoothed
like a box mean, one well above eps keeps p's structure along I. Every mean is a box sum from cumulative
sums (O(N) whatever r), over the part of the window inside the image, divided by its pixel count, as in
He's reference code (boxfilter / N).

No data: the pre-processing writes its `fill` value in every channel of a no-data pixel
(`Preprocessing.apply`), so a pixel whose channels all equal `fill` is taken as no data. Such pixels
are left out of every window statistic and windows centred on them do not vote, so neither the fill
value nor the model's output on it bleeds into valid pixels; their own output is the unrefined one
(every consumer masks them anyway). A valid pixel that happens to equal `fill` in every channel is only
left unrefined.

    from floodwatch.inference import load_predictor
    predictor = load_predictor("best.pt", refine="guided:r=2,eps=0.1")
    # or: RefinePredictor(load_predictor("best.pt"), radius=2, eps=0.1)

Defaults (r=1, eps=0.1, guidance = mean of the pre-processed channels) were picked on the ETCI North
Alabama validation tiles with runs/etci_r10/best.pt (water IoU 0.829 -> 0.831; r=2: 0.830, r=4: 0.825,
r=8: 0.816): wider windows trade recall for precision and lose thin channels. docs/benchmarks.md has the
held-out numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FloodwatchError

METHODS = ("guided", "clean")
DEFAULT_RADIUS = 1
DEFAULT_EPS = 0.1
# spec keys -> RefinePredictor keyword
_KEYS = {"r": "radius", "radius": "radius", "eps": "eps", "guide": "guide", "min": "min_region",
         "min_region": "min_region", "t": "threshold", "threshold": "threshold"}


# -- the filter -------------------------------------------------------------------------------------------
def box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """Sum of x over the in-image part of the (2r+1)² window around each pixel, on the last two axes."""
    out = np.asarray(x, np.float64)
    for axis in (-2, -1):
        n = out.shape[axis]
        c = np.cumsum(out, axis=axis)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)  # c[j] = sum of x[:j]
        idx = np.arange(n)
        out = np.take(c, np.minimum(idx + radius + 1, n), axis=axis) - np.take(c, np.maximum(idx - radius, 0),
                                                                                  axis=axis)
    return out


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """He's gray-scale guided filter of `p` with guidance `guide`, both (..., H, W); float64 result.

    valid: optional bool mask of the same shape; invalid pixels take no part in any window and keep p."""
    I = np.asarray(guide, np.float64)
    p = np.asarray(p, np.float64)
    if I.shape != p.shape:
        raise FloodwatchError(f"guided filter: guidance shape {I.shape} differs from the probability's {p.shape}")
    if valid is None:
        v = np.ones(p.shape, np.float64)
        Iv, pv = I, p
    else:
        valid = np.asarray(valid, bool)
        v = valid.astype(np.float64)
        Iv, pv = np.where(valid, I, 0.0), np.where(valid, p, 0.0)
    n = box_sum(v, radius)  # valid pixels per window (with no mask: the in-image pixel count, He's N)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_i = box_sum(Iv, radius) / n
        mean_p = box_sum(pv, radius) / n
        cov_ip = box_sum(Iv * pv, radius) / n - mean_i * mean_p
        var_i = np.maximum(box_sum(Iv * Iv, radius) / n - mean_i * mean_i, 0.0)
        a = cov_ip / (var_i + eps)
        b = mean_p - a * mean_i
        # windows centred on a no-data pixel do not vote; n counts exactly the windows that do
        a, b = np.where(v > 0, a, 0.0), np.where(v > 0, b, 0.0)
        q = (box_sum(a, radius) * I + box_sum(b, radius)) / n
    return q if valid is None else np.where(valid, q, p)


def remove_small_regions(prob: np.ndarray, min_size: int, threshold: float = 0.5,
                         valid: np.ndarray | None = None) -> np.ndarray:
    """Water specks (p >= threshold) and land holes (p < threshold) of fewer than `min_size` valid pixels
    (4-connected) take the mean probability of the valid pixels bordering them, which lie on the other side
    of the threshold, so they flip class; a speck with no valid neighbour is kept. prob: (H, W) or (N, H, W)."""
    from scipy import ndimage

    prob = np.array(prob, np.float64)
    if min_size <= 1:
        return prob
    images = prob.reshape((-1,) + prob.shape[-2:])
    valids = (np.ones(images.shape, bool) if valid is None
              else np.broadcast_to(np.asarray(valid, bool), prob.shape).reshape(images.shape))
    for p, ok in zip(images, valids):  # views: edited in place
        for water in (True, False):  # specks of water first, then the holes left in the (new) land
            side = ((p >= threshold) if water else (p < threshold)) & ok
            labels, count = ndimage.label(side)
            if count == 0:
                continue
            small = np.bincount(labels.ravel(), minlength=count + 1) < min_size
            small[0] = False
            if not small.any():
                continue
            speck = np.where(small[labels], labels, 0)
            border = ok & ~side
            total = np.zeros(count + 1)
            edges = np.zeros(count + 1)
            # each (speck pixel, other-side valid 4-neighbour) edge adds that neighbour's probability
            for s_speck, s_border in _neighbour_pairs():
                lab, keep = speck[s_speck], border[s_border]
                hit = (lab > 0) & keep
                total += np.bincount(lab[hit], weights=p[s_border][hit], minlength=count + 1)
                edges += np.bincount(lab[hit], minlength=count + 1)
            fixed = small & (edges > 0)
            value = np.divide(total, edges, out=np.zeros_like(total), where=edges > 0)
            sel = fixed[speck] & (speck > 0)
            p[sel] = value[speck[sel]]
    return images.reshape(prob.shape)


def _neighbour_pairs():
    """Slice pairs (this pixel, its neighbour) for the four 4-connected directions on the last two axes."""
    a, b = slice(None, -1), slice(1, None)
    full = slice(None)
    return (((a, full), (b, full)), ((b, full), (a, full)), ((full, a), (full, b)), ((full, b), (full, a)))


# -- the Predictor -----------------------------------------------------------------------------------------
class RefinePredictor:
    """A Predictor whose probabilities are `base`'s, refined by a guided filter (guidance: the pre-processed
    SAR input) and/or a small-region clean-up.

    method: 'guided' (filter, then clean-up when min_region > 1) or 'clean' (clean-up only).
    radius, eps: the guided filter's window radius (pixels) and edge threshold (in squared units of the
    pre-processed guidance: about unit variance, 1 = 5 dB with the default pre-processing).
    guide: 'mean' (mean of the input channels of the post-event image), a band name ('VV') or a channel index.
    min_region: water/land regions smaller than this many pixels flip (0: no clean-up); threshold: the
    water threshold that defines those regions (use the one the masks are made with).
    """

    def __init__(self, base: Any, method: str = "guided", radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS,
                 guide: str | int = "mean", min_region: int = 0, threshold: float = 0.5):
        if method not in METHODS:
            raise FloodwatchError(f"refine: unknown method '{method}' ({', '.join(METHODS)}, none)")
        if isinstance(radius, bool) or int(radius) != radius or radius < 1:
            raise FloodwatchError(f"refine: radius r={radius} must be a whole number >= 1")
        if not (np.isfinite(eps) or eps == np.inf) or eps <= 0:
            raise FloodwatchError(f"refine: eps={eps} must be a positive number")
        if isinstance(min_region, bool) or int(min_region) != min_region or min_region < 0:
            raise FloodwatchError(f"refine: min={min_region} must be a whole number >= 0")
        if not 0.0 <= threshold <= 1.0:
            raise FloodwatchError(f"refine: threshold t={threshold} must be in [0, 1]")
        if method == "clean" and min_region <= 1:
            raise FloodwatchError("refine: 'clean' needs min=N (regions under N pixels flip), e.g. clean:min=16")
        self.base, self.method = base, method
        self.radius, self.eps = int(radius), float(eps)
        self.min_region, self.threshold = int(min_region), float(threshold)
        self.preprocessing = base.preprocessing
        self.guide = self._guide_channel(guide)

    def _guide_channel(self, guide: str | int) -> str | int:
        """'mean' or the channel's index within one (post-event) image's channels."""
        if isinstance(guide, str) and guide.strip().lower() == "mean":
            return "mean"
        channels = self.preprocessing.channels
        bands = [b.upper() for b in self.preprocessing.bands]
        if isinstance(guide, str) and guide.strip().upper() in bands:
            return bands.index(guide.strip().upper())
        try:
            index = int(guide)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < channels:
            raise FloodwatchError(f"refine: guide '{guide}' is not 'mean', a band ({', '.join(bands)}) "
                                  f"or a channel index 0..{channels - 1}")
        return index

    @property
    def meta(self) -> dict:
        return getattr(self.base, "meta", None) or {}

    def guidance(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W) guidance image and validity mask of a pre-processed (N, C, H, W) batch."""
        x = np.asarray(batch, np.float32)
        # a bi-temporal input stacks before + after; the map is of the after image, its last `channels`
        post = x[:, -self.preprocessing.channels:] if x.shape[1] >= self.preprocessing.channels else x
        valid = ~np.all(x == np.float32(self.preprocessing.fill), axis=1) & np.isfinite(x).all(axis=1)
        guide = post.mean(axis=1, dtype=np.float64) if self.guide == "mean" else post[:, self.guide].astype(np.float64)
        return guide, valid

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        prob = np.asarray(self.base.predict(batch), np.float64)
        if prob.shape != batch.shape[:1] + batch.shape[2:]:
            raise FloodwatchError(f"refine: predictor returned shape {prob.shape} for input {batch.shape}")
        guide, valid = self.guidance(batch)
        valid &= np.isfinite(prob)
        if self.method == "guided":
            prob = guided_filter(guide, prob, self.radius, self.eps, valid)
        if self.min_region > 1:
            prob = remove_small_regions(prob, self.min_region, self.threshold, valid)
        return np.clip(prob, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        parts = [f"r={self.radius}", f"eps={self.eps:g}"] if self.method == "guided" else []
        if self.method == "guided" and self.guide != "mean":
            parts.append(f"guide={self.guide}")
        if self.min_region > 1:
            parts += [f"min={self.min_region}", f"t={self.threshold:g}"]
        return f"{self.method}:{','.join(parts)}"

    def __repr__(self) -> str:
        return f"RefinePredictor({self.base!r}, {self.describe()!r})"

    def settings(self) -> dict[str, Any]:  # base.predictor_settings
        return {"refine": self.describe()}


def parse_refine(spec: str | dict | None, threshold: float = 0.5) -> dict[str, Any] | None:
    """'refine' text -> RefinePredictor keywords, or None for no refinement.

    'none' | 'guided' | 'guided:r=4,eps=0.1,guide=mean,min=16,t=0.5' | 'clean:min=16'. `threshold` is the
    default for t (the CLI passes its --threshold). A dict is taken as keywords already."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return {"threshold": threshold, **spec}
    text = str(spec).strip()
    if text.lower() in ("", "none", "off"):
        return None
    method, _, rest = text.partition(":")
    method = method.strip().lower()
    if method not in METHODS:
        raise FloodwatchError(f"refine: '{text}': unknown method '{method}' (guided, clean, none)")
    out: dict[str, Any] = {"method": method, "threshold": threshold}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in _KEYS:
            raise FloodwatchError(f"refine: '{text}': '{item}' is not key=value with key r, eps, guide, min or t")
        name, value = _KEYS[key], value.strip()
        try:
            out[name] = (int(value) if name in ("radius", "min_region")
                         else value if name == "guide" else float(value))
        except ValueError:
            raise FloodwatchError(f"refine: '{text}': {key}={value} is not a number") from None
    return out


def refine_predictor(base: Any, spec: str | dict | None, threshold: float = 0.5) -> Any:
    """`base` wrapped as `spec` says ('none' / None: `base` itself)."""
    kwargs = parse_refine(spec, threshold)
    return base if kwargs is None else RefinePredictor(base, **kwargs)
