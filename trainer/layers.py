"""Weight layers whose weight is parametrised by the training method.

- `float`: a plain float weight (the baseline).
- `ste`: a latent float weight, ternarised in the forward pass (Ternary Weight Networks: threshold
  0.7*mean|w|, scale = mean of the surviving |w|), gradients passed straight through.
- `discrete` (CoNNTrA): the weight *is* an integer matrix q in {-levels..levels} (held in a float tensor so
  autograd gives dL/dq), times a float scale per output unit or per layer. No latent floats: what is trained
  is what is deployed.

`op` is the seam for faster products (approximate matmul, submatrix dropout): it receives the input, the
weight, the bias and an optional per-output scale s, and returns product(x, w) * s + b. A discrete layer
passes its integer matrix and its scale rather than their product: the scale then multiplies the small
output instead of the whole matrix, forward and backward (three fewer weight-sized passes per step).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["QuantLayer", "ternarize_twn", "PARAMETRISATIONS"]

PARAMETRISATIONS = ("float", "ste", "discrete")


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


class QuantLayer(nn.Module):
    """A dense (`kind='dense'`) or convolutional (`kind='conv'`) layer under one parametrisation."""

    def __init__(self, kind: str, in_features: int, out_features: int, parametrisation: str,
                 kernel: int = 1, stride: int = 1, padding: int = 0, levels: int = 1, scale_mode: str = "channel",
                 generator: torch.Generator | None = None):
        super().__init__()
        if parametrisation not in PARAMETRISATIONS:
            raise ValueError(parametrisation)
        self.kind, self.parametrisation, self.levels = kind, parametrisation, levels
        self.stride, self.padding = stride, padding
        shape = (out_features, in_features) if kind == "dense" else (out_features, in_features, kernel, kernel)
        fan_in = in_features * (kernel * kernel if kind == "conv" else 1)
        self.bias = nn.Parameter(torch.zeros(out_features))
        if parametrisation == "discrete":
            # uniform over the levels; scale so that Var(w) = 1/fan_in (ternary: sqrt(1.5/fan_in), as the prototype)
            q = torch.randint(-levels, levels + 1, shape, generator=generator).float()
            mean_sq = sum(v * v for v in range(-levels, levels + 1)) / (2 * levels + 1)
            n_scale = out_features if scale_mode == "channel" else 1
            self.weight = nn.Parameter(q)
            self.scale = nn.Parameter(torch.full((n_scale,), math.sqrt(1.0 / (fan_in * mean_sq))))
        else:
            bound = math.sqrt(6.0 / fan_in) / 2  # Kaiming-uniform-like for ReLU nets
            self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound, generator=generator))
            self.register_parameter("scale", None)
        self.op: Callable[..., torch.Tensor] | None = None
        # (rows, columns) of the weight that take part in this training step, set by a technique that computes
        # on a submatrix (batchwise dropout); None = all. A rule may then update only that submatrix.
        self.active: tuple[torch.Tensor | None, torch.Tensor | None] | None = None

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
            return F.linear(x, w, b) if self.kind == "dense" else F.conv2d(x, w, b, self.stride, self.padding)
        y = F.linear(x, w) if self.kind == "dense" else F.conv2d(x, w, None, self.stride, self.padding)
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return torch.addcmul(b.reshape(shape), y, s.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = self.op if self.op is not None else self.base_op
        if self.parametrisation == "discrete":
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
