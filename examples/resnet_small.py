"""A small ResNet (basic blocks with BatchNorm and identity / projection shortcuts), written as plain torch code,
made ternary with `ternkit.ternarize`, trained in your own loop with `ternkit.optim.CoNNTrA`, then traced to the
artifact and exported to ONNX and Lava, with a memory/energy report.

    python examples/resnet_small.py --dataset mnist-sample --epochs 10 --out runs/resnet
    ternkit train --model examples/resnet_small.py:build --dataset mnist-sample   # the same model from the CLI
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return SmallResNet(input_shape[0], num_classes)


if __name__ == "__main__":
    from _user_loop import main

    main(build, "resnet")
