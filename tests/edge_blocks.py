"""The building blocks of the classification CNNs edge users deploy, written as torchvision writes them
(torchvision itself is not importable here: its wheel needs CUDA libraries), each wrapped into a tiny
classifier. Shared by the block tests and the MobileNetV2 benchmark."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's channel rounding (MobileNet, EfficientNet)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 activation: Callable[..., nn.Module] | None = nn.ReLU6):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if activation is not None:
            layers.append(activation(inplace=True) if activation is not nn.Hardsigmoid else activation())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand -> 3x3 depthwise -> 1x1 project (ReLU6), residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel=1))
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: global pool -> fc1 -> activation -> fc2 -> gate, times the input."""

    def __init__(self, channels: int, squeeze: int, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, x: Tensor) -> Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))

    def forward(self, x: Tensor) -> Tensor:
        return self._scale(x) * x


class MobileNetV3Block(nn.Module):
    """MobileNetV3's InvertedResidual with SE (Hardsigmoid gate) and Hardswish."""

    def __init__(self, cin: int, expanded: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        self.block = nn.Sequential(
            Conv2dNormActivation(cin, expanded, 1, activation=nn.Hardswish),
            Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, activation=nn.Hardswish),
            SqueezeExcitation(expanded, _make_divisible(expanded // 4, 8), scale_activation=nn.Hardsigmoid),
            Conv2dNormActivation(expanded, cout, 1, activation=None))

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth (row mode): drops whole samples in training, the identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class MBConv(nn.Module):
    """EfficientNet: expand (SiLU) -> depthwise (SiLU) -> SE (SiLU, Sigmoid) -> project, stochastic depth."""

    def __init__(self, cin: int, cout: int, expand: int = 4, kernel: int = 3, stride: int = 1, sd: float = 0.2):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = cin * expand
        self.block = nn.Sequential(
            Conv2dNormActivation(cin, hidden, 1, activation=nn.SiLU),
            Conv2dNormActivation(hidden, hidden, kernel, stride, groups=hidden, activation=nn.SiLU),
            SqueezeExcitation(hidden, max(1, cin // 4), activation=nn.SiLU),
            Conv2dNormActivation(hidden, cout, 1, activation=None))
        self.stochastic_depth = StochasticDepth(sd)

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        if self.use_res_connect:
            y = self.stochastic_depth(y)
            y = y + x
        return y


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """torchvision's ShuffleNetV2 channel shuffle."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's stride-1 unit: chunk, one half through 1x1 -> dw 3x3 -> 1x1, concat, shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


class Fire(nn.Module):
    """SqueezeNet's fire module."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class DenseLayer(nn.Module):
    """DenseNet's layer: BN-ReLU-1x1 on the concatenated features, BN-ReLU-3x3."""

    def __init__(self, cin: int, growth: int, bn_size: int = 2):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.drop_rate = 0.0

    def forward(self, inputs: list[Tensor]) -> Tensor:
        concated = torch.cat(inputs, 1)
        out = self.conv1(self.relu1(self.norm1(concated)))
        out = self.conv2(self.relu2(self.norm2(out)))
        return F.dropout(out, p=self.drop_rate, training=self.training)


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int):
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth))

    def forward(self, init: Tensor) -> Tensor:
        features = [init]
        for _, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """GoogLeNet's inception block (the 5x5 branch as torchvision writes it: a 3x3)."""

    def __init__(self, cin: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# -- tiny classifiers around each block (inputs (3, 16, 16), 4 classes) -------------------------------------------
def _head(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(channels, classes))


class _Net(nn.Module):
    def __init__(self, stem: nn.Module, body: nn.Module, head: nn.Module):
        super().__init__()
        self.stem, self.features, self.head = stem, body, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self.stem(x)))


class _MeanHead(nn.Module):
    """MNASNet/MobileNet's global pooling written as x.mean([2, 3])."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x.mean([2, 3]))


def mobilenet_v2_block(classes: int = 4) -> nn.Module:
    return _Net(Conv2dNormActivation(3, 8, stride=2), nn.Sequential(InvertedResidual(8, 8, 1, 4),
                                                                    InvertedResidual(8, 12, 2, 4)),
                _MeanHead(12, classes))


def mobilenet_v3_block(classes: int = 4) -> nn.Module:
    return _Net(Conv2dNormActivation(3, 8, stride=2, activation=nn.Hardswish),
                nn.Sequential(MobileNetV3Block(8, 16, 8)), _head(8, classes))


def efficientnet_block(classes: int = 4) -> nn.Module:
    return _Net(Conv2dNormActivation(3, 8, stride=2, activation=nn.SiLU), nn.Sequential(MBConv(8, 8)),
                _head(8, classes))


def shufflenet_block(classes: int = 4) -> nn.Module:
    return _Net(Conv2dNormActivation(3, 8, stride=2, activation=nn.ReLU), nn.Sequential(ShuffleUnit(8)),
                _head(8, classes))


def squeezenet_block(classes: int = 4) -> nn.Module:
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(inplace=True),
                         nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
    head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, classes, 1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(1))
    return _Net(stem, Fire(8, 4, 8, 8), head)


def densenet_block(classes: int = 4) -> nn.Module:
    body = nn.Sequential(DenseBlock(2, 8, 4), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
    return _Net(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False)), body, _head(16, classes))


def inception_block(classes: int = 4) -> nn.Module:
    stem = nn.Sequential(BasicConv2d(3, 8, kernel_size=3, stride=2, padding=1),
                         nn.MaxPool2d(3, 2, ceil_mode=True))
    return _Net(stem, Inception(8, 4, 4, 6, 2, 4, 2), _head(16, classes))


class VGGClassifier(nn.Module):
    """VGG: features, adaptive average pooling to 7x7, then the classifier (Linear-ReLU-Dropout twice)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(8 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg_block(classes: int = 4) -> nn.Module:
    return VGGClassifier(classes)


BLOCKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "mobilenet_v2": (mobilenet_v2_block, (3, 16, 16)),
    "mobilenet_v3": (mobilenet_v3_block, (3, 16, 16)),
    "efficientnet": (efficientnet_block, (3, 16, 16)),
    "shufflenet_v2": (shufflenet_block, (3, 16, 16)),
    "squeezenet": (squeezenet_block, (3, 17, 17)),
    "densenet": (densenet_block, (3, 16, 16)),
    "googlenet": (inception_block, (3, 16, 16)),
    "vgg": (vgg_block, (3, 28, 28)),
}


def mobilenet_v2(classes: int = 10, width: float = 0.35, in_channels: int = 1) -> nn.Module:
    """A MobileNetV2 for 28x28 inputs: torchvision's inverted-residual settings scaled by `width`, with the
    strides of the first stages reduced (a 28x28 digit is 1/64 of ImageNet's 224x224 area)."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    cin = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    layers: list[nn.Module] = [Conv2dNormActivation(in_channels, cin, stride=1)]
    for t, c, n, s in settings:
        cout = _make_divisible(c * width)
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers.append(Conv2dNormActivation(cin, last, kernel=1))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(last, classes))
