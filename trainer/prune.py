"""Global magnitude pruning to an exact sparsity, after training and without fine-tuning.

One ranking over every weight of every layer (biases and scales are not weights here); the k = round(f * n)
lowest-ranked weights become 0, so exactly k weights are zero afterwards (unless more already were: pruning
never revives a weight). Ties are broken by a second key, then by position, so the result is deterministic.

Magnitude of a weight, per parametrisation:
- float: |w|.
- ternary (ste, conntra): the deployed magnitude |scale * q|. Trits tie massively (every non-zero trit of a
  channel has the same magnitude), so the second key decides inside a tie:
  - ste: the latent |w| -- the quantity TWN thresholded to make the trit, so the trits closest to becoming
    0 go first. The STE layer is first frozen into its deployed form (q, alpha) so that zeroing a trit does
    not move TWN's data-dependent threshold (which would zero, or revive, other trits);
  - conntra: the first-order loss increase of zeroing the trit, -g*q*s (g = dL/dq averaged over the last
    ~100 steps by an after-backward hook): the trits the loss relies on least go first.
Method `halo` ranks by HALO's learned lambda instead (small lambda = the penalty has given up on the
weight), ties by magnitude; it needs `--penalty halo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .config import TrainConfig
from .halo import lambdas_of
from .layers import QuantLayer, ternarize_twn
from .loop import Hooks
from .network import Network
from .technique import Options, Technique, option, register

__all__ = ["Prune", "from_config", "prune_settings", "prune_global", "freeze_ternary", "sparsity", "KEY",
           "PRUNE_METHODS"]

KEY = "prune"  # config.extra[KEY] = {"fraction": 0.95, "method": "magnitude"}
PRUNE_METHODS = ("magnitude", "halo")


def prune_settings(config: TrainConfig) -> dict[str, Any] | None:
    raw = config.extra.get(KEY)
    if raw is None:
        return None
    fraction, method = raw.get("fraction"), raw.get("method") or "magnitude"
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise OptionError(f"--prune must be a fraction in [0, 1), got {fraction!r}")
    if method not in PRUNE_METHODS:
        raise OptionError(f"--prune-method must be one of {', '.join(PRUNE_METHODS)}, got {method!r}")
    if method == "halo" and (config.extra.get("penalty") or {}).get("kind") != "halo":
        raise OptionError("--prune-method halo ranks by HALO's lambdas; it needs --penalty halo")
    return {"fraction": float(fraction), "method": method}


@dataclass(frozen=True)
class PruneOptions(Options):
    """--prune FRACTION [--prune-method magnitude|halo]."""

    group = "smaller models (docs/compression.md)"
    fraction: float | None = option("--prune", type=float, metavar="FRACTION",
                                    help="after training, zero exactly this share of the weights (global magnitude "
                                         "threshold)")
    method: str | None = option("--prune-method", choices=PRUNE_METHODS,
                                help="rank weights by magnitude (default) or by HALO's lambda")

    def to_extra(self) -> dict[str, Any] | None:
        if self.method is not None and self.fraction is None:
            raise OptionError("--prune-method needs --prune FRACTION")
        return None if self.fraction is None else {"fraction": self.fraction, "method": self.method}


# after training, and after the penalty: may rank by its lambdas
@register(KEY, order=40, options=PruneOptions, settings=prune_settings)
def from_config(config: TrainConfig) -> list[Prune]:
    settings = prune_settings(config)
    return [] if settings is None else [Prune(**settings)]


def sparsity(net: Network) -> float:
    """Share of exact zeros among the deployed weights (trits for ternary layers)."""
    layers = net.weight_layers()
    zeros = sum(int((m.deployed()[0] == 0).sum()) for m in layers)
    return zeros / max(1, sum(m.weight.numel() for m in layers))


@torch.no_grad()
def freeze_ternary(layer: QuantLayer) -> None:
    """Turn an STE layer into its deployed form (trits q, scale alpha): same function, editable trits."""
    if layer.parametrisation != "ste":
        return
    t, alpha = ternarize_twn(layer.weight.detach())
    layer.latent = layer.weight.detach().clone()  # kept for the tie-break
    layer.weight = nn.Parameter(t)
    layer.scale = nn.Parameter(alpha.clone())
    layer.parametrisation = "discrete"


def _keys(layer: QuantLayer, saliency: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(magnitude, tie-break) per weight, both 'smaller = pruned first'."""
    w = layer.weight.detach()
    if layer.parametrisation == "float":
        return w.abs(), torch.zeros_like(w)
    shape = (-1,) + (1,) * (w.dim() - 1)
    mag = (w.round().abs() * layer.scale.detach().abs().reshape(shape)).expand_as(w)
    latent = getattr(layer, "latent", None)
    if latent is not None:
        return mag, latent.abs()
    if saliency is not None:
        return mag, saliency
    return mag, torch.zeros_like(w)


