"""Sparsity penalties as a Technique of the one loop: HALO (learned per-weight shrinkage) and plain L1.

HALO (Seto, Wells, Zhang, SDM 2021) adds  xi * sum_j |w_j| / lambda_j**2 + psi * sum_j |lambda_j|  to the task
loss, with one trainable lambda_j per weight (initialised to 1, fitted by the rule's Adam with the weights).
For a fixed w the best lambda is (2 xi |w| / psi)**(1/3), so the penalty behaves like |w|**(1/3): weights the
task does not need see their lambda shrink, their penalty grow, and they collapse to ~0; weights it needs keep a
large lambda and are barely shrunk (unlike L1, which shrinks every weight alike). Pruning afterwards
(`prune.py`) then removes weights that are already ~0, which is why no fine-tuning is needed.

What the penalty acts on is what the method trains:
- float: the weights; ste: the latent float weights (shrunk latents fall under the TWN threshold -> trit 0);
- conntra (`discrete`): the integer weights q, measured as |scale| * |q| (scale detached: shrinking a
  channel's scale zeroes nothing). Its gradient xi*|s_i|/lambda_j**2 * sign(q_j) joins dL/dq in CoNNTrA's
  moving average M, so a move of a +-1 toward 0 gains score |M|/sqrt(V): moves toward 0 get cheaper. At
  q = 0 the gradient of |q| is 0, so an after-backward hook applies the subgradient rule instead: the task
  gradient there is soft-thresholded by c_j = xi*|s_i|/lambda_j**2 (the least-norm subgradient of L + c|q|),
  so a weight leaves 0 only when the task's evidence outweighs the penalty it would start paying.
lambda**2 is floored at LAMBDA_FLOOR**2 so a weight whose lambda reaches 0 gets a large but finite penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .config import TrainConfig
from .layers import QuantLayer
from .loop import Hooks
from .network import Network
from .technique import Options, Technique, option, register

__all__ = ["Penalty", "from_config", "penalty_settings", "lambdas_of", "KEY", "LAMBDA_FLOOR", "KINDS"]

KEY = "penalty"  # config.extra[KEY] = {"kind": "halo", "xi": ..., "psi": ...} or {"kind": "l1", "strength": ...}
KINDS = ("halo", "l1")
LAMBDA_FLOOR = 0.05
# per method, the strengths benchmarks/compression.py chose on a held-out 20 % of the MNIST sample (LeNet-300-100,
# best accuracy at 95 % sparsity after 20 epochs; tried L1 1e-4, 3e-4 and HALO xi 1e-4, 3e-4, 1e-3, psi = xi/10).
# ste, the same way (issue 19, HALO only): xi 1e-4 -> 46.7 %, 3e-4 -> 91.2 %, 1e-3 -> 87.8 % held-out accuracy
# at 95 % sparsity; its L1 strength was not tuned (3e-4, the value both tuned methods chose). Not scaled with the
# model: the penalty's pull on each weight (xi / lambda^2) does not depend on how many weights there are, and
# only this one size was measured.
DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "float": {"halo": {"xi": 1e-4, "psi": 1e-5}, "l1": {"strength": 3e-4}},
    "ste": {"halo": {"xi": 3e-4, "psi": 3e-5}, "l1": {"strength": 3e-4}},
    "conntra": {"halo": {"xi": 3e-4, "psi": 3e-5}, "l1": {"strength": 3e-4}},
}


def penalty_settings(config: TrainConfig) -> dict[str, Any] | None:
    """The validated penalty settings of a config (the method's defaults filled in), or None when it asks for none."""
    raw = config.extra.get(KEY)
    if raw is None:
        return None
    kind = raw.get("kind")
    if kind not in KINDS:
        raise OptionError(f"--penalty must be one of {', '.join(KINDS)}, got {kind!r}")
    defaults = DEFAULTS.get(config.method, DEFAULTS["float"])[kind]
    settings = {"kind": kind, **defaults, **{k: v for k, v in raw.items() if k != "kind" and v is not None}}
    for name in defaults:
        value = settings[name]
        flag = "--l1" if name == "strength" else f"--halo-{name}"
        if not isinstance(value, (int, float)) or not 0 <= value < 1e3:
            raise OptionError(f"{flag} must be a number in [0, 1000), got {value!r}")
    unknown = set(settings) - {"kind", *defaults}
    if unknown:
        raise OptionError(f"--penalty {kind} does not take {', '.join(sorted(unknown))}")
    return settings


def _defaults(config: TrainConfig, n_samples: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """The method's measured strength where none was given (the record `resolve_defaults` keeps)."""
    settings = penalty_settings(config)
    why = "" if settings is None else (f"{settings['kind']} strength: {config.method}'s, tuned on the MNIST sample "
                                       "(docs/compression.md)")
    return settings, settings, why


@dataclass(frozen=True)
class PenaltyOptions(Options):
    """--penalty halo|l1 with --halo-xi/--halo-psi or --l1."""

    group = "smaller models (docs/compression.md)"
    kind: str | None = option("--penalty", choices=KINDS,
                              help="sparsity penalty: halo (learned per-weight shrinkage) or l1")
    xi: float | None = option("--halo-xi", type=float, metavar="XI",
                              help="HALO: weight of sum |w|/lambda^2 (default: 1e-4 for float, 3e-4 for ste and "
                                   "conntra)")
    psi: float | None = option("--halo-psi", type=float, metavar="PSI",
                               help="HALO: weight of sum |lambda| (default: 1e-5 for float, 3e-5 for ste and conntra)")
    l1: float | None = option("--l1", type=float, metavar="S", help="L1: strength (with --penalty l1; default 3e-4)")

    def to_extra(self) -> dict[str, Any] | None:
        if self.kind is None and any(v is not None for v in (self.xi, self.psi, self.l1)):
            raise OptionError("--halo-xi, --halo-psi and --l1 need --penalty halo|l1")
        if self.kind == "halo":
            if self.l1 is not None:
                raise OptionError("--l1 sets the L1 penalty's strength; with --penalty halo use --halo-xi/--halo-psi")
            return {"kind": "halo", "xi": self.xi, "psi": self.psi}
        if self.kind == "l1":
            if self.xi is not None or self.psi is not None:
                raise OptionError("--halo-xi/--halo-psi apply to --penalty halo; the L1 strength is --l1")
            return {"kind": "l1", "strength": self.l1}
        return None


# before prune: prune may rank by HALO's lambdas
@register(KEY, order=30, defaults=_defaults, options=PenaltyOptions, settings=penalty_settings)
def from_config(config: TrainConfig) -> list[Penalty]:
    settings = penalty_settings(config)
    return [] if settings is None else [Penalty(**settings)]


def lambdas_of(net: Network) -> list[torch.Tensor] | None:
    """HALO's lambda per weight layer (same shapes as the weights), if a HALO penalty is attached."""
    module = getattr(net, "halo_lambda", None)
    return None if module is None else [p.detach() for p in module]


def _magnitude(layer: QuantLayer) -> torch.Tensor:
    """|w| as the penalty sees it (a differentiable function of what the method trains)."""
    if layer.parametrisation == "discrete":
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        return layer.weight.abs() * layer.scale.detach().abs().reshape(shape)
    return layer.weight.abs()


class Penalty(Technique):
    name = "penalty"

    def __init__(self, kind: str, xi: float = 0.0, psi: float = 0.0, strength: float = 0.0):
        if kind not in KINDS:
            raise OptionError(f"--penalty must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.xi, self.psi, self.strength = kind, float(xi), float(psi), float(strength)
        self.layers: list[QuantLayer] = []
        self.lambdas: nn.ParameterList | None = None

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        self.layers = net.weight_layers()
        if self.kind == "halo":
            # registered on the network (outside its layer list, so the artifact ignores it): the rule's Adam
            # finds the lambdas among the network's continuous parameters and checkpoints carry them
            self.lambdas = nn.ParameterList([nn.Parameter(torch.ones_like(m.weight)) for m in self.layers])
            net.add_module("halo_lambda", self.lambdas)
        hooks.loss_terms.append(self.term)
        if any(m.parametrisation == "discrete" for m in self.layers):
            hooks.after_backward.append(self.shrink_at_zero)
        return []

    def coefficients(self) -> list[torch.Tensor | float]:
        """Per-weight penalty slope c_j (d penalty / d|w_j|): xi/lambda_j**2 for HALO, the strength for L1."""
        if self.kind == "l1":
            return [self.strength] * len(self.layers)
        assert self.lambdas is not None
        return [self.xi / lam.square().clamp_min(LAMBDA_FLOOR ** 2) for lam in self.lambdas]

    def term(self, net: Network, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for layer, c in zip(self.layers, self.coefficients(), strict=True):
            total = total + (_magnitude(layer) * c).sum()
        if self.kind == "halo" and self.psi:
            assert self.lambdas is not None
            total = total + self.psi * sum(lam.abs().sum() for lam in self.lambdas)
        return total

    @torch.no_grad()
    def shrink_at_zero(self, net: Network) -> None:
        """CoNNTrA: at q = 0 keep only the part of dL/dq that exceeds the penalty a move away would add."""
        for layer, c in zip(self.layers, self.coefficients(), strict=True):
            g = layer.weight.grad
            if layer.parametrisation != "discrete" or g is None:
                continue
            shape = (-1,) + (1,) * (g.dim() - 1)
            cost = layer.scale.detach().abs().reshape(shape) * (c.detach() if torch.is_tensor(c) else c)
            shrunk = torch.sign(g) * (g.abs() - cost).clamp_min(0)
            g.copy_(torch.where(layer.weight == 0, shrunk, g))

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        with torch.no_grad():
            n = sum(m.weight.numel() for m in self.layers)
            near_zero = sum(int((_magnitude(m) < 1e-3 * _magnitude(m).max().clamp_min(1e-12)).sum())
                            for m in self.layers)
            out: dict[str, Any] = {"kind": self.kind, "near_zero_fraction": near_zero / max(1, n)}
            if self.kind == "halo":
                assert self.lambdas is not None
                flat = torch.cat([lam.abs().reshape(-1) for lam in self.lambdas])
                out.update(xi=self.xi, psi=self.psi, lambda_median=float(flat.median()),
                           lambda_below_floor=float((flat < LAMBDA_FLOOR).float().mean()))
            else:
                out["strength"] = self.strength
        return {"penalty": out}
