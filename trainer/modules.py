"""Drop-in ternary layers for users' own models: `TernaryLinear`, `TernaryConv2d`, and `ternarize(model)`.

They take `nn.Linear` / `nn.Conv2d`'s constructor arguments, plus the training method:
- `conntra`: the weight is the integer matrix itself (no latent float), moved by `ternkit.optim.CoNNTrA`;
- `ste`: a latent float weight ternarised in the forward pass, gradients straight through (train with Adam);
- `float`: a plain float layer (the baseline), so one model definition serves all three.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .layers import QuantLayer, ternarize_twn

__all__ = ["TernaryLinear", "TernaryConv2d", "ternarize", "METHOD_PARAMETRISATION"]

METHOD_PARAMETRISATION = {"conntra": "discrete", "ste": "ste", "float": "float"}


def _parametrisation(method: str) -> str:
    if method not in METHOD_PARAMETRISATION:
        raise ValueError(f"method must be one of {', '.join(METHOD_PARAMETRISATION)}, got {method!r}")
    return METHOD_PARAMETRISATION[method]


class TernaryLinear(QuantLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 method: str = "conntra", levels: int = 1, scale_mode: str = "channel",
                 generator: torch.Generator | None = None):
        super().__init__("dense", in_features, out_features, _parametrisation(method), levels=levels,
                         scale_mode=scale_mode, generator=generator, bias=bias)
        if device is not None:
            self.to(device)


class TernaryConv2d(QuantLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None, *, method: str = "conntra", levels: int = 1, scale_mode: str = "channel",
                 generator: torch.Generator | None = None):
        if dilation not in (1, (1, 1)):
            raise ValueError(f"TernaryConv2d: dilation={dilation} is not supported (the artifact has no dilation)")
        if padding_mode != "zeros":
            raise ValueError(f"TernaryConv2d: padding_mode={padding_mode!r} is not supported, only 'zeros'")
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if stride not in (1, (1, 1)) or k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError("TernaryConv2d: padding='same' needs stride 1 and odd kernels")
            padding = (k[0] // 2, k[1] // 2)
        super().__init__("conv", in_channels, out_channels, _parametrisation(method), kernel=k, stride=stride,
                         padding=padding, levels=levels, scale_mode=scale_mode, generator=generator, groups=groups,
                         bias=bias)
        if device is not None:
            self.to(device)


def _from_float(layer: nn.Linear | nn.Conv2d, method: str, levels: int, scale_mode: str) -> QuantLayer:
    """A ternary layer that starts where the float layer is: its weights (ste, float) or their ternarisation
    (conntra: Ternary Weight Networks' trits and per-channel scales)."""
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        new: QuantLayer = TernaryLinear(layer.in_features, layer.out_features, bias, method=method, levels=levels,
                                        scale_mode=scale_mode)
    else:
        new = TernaryConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                            layer.padding, layer.dilation, layer.groups, bias, layer.padding_mode, method=method,
                            levels=levels, scale_mode=scale_mode)
    w = layer.weight.detach()
    with torch.no_grad():
        if bias:
            new.bias.copy_(layer.bias.detach())
        if new.parametrisation != "discrete":
            new.weight.copy_(w)
        else:
            flat = w.reshape(w.shape[0], -1)
            if levels == 1:
                t, alpha = ternarize_twn(w)
                kept = t.reshape(w.shape[0], -1).abs()
                per_row = (flat.abs() * kept).sum(1) / kept.sum(1).clamp_min(1)
                scale = torch.where(kept.sum(1) > 0, per_row, alpha.expand_as(per_row))
            else:
                scale = flat.abs().amax(1).clamp_min(1e-8) / levels
                t = torch.round(w / scale.reshape((-1,) + (1,) * (w.dim() - 1))).clamp(-levels, levels)
            new.weight.copy_(t)
            new.scale.copy_(scale if scale_mode == "channel" else scale.mean().reshape(1))
    return new.to(w.device)


def weight_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the float `nn.Linear` / `nn.Conv2d` modules of `model`, subclasses included (torch's
    own `NonDynamicallyQuantizableLinear` is one), in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def ternarize(model: nn.Module, method: str = "conntra", skip: Iterable[str] = (), levels: int = 1,
              scale_mode: str = "channel") -> nn.Module:
    """Swap every `nn.Linear` / `nn.Conv2d` of `model` for its ternary twin, in place, and return the model.
    `skip`: qualified module names to keep float (e.g. `["fc"]`), or "first" / "last" (the first / last weight
    layer in definition order). A skipped float layer trains, but an artifact needs every weight layer ternary
    (or all float): `to_artifact` names the layer if not."""
    _parametrisation(method)
    names = weight_layer_names(model)
    keep = set(skip)
    if "first" in keep and names:
        keep.add(names[0])
    if "last" in keep and names:
        keep.add(names[-1])
    unknown = keep - set(names) - {"first", "last"}
    if unknown:
        raise ValueError(f"ternarize: skip names {sorted(unknown)} are not Linear/Conv2d modules of the model")
    for name in names:
        if name in keep:
            continue
        layer = model.get_submodule(name)
        base = nn.Linear if isinstance(layer, nn.Linear) else nn.Conv2d
        if type(layer).forward is not base.forward:
            raise ValueError(f"ternarize: {name} is a {type(layer).__name__}, a subclass of {base.__name__} with its "
                             f"own forward, which a ternary layer would not reproduce: replace it, or keep it float "
                             f"with skip=[{name!r}]")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _from_float(getattr(parent, child), method, levels, scale_mode))
    return model
