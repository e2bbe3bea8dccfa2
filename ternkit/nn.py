"""Drop-in ternary layers: `TernaryLinear` / `TernaryConv2d` take `nn.Linear` / `nn.Conv2d`'s arguments plus
`method="conntra"|"ste"|"float"`, `levels` and `scale_mode`; `ternarize(model)` swaps an existing model's
layers in place."""

from ternkit.trainer.modules import TernaryConv2d, TernaryLinear, ternarize

__all__ = ["TernaryLinear", "TernaryConv2d", "ternarize"]
