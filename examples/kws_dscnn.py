"""A depthwise-separable CNN in the style of keyword-spotting models (DS-CNN), written as plain torch code,
made ternary with `ternkit.ternarize`, trained in your own loop with `ternkit.optim.CoNNTrA`, then traced to
the artifact and exported to ONNX and Lava, with a memory/energy report.

    python examples/kws_dscnn.py --dataset mnist-sample --epochs 10 --out runs/kws
    ternkit train --model examples/kws_dscnn.py:build --dataset mnist-sample    # the same model from the CLI
"""

from __future__ import annotations

from torch import nn


def _dw_block(channels_in: int, channels_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(channels_in, channels_in, 3, stride, 1, groups=channels_in, bias=False),  # depthwise
            nn.BatchNorm2d(channels_in), nn.ReLU(),
            nn.Conv2d(channels_in, channels_out, 1, bias=False),  # pointwise
            nn.BatchNorm2d(channels_out), nn.ReLU()]


def build(input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Module:
    """DS-CNN: a strided 3x3 stem, three depthwise-separable blocks, global average pooling, a linear head."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        *_dw_block(width, 2 * width, 1), *_dw_block(2 * width, 2 * width, 2), *_dw_block(2 * width, 4 * width, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))


if __name__ == "__main__":
    from _user_loop import main

    main(build, "kws")
