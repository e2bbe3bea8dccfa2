"""CoNNTrA: coordinate descent on weights constrained to a finite set {-L..L} * scale.

Two modes share one rule interface:
- `gradient` (default): one backward pass gives dL/dq for every coordinate. A per-weight moving average M of
  that gradient (beta 0.99, reset when the weight moves) and of its square V turn the noisy minibatch
  evidence into a ranking score |M| / sqrt(V); each layer applies its top-k proposed one-level moves against
  sign(M), with k = f * n and f decaying exponentially over training. Single-batch scores pick noise;
  the averages and the budget are what made the prototype match float backprop (see docs/algorithms.md).
  M, V and the signed score are exactly an Adam step (betas 0.99, 0.999) taken from 0 with rate 1, so one
  fused Adam kernel computes them in one pass: the proposal P = -M^/(sqrt(V^) + eps) says where each weight
  would go and how sure the evidence is (the bias corrections are common to a layer: same ranking).
- `exact`: for random blocks of k coordinates, evaluate the minibatch loss at every combination of values by
  forward passes and keep the best -- the paper's rule, affordable on small models, and the reference the
  gradient mode is checked against.
Scales and biases are fitted continuously with Adam from the same backward pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .layers import QuantLayer
from .network import Network
from .optim import CoNNTrA
from .rules import Closure, UpdateRule
from .step_context import StepContext

__all__ = ["ConntraRule", "ExactConntraRule"]


def _discrete(net: nn.Module) -> list[QuantLayer]:
    return [m for m in net.modules() if isinstance(m, QuantLayer) and m.parametrisation == "discrete"]


def _backward_and_fit_continuous(rule: UpdateRule, closure: Closure) -> torch.Tensor:
    """One forward/backward pass; Adam on scales and biases. Leaves dL/dq in the integer weights' .grad."""
    rule.optimizer.zero_grad(set_to_none=True)
    for layer in rule.layers:
        layer.weight.grad = None
    loss = closure()
    rule.step_continuous()
    return loss


class ConntraRule(UpdateRule):
    """The training loop's face of `ternkit.optim.CoNNTrA` (the one implementation of the rule)."""

    name = "conntra"

    def __init__(self, net: nn.Module, total_steps: int, lr: float = 1e-3, extra_params: Iterable[nn.Parameter] = (),
                 beta: float = 0.99, beta2: float = 0.999, frac_start: float = 1e-2, frac_end: float = 1e-4,
                 zero_bonus: float = 0.0, lr_schedule: str = "constant", kernel: str = "auto"):
        self.net, self.total_steps, self.lr, self.lr_schedule = net, max(1, total_steps), lr, lr_schedule
        self.optimizer = CoNNTrA(net, lr, total_steps=self.total_steps, frac_start=frac_start, frac_end=frac_end,
                                 beta=beta, beta2=beta2, zero_bonus=zero_bonus, lr_schedule=lr_schedule,
                                 kernel=kernel)
        extra = list(extra_params)
        if extra:
            self.optimizer.add_param_group({"params": extra})
        self.beta, self.beta2 = beta, beta2
        self.layers = _discrete(net)
        self.context: StepContext | None = None

    @property
    def step_index(self) -> int:
        return self.optimizer.step_index

    @property
    def moves_last_step(self) -> int:
        return self.optimizer.moves_last_step

    @property
    def m(self) -> list[torch.Tensor]:
        return [self.optimizer._discrete_state(p)["m"] for p in self.optimizer.discrete]

    @property
    def v(self) -> list[torch.Tensor]:
        return [self.optimizer._discrete_state(p)["v"] for p in self.optimizer.discrete]

    def fraction(self) -> float:
        return self.optimizer.fraction()

    def step(self, closure: Closure) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = closure()
        self.optimizer.step(context=self.context)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class ExactConntraRule(UpdateRule):
    """Paper-faithful coordinate descent: exhaustive search over blocks of `block` coordinates per step."""

    name = "conntra-exact"

    def __init__(self, net: Network, total_steps: int, lr: float = 1e-3, extra_params: Iterable[nn.Parameter] = (),
                 block: int = 2, coords_per_step: int = 32, seed: int = 0, lr_schedule: str = "constant"):
        super().__init__(net, total_steps, lr, extra_params, lr_schedule)
        self.layers = _discrete(net)
        self.block, self.coords_per_step, self.seed = block, coords_per_step, seed
        sizes = torch.tensor([float(m.weight.numel()) for m in self.layers])
        self.layer_prob = sizes / sizes.sum()
        self.evaluations = 0

    def continuous_params(self, net: nn.Module) -> Iterable[nn.Parameter]:
        discrete = {id(m.weight) for m in _discrete(net)}
        return [p for p in net.parameters() if id(p) not in discrete]

    def step(self, closure: Closure) -> float:
        loss = _backward_and_fit_continuous(self, closure)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step_index)
        with torch.no_grad():
            best_loss = float(closure(backward=False))
            for _ in range(max(1, math.ceil(self.coords_per_step / self.block))):
                layer = self.layers[int(torch.multinomial(self.layer_prob, 1, generator=gen))]
                flat = layer.weight.data.view(-1)
                idx = torch.randperm(flat.numel(), generator=gen)[: self.block]
                best = flat[idx].clone()
                values = range(-layer.levels, layer.levels + 1)
                for combo in itertools.product(values, repeat=len(idx)):
                    cand = torch.tensor(combo, dtype=flat.dtype)
                    if torch.equal(cand, best):
                        continue
                    flat[idx] = cand
                    trial = float(closure(backward=False))
                    self.evaluations += 1
                    if trial < best_loss:
                        best_loss, best = trial, cand
                flat[idx] = best
        self.step_index += 1
        return float(loss)
