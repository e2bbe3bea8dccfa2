"""Dropout as a Technique of the one loop: batchwise on weight submatrices (Graham, Reizenstein, Robinson
2015) and the standard per-sample mask dropout it is compared against.

Batchwise: one pattern per minibatch. Before each step, every dense layer whose input has a dropout rate p
keeps exactly round(n (1 - p)) of its n input units (at least one), the same for the whole batch. The layer
multiplies the kept input columns by the submatrix W[kept outputs, kept inputs]; when the previous layer is a
dense layer joined by a ReLU only, that layer computes just the kept units (its rows of the submatrix), so a
dropped unit is never computed, in the forward or the backward pass, and only the submatrix gets a gradient.
Each layer's `active` names the submatrix, and CoNNTrA updates only it -- its averages and values, as the
paper updates only the submatrix (3 seeds on 784-800-800-10: +0.26 pp test accuracy over letting the other
weights' averages decay, and a rule step on a quarter of the weights). Adam (float, STE) still decays the
other weights' moments and moves them a little, as with mask dropout: a lazy Adam gained nothing there.
Kept inputs are scaled by n / kept while training ("inverted" dropout), which is the paper's test-time weight
scaling moved to training time: evaluation and the exported artifact use the full matrix unchanged.

Mask: a fresh mask per sample on each such layer's input, the full matrix (the baseline).

Both draw from a generator seeded by (run seed, step), so a resumed run drops the same units.

Rates: `batchwise:P` drops hidden units with rate P and keeps every network input; `batchwise:P0,P1,...`
gives one rate per dense layer's input in order (the first is the network input for an MLP; the last value
repeats), e.g. `batchwise:0.2,0.5` = input 0.2, hidden 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .approx import MacCounter, product_macs, remove_ops
from .config import TrainConfig
from .layers import QuantLayer
from .loop import Hooks
from .network import Network
from .step_context import StepContext
from .technique import Options, Technique, option, register, reseed

__all__ = ["KEY", "KINDS", "parse_dropout", "dropout_settings", "from_config", "Dropout", "BatchwiseOp", "MaskOp"]

KEY = "dropout"  # config.extra[KEY] = {"kind": "batchwise" | "mask", "rates": [p] or [p_input, p_hidden, ...]}
KINDS = ("batchwise", "mask")


def parse_dropout(text: str) -> dict[str, Any]:
    """'batchwise:0.5' / 'mask:0.2,0.5' -> {'kind': ..., 'rates': [...]} (CLI helper; validated)."""
    kind, _, body = text.partition(":")
    try:
        rates = [float(t) for t in body.split(",")] if body else []
    except ValueError:
        rates = None
    if kind not in KINDS or not rates:
        raise OptionError(f"--dropout must look like batchwise:0.5, mask:0.5 or batchwise:0.2,0.5; got {text!r}")
    return _validated({"kind": kind, "rates": rates})


def _validated(raw: dict[str, Any]) -> dict[str, Any]:
    kind, rates = raw.get("kind"), raw.get("rates")
    if kind not in KINDS:
        raise OptionError(f"--dropout kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(rates, list) or not rates or not all(isinstance(p, (int, float)) and 0 <= p < 1 for p in rates):
        raise OptionError(f"--dropout rates must be numbers in [0, 1), got {rates!r}")
    return {"kind": kind, "rates": [float(p) for p in rates]}


def dropout_settings(config: TrainConfig) -> dict[str, Any] | None:
    raw = config.extra.get(KEY)
    return None if raw is None else _validated(raw)


def layer_rates(net: Network, rates: list[float]) -> list[float]:
    """The input dropout rate of every weight layer (0 for convolutions; see the module docstring)."""
    dense = [m.kind == "dense" for m in net.weight_layers()]
    if len(rates) == 1:  # one rate: hidden units only
        first_fed_by_input = dense[0]
        out, i = [], 0
        for is_dense in dense:
            out.append(0.0 if not is_dense or (i == 0 and first_fed_by_input) else rates[0])
            i += is_dense
        return out
    out, i = [], 0
    for is_dense in dense:
        out.append(rates[min(i, len(rates) - 1)] if is_dense else 0.0)
        i += is_dense
    return out


def _chained(net: Network) -> list[bool]:
    """chained[j]: weight layer j's input is exactly weight layer j-1's output through ReLUs (both dense)."""
    out, prev, between_ok = [], None, False
    for m in net.layers:
        if isinstance(m, QuantLayer):
            out.append(prev is not None and between_ok and prev.kind == "dense" and m.kind == "dense")
            prev, between_ok = m, True
        elif not isinstance(m, nn.ReLU):
            between_ok = False
    return out


class _Op:
    def __init__(self, layer: QuantLayer, index: int, counter: MacCounter, inner=None):
        self.layer, self.index, self.counter, self.inner = layer, index, counter, inner

    def _product(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.layer.base_op(x, w, b, s) if self.inner is None else self.inner(x, w, b, s)

    def _count(self, x: torch.Tensor, w: torch.Tensor, n_in: int, n_in_full: int, n_out_full: int) -> None:
        passes = 3 if x.requires_grad else 2
        full = product_macs(self.layer, x, w, n_in_full) * n_out_full // max(1, w.shape[0])
        self.counter.add(self.index, passes * product_macs(self.layer, x, w, n_in), passes * full)


class BatchwiseOp(_Op):
    """Multiply by W[out_idx][:, in_idx]; `x_reduced` when the input already holds only the kept units."""

    in_idx: torch.Tensor | None = None
    out_idx: torch.Tensor | None = None
    x_reduced = False

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None = None
                 ) -> torch.Tensor:
        if not self.layer.training:
            return self._product(x, w, b, s)
        n_out, n_in = w.shape[0], w.shape[1]
        if self.out_idx is not None:
            w, b = w.index_select(0, self.out_idx), b.index_select(0, self.out_idx)
            if s is not None and s.numel() > 1:  # a scale per output unit (else one per layer)
                s = s.index_select(0, self.out_idx)
        if self.in_idx is not None:
            if not self.x_reduced:
                x = x.index_select(1, self.in_idx)
            w = w.index_select(1, self.in_idx)
            scale = n_in / self.in_idx.numel()  # inverted dropout: scale the smaller operand
            if w.numel() <= x.numel():
                w = w * scale
            else:
                x = x * scale
        self._count(x, w, x.shape[1], n_in, n_out)
        return self._product(x, w, b, s)


class MaskOp(_Op):
    """Standard dropout: a fresh mask per sample on the layer's input, the full matrix."""

    def __init__(self, layer: QuantLayer, index: int, counter: MacCounter, rate: float, generator: torch.Generator,
                 inner=None):
        super().__init__(layer, index, counter, inner)
        self.rate, self.generator = rate, generator

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, s: torch.Tensor | None = None
                 ) -> torch.Tensor:
        if not self.layer.training:
            return self._product(x, w, b, s)
        keep = torch.empty_like(x).bernoulli_(1 - self.rate, generator=self.generator)
        x = x * keep.mul_(1 / (1 - self.rate))
        self._count(x, w, w.shape[1], w.shape[1], w.shape[0])
        return self._product(x, w, b, s)


