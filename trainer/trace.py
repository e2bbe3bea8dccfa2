"""Trace a torch model into the graph artifact (torch.fx): the one conversion path, for spec networks and for
users' own `nn.Module`s alike.

Each traced call is looked up in a table (by module type, by function, by tensor method) that returns the
artifact operation; BatchNorm is folded into the weight operation that feeds it alone, otherwise it becomes a
per-channel affine. Anything the tables do not know is refused with one line naming it and where it sits in
the model. Finally the artifact is run beside the torch model on random input: a trace that does not
reproduce the model's output is refused rather than deployed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ternkit.core.errors import UnsupportedError
from ternkit.core.model import INPUT, InputSpec, Node, TernaryModel
from ternkit.core.ops import Add, Affine, AvgPool2d, Concat, Conv2d, Dense, Flatten, MaxPool2d, Op, ReLU, WeightOp
from ternkit.core.ops.affine import batchnorm_affine
from ternkit.core.text import to_name

from .layers import QuantLayer

__all__ = ["to_artifact", "trace_graph"]

_IDENTITY = object()  # a call that passes its input through in inference (dropout, identity)
_BATCH = object()  # x.size(0): only valid as the batch dimension of a flattening view


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, QuantLayer) or super().is_leaf_module(m, qualname)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# -- modules -----------------------------------------------------------------------------------------------------
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


def _pool_args(kernel: Any, stride: Any, padding: Any, ceil: bool, where: str, name: str,
               dilation: Any = 1, count_include_pad: bool = True) -> tuple[tuple[int, int], ...]:
    if ceil or _pair(dilation) != (1, 1) or not count_include_pad:
        raise UnsupportedError(f"{where}: {name} with ceil_mode, dilation or count_include_pad=False is not supported")
    k = _pair(kernel)
    return k, _pair(stride if stride not in (None, ()) else k), _pair(padding)


def _avgpool(m: nn.AvgPool2d, shape: tuple[int, ...], where: str) -> Op:
    if m.divisor_override is not None:
        raise UnsupportedError(f"{where}: AvgPool2d with divisor_override is not supported")
    return AvgPool2d(*_pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode, where, "AvgPool2d", 1,
                                 m.count_include_pad))


def _maxpool(m: nn.MaxPool2d, shape: tuple[int, ...], where: str) -> Op:
    if m.return_indices:
        raise UnsupportedError(f"{where}: MaxPool2d with return_indices is not supported")
    return MaxPool2d(*_pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode, where, "MaxPool2d", m.dilation))


def _global(size: Any, shape: tuple[int, ...], where: str) -> Op:
    if _pair(size if size is not None else 1) != (1, 1) or len(shape) != 3:
        raise UnsupportedError(f"{where}: adaptive average pooling to {size} is not supported (only to 1x1)")
    return AvgPool2d((shape[1], shape[2]), (shape[1], shape[2]))


def _flatten_module(m: nn.Flatten, shape: tuple[int, ...], where: str) -> Op:
    if m.start_dim != 1 or m.end_dim != -1:
        raise UnsupportedError(f"{where}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported")
    return Flatten()


MODULES: dict[type, Callable[..., Any]] = {
    QuantLayer: _quant, nn.Linear: _linear, nn.Conv2d: _conv, nn.ReLU: lambda m, s, w: ReLU(),
    nn.Flatten: _flatten_module, nn.AvgPool2d: _avgpool, nn.MaxPool2d: _maxpool,
    nn.AdaptiveAvgPool2d: lambda m, s, w: _global(m.output_size, s, w),
    nn.Dropout: lambda m, s, w: _IDENTITY, nn.Dropout2d: lambda m, s, w: _IDENTITY,
    nn.Identity: lambda m, s, w: _IDENTITY,
}


def _module_handler(m: nn.Module) -> Callable[..., Any] | None:
    for cls in type(m).__mro__:
        if cls in MODULES:
            return MODULES[cls]
    return None


# -- functions and tensor methods: (args, kwargs, input shapes, where) -> Op --------------------------------------
def _fn_flatten(args, kwargs, shapes, where):
    start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
    end = kwargs.get("end_dim", args[2] if len(args) > 2 else -1)
    if start != 1 or end != -1:
        raise UnsupportedError(f"{where}: flatten(start_dim={start}, end_dim={end}) is not supported; use "
                               "flatten(x, 1)")
    return Flatten()


def _fn_view(args, kwargs, shapes, where):
    dims = args[1:] if len(args) > 2 or not isinstance(args[1], tuple | list) else tuple(args[1])
    if len(dims) == 2 and dims[0] is _BATCH and dims[1] == -1:
        return Flatten()
    raise UnsupportedError(f"{where}: view/reshape to {dims} is not supported; use x.flatten(1)")


def _fn_cat(args, kwargs, shapes, where):
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    if dim != 1:
        raise UnsupportedError(f"{where}: cat along dim {dim} is not supported (only the channel dim 1)")
    return Concat()


def _fn_avgpool(args, kwargs, shapes, where):
    get = lambda i, k, d: kwargs.get(k, args[i] if len(args) > i else d)  # noqa: E731
    if get(6, "divisor_override", None) is not None:
        raise UnsupportedError(f"{where}: avg_pool2d with divisor_override is not supported")
    return AvgPool2d(*_pool_args(get(1, "kernel_size", None), get(2, "stride", None), get(3, "padding", 0),
                                 get(4, "ceil_mode", False), where, "avg_pool2d", 1, get(5, "count_include_pad", True)))


def _fn_maxpool(args, kwargs, shapes, where):
    get = lambda i, k, d: kwargs.get(k, args[i] if len(args) > i else d)  # noqa: E731
    return MaxPool2d(*_pool_args(get(1, "kernel_size", None), get(2, "stride", None), get(3, "padding", 0),
                                 get(5, "ceil_mode", False), where, "max_pool2d", get(4, "dilation", 1)))


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    F.relu: lambda a, k, s, w: ReLU(), torch.relu: lambda a, k, s, w: ReLU(),
    operator.add: lambda a, k, s, w: Add(), operator.iadd: lambda a, k, s, w: Add(),
    torch.add: lambda a, k, s, w: Add(),
    torch.flatten: _fn_flatten, torch.cat: _fn_cat, torch.concat: _fn_cat,
    F.avg_pool2d: _fn_avgpool, F.max_pool2d: _fn_maxpool,
    F.adaptive_avg_pool2d: lambda a, k, s, w: _global(k.get("output_size", a[1] if len(a) > 1 else None), s[0], w),
    F.dropout: lambda a, k, s, w: _IDENTITY,
}
METHODS: dict[str, Callable[..., Any]] = {
    "relu": lambda a, k, s, w: ReLU(), "add": lambda a, k, s, w: Add(), "__add__": lambda a, k, s, w: Add(),
    "flatten": _fn_flatten, "view": _fn_view, "reshape": _fn_view, "contiguous": lambda a, k, s, w: _IDENTITY,
}


# -- the walk ----------------------------------------------------------------------------------------------------
def _where(node: fx.Node, strip: str) -> str:
    t = node.target if node.op == "call_module" else node.name
    t = str(t)
    return t[len(strip):] if strip and t.startswith(strip) else t


def trace_graph(model: nn.Module, input_shape: tuple[int, ...], strip: str = "") -> list[Node]:
    """The artifact's nodes for `model` on samples of `input_shape` (BatchNorm folded where exact)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for code it cannot follow (data-dependent control flow)
        raise UnsupportedError(f"cannot trace the model with torch.fx: {str(e).splitlines()[0][:160]}") from None
    modules = dict(model.named_modules())
    alias: dict[fx.Node, Any] = {}  # fx node -> artifact node name, or _BATCH
    nodes: list[Node] = []
    index: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(input_shape)}
    users: dict[str, int] = {}
    seen_input = False

    def tensor_inputs(n: fx.Node, where: str) -> list[str]:
        out = []
        for a in n.args:
            if isinstance(a, list | tuple):
                out += [alias[x] for x in a if isinstance(x, fx.Node)]
            elif isinstance(a, fx.Node):
                if alias.get(a) is _BATCH:
                    continue
                out.append(alias[a])
            elif a is not None and not isinstance(a, int | float | str | bool):
                raise UnsupportedError(f"{where}: argument {a!r} is not supported")
        return out

    def add(name: str, op: Op, inputs: list[str], where: str) -> str:
        name = to_name(name.replace("/", "."))[:120]  # the artifact's node-name grammar (room for a _N suffix)
        base, i = name, 1
        while name in index or name == INPUT:
            name, i = f"{base}_{i}", i + 1
        node = Node(name, op, tuple(inputs))
        try:
            shapes[name] = tuple(op.out_shape(*(shapes[x] for x in inputs)))
        except Exception as e:
            raise UnsupportedError(f"{where}: {op.kind} does not fit its input "
                                   f"{[shapes[x] for x in inputs]} ({e})") from None
        index[name] = len(nodes)
        nodes.append(node)
        for x in inputs:
            users[x] = users.get(x, 0) + 1
        return name

    for n in graph.nodes:
        where = _where(n, strip)
        if n.op == "placeholder":
            if seen_input:
                raise UnsupportedError(f"{where}: the model takes more than one input")
            alias[n], seen_input = INPUT, True
            continue
        if n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node) or not isinstance(alias.get(out), str) or alias[out] == INPUT:
                raise UnsupportedError("the model must return one tensor computed by its layers")
            return _fold_affines(_prune(nodes, alias[out]))
        if n.op == "get_attr":
            raise UnsupportedError(f"{where}: reading a parameter or buffer inside forward is not supported")
        if n.op == "call_method" and n.target == "size":
            if len(n.args) == 2 and n.args[1] == 0:
                alias[n] = _BATCH
                continue
            raise UnsupportedError(f"{where}: x.size() other than x.size(0) is not supported")
        if n.op == "call_module":
            m = modules[n.target]
            ins = tensor_inputs(n, where)
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                alias[n] = add(where, _batchnorm(m, ins, where), ins, where)
                continue
            handle = _module_handler(m)
            if handle is None:
                raise UnsupportedError(f"{where}: {type(m).__name__} is not supported (supported: Linear, Conv2d, "
                                       "their ternary twins, BatchNorm, ReLU, pooling, Flatten, Dropout, add, cat)")
            if len(ins) != 1:
                raise UnsupportedError(f"{where}: {type(m).__name__} must take exactly one tensor")
            op = handle(m, shapes[ins[0]], where)
            alias[n] = ins[0] if op is _IDENTITY else add(where, op, ins, where)
            continue
        if n.op in ("call_function", "call_method"):
            table, key = (FUNCTIONS, n.target) if n.op == "call_function" else (METHODS, n.target)
            handle = table.get(key)
            if handle is None:
                name = getattr(n.target, "__name__", str(n.target))
                raise UnsupportedError(f"{where}: {'function' if n.op == 'call_function' else 'tensor method'} "
                                       f"{name} is not supported")
            ins = tensor_inputs(n, where)
            args = tuple(_BATCH if isinstance(a, fx.Node) and alias.get(a) is _BATCH else a for a in n.args)
            op = handle(args, dict(n.kwargs), [shapes[x] for x in ins], where)
            if op is _IDENTITY:
                alias[n] = ins[0]
                continue
            if op.arity is None and len(ins) < 2:
                raise UnsupportedError(f"{where}: {op.kind} with a constant is not supported (both must be tensors)")
            if op.arity is not None and len(ins) != op.arity:
                raise UnsupportedError(f"{where}: {op.kind} must take exactly {op.arity} tensor(s)")
            alias[n] = add(where, op, ins, where)
            continue
        raise UnsupportedError(f"{where}: {n.op} {n.target} is not supported")
    raise UnsupportedError("the traced model has no output")


