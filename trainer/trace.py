"""Trace a torch model into the graph artifact (torch.fx): the one conversion path, for spec networks and for
users' own `nn.Module`s alike.

Each traced call becomes an artifact operation. The operations declare themselves which torch modules,
functions and tensor methods they are (`Op.torch_modules`, `torch_functions`, `torch_methods`, read from the
registry: a new operation needs no edit here); this module keeps only what is about torch or the trainer
rather than about one operation: weight layers (ternkit's own and torch's), BatchNorm (an affine, folded
afterwards by `core.passes.fold_affine` where exact), calls that vanish in inference (dropout, identity,
stochastic depth), and the shape arithmetic of `x.size()`, `view`, `permute`, `chunk` and `mean`. Anything
else is refused with one line naming the module that holds the call and the line of the user's `forward`.
Finally the artifact is run beside the torch model on random input: a trace that does not reproduce the
model's output is refused rather than deployed.
"""

from __future__ import annotations

import importlib
import math
import operator
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ternkit.core.errors import UnsupportedError
from ternkit.core.model import INPUT, InputSpec, Node, TernaryModel
from ternkit.core.ops import OPS, Affine, AvgPool2d, Conv2d, Dense, Flatten, Op, Reshape, Slice, TorchCall, Transpose
from ternkit.core.ops.affine import batchnorm_affine
from ternkit.core.passes import chain_names, drop_identity, fold_affine
from ternkit.core.text import to_name

from .layers import QuantLayer

__all__ = ["to_artifact", "trace_graph", "StaleBatchNormWarning"]

_IDENTITY = object()  # a call that passes its input through in inference (dropout, identity)
#: modules that are the identity in inference, by class name (torchvision's StochasticDepth is not importable
#: here, and users write their own under the same name)
IDENTITY_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
IDENTITY_NAMES = ("StochasticDepth", "DropPath")
_TORCH_DIR = str(Path(torch.__file__).parent)
_OWN_DIR = str(Path(__file__).parent)  # the trainer's own wrappers (a spec network's body) are not the user's line


@dataclass(frozen=True)
class _Dim:
    """A size read from x.size()/x.shape: its value, or the batch size (value None)."""

    value: int | None


@dataclass(frozen=True)
class _Parts:
    """The result of chunk/split: slices `ranges` of `source` along sample axis `axis`."""

    source: str
    axis: int
    ranges: tuple[tuple[int, int], ...]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (isinstance(m, QuantLayer) or type(m).__name__ in IDENTITY_NAMES
                or super().is_leaf_module(m, qualname))

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        stack = traceback.extract_stack()
        start = max((i for i, f in enumerate(stack) if f.filename.startswith(_TORCH_DIR) and f.name == "trace"),
                    default=len(stack))
        for frame in reversed(stack[start:]):  # the innermost line of the user's code inside the traced forward
            if not frame.filename.startswith((_TORCH_DIR, _OWN_DIR)):
                node.meta["ternkit_line"] = f"{Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()}"
                break
        return node


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _resolve(name: str) -> Any:
    """The object a qualified name ("torch.nn.functional.relu", "_operator.add") names, or None."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p, None)
        return obj
    return None


_RECOGNISED: dict[str, Any] = {"size": -1}


def _recognised() -> tuple[dict[type, list[type]], dict[Any, list[type]], dict[str, list[type]]]:
    """(module class -> ops, function -> ops, method name -> ops) from the registry's declarations; rebuilt
    when an operation is registered later (a plug-in's)."""
    if _RECOGNISED["size"] != len(OPS):
        modules: dict[type, list[type]] = {}
        functions: dict[Any, list[type]] = {}
        methods: dict[str, list[type]] = {}
        for cls in OPS.values():
            for name in getattr(cls, "torch_modules", ()):
                if isinstance(obj := _resolve(name), type):
                    modules.setdefault(obj, []).append(cls)
            for name in getattr(cls, "torch_functions", ()):
                if (obj := _resolve(name)) is not None:
                    functions.setdefault(obj, []).append(cls)
            for name in getattr(cls, "torch_methods", ()):
                methods.setdefault(name, []).append(cls)
        _RECOGNISED.update(size=len(OPS), modules=modules, functions=functions, methods=methods)
    return _RECOGNISED["modules"], _RECOGNISED["functions"], _RECOGNISED["methods"]


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '') or ''}.{getattr(obj, '__name__', str(obj))}".lstrip(".")


