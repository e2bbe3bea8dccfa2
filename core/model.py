"""The model artifact: what the trainer produces and every downstream part reads.

A `TernaryModel` is a graph of named nodes, each an operation of the registry (`core.ops`) applied to the
outputs of earlier nodes (or to the model input, named "input"); the last node is the output. Nodes are kept
in a topological order, so a chain -- the common case -- is simply a list of operations, and
`TernaryModel([op, op, ...], ...)` builds one. `TernaryModel.forward` in numpy is the reference inference
that every backend is checked against, so it is deliberately plain.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ArtifactError
from .ops import MAX_ELEMENTS, Conv2d, Counts, Dense, Flatten, Op, ReLU, WeightOp
from .text import NAME_RULE, cut, is_name

__all__ = ["Node", "InputSpec", "TernaryModel", "Dense", "Conv2d", "Flatten", "ReLU",
           "INPUT", "MAX_LABELS"]

INPUT = "input"
MAX_LABELS = 4096  # more classes than any edge model has; bounds the N x N confusion matrix
# what the output means: class scores (classify), targets in the data's units (regress), or the input itself
# flattened (autoencode, a regression whose target is the input); the labels name the classes or the outputs
TASKS = ("classify", "regress", "autoencode")
MAX_OUTPUTS = 65536  # outputs of a regression (an autoencoder's are its input's values)


@dataclass(eq=False)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]


@dataclass
class InputSpec:
    """Shape of one sample and the normalisation (x - mean) / std, computed on the training split.
    mean and std broadcast against `shape` (per feature for tables, per channel for images)."""

    shape: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) - self.mean) / self.std).astype(np.float32)


def chain(ops: Iterable[Op]) -> list[Node]:
    """Nodes layer0, layer1, ... each reading the one before (the first reads the input)."""
    nodes, prev = [], INPUT
    for i, op in enumerate(ops):
        nodes.append(Node(f"layer{i}", op, (prev,)))
        prev = f"layer{i}"
    return nodes


class TernaryModel:
    def __init__(self, layers: Sequence[Op] | Sequence[Node], input: InputSpec, labels: list[str],
                 kind: str = "ternary", levels: int = 1, provenance: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, task: str = "classify"):
        items = list(layers)
        self.nodes: list[Node] = items if items and all(isinstance(n, Node) for n in items) else chain(items)
        self.input, self.labels, self.kind, self.levels = input, list(labels), kind, levels
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.task = task

    # -- structure ------------------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Op]:
        """The operations in topological order (for a chain: the layers in order)."""
        return [n.op for n in self.nodes]

    @layers.setter
    def layers(self, ops: Sequence[Op]) -> None:
        self.nodes = chain(ops)

    @property
    def is_chain(self) -> bool:
        prev = INPUT
        for n in self.nodes:
            if n.inputs != (prev,):
                return False
            prev = n.name
        return True

    @property
    def weight_layers(self) -> list[WeightOp]:
        return [op for op in self.layers if op.has_weights]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {INPUT: []} | {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def shape_map(self) -> dict[str, tuple[int, ...]]:
        """Output shape of the input and every node (without the batch dimension); raises on a mismatch."""
        shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(self.input.shape)}
        for n in self.nodes:
            try:
                shapes[n.name] = tuple(int(d) for d in n.op.out_shape(*(shapes[i] for i in n.inputs)))
            except ArtifactError as e:
                raise ArtifactError(f"node {n.name} ({n.op.kind}): {e}") from None
            if math.prod(shapes[n.name]) > MAX_ELEMENTS:
                raise ArtifactError(f"node {n.name} ({n.op.kind}): output {list(shapes[n.name])} has more than "
                                    f"{MAX_ELEMENTS} elements")
        return shapes

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every node, in order."""
        m = self.shape_map()
        return [m[n.name] for n in self.nodes]

    def in_shapes(self, node: Node, shapes: dict[str, tuple[int, ...]] | None = None) -> list[tuple[int, ...]]:
        shapes = shapes or self.shape_map()
        return [shapes[i] for i in node.inputs]

    # -- inference ------------------------------------------------------------------------------------------
    def _run(self, x: np.ndarray, normalised: bool) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(self.input.shape):
            raise ArtifactError(f"input has shape {x.shape[1:]}, the model expects {tuple(self.input.shape)}")
        values = {INPUT: x if normalised else self.input.normalise(x)}
        for n in self.nodes:
            values[n.name] = n.op.forward(*(values[i] for i in n.inputs))
        return values

    def forward(self, x: np.ndarray, normalised: bool = False) -> np.ndarray:
        """Logits for a batch of raw samples (N, *input.shape); float32 throughout."""
        return self._run(x, normalised)[self.nodes[-1].name]

    def activations(self, x: np.ndarray, normalised: bool = False) -> list[np.ndarray]:
        """Output of every node for a batch, in node order (activity counts, calibration)."""
        values = self._run(x, normalised)
        return [values[n.name] for n in self.nodes]

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        if not len(x):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.forward(x[i: i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    # -- numbers (the one source for metrics, reports and activity records) ---------------------------------
    def counts(self) -> list[Counts]:
        shapes = self.shape_map()
        return [n.op.counts(*self.in_shapes(n, shapes)) for n in self.nodes]

    def num_weights(self) -> int:
        return int(sum(op.weight.size for op in self.weight_layers))

    def bits(self) -> int:
        from .packing import bits_for_levels

        return bits_for_levels(self.levels)

    def stored_bytes(self) -> int:
        """Bytes of all parameters as the artifact stores them (packed weights, float32 scales and biases)."""
        return int(sum(op.stored_bytes(self.kind, self.bits()) for op in self.layers))

    def float32_bytes(self) -> int:
        """The same parameters as a float32 model would store them (weights, biases, affine parameters)."""
        return int(sum(op.float32_bytes() for op in self.layers))

    def fingerprint(self) -> str:
        """sha256 of the structure and parameters (not of provenance or metrics): ties activity records and
        builds to the model they were measured on."""
        h = hashlib.sha256()
        head = {"kind": self.kind, "levels": self.levels, "input": list(self.input.shape), "labels": self.labels,
                "nodes": [[n.name, n.op.kind, list(n.inputs), n.op.attrs()] for n in self.nodes]}
        if self.task != "classify":  # classifiers keep the fingerprints they had before tasks were recorded
            head["task"] = self.task
        h.update(json.dumps(head, sort_keys=True).encode())
        for arr in (self.input.mean, self.input.std):
            h.update(np.ascontiguousarray(arr, np.float32).tobytes())
        for n in self.nodes:
            for key, arr in sorted(n.op.arrays(self.kind, self.bits()).items()):
                h.update(f"{n.name}.{key}".encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    # -- invariants -----------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the invariants downstream code relies on; raise ArtifactError with the first breach."""
        if self.kind not in ("ternary", "float"):
            raise ArtifactError(f"unknown model kind {self.kind!r}")
        if not isinstance(self.levels, int) or not 1 <= self.levels <= 7:
            raise ArtifactError(f"levels must be in 1..7, got {self.levels!r}")
        if not self.nodes:
            raise ArtifactError("model has no operations")
        seen = {INPUT}
        for n in self.nodes:
            if not is_name(n.name):
                raise ArtifactError(f"node name {cut(n.name)} is not a valid name ({NAME_RULE})")
            if n.name in seen:
                raise ArtifactError(f"node name {n.name!r} is not unique")
            if not isinstance(n.op, Op):
                raise ArtifactError(f"node {n.name}: {type(n.op).__name__} is not an operation")
            need = n.op.arity
            if (need is None and len(n.inputs) < 2) or (need is not None and len(n.inputs) != need):
                raise ArtifactError(f"node {n.name} ({n.op.kind}) takes {need or '2 or more'} inputs, "
                                    f"has {len(n.inputs)}")
            for i in n.inputs:
                if i not in seen:
                    raise ArtifactError(f"node {n.name} reads {cut(i)}, which is not an earlier node")
            try:
                n.op.check(self.kind, self.levels)
            except ArtifactError as e:
                raise ArtifactError(f"node {n.name} ({n.op.kind}): {e}") from None
            seen.add(n.name)
        unused = [k for k, v in self.consumers().items() if not v and k != self.nodes[-1].name]
        if unused:
            raise ArtifactError(f"the output of {unused[0]!r} is never used (the last node is the output)")
        if not self.weight_layers:
            raise ArtifactError("model has no weight layers")
        if self.task not in TASKS:
            raise ArtifactError(f"unknown task {self.task!r} (expected one of {', '.join(TASKS)})")
        if self.task != "classify":
            if not 1 <= len(self.labels) <= MAX_OUTPUTS:
                raise ArtifactError(f"a {self.task} model needs 1..{MAX_OUTPUTS} output names, has {len(self.labels)}")
        elif not 2 <= len(self.labels) <= MAX_LABELS:
            raise ArtifactError(f"model needs 2..{MAX_LABELS} class labels, has {len(self.labels)}")
        out = self.shapes()[-1]
        if out != (len(self.labels),):
            raise ArtifactError(f"model outputs {out} but has {len(self.labels)} labels")

