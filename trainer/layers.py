"""Weight layers whose weight is parametrised by the training method.

- `float`: a plain float weight (the baseline).
- `ste`: a latent float weight, ternarised in the forward pass (Ternary Weight Networks: threshold
  0.7*mean|w|, scale = mean of the surviving |w|), gradients passed straight through.
- `discrete` (CoNNTrA): the weight *is* an integer matrix q in {-levels..levels} (held in a float tensor so
  autograd gives dL/dq), times a float scale per output unit or per layer. No latent floats: what is trained
  is what is deployed.

`op` is the seam for faster products (approximate matmul, submatrix dropout): it receives the input, the
weight, the bias and an optional per-output scale s, and returns product(x, w) * s + b. A discrete dense
layer passes its integer matrix and its scale rather than their product: the scale then multiplies the small
output instead of the whole matrix, forward and backward (three fewer weight-sized passes per step). A
discrete convolution passes the product: its output (batch x channels x positions) is far larger than its
kernel, and scaling the output cost a third more time per step on the DS-CNN example.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["QuantLayer", "ternarize_twn", "discrete_levels", "PARAMETRISATIONS"]

PARAMETRISATIONS = ("float", "ste", "discrete")

# the integer weights of discrete layers and their levels, held weakly, so that an optimizer given bare
# parameters (`ternkit.optim.CoNNTrA(model.parameters())`) knows which to move: no tag on the parameter
_DISCRETE: WeakIdKeyDictionary = WeakIdKeyDictionary()


def discrete_levels(p: torch.Tensor) -> int | None:
    """L if `p` is a discrete layer's integer weight in {-L..L}, else None."""
    return _DISCRETE.get(p)


def ternarize_twn(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary Weight Networks (Li et al. 2016): trits and the per-layer scale alpha. Comparisons are written
    as 0/1 floats: into bool tensors they cost ~4x more on CPU, and this runs on every STE step."""
    a = w.abs()
    delta = 0.7 * a.mean()
    kept = torch.gt(a, delta, out=torch.empty_like(w))
    t = torch.sign(w).mul_(kept)
    alpha = torch.dot(a.view(-1), kept.view(-1)) / kept.sum().clamp_min(1)
    return t, alpha.reshape(1)


class _StraightThrough(torch.autograd.Function):
    """alpha * trits forward, the identity backward: the gradient reaches the latent float weight unchanged."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t, alpha = ternarize_twn(w)
        return t.mul_(alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def _pair(v: int | tuple[int, ...], what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {v!r}")
    return t  # type: ignore[return-value]


class QuantLayer(nn.Module):
    """A dense (`kind='dense'`) or convolutional (`kind='conv'`) layer under one parametrisation.

    Convolutions take torch's arguments: rectangular kernels, strides and padding as ints or pairs, and
    `groups` (depthwise when groups = in = out channels). A discrete weight is registered with its levels
    (`discrete_levels`), so an optimizer given bare parameters knows which to move."""

    def __init__(self, kind: str, in_features: int, out_features: int, parametrisation: str,
                 kernel: int | tuple[int, int] = 1, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, levels: int = 1, scale_mode: str = "channel",
                 generator: torch.Generator | None = None, groups: int = 1, bias: bool = True):
        super().__init__()
        if parametrisation not in PARAMETRISATIONS:
            raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")
        if kind not in ("dense", "conv"):
            raise ValueError(f"kind must be dense or conv, got {kind!r}")
        if not 1 <= levels <= 7 or scale_mode not in ("channel", "layer"):
            raise ValueError(f"levels must be in 1..7 and scale_mode channel or layer, got {levels}, {scale_mode!r}")
        if groups < 1 or in_features % groups or out_features % groups or (kind == "dense" and groups != 1):
            raise ValueError(f"groups={groups} must divide in ({in_features}) and out ({out_features}) channels")
        self.kind, self.parametrisation, self.levels = kind, parametrisation, levels
        self.kernel_size, self.groups = _pair(kernel, "kernel_size"), groups
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        kh, kw = self.kernel_size
        shape = (out_features, in_features) if kind == "dense" else (out_features, in_features // groups, kh, kw)
        fan_in = in_features // groups * (kh * kw if kind == "conv" else 1)
        # a layer without bias keeps a zero bias that no optimizer sees (the artifact always has one)
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=bias)
        if parametrisation == "discrete":
            # uniform over the levels; scale so that Var(w) = 1/fan_in (ternary: sqrt(1.5/fan_in), as the prototype)
            q = torch.randint(-levels, levels + 1, shape, generator=generator).float()
            mean_sq = sum(v * v for v in range(-levels, levels + 1)) / (2 * levels + 1)
            n_scale = out_features if scale_mode == "channel" else 1
            self.weight = nn.Parameter(q)
            _DISCRETE[self.weight] = levels
            self.scale = nn.Parameter(torch.full((n_scale,), math.sqrt(1.0 / (fan_in * mean_sq))))
        else:
            bound = math.sqrt(6.0 / fan_in) / 2  # Kaiming-uniform-like for ReLU nets
            self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound, generator=generator))
            self.register_parameter("scale", None)
        self.op: Callable[..., torch.Tensor] | None = None

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def extra_repr(self) -> str:
        conv = f", kernel={self.kernel_size}, stride={self.stride}, padding={self.padding}, groups={self.groups}"
        return (f"{self.kind}, {self.in_features}->{self.out_features}, {self.parametrisation}"
                + (conv if self.kind == "conv" else "") + (f", levels={self.levels}" if self.levels > 1 else ""))

    def effective_weight(self) -> torch.Tensor:
        if self.parametrisation == "float":
            return self.weight
        if self.parametrisation == "ste":
            return _StraightThrough.apply(self.weight)
        shape = (-1,) + (1,) * (self.weight.dim() - 1)
        return self.weight * self.scale.reshape(shape)

    def base_op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None = None
                ) -> torch.Tensor:
        if s is None:
            return F.linear(x, w, b) if self.kind == "dense" else F.conv2d(x, w, b, self.stride, self.padding, 1,
                                                                          self.groups)
        y = F.linear(x, w) if self.kind == "dense" else F.conv2d(x, w, None, self.stride, self.padding, 1, self.groups)
        # per output: the last axis of a linear layer's output (any rank, as nn.Linear), the channel axis of a conv's
        shape = (-1,) if self.kind == "dense" else (1, -1) + (1,) * (y.dim() - 2)
        return torch.addcmul(b.reshape(shape), y, s.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = self.op if self.op is not None else self.base_op
        if self.parametrisation == "discrete" and self.kind == "dense":
            return op(x, self.weight, self.bias, self.scale)
        return op(x, self.effective_weight(), self.bias)

    def deployed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer or float weight, scale) as they go into the artifact."""
        with torch.no_grad():
            if self.parametrisation == "float":
                return self.weight.detach().clone(), torch.ones(1)
            if self.parametrisation == "ste":
                return ternarize_twn(self.weight.detach())
            return self.weight.detach().round(), self.scale.detach().clone()