def _fits(cls: type, n_tensors: int) -> bool:
    return n_tensors >= 2 if cls.arity is None else n_tensors == cls.arity


# -- weight layers and BatchNorm: the trainer's and torch's modules --------------------------------------------
def _quant(m: QuantLayer, shape: tuple[int, ...], where: str) -> Op:
    w, s = m.deployed()
    ternary = m.parametrisation != "float"
    weight = w.cpu().numpy().astype(np.int8 if ternary else np.float32)
    scale = s.cpu().numpy().astype(np.float32).reshape(-1)
    bias = m.bias.detach().cpu().numpy().astype(np.float32)
    if m.kind == "dense":
        return Dense(weight, scale, bias)
    return Conv2d(weight, scale, bias, m.stride, m.padding, m.groups)


def _linear(m: nn.Linear, shape: tuple[int, ...], where: str) -> Op:
    b = m.bias.detach().cpu().numpy() if m.bias is not None else np.zeros(m.out_features)
    return Dense(m.weight.detach().cpu().numpy().astype(np.float32), np.ones(1, np.float32), b.astype(np.float32))


def _conv(m: nn.Conv2d, shape: tuple[int, ...], where: str) -> Op:
    if _pair(m.dilation) != (1, 1):
        raise UnsupportedError(f"{where}: Conv2d with dilation={m.dilation[0]} is not supported")
    if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
        raise UnsupportedError(f"{where}: Conv2d with padding={m.padding!r}, padding_mode={m.padding_mode!r} "
                               "is not supported (use integer zero padding)")
    b = m.bias.detach().cpu().numpy() if m.bias is not None else np.zeros(m.out_channels)
    pad = (0, 0) if m.padding == "valid" else _pair(m.padding)
    return Conv2d(m.weight.detach().cpu().numpy().astype(np.float32), np.ones(1, np.float32), b.astype(np.float32),
                  _pair(m.stride), pad, m.groups)


def _batchnorm(m: nn.Module, shape: tuple[int, ...], where: str) -> Affine:
    if m.running_mean is None:
        raise UnsupportedError(f"{where}: BatchNorm without running statistics (track_running_stats=False) "
                               "cannot be deployed")
    gamma = m.weight.detach().cpu().numpy() if m.weight is not None else None
    beta = m.bias.detach().cpu().numpy() if m.bias is not None else None
    gain, shift = batchnorm_affine(m.running_mean.cpu().numpy(), m.running_var.cpu().numpy(), gamma, beta, m.eps)
    return Affine(gain.astype(np.float32), shift.astype(np.float32))


