"""Build the torch network for a model spec (or wrap a user's module), and turn a trained network into the
artifact (by tracing: see `trace.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ternkit.core.errors import OptionError
from ternkit.core.model import InputSpec, TernaryModel
from ternkit.core.ops import window_out

from .layers import QuantLayer
from .specs import ConvPlan, DensePlan, MobileNetPlan, PoolPlan, ResNetPlan, SEPlan, parse_model_spec

__all__ = ["Network", "build_network", "to_artifact", "MAX_PARAMETERS"]

MAX_PARAMETERS = 200_000_000  # 800 MB of float32 weights: far beyond an edge model, well within memory


class Network(nn.Module):
    """What the training loop trains: a chain of layers (`layers`, the spec networks `mlp:`/`cnn:`, which the
    chain-only techniques need) or any module (`body`: a `resnet:` spec, a user's model)."""

    def __init__(self, layers: list[nn.Module] | nn.Module, input_shape: tuple[int, ...]):
        super().__init__()
        if isinstance(layers, nn.Module):
            self.body = layers
        else:
            self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(input_shape)

    @property
    def is_chain(self) -> bool:
        return "layers" in self._modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_chain:
            return self.body(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def weight_layers(self) -> list[QuantLayer]:
        return [m for m in self.modules() if isinstance(m, QuantLayer)]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Block(nn.Module):
    """A basic residual block: conv-BN-ReLU-conv-BN plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, q: Any):
        super().__init__()
        self.conv1, self.bn1 = q("conv", cin, cout, kernel=3, stride=stride, padding=1), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = q("conv", cout, cout, kernel=3, stride=1, padding=1), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            q("conv", cin, cout, kernel=1, stride=stride, padding=0), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.shortcut(x))


class _ResNet(nn.Module):
    def __init__(self, plan: ResNetPlan, in_channels: int, num_classes: int, q: Any):
        super().__init__()
        w0 = plan.widths[0]
        self.stem = nn.Sequential(q("conv", in_channels, w0, kernel=3, stride=1, padding=1), nn.BatchNorm2d(w0),
                                  nn.ReLU())
        blocks, cin = [], w0
        for s, (width, n) in enumerate(zip(plan.widths, plan.blocks, strict=True)):
            for b in range(n):
                blocks.append(_Block(cin, width, 2 if s > 0 and b == 0 else 1, q))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
        self.fc = q("dense", cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.blocks(self.stem(x)))))


_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish}


class _SqueezeExcite(nn.Module):
    """x * hardsigmoid(fc2(relu(fc1(mean(x))))) with 1x1 convs: MobileNetV3's squeeze-and-excitation."""

    def __init__(self, channels: int, q: Any):
        super().__init__()
        squeeze = max(1, channels // 4)
        self.fc1 = q("conv", channels, squeeze, kernel=1, stride=1, padding=0)
        self.fc2 = q("conv", squeeze, channels, kernel=1, stride=1, padding=0)
        self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


def _conv_bn(q: Any, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             relu6: bool = True) -> list[nn.Module]:
    layers = [q("conv", cin, cout, kernel=kernel, stride=stride, padding=kernel // 2, groups=groups),
              nn.BatchNorm2d(cout)]
    return layers + ([nn.ReLU6()] if relu6 else [])


class _InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 linear projection (BN, ReLU6), plus the input
    where the shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, q: Any):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = _conv_bn(q, cin, hidden, 1) if expand != 1 else []
        self.conv = nn.Sequential(*layers, *_conv_bn(q, hidden, hidden, 3, stride, hidden),
                                  *_conv_bn(q, hidden, cout, 1, relu6=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class _MobileNetV2(nn.Module):
    def __init__(self, plan: MobileNetPlan, in_channels: int, num_classes: int, q: Any):
        super().__init__()
        cin = plan.widths[0]
        layers: list[nn.Module] = _conv_bn(q, in_channels, cin, 3)
        for s, (width, n) in enumerate(zip(plan.widths, plan.blocks, strict=True)):
            for b in range(n):
                layers.append(_InvertedResidual(cin, width, 2 if s > 0 and b == 0 else 1, 1 if s == 0 else 6, q))
                cin = width
        self.features = nn.Sequential(*layers, *_conv_bn(q, cin, 4 * cin, 1))
        self.fc = q("dense", 4 * cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def build_network(spec: str, input_shape: tuple[int, ...], num_classes: int, parametrisation: str,
                  seed: int = 0, levels: int = 1, scale_mode: str = "channel") -> Network:
    plans = parse_model_spec(spec)
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(input_shape)
    kw = dict(parametrisation=parametrisation, levels=levels, scale_mode=scale_mode, generator=gen)
    params = 0

    def q(kind: str, cin: int, cout: int, **conv: Any) -> QuantLayer:
        nonlocal params
        k = _pair(conv.get("kernel", 1))
        params += cout * cin // conv.get("groups", 1) * k[0] * k[1]
        if params > MAX_PARAMETERS:
            raise OptionError(f"model spec {spec!r} asks for more than {MAX_PARAMETERS:,} weights")
        return QuantLayer(kind, cin, cout, **conv, **kw)

    needs_image = any(isinstance(p, ConvPlan | PoolPlan | ResNetPlan | MobileNetPlan | SEPlan) for p in plans)
    if needs_image and len(shape) != 3:
        raise OptionError(f"{spec.partition(':')[0]} needs image input (C, H, W); this dataset has samples of "
                          f"shape {shape}")
    if isinstance(plans[0], ResNetPlan):
        return Network(_ResNet(plans[0], shape[0], num_classes, q), shape)
    if isinstance(plans[0], MobileNetPlan):
        return Network(_MobileNetV2(plans[0], shape[0], num_classes, q), shape)
    layers: list[nn.Module] = []
    for plan in plans:
        if isinstance(plan, ConvPlan):
            c, h, w = shape
            cout = c if plan.depthwise else plan.channels
            groups = c if plan.depthwise else plan.groups
            (kh, kw_), (ph, pw) = _pair(plan.kernel), _pair(plan.padding)
            if c % groups or cout % groups:
                raise OptionError(f"model spec {spec!r}: groups={groups} must divide {c} input and {cout} output "
                                  "channels")
            oh, ow = window_out(h, kh, plan.stride, ph), window_out(w, kw_, plan.stride, pw)
            if oh < 1 or ow < 1 or ph >= kh + h or pw >= kw_ + w:
                raise OptionError(f"model spec {spec!r}: convolution {plan} does not fit input {shape}")
            layers.append(q("conv", c, cout, kernel=(kh, kw_), stride=plan.stride, padding=(ph, pw), groups=groups))
            if plan.batchnorm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(_ACTIVATIONS[plan.activation]())
            shape = (cout, oh, ow)
        elif isinstance(plan, SEPlan):
            layers.append(_SqueezeExcite(shape[0], q))
        elif isinstance(plan, PoolPlan):
            c, h, w = shape
            if plan.kind == "global":
                layers.append(nn.AdaptiveAvgPool2d(1))
                shape = (c, 1, 1)
                continue
            k = plan.kernel
            if k > h or k > w:
                raise OptionError(f"model spec {spec!r}: pooling window {k} does not fit input {shape}")
            layers.append(nn.AvgPool2d(k, k) if plan.kind == "avg" else nn.MaxPool2d(k, k))
            shape = (c, window_out(h, k, k, 0), window_out(w, k, k, 0))
        else:
            assert isinstance(plan, DensePlan)
            if len(shape) > 1:
                layers.append(nn.Flatten())
                shape = (int(np.prod(shape)),)
            layers.append(q("dense", shape[0], plan.units))
            if plan.batchnorm:
                layers.append(nn.BatchNorm1d(plan.units))
            layers.append(nn.ReLU())
            shape = (plan.units,)
        if int(np.prod(shape)) > 1 << 26:
            raise OptionError(f"model spec {spec!r}: an activation of shape {shape} is too large")
    if len(shape) > 1:
        layers.append(nn.Flatten())
        shape = (int(np.prod(shape)),)
    layers.append(q("dense", shape[0], num_classes))
    return Network(layers, tuple(input_shape))


def to_artifact(net: nn.Module, input_spec: InputSpec, labels: list[str], levels: int = 1,
                provenance: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                task: str = "classify") -> TernaryModel:
    """The deployed model: integer weights and scales exactly as the network computes with them (`levels` is
    read from the layers; the argument stays for callers of the earlier signature)."""
    from .trace import to_artifact as trace_to_artifact

    return trace_to_artifact(net, input_spec=input_spec, labels=list(labels), provenance=provenance,
                             metrics=metrics, task=task)