def _batchnorm(m: nn.Module, ins: list[str], where: str) -> Affine:
    if len(ins) != 1:
        raise UnsupportedError(f"{where}: BatchNorm must take exactly one tensor")
    if m.running_mean is None:
        raise UnsupportedError(f"{where}: BatchNorm without running statistics (track_running_stats=False) "
                               "cannot be deployed")
    gamma = m.weight.detach().cpu().numpy() if m.weight is not None else None
    beta = m.bias.detach().cpu().numpy() if m.bias is not None else None
    gain, shift = batchnorm_affine(m.running_mean.cpu().numpy(), m.running_var.cpu().numpy(), gamma, beta, m.eps)
    return Affine(gain.astype(np.float32), shift.astype(np.float32))


def _fold_affines(nodes: list[Node]) -> list[Node]:
    """An affine whose input is a weight operation read by nothing else is folded into that operation's scale
    and bias (exact up to float32 rounding); the affine node disappears and its readers read the weight op."""
    readers: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    by_name = {n.name: n for n in nodes}
    rename: dict[str, str] = {}
    out: list[Node] = []
    for n in nodes:
        inputs = tuple(rename.get(i, i) for i in n.inputs)
        src = by_name.get(inputs[0]) if len(inputs) == 1 else None
        if isinstance(n.op, Affine) and src is not None and isinstance(src.op, WeightOp) and readers[src.name] == 1:
            j = next(k for k, m in enumerate(out) if m.name == src.name)
            out[j] = by_name[src.name] = Node(src.name, src.op.with_affine(n.op.scale, n.op.bias), src.inputs)
            rename[n.name] = src.name
            continue
        out.append(Node(n.name, n.op, inputs))
    return out


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


