"""Go wide, then narrow (Zhou et al., ICML 2020): train a thin network through a wide teacher.

1. Teacher: the same spec with every hidden layer K times wider, trained by the one `train()` with the
   run's own method (on the MNIST sample a CoNNTrA teacher was the better target: 94.0 % vs 93.2 % thin
   accuracy with a float teacher of the same epochs), or an existing artifact (`--teacher model.tern`) with
   the same layer sequence.
2. Layerwise imitation, bottom to top. The thin network is plugged into the teacher: thin block i reads the
   (mapped) output of thin block i-1 and its output h_i is mapped to the teacher's width by a linear map E_i
   (a matrix, or a 1x1 convolution for conv blocks; no bias) -- E_i h_i stands in for the teacher's H_i, so the
   teacher's upper layers run on it and the hybrid's accuracy is meaningful. For block i, only thin block i
   and E_i are trained, on MSE(E_i h_i, H_i) alone (`Hooks.task_loss` drops the cross-entropy), by `fit`.
3. Merge: the layer after E_i is linear in its input, so W~_{i+1} E_i is one thin weight (dense: a matrix
   product; conv: the 1x1 map folded into the kernel's input channels; dense after flatten: folded per
   spatial position). E has no bias and maps the zero padding to zero, so the merged thin network computes
   exactly the hybrid's function (up to float rounding; tested). The top layer is the teacher's, merged with
   the last E.
4. Fine-tune on the labels with the chosen method through `train(config, net=thin)`. The merged weights are
   float: `float` starts from them, `ste` uses them as its latent weights (TWN ternarises in every forward
   pass), and `conntra` starts from their re-quantisation: per output unit (or layer, `--scale layer`) the
   TWN threshold 0.7 * mean|w| gives the trits and the mean surviving |w| the scale (levels > 1: scale
   max|w|/L, rounded). CoNNTrA then moves those trits; penalties and pruning compose (they attach here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ternkit.core.data import Split, load_split, normalisation
from ternkit.core.errors import OptionError
from ternkit.core.io import load_model
from ternkit.core.model import Conv2d, Dense, InputSpec, TernaryModel
from ternkit.core.ops import handler

from .config import METHODS, TrainConfig
from .defaults import resolve_defaults, schedule_for
from .layers import QuantLayer
from .loop import Hooks, fit
from .network import Network, build_network
from .rules import AdamRule
from .run import PARAMETRISATION, TrainResult, train_run
from .specs import ConvPlan, DensePlan, parse_model_spec
from .technique import Options, Technique, option, register, techniques_for

__all__ = ["KEY", "widen_spec", "widen_settings", "teacher_from_model", "Imitation", "imitate", "merge",
           "load_float_weights", "go_wide_then_narrow"]

KEY = "widen"  # config.extra[KEY] = {"factor": 4, "teacher": None, "teacher_epochs": .., "imitate_epochs": ..}
# measured on the MNIST sample (784-32-32-10, CoNNTrA, x4 teacher, 30 fine-tune epochs, 3 seeds; docs/compression.md):
# teacher 10 epochs (the data's default schedule) + 3 imitation epochs per block gave the same thin accuracy as the
# old teacher = --epochs (30) + 2 (93.24 vs 93.17 %) for a third of the teacher's epochs; 10 + 6 and 20 + 3 were not
# better. teacher_epochs None = the default schedule's epochs for the training split (resolve_defaults fills it in).
IMITATE_EPOCHS = 3


def widen_spec(spec: str, factor: int) -> str:
    """The same model spec with every hidden layer `factor` times wider (conv channels, dense units)."""
    if spec.partition(":")[0] not in ("mlp", "cnn"):
        raise OptionError(f"--widen needs an mlp: or cnn: spec of plain conv and dense layers, not {spec!r}")
    plans = parse_model_spec(spec)
    kind = spec.partition(":")[0]
    tokens = []
    for p in plans:
        plain_conv = isinstance(p, ConvPlan) and not (p.depthwise or p.batchnorm or p.groups != 1) and isinstance(
            p.kernel, int) and isinstance(p.padding, int)
        if plain_conv:
            tokens.append(f"{p.channels * factor}c{p.kernel}s{p.stride}p{p.padding}")
        elif isinstance(p, DensePlan) and not p.batchnorm:
            tokens.append(str(p.units * factor))
        else:
            raise OptionError(f"--widen needs an mlp: or cnn: spec of plain conv and dense layers; {spec!r} has {p}")
    if kind == "mlp":
        return "mlp:" + "x".join(tokens)
    return "cnn:" + "-".join(tokens)


def widen_settings(config: TrainConfig) -> dict[str, Any] | None:
    raw = config.extra.get(KEY)
    if raw is None:
        return None
    s = {"factor": 4, "teacher": None, "teacher_epochs": None, "imitate_epochs": IMITATE_EPOCHS,
         "teacher_method": config.method, **{k: v for k, v in raw.items() if v is not None}}
    if s["teacher"] is None and not (isinstance(s["factor"], int) and 2 <= s["factor"] <= 64):
        raise OptionError(f"--widen must be an integer in 2..64, got {s['factor']!r}")
    for name in ("teacher_epochs", "imitate_epochs"):
        if name == "teacher_epochs" and s[name] is None:
            continue  # not given: resolved from the training split's size
        if not isinstance(s[name], int) or not 1 <= s[name] <= 100_000:
            raise OptionError(f"--{name.replace('_', '-')} must be in 1..100000, got {s[name]!r}")
    if s["teacher_method"] not in METHODS:
        raise OptionError(f"teacher method must be one of {', '.join(METHODS)}, got {s['teacher_method']!r}")
    if s["teacher"] is not None and not Path(s["teacher"]).is_file():
        raise OptionError(f"--teacher {s['teacher']}: no such file")
    unknown = set(s) - {"factor", "teacher", "teacher_epochs", "imitate_epochs", "teacher_method"}
    if unknown:
        raise OptionError(f"unknown widen settings: {', '.join(sorted(unknown))}")
    return s


def _defaults(config: TrainConfig, n_samples: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """The teacher's epochs where not given: the data's default schedule (the record `resolve_defaults` keeps)."""
    widen = widen_settings(config)
    if widen is None:
        return None, None, ""
    if widen["teacher"] is None and widen["teacher_epochs"] is None:  # the data's default schedule
        widen["teacher_epochs"] = schedule_for(n_samples, config.batch_size, config.lr)["epochs"]
    shown = {k: widen[k] for k in ("teacher_epochs", "imitate_epochs", "teacher_method")}
    return widen, shown, "go wide then narrow: measured teacher and imitation epochs"


@dataclass(frozen=True)
class WidenOptions(Options):
    """--widen K or --teacher MODEL, with --teacher-epochs and --imitate-epochs."""

    group = "smaller models (docs/compression.md)"
    factor: int | None = option("--widen", type=int, metavar="K",
                                help="go wide then narrow: train a K-times wider teacher, imitate it layerwise, "
                                     "fine-tune")
    teacher: str | None = option("--teacher", metavar="MODEL",
                                 help="go wide then narrow with this trained model as the teacher (instead of "
                                      "--widen)")
    teacher_epochs: int | None = option("--teacher-epochs", type=int, metavar="N",
                                        help="--widen: epochs of the wide teacher (default: the data's default number "
                                             "of epochs, not --epochs: 10 on the MNIST sample)")
    imitate_epochs: int | None = option("--imitate-epochs", type=int, metavar="N",
                                        help="--widen/--teacher: imitation epochs per hidden block (default: 3)")

    def to_extra(self) -> dict[str, Any] | None:
        if self.factor is not None and self.teacher is not None:
            raise OptionError("use either --widen K (train a wide teacher) or --teacher MODEL, not both")
        if self.factor is None and self.teacher is None:
            if self.teacher_epochs or self.imitate_epochs:
                raise OptionError("--teacher-epochs and --imitate-epochs need --widen K or --teacher MODEL")
            return None
        if self.teacher is not None and self.teacher_epochs is not None:
            raise OptionError("--teacher-epochs trains a wide teacher; it does not apply to --teacher MODEL")
        return {"factor": self.factor, "teacher": None if self.teacher is None else str(Path(self.teacher)),
                "teacher_epochs": self.teacher_epochs, "imitate_epochs": self.imitate_epochs}


@register(KEY, order=100, defaults=_defaults, options=WidenOptions, settings=widen_settings)
def _no_technique(config: TrainConfig) -> list[Technique]:
    """Widening is a stage above the run (`ternkit.trainer.api.train`), not a technique inside it: it registers
    for its settings' defaults only."""
    return []


