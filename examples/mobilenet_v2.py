"""MobileNetV2 (inverted residuals with ReLU6, torchvision's layout and channel rounding) at width 0.35 for
28x28 inputs, written as plain torch code: `ternkit.ternarize` makes it ternary, `ternkit.optim.CoNNTrA`
trains it, `ternkit.to_artifact` traces it (ReLU6 becomes `clip`, the residuals `add`, the head's
`x.mean((2, 3))` a global average pooling).

    python examples/mobilenet_v2.py --dataset mnist-sample --epochs 10 --out runs/mbv2
    ternkit train --model examples/mobilenet_v2.py:build --dataset mnist-sample   # the same model from the CLI
"""

from __future__ import annotations

from torch import Tensor, nn

# torchvision's settings (expansion t, channels c, repeats n, stride s) with the strides of a 28x28 input:
# the 224x224 network halves the resolution five times, a digit has room for three
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 1), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: a multiple of 8, never below 90 % of v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu6: bool = True) -> list:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return layers + ([nn.ReLU6(inplace=True)] if relu6 else [])


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection; the input is added when the shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers = conv_bn(cin, hidden, 1) if expand != 1 else []
        self.conv = nn.Sequential(*layers, *conv_bn(hidden, hidden, 3, stride, hidden),
                                  *conv_bn(hidden, cout, 1, relu6=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: float = 0.35):
        super().__init__()
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = conv_bn(in_channels, cin, 3, 1)
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.features = nn.Sequential(*layers, *conv_bn(cin, last, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def build(input_shape: tuple[int, ...], num_classes: int, width: float = 0.35) -> nn.Module:
    return MobileNetV2(input_shape[0], num_classes, width)


if __name__ == "__main__":
    from _user_loop import main

    main(build, "mbv2")
