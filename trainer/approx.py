"""Approximate tensor operations (Adelman, Levy, Hakimi, Silberstein, NeurIPS 2021) as a Technique.

A product A.B over an inner dimension n is the sum of n column-row outer products A[:, i] B[i, :]. Sampling
k of them, chosen by the product of the column's and the row's norms, approximates it with k/n of the work:
- `topk`: the k pairs with the largest norm products, unscaled (biased, lowest variance in practice);
- `bernoulli`: pair i kept independently with p_i = min(1, k q_i), q mixing the norm share with a little
  uniform mass so every pair has a chance, kept pairs scaled by 1/p_i (unbiased);
- `crs`: k draws with replacement from q (column-row sampling), each scaled 1/(k q_i); a pair drawn c times
  is computed once with weight c/(k q_i) (unbiased).
"Forward sampling", the paper's best variant: the training forward pass multiplies the gathered smaller
matrices, so autograd's backward products are the same smaller ones (the gradient of an unsampled column is
0 for that step). Dense layers sample input features (x (B,n) . W^T (n,out)); convolutions sample input
channels (each channel with its filter slice is one "column-row pair" of the conv's matmul form), which keeps
them a real, smaller conv2d. Evaluation (`layer.training` false) is always exact.

MACs are counted as they are executed (forward, weight gradient, input gradient when the input needs one)
beside what the exact product would have cost, so one run gives the saving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .config import TrainConfig
from .layers import QuantLayer
from .loop import Hooks
from .network import Network
from .technique import Options, Technique, option, register, reseed

__all__ = ["SAMPLERS", "KEY", "MIN_K", "sample_pairs", "sampled_matmul", "MacCounter", "SampledOp",
           "ApproxOps", "approx_settings", "from_config", "sample_size", "parse_layers", "remove_ops",
           "product_macs"]

KEY = "approx"  # config.extra[KEY] = {"method": "topk", "ratio": 0.5, "layers": None (all but the output) | [i, ...]}
SAMPLERS = ("topk", "bernoulli", "crs")
MIN_K = 4  # never fewer pairs than this (or n, if smaller): a 1-pair product is noise
UNIFORM_MIX = 0.05  # share of uniform probability mixed into bernoulli/crs (no pair is ever impossible)


def sample_size(n: int, ratio: float) -> int:
    """k = ratio * n, at least MIN_K (or n), at most n."""
    return min(n, max(min(n, MIN_K), math.ceil(ratio * n - 1e-9)))


def sample_pairs(norms: torch.Tensor, k: int, method: str, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices of the sampled pairs and their weights (None = 1). `norms[i]` = |A[:, i]| * |B[i, :]|."""
    n = norms.numel()
    if k >= n and method != "crs":
        return torch.arange(n), None
    if method == "topk":
        return torch.topk(norms, k, sorted=False).indices, None
    total = norms.sum()
    share = norms / total if total > 0 else torch.full_like(norms, 1.0 / n)
    q = (1 - UNIFORM_MIX) * share + UNIFORM_MIX / n
    if method == "bernoulli":
        p = (k * q).clamp_(max=1.0)
        kept = (torch.rand(n, generator=generator) < p).nonzero().squeeze(1)
        return kept, 1.0 / p[kept]
    if method == "crs":
        draws = torch.multinomial(q, k, replacement=True, generator=generator)
        idx, counts = torch.unique(draws, return_counts=True)
        return idx, counts.to(q.dtype) / (k * q[idx])
    raise ValueError(method)


