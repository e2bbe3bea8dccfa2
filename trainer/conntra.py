"""CoNNTrA: coordinate descent on weights constrained to a finite set {-L..L} * scale.

Two modes share one rule interface:
- `gradient` (default): one backward pass gives dL/dq for every coordinate. A per-weight moving average M of
  that gradient (beta 0.99, reset when the weight moves) and of its square V turn the noisy minibatch
  evidence into a ranking score |M| / sqrt(V); each layer applies its top-k proposed one-level moves against
  sign(M), with k = f * n and f decaying exponentially over training. Single-batch scores pick noise;
  the averages and the budget are what made the prototype match float backprop (see docs/algorithms.md).
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
from .rules import Closure, UpdateRule

__all__ = ["ConntraRule", "ExactConntraRule"]


def _discrete(net: Network) -> list[QuantLayer]:
    return [m for m in net.weight_layers() if m.parametrisation == "discrete"]


def _backward_and_fit_continuous(rule: UpdateRule, closure: Closure) -> torch.Tensor:
    """One forward/backward pass; Adam on scales and biases. Leaves dL/dq in the integer weights' .grad."""
    rule.optimizer.zero_grad(set_to_none=True)
    for layer in rule.layers:
        layer.weight.grad = None
    loss = closure()
    rule.step_continuous()
    return loss


class ConntraRule(UpdateRule):
    name = "conntra"

    def __init__(self, net: Network, total_steps: int, lr: float = 1e-3, extra_params: Iterable[nn.Parameter] = (),
                 beta: float = 0.99, beta2: float = 0.999, frac_start: float = 1e-2, frac_end: float = 1e-4,
                 zero_bonus: float = 0.0, lr_schedule: str = "constant"):
        super().__init__(net, total_steps, lr, extra_params, lr_schedule)
        self.beta, self.beta2, self.frac_start, self.frac_end = beta, beta2, frac_start, frac_end
        self.zero_bonus = zero_bonus
        self.layers = _discrete(net)
        self.m = [torch.zeros_like(layer.weight) for layer in self.layers]
        self.v = [torch.zeros_like(layer.weight) for layer in self.layers]
        self.moves_last_step = 0
        self._samples: dict[int, torch.Tensor] = {}

    def continuous_params(self, net: Network) -> Iterable[nn.Parameter]:
        discrete = {id(m.weight) for m in _discrete(net)}
        return [p for p in net.parameters() if id(p) not in discrete]

    def fraction(self) -> float:
        """Share of each layer's weights allowed to move this step (exponential decay)."""
        t = min(1.0, self.step_index / max(1, self.total_steps - 1))
        return self.frac_start * (self.frac_end / self.frac_start) ** t

    def step(self, closure: Closure) -> float:
        loss = _backward_and_fit_continuous(self, closure)
        frac, moved = self.fraction(), 0
        with torch.no_grad():
            for layer, m, v in zip(self.layers, self.m, self.v, strict=True):
                if layer.weight.grad is not None:
                    moved += self._move(layer, m, v, layer.weight.grad, frac)
        self.moves_last_step = moved
        self.step_index += 1
        return float(loss)

    def _move(self, layer: QuantLayer, m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, frac: float) -> int:
        """Update the averages and move weights -- of the active submatrix only when a technique set one (its
        other weights saw no data this step: their averages and values stay as they are)."""
        if layer.active is None:
            return self._move_in(layer, layer.weight.data, m, v, g, frac)
        rows, cols = layer.active

        def sub(t: torch.Tensor) -> torch.Tensor:
            t = t if rows is None else t.index_select(0, rows)
            return t if cols is None else t.index_select(1, cols)

        q_s, m_s, v_s = sub(layer.weight.data), sub(m), sub(v)
        moved = self._move_in(layer, q_s, m_s, v_s, sub(g), frac)
        for t, t_s in ((layer.weight.data, q_s), (m, m_s), (v, v_s)):
            if rows is None:
                t.index_copy_(1, cols, t_s)
            elif cols is None:
                t.index_copy_(0, rows, t_s)
            else:
                t.index_put_((rows[:, None], cols[None, :]), t_s)
        return moved

    def _move_in(self, layer: QuantLayer, q: torch.Tensor, m: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                 frac: float) -> int:
        m.lerp_(g, 1 - self.beta)  # = beta*m + (1-beta)*g in one pass
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        # |M| / sqrt(V); 0 where M was just reset (no evidence, no move). rsqrt-and-multiply in place measured
        # 3x faster than abs/sqrt/add/div with their temporaries on a 512x784 layer
        score = v.add(1e-24).rsqrt_().mul_(m.abs())
        # a weight moves one level against sign(M); at the end of the range in that direction it cannot:
        # blocked iff q and M have opposite signs and |q| == L (for ternary, the sign test alone suffices)
        qm = q * m
        if layer.levels == 1:  # a 0/1 float mask: comparisons into bool tensors (and masked_fill) cost 4x here
            score.mul_(torch.ge(qm, 0, out=torch.empty_like(qm)))
        else:
            score.masked_fill_((qm < 0) & (q.abs() == layer.levels), 0.0)
        if self.zero_bonus:  # moves that land on 0: q == sign(M) with |q| == 1
            score = torch.where((qm > 0) & (q.abs() == 1), score * (1 + self.zero_bonus), score)
        # budget floor(f*n + u) with u from a golden-ratio sequence: small layers still move at the right
        # average rate, and every process of a data-parallel run draws the same u without sharing an RNG
        u = (self.step_index * 0.6180339887498949 + self._layer_offset(layer)) % 1.0
        k = int(frac * q.numel() + u)
        if k < 1:
            return 0
        idx = self._top(score.view(-1), k)
        flat_q, flat_m = q.view(-1), m.view(-1)
        flat_q[idx] -= torch.sign(flat_m[idx])
        flat_m[idx] = 0.0
        return int(idx.numel())

    def _top(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        """Indices of the k largest positive scores. A full top-k over every weight was the largest cost of a
        step, so big layers first keep the candidates above a threshold estimated from a fixed sample (aimed
        at ~2k of them) and rank only those; exact whenever the candidates suffice (nearly always)."""
        n = flat.numel()
        sample = self._samples.get(n)
        if sample is None and n >= 65536:
            gen = torch.Generator().manual_seed(n)  # the same sample on every process
            sample = self._samples[n] = torch.randint(0, n, (8192,), generator=gen)
        if sample is not None and 8 * k < n:
            j = min(len(sample), max(2, math.ceil(2 * k * len(sample) / n)))
            threshold = torch.topk(flat[sample], j, sorted=False).values.min()
            cand = (flat >= threshold).nonzero().squeeze(1) if threshold > 0 else None
            if cand is not None and cand.numel() >= k:
                top = torch.topk(flat[cand], k, sorted=False)
                return cand[top.indices[top.values > 0]]
        top = torch.topk(flat, k, sorted=False)
        return top.indices[top.values > 0]

    def _layer_offset(self, layer: QuantLayer) -> float:
        return 0.5 * self.layers.index(layer) / max(1, len(self.layers))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "m": [t.clone() for t in self.m], "v": [t.clone() for t in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for dst, src in zip(self.m + self.v, list(state["m"]) + list(state["v"]), strict=True):
            dst.copy_(src)


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

    continuous_params = ConntraRule.continuous_params

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