class Dropout(Technique):
    name = "dropout"

    def __init__(self, kind: str, rates: list[float], seed: int = 0):
        self.kind, self.rates, self.seed = kind, rates, seed
        self.counter = MacCounter()
        self.ops: list[_Op] = []
        self.context: StepContext | None = None

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        layers = net.weight_layers()
        rates = layer_rates(net, self.rates)
        gen = torch.Generator()
        if self.kind == "mask":
            hooks.before_step.append(lambda _net, step: reseed(gen, self.seed, 11, step))
            for i, (layer, p) in enumerate(zip(layers, rates, strict=True)):
                if p > 0:
                    layer.op = MaskOp(layer, i, self.counter, p, gen, inner=layer.op)
                    self.ops.append(layer.op)
            return []
        if not getattr(net, "is_chain", False):
            raise OptionError("--dropout batchwise needs a plain chain of layers (an mlp: or cnn: spec); this model "
                              "is a graph: use --dropout mask:P")
        chained = _chained(net)
        ops: list[BatchwiseOp] = []
        for i, layer in enumerate(layers):
            op = BatchwiseOp(layer, i, self.counter, inner=layer.op)
            layer.op = op
            ops.append(op)
        self.ops = list(ops)
        self.context = context = hooks.context
        in_features = [m.weight.shape[1] for m in layers]

        def draw(_net: Network, step: int) -> None:
            reseed(gen, self.seed, 11, step)
            for op in ops:
                op.in_idx = op.out_idx = None
                op.x_reduced = False
            for j, op in enumerate(ops):
                if rates[j] <= 0:
                    continue
                n = in_features[j]
                keep = max(1, round(n * (1 - rates[j])))
                op.in_idx = torch.randperm(n, generator=gen)[:keep].sort().values
                if chained[j]:  # the previous layer computes only these units
                    ops[j - 1].out_idx = op.in_idx
                    op.x_reduced = True
            for op in ops:  # only the submatrix is updated (by rules that honour it: CoNNTrA's), via the step context
                context.restrict(op.layer.weight, op.out_idx, op.in_idx)

        hooks.before_step.append(draw)
        return []

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        for layer in net.weight_layers():
            remove_ops(layer, _Op)
            if self.context is not None:
                self.context.restrict(layer.weight, None, None)
        return {"dropout": {"kind": self.kind, "rates": self.rates, **self.counter.summary()}}


@dataclass(frozen=True)
class DropoutOptions(Options):
    """--dropout KIND:P[,P...]."""

    spec: str | None = option("--dropout", metavar="KIND:P[,P...]",
                              help="batchwise:0.5 (one pattern per batch, weight submatrices) or mask:0.5 (per "
                                   "sample); batchwise:0.2,0.5 = input 0.2, hidden 0.5")

    def to_extra(self) -> dict[str, Any] | None:
        return None if self.spec is None else parse_dropout(self.spec)


# after approx: wraps its op
@register(KEY, order=20, options=DropoutOptions, settings=dropout_settings)
def from_config(config: TrainConfig) -> list[Technique]:
    settings = dropout_settings(config)
    if settings is None:
        return []
    return [Dropout(settings["kind"], settings["rates"], seed=config.seed)]