class _Renormalise(nn.Module):
    """Student-normalised input -> the teacher's normalisation (the two may come from different splits)."""

    def __init__(self, student: InputSpec, teacher: InputSpec):
        super().__init__()
        a = np.asarray(student.std, np.float64) / np.asarray(teacher.std, np.float64)
        b = (np.asarray(student.mean, np.float64) - np.asarray(teacher.mean, np.float64)) / np.asarray(
            teacher.std, np.float64)
        self.register_buffer("a", torch.from_numpy(a.astype(np.float32)))
        self.register_buffer("b", torch.from_numpy(b.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.a + self.b


def _float_weights(op: Dense | Conv2d, m: QuantLayer) -> QuantLayer:
    """The float layer `m` holding the artifact operation's deployed weights scale * q."""
    w = op.weight.astype(np.float32) * op.scale.astype(np.float32).reshape((-1,) + (1,) * (op.weight.ndim - 1))
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(op.bias.astype(np.float32)))
    return m


# the teacher's torch layer per artifact operation (a plain chain of these is what go wide then narrow handles)
_TEACHER_LAYERS: dict[str, Any] = {
    "dense": lambda op: _float_weights(op, QuantLayer("dense", op.in_features, op.out_features, "float")),
    "conv2d": lambda op: _float_weights(op, QuantLayer("conv", op.in_channels, op.out_channels, "float",
                                                       kernel=op.kernel, stride=op.stride, padding=op.padding)),
    "relu": lambda op: nn.ReLU(),
    "flatten": lambda op: nn.Flatten(),
}


def teacher_from_model(model: TernaryModel, student: InputSpec) -> Network:
    """A float torch network computing the artifact's function on student-normalised input."""
    if tuple(model.input.shape) != tuple(student.shape):
        raise OptionError(f"teacher takes input {tuple(model.input.shape)}, the dataset has {tuple(student.shape)}")
    kinds = {op.kind for op in model.layers}
    if not model.is_chain or not kinds <= {"dense", "conv2d", "relu", "flatten"} or any(
            getattr(op, "groups", 1) != 1 for op in model.layers):
        raise OptionError("go wide then narrow needs a plain chain of dense/conv2d (groups=1), relu and flatten "
                          f"layers; the teacher has {', '.join(sorted(kinds))}")
    layers = [handler(_TEACHER_LAYERS, op, "go wide then narrow (teacher)")(op) for op in model.layers]
    net = Network([_Renormalise(student, model.input), *layers], tuple(student.shape))
    return net.requires_grad_(False)


def _structure(net: Network) -> list[tuple[Any, ...]]:
    """The layer sequence without widths: what a teacher and its thin student must share."""
    out: list[tuple[Any, ...]] = []
    for m in net.layers:
        if isinstance(m, QuantLayer):
            out.append((m.kind, m.weight.shape[2:] if m.kind == "conv" else (), m.stride, m.padding, m.groups))
        elif not isinstance(m, _Renormalise):
            out.append((type(m).__name__,))
    return out


def _hidden_positions(net: Network) -> list[int]:
    """Positions of the hidden weight layers (each followed by a ReLU); the last weight layer is the output."""
    pos = [i for i, m in enumerate(net.layers) if isinstance(m, QuantLayer)][:-1]
    for i in pos:
        if i + 1 >= len(net.layers) or not isinstance(net.layers[i + 1], nn.ReLU):
            raise OptionError("go wide then narrow needs every hidden weight layer followed by a ReLU")
    return pos


class Imitation(nn.Module):
    """The thin network plugged into the teacher: thin blocks 0..depth, maps E_i to the teacher's widths, then
    the teacher's remaining layers. Thin block i reads the teacher-wide input (E_{i-1} h_{i-1})."""

    def __init__(self, teacher: Network, thin: Network):
        super().__init__()
        if _structure(teacher) != _structure(thin):
            raise OptionError("the teacher's layer sequence (kinds, kernels, strides) differs from the thin model's")
        self.teacher, self.positions = teacher, _hidden_positions(teacher)
        t_layers = [teacher.layers[p] for p in self.positions]
        s_layers = [thin.layers[p] for p in _hidden_positions(thin)]
        self.blocks, self.maps = nn.ModuleList(), nn.ModuleList()
        for t, s in zip(t_layers, s_layers, strict=True):
            wide_out, thin_out, wide_in = t.weight.shape[0], s.weight.shape[0], t.weight.shape[1]
            # start from the teacher's strongest units: W~ = their rows, E = the embedding back into place
            w = t.effective_weight().detach()
            rows = torch.sort(torch.topk(w.reshape(wide_out, -1).norm(dim=1), thin_out).indices).values
            block = QuantLayer(t.kind, wide_in, thin_out, "float", kernel=tuple(w.shape[2:]) if t.kind == "conv" else 1,
                               stride=t.stride, padding=t.padding)
            emb = torch.zeros(wide_out, thin_out)
            emb[rows, torch.arange(thin_out)] = 1.0
            with torch.no_grad():
                block.weight.copy_(w[rows])
                block.bias.copy_(t.bias.detach()[rows])
            if t.kind == "conv":
                emap: nn.Module = nn.Conv2d(thin_out, wide_out, 1, bias=False)
                emb = emb[:, :, None, None]
            else:
                emap = nn.Linear(thin_out, wide_out, bias=False)
            with torch.no_grad():
                emap.weight.copy_(emb)
            self.blocks.append(block)
            self.maps.append(emap)
        self.teacher.requires_grad_(False)
        self.depth = len(self.blocks) - 1
        self.mapped: torch.Tensor | None = None

    def train_only(self, depth: int) -> list[nn.Parameter]:
        """Freeze all but thin block `depth` and its map; the forward stops using the teacher's block there."""
        self.depth = depth
        self.requires_grad_(False)
        params = [*self.blocks[depth].parameters(), *self.maps[depth].parameters()]
        for p in params:
            p.requires_grad_(True)
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        layers = list(self.teacher.layers)
        j = 0
        while j < len(layers):
            if i < len(self.positions) and j == self.positions[i]:
                if i <= self.depth:
                    x = self.maps[i](torch.relu(self.blocks[i](x)))
                    if i == self.depth:
                        self.mapped = x
                    j += 2  # the block replaces the teacher's layer and its ReLU
                    i += 1
                    continue
                i += 1
            x = layers[j](x)
            j += 1
        return x

    @torch.no_grad()
    def teacher_hidden(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """The teacher's own output of hidden block `depth` (after its ReLU)."""
        stop = self.positions[depth] + 1
        for m in list(self.teacher.layers)[:stop + 1]:
            x = m(x)
        return x


def _fold(w_next: torch.Tensor, emap: nn.Module, kind_next: str) -> torch.Tensor:
    """W~_{i+1} composed with E_i: a weight that reads the thin h_i directly."""
    e = emap.weight.detach()
    if e.dim() == 4:  # conv map (wide, thin, 1, 1)
        e2 = e[:, :, 0, 0]
        if kind_next == "conv":
            return torch.einsum("oikl,it->otkl", w_next, e2)
        wide = e2.shape[0]
        spatial = w_next.shape[1] // wide
        folded = torch.einsum("ois,it->ots", w_next.reshape(w_next.shape[0], wide, spatial), e2)
        return folded.reshape(w_next.shape[0], -1)
    return w_next @ e


@torch.no_grad()
def merge(imitation: Imitation) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Thin (weight, bias) per weight layer, with every map E_i folded into the layer after it."""
    t_out = [m for m in imitation.teacher.layers if isinstance(m, QuantLayer)][-1]
    weights = [b.effective_weight().detach().clone() for b in imitation.blocks] + [t_out.effective_weight().detach()]
    biases = [b.bias.detach().clone() for b in imitation.blocks] + [t_out.bias.detach().clone()]
    kinds = [b.kind for b in imitation.blocks] + [t_out.kind]
    for i, emap in enumerate(imitation.maps):
        weights[i + 1] = _fold(weights[i + 1], emap, kinds[i + 1])
    if isinstance(imitation.teacher.layers[0], _Renormalise):
        weights[0], biases[0] = _fold_input(weights[0], biases[0], imitation.teacher.layers[0], kinds[0])
    return list(zip(weights, biases, strict=True))


def _fold_input(w: torch.Tensor, b: torch.Tensor, renorm: _Renormalise, kind: str) -> tuple[torch.Tensor, ...]:
    """A teacher loaded from a file renormalises its input; fold that affine map into the first thin layer
    (dense only: a conv's zero padding would not commute with the shift)."""
    if torch.all(renorm.a == 1) and torch.all(renorm.b == 0):
        return w, b
    if kind != "dense":
        raise OptionError("a conv teacher must share the dataset's normalisation (train it on the same data)")
    a, s = renorm.a.reshape(-1), renorm.b.reshape(-1)
    a, s = a.expand(w.shape[1]), s.expand(w.shape[1])
    return w * a, b + w @ s


@torch.no_grad()
def load_float_weights(net: Network, weights: list[tuple[torch.Tensor, torch.Tensor]], levels: int = 1) -> None:
    """Set a network's weight layers from float (weight, bias) pairs, re-quantising for `discrete` layers."""
    layers = net.weight_layers()
    if len(layers) != len(weights):
        raise ValueError("layer count differs")
    for layer, (w, b) in zip(layers, weights, strict=True):
        if layer.weight.shape != w.shape:
            raise ValueError(f"shape {tuple(w.shape)} does not fit {tuple(layer.weight.shape)}")
        layer.bias.copy_(b)
        if layer.parametrisation != "discrete":
            layer.weight.copy_(w)
            continue
        per_row = layer.scale.numel() > 1
        rows = w.reshape(w.shape[0], -1) if per_row else w.reshape(1, -1)
        if levels == 1:
            delta = 0.7 * rows.abs().mean(dim=1, keepdim=True)
            t = (rows > delta).float() - (rows < -delta).float()
            s = (rows.abs() * t.abs()).sum(1) / t.abs().sum(1).clamp_min(1)
            q = t
        else:
            s = rows.abs().amax(dim=1) / levels
            q = (rows / s.clamp_min(1e-12)[:, None]).round().clamp(-levels, levels)
        layer.weight.copy_(q.reshape(w.shape))
        layer.scale.copy_(s.clamp_min(1e-8).reshape(layer.scale.shape))


def imitate(imitation: Imitation, train_t: tuple[torch.Tensor, torch.Tensor], val_t: tuple[torch.Tensor, ...], *,
            epochs: int, batch_size: int, lr: float, seed: int, progress: bool = False) -> list[dict[str, Any]]:
    """Stage 2: train each thin block on MSE against the teacher's block output, bottom to top, with `fit`."""
    history = []
    for depth in range(len(imitation.blocks)):
        imitation.train_only(depth)

        def mse(net: nn.Module, xb: torch.Tensor, logits: torch.Tensor, depth: int = depth) -> torch.Tensor:
            assert imitation.mapped is not None
            return F.mse_loss(imitation.mapped, imitation.teacher_hidden(xb, depth))

        hooks = Hooks(loss_terms=[mse], task_loss=lambda out, y: out.new_zeros(()))
        steps = epochs * max(1, -(-len(train_t[0]) // batch_size))
        rule = AdamRule(imitation, steps, lr=lr)  # frozen parameters get no gradient, so Adam leaves them
        h = fit(imitation, rule, train_t, val_t, epochs=epochs, batch_size=batch_size, seed=seed + depth,
                hooks=hooks, progress=progress)
        last = h["epochs"][-1]
        history.append({"block": depth, "mse": last["loss"], "hybrid_train_error": last["train_error"],
                        "hybrid_val_error": last["val_error"], "seconds": h["train_seconds"]})
    imitation.requires_grad_(False)
    return history


class _StageReport(Technique):
    """Adds the stage timings to the fine-tune run's metrics (and so to the artifact and its JSON)."""

    name = "wide_then_narrow"

    def __init__(self, report: dict[str, Any]):
        self.report = report

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        self.t0 = time.perf_counter()
        return []

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        self.report["finetune_seconds"] = time.perf_counter() - self.t0
        return {"wide_then_narrow": self.report}


def go_wide_then_narrow(config: TrainConfig, *, out: str | Path | None = None, progress: bool = True,
                        split: Split | None = None) -> TrainResult:
    """Teacher (trained wide or loaded) -> layerwise imitation -> merge -> fine-tune `config.model` with
    `config.method` for `config.epochs`. Returns the fine-tuned thin model; metrics carry each stage's time."""
    config.validate()
    if widen_settings(config) is None:
        raise OptionError("go wide then narrow needs --widen K or --teacher MODEL")
    split = split or load_split(config.dataset, config.seed, config.val_fraction, config.test)
    # the stages need concrete values; the fine-tune's train() resolves `config` alike and records the defaults
    resolved, _ = resolve_defaults(config, len(split.train))
    settings = resolved.extra[KEY]
    mean, std = normalisation(split.train)
    spec = InputSpec(split.train.shape, mean, std)
    n_classes = len(split.train.labels)
    report: dict[str, Any] = {"factor": None if settings["teacher"] else settings["factor"],
                              "teacher": settings["teacher"]}
    base_extra = {k: v for k, v in config.extra.items() if k == KEY}  # the teacher trains without penalties

    t0 = time.perf_counter()
    if settings["teacher"] is not None:
        model = load_model(settings["teacher"])
        if list(model.labels) != list(split.train.labels):
            raise OptionError(f"--teacher {settings['teacher']}: its classes differ from the dataset's")
        teacher = teacher_from_model(model, spec)
        report["teacher_spec"] = "file"
    else:
        wide = widen_spec(config.model, settings["factor"])
        tcfg = replace(config, model=wide, method=settings["teacher_method"], mode="gradient",
                       levels=config.levels if settings["teacher_method"] == "conntra" else 1,
                       epochs=settings["teacher_epochs"], extra={"teacher_of": base_extra})
        t_out = None if out is None else str(out)[: -len(".tern")] + ".teacher.tern"
        result = train_run(tcfg, out=t_out, progress=progress, split=split, techniques=[])
        teacher = result.net.requires_grad_(False)
        report.update(teacher_spec=wide, teacher_method=tcfg.method, teacher_test_error=result.metrics.get(
            "test_error"), teacher_val_error=result.metrics["val_error"])
    report["teacher_seconds"] = time.perf_counter() - t0

    thin_float = build_network(config.model, spec.shape, n_classes, "float", seed=config.seed)
    t0 = time.perf_counter()
    imitation = Imitation(teacher, thin_float)
    train_t = (torch.from_numpy(spec.normalise(split.train.x)), torch.from_numpy(split.train.y))
    val_t = (torch.from_numpy(spec.normalise(split.val.x)), torch.from_numpy(split.val.y))
    report["imitation"] = imitate(imitation, train_t, val_t, epochs=settings["imitate_epochs"],
                                  batch_size=resolved.batch_size, lr=resolved.lr, seed=config.seed,
                                  progress=progress)
    report["imitation_seconds"] = time.perf_counter() - t0

    thin = build_network(config.model, spec.shape, n_classes, PARAMETRISATION[config.method], seed=config.seed,
                         levels=config.levels, scale_mode=config.scale)
    load_float_weights(thin, merge(imitation), levels=config.levels)
    techniques = techniques_for(config) + [_StageReport(report)]
    result = train_run(config, out=out, progress=progress, split=split, net=thin, techniques=techniques)
    return result