def _as_chain_names(nodes: list[Node]) -> list[Node]:
    """A chain keeps the names layer0, layer1, ... (the names `.tern` files of chains have always had)."""
    prev, ok = INPUT, True
    for n in nodes:
        ok, prev = ok and n.inputs == (prev,), n.name
    if not ok:
        return nodes
    return [Node(f"layer{i}", n.op, (f"layer{i - 1}",) if i else (INPUT,)) for i, n in enumerate(nodes)]


def _kind_and_levels(model: nn.Module) -> tuple[str, int]:
    quant = [m for m in model.modules() if isinstance(m, QuantLayer)]
    plain = [name for name, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv2d)]
    ternary = [m for m in quant if m.parametrisation != "float"]
    if ternary and plain:
        raise UnsupportedError(f"{plain[0]}: a float {type(model.get_submodule(plain[0])).__name__} in a ternary "
                               "model; the artifact holds ternary weights only: ternarize it too")
    levels = {m.levels for m in ternary}
    if len(levels) > 1:
        raise UnsupportedError(f"weight layers with different levels {sorted(levels)} cannot share one artifact")
    return ("ternary", levels.pop()) if ternary else ("float", 1)


def to_artifact(model: nn.Module, example_input: torch.Tensor | tuple[int, ...] | None = None,
                labels: list[str] | None = None, normalisation: tuple[Any, Any] | None = None, *,
                input_spec: InputSpec | None = None, provenance: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None, check: bool = True, task: str = "classify") -> TernaryModel:
    """The deployed model of a torch `model` (a spec network or your own `nn.Module`), traced with torch.fx.

    `example_input`: a batch (N, *shape) or the sample shape; `labels`: class names (default "0".."K-1");
    `normalisation`: (mean, std) the model's input is normalised with, broadcasting against the sample shape
    (default: none -- the model sees raw features). The artifact is checked against the model's own output."""
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
    was_training = model.training
    model.eval()
    try:
        body = getattr(model, "body", None)
        strip = "body." if isinstance(body, nn.Module) else ""
        nodes = _as_chain_names(trace_graph(model, shape, strip))
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
    if check:
        ours = artifact.forward(probe.numpy(), normalised=True)
        err = float(np.abs(ours - ref).max())
        if err > 1e-3 * (1 + float(np.abs(ref).max())):
            raise UnsupportedError(f"the traced artifact does not reproduce the model's output (max |diff| "
                                   f"{err:.3g}): the model computes something the tracer does not see")
    return artifact