def sampled_matmul(a: torch.Tensor, b: torch.Tensor, k: int, method: str,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The sampled approximation of a @ b (for tests and as the plainest statement of the method)."""
    with torch.no_grad():
        norms = a.norm(dim=0) * b.norm(dim=1)
    idx, weights = sample_pairs(norms, k, method, generator)
    a_s = a[:, idx] if weights is None else a[:, idx] * weights
    return a_s @ b[idx]


@dataclass
class MacCounter:
    """Multiply-accumulates actually executed by the sampled products vs their exact equivalent."""

    executed: int = 0
    exact: int = 0
    per_layer: dict[int, list[int]] = field(default_factory=dict)

    def add(self, layer: int, executed: int, exact: int) -> None:
        self.executed += executed
        self.exact += exact
        row = self.per_layer.setdefault(layer, [0, 0])
        row[0] += executed
        row[1] += exact

    def summary(self) -> dict[str, Any]:
        return {"macs_executed": self.executed, "macs_exact": self.exact,
                "mac_ratio": self.executed / self.exact if self.exact else 1.0,
                "per_layer": {str(i): {"executed": e, "exact": x} for i, (e, x) in self.per_layer.items()}}


def _passes(x: torch.Tensor) -> int:
    """Products per step: forward and weight gradient, plus the input gradient unless x is a leaf input."""
    return 3 if x.requires_grad else 2


def product_macs(layer: QuantLayer, x: torch.Tensor, w: torch.Tensor, n_inner: int) -> int:
    """MACs of one forward product of `layer` on x with `n_inner` of the inner dimension (features/channels)."""
    if layer.kind == "dense":
        return x.shape[0] * n_inner * w.shape[0]
    from ternkit.core.ops import window_out

    b, _, h, wd = x.shape
    k = w.shape[2] * w.shape[3]
    oh = window_out(h, w.shape[2], layer.stride[0], layer.padding[0])
    ow = window_out(wd, w.shape[3], layer.stride[1], layer.padding[1])
    return b * oh * ow * w.shape[0] * n_inner * k


class SampledOp:
    """`QuantLayer.op` that samples the layer's inner dimension while training; exact in evaluation."""

    def __init__(self, layer: QuantLayer, index: int, method: str, ratio: float, counter: MacCounter,
                 generator: torch.Generator, inner=None):
        self.layer, self.index, self.method, self.ratio = layer, index, method, ratio
        self.counter, self.generator = counter, generator
        self.inner = inner  # a wrapped op, else the layer's own product

    def _product(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.layer.base_op(x, w, b, s) if self.inner is None else self.inner(x, w, b, s)

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None = None
                 ) -> torch.Tensor:
        if not self.layer.training:
            return self._product(x, w, b, s)
        n = w.shape[1]
        k = sample_size(n, self.ratio)
        passes = _passes(x)
        exact = product_macs(self.layer, x, w, n)
        if k >= n and self.method != "crs":
            self.counter.add(self.index, passes * exact, passes * exact)
            return self._product(x, w, b, s)
        with torch.no_grad():  # the norms: O(B n + n out), small beside the product
            # sums of squares over the other dims (a row-wise reduction: 5x faster than norm(dim=0) on CPU)
            dims = (0,) if self.layer.kind == "dense" else (0, 2, 3)
            norms = ((x * x).sum(dims) * (w * w).sum(dims)).sqrt_()
        idx, weights = sample_pairs(norms, k, self.method, self.generator)
        if self.method == "topk":  # ascending indices: the gathers below read memory in order
            idx = idx.sort().values
        x_s = x.index_select(1, idx)
        if weights is not None:  # scale the smaller operand (the weight slice) -- or the input if it is smaller
            shape = (1, -1) + (1,) * (w.dim() - 2)
            if w.shape[0] * w[0, 0].numel() <= x.numel() // max(1, n):
                w_s = w.index_select(1, idx) * weights.reshape(shape)
            else:
                x_s = x_s * weights.reshape((1, -1) + (1,) * (x.dim() - 2))
                w_s = w.index_select(1, idx)
        else:
            w_s = w.index_select(1, idx)
        used = product_macs(self.layer, x, w, int(idx.numel()))
        self.counter.add(self.index, passes * used, passes * exact)
        return self._product(x_s, w_s, b, s)


def remove_ops(layer: QuantLayer, cls: type) -> None:
    """Take the ops of type `cls` out of the layer's chain of wrapped ops (each holds the next in `.inner`)."""
    prev, op = None, layer.op
    while op is not None:
        nxt = getattr(op, "inner", None)
        if isinstance(op, cls):
            if prev is None:
                layer.op = nxt
            else:
                prev.inner = nxt
        else:
            prev = op
        op = nxt


def approx_settings(config: TrainConfig) -> dict[str, Any] | None:
    """The validated settings under config.extra['approx'], or None when not asked for."""
    raw = config.extra.get(KEY)
    if raw is None:
        return None
    method, ratio, layers = raw.get("method"), raw.get("ratio", 0.5), raw.get("layers")
    if method not in SAMPLERS:
        raise OptionError(f"--approx must be one of {', '.join(SAMPLERS)}, got {method!r}")
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise OptionError(f"--approx-ratio must be in (0, 1], got {ratio!r}")
    if layers is not None:
        if not isinstance(layers, list) or not layers or not all(isinstance(i, int) and i >= 0 for i in layers):
            raise OptionError(f"--approx-layers must be weight-layer indices like 0,1 (0 = first), got {layers!r}")
    return {"method": method, "ratio": float(ratio), "layers": None if layers is None else sorted(set(layers))}


def parse_layers(text: str | None) -> list[int] | None:
    """'0,1' -> [0, 1] (CLI helper); None -> all weight layers."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise OptionError(f"--approx-layers must be weight-layer indices like 0,1 (0 = first), got {text!r}") from None


class ApproxOps(Technique):
    """Install a SampledOp on the chosen weight layers; report the MACs it saved."""

    name = "approx"

    def __init__(self, method: str, ratio: float, layers: list[int] | None = None, seed: int = 0):
        self.method, self.ratio, self.layers, self.seed = method, ratio, layers, seed
        self.counter = MacCounter()

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        weight_layers = net.weight_layers()
        # default: every layer but the output layer -- its product is tiny (units = classes), and its
        # sampling errors go straight into the logits (-1.9 pp test accuracy on the MNIST MLP at ratio 0.5)
        chosen = range(max(1, len(weight_layers) - 1)) if self.layers is None else self.layers
        bad = [i for i in chosen if i >= len(weight_layers)]
        if bad:
            raise OptionError(f"--approx-layers: the model has weight layers 0..{len(weight_layers) - 1}, got {bad}")
        gen = torch.Generator()
        hooks.before_step.append(lambda _net, step: reseed(gen, self.seed, 17, step))
        for i in chosen:
            layer = weight_layers[i]
            layer.op = SampledOp(layer, i, self.method, self.ratio, self.counter, gen, inner=layer.op)
        return []

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        for layer in net.weight_layers():  # evaluation was exact anyway; the returned network trains exactly too
            remove_ops(layer, SampledOp)
        return {"approx": {"method": self.method, "ratio": self.ratio, **self.counter.summary()}}


@dataclass(frozen=True)
class ApproxOptions(Options):
    """--approx METHOD [--approx-ratio R] [--approx-layers I,J]: sampled matmuls while training."""

    method: str | None = option("--approx", choices=SAMPLERS,
                                help="train with sampled matmuls (approximate tensor operations); evaluation stays "
                                     "exact")
    ratio: float | None = option("--approx-ratio", type=float, metavar="R",
                                 help="--approx: share of column-row pairs kept, in (0, 1] (default: 0.5)")
    layers: str | None = option("--approx-layers", metavar="I,J",
                                help="--approx: only these weight layers (0 = first; default: all but the output "
                                     "layer)")

    def to_extra(self) -> dict[str, Any] | None:
        if self.method is None and (self.ratio is not None or self.layers is not None):
            raise OptionError("--approx-ratio and --approx-layers need --approx topk|bernoulli|crs")
        if self.method is None:
            return None
        ratio = 0.5 if self.ratio is None else self.ratio
        return {"method": self.method, "ratio": ratio, "layers": parse_layers(self.layers)}


@register(KEY, order=10, options=ApproxOptions, settings=approx_settings)  # sampled matmuls while training
def from_config(config: TrainConfig) -> list[Technique]:
    settings = approx_settings(config)
    if settings is None:
        return []
    return [ApproxOps(settings["method"], settings["ratio"], settings["layers"], seed=config.seed)]