def _adaptive(size: Any, shape: tuple[int, ...], where: str) -> list[Op]:
    """Adaptive average pooling where its windows are equal (the output size divides the input's)."""
    if len(shape) != 3:
        raise UnsupportedError(f"{where}: adaptive average pooling of a {len(shape)}-d sample {shape}")
    size = (size, size) if isinstance(size, int) or size is None else tuple(size)
    oh, ow = (shape[1] if size[0] is None else int(size[0])), (shape[2] if size[1] is None else int(size[1]))
    if shape[1] % oh or shape[2] % ow:
        raise UnsupportedError(f"{where}: adaptive average pooling from {shape[1]}x{shape[2]} to {oh}x{ow} has "
                               "unequal windows and is not supported; use an output size that divides the input's")
    k = (shape[1] // oh, shape[2] // ow)
    return [AvgPool2d(k, k)]


MODULES: dict[type, Callable[[Any, tuple[int, ...], str], Any]] = {
    QuantLayer: _quant, nn.Linear: _linear, nn.Conv2d: _conv,
    nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm,
    nn.AdaptiveAvgPool2d: lambda m, s, w: _adaptive(m.output_size, s, w),
}


def _module_handler(m: nn.Module) -> Callable[..., Any] | None:
    for cls in type(m).__mro__:
        if cls in MODULES:
            return MODULES[cls]
    return None


# -- the walk ----------------------------------------------------------------------------------------------------
def trace_graph(model: nn.Module, input_shape: tuple[int, ...], strip: str = "") -> list[Node]:
    """The artifact's nodes for `model` on samples of `input_shape` (BatchNorm as affine nodes: fold them with
    `core.passes.fold_affine`)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for code it cannot follow (data-dependent control flow)
        raise UnsupportedError(f"cannot trace the model with torch.fx: {str(e).splitlines()[0][:160]}") from None
    return _Walk(model, tuple(input_shape), strip).run(graph)


class _Walk:
    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], strip: str) -> None:
        self.modules = dict(model.named_modules())
        self.strip = strip
        self.alias: dict[fx.Node, Any] = {}  # fx node -> artifact node name, _Dim, tuple of _Dim, _Parts
        self.nodes: list[Node] = []
        self.index: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {INPUT: input_shape}

    # -- naming ---------------------------------------------------------------------------------------------
    def _path(self, n: fx.Node) -> str:
        if n.op == "call_module":
            t = str(n.target)
        else:
            stack = n.meta.get("nn_module_stack") or {}
            t = next(reversed(stack.values()))[0] if stack else ""
        return t[len(self.strip):] if self.strip and t.startswith(self.strip) else t

    def name_of(self, n: fx.Node) -> str:
        return str(n.target) if n.op == "call_module" else n.name

    def where(self, n: fx.Node) -> str:
        """The module holding the call and the line of the user's forward that made it."""
        path = self._path(n)
        what = path if n.op == "call_module" else f"{path or 'the model'}.forward, {n.name}"
        line = n.meta.get("ternkit_line")
        return f"{what} ({line})" if line else what

    def add(self, name: str, op: Op, inputs: list[str], where: str) -> str:
        name = name[len(self.strip):] if self.strip and name.startswith(self.strip) else name
        name = to_name(name.replace("/", "."))[:120]  # the artifact's node-name grammar (room for a _N suffix)
        base, i = name, 1
        while name in self.index or name == INPUT:
            name, i = f"{base}_{i}", i + 1
        try:
            self.shapes[name] = tuple(op.out_shape(*(self.shapes[x] for x in inputs)))
        except Exception as e:
            raise UnsupportedError(f"{where}: {op.kind} does not fit its input "
                                   f"{[self.shapes[x] for x in inputs]} ({e})") from None
        self.index[name] = len(self.nodes)
        self.nodes.append(Node(name, op, tuple(inputs)))
        return name

    def add_all(self, name: str, ops: list[Op], inputs: list[str], where: str) -> str:
        for op in ops:
            inputs = [self.add(name, op, inputs, where)]
        return inputs[0]

    # -- arguments ------------------------------------------------------------------------------------------
    def tensors(self, n: fx.Node, where: str) -> list[str]:
        out = []

        def visit(a: Any) -> None:
            if isinstance(a, list | tuple):
                for x in a:
                    visit(x)
            elif isinstance(a, fx.Node):
                v = self.alias[a]
                if isinstance(v, str):
                    out.append(v)
            elif a is not None and not isinstance(a, int | float | str | bool | torch.dtype | torch.device):
                raise UnsupportedError(f"{where}: argument {a!r} is not supported"[:300])

        visit(n.args)
        visit(tuple(n.kwargs.values()))
        return out

    def value(self, a: Any) -> Any:
        """An argument with traced sizes read as numbers (the batch size as None), tensors as None."""
        if isinstance(a, list | tuple):
            return type(a)(self.value(x) for x in a)
        if isinstance(a, fx.Node):
            v = self.alias[a]
            if isinstance(v, _Dim):
                return v.value
            if isinstance(v, tuple):
                return tuple(d.value for d in v)
            return None
        return a

    def is_size(self, a: Any) -> bool:
        return isinstance(a, fx.Node) and isinstance(self.alias.get(a), _Dim | tuple)

    # -- one node -------------------------------------------------------------------------------------------
    def run(self, graph: fx.Graph) -> list[Node]:
        seen_input = False
        for n in graph.nodes:
            if n.op == "placeholder":
                if seen_input:
                    raise UnsupportedError(f"{n.name}: the model takes more than one input")
                self.alias[n], seen_input = INPUT, True
            elif n.op == "output":
                out = n.args[0]
                if not isinstance(out, fx.Node) or not isinstance(self.alias.get(out), str) or self.alias[out] == INPUT:
                    raise UnsupportedError("the model must return one tensor computed by its layers")
                return _prune(self.nodes, self.alias[out])
            elif n.op == "get_attr":
                raise UnsupportedError(f"{self.where(n)}: reading a parameter or buffer inside forward is not "
                                       "supported")
            elif n.op == "call_module":
                self.alias[n] = self.call_module(n)
            elif n.op in ("call_function", "call_method"):
                self.alias[n] = self.call(n)
            else:
                raise UnsupportedError(f"{self.where(n)}: {n.op} {n.target} is not supported")
        raise UnsupportedError("the traced model has no output")

    def call_module(self, n: fx.Node) -> Any:
        m, where = self.modules[str(n.target)], self.where(n)
        ins = self.tensors(n, where)
        if len(ins) != 1:
            raise UnsupportedError(f"{where}: {type(m).__name__} must take exactly one tensor")
        if isinstance(m, IDENTITY_MODULES) or type(m).__name__ in IDENTITY_NAMES:
            return ins[0]
        handle = _module_handler(m)
        if handle is not None:
            made = handle(m, self.shapes[ins[0]], where)
            return self.add_all(self.name_of(n), made if isinstance(made, list) else [made], ins, where)
        modules, _, _ = _recognised()
        for cls in type(m).__mro__:
            for op_cls in modules.get(cls, ()):
                call = TorchCall(m, (), {}, [self.shapes[ins[0]]], where, _qualname(cls))
                return self.add(self.name_of(n), op_cls.from_torch(call), ins, where)
        raise UnsupportedError(f"{where}: {type(m).__name__} is not supported (supported: {_supported()})")

    def call(self, n: fx.Node, registry_only: bool = False) -> Any:
        where = self.where(n)
        method = n.op == "call_method"
        key = str(n.target) if method else n.target
        special = (SPECIAL_METHODS if method else SPECIAL_FUNCTIONS).get(key)
        if n.args and (self.is_size(n.args[0]) or not method and key in _SIZE_ARITH and any(
                self.is_size(a) for a in n.args)):  # arithmetic on sizes (c // groups), not on tensors
            return self.size_arith(n, where)
        if special is not None and not registry_only:
            return special(self, n, where)
        ins = self.tensors(n, where)
        _, functions, methods = _recognised()
        candidates = methods.get(key, []) if method else functions.get(key, [])
        name = key if method else _qualname(key)
        fitting = [c for c in candidates if _fits(c, len(ins))]
        if not fitting:
            kind = "tensor method" if method else "function"
            short = key if method else getattr(key, "__name__", str(key))
            if candidates:
                raise UnsupportedError(f"{where}: {kind} {short} with {len(ins)} tensor(s) is not supported")
            raise UnsupportedError(f"{where}: {kind} {short} is not supported (supported: {_supported()})")
        args = tuple(self.value(a) for a in n.args)
        kwargs = {k: self.value(v) for k, v in n.kwargs.items()}
        call = TorchCall(None, args, kwargs, [self.shapes[x] for x in ins], where, name)
        return self.add(self.name_of(n), fitting[0].from_torch(call), ins, where)

    # -- shape arithmetic -----------------------------------------------------------------------------------
    def size_arith(self, n: fx.Node, where: str) -> Any:
        args = [self.value(a) for a in n.args]
        if n.op == "call_function" and n.target in _SIZE_ARITH and len(args) == 2:
            a, b = args
            if a is None or b is None or not isinstance(a, int) or not isinstance(b, int):
                return _Dim(None)  # derived from the batch size: only usable as the batch dimension
            return _Dim(int(_SIZE_ARITH[n.target](a, b)))
        if n.op == "call_function" and n.target is operator.getitem:
            src = self.alias[n.args[0]]
            return src[n.args[1]] if isinstance(src, tuple) else _Dim(None)
        raise UnsupportedError(f"{where}: {n.target} on sizes is not supported")


_SIZE_ARITH: dict[Any, Callable[[int, int], int]] = {
    operator.floordiv: operator.floordiv, operator.mul: operator.mul, operator.add: operator.add,
    operator.sub: operator.sub,
}


def _supported() -> str:
    return "Linear, Conv2d, their ternary twins, BatchNorm, dropout, " + ", ".join(sorted(OPS))


def _sample_axis(dim: int, ndim: int, where: str, what: str) -> int:
    """A batched tensor's axis (ndim counts the batch) as a sample axis; the batch axis is refused."""
    d = dim + ndim if dim < 0 else dim
    if not 1 <= d < ndim:
        raise UnsupportedError(f"{where}: {what} over the batch axis (dim {dim}) is not supported")
    return d - 1


def _first_tensor(w: _Walk, n: fx.Node, where: str) -> str:
    ins = w.tensors(n, where)
    if len(ins) != 1:
        raise UnsupportedError(f"{where}: {n.target} must take exactly one tensor")
    return ins[0]


def _size(w: _Walk, n: fx.Node, where: str) -> Any:
    src = w.alias[n.args[0]]
    dims = (_Dim(None),) + tuple(_Dim(int(d)) for d in w.shapes[src])
    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
    return dims if dim is None else dims[int(dim)]


def _getattr(w: _Walk, n: fx.Node, where: str) -> Any:
    if n.args[1] == "shape":
        return (_Dim(None),) + tuple(_Dim(int(d)) for d in w.shapes[w.alias[n.args[0]]])
    raise UnsupportedError(f"{where}: reading the tensor attribute {n.args[1]!r} is not supported")


def _getitem(w: _Walk, n: fx.Node, where: str) -> Any:
    src = w.alias.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
    if isinstance(src, tuple):
        return src[n.args[1]]
    if isinstance(src, _Parts):
        i = int(n.args[1])
        lo, hi = src.ranges[i]
        return w.add(w.name_of(n), Slice(src.axis, lo, hi), [src.source], where)
    raise UnsupportedError(f"{where}: indexing a tensor is not supported (use chunk or split)")


def _view(w: _Walk, n: fx.Node, where: str) -> Any:
    src = _first_tensor(w, n, where)
    raw = [w.value(a) for a in n.args[1:]] or [w.value(n.kwargs.get("shape", n.kwargs.get("size")))]
    dims = list(raw[0]) if len(raw) == 1 and isinstance(raw[0], tuple | list) else raw
    numel = math.prod(w.shapes[src])
    if not dims or any(d is not None and (not isinstance(d, int) or d < -1 or d == 0) for d in dims):
        raise UnsupportedError(f"{where}: view/reshape to {dims} is not supported")
    if dims[0] is None or (dims[0] == -1 and None not in dims[1:]):
        sample = list(dims[1:])
    else:
        raise UnsupportedError(f"{where}: view/reshape to {dims} must keep the batch first (x.size(0) or -1)")
    if None in sample or sample.count(-1) > 1:
        raise UnsupportedError(f"{where}: view/reshape to {dims} mixes the batch into a sample axis")
    if -1 in sample:
        known = math.prod(d for d in sample if d != -1)
        if known == 0 or numel % known:
            raise UnsupportedError(f"{where}: view/reshape to {dims} does not fit {w.shapes[src]}")
        sample[sample.index(-1)] = numel // known
    if math.prod(sample) != numel:
        raise UnsupportedError(f"{where}: view/reshape to {dims} does not fit the sample shape {w.shapes[src]}")
    op: Op = Flatten() if len(sample) == 1 and len(w.shapes[src]) > 1 else Reshape(tuple(int(d) for d in sample))
    return w.add(w.name_of(n), op, [src], where)


def _permute(w: _Walk, n: fx.Node, where: str) -> Any:
    src = _first_tensor(w, n, where)
    ndim = len(w.shapes[src]) + 1
    raw = [w.value(a) for a in n.args[1:]] or [n.kwargs.get("dims")]
    dims = list(raw[0]) if len(raw) == 1 and isinstance(raw[0], tuple | list) else raw
    dims = [d + ndim if d < 0 else d for d in dims]
    if sorted(dims) != list(range(ndim)) or dims[0] != 0:
        raise UnsupportedError(f"{where}: permute {dims} must keep the batch axis first")
    return w.add(w.name_of(n), Transpose(tuple(d - 1 for d in dims[1:])), [src], where)


def _transpose(w: _Walk, n: fx.Node, where: str) -> Any:
    src = _first_tensor(w, n, where)
    ndim = len(w.shapes[src]) + 1
    args = [w.value(a) for a in n.args[1:]]
    d0, d1 = args if len(args) == 2 else (n.kwargs.get("dim0"), n.kwargs.get("dim1"))
    a, b = (_sample_axis(int(d), ndim, where, "transpose") for d in (d0, d1))
    perm = list(range(ndim - 1))
    perm[a], perm[b] = perm[b], perm[a]
    return w.add(w.name_of(n), Transpose(tuple(perm)), [src], where)


def _split(w: _Walk, n: fx.Node, where: str, chunk: bool) -> Any:
    src = _first_tensor(w, n, where)
    shape = w.shapes[src]
    arg = w.value(n.args[1]) if len(n.args) > 1 else w.value(n.kwargs.get("chunks", n.kwargs.get(
        "split_size_or_sections", n.kwargs.get("split_size"))))
    dim = w.value(n.args[2]) if len(n.args) > 2 else n.kwargs.get("dim", 0)
    axis = _sample_axis(int(dim), len(shape) + 1, where, "chunk/split")
    size = shape[axis]
    if chunk:
        step = -(-size // int(arg))
        sizes = [min(step, size - s) for s in range(0, size, step)]
    elif isinstance(arg, int):
        sizes = [min(arg, size - s) for s in range(0, size, arg)]
    else:
        sizes = [int(s) for s in arg]
    if sum(sizes) != size or min(sizes) < 1:
        raise UnsupportedError(f"{where}: split sizes {sizes} do not add up to {size}")
    starts = np.cumsum([0] + sizes)
    return _Parts(src, axis, tuple((int(starts[i]), int(starts[i + 1])) for i in range(len(sizes))))


def _mean(w: _Walk, n: fx.Node, where: str) -> Any:
    """Mean over the spatial axes of a (C, H, W) sample: global average pooling (flattened unless keepdim)."""
    src = _first_tensor(w, n, where)
    shape = w.shapes[src]
    dim = w.value(n.args[1]) if len(n.args) > 1 else n.kwargs.get("dim")
    keep = bool(w.value(n.args[2]) if len(n.args) > 2 else n.kwargs.get("keepdim", False))
    dims = sorted(_sample_axis(int(d), len(shape) + 1, where, "mean") for d in (
        dim if isinstance(dim, tuple | list) else [dim])) if dim is not None else None
    if len(shape) != 3 or dims != [1, 2]:
        raise UnsupportedError(f"{where}: mean over dims {dim} of a {shape} sample is not supported (only over "
                               "the spatial dims, x.mean((2, 3)))")
    ops: list[Op] = [AvgPool2d((shape[1], shape[2]), (shape[1], shape[2]))] + ([] if keep else [Flatten()])
    return w.add_all(w.name_of(n), ops, [src], where)


def _cat(w: _Walk, n: fx.Node, where: str) -> Any:
    ins = w.tensors(n, where)
    if len(ins) == 1:
        return ins[0]  # torch.cat([x], 1): x (DenseNet's layers do this)
    return w.call(n, registry_only=True)


def _adaptive_fn(w: _Walk, n: fx.Node, where: str) -> Any:
    src = _first_tensor(w, n, where)
    size = w.value(n.args[1]) if len(n.args) > 1 else n.kwargs.get("output_size")
    return w.add_all(w.name_of(n), _adaptive(size, w.shapes[src], where), [src], where)


def _identity(w: _Walk, n: fx.Node, where: str) -> Any:
    return _first_tensor(w, n, where)


SPECIAL_FUNCTIONS: dict[Any, Callable[[_Walk, fx.Node, str], Any]] = {
    getattr: _getattr, operator.getitem: _getitem, torch.reshape: _view, torch.permute: _permute,
    torch.transpose: _transpose, torch.chunk: lambda w, n, wh: _split(w, n, wh, True),
    torch.split: lambda w, n, wh: _split(w, n, wh, False), torch.mean: _mean, torch.cat: _cat, torch.concat: _cat,
    F.adaptive_avg_pool2d: _adaptive_fn, F.dropout: _identity, F.dropout2d: _identity, F.dropout1d: _identity,
    F.alpha_dropout: _identity,
}
SPECIAL_METHODS: dict[str, Callable[[_Walk, fx.Node, str], Any]] = {
    "size": _size, "view": _view, "reshape": _view, "permute": _permute, "transpose": _transpose,
    "chunk": lambda w, n, wh: _split(w, n, wh, True), "split": lambda w, n, wh: _split(w, n, wh, False),
    "mean": _mean, "contiguous": _identity, "clone": _identity, "float": _identity,
}


def _prune(nodes: list[Node], out: str) -> list[Node]:
    """Only the nodes the output depends on (a branch computed and never used is dropped)."""
    live, by_name = {out}, {n.name: n for n in nodes}
    for n in reversed(nodes):
        if n.name in live:
            live.update(n.inputs)
    kept = [n for n in nodes if n.name in live]
    if not kept or kept[-1].name != by_name[out].name:
        raise UnsupportedError("the model's output is not its last computed value")
    return kept


def _kind_and_levels(model: nn.Module) -> tuple[str, int]:
    quant = [m for m in model.modules() if isinstance(m, QuantLayer)]
    plain = [name for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    ternary = [m for m in quant if m.parametrisation != "float"]
    if ternary and plain:
        raise UnsupportedError(f"{plain[0]}: a float {type(model.get_submodule(plain[0])).__name__} in a ternary "
                               "model; the artifact holds ternary weights only: ternarize it too")
    levels = {m.levels for m in ternary}
    if len(levels) > 1:
        raise UnsupportedError(f"weight layers with different levels {sorted(levels)} cannot share one artifact")
    return ("ternary", levels.pop()) if ternary else ("float", 1)


def _warn_stale_batchnorm(model: nn.Module) -> None:
    """A discrete-weight model whose BatchNorm statistics were left as training left them: say so (once)."""
    from .batchnorm import stale_batchnorms

    if not any(isinstance(m, QuantLayer) and m.parametrisation == "discrete" for m in model.modules()):
        return
    stale = stale_batchnorms(model)
    if stale:
        warnings.warn(f"{stale[0]}: BatchNorm running statistics (of {len(stale)} BatchNorm layers) were not "
                      "re-estimated for the final discrete weights, so they describe weights that no longer exist "
                      "(seen: 96 % -> 66 %); pass to_artifact(..., recalibrate=training inputs) or call "
                      "ternkit.recalibrate_batchnorm(model, x) first", StaleBatchNormWarning, stacklevel=3)


class StaleBatchNormWarning(UserWarning):
    """A ternary model is deployed with BatchNorm statistics that training left behind."""


def to_artifact(model: nn.Module, example_input: torch.Tensor | tuple[int, ...] | None = None,
                labels: list[str] | None = None, normalisation: tuple[Any, Any] | None = None, *,
                input_spec: InputSpec | None = None, provenance: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None, check: bool = True, task: str = "classify",
                recalibrate: torch.Tensor | None = None) -> TernaryModel:
    """The deployed model of a torch `model` (a spec network or your own `nn.Module`), traced with torch.fx.

    `example_input`: a batch (N, *shape) or the sample shape; `labels`: class names (default "0".."K-1");
    `normalisation`: (mean, std) the model's input is normalised with, broadcasting against the sample shape
    (default: none -- the model sees raw features). `recalibrate`: training inputs (as the model sees them) on
    which every BatchNorm's running statistics are first re-estimated for the final weights
    (`ternkit.recalibrate_batchnorm`, in place): CoNNTrA moves weights in discrete jumps, so the running
    averages a training loop leaves behind describe weights that no longer exist, and a model deployed with
    them can lose tens of points. The artifact is checked against the model's own output."""
    if recalibrate is not None:
        from .batchnorm import recalibrate_batchnorm

        if not isinstance(recalibrate, torch.Tensor) or recalibrate.ndim < 2 or len(recalibrate) == 0:
            raise UnsupportedError("recalibrate must be a non-empty batch of training inputs (a torch tensor)")
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            recalibrate_batchnorm(model, recalibrate.to(device))
    if input_spec is None:
        if example_input is None:
            raise UnsupportedError("to_artifact needs an example input (a batch or the sample shape)")
        shape = tuple(example_input.shape[1:]) if isinstance(example_input, torch.Tensor) else tuple(example_input)
        # no normalisation: identity stored as scalars (full-shape arrays made a 96x96x3 model's file 3.6x its ONNX)
        mean, std = normalisation if normalisation is not None else (np.zeros(1), np.ones(1))
        mean, std = (np.asarray(v, np.float32) for v in (mean, std))
        try:
            np.broadcast_shapes(mean.shape, std.shape, shape)
        except ValueError:
            raise UnsupportedError(f"normalisation shapes {mean.shape}, {std.shape} do not fit input {shape}") from None
        input_spec = InputSpec(shape, mean, std)
    shape = tuple(int(d) for d in input_spec.shape)
    kind, levels = _kind_and_levels(model)
    _warn_stale_batchnorm(model)
    was_training = model.training
    model.eval()
    try:
        body = getattr(model, "body", None)
        strip = "body." if isinstance(body, nn.Module) else ""
        nodes = trace_graph(model, shape, strip)
        probe = torch.randn((4, *shape), generator=torch.Generator().manual_seed(0))
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        try:
            with torch.no_grad():
                ref = model(probe.to(device)).float().cpu().numpy()
        except Exception as e:  # the user's forward on input of the declared shape
            raise UnsupportedError(f"the model fails on input of shape {shape}: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}"[:300]) from None
    finally:
        model.train(was_training)
    if ref.ndim != 2:
        raise UnsupportedError(f"the model outputs shape {tuple(ref.shape[1:])} per sample; it must output logits")
    labels = [str(i) for i in range(ref.shape[1])] if labels is None else [str(x) for x in labels]
    artifact = TernaryModel(nodes, input_spec, labels, kind=kind, levels=levels, provenance=provenance,
                            metrics=metrics, task=task)
    artifact.validate()
    artifact = chain_names.apply(drop_identity.apply(fold_affine.apply(artifact)))
    artifact.validate()
    if check:
        ours = artifact.forward(probe.numpy(), normalised=True)
        err = float(np.abs(ours - ref).max())
        if err > 1e-3 * (1 + float(np.abs(ref).max())):
            raise UnsupportedError(f"the traced artifact does not reproduce the model's output (max |diff| "
                                   f"{err:.3g}): the model computes something the tracer does not see")
    return artifact
