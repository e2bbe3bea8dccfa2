"""`--model FILE.py:FUNCTION`: a user's own `nn.Module` from a factory in a Python file.

Loading the file runs its code: that is trusted by design (it is the user's own model definition, named on
their command line), unlike every data file ternkit reads. The factory is called as
`FUNCTION(input_shape, num_classes)` under `torch.manual_seed(seed)` (reproducible initialisation); its
`nn.Linear` / `nn.Conv2d` layers are swapped for ternary twins per the training method (`ternarize`), and
`TernaryLinear` / `TernaryConv2d` layers it builds itself keep the method they were given.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .modules import ternarize
from .network import Network

__all__ = ["is_user_model", "load_factory", "build_user_network"]


def is_user_model(spec: str) -> bool:
    path, sep, func = spec.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(func)


def load_factory(spec: str) -> Callable[..., nn.Module]:
    path_s, _, func = spec.rpartition(":")
    path = Path(path_s)
    if not path.is_file():
        raise OptionError(f"--model {spec}: {path} is not a file")
    if not func.isidentifier():
        raise OptionError(f"--model {spec}: {func!r} is not a Python function name")
    name = f"ternkit_user_model_{abs(hash(str(path.resolve())))}"
    try:
        mod_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as e:
        raise OptionError(f"--model {spec}: importing {path} failed: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}"[:300]) from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise OptionError(f"--model {spec}: {path} has no function {func}")
    return factory


def build_user_network(spec: str, input_shape: tuple[int, ...], num_classes: int, method: str, seed: int = 0,
                       levels: int = 1, scale_mode: str = "channel") -> Network:
    factory = load_factory(spec)
    torch.manual_seed(seed)
    try:
        model = factory(tuple(input_shape), num_classes)
    except Exception as e:
        raise OptionError(f"--model {spec}: the factory raised {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}"[:300]) from None
    if not isinstance(model, nn.Module):
        raise OptionError(f"--model {spec}: the factory returned {type(model).__name__}, not a torch nn.Module")
    try:
        ternarize(model, method, levels=levels, scale_mode=scale_mode)
    except ValueError as e:
        raise OptionError(f"--model {spec}: {e}") from None
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            out = model(torch.zeros((2, *input_shape)))
            model.train(was)
    except Exception as e:
        raise OptionError(f"--model {spec}: the model fails on input of shape {tuple(input_shape)}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
        raise OptionError(f"--model {spec}: the model outputs {got} per sample; the dataset has {num_classes} "
                          "classes")
    return Network(model, tuple(input_shape))
