"""What every operation of the artifact provides, and the arithmetic they share.

An operation is a small dataclass: its parameters, its output shape, its numpy reference forward, its
counts and stored bytes, and its (de)serialisation. Backends never branch on the type: they look a handler
up by `Op.kind` in their own registry, so a new operation is one file here plus one handler per backend.
Shapes never include the batch dimension; `forward` takes and returns batches (float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError

__all__ = ["Op", "WeightOp", "Counts", "Shape", "GetTensor", "TorchCall", "window_out", "window_taps", "read_ints",
           "packed_bytes", "MAX_ELEMENTS"]

Shape = tuple[int, ...]
GetTensor = Callable[[str, Any], np.ndarray]  # (tensor name relative to the node, dtype) -> array

#: Largest activation or weight tensor (elements, one sample) an artifact may declare: 2^28 float32 = 1 GiB.
MAX_ELEMENTS = 1 << 28


@dataclass(frozen=True)
class Counts:
    """Per sample. `connections`: input-to-output contributions that exist (padding excluded) -- the MACs of a
    weight operation, the synapses of a fixed-weight one; `nonzero`: those whose weight is not zero (the
    additions a ternary kernel really performs); `outputs`: elements produced."""

    connections: int
    nonzero: int
    outputs: int


def window_out(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    """Output length of a sliding window (torch's formula: floor, or with `ceil` torch's ceil_mode, where the
    last window may hang over the end but must start inside the input or its left padding); the one place it
    is written."""
    span = size + 2 * padding - kernel
    if not ceil:
        return span // stride + 1
    n = -(-span // stride) + 1
    return n - 1 if (n - 1) * stride >= size + padding else n


def window_pad_end(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    """Padding after the input that the windows of `window_out` read: `padding`, plus the overhang of a
    ceil_mode window."""
    n = window_out(size, kernel, stride, padding, ceil)
    return max(padding, (n - 1) * stride + kernel - size - padding)


def window_taps(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> np.ndarray:
    """For each kernel offset k, how many output positions read a real (non-padding) input through it."""
    n = window_out(size, kernel, stride, padding, ceil)
    pos = np.arange(n)[:, None] * stride - padding + np.arange(kernel)[None, :]
    return ((pos >= 0) & (pos < size)).sum(0).astype(np.int64)


def window_real(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> np.ndarray:
    """For each output position, how many of its window's inputs are real (count_include_pad=False divisor)."""
    n = window_out(size, kernel, stride, padding, ceil)
    pos = np.arange(n)[:, None] * stride - padding + np.arange(kernel)[None, :]
    return ((pos >= 0) & (pos < size)).sum(1).astype(np.int64)


@dataclass(frozen=True)
class TorchCall:
    """One call of a torch graph, as an operation's `from_torch` sees it: the module (for a module call) or
    None, the positional and keyword arguments (tensors replaced by None), the sample shapes of the tensor
    inputs and where the call sits in the user's model (for messages)."""

    module: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    shapes: list[tuple[int, ...]]
    where: str
    name: str = ""  # the qualified name or method name that matched ("torch.nn.functional.relu6", "clamp")

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Argument `name`, given by keyword or at position `index` (counting the input tensor as 0)."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if len(self.args) > index else default


def read_ints(value: Any, n: int | None, what: str, low: int = 0, high: int = 1 << 31) -> tuple[int, ...]:
    """A list of n bounded ints from metadata, or ArtifactError naming the field."""
    if not isinstance(value, list) or (n is not None and len(value) != n) or not all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v < high for v in value):
        raise ArtifactError(f"bad {what}: {value!r}"[:200])
    return tuple(value)


