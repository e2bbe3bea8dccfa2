"""The model artifact: what the trainer produces and every downstream part reads.

A `TernaryModel` is an ordered list of layers. A weight layer holds integer weights `q` in {-k..k}
(k = 1: ternary), a float32 scale (per layer or per output channel) and a float32 bias; the deployed
weight is exactly `scale * q`. A float model (the baseline) holds float32 weights and unit scales.
`TernaryModel.forward` in numpy is the reference inference that ONNX and Lava results are checked
against, so it is deliberately plain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ArtifactError

__all__ = ["Dense", "Conv2d", "Flatten", "ReLU", "InputSpec", "TernaryModel", "Layer", "WeightLayer"]


@dataclass
class Dense:
    """y = (x @ q.T) * scale + bias; q has shape (out, in)."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    kind: str = "dense"

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        w = self.weight.astype(np.float32, copy=False)
        return (x @ w.T) * self.scale.astype(np.float32) + self.bias.astype(np.float32)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if in_shape != (self.in_features,):
            raise ArtifactError(f"dense layer expects input ({self.in_features},), gets {in_shape}")
        return (self.out_features,)


@dataclass
class Conv2d:
    """Strided cross-correlation (torch semantics), weight (C_out, C_in, kH, kW), no dilation/groups."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kind: str = "conv2d"

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3 or in_shape[0] != self.in_channels:
            raise ArtifactError(f"conv layer expects input ({self.in_channels}, H, W), gets {in_shape}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        h = (in_shape[1] + 2 * ph - kh) // sh + 1
        w = (in_shape[2] + 2 * pw - kw) // sw + 1
        if h < 1 or w < 1:
            raise ArtifactError(f"conv kernel {self.kernel} does not fit input {in_shape}")
        return (self.out_channels, h, w)

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        _, oh, ow = self.out_shape((c, h, w))
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        cols = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
        # cols: (n, c, oh, ow, kh, kw) -> (n, oh, ow, c*kh*kw)
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)
        wm = self.weight.astype(np.float32, copy=False).reshape(self.out_channels, -1)
        y = cols @ wm.T * self.scale.astype(np.float32).reshape(-1) + self.bias.astype(np.float32)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


@dataclass
class Flatten:
    """(C, H, W) -> C*H*W in C order, as torch flattens."""

    kind: str = "flatten"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(in_shape)),)


@dataclass
class ReLU:
    kind: str = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape


Layer = Dense | Conv2d | Flatten | ReLU
WeightLayer = Dense | Conv2d


@dataclass
class InputSpec:
    """Shape of one sample and the normalisation (x - mean) / std, computed on the training split.
    mean and std broadcast against `shape` (per feature for tables, per channel for images)."""

    shape: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) - self.mean) / self.std).astype(np.float32)


@dataclass
class TernaryModel:
    layers: list[Layer]
    input: InputSpec
    labels: list[str]
    kind: str = "ternary"  # "ternary" (integer weights in {-levels..levels}) or "float"
    levels: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def weight_layers(self) -> list[WeightLayer]:
        return [layer for layer in self.layers if isinstance(layer, Dense | Conv2d)]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every layer (without the batch dimension); raises on a mismatch."""
        shape, out = tuple(self.input.shape), []
        for layer in self.layers:
            shape = layer.out_shape(shape)
            out.append(shape)
        return out

    def forward(self, x: np.ndarray, normalised: bool = False) -> np.ndarray:
        """Logits for a batch of raw samples (N, *input.shape); float32 throughout."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(self.input.shape):
            raise ArtifactError(f"input has shape {x.shape[1:]}, the model expects {tuple(self.input.shape)}")
        h = x if normalised else self.input.normalise(x)
        for layer in self.layers:
            h = layer.forward(h)
        return h

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Output of every layer for a batch (used for activity counts and threshold balancing)."""
        h, outs = self.input.normalise(np.asarray(x, dtype=np.float32)), []
        for layer in self.layers:
            h = layer.forward(h)
            outs.append(h)
        return outs

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        return np.concatenate(
            [self.forward(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
        ) if len(x) else np.zeros(0, dtype=np.int64)

    def num_weights(self) -> int:
        return int(sum(layer.weight.size for layer in self.weight_layers))

    def validate(self) -> None:
        """Check the invariants downstream code relies on; raise ArtifactError with the first breach."""
        if self.kind not in ("ternary", "float"):
            raise ArtifactError(f"unknown model kind {self.kind!r}")
        if not self.weight_layers:
            raise ArtifactError("model has no weight layers")
        if self.levels < 1 or self.levels > 7:
            raise ArtifactError(f"levels must be in 1..7, got {self.levels}")
        for i, layer in enumerate(self.weight_layers):
            w = layer.weight
            out = w.shape[0]
            if layer.scale.shape not in ((1,), (out,)) or layer.bias.shape != (out,):
                raise ArtifactError(f"weight layer {i}: scale/bias shapes do not match {out} outputs")
            for name, arr in (("weight", w), ("scale", layer.scale), ("bias", layer.bias)):
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ArtifactError(f"weight layer {i}: {name} holds NaN or inf")
            if self.kind == "ternary":
                if w.dtype != np.int8 or w.size and np.abs(w).max() > self.levels:
                    raise ArtifactError(
                        f"weight layer {i}: weights outside {{-{self.levels}..{self.levels}}}"
                    )
        if len(self.labels) < 2:
            raise ArtifactError("model needs at least two class labels")
        shapes = self.shapes()
        if shapes[-1] != (len(self.labels),):
            raise ArtifactError(f"model outputs {shapes[-1]} but has {len(self.labels)} labels")
