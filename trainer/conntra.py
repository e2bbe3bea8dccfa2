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
from torch.optim.adam import adam as adam_kernel

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


def _gather(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """A copy of t[rows][:, cols] (None: all)."""
    t = t if rows is None else t.index_select(0, rows)
    return t if cols is None else t.index_select(1, cols)


def _scatter(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None, part: torch.Tensor) -> None:
    """t[rows][:, cols] = part, in place: the inverse of _gather."""
    if rows is None:
        t.index_copy_(1, cols, part)
    elif cols is None:
        t.index_copy_(0, rows, part)
    else:
        t.index_put_((rows[:, None], cols[None, :]), part)


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
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.layers]  # Adam's step counts (bias correction)
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
            live = [i for i, layer in enumerate(self.layers) if layer.weight.grad is not None]
            if live:
                # each layer's (q, M, V, dL/dq): the whole tensors, or copies of the submatrix a technique marked
                # active (batchwise dropout) -- its other weights saw no data this step: averages and values stay
                qs, ms, vs, gs = zip(*(self._part(i) for i in live), strict=True)
                proposals = [torch.zeros_like(q) for q in qs]
                # M, V and the proposals of every layer in one fused pass
                adam_kernel(proposals, list(gs), list(ms), list(vs), [], [self.steps[i] for i in live], fused=True,
                            amsgrad=False, beta1=self.beta, beta2=self.beta2, lr=1.0, weight_decay=0.0, eps=1e-12,
                            maximize=False)
                for i, q, m, v, p in zip(live, qs, ms, vs, proposals, strict=True):
                    layer = self.layers[i]
                    moved += self._move(layer, q, m, p, frac)
                    if layer.active is not None:
                        for full, part in ((layer.weight.data, q), (self.m[i], m), (self.v[i], v)):
                            _scatter(full, *layer.active, part)
        self.moves_last_step = moved
        self.step_index += 1
        return float(loss)

    def _part(self, i: int) -> tuple[torch.Tensor, ...]:
        layer = self.layers[i]
        tensors = (layer.weight.data, self.m[i], self.v[i], layer.weight.grad)
        return tensors if layer.active is None else tuple(_gather(t, *layer.active) for t in tensors)

    def _move(self, layer: QuantLayer, q: torch.Tensor, m: torch.Tensor, p: torch.Tensor, frac: float) -> int:
        """Move the top-k weights of one layer one level in the direction of their proposal p; reset their M."""
        # budget floor(f*n + u) with u from a golden-ratio sequence: small layers still move at the right
        # average rate, and every process of a data-parallel run draws the same u without sharing an RNG
        u = (self.step_index * 0.6180339887498949 + self._layer_offset(layer)) % 1.0
        k = int(frac * q.numel() + u)
        if k < 1:
            return 0
        flat_q, flat_p = q.view(-1), p.view(-1)
        idx = self._top(self._scores(layer, q, p).view(-1), k)
        flat_q[idx] += torch.sign(flat_p[idx])
        m.view(-1)[idx] = 0.0
        return int(idx.numel())

    def _scores(self, layer: QuantLayer, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """|p| (= |M| / sqrt(V) up to the layer's bias corrections) where the move toward sign(p) is possible, else
        0: at the end of the range it is not -- q and p of the same sign and |q| == L (for ternary, the sign test
        alone suffices)."""
        score = p.abs()
        qp = q * p
        if layer.levels == 1:  # a 0/1 float mask: comparisons into bool tensors (and masked_fill) cost 4x here
            score.mul_(torch.le(qp, 0, out=torch.empty_like(qp)))
        else:
            score.masked_fill_((qp > 0) & (q.abs() == layer.levels), 0.0)
        if self.zero_bonus:  # moves that land on 0: q == -sign(p) with |q| == 1
            score = torch.where((qp < 0) & (q.abs() == 1), score * (1 + self.zero_bonus), score)
        return score

    def _top(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        """Indices of the k largest positive scores. A full top-k over every weight was the largest cost of a
        step, so big layers first keep the candidates above a threshold estimated from a fixed sample (aimed
        at ~2k of them) and rank only those; exact whenever the candidates suffice (nearly always). (The
        threshold must be applied to the scores, not to |p|: most large |p| belong to blocked weights.)"""
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
        return {**super().state_dict(), "m": [t.clone() for t in self.m], "v": [t.clone() for t in self.v],
                "steps": [t.clone() for t in self.steps]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for dst, src in zip(self.m + self.v + self.steps, list(state["m"]) + list(state["v"]) + list(state["steps"]),
                            strict=True):
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