@torch.no_grad()
def prune_global(net: Network, fraction: float, method: str = "magnitude",
                 saliency: list[torch.Tensor | None] | None = None) -> dict[str, Any]:
    """Zero the round(fraction * n) lowest-ranked weights of the whole network; returns counts."""
    if not 0 <= fraction < 1:
        raise OptionError(f"prune fraction must be in [0, 1), got {fraction}")
    layers = net.weight_layers()
    for layer in layers:
        freeze_ternary(layer)
    saliency = saliency or [None] * len(layers)
    keys = [_keys(m, s) for m, s in zip(layers, saliency, strict=True)]
    if method == "halo":
        lambdas = lambdas_of(net)
        if lambdas is None:
            raise OptionError("--prune-method halo needs --penalty halo (no lambdas on this network)")
        # already-zero weights first (they cost nothing), then by lambda, ties by magnitude
        keys = [(torch.where(mag == 0, torch.zeros_like(lam), lam.abs() + 1e-30), mag)
                for (mag, _), lam in zip(keys, lambdas, strict=True)]
    primary = torch.cat([k[0].reshape(-1) for k in keys]).double()
    secondary = torch.cat([k[1].reshape(-1) for k in keys]).double()
    n = primary.numel()
    k = round(fraction * n)
    zeros_before = int((primary == 0).sum()) if method == "magnitude" else sum(
        int((m.deployed()[0] == 0).sum()) for m in layers)
    # lexicographic order (primary, secondary, position): stable sort by the minor key, then by the major
    order = torch.sort(secondary, stable=True).indices
    order = order[torch.sort(primary[order], stable=True).indices]
    mask = torch.ones(n, dtype=torch.bool)
    mask[order[:k]] = False
    start = 0
    for layer in layers:
        size = layer.weight.numel()
        layer.weight.data.mul_(mask[start:start + size].reshape(layer.weight.shape).to(layer.weight.dtype))
        start += size
    zeros_after = sum(int((m.deployed()[0] == 0).sum()) for m in layers)
    return {"fraction": fraction, "method": method, "weights": n, "target_zeros": k,
            "zeros_before": zeros_before, "zeros": zeros_after, "sparsity": zeros_after / max(1, n)}


class Prune(Technique):
    name = "prune"

    def __init__(self, fraction: float, method: str = "magnitude", beta: float = 0.99):
        self.fraction, self.method, self.beta = fraction, method, beta
        self.saliency_avg: list[torch.Tensor | None] = []
        self.layers: list[QuantLayer] = []

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        self.layers = net.weight_layers()
        self.saliency_avg = [torch.zeros_like(m.weight) if m.parametrisation == "discrete" else None
                             for m in self.layers]
        if any(s is not None for s in self.saliency_avg):
            hooks.after_backward.append(self._track)
        return []

    @torch.no_grad()
    def _track(self, net: Network) -> None:
        for layer, avg in zip(self.layers, self.saliency_avg, strict=True):
            if avg is not None and layer.weight.grad is not None:
                avg.mul_(self.beta).add_(layer.weight.grad, alpha=1 - self.beta)

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        return {"prune": prune_global(net, self.fraction, self.method, self.saliency())}

    def saliency(self) -> list[torch.Tensor | None]:
        """Per layer, the tie-break key of discrete layers: the first-order loss increase of zeroing a trit."""
        saliency: list[torch.Tensor | None] = []
        for layer, avg in zip(self.layers, self.saliency_avg, strict=True):
            if avg is None:
                saliency.append(None)
                continue
            shape = (-1,) + (1,) * (avg.dim() - 1)
            saliency.append(-avg * layer.weight.detach() * layer.scale.detach().abs().reshape(shape))
        return saliency