def packed_bytes(count: int, bits: int) -> int:
    per = 8 // bits
    return -(-count // per)


def _numel(shape: Shape) -> int:
    return math.prod(shape)


class Op:
    """Base of every operation. Subclasses are dataclasses and set `kind` (the registry name).

    Besides its arithmetic, an operation declares the facts that other parts need about it, so no table
    elsewhere lists operation kinds: `in_place` (its output may overwrite its only input: an elementwise
    operation), `fuses_relu` (a ReLU that is its only reader can be folded into it as a lower clamp),
    `effective` (connections used on data), and how the tracer recognises it in a torch graph
    (`torch_modules`, `torch_functions`, `torch_methods`: qualified names, read by `from_torch`)."""

    kind: ClassVar[str] = ""
    arity: ClassVar[int | None] = 1  # number of inputs; None = two or more
    has_weights: ClassVar[bool] = False
    in_place: ClassVar[bool] = False
    fuses_relu: ClassVar[bool] = False
    #: torch module classes ("torch.nn.ReLU"), functions ("torch.nn.functional.relu") and tensor methods
    #: ("relu") the tracer turns into this operation with `from_torch`
    torch_modules: ClassVar[tuple[str, ...]] = ()
    torch_functions: ClassVar[tuple[str, ...]] = ()
    torch_methods: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        """This operation for a recognised torch call (override to read arguments or refuse variants)."""
        return cls()

    def out_shape(self, *shapes: Shape) -> Shape:
        raise NotImplementedError

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def counts(self, *shapes: Shape) -> Counts:
        return Counts(0, 0, _numel(self.out_shape(*shapes)))

    def effective(self, *masks: np.ndarray) -> np.ndarray:
        """Per output element (N, *out_shape), how many of its connections have a non-zero weight and a
        non-zero input, given 0/1 float32 masks of the inputs (N, *in_shape); all-ones masks sum to
        `counts().nonzero`. Operations without connections: zeros."""
        out = self.out_shape(*(m.shape[1:] for m in masks))
        return np.zeros((masks[0].shape[0], *out), np.float32)

    def stored_bytes(self, kind: str = "ternary", bits: int = 2) -> int:
        return sum(a.nbytes for a in self.arrays(kind, bits).values())

    def float32_bytes(self) -> int:
        """The parameters as a float32 model stores them: the reference every compression ratio divides."""
        return sum(4 * a.size for a in self.arrays("float", 32).values())

    # (de)serialisation: attributes go to the JSON header, arrays to safetensors under "<node>.<name>"
    def attrs(self) -> dict[str, Any]:
        return {}

    def arrays(self, kind: str, bits: int) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls()

    def check(self, kind: str, levels: int) -> None:
        """Invariants of the parameters alone (shapes are checked by `out_shape`)."""


class WeightOp(Op):
    """An operation with integer (or, for the float baseline, float32) weights, a float32 scale per output
    channel or per layer, and a float32 bias per output: the deployed weight is exactly `scale * weight`."""

    has_weights: ClassVar[bool] = True
    fuses_relu: ClassVar[bool] = True
    weight_ndim: ClassVar[int] = 2
    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def channel_scale(self) -> np.ndarray:
        """The scale as one float32 per output channel (a per-layer scale broadcast)."""
        return np.broadcast_to(self.scale.astype(np.float32).reshape(-1), (self.out_channels,)).copy()

    def effective(self, *masks: np.ndarray) -> np.ndarray:
        import dataclasses

        unit = dataclasses.replace(self, weight=(self.weight != 0).astype(np.float32), scale=np.ones(1, np.float32),
                                   bias=np.zeros(self.out_channels, np.float32))
        return unit.forward(*masks)

    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.weight))

    def float32_bytes(self) -> int:
        return 4 * int(self.weight.size + self.bias.size)  # a float layer has no separate scale

    def attrs(self) -> dict[str, Any]:
        return {"shape": list(self.weight.shape)}

    def arrays(self, kind: str, bits: int) -> dict[str, np.ndarray]:
        from ..packing import pack_ints

        w = pack_ints(self.weight, bits) if kind == "ternary" else np.ascontiguousarray(self.weight, np.float32)
        return {"weight": w, "scale": np.ascontiguousarray(self.scale, np.float32),
                "bias": np.ascontiguousarray(self.bias, np.float32)}

    @classmethod
    def read_weights(cls, attrs: dict[str, Any], get: GetTensor, kind: str,
                     bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from ..packing import unpack_ints

        shape = read_ints(attrs.get("shape"), cls.weight_ndim, "weight shape", low=1)
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            raise ArtifactError(f"weight shape {list(shape)} declares {count} weights, more than {MAX_ELEMENTS}")
        if kind == "ternary":
            w = unpack_ints(get("weight", np.uint8), bits, count).reshape(shape)
        else:
            w = get("weight", np.float32)
            if w.shape != shape:
                raise ArtifactError(f"weight shape {w.shape} != declared {shape}")
        return w, get("scale", np.float32), get("bias", np.float32)

    def check(self, kind: str, levels: int) -> None:
        w, out = self.weight, self.weight.shape[0] if self.weight.ndim else 0
        if w.ndim != self.weight_ndim or 0 in w.shape:
            raise ArtifactError(f"weight shape {list(w.shape)} is not a non-empty {self.weight_ndim}-d array")
        if self.scale.shape not in ((1,), (out,)) or self.bias.shape != (out,):
            raise ArtifactError(f"scale {list(self.scale.shape)} / bias {list(self.bias.shape)} do not match "
                                f"{out} outputs")
        for name, arr in (("weight", w), ("scale", self.scale), ("bias", self.bias)):
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ArtifactError(f"{name} holds NaN or inf")
        if kind == "ternary" and (w.dtype != np.int8 or (w.size and int(np.abs(w).max()) > levels)):
            raise ArtifactError(f"weights outside {{-{levels}..{levels}}}")

    def with_affine(self, gain: np.ndarray, shift: np.ndarray) -> WeightOp:
        """This operation followed by y * gain + shift per channel, as one operation: exact up to float32
        rounding (BatchNorm folding). The integer weights are untouched; the scale becomes per channel."""
        import dataclasses

        gain, shift = np.asarray(gain, np.float64), np.asarray(shift, np.float64)
        scale = (self.channel_scale().astype(np.float64) * gain).astype(np.float32)
        bias = (self.bias.astype(np.float64) * gain + shift).astype(np.float32)
        return dataclasses.replace(self, scale=scale, bias=bias)
