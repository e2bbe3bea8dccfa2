"""Update rules: the pluggable part of the one training loop.

A rule gets a closure that runs the minibatch forward (and, by default, backward) pass and returns the
loss -- as torch optimizers do -- and changes the parameters. Float backprop and straight-through training
are Adam on every parameter; CoNNTrA (see `conntra.py`) moves integer weights and fits scales and biases
with Adam.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .network import Network
from .step_context import StepContext

__all__ = ["UpdateRule", "AdamRule", "Closure"]

Closure = Callable[..., torch.Tensor]  # closure(backward: bool = True) -> loss


class UpdateRule:
    """Base: one Adam optimizer over the parameters the rule fits continuously."""

    name = "base"

    def __init__(self, net: Network, total_steps: int, lr: float = 1e-3, extra_params: Iterable[nn.Parameter] = (),
                 lr_schedule: str = "constant"):
        self.net, self.total_steps, self.step_index = net, max(1, total_steps), 0
        self.lr, self.lr_schedule = lr, lr_schedule
        self.context: StepContext | None = None  # this run's per-step facts from techniques (set by the loop)
        params = list(self.continuous_params(net)) + list(extra_params)
        # fused: one pass over each tensor instead of ~8 (measured 9x faster on the 1.3M weights of a
        # 784-800-800-10 MLP, half of a float training step); same update up to rounding
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)

    def continuous_params(self, net: Network) -> Iterable[nn.Parameter]:
        return net.parameters()

    def step(self, closure: Closure) -> torch.Tensor | float:
        """One update; returns the loss as the closure gave it (a tensor: reading it back is the caller's
        choice, so a GPU step need not wait for the host)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = closure()
        self.step_continuous()
        self.step_index += 1
        return loss

    def learning_rate(self) -> float:
        """This step's Adam learning rate: a function of the step alone, so a resumed run continues exactly.
        Cosine ends near 0, which keeps a constant rate's late loss spikes out of the final weights."""
        if self.lr_schedule == "constant":
            return self.lr
        return 0.5 * self.lr * (1 + math.cos(math.pi * min(1.0, self.step_index / self.total_steps)))

    def step_continuous(self) -> None:
        """Adam's step on the continuous parameters at this step's learning rate."""
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "step_index": self.step_index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_index = int(state["step_index"])


class AdamRule(UpdateRule):
    """Float backprop, and straight-through ternary training (the parametrisation differs, not the rule)."""

    name = "adam"
